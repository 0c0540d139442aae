"""Groups: membership, roles, events, fan-out (doc/protocol.md: Groups)."""

import pytest

from helpers import assert_error, cmid, create_group, event_is, history_all, send


def _ok(r, cid):
    assert r["type"] == "ok" and r["conv"] == cid and isinstance(r["seq"], int), r
    return r


def _group(server, members=("bob", "carol"), title="Team"):
    a = server.connect("alice")
    conns = {u: server.connect(u) for u in members}
    conv = create_group(a, members, title=title)
    cid = conv["conv"]
    for u in members:
        conns[u].expect("msg", conv=cid, seq=1)
    return a, conns, cid


def test_group_create_sends_created_event_to_every_member(server):
    a = server.connect("alice")
    b = server.connect("bob")
    c = server.connect("carol")
    r = a.call({"type": "group_create", "id": "11", "title": "Team", "members": ["bob", "carol"]})
    assert r["type"] == "conv" and r["re"] == "11", r
    conv = r["conv"]
    assert conv["kind"] == "group" and conv["title"] == "Team" and conv["role"] == "owner", r
    assert conv["head"] == 1, r
    roles = {m["user"]: m["role"] for m in conv["members"]}
    assert roles == {"alice": "owner", "bob": "member", "carol": "member"}, r
    for dev in (b, c):
        m = dev.expect("msg", conv=conv["conv"])
        assert m["seq"] == 1 and m["kind"] == "event" and m["from"] == "alice", m
        ev = m["event"]
        assert ev["type"] == "created" and ev["title"] == "Team", m
        assert {"bob", "carol"} <= set(ev["users"]), m


def test_group_create_retried_with_its_cmid_makes_one_group(server):
    a = server.connect("alice")
    b = server.connect("bob")
    req = {"type": "group_create", "title": "Team", "members": ["bob"], "cmid": "g-1"}
    r1 = a.call(dict(req))
    assert r1["type"] == "conv", r1
    cid = r1["conv"]["conv"]
    b.expect("msg", conv=cid, seq=1)
    # the same request again (a lost answer, a reconnect): the same group, nothing new
    a2 = server.connect("alice")
    r2 = a2.call(dict(req))
    assert r2["type"] == "conv" and r2["conv"]["conv"] == cid, r2
    assert r2["conv"]["head"] == 1 and r2["conv"]["role"] == "owner", r2
    b.expect_none("msg", within=0.4)
    assert [m["seq"] for m in history_all(b, cid)] == [1]
    convs = b.call({"type": "convs"})["convs"]
    assert [c["conv"] for c in convs] == [cid], convs
    # another client id, or the same one from another device, is another group
    r3 = a.call(dict(req, cmid="g-2"))
    r4 = server.connect("alice", device="d2").call(dict(req))
    ids = {cid, r3["conv"]["conv"], r4["conv"]["conv"]}
    assert len(ids) == 3, (r3, r4)


def test_group_create_bad_cmid(server):
    a = server.connect("alice")
    for bad in ("", "x" * 65, "with space", 7):
        r = a.call({"type": "group_create", "title": "T", "members": ["bob"], "cmid": bad})
        assert_error(r, "EINVAL", "bad_field")
    assert a.call({"type": "convs"})["convs"] == []


def test_member_cannot_add(server):
    a, conns, cid = _group(server)
    r = conns["bob"].call({"type": "group_add", "conv": cid, "users": ["dave"]})
    assert_error(r, "EPERM", "forbidden")
    a.expect_none("msg", within=0.4, conv=cid)


def test_member_cannot_rename_or_remove_or_set_role(server):
    a, conns, cid = _group(server)
    b = conns["bob"]
    assert_error(b.call({"type": "group_update", "conv": cid, "title": "x"}), "EPERM", "forbidden")
    assert_error(b.call({"type": "group_remove", "conv": cid, "users": ["carol"]}),
                 "EPERM", "forbidden")
    assert_error(b.call({"type": "group_role", "conv": cid, "user": "bob", "role": "admin"}),
                 "EPERM", "forbidden")


