"""Login flood and per-user limits (doc/protocol.md: Limits): the pending-login bound, failed
logins per account, and the send rate of a user summed over all of its connections. Each is
tested at a configured value, on one chatd: in a cluster every node keeps these limits on its
own (doc/cluster.md)."""

import time

import pytest

from helpers import assert_error, cmid


def _login(c, user, password, device="d", id_=None):
    f = {"type": "login", "v": 1, "user": user, "password": password, "device": device}
    if id_ is not None:
        f["id"] = id_
    return f


def test_login_flood_beyond_pending_limit_is_refused_at_once(make_server):
    srv = make_server("--limit", "logins_pending=2", "--limit", "login_rate=1000", start=False)
    srv.user_add("alice", "right password")
    srv = srv.start().first_node()
    flood = [srv.ws() for _ in range(8)]
    for i, c in enumerate(flood):  # all sent before any hash (~100 ms) can finish
        c.send_json(_login(c, "alice", "wrong", id_=f"l{i}"))
    answers = [c.expect(None, timeout=20, re=f"l{i}") for i, c in enumerate(flood)]
    refused = [a for a in answers if a.get("code") == "EAGAIN"]
    checked = [a for a in answers if a.get("code") == "EAUTH"]
    assert len(checked) == 2 and len(refused) == 6, answers
    for a in refused:
        assert_error(a, "EAGAIN", "rate_limited")
        assert a["retry_after_ms"] > 0, a
    for a in checked:
        assert_error(a, "EAUTH", "auth_failed")
    # once the queue drained, logins are served again
    c = srv.ws()
    r = c.call(_login(c, "alice", "right password"), timeout=15)
    assert r["type"] == "auth_ok", r


def test_failed_logins_per_account_are_limited(make_server):
    srv = make_server("--limit", "login_rate=3", start=False)
    srv.user_add("alice", "right password")
    srv.user_add("bob", "bob password")
    srv = srv.start().first_node()
    c = srv.ws()
    for _ in range(3):
        assert_error(c.call(_login(c, "alice", "guess"), timeout=15), "EAUTH", "auth_failed")
    # a new connection does not reset the account's count
    c2 = srv.ws()
    r = c2.call(_login(c2, "alice", "right password"), timeout=15)
    assert_error(r, "EAGAIN", "rate_limited")
    assert 0 < r["retry_after_ms"] <= 20000 + 1000, r  # one attempt back per 60 s / 3
    # other accounts are not affected
    c3 = srv.ws()
    r = c3.call(_login(c3, "bob", "bob password"), timeout=15)
    assert r["type"] == "auth_ok", r


def test_successful_logins_do_not_count(make_server):
    srv = make_server("--limit", "login_rate=2", start=False)
    srv.user_add("alice", "right password")
    srv.start()
    for i in range(4):
        c = srv.ws()
        r = c.call(_login(c, "alice", "right password", device=f"d{i}"), timeout=15)
        assert r["type"] == "auth_ok", (i, r)
        c.close()


@pytest.mark.chatd_args("--limit", "user_send_rate=1", "--limit", "user_send_burst=3")
def test_send_rate_is_per_user_across_connections(server):
    server = server.first_node()
    a1 = server.connect("alice", "d1")
    a2 = server.connect("alice", "d2")
    results = []
    for c in (a1, a2, a1, a2):
        results.append(c.call({"type": "send", "to": "bob", "cmid": cmid("u"), "text": "x"}))
    assert [r["type"] for r in results[:3]] == ["ack"] * 3, results
    assert_error(results[3], "EAGAIN", "rate_limited")
    assert 0 < results[3]["retry_after_ms"] <= 1000, results[3]
    # another user has its own budget
    b = server.connect("bob", "d1")
    r = b.call({"type": "send", "to": "alice", "cmid": cmid("b"), "text": "y"})
    assert r["type"] == "ack", r
    # and the budget refills at the configured rate
    time.sleep(1.05)
    r = a2.call({"type": "send", "to": "bob", "cmid": cmid("u"), "text": "z"})
    assert r["type"] == "ack", r
