"""Offline catch-up, history paging, convs (doc/protocol.md: Conversations and sync)."""

import pytest

from helpers import assert_error, create_group, is_int, send

FAST = ("--limit", "send_rate=100000", "--limit", "send_burst=100000")


def pipeline_send(c, n, to=None, conv=None, prefix="m"):
    ids = []
    for i in range(n):
        f = {"type": "send", "id": f"{prefix}{i}", "cmid": f"{prefix}-{i}", "text": f"{prefix} {i}"}
        if to is not None:
            f["to"] = to
        else:
            f["conv"] = conv
        c.send_json(f)
        ids.append(f["id"])
    acks = []
    for rid in ids:
        r = c.expect(None, timeout=20, re=rid)
        assert r["type"] == "ack", r
        acks.append(r)
    return acks


# ---- offline catch-up ------------------------------------------------------------------------

@pytest.mark.chatd_args(*FAST)
def test_offline_user_catches_up_with_convs_and_history(server):
    a = server.connect("alice")
    acks = pipeline_send(a, 120, to="bob")
    cid = acks[0]["conv"]
    assert [x["seq"] for x in acks] == list(range(1, 121))
    b = server.connect("bob")
    r = b.call({"type": "convs", "since": 0, "limit": 100})
    assert r["type"] == "convs" and r["more"] is False, r
    assert is_int(r["cursor"]) and r["cursor"] > 0, r
    assert len(r["convs"]) == 1, r
    cv = r["convs"][0]
    assert cv["conv"] == cid and cv["kind"] == "direct", cv
    assert cv["head"] == 120 and cv["unread"] == 120 and cv["read"] == 0, cv
    assert cv["last"]["type"] == "msg" and cv["last"]["seq"] == 120, cv
    assert cv["last"]["text"] == "m 119" and cv["last"]["from"] == "alice", cv
    pages = []
    after = 0
    got = []
    while True:
        h = b.call({"type": "history", "conv": cid, "after": after, "limit": 50})
        assert h["type"] == "history" and h["conv"] == cid, h
        pages.append((len(h["messages"]), h["more"]))
        got += h["messages"]
        if not h["more"]:
            break
        after = h["messages"][-1]["seq"]
        assert len(pages) < 10
    assert pages == [(50, True), (50, True), (20, False)], pages
    assert [m["seq"] for m in got] == list(range(1, 121))
    assert [m["cmid"] for m in got] == [f"m-{i}" for i in range(120)]
    assert all(m["type"] == "msg" and m["from"] == "alice" and m["conv"] == cid for m in got)
    again = b.call({"type": "convs", "since": r["cursor"]})
    assert again["type"] == "convs" and again["convs"] == [] and again["more"] is False, again
    assert again["cursor"] == r["cursor"], again


def test_convs_since_auth_ok_cursor_returns_only_later_changes(server):
    a = server.connect("alice")
    r1 = send(a, "old", to="bob")
    b = server.connect("bob")
    cur = b.auth_ok["cursor"]
    assert b.call({"type": "convs", "since": cur})["convs"] == []
    b.close()
    r2 = send(a, "new", to="carol")
    r3 = send(a, "new for bob", to="bob")
    b = server.connect("bob")
    r = b.call({"type": "convs", "since": cur})
    assert [c["conv"] for c in r["convs"]] == [r1["conv"]], r
    assert r["convs"][0]["head"] == 2 and r["convs"][0]["last"]["seq"] == r3["seq"], r
    assert r2["conv"] not in [c["conv"] for c in r["convs"]]


# ---- history -----------------------------------------------------------------------------------

def _ten(server):
    a = server.connect("alice")
    acks = [send(a, f"t{i}", to="bob") for i in range(1, 11)]
    return a, acks[0]["conv"]


def test_history_default_is_newest_page_ascending(server):
    a, cid = _ten(server)
    h = a.call({"type": "history", "conv": cid})
    assert h["type"] == "history" and h["more"] is False, h
    assert [m["seq"] for m in h["messages"]] == list(range(1, 11))
    m = h["messages"][0]
    assert m["type"] == "msg" and m["conv"] == cid and m["from"] == "alice" and m["text"] == "t1"


def test_history_before_pages_backwards(server):
    a, cid = _ten(server)
    h = a.call({"type": "history", "conv": cid, "limit": 3})
    assert [m["seq"] for m in h["messages"]] == [8, 9, 10] and h["more"] is True, h
    h = a.call({"type": "history", "conv": cid, "before": 8, "limit": 3})
    assert [m["seq"] for m in h["messages"]] == [5, 6, 7] and h["more"] is True, h
    h = a.call({"type": "history", "conv": cid, "before": 4, "limit": 3})
    assert [m["seq"] for m in h["messages"]] == [1, 2, 3] and h["more"] is False, h
    h = a.call({"type": "history", "conv": cid, "before": 1, "limit": 3})
    assert h["messages"] == [] and h["more"] is False, h


def test_history_after_pages_forwards(server):
    a, cid = _ten(server)
    h = a.call({"type": "history", "conv": cid, "after": 4, "limit": 3})
    assert [m["seq"] for m in h["messages"]] == [5, 6, 7] and h["more"] is True, h
    h = a.call({"type": "history", "conv": cid, "after": 7, "limit": 100})
    assert [m["seq"] for m in h["messages"]] == [8, 9, 10] and h["more"] is False, h
    h = a.call({"type": "history", "conv": cid, "after": 10})
    assert h["messages"] == [] and h["more"] is False, h


@pytest.mark.chatd_args("--limit", "page_max=4")
def test_history_limit_is_clamped_to_page_size(server):
    a, cid = _ten(server)
    h = a.call({"type": "history", "conv": cid, "after": 0, "limit": 100})
    assert [m["seq"] for m in h["messages"]] == [1, 2, 3, 4] and h["more"] is True, h


