"""Presence, settings, liveness (doc/protocol.md: Presence)."""

import time

import pytest

from helpers import assert_ts, is_int, now_ms, presence_of, send, shows

# A user whose last device left is shown online for presence_grace_ms (default 2 s; see
# test_presence_limits.py) before contacts are told. A short grace keeps these tests quick.
GRACE = ("--limit", "presence_grace_ms=200")
pytestmark = pytest.mark.chatd_args(*GRACE)


def _contacts(server):
    """alice and bob share a conversation; both disconnected (and past the grace) afterwards."""
    a = server.connect("alice")
    r = send(a, "hi", to="bob")
    a.close()
    time.sleep(0.5)
    return r["conv"]


def test_contact_coming_online_is_pushed(server):
    _contacts(server)
    b = server.connect("bob")
    assert b.initial_presence and shows("alice", False)(b.initial_presence["users"]), \
        b.initial_presence
    server.connect("alice")
    p = b.expect("presence", users=shows("alice", True))
    assert "re" not in p
    st = presence_of(p, "alice")
    assert st["online"] is True, p


def test_contact_going_offline_is_pushed_with_last_seen(server):
    _contacts(server)
    b = server.connect("bob")
    a = server.connect("alice")
    b.expect("presence", users=shows("alice", True))
    t0 = now_ms()
    a.close()
    p = b.expect("presence", users=shows("alice", False))
    st = presence_of(p, "alice")
    assert is_int(st.get("last_seen")), p
    assert t0 - 2000 <= st["last_seen"] <= now_ms() + 1000, p


def test_offline_only_when_last_device_leaves(server):
    _contacts(server)
    b = server.connect("bob")
    a1 = server.connect("alice", "a1")
    b.expect("presence", users=shows("alice", True))
    a2 = server.connect("alice", "a2")
    b.expect_none("presence", within=0.4, users=shows("alice", True))
    a1.close()
    b.expect_none("presence", within=0.6, users=shows("alice", False))
    a2.close()
    b.expect("presence", users=shows("alice", False))


def test_abrupt_disconnect_goes_offline(server):
    _contacts(server)
    b = server.connect("bob")
    a = server.connect("alice")
    b.expect("presence", users=shows("alice", True))
    a.abort()
    b.expect("presence", timeout=10, users=shows("alice", False))


def test_initial_presence_lists_contacts_with_last_seen(server):
    _contacts(server)
    time.sleep(0.2)
    b = server.connect("bob")
    p = b.initial_presence
    assert p is not None, "no presence frame after auth_ok"
    st = presence_of(p, "alice")
    assert st is not None and st["online"] is False, p
    assert_ts(st["last_seen"])
    assert presence_of(p, "bob") is None, "a user is not his own contact"


def test_non_contact_presence_is_not_pushed(server):
    _contacts(server)
    m = server.connect("mallory")
    assert m.initial_presence is not None and m.initial_presence["users"] == [], m.initial_presence
    server.connect("alice")
    m.expect_none("presence", within=0.6)


def test_presence_request_lists_non_contacts_as_unknown(server):
    _contacts(server)
    b = server.connect("bob")
    r = b.call({"type": "presence", "id": "17", "users": ["alice", "mallory"]})
    assert r["type"] == "presence" and r["re"] == "17", r
    assert [u["user"] for u in r["users"]] == ["alice"], r
    assert r["users"][0]["online"] is False, r
    assert r["unknown"] == ["mallory"], r


def test_presence_request_shows_online_contact(server):
    _contacts(server)
    b = server.connect("bob")
    server.connect("alice")
    r = b.call({"type": "presence", "users": ["alice"]})
    assert len(r["users"]) == 1 and r["users"][0]["user"] == "alice", r
    assert r["users"][0]["online"] is True, r
    assert r.get("unknown", []) == [], r


def test_hide_last_seen_omits_last_seen(server):
    _contacts(server)
    a = server.connect("alice")
    r = a.call({"type": "settings", "id": "18", "hide_last_seen": True})
    assert r == {"type": "ok", "re": "18"}, r
    b = server.connect("bob")
    a.close()
    p = b.expect("presence", users=shows("alice", False))
    assert "last_seen" not in presence_of(p, "alice"), p
    r = b.call({"type": "presence", "users": ["alice"]})
    assert "last_seen" not in r["users"][0], r


