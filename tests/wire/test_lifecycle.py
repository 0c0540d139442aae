"""The message lifecycle on the wire (doc/protocol.md: "Edits, deletes, reactions, replies and
threads", "Disappearing messages", "Search"): each change is a message of its own in the
conversation's seq stream that names its target; the target shows its current state in history;
every refusal has its code and reason. Real sockets, a second party observing throughout."""

import json
import os
import sqlite3
import time

import pytest

from helpers import assert_error, cmid, create_group, history_all, send
from test_media import Http

THUMBS = "\U0001f44d"
HEART = "\u2764\ufe0f"


def direct(server):
    """alice and bob with a direct conversation holding one message of alice's."""
    a = server.connect("alice")
    b = server.connect("bob")
    ack = send(a, "the first text", to="bob")
    b.expect("msg", conv=ack["conv"], seq=ack["seq"])
    return a, b, ack["conv"], ack["seq"]


def by_seq(msgs):
    return {m["seq"]: m for m in msgs}


def ok(r, conv=None):
    assert r["type"] == "ok", r
    if conv is not None:
        assert r["conv"] == conv, r
    return r


def rows_holding(srv, *texts):
    """How many message rows of a stopped server's SQLite store hold each text (None for
    another store: what its rows hold is not checked here)."""
    path = os.path.join(srv.data_dir, "chat.db")
    if os.environ.get("CHATD_STORE") == "postgres" or "--memory" in srv.args:
        return None
    assert srv.proc.poll() is not None, "read the store of a stopped server"
    db = sqlite3.connect(path)
    try:
        return [db.execute("SELECT count(*) FROM messages WHERE instr(CAST(body AS TEXT), ?) > 0",
                           (t,)).fetchone()[0] for t in texts]
    finally:
        db.close()


def edits_show(c, conv, edits):
    """The text and edited time each edit row shows, read in pages that hold the target and in
    pages of one message (the target outside): both must agree."""
    seen = []
    for page in (50, 1):
        msgs = by_seq(history_all(c, conv, page=page))
        seen.append([(msgs[e].get("text"), msgs[e].get("edited")) for e in edits])
    assert seen[0] == seen[1], seen
    return seen[0]


# ---- edits ----------------------------------------------------------------------------------


def test_edit_reaches_members_and_history_shows_the_current_text(server):
    a, b, conv, seq = direct(server)
    r = ok(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "the fixed text"}), conv)
    assert r["seq"] == seq + 1 and isinstance(r["ts"], int), r
    ev = b.expect("msg", conv=conv, seq=seq + 1)
    assert ev["kind"] == "edit" and ev["target"] == seq and ev["from"] == "alice", ev
    assert ev["text"] == "the fixed text" and ev["edited"] == r["ts"], ev
    # the author's other devices hear of it too, the requesting one as well
    a.expect("msg", conv=conv, seq=seq + 1)
    msgs = by_seq(history_all(b, conv))
    assert msgs[seq]["text"] == "the fixed text" and msgs[seq]["edited"] == r["ts"], msgs
    assert msgs[seq + 1]["kind"] == "edit", msgs
    # an edit counts as nothing unread
    e = next(c for c in b.call({"type": "convs", "since": 0})["convs"] if c["conv"] == conv)
    assert e["unread"] == 1 and e["head"] == seq + 1, e
    assert e["last"]["seq"] == seq and e["last"]["text"] == "the fixed text", e


