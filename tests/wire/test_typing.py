"""Typing indicators (doc/protocol.md: Typing)."""

import time

import pytest

from helpers import assert_error, create_group, send


def _pair(server, **kw):
    a1 = server.connect("alice", "a1")
    a2 = server.connect("alice", "a2")
    b = server.connect("bob")
    r = send(a1, "hi", to="bob")
    b.expect("msg", conv=r["conv"])
    a2.expect("msg", conv=r["conv"])
    return a1, a2, b, r["conv"]


def test_typing_start_reaches_other_member_and_own_other_device(server):
    a1, a2, b, cid = _pair(server)
    a1.send_json({"type": "typing", "conv": cid, "state": "start"})
    for dev in (b, a2):
        t = dev.expect("typing", conv=cid, user="alice")
        assert t["state"] == "start" and t["ttl_ms"] == 5000, t
        assert "re" not in t, t
    a1.expect_none("typing", within=0.4)


def test_typing_stop_reaches_other_member(server):
    a1, a2, b, cid = _pair(server)
    a1.send_json({"type": "typing", "conv": cid, "state": "start"})
    b.expect("typing", conv=cid, user="alice", state="start")
    time.sleep(0.6)
    a1.send_json({"type": "typing", "conv": cid, "state": "stop"})
    t = b.expect("typing", conv=cid, user="alice", state="stop")
    assert t["user"] == "alice", t


@pytest.mark.chatd_args("--limit", "typing_ttl_ms=300")
def test_typing_expires_to_stop_after_ttl(server):
    a1, a2, b, cid = _pair(server)
    a1.send_json({"type": "typing", "conv": cid, "state": "start"})
    t = b.expect("typing", conv=cid, user="alice", state="start")
    t0 = time.monotonic()
    assert t["ttl_ms"] == 300, t
    b.expect("typing", timeout=3, conv=cid, user="alice", state="stop")
    assert time.monotonic() - t0 >= 0.2, "stop arrived before the ttl"


def test_typing_is_not_stored(server):
    a1, a2, b, cid = _pair(server)
    a1.send_json({"type": "typing", "conv": cid, "state": "start"})
    b.expect("typing", conv=cid)
    h = b.call({"type": "history", "conv": cid})
    assert [m["seq"] for m in h["messages"]] == [1], h


def test_typing_by_non_member_is_eperm(server):
    a1, a2, b, cid = _pair(server)
    m = server.connect("mallory")
    r = m.call({"type": "typing", "conv": cid, "state": "start"})
    assert_error(r, "EPERM")
    b.expect_none("typing", within=0.4)


def test_typing_bad_state_is_bad_field(server):
    a1, a2, b, cid = _pair(server)
    assert_error(a1.call({"type": "typing", "conv": cid, "state": "dancing"}), "EINVAL", "bad_field")


@pytest.mark.chatd_args("--limit", "typing_rate=1")
def test_typing_rate_limited(server):
    a1, a2, b, cid = _pair(server)
    ids = [f"t{i}" for i in range(5)]
    for i in ids:
        a1.send_json({"type": "typing", "id": i, "conv": cid, "state": "start"})
    errs = []
    for i in ids:
        try:
            errs.append(a1.expect("error", timeout=1.0, re=i))
        except AssertionError:
            pass
    assert errs, "no typing frame was rate limited"
    for e in errs:
        assert_error(e, "EAGAIN", "rate_limited")
        assert isinstance(e.get("retry_after_ms"), int) and e["retry_after_ms"] > 0, e
    got = b.take_all("typing") + [b.expect("typing", conv=cid)]
    b.drain(0.3)
    got += b.take_all("typing")
    assert len(got) <= 5 - len(errs), f"rate-limited typing frames were forwarded: {got}"


def test_typing_in_group_reaches_all_others(server):
    a = server.connect("alice")
    b = server.connect("bob")
    c = server.connect("carol")
    conv = create_group(a, ["bob", "carol"])
    for d in (b, c):
        d.expect("msg", conv=conv["conv"], seq=1)
    b.send_json({"type": "typing", "conv": conv["conv"], "state": "start"})
    for d in (a, c):
        d.expect("typing", conv=conv["conv"], user="bob", state="start")


@pytest.mark.chatd_args("--limit", "typing_ttl_ms=600", "--limit", "typing_rate=100")
def test_repeated_start_extends_expiry(server):
    a1, a2, b, cid = _pair(server)
    a1.send_json({"type": "typing", "conv": cid, "state": "start"})
    b.expect("typing", conv=cid, user="alice", state="start")
    t0 = time.monotonic()
    time.sleep(0.4)
    a1.send_json({"type": "typing", "conv": cid, "state": "start"})
    b.expect("typing", timeout=3, conv=cid, user="alice", state="stop")
    assert time.monotonic() - t0 >= 0.8, "a repeated start did not extend the expiry"


@pytest.mark.chatd_args("--limit", "typing_ttl_ms=300", "--limit", "typing_rate=100")
def test_explicit_stop_cancels_expiry(server):
    a1, a2, b, cid = _pair(server)
    a1.send_json({"type": "typing", "conv": cid, "state": "start"})
    b.expect("typing", conv=cid, user="alice", state="start")
    a1.send_json({"type": "typing", "conv": cid, "state": "stop"})
    b.expect("typing", conv=cid, user="alice", state="stop")
    b.expect_none("typing", within=0.8, conv=cid, user="alice", state="stop")


def test_typing_with_id_is_not_answered_unless_refused(server):
    a1, a2, b, conv = _pair(server)
    a1.send_json({"type": "typing", "id": "t1", "conv": conv, "state": "start"})
    b.expect("typing", conv=conv, user="alice", state="start")
    a1.expect_none(None, within=0.5, re="t1")
    a1.send_json({"type": "typing", "id": "t2", "conv": 999999, "state": "start"})
    assert_error(a1.expect(None, re="t2"), "ENOTFOUND", "not_found")
