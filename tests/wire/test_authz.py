"""Authorization matrix (doc/security.md: Authorization; doc/protocol.md: Groups).

Every cell of roles x operations is asserted: the expected outcome is either OK (and its effect
is checked) or the exact error code and reason. The table MATRIX below is the policy; each cell
runs on a fresh group, so cells are independent.

Roles, in one group G created by alice:
  owner      alice
  admin      adam (made admin by alice)
  member     bob
  removed    rita (was a member; removed by alice)
  left       lena (was a member; left by herself)
  nonmember  nora (never in G)
  impostor   bob's own connection sending frames that name alice wherever a field could be
             mistaken for the actor ("from", "user", "device", "sender", "by"): the server must
             act as bob, never as alice (user X acting on Y's behalf)
  unauth     a connection that has not authenticated
mia is a plain member who observes fan-out; dave is a user outside G (the target of add).

Media cells (MEDIA_MATRIX, at the end of this file): HTTP uploads with each role's token (or
none), signed URLs (media_url) of media that mia uploaded and shared in G, downloads with the
actor's own URL, with mia's URL, and with mia's URL rewritten to the actor's scope, and
attempts to resume mia's upload session.
"""

import hashlib
import http.client
import json
import os
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import assert_error, cmid

ROLES = ["owner", "admin", "member", "removed", "left", "nonmember", "impostor", "unauth"]
ACTOR = {"owner": "alice", "admin": "adam", "member": "bob", "removed": "rita", "left": "lena",
         "nonmember": "nora", "impostor": "bob", "unauth": None}
SPOOF = {"from": "alice", "user": "alice", "device": "d1", "sender": "alice", "by": "alice"}

OK = "ok"
NOT_MEMBER = NM = ("EPERM", "not_member")
FORBIDDEN = FB = ("EPERM", "forbidden")
UNAUTH = NA = ("EAUTH", "not_authenticated")
BAD_FIELD = BAD = ("EINVAL", "bad_field")