def test_owner_adds_member_who_gets_added_event_and_later_messages(server):
    a, conns, cid = _group(server)
    send(a, "before dave", conv=cid)
    d = server.connect("dave")
    r = _ok(a.call({"type": "group_add", "id": "13", "conv": cid, "users": ["dave"]}), cid)
    assert r["re"] == "13" and r["seq"] == 3, r
    for dev in (conns["bob"], conns["carol"], d):
        m = dev.expect("msg", conv=cid, seq=3)
        assert m["kind"] == "event" and m["event"]["type"] == "added", m
        assert m["event"]["users"] == ["dave"] and m["event"]["by"] == "alice", m
    s = send(conns["bob"], "after dave", conv=cid)
    m = d.expect("msg", conv=cid, seq=s["seq"])
    assert m["text"] == "after dave", m
    seqs = [x["seq"] for x in history_all(d, cid)]
    assert 2 not in seqs and 1 not in seqs, f"dave sees messages from before he joined: {seqs}"
    assert seqs[-1] == s["seq"]


def test_adding_existing_member_is_bad_field(server):
    a, conns, cid = _group(server)
    assert_error(a.call({"type": "group_add", "conv": cid, "users": ["bob"]}), "EINVAL", "bad_field")


def test_removing_non_member_is_bad_field(server):
    a, conns, cid = _group(server)
    assert_error(a.call({"type": "group_remove", "conv": cid, "users": ["zed"]}),
                 "EINVAL", "bad_field")


def test_rename_reaches_members_and_convs(server):
    a, conns, cid = _group(server)
    r = _ok(a.call({"type": "group_update", "conv": cid, "title": "Team 2026"}), cid)
    m = conns["carol"].expect("msg", conv=cid, seq=r["seq"])
    assert m["kind"] == "event" and m["event"]["type"] == "renamed", m
    assert m["event"]["title"] == "Team 2026", m
    cv = [c for c in conns["carol"].call({"type": "convs", "since": 0})["convs"]
          if c["conv"] == cid][0]
    assert cv["title"] == "Team 2026", cv


def test_admin_can_add_and_remove_members_but_not_owner(server):
    a, conns, cid = _group(server, members=("bob", "carol"))
    b = conns["bob"]
    r = _ok(a.call({"type": "group_role", "conv": cid, "user": "bob", "role": "admin"}), cid)
    m = conns["carol"].expect("msg", conv=cid, seq=r["seq"])
    assert m["kind"] == "event" and m["event"]["type"] == "role", m
    assert m["event"]["user"] == "bob" and m["event"]["role"] == "admin", m
    assert_error(b.call({"type": "group_remove", "conv": cid, "users": ["alice"]}),
                 "EPERM", "forbidden")
    server.connect("dave")
    _ok(b.call({"type": "group_add", "conv": cid, "users": ["dave"]}), cid)
    _ok(b.call({"type": "group_remove", "conv": cid, "users": ["carol"]}), cid)
    assert_error(b.call({"type": "group_role", "conv": cid, "user": "dave", "role": "admin"}),
                 "EPERM", "forbidden")


def test_admin_cannot_remove_another_admin(server):
    a, conns, cid = _group(server, members=("bob", "carol"))
    _ok(a.call({"type": "group_role", "conv": cid, "user": "bob", "role": "admin"}), cid)
    _ok(a.call({"type": "group_role", "conv": cid, "user": "carol", "role": "admin"}), cid)
    assert_error(conns["bob"].call({"type": "group_remove", "conv": cid, "users": ["carol"]}),
                 "EPERM", "forbidden")


def test_owner_cannot_remove_self(server):
    a, conns, cid = _group(server)
    r = a.call({"type": "group_remove", "conv": cid, "users": ["alice"]})
    assert r["type"] == "error", r


def test_removed_member_gets_removed_event_then_nothing(server):
    a, conns, cid = _group(server)
    b, c = conns["bob"], conns["carol"]
    r = _ok(a.call({"type": "group_remove", "id": "14", "conv": cid, "users": ["bob"]}), cid)
    m = b.expect("msg", conv=cid, seq=r["seq"])
    assert m["kind"] == "event" and m["event"]["type"] == "removed", m
    assert m["event"]["users"] == ["bob"], m
    c.expect("msg", conv=cid, seq=r["seq"])
    send(a, "secret after removal", conv=cid)
    c.send_json({"type": "typing", "conv": cid, "state": "start"})
    c.expect("msg", conv=cid, text="secret after removal")
    a.expect("typing", conv=cid, user="carol")
    b.expect_none(None, within=0.6, conv=cid)