def test_hide_last_seen_is_persisted_across_restart(server):
    _contacts(server)
    a = server.connect("alice")
    assert a.call({"type": "settings", "hide_last_seen": True})["type"] == "ok"
    a.close()
    server.restart()
    b = server.connect("bob")
    p = b.initial_presence
    assert p is not None, "no presence frame after auth_ok"
    st = presence_of(p, "alice")
    assert st is not None and st["online"] is False and "last_seen" not in st, p


def test_settings_bad_value_is_bad_field(server):
    a = server.connect("alice")
    r = a.call({"type": "settings", "hide_last_seen": "yes"})
    assert r["type"] == "error" and r["code"] == "EINVAL" and r["reason"] == "bad_field", r


def test_application_ping_pong(server):
    a = server.connect("alice")
    r = a.call({"type": "ping", "id": "19"})
    assert r["type"] == "pong" and r["re"] == "19", r
    assert_ts(r["ts"])


def test_websocket_ping_is_answered(server):
    a = server.connect("alice")
    a.ws_ping(b"abc")


# chatd checks idle connections every quarter of the ping interval (at most every second);
# minimums 1 s / 2 s.
IDLE = ("--limit", "idle_ping_ms=1000", "--limit", "idle_hangup_ms=3000") + GRACE


@pytest.mark.chatd_args(*IDLE)
def test_silent_connection_is_pinged_then_dropped_and_goes_offline(server):
    _contacts(server)
    b = server.connect("bob")
    a = server.connect("alice", auto_pong=False)
    b.expect("presence", users=shows("alice", True))
    t0 = time.monotonic()
    while not a.closed and time.monotonic() - t0 < 12:
        a.drain(within=0.1)
        b.drain(within=0.1)   # bob reads, so he answers pings and is not idle
    assert a.closed, "silent connection was not dropped"
    assert a.pings, "server never pinged the idle connection"
    assert time.monotonic() - t0 >= 1.5, "dropped well before the hangup time"
    b.expect("presence", timeout=5, users=shows("alice", False))


@pytest.mark.chatd_args(*IDLE)
def test_sweep_reaches_every_silent_connection(server):
    # The idle sweep visits a tenth of the connections per tick: every silent one must still be
    # pinged and dropped, and one that answers must stay.
    silent = [server.connect("alice", device=f"d{i}", auto_pong=False) for i in range(30)]
    live = server.connect("bob")
    t0 = time.monotonic()
    while time.monotonic() - t0 < 12 and not all(c.closed for c in silent):
        for c in silent:
            if not c.closed:
                c.drain(within=0.01)
        live.drain(within=0.05)
    open_ = [c.device for c in silent if not c.closed]
    assert not open_, f"silent connections never dropped: {open_}"
    assert all(c.pings for c in silent), "a silent connection was dropped without a ping"
    assert not live.closed
    assert live.call({"type": "ping"})["type"] == "pong"


@pytest.mark.chatd_args(*IDLE)
def test_connection_answering_pings_is_kept(server):
    a = server.connect("alice")
    a.drain(within=6.0)
    assert a.pings, "server never pinged the idle connection"
    assert not a.closed
    assert a.call({"type": "ping"})["type"] == "pong"


def test_first_message_makes_contacts_for_presence(server):
    b = server.connect("bob")
    a = server.connect("alice")
    b.expect_none("presence", within=0.3, users=shows("alice", True))
    r = send(a, "hello stranger", to="bob")
    b.expect("msg", conv=r["conv"])
    a.close()
    p = b.expect("presence", users=shows("alice", False))
    assert is_int(presence_of(p, "alice").get("last_seen")), p


def test_presence_request_for_contact_offline_has_last_seen(server):
    _contacts(server)
    b = server.connect("bob")
    r = b.call({"type": "presence", "users": ["alice"]})
    st = r["users"][0]
    assert st["user"] == "alice" and st["online"] is False, r
    assert_ts(st["last_seen"])


def test_hide_last_seen_can_be_turned_off(server):
    _contacts(server)
    a = server.connect("alice")
    assert a.call({"type": "settings", "hide_last_seen": True})["type"] == "ok"
    assert a.call({"type": "settings", "hide_last_seen": False})["type"] == "ok"
    b = server.connect("bob")
    a.close()
    p = b.expect("presence", users=shows("alice", False))
    assert is_int(presence_of(p, "alice").get("last_seen")), p