MATRIX = {
    #                 owner admin member removed left nonmember impostor unauth
    "send":          [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "history":       [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "convs":         [OK,   OK,   OK,    OK,     OK,  OK,       OK,      NA],
    "delivered":     [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "read":          [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "typing":        [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "presence":      [OK,   OK,   OK,    OK,     OK,  OK,       OK,      NA],
    "group_create":  [OK,   OK,   OK,    OK,     OK,  OK,       OK,      NA],
    "rename":        [OK,   OK,   FB,    NM,     NM,  NM,       FB,      NA],
    "add":           [OK,   OK,   FB,    NM,     NM,  NM,       FB,      NA],
    "remove_member": [OK,   OK,   FB,    NM,     NM,  NM,       FB,      NA],
    "remove_admin":  [OK,   BAD,  FB,    NM,     NM,  NM,       FB,      NA],
    "remove_owner":  [BAD,  FB,   FB,    NM,     NM,  NM,       FB,      NA],
    "set_role":      [OK,   FB,   FB,    NM,     NM,  NM,       FB,      NA],
    "make_me_owner": [BAD,  FB,   FB,    NM,     NM,  NM,       FB,      NA],
    "leave":         [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    # the message lifecycle; the target is a message mia sent (own: the actor's own)
    "edit_own":      [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "edit_others":   [FB,   FB,   FB,    NM,     NM,  NM,       FB,      NA],
    "delete_own":    [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "delete_others": [OK,   OK,   FB,    NM,     NM,  NM,       FB,      NA],
    "react":         [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "conv_timer":    [OK,   OK,   FB,    NM,     NM,  NM,       FB,      NA],
    "thread_reply":  [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "thread_history": [OK,  OK,   OK,    NM,     NM,  NM,       OK,      NA],
    "search_conv":   [OK,   OK,   OK,    NM,     NM,  NM,       OK,      NA],
    # media operations: MEDIA_MATRIX below
}
# *_own: roles that cannot send act on one of mia's messages (they are refused first anyway).
# The impostor's own message is bob's: the one it sent as bob.
LIFECYCLE_OPS = ("edit_own", "edit_others", "delete_own", "delete_others", "react", "conv_timer",
                 "thread_reply", "thread_history", "search_conv")
SENDERS = ("owner", "admin", "member", "impostor")
# remove_admin by the admin is adam removing himself: refused, "use group_leave".
# make_me_owner: the actor asks group_role to make itself owner (privilege escalation).


def _cells():
    for op, row in MATRIX.items():
        assert len(row) == len(ROLES), op
        for role, want in zip(ROLES, row):
            yield pytest.param(op, role, want, id=f"{op}-{role}")


def _frame(op, conv, target=None):
    """The request of op on conversation conv (target: the message it acts on), as the actor
    sends it."""
    return {
        "send": {"type": "send", "conv": conv, "cmid": cmid("authz"), "text": "cell"},
        "history": {"type": "history", "conv": conv, "after": 0},
        "convs": {"type": "convs", "since": 0},
        "delivered": {"type": "receipt", "conv": conv, "delivered": 2},
        "read": {"type": "receipt", "conv": conv, "read": 2},
        "typing": {"type": "typing", "conv": conv, "state": "start"},
        "presence": {"type": "presence", "users": ["alice", "adam", "bob", "mia"]},
        "group_create": {"type": "group_create", "title": "Mine", "members": ["zoe"]},
        "rename": {"type": "group_update", "conv": conv, "title": "Renamed"},
        "add": {"type": "group_add", "conv": conv, "users": ["dave"]},
        "remove_member": {"type": "group_remove", "conv": conv, "users": ["mia"]},
        "remove_admin": {"type": "group_remove", "conv": conv, "users": ["adam"]},
        "remove_owner": {"type": "group_remove", "conv": conv, "users": ["alice"]},
        "set_role": {"type": "group_role", "conv": conv, "user": "mia", "role": "admin"},
        "make_me_owner": None,  # built per actor below
        "leave": {"type": "group_leave", "conv": conv},
        "edit_own": {"type": "edit", "conv": conv, "seq": target, "text": "edited cell"},
        "edit_others": {"type": "edit", "conv": conv, "seq": target, "text": "edited cell"},
        "delete_own": {"type": "delete", "conv": conv, "seq": target},
        "delete_others": {"type": "delete", "conv": conv, "seq": target},
        "react": {"type": "react", "conv": conv, "seq": target, "emoji": "\U0001f44d"},
        "conv_timer": {"type": "conv_timer", "conv": conv, "ttl_ms": 60000},
        "thread_reply": {"type": "send", "conv": conv, "cmid": cmid("authz"), "text": "cell",
                         "thread": target},
        "thread_history": {"type": "history", "conv": conv, "thread": target},
        "search_conv": {"type": "search", "conv": conv, "query": "lifecycle target"},
    }[op]


def _ok(r, conv):
    assert r["type"] == "ok" and r["conv"] == conv, r
    return r


class Cell:
    """One fresh group G: alice owner, adam admin, bob and mia members, rita removed, lena
    left."""

    def __init__(self, server):
        self.server = server
        self.conns = []
        self.owner = self.connect("alice")
        self.mia = self.connect("mia")
        r = self.owner.call({"type": "group_create", "title": "G",
                             "members": ["adam", "bob", "rita", "lena", "mia"]})
        assert r["type"] == "conv", r
        self.conv = r["conv"]["conv"]
        _ok(self.owner.call({"type": "group_role", "conv": self.conv, "user": "adam",
                             "role": "admin"}), self.conv)
        r = _ok(self.owner.call({"type": "group_remove", "conv": self.conv, "users": ["rita"]}),
                self.conv)
        self.removed_at = r["seq"]  # 3: created, role, removed
        lena = self.connect("lena")
        r = _ok(lena.call({"type": "group_leave", "conv": self.conv}), self.conv)
        lena.close()
        self.left_at = self.head = r["seq"]  # 4: left
        assert (self.removed_at, self.head) == (3, 4), r
        self.mia.expect("msg", conv=self.conv, seq=self.head)
        self.mia.backlog.clear()  # setup's frames; every cell checks what comes after

    def connect(self, user, device="d1"):
        c = self.server.connect(user, device)
        self.conns.append(c)
        return c

    def actor(self, role):
        if role == "unauth":
            c = self.server.ws()
            self.conns.append(c)
            return c
        if role == "owner":
            return self.owner
        return self.connect(ACTOR[role], "d2" if role == "impostor" else "d1")

    def members(self):
        r = self.owner.call({"type": "convs", "since": 0})
        entry = next(e for e in r["convs"] if e["conv"] == self.conv)
        return {m["user"]: m for m in entry["members"]}

    def close(self):
        for c in self.conns:
            try:
                c.close(timeout=0.5)
            except Exception:
                pass


def _check_ok(cell, op, role, actor, frame, r):
    """The effect of a successful cell."""
    conv, me = cell.conv, ACTOR[role]
    if op == "send":
        assert r["type"] == "ack" and r["conv"] == conv and r["seq"] == cell.head + 1, r
        m = cell.mia.expect("msg", conv=conv, seq=cell.head + 1)
        assert m["from"] == me and m["text"] == "cell", m
        if role == "impostor":
            assert m["device"] == "d2", m
    elif op == "history":
        assert r["type"] == "history" and r["conv"] == conv, r
        assert [m["seq"] for m in r["messages"]] == [1, 2, 3, 4], r
    elif op == "convs":
        assert r["type"] == "convs", r
        entry = [e for e in r["convs"] if e["conv"] == conv]
        if role == "nonmember":
            assert entry == [], f"a non-member sees the group: {r!r}"
            return
        assert len(entry) == 1, r
        e = entry[0]
        if role in ("removed", "left"):
            # the conversation as it was at departure: no members, no title, nothing after
            assert e["role"] == "none" and e["members"] == [] and e["title"] == "", e
            at, event = ((cell.removed_at, "removed") if role == "removed"
                         else (cell.left_at, "left"))
            assert e["head"] == at and e["last"]["event"]["type"] == event, e
        else:
            want = {"owner": "owner", "admin": "admin"}.get(role, "member")
            assert e["role"] == want and e["title"] == "G", e
            assert {m["user"] for m in e["members"]} == {"alice", "adam", "bob", "mia"}, e
    elif op in ("delivered", "read"):
        if role == "owner":
            # alice authored the setup events up to the removal, which marked them read for
            # her (lena's "left" is lena's): a receipt at 2 moves nothing
            assert r["type"] == "ok" and r["conv"] == conv and r[op] == cell.removed_at, r
            cell.mia.expect_none("receipt", within=0.2, conv=conv)
            return
        assert r["type"] == "ok" and r["conv"] == conv and r[op] == 2, r
        push = cell.mia.expect("receipt", conv=conv, user=me)
        assert push[op] == 2, push
        if role == "impostor":
            # the receipt moved bob's watermark, not alice's
            members = cell.members()
            assert members["bob"][op] >= 2, members
    elif op == "typing":
        assert r is None, f"typing has no answer on success: {r!r}"
        t = cell.mia.expect("typing", conv=conv, user=me)
        assert t["state"] == "start", t
    elif op == "presence":
        assert r["type"] == "presence", r
        known = {u["user"] for u in r["users"]}
        asked = set(frame["users"]) - {me}
        if role in ("removed", "left", "nonmember"):
            # not a contact of anyone in G: nothing about them is revealed
            assert known == set() and set(r["unknown"]) == set(frame["users"]), r
        else:
            assert asked <= known, r
    elif op == "group_create":
        assert r["type"] == "conv" and r["conv"]["role"] == "owner", r
        assert {m["user"] for m in r["conv"]["members"]} == {me, "zoe"}, r
    elif op in ("rename", "add", "remove_member", "remove_admin", "set_role", "leave"):
        _ok(r, conv)
        ev = cell.mia.expect("msg", conv=conv, seq=r["seq"]) if op != "remove_member" else None
        if ev is not None:
            assert ev["from"] == me and ev["kind"] == "event", ev
        members = cell.members() if not (op == "leave" and role == "owner") else None
        if op == "add":
            assert members["dave"]["role"] == "member", members
        elif op == "remove_member":
            assert "mia" not in members, members
        elif op == "remove_admin":
            assert "adam" not in members, members
        elif op == "set_role":
            assert members["mia"]["role"] == "admin", members
        elif op == "leave" and members is not None:
            assert me not in members, members
            assert members["alice"]["role"] == "owner", members  # the impostor left as bob
    elif op in ("edit_own", "delete_own", "delete_others", "react"):
        kind = {"edit_own": "edit", "delete_own": "delete", "delete_others": "delete",
                "react": "react"}[op]
        _ok(r, conv)
        ev = cell.mia.expect("msg", conv=conv, seq=r["seq"])
        assert ev["kind"] == kind and ev["from"] == me and ev["target"] == frame["seq"], ev
        if role == "impostor":
            assert ev["device"] == "d2", ev
    elif op == "conv_timer":
        _ok(r, conv)
        ev = cell.mia.expect("msg", conv=conv, seq=r["seq"])
        assert ev["event"] == {"type": "timer", "ttl_ms": 60000, "by": me}, ev
    elif op == "thread_reply":
        assert r["type"] == "ack" and r["conv"] == conv, r
        m = cell.mia.expect("msg", conv=conv, seq=r["seq"])
        assert m["from"] == me and m["thread"] == frame["thread"], m
    elif op == "thread_history":
        assert r["type"] == "history" and r["thread"] == frame["thread"], r
        assert r["root"]["from"] == "mia" and r["messages"] == [], r
    elif op == "search_conv":
        assert r["type"] == "search", r
        assert [(m["conv"], m["from"]) for m in r["messages"]] == [(conv, "mia")], r
    else:
        raise AssertionError(f"no effect check for {op}")


@pytest.fixture(scope="module")
def authz_server(tmp_path_factory):
    import conftest
    base = tmp_path_factory.mktemp("authz")
    srv = conftest.Server(base / "data", base / "logs")
    srv.start()
    yield srv
    conftest._check_teardown(srv)


@pytest.mark.parametrize("op,role,want", list(_cells()))
def test_authz_cell(authz_server, op, role, want):
    cell = Cell(authz_server)
    try:
        actor = cell.actor(role)
        target = None
        if op in LIFECYCLE_OPS:
            # the message acted on: the actor's own, or one of mia's
            own = op.endswith("_own") and role in SENDERS
            sender = actor if own else cell.mia
            ack = sender.call({"type": "send", "conv": cell.conv, "cmid": cmid("tgt"),
                               "text": "lifecycle target words"})
            assert ack["type"] == "ack", ack
            target = ack["seq"]
            if sender is not cell.mia:
                cell.mia.expect("msg", conv=cell.conv, seq=target)
            cell.mia.backlog.clear()
        if op == "make_me_owner":
            frame = {"type": "group_role", "conv": cell.conv, "user": ACTOR[role] or "alice",
                     "role": "owner"}
        else:
            frame = dict(_frame(op, cell.conv, target))
        if role == "impostor":
            frame.update({k: v for k, v in SPOOF.items() if k not in frame})
        if op == "typing" and want == OK:
            # typing answers only errors: send, then a request through the same writer queue
            # as the barrier (its answer comes after any error of the typing frame)
            frame["id"] = "t"
            actor.send_json(frame)
            barrier = actor.call({"type": "convs", "since": 0})
            assert barrier["type"] == "convs", barrier
            errs = actor.take_all("error")
            assert errs == [], errs
            r = None
        else:
            r = actor.call(frame)
        if want == OK:
            _check_ok(cell, op, role, actor, frame, r)
        else:
            code, reason = want
            assert_error(r, code, reason)
            # a refused request changes nothing that members can see
            if op in ("send", "typing", "rename", "add", "remove_member", "remove_admin",
                      "remove_owner", "set_role", "make_me_owner", "leave",
                      "delivered", "read") + LIFECYCLE_OPS:
                cell.mia.expect_none(None, within=0.2, conv=cell.conv)
    finally:
        cell.close()


def test_presence_subscription_only_reaches_current_members(authz_server):
    """When a member comes online, members are told; removed and non-members are not."""
    cell = Cell(authz_server)
    try:
        watchers = {role: cell.actor(role) for role in ("admin", "member", "removed", "left",
                                                         "nonmember")}
        watchers["owner"] = cell.owner
        newcomer = f"pia{cell.conv}"
        _ok(cell.owner.call({"type": "group_add", "conv": cell.conv, "users": [newcomer]}),
            cell.conv)
        cell.connect(newcomer)
        for role in ("owner", "admin", "member"):
            watchers[role].expect("presence", users=lambda us: any(
                u["user"] == newcomer and u["online"] for u in us))
        for role in ("removed", "left", "nonmember"):
            # the push precedes any later answer on the same connection
            assert watchers[role].call({"type": "convs", "since": 0})["type"] == "convs"
            leaked = [f for f in watchers[role].backlog if f.get("type") == "presence" and
                      any(u.get("user") == newcomer for u in f.get("users", []))]
            assert leaked == [], f"{role} learned presence of {newcomer}: {leaked!r}"
    finally:
        cell.close()


def test_second_auth_cannot_switch_user(authz_server):
    """A connection authenticated as bob cannot re-authenticate as alice."""
    bob = authz_server.connect("bob", "d3")
    r = bob.call({"type": "auth", "v": 1, "token": authz_server.token("alice")})
    assert_error(r, "EINVAL", "bad_field")
    r = bob.call({"type": "convs", "since": 0})
    assert r["type"] == "convs", r
    # still bob: a message to alice comes from bob
    a = authz_server.connect("alice", "d3")
    r = bob.call({"type": "send", "to": "alice", "cmid": cmid("sw"), "text": "who am i"})
    assert r["type"] == "ack", r
    m = a.expect("msg", conv=r["conv"], seq=r["seq"])
    assert m["from"] == "bob" and m["device"] == "d3", m


def test_direct_conversation_of_others_is_closed_to_third_user(authz_server):
    """alice<->bob's direct conversation: nora can neither read, write nor receipt it."""
    a = authz_server.connect("alice", "d4")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid("dm"), "text": "private"})
    assert r["type"] == "ack", r
    conv = r["conv"]
    n = authz_server.connect("nora", "d4")
    for frame in ({"type": "send", "conv": conv, "cmid": cmid("x"), "text": "x"},
                  {"type": "history", "conv": conv},
                  {"type": "receipt", "conv": conv, "read": 1},
                  {"type": "typing", "conv": conv, "state": "start"}):
        assert_error(n.call(frame), "EPERM", "not_member")
    for frame in ({"type": "group_add", "conv": conv, "users": ["dave"]},
                  {"type": "group_leave", "conv": conv}):
        assert_error(n.call(frame), "EPERM", "not_member")
    # a member cannot turn a direct conversation into a group either
    assert_error(a.call({"type": "group_add", "conv": conv, "users": ["dave"]}),
                 "EINVAL", "bad_field")


def test_unknown_conversation_is_not_found(authz_server):
    c = authz_server.connect("nora", "d5")
    assert_error(c.call({"type": "history", "conv": 999999}), "ENOTFOUND", "not_found")
    assert_error(c.call({"type": "send", "conv": 999999, "cmid": cmid("nf"), "text": "x"}),
                 "ENOTFOUND", "not_found")


@pytest.mark.parametrize("devices", [1, 2])
def test_removed_member_open_connection_stops_receiving_at_once(authz_server, devices):
    """Removal, then a send pipelined right behind it: the removed member's open connections
    get the removed event and nothing after it (no msg, typing or receipt)."""
    cell = Cell(authz_server)
    try:
        victims = [cell.connect("bob", f"v{i}") for i in range(devices)]
        conv = cell.conv
        cell.owner.send_json({"type": "group_remove", "id": "rm", "conv": conv,
                              "users": ["bob"]})
        cell.owner.send_json({"type": "send", "id": "s1", "conv": conv, "cmid": cmid("after"),
                              "text": "after removal"})
        cell.owner.send_json({"type": "typing", "conv": conv, "state": "start"})
        rm = cell.owner.expect(None, re="rm")
        _ok(rm, conv)
        ack = cell.owner.expect("ack", re="s1")
        assert ack["seq"] == rm["seq"] + 1, ack
        cell.mia.expect("msg", conv=conv, seq=ack["seq"])
        cell.mia.expect("typing", conv=conv, user="alice")
        r = cell.mia.call({"type": "receipt", "conv": conv, "read": ack["seq"]})
        assert r["type"] == "ok", r
        for v in victims:
            ev = v.expect("msg", conv=conv, seq=rm["seq"])
            assert ev["event"]["type"] == "removed" and ev["event"]["users"] == ["bob"], ev
            v.expect_none(None, within=0.5, conv=conv)
            assert_error(v.call({"type": "send", "conv": conv, "cmid": cmid("x"), "text": "x"}),
                         "EPERM", "not_member")
    finally:
        cell.close()


# ---- media (doc/media.md; doc/security.md: Authorization) -------------------------------------
#
# Uploads are not conversation-scoped: any valid token may create one (its own), none is 401.
# A signed URL is given to the uploader and to current members of a conversation the media was
# sent in. The URL itself is the download credential (a CDN serves it without asking the
# engine): whoever holds it downloads, token or not, until it expires. Its scope s= only names
# the user it was issued to (who leaked it); it is covered by the MAC, so a URL cannot be
# re-scoped. An upload session belongs to its creator: no one else may see or resume it.


def H(status, reason=None):
    """An HTTP outcome: the status, and the reason of the JSON error body (None: no body)."""
    return ("HTTP", status, reason)


H401 = H(401, "auth_failed")
H403 = H(403, "forbidden")
BADSIG = H(403, "bad_signature")

MEDIA_MATRIX = {
    #                          owner  admin  member removed left   nonmem impostor unauth
    "media_upload":            [OK,   OK,    OK,    OK,     OK,    OK,    OK,      H401],
    "media_url":               [OK,   OK,    OK,    FB,     FB,    FB,    OK,      NA],
    "media_url_unshared":      [FB,   FB,    FB,    FB,     FB,    FB,    FB,      NA],
    "media_download_own":      [OK,   OK,    OK,    FB,     FB,    FB,    OK,      NA],
    "media_download_other":    [OK,   OK,    OK,    OK,     OK,    OK,    OK,      OK],
    "media_download_rescoped": [BADSIG, BADSIG, BADSIG, BADSIG, BADSIG, BADSIG, BADSIG, BADSIG],
    "media_resume_other":      [H403, H403,  H403,  H403,   H403,  H403,  H403,    H401],
}
# media_url: of media mia uploaded and then sent in G (after rita's removal and lena's leave).
# media_url_unshared: of media mia uploaded and never sent anywhere: only mia may have a URL.
# media_download_own: the actor asks for a URL, then GETs it (refused: the media_url error).
# media_download_other: the actor GETs the URL mia obtained (s=mia), with its own token, if
#   any, in Authorization, which downloads ignore.
# media_download_rescoped: mia's URL with s=mia replaced by the actor (alice for unauth).
# media_resume_other: mia created an upload and sent half of it; the actor HEADs and PATCHes
#   it with its token (none for unauth); mia's upload stays as it was and she finishes it.
# impostor: bob's token and connection, with headers and frame fields naming alice.

SPOOF_HEADERS = {"From": "alice", "X-User": "alice", "X-Chat-User": "alice",
                 "X-Forwarded-User": "alice"}


def _media_cells():
    for op, row in MEDIA_MATRIX.items():
        assert len(row) == len(ROLES), op
        for role, want in zip(ROLES, row):
            yield pytest.param(op, role, want, id=f"{op}-{role}")


def _http(server, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def _auth(server, role):
    """The actor's HTTP headers: its bearer token (none when unauthenticated)."""
    if role == "unauth":
        return {}
    h = {"Authorization": "Bearer " + server.token(ACTOR[role], "d2" if role == "impostor"
                                                   else "d1")}
    if role == "impostor":
        h.update(SPOOF_HEADERS)
    return h


def _mia_auth(server):
    return {"Authorization": "Bearer " + server.token("mia")}


def _create(server, headers, length):
    h = dict(headers, **{"Upload-Length": str(length),
                         "Upload-Metadata": "name Y2VsbA==,type aW1hZ2UvcG5n"})  # cell, image/png
    return _http(server, "POST", "/media/uploads", headers=h)


def _patch(server, headers, loc, offset, data):
    h = dict(headers, **{"Upload-Offset": str(offset),
                         "Content-Type": "application/offset+octet-stream"})
    return _http(server, "PATCH", loc, body=data, headers=h)


def _mia_upload(server, data):
    st, hd, body = _create(server, _mia_auth(server), len(data))
    assert st == 201, (st, body)
    st, _, body = _patch(server, _mia_auth(server), hd["location"], 0, data)
    assert st == 201, (st, body)
    mid = json.loads(body)["media"]
    assert mid == hashlib.blake2b(data, digest_size=32).hexdigest()
    return mid


def _assert_http(got, want, what):
    st, _, body = got
    _, status, reason = want
    assert st == status, f"{what}: expected HTTP {status}, got {st} {body[:200]!r}"
    if reason is not None and body:
        err = json.loads(body)
        assert err.get("reason") == reason, f"{what}: expected reason {reason}: {err!r}"


def _media_url_frame(media_id, role):
    frame = {"type": "media_url", "media": media_id}
    if role == "impostor":
        frame.update(SPOOF)
    return frame


def _scope(url):
    return parse_qs(urlsplit(url).query)["s"][0]


def _media_cell(cell, op, role, want):
    server = cell.server
    data = os.urandom(3000)  # fresh bytes: no earlier cell's grants apply
    me = ACTOR[role]

    if op == "media_upload":
        st, hd, body = got = _create(server, _auth(server, role), len(data))
        if want != OK:
            _assert_http(got, want, op)
            return
        assert st == 201, (st, body)
        loc = hd["location"]
        # the upload is the actor's: it continues it; mia (anyone else) may not even look
        st, _, body = _patch(server, _auth(server, role), loc, 0, data)
        assert st == 201 and json.loads(body)["media"] == hashlib.blake2b(
            data, digest_size=32).hexdigest(), (st, body)
        st, _, _ = _http(server, "HEAD", loc, headers=_mia_auth(server))
        assert st == 403, st
        if role == "impostor":
            # made as bob, not alice: alice cannot look at it, bob's other device can
            alice = {"Authorization": "Bearer " + server.token("alice")}
            assert _http(server, "HEAD", loc, headers=alice)[0] == 403
            bob = {"Authorization": "Bearer " + server.token("bob", "d1")}
            st, hd, _ = _http(server, "HEAD", loc, headers=bob)
            assert st == 200 and "media-id" in hd, (st, hd)
        return

    if op == "media_resume_other":
        assert want != OK, "only the creator resumes an upload"
        st, hd, body = _create(server, _mia_auth(server), len(data))
        assert st == 201, (st, body)
        loc = hd["location"]
        assert _patch(server, _mia_auth(server), loc, 0, data[:1000])[0] == 204
        _assert_http(_http(server, "HEAD", loc, headers=_auth(server, role)),
                     (want[0], want[1], None), op + " HEAD")
        _assert_http(_patch(server, _auth(server, role), loc, 1000, b"EVIL" * 500), want,
                     op + " PATCH")
        st, hd, _ = _http(server, "HEAD", loc, headers=_mia_auth(server))
        assert st == 200 and hd["upload-offset"] == "1000", (st, hd)
        st, _, body = _patch(server, _mia_auth(server), loc, 1000, data[1000:])
        assert st == 201 and json.loads(body)["media"] == hashlib.blake2b(
            data, digest_size=32).hexdigest(), (st, body)
        return

    mid = _mia_upload(server, data)
    if op != "media_url_unshared":
        r = cell.mia.call({"type": "send", "conv": cell.conv, "cmid": cmid("media"),
                           "kind": "media", "media": {"id": mid, "mime": "image/png",
                                                      "size": len(data), "name": "cell"}})
        assert r["type"] == "ack" and r["seq"] == cell.head + 1, r
    else:
        # mia herself may have a URL of her unshared upload
        r = cell.mia.call({"type": "media_url", "media": mid})
        assert r["type"] == "media_url" and _scope(r["url"]) == "mia", r

    if op in ("media_url", "media_url_unshared", "media_download_own"):
        actor = cell.actor(role)
        r = actor.call(_media_url_frame(mid, role))
        if want != OK:
            assert_error(r, *want)
            return
        assert r["type"] == "media_url" and r["media"] == mid, r
        assert r["url"].startswith(f"/media/{mid}?"), r
        assert _scope(r["url"]) == me, r  # the impostor's URL names bob, never alice
        if op == "media_download_own":
            st, hd, body = _http(server, "GET", r["url"], headers=_auth(server, role))
            assert st == 200 and body == data, (st, body[:200])
        return

    # downloads with mia's URL
    r = cell.mia.call({"type": "media_url", "media": mid})
    assert r["type"] == "media_url" and _scope(r["url"]) == "mia", r
    url = r["url"]
    if op == "media_download_other":
        st, hd, body = _http(server, "GET", url, headers=_auth(server, role))
        assert want == OK
        assert st == 200 and body == data, (st, body[:200])
        return
    if op == "media_download_rescoped":
        forged = url.replace("s=mia", "s=" + (me or "alice"))
        assert forged != url
        _assert_http(_http(server, "GET", forged, headers=_auth(server, role)), want, op)
        return
    raise AssertionError(f"no media cell {op}")


@pytest.mark.parametrize("op,role,want", list(_media_cells()))
def test_authz_media_cell(authz_server, op, role, want):
    cell = Cell(authz_server)
    try:
        _media_cell(cell, op, role, want)
    finally:
        cell.close()