def test_removed_member_cannot_send_read_receipt_or_type(server):
    a, conns, cid = _group(server)
    b = conns["bob"]
    r = _ok(a.call({"type": "group_remove", "conv": cid, "users": ["bob"]}), cid)
    b.expect("msg", conv=cid, seq=r["seq"])
    assert_error(b.call({"type": "send", "conv": cid, "cmid": cmid(), "text": "x"}),
                 "EPERM", "not_member")
    assert_error(b.call({"type": "history", "conv": cid}), "EPERM")
    assert_error(b.call({"type": "receipt", "conv": cid, "read": 1}), "EPERM")
    assert_error(b.call({"type": "typing", "conv": cid, "state": "start"}), "EPERM")
    a.expect_none("typing", within=0.3, user="bob")
    cv = [x for x in b.call({"type": "convs", "since": 0})["convs"] if x["conv"] == cid]
    assert len(cv) == 1 and cv[0]["role"] == "none", cv


def test_leave_sends_left_event(server):
    a, conns, cid = _group(server)
    r = _ok(conns["carol"].call({"type": "group_leave", "id": "15", "conv": cid}), cid)
    m = a.expect("msg", conv=cid, seq=r["seq"])
    assert m["kind"] == "event" and m["event"]["type"] == "left" and m["from"] == "carol", m
    conns["bob"].expect("msg", conv=cid, seq=r["seq"])
    assert_error(conns["carol"].call({"type": "send", "conv": cid, "cmid": cmid(), "text": "x"}),
                 "EPERM", "not_member")


def test_owner_leaving_passes_ownership_to_oldest_admin(server):
    a, conns, cid = _group(server, members=("bob", "carol"))
    _ok(a.call({"type": "group_role", "conv": cid, "user": "carol", "role": "admin"}), cid)
    r = _ok(a.call({"type": "group_leave", "conv": cid}), cid)
    b = conns["bob"]
    left = b.expect("msg", conv=cid, seq=r["seq"])
    assert left["event"]["type"] == "left", left
    role = b.expect("msg", conv=cid, seq=r["seq"] + 1)
    assert role["kind"] == "event" and role["event"]["type"] == "role", role
    assert role["event"]["user"] == "carol" and role["event"]["role"] == "owner", role
    cv = [x for x in conns["carol"].call({"type": "convs", "since": 0})["convs"]
          if x["conv"] == cid][0]
    assert cv["role"] == "owner", cv
    _ok(conns["carol"].call({"type": "group_update", "conv": cid, "title": "mine"}), cid)


def test_owner_leaving_without_admin_passes_ownership_to_oldest_member(server):
    a, conns, cid = _group(server, members=("bob",))
    c = server.connect("carol")
    _ok(a.call({"type": "group_add", "conv": cid, "users": ["carol"]}), cid)
    r = _ok(a.call({"type": "group_leave", "conv": cid}), cid)
    role = c.expect("msg", conv=cid, seq=r["seq"] + 1)
    assert role["event"]["type"] == "role" and role["event"]["user"] == "bob", role
    assert role["event"]["role"] == "owner", role
    _ok(conns["bob"].call({"type": "group_remove", "conv": cid, "users": ["carol"]}), cid)


def test_owner_leaving_passes_ownership_to_the_admin_member_for_longest(server):
    # Among admins, the member for longest wins (smallest joined), then the smallest user id:
    # bob and carol joined at the create (joined 0), aaron later; all three are admins.
    a, conns, cid = _group(server, members=("carol", "bob"))
    _ok(a.call({"type": "group_add", "conv": cid, "users": ["aaron"]}), cid)
    for u in ("aaron", "carol", "bob"):
        _ok(a.call({"type": "group_role", "conv": cid, "user": u, "role": "admin"}), cid)
    cv = [x for x in a.call({"type": "convs", "since": 0})["convs"] if x["conv"] == cid][0]
    assert cv["joined"] == 0, cv
    r = _ok(a.call({"type": "group_leave", "conv": cid}), cid)
    role = conns["carol"].expect("msg", conv=cid, seq=r["seq"] + 1)
    assert role["event"] == {"type": "role", "user": "bob", "role": "owner", "by": "alice"}, role
    # and the next time, carol (joined at the create) before aaron (joined later)
    r = _ok(conns["bob"].call({"type": "group_leave", "conv": cid}), cid)
    role = conns["carol"].expect("msg", conv=cid, seq=r["seq"] + 1)
    assert role["event"]["user"] == "carol" and role["event"]["role"] == "owner", role


