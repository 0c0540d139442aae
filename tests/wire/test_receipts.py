"""Delivered/read watermarks (doc/protocol.md: Receipts)."""

from helpers import assert_error, assert_ts, is_int, send


def _setup(server, n=3, bob_devices=("b1",)):
    a = server.connect("alice", "a1")
    bs = [server.connect("bob", d) for d in bob_devices]
    acks = [send(a, f"m{i}", to="bob") for i in range(1, n + 1)]
    cid = acks[0]["conv"]
    for b in bs:
        for i in range(1, n + 1):
            b.expect("msg", conv=cid, seq=i)
    return a, bs, cid


def test_delivered_then_read_reach_sender_as_receipts(server):
    a, (b,), cid = _setup(server)
    r = b.call({"type": "receipt", "id": "5", "conv": cid, "delivered": 3})
    assert r == {"type": "ok", "re": "5", "conv": cid, "delivered": 3, "read": 0}, r
    rc = a.expect("receipt", conv=cid, user="bob")
    assert "re" not in rc and rc["delivered"] == 3 and rc["read"] == 0, rc
    assert_ts(rc["delivered_ts"])
    r = b.call({"type": "receipt", "id": "6", "conv": cid, "read": 3})
    assert r == {"type": "ok", "re": "6", "conv": cid, "delivered": 3, "read": 3}, r
    rc = a.expect("receipt", conv=cid, user="bob")
    assert rc["delivered"] == 3 and rc["read"] == 3, rc
    assert_ts(rc["read_ts"])
    assert rc["read_ts"] >= rc["delivered_ts"], rc


def test_read_backwards_keeps_watermark_and_broadcasts_nothing(server):
    a, (b,), cid = _setup(server)
    r = b.call({"type": "receipt", "conv": cid, "read": 3})
    assert r["type"] == "ok" and r["read"] == 3, r
    a.expect("receipt", conv=cid, user="bob", read=3)
    r = b.call({"type": "receipt", "conv": cid, "read": 2})
    assert r["type"] == "ok" and r["read"] == 3 and r["delivered"] == 3, r
    r = b.call({"type": "receipt", "conv": cid, "read": 3})
    assert r["type"] == "ok" and r["read"] == 3, r
    a.expect_none("receipt", within=0.6, user="bob")


def test_receipt_above_head_is_bad_field(server):
    a, (b,), cid = _setup(server)
    assert_error(b.call({"type": "receipt", "conv": cid, "read": 4}), "EINVAL", "bad_field")
    assert_error(b.call({"type": "receipt", "conv": cid, "delivered": 99}), "EINVAL", "bad_field")
    a.expect_none("receipt", within=0.4, user="bob")
    cv = b.call({"type": "convs", "since": 0})["convs"][0]
    assert cv["read"] == 0 and cv["delivered"] == 0 and cv["unread"] == 3, cv


def test_receipt_by_non_member_is_eperm(server):
    a, (b,), cid = _setup(server)
    m = server.connect("mallory")
    assert_error(m.call({"type": "receipt", "conv": cid, "read": 1}), "EPERM", "not_member")
    a.expect_none("receipt", within=0.4)


def test_receipt_without_watermark_is_missing_field(server):
    a, (b,), cid = _setup(server)
    assert_error(b.call({"type": "receipt", "conv": cid}), "EINVAL", "missing_field")


def test_receipt_negative_watermark_is_bad_field(server):
    a, (b,), cid = _setup(server)
    assert_error(b.call({"type": "receipt", "conv": cid, "read": -1}), "EINVAL", "bad_field")


def test_read_implies_delivered(server):
    a, (b,), cid = _setup(server)
    r = b.call({"type": "receipt", "conv": cid, "read": 2})
    assert r["type"] == "ok" and r["read"] == 2 and r["delivered"] == 2, r
    rc = a.expect("receipt", conv=cid, user="bob")
    assert rc["read"] == 2 and rc["delivered"] == 2, rc
    assert is_int(rc["delivered_ts"]) and is_int(rc["read_ts"]), rc


def test_read_on_one_device_reaches_users_other_device(server):
    a, (b1, b2), cid = _setup(server, bob_devices=("b1", "b2"))
    r = b1.call({"type": "receipt", "conv": cid, "read": 3})
    assert r["type"] == "ok", r
    rc = b2.expect("receipt", conv=cid, user="bob")
    assert rc["read"] == 3 and rc["delivered"] == 3, rc
    cv = b2.call({"type": "convs", "since": 0})["convs"][0]
    assert cv["unread"] == 0 and cv["read"] == 3 and cv["head"] == 3, cv


def test_watermarks_show_in_convs_members(server):
    a, (b,), cid = _setup(server)
    b.call({"type": "receipt", "conv": cid, "delivered": 3, "read": 1})
    a.expect("receipt", conv=cid, user="bob", read=1)
    cv = a.call({"type": "convs", "since": 0})["convs"][0]
    bob = [m for m in cv["members"] if m["user"] == "bob"][0]
    assert bob["delivered"] == 3 and bob["read"] == 1, cv
    assert is_int(bob["read_ts"]) and bob["read_ts"] > 0, cv
    cvb = b.call({"type": "convs", "since": 0})["convs"][0]
    assert cvb["unread"] == 2 and cvb["read"] == 1 and cvb["delivered"] == 3, cvb


def test_receipt_changes_conversation_for_convs_cursor(server):
    a, (b,), cid = _setup(server)
    cur = b.call({"type": "convs", "since": 0})["cursor"]
    b.call({"type": "receipt", "conv": cid, "read": 3})
    r = b.call({"type": "convs", "since": cur})
    assert [c["conv"] for c in r["convs"]] == [cid], r
    assert r["convs"][0]["unread"] == 0, r