def test_every_edit_shows_the_latest_text_and_none_once_deleted(make_server):
    """Each edit row in history shows its target's text and edit time as they are now; the
    text an edit replaced is in no row of the store, and none of them is once deleted."""
    srv = make_server()
    a, b, conv, seq = direct(srv)
    r1 = ok(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "second words"}), conv)
    ev = b.expect("msg", conv=conv, seq=r1["seq"])
    assert (ev["text"], ev["edited"]) == ("second words", r1["ts"]), ev
    r2 = ok(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "third words"}), conv)
    ev = b.expect("msg", conv=conv, seq=r2["seq"])
    assert (ev["text"], ev["edited"]) == ("third words", r2["ts"]), ev
    assert edits_show(b, conv, [r1["seq"], r2["seq"]]) == [("third words", r2["ts"])] * 2
    assert by_seq(history_all(b, conv))[seq]["text"] == "third words"
    assert b.call({"type": "search", "query": "third"})["messages"][0]["seq"] == seq
    srv.stop()
    held = rows_holding(srv, "the first text", "second words", "third words")
    assert held in (None, [0, 0, 3]), held  # the target and both edits
    srv.start()
    a = srv.connect("alice")
    b = srv.connect("bob")
    ok(a.call({"type": "delete", "conv": conv, "seq": seq}), conv)
    assert edits_show(b, conv, [r1["seq"], r2["seq"]]) == [(None, None)] * 2
    srv.stop()
    assert rows_holding(srv, "second words", "third words") in (None, [0, 0])


@pytest.mark.single_node("restarts one chatd with other options")
def test_edits_across_keep_edits_restarts(make_server):
    """Edits stored with and without --keep-edits in one conversation: every edit shows the
    latest text; a kept text is in the store until its message is deleted."""
    srv = make_server()
    a, b, conv, seq = direct(srv)
    rs = [ok(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "version two"}))]
    for text, keep in (("version three", True), ("version four", False)):
        srv.stop()
        if keep:
            srv.args.append("--keep-edits")
        else:
            srv.args.remove("--keep-edits")
        srv.start()
        a = srv.connect("alice")
        b = srv.connect("bob")
        rs.append(ok(a.call({"type": "edit", "conv": conv, "seq": seq, "text": text})))
        ev = b.expect("msg", conv=conv, seq=rs[-1]["seq"])
        assert (ev["text"], ev["edited"]) == (text, rs[-1]["ts"]), ev
        assert edits_show(b, conv, [r["seq"] for r in rs]) == [(text, rs[-1]["ts"])] * len(rs)
    srv.stop()
    # the edit made with --keep-edits kept the text it replaced, for the host
    held = rows_holding(srv, "the first text", "version two", "version three", "version four")
    assert held in (None, [0, 1, 0, 3]), held
    srv.start()
    a = srv.connect("alice")
    b = srv.connect("bob")
    ok(a.call({"type": "delete", "conv": conv, "seq": seq}))
    assert edits_show(b, conv, [r["seq"] for r in rs]) == [(None, None)] * 3
    srv.stop()
    assert rows_holding(srv, "version two", "version four") in (None, [0, 0])


def test_edit_refusals(make_server):
    srv = make_server("--limit", "edit_window_ms=300")
    a, b, conv, seq = direct(srv)
    # not the author
    assert_error(b.call({"type": "edit", "conv": conv, "seq": seq, "text": "x"}), "EPERM",
                 "forbidden")
    # not a member
    n = srv.connect("nora")
    assert_error(n.call({"type": "edit", "conv": conv, "seq": seq, "text": "x"}), "EPERM",
                 "not_member")
    # no such message; bad fields
    assert_error(a.call({"type": "edit", "conv": conv, "seq": 99, "text": "x"}), "ENOTFOUND",
                 "not_found")
    assert_error(a.call({"type": "edit", "conv": conv, "seq": seq, "text": ""}), "EINVAL",
                 "bad_field")
    assert_error(a.call({"type": "edit", "conv": conv, "text": "x"}), "EINVAL",
                 "missing_field")
    assert_error(a.call({"type": "edit", "conv": conv, "seq": seq}), "EINVAL", "missing_field")
    # an event is no text message
    g = create_group(a, ["bob"])
    assert_error(a.call({"type": "edit", "conv": g["conv"], "seq": 1, "text": "x"}), "EINVAL",
                 "bad_field")
    # the window passed
    time.sleep(0.4)
    assert_error(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "late"}), "EPERM",
                 "too_late")
    b.expect_none("msg", within=0.3, conv=conv, kind="edit")
    assert by_seq(history_all(a, conv))[seq]["text"] == "the first text"