@pytest.mark.chatd_args("--limit", "group_members=3")
def test_group_member_limit_counts_the_owner(server):
    a = server.connect("alice")
    conv = create_group(a, ["bob", "carol"])  # 3 with its owner: exactly the limit
    assert len(conv["members"]) == 3, conv
    assert_error(a.call({"type": "group_add", "conv": conv["conv"], "users": ["dave"]}),
                 "ELIMIT", "group_full")
    _ok(a.call({"type": "group_remove", "conv": conv["conv"], "users": ["carol"]}), conv["conv"])
    _ok(a.call({"type": "group_add", "conv": conv["conv"], "users": ["dave"]}), conv["conv"])


def test_role_owner_hands_over_and_old_owner_becomes_admin(server):
    a, conns, cid = _group(server)
    _ok(a.call({"type": "group_role", "conv": cid, "user": "bob", "role": "owner"}), cid)
    cv = [x for x in a.call({"type": "convs", "since": 0})["convs"] if x["conv"] == cid][0]
    roles = {m["user"]: m["role"] for m in cv["members"]}
    assert roles == {"alice": "admin", "bob": "owner", "carol": "member"}, cv
    assert cv["role"] == "admin", cv
    assert_error(a.call({"type": "group_role", "conv": cid, "user": "carol", "role": "admin"}),
                 "EPERM", "forbidden")


def test_group_role_bad_role_is_bad_field(server):
    a, conns, cid = _group(server)
    assert_error(a.call({"type": "group_role", "conv": cid, "user": "bob", "role": "god"}),
                 "EINVAL", "bad_field")


def test_group_request_on_direct_conversation_is_refused(server):
    a = server.connect("alice")
    r = send(a, "x", to="bob")
    resp = a.call({"type": "group_add", "conv": r["conv"], "users": ["carol"]})
    assert resp["type"] == "error", resp


@pytest.mark.chatd_args("--limit", "group_members=3")
def test_group_member_limit_group_full(server):
    a, conns, cid = _group(server, members=("bob", "carol"))
    assert_error(a.call({"type": "group_add", "conv": cid, "users": ["dave"]}), "ELIMIT", "group_full")
    r = a.call({"type": "group_create", "title": "big", "members": ["bob", "carol", "dave"]})
    assert_error(r, "ELIMIT", "group_full")
    conns["bob"].expect_none("msg", within=0.4, kind="event", event=event_is("added"))


def test_group_fan_out_reaches_each_member_connection_exactly_once(server):
    users = ["alice", "bob", "carol", "dave", "erin", "frank"]
    conns = {u: server.connect(u) for u in users}
    extra = server.connect("carol", "d2")
    conv = create_group(conns["alice"], users[1:])
    cid = conv["conv"]
    receivers = [conns[u] for u in users[1:]] + [extra]
    for c in receivers:
        c.expect("msg", conv=cid, seq=1)
    r = send(conns["bob"], "to all", conv=cid)
    for c in [conns[u] for u in users if u != "bob"] + [extra]:
        m = c.expect("msg", conv=cid, seq=r["seq"])
        assert m["text"] == "to all" and m["from"] == "bob", m
    for c in conns.values():
        c.expect_none("msg", within=0.3, conv=cid)
    extra.expect_none("msg", within=0.1, conv=cid)


def test_group_events_are_in_history_in_order(server):
    a, conns, cid = _group(server)
    send(a, "hello", conv=cid)
    _ok(a.call({"type": "group_update", "conv": cid, "title": "T2"}), cid)
    _ok(a.call({"type": "group_remove", "conv": cid, "users": ["carol"]}), cid)
    msgs = history_all(conns["bob"], cid)
    kinds = [(m["seq"], m["kind"], m.get("event", {}).get("type")) for m in msgs]
    assert kinds == [(1, "event", "created"), (2, "text", None), (3, "event", "renamed"),
                     (4, "event", "removed")], kinds
    assert all(m["cmid"] == "" for m in msgs if m["kind"] == "event"), msgs