def test_history_non_member_eperm(server):
    a, cid = _ten(server)
    m = server.connect("mallory")
    h = m.call({"type": "history", "conv": cid})
    assert_error(h, "EPERM", "not_member")


def test_history_unknown_conv_not_found(server):
    a = server.connect("alice")
    h = a.call({"type": "history", "conv": 424242})
    assert_error(h, "ENOTFOUND", "not_found")


def test_history_without_conv_is_missing_field(server):
    a = server.connect("alice")
    assert_error(a.call({"type": "history"}), "EINVAL", "missing_field")


# ---- convs -----------------------------------------------------------------------------------

def test_convs_lists_last_message_unread_and_members(server):
    a = server.connect("alice")
    b = server.connect("bob")
    r1 = send(a, "one", to="bob")
    r2 = send(a, "two", to="bob")
    b.expect("msg", seq=2)
    rb = b.call({"type": "convs", "since": 0})
    assert rb["type"] == "convs" and len(rb["convs"]) == 1, rb
    cv = rb["convs"][0]
    assert cv["conv"] == r1["conv"] and cv["kind"] == "direct", cv
    assert cv["head"] == 2 and cv["read"] == 0 and cv["unread"] == 2, cv
    assert cv["last"]["seq"] == 2 and cv["last"]["text"] == "two" and cv["last"]["cmid"] == r2["cmid"]
    mem = {m["user"]: m for m in cv["members"]}
    assert set(mem) == {"alice", "bob"}, cv
    # sending marks read and delivered for the sender
    assert mem["alice"]["read"] == 2 and mem["alice"]["delivered"] == 2, cv
    assert mem["bob"]["read"] == 0, cv
    ra = a.call({"type": "convs", "since": 0})
    cva = ra["convs"][0]
    assert cva["unread"] == 0 and cva["read"] == 2 and cva["delivered"] == 2, cva


def test_convs_since_cursor_returns_only_changed_conversations(server):
    a = server.connect("alice")
    rb = send(a, "b", to="bob")
    rc = send(a, "c", to="carol")
    rd = send(a, "d", to="dave")
    full = a.call({"type": "convs", "since": 0})
    assert [c["conv"] for c in full["convs"]] == [rb["conv"], rc["conv"], rd["conv"]], full
    cur = full["cursor"]
    send(a, "c2", conv=rc["conv"])
    send(a, "b2", conv=rb["conv"])
    r = a.call({"type": "convs", "since": cur})
    assert [c["conv"] for c in r["convs"]] == [rc["conv"], rb["conv"]], r
    assert r["cursor"] > cur
    assert a.call({"type": "convs", "since": r["cursor"]})["convs"] == []


def test_convs_limit_pages_with_more(server):
    a = server.connect("alice")
    convs = [send(a, "x", to=u)["conv"] for u in ("bob", "carol", "dave")]
    r1 = a.call({"type": "convs", "since": 0, "limit": 2})
    assert [c["conv"] for c in r1["convs"]] == convs[:2] and r1["more"] is True, r1
    r2 = a.call({"type": "convs", "since": r1["cursor"], "limit": 2})
    assert [c["conv"] for c in r2["convs"]] == convs[2:] and r2["more"] is False, r2


def test_convs_reports_group_title_role_and_joined(server):
    a = server.connect("alice")
    b = server.connect("bob")
    conv = create_group(a, ["bob"], title="Team")
    b.expect("msg", conv=conv["conv"], seq=1)
    r = b.call({"type": "convs", "since": 0})
    cv = [c for c in r["convs"] if c["conv"] == conv["conv"]]
    assert len(cv) == 1, r
    cv = cv[0]
    assert cv["kind"] == "group" and cv["title"] == "Team" and cv["role"] == "member", cv
    assert is_int(cv["joined"]) and cv["joined"] <= 1, cv
    roles = {m["user"]: m["role"] for m in cv["members"]}
    assert roles == {"alice": "owner", "bob": "member"}, cv
    assert cv["last"]["kind"] == "event" and cv["last"]["event"]["type"] == "created", cv


@pytest.mark.chatd_args("--limit", "page_max=2")
def test_convs_limit_is_clamped_to_page_size(server):
    a = server.connect("alice")
    convs = [send(a, "x", to=u)["conv"] for u in ("bob", "carol", "dave")]
    r = a.call({"type": "convs", "since": 0, "limit": 100})
    assert [c["conv"] for c in r["convs"]] == convs[:2] and r["more"] is True, r
    r2 = a.call({"type": "convs", "since": r["cursor"]})
    assert [c["conv"] for c in r2["convs"]] == convs[2:] and r2["more"] is False, r2


def test_convs_page_ending_at_a_left_conversation_skips_nothing(server):
    # A conversation I left is listed by the change of my own row (when I left), however much
    # it changes afterwards: a page ending there must not move the cursor past later changes.
    a = server.connect("alice")
    b = server.connect("bob")
    left = create_group(a, ["bob"], title="Left")["conv"]
    assert b.call({"type": "group_leave", "conv": left})["type"] == "ok"
    kept = create_group(a, ["bob"], title="Kept")["conv"]
    send(a, "after bob left", conv=left)
    r1 = b.call({"type": "convs", "since": 0, "limit": 1})
    assert [c["conv"] for c in r1["convs"]] == [left] and r1["more"] is True, r1
    r2 = b.call({"type": "convs", "since": r1["cursor"], "limit": 1})
    assert [c["conv"] for c in r2["convs"]] == [kept], (r1["cursor"], r2)