def test_changes_retried_with_their_cmid_are_stored_once(server):
    """A retry (its answer lost) is answered as the first time, even where what the first one
    changed would now refuse it: a deleted message, a reaction already on."""
    a, b, conv, seq = direct(server)
    for f in ({"type": "edit", "text": "v2"}, {"type": "react", "emoji": THUMBS},
              {"type": "delete"}):
        f.update(conv=conv, seq=seq, cmid=cmid(f["type"]))
        r1 = ok(a.call(f), conv)
        r2 = ok(a.call(f), conv)
        assert r2["seq"] == r1["seq"] and r2.get("dup") is True, (r1, r2)
    assert [m["kind"] for m in history_all(a, conv)] == ["text", "edit", "react", "delete"]


# ---- deletes for everyone --------------------------------------------------------------------


def test_delete_for_everyone_leaves_a_tombstone(server):
    a, b, conv, seq = direct(server)
    r = ok(a.call({"type": "delete", "conv": conv, "seq": seq}), conv)
    ev = b.expect("msg", conv=conv, seq=r["seq"])
    assert ev["kind"] == "delete" and ev["target"] == seq, ev
    msgs = by_seq(history_all(b, conv))
    t = msgs[seq]
    assert t["deleted"] is True and "text" not in t and t["kind"] == "text", t
    assert t["from"] == "alice" and t["seq"] == seq, t
    # deleting it again, editing or reacting to it: refused
    assert_error(a.call({"type": "delete", "conv": conv, "seq": seq}), "EINVAL", "bad_field")
    assert_error(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "x"}), "EINVAL",
                 "bad_field")
    assert_error(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": THUMBS}), "EINVAL",
                 "bad_field")
    # and it is not found any more
    r = b.call({"type": "search", "query": "first"})
    assert r["type"] == "search" and r["messages"] == [], r


def test_delete_refusals_and_admins(make_server):
    srv = make_server("--limit", "delete_window_ms=300")
    a = srv.connect("alice")
    b = srv.connect("bob")
    m = srv.connect("mia")
    g = create_group(a, ["bob", "mia", "adam"])
    conv = g["conv"]
    ok(a.call({"type": "group_role", "conv": conv, "user": "adam", "role": "admin"}))
    ad = srv.connect("adam")
    s_bob = send(b, "bob's words", conv=conv)["seq"]
    s_mia = send(m, "mia's words", conv=conv)["seq"]
    s_mia2 = send(m, "mia again", conv=conv)["seq"]
    # a member may not delete another's message; the author may
    assert_error(b.call({"type": "delete", "conv": conv, "seq": s_mia}), "EPERM", "forbidden")
    ok(b.call({"type": "delete", "conv": conv, "seq": s_bob}), conv)
    time.sleep(0.4)
    # past the window: the author may not, an admin and the owner may, any message
    assert_error(m.call({"type": "delete", "conv": conv, "seq": s_mia}), "EPERM", "too_late")
    ok(ad.call({"type": "delete", "conv": conv, "seq": s_mia}), conv)
    ok(a.call({"type": "delete", "conv": conv, "seq": s_mia2}), conv)
    msgs = by_seq(history_all(m, conv))
    assert all(msgs[s]["deleted"] is True for s in (s_bob, s_mia, s_mia2)), msgs
    # a non-member
    n = srv.connect("nora")
    assert_error(n.call({"type": "delete", "conv": conv, "seq": s_bob}), "EPERM", "not_member")