def test_group_create_reaches_creators_other_device(server):
    a1 = server.connect("alice", "a1")
    a2 = server.connect("alice", "a2")
    server.connect("bob")
    conv = create_group(a1, ["bob"])
    m = a2.expect("msg", conv=conv["conv"], seq=1)
    assert m["kind"] == "event" and m["event"]["type"] == "created", m
    a1.expect_none("msg", within=0.4, conv=conv["conv"])


def test_readded_member_sees_only_messages_after_rejoin(server):
    a, conns, cid = _group(server)
    b = conns["bob"]
    _ok(a.call({"type": "group_remove", "conv": cid, "users": ["bob"]}), cid)
    hidden = send(a, "while bob was out", conv=cid)
    r = _ok(a.call({"type": "group_add", "conv": cid, "users": ["bob"]}), cid)
    b.expect("msg", conv=cid, seq=r["seq"])
    after = send(a, "welcome back", conv=cid)
    b.expect("msg", conv=cid, seq=after["seq"])
    seqs = [m["seq"] for m in history_all(b, cid)]
    assert hidden["seq"] not in seqs, f"re-added member sees what was sent while out: {seqs}"
    assert after["seq"] in seqs
    cv = [x for x in b.call({"type": "convs", "since": 0})["convs"] if x["conv"] == cid][0]
    assert cv["role"] == "member" and cv["joined"] >= hidden["seq"], cv


def test_removed_member_convs_shows_nothing_after_removal(server):
    a, conns, cid = _group(server)
    b = conns["bob"]
    r = _ok(a.call({"type": "group_remove", "conv": cid, "users": ["bob"]}), cid)
    b.expect("msg", conv=cid, seq=r["seq"])
    cur = b.call({"type": "convs", "since": 0})["cursor"]
    send(a, "after removal", conv=cid)
    _ok(a.call({"type": "group_update", "conv": cid, "title": "secret title"}), cid)
    later = b.call({"type": "convs", "since": cur})
    assert [x["conv"] for x in later["convs"]] == [], f"removed member sees later changes: {later}"
    cv = [x for x in b.call({"type": "convs", "since": 0})["convs"] if x["conv"] == cid][0]
    assert cv["role"] == "none", cv
    assert cv["head"] == r["seq"] and cv["last"]["seq"] == r["seq"], cv
    assert cv["title"] != "secret title", cv


def test_removed_member_is_no_longer_a_contact(server):
    a, conns, cid = _group(server, members=("bob",))
    _ok(a.call({"type": "group_remove", "conv": cid, "users": ["bob"]}), cid)
    r = a.call({"type": "presence", "users": ["bob"]})
    assert r["type"] == "presence" and r["users"] == [] and r["unknown"] == ["bob"], r


def test_group_add_with_one_existing_member_adds_nobody(server):
    a, conns, cid = _group(server)
    d = server.connect("dave")
    r = a.call({"type": "group_add", "conv": cid, "users": ["dave", "bob"]})
    assert_error(r, "EINVAL", "bad_field")
    d.expect_none("msg", within=0.4)
    assert d.call({"type": "convs", "since": 0})["convs"] == []
    conns["bob"].expect_none("msg", within=0.1, conv=cid)


def test_removed_member_gets_removed_event_on_every_device(server):
    a, conns, cid = _group(server)
    b2 = server.connect("bob", "b2")
    r = _ok(a.call({"type": "group_remove", "conv": cid, "users": ["bob"]}), cid)
    for dev in (conns["bob"], b2):
        m = dev.expect("msg", conv=cid, seq=r["seq"])
        assert m["event"]["type"] == "removed", m
    send(a, "later", conv=cid)
    b2.expect_none("msg", within=0.5, conv=cid)


def test_group_receipt_reaches_every_member(server):
    a, conns, cid = _group(server)
    s = send(a, "read me", conv=cid)
    for u in ("bob", "carol"):
        conns[u].expect("msg", conv=cid, seq=s["seq"])
    assert conns["bob"].call({"type": "receipt", "conv": cid, "read": s["seq"]})["type"] == "ok"
    for dev in (a, conns["carol"]):
        rc = dev.expect("receipt", conv=cid, user="bob")
        assert rc["read"] == s["seq"] and rc["delivered"] == s["seq"], rc