def test_deleting_the_last_message_of_a_media_removes_its_blob(server):
    hp = Http(server)
    a, b, conv, _ = direct(server)
    data = os.urandom(5000)
    mid = hp.upload("alice", data, "cat.jpg", "image/jpeg")
    media = {"id": mid, "mime": "image/jpeg", "size": len(data), "name": "cat.jpg"}
    s1 = a.call({"type": "send", "conv": conv, "cmid": cmid(), "kind": "media", "media": media})
    s2 = a.call({"type": "send", "conv": conv, "cmid": cmid(), "kind": "media", "media": media})
    assert s1["type"] == s2["type"] == "ack", (s1, s2)
    url = b.call({"type": "media_url", "media": mid})["url"]
    ok(a.call({"type": "delete", "conv": conv, "seq": s1["seq"]}), conv)
    # another message still refers to it
    st, _, body = hp.request("GET", url)
    assert st == 200 and body == data, st
    ok(a.call({"type": "delete", "conv": conv, "seq": s2["seq"]}), conv)
    assert_error(b.call({"type": "media_url", "media": mid}), "ENOTFOUND", "not_found")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # removed off the loop, after the commit
        st, _, _ = hp.request("GET", url)
        if st == 404:
            break
        time.sleep(0.05)
    assert st == 404, st
    t = by_seq(history_all(b, conv))[s2["seq"]]
    assert t["deleted"] is True and "media" not in t, t


# ---- reactions ------------------------------------------------------------------------------


def test_reactions_toggle_and_show_in_history(server):
    a, b, conv, seq = direct(server)
    r = ok(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": THUMBS}), conv)
    ev = a.expect("msg", conv=conv, seq=r["seq"])
    assert ev["kind"] == "react" and ev["target"] == seq and ev["emoji"] == THUMBS, ev
    assert ev["on"] is True and ev["from"] == "bob", ev
    ok(a.call({"type": "react", "conv": conv, "seq": seq, "emoji": THUMBS}), conv)
    ok(a.call({"type": "react", "conv": conv, "seq": seq, "emoji": HEART}), conv)
    # already on: nothing changes, nothing is appended
    r = ok(a.call({"type": "react", "conv": conv, "seq": seq, "emoji": HEART, "on": True}))
    assert r["changed"] is False and "seq" not in r, r
    msg = by_seq(history_all(b, conv))[seq]
    # by emoji (bytes); users in the order they reacted (within a millisecond, by id)
    assert [x["emoji"] for x in msg["reactions"]] == [HEART, THUMBS], msg
    assert msg["reactions"][0]["users"] == ["alice"], msg
    assert sorted(msg["reactions"][1]["users"]) == ["alice", "bob"], msg
    ok(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": THUMBS, "on": False}))
    msg = by_seq(history_all(b, conv))[seq]
    assert msg["reactions"] == [{"emoji": HEART, "users": ["alice"]},
                                {"emoji": THUMBS, "users": ["alice"]}], msg
    # reactions make nothing unread (and reacting reads the conversation up to the reaction)
    for c in (a, b):
        e = next(x for x in c.call({"type": "convs", "since": 0})["convs"] if x["conv"] == conv)
        assert e["unread"] == 0 and e["head"] == 5, e


def test_reaction_refusals(make_server):
    srv = make_server("--reactions", "+1,ok")
    a, b, conv, seq = direct(srv)
    assert_error(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": THUMBS}), "EINVAL",
                 "bad_field")
    ok(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": "+1"}), conv)
    assert_error(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": "ok", "on": 1}),
                 "EINVAL", "bad_field")
    n = srv.connect("nora")
    assert_error(n.call({"type": "react", "conv": conv, "seq": seq, "emoji": "ok"}), "EPERM",
                 "not_member")
    assert_error(b.call({"type": "react", "conv": conv, "seq": seq + 100, "emoji": "ok"}),
                 "ENOTFOUND", "not_found")


# ---- replies and threads ----------------------------------------------------------------------


def test_reply_quotes_its_target(server):
    a, b, conv, seq = direct(server)
    ack = send(b, "an answer", conv=conv, reply=seq)
    m = a.expect("msg", conv=conv, seq=ack["seq"])
    assert m["reply"] == {"seq": seq, "from": "alice", "kind": "text",
                          "preview": "the first text"}, m
    assert_error(b.call({"type": "send", "conv": conv, "cmid": cmid(), "text": "x",
                         "reply": 99}), "ENOTFOUND", "not_found")
    assert_error(b.call({"type": "send", "conv": conv, "cmid": cmid(), "text": "x",
                         "reply": "1"}), "EINVAL", "bad_field")
    # the quote follows its target: edited, then deleted
    ok(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "edited first"}))
    assert by_seq(history_all(b, conv))[ack["seq"]]["reply"]["preview"] == "edited first"
    ok(a.call({"type": "delete", "conv": conv, "seq": seq}))
    assert by_seq(history_all(b, conv))[ack["seq"]]["reply"] == {"seq": seq, "deleted": True}


def test_thread_has_its_own_page_and_unread(server):
    a = server.connect("alice")
    b = server.connect("bob")
    g = create_group(a, ["bob"])
    conv = g["conv"]
    root = send(a, "a topic", conv=conv)["seq"]
    r1 = send(b, "first reply", conv=conv, thread=root)["seq"]
    r2 = send(b, "second reply", conv=conv, thread=root, reply=r1)["seq"]
    m = a.expect("msg", conv=conv, seq=r2)
    assert m["thread"] == root and m["reply"]["seq"] == r1, m
    # the main conversation: nothing unread for alice, the thread replies do not count
    e = next(x for x in a.call({"type": "convs", "since": 0})["convs"] if x["conv"] == conv)
    assert e["unread"] == 0 and e["last"]["seq"] == root, e
    h = a.call({"type": "history", "conv": conv, "thread": root, "after": 0})
    assert h["type"] == "history" and h["thread"] == root and h["unread"] == 2, h
    assert h["root"]["seq"] == root and h["root"]["text"] == "a topic", h
    assert [x["seq"] for x in h["messages"]] == [r1, r2] and h["more"] is False, h
    # bob's own replies are read for him
    assert b.call({"type": "history", "conv": conv, "thread": root})["unread"] == 0
    # alice reads the thread: on her other devices too
    a2 = server.connect("alice", "d2")
    r = ok(a.call({"type": "receipt", "conv": conv, "thread": root, "read": r1}))
    assert r["read"] == r1 and r["unread"] == 1, r
    p = a2.expect("receipt", conv=conv, thread=root)
    assert p["read"] == r1 and p["user"] == "alice", p
    assert a.call({"type": "history", "conv": conv, "thread": root})["unread"] == 1
    # no thread in a thread, none on an event
    assert_error(a.call({"type": "send", "conv": conv, "cmid": cmid(), "text": "x",
                         "thread": r1}), "EINVAL", "bad_field")
    assert_error(a.call({"type": "send", "conv": conv, "cmid": cmid(), "text": "x",
                         "thread": 1}), "EINVAL", "bad_field")
    assert_error(a.call({"type": "history", "conv": conv, "thread": r1}), "EINVAL", "bad_field")
    # a reply in a thread answers a message of that thread
    other = send(a, "elsewhere", conv=conv)["seq"]
    assert_error(a.call({"type": "send", "conv": conv, "cmid": cmid(), "text": "x",
                         "thread": root, "reply": other}), "EINVAL", "bad_field")


# ---- disappearing messages ------------------------------------------------------------------


@pytest.mark.chatd_args("--limit", "expiry_sweep_ms=50")
def test_timer_makes_messages_disappear(server):
    a, b, conv, seq = direct(server)
    r = ok(b.call({"type": "conv_timer", "conv": conv, "ttl_ms": 1000}), conv)
    ev = a.expect("msg", conv=conv, seq=r["seq"])
    assert ev["kind"] == "event" and ev["event"] == {"type": "timer", "ttl_ms": 1000,
                                                     "by": "bob"}, ev
    e = next(x for x in a.call({"type": "convs", "since": 0})["convs"] if x["conv"] == conv)
    assert e["ttl_ms"] == 1000, e
    ack = send(a, "gone soon", conv=conv)
    m = b.expect("msg", conv=conv, seq=ack["seq"])
    assert ack["ts"] + 1000 == m["expires"], (ack, m)
    gone = b.expect("expired", conv=conv, timeout=10)
    assert gone["seqs"] == [ack["seq"]], gone
    a.expect("expired", conv=conv)
    t = by_seq(history_all(b, conv))[ack["seq"]]
    assert t["expired"] is True and "text" not in t, t
    # the message before the timer stays
    assert by_seq(history_all(b, conv))[seq]["text"] == "the first text"
    assert b.call({"type": "search", "query": "soon"})["messages"] == []
    # off again
    ok(a.call({"type": "conv_timer", "conv": conv, "ttl_ms": 0}))
    assert "expires" not in b.expect("msg", conv=conv, seq=send(a, "kept", conv=conv)["seq"])


@pytest.mark.chatd_args("--limit", "expiry_sweep_ms=50")
def test_an_edit_expires_with_its_message(server):
    a, b, conv, seq = direct(server)
    ok(b.call({"type": "conv_timer", "conv": conv, "ttl_ms": 1000}), conv)
    ack = send(a, "soon gone words", conv=conv)
    r = ok(a.call({"type": "edit", "conv": conv, "seq": ack["seq"], "text": "edited gone words"}))
    ev = b.expect("msg", conv=conv, seq=r["seq"])
    assert ev["text"] == "edited gone words", ev
    got = set()
    while len(got) < 2:
        got |= set(b.expect("expired", conv=conv, timeout=10)["seqs"])
    assert got == {ack["seq"], r["seq"]}, got
    assert edits_show(b, conv, [r["seq"]]) == [(None, None)]
    server.stop()
    assert rows_holding(server, "soon gone words", "edited gone words") in (None, [0, 0])


def test_timer_refusals(server):
    a = server.connect("alice")
    b = server.connect("bob")
    g = create_group(a, ["bob"])
    assert_error(b.call({"type": "conv_timer", "conv": g["conv"], "ttl_ms": 5000}), "EPERM",
                 "forbidden")
    assert_error(a.call({"type": "conv_timer", "conv": g["conv"], "ttl_ms": 5}), "EINVAL",
                 "bad_field")
    assert_error(a.call({"type": "conv_timer", "conv": g["conv"]}), "EINVAL", "missing_field")
    n = server.connect("nora")
    assert_error(n.call({"type": "conv_timer", "conv": g["conv"], "ttl_ms": 5000}), "EPERM",
                 "not_member")
    ok(a.call({"type": "conv_timer", "conv": g["conv"], "ttl_ms": 5000}))


@pytest.mark.chatd_args("--limit", "retention_ms=1000", "--limit", "expiry_sweep_ms=50")
def test_retention_limit_erases_old_messages(server):
    a, b, conv, seq = direct(server)
    # the message of direct() expires with everything else, its reaction with it
    ok(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": THUMBS}))
    gone = b.expect("expired", conv=conv, timeout=10)
    got = set(gone["seqs"])
    while len(got) < 2:
        got |= set(b.expect("expired", conv=conv, timeout=10)["seqs"])
    assert got == {seq, seq + 1}, got
    msgs = by_seq(history_all(b, conv))
    assert msgs[seq]["expired"] is True and "reactions" not in msgs[seq], msgs


# ---- search ---------------------------------------------------------------------------------


def test_search_over_my_conversations(server):
    a = server.connect("alice")
    b = server.connect("bob")
    c = server.connect("carol")
    d_ab = send(a, "Lunch at the harbour?", to="bob")
    d_ac = send(a, "harbour tomorrow, lunch maybe", to="carol")
    send(b, "a harbour far away", to="carol")  # alice is not in it
    r = a.call({"type": "search", "query": "LUNCH harbour"})
    assert r["type"] == "search" and r["more"] is False, r
    assert [(m["conv"], m["seq"]) for m in r["messages"]] == [
        (d_ac["conv"], d_ac["seq"]), (d_ab["conv"], d_ab["seq"])], r
    # paged newest first with the cursor
    r1 = a.call({"type": "search", "query": "harbour", "limit": 1})
    assert r1["more"] is True and r1["messages"][0]["conv"] == d_ac["conv"], r1
    r2 = a.call({"type": "search", "query": "harbour", "limit": 1, "before": r1["cursor"]})
    assert r2["more"] is False and r2["messages"][0]["conv"] == d_ab["conv"], r2
    # one conversation; one not mine
    r = a.call({"type": "search", "query": "harbour", "conv": d_ab["conv"]})
    assert [m["seq"] for m in r["messages"]] == [d_ab["seq"]], r
    n = server.connect("nora")
    assert_error(n.call({"type": "search", "query": "harbour", "conv": d_ab["conv"]}), "EPERM",
                 "not_member")
    assert n.call({"type": "search", "query": "harbour"})["messages"] == []
    # found as it is now: by the new words after an edit
    ok(a.call({"type": "edit", "conv": d_ab["conv"], "seq": d_ab["seq"], "text": "dinner"}))
    assert [m["seq"] for m in b.call({"type": "search", "query": "lunch"})["messages"]] == []
    hit = b.call({"type": "search", "query": "dinner"})["messages"]
    assert [m["text"] for m in hit] == ["dinner"] and hit[0]["edited"] > 0, hit
    assert_error(a.call({"type": "search", "query": ""}), "EINVAL", "bad_field")
    assert_error(a.call({"type": "search"}), "EINVAL", "missing_field")


def test_search_stops_at_removal(server):
    a = server.connect("alice")
    b = server.connect("bob")
    g = create_group(a, ["bob"])
    send(a, "the secret plan", conv=g["conv"])
    assert len(b.call({"type": "search", "query": "plan"})["messages"]) == 1
    ok(a.call({"type": "group_remove", "conv": g["conv"], "users": ["bob"]}))
    assert b.call({"type": "search", "query": "plan"})["messages"] == []
    # and a new member finds nothing from before joining
    ok(a.call({"type": "group_add", "conv": g["conv"], "users": ["dave"]}))
    d = server.connect("dave")
    assert d.call({"type": "search", "query": "plan"})["messages"] == []


@pytest.mark.chatd_args("--limit", "search_rate=1")
def test_search_is_rate_limited(server):
    a = server.connect("alice")
    assert a.call({"type": "search", "query": "x"})["type"] == "search"
    r = a.call({"type": "search", "query": "x"})
    assert_error(r, "EAGAIN", "rate_limited")
    assert r["retry_after_ms"] > 0, r


# ---- account deletion -----------------------------------------------------------------------


def test_user_delete_erases_and_leaves(make_server):
    srv = make_server()
    a, b, conv, seq = direct(srv)
    g = create_group(a, ["bob", "carol"])
    s_g = send(a, "group words of alice", conv=g["conv"])["seq"]
    s_e = ok(a.call({"type": "edit", "conv": conv, "seq": seq, "text": "alice edited this"}))["seq"]
    ok(b.call({"type": "react", "conv": conv, "seq": seq, "emoji": THUMBS}))
    s_b = send(b, "bob stays", conv=conv)["seq"]
    ok(a.call({"type": "react", "conv": conv, "seq": s_b, "emoji": HEART}))
    muted = a.call({"type": "mute", "conv": g["conv"]})
    if muted["type"] == "mute":  # a store that keeps mutes: they go with the account
        assert muted["muted_until"] == -1, muted
    tok = srv.token("alice")
    srv.stop()
    from conftest import run_cli, store_args
    r = run_cli(["user", "delete", "--data-dir", srv.data_dir, "alice"] +
                store_args(srv.data_dir))
    assert r.returncode == 0 and "user alice deleted" in r.stdout, r
    assert rows_holding(srv, "alice edited this") in (None, [0])  # nor in the edit's row
    srv.start()
    # alice's tokens are refused
    w = srv.ws()
    assert_error(w.call({"type": "auth", "v": 1, "token": tok}), "EAUTH", "auth_failed")
    b = srv.connect("bob")
    msgs = by_seq(history_all(b, conv))
    assert msgs[seq]["deleted"] is True and "text" not in msgs[seq], msgs
    assert msgs[s_e]["kind"] == "edit" and "text" not in msgs[s_e], msgs
    assert msgs[s_b]["text"] == "bob stays" and "reactions" not in msgs[s_b], msgs
    last = msgs[max(msgs)]
    assert last["kind"] == "event" and last["event"] == {"type": "account_deleted",
                                                         "by": "alice"}, last
    gm = by_seq(history_all(b, g["conv"]))
    assert gm[s_g]["deleted"] is True, gm
    e = next(x for x in b.call({"type": "convs", "since": 0})["convs"]
             if x["conv"] == g["conv"])
    roles = {m["user"]: m["role"] for m in e["members"]}
    assert roles == {"bob": "owner", "carol": "member"}, e  # the oldest member took over
    assert b.call({"type": "search", "query": "alice"})["messages"] == []
    # a new account of the same name, added back to the group, has none of the old one's mutes
    ok(b.call({"type": "group_add", "conv": g["conv"], "users": ["alice"]}))
    a2 = srv.ws()  # with a token minted after the deletion
    assert a2.call({"type": "auth", "v": 1,
                    "token": srv.token("alice", cache=False)})["type"] == "auth_ok"
    e = next(x for x in a2.call({"type": "convs", "since": 0})["convs"]
             if x["conv"] == g["conv"])
    assert "muted_until" not in e, e


# ---- erasure from the file's unused space ---------------------------------------------------


@pytest.mark.seconds(120)
@pytest.mark.chatd_args("--limit", "send_rate=100000", "--limit", "send_burst=100000")
def test_vacuum_leaves_no_erased_text_in_the_file(server):
    """SQLite's rebalancing can leave copies of moved rows in the unused space of pages, where
    an erasure does not reach (doc/security.md, Erasure); `chatd vacuum` on the stopped server
    rewrites every page. Only the SQLite store has such a file."""
    if os.environ.get("CHATD_STORE") == "postgres" or "--memory" in server.args:
        pytest.skip("only the SQLite store keeps a file of its own")
    a = server.connect("alice")
    # An edit that makes a row nearly as long as a row stays within its page (a 4 KiB page
    # keeps about 1000 bytes of a row) overflows the page, and the rebalancing moves the rows
    # around it to other pages, leaving their old bytes behind; then every row but the edited
    # ones is deleted. How many copies stay depends on the rows' exact sizes (800-byte edits
    # leave some where 3000 leave none, and the other way round once a row's columns change),
    # so each of several conversations takes another size.
    n, lengths, edited = 200, (800, 900, 1500, 3000), set(range(10, 200, 20))
    convs, gone = {}, []
    for k, long in enumerate(lengths):
        user = f"vac{k}"
        texts = [f"erase-{k}-{i:04d} " + "x" * 80 for i in range(n)]
        first = send(a, texts[0], to=user)
        conv = first["conv"]
        seqs = [first["seq"]] + [send(a, t, conv=conv)["seq"] for t in texts[1:]]
        for i in sorted(edited):
            ok(a.call({"type": "edit", "conv": conv, "seq": seqs[i], "text": "y" * long}), conv)
        for i in range(n):
            if i not in edited:
                ok(a.call({"type": "delete", "conv": conv, "seq": seqs[i]}), conv)
        gone += [texts[i] for i in range(n) if i not in edited]
        convs[conv] = (user, seqs, long)
    server.stop()
    assert rows_holding(server, *gone) == [0] * len(gone)
    path = os.path.join(server.data_dir, "chat.db")

    def in_file():
        with open(path, "rb") as f:
            blob = f.read()
        return sum(1 for t in gone if t[:16].encode() in blob)

    before = in_file()
    # The case vacuum is for.
    assert before > 0, "no erased text was left in unused page space: the test shows nothing"
    from conftest import run_cli, store_args
    r = run_cli(["vacuum", "--data-dir", server.data_dir] + store_args(server.data_dir))
    assert r.returncode == 0 and "rewritten" in r.stdout, r
    assert in_file() == 0, f"{before} erased texts in the file before, some still after"
    assert not os.path.exists(path + "-wal") or os.path.getsize(path + "-wal") == 0
    server.start()
    for conv, (user, seqs, long) in convs.items():
        msgs = by_seq(history_all(server.connect(user), conv))
        assert all(msgs[seqs[i]].get("deleted") is True for i in range(n) if i not in edited)
        assert all(msgs[seqs[i]].get("text") == "y" * long for i in edited)
