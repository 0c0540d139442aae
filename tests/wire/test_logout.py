"""Logout: revocation of a session, end to end (doc/protocol.md: logout)."""

from helpers import assert_error


def _auth(server, tok):
    c = server.ws()
    return c, c.call({"type": "auth", "v": 1, "token": tok})


def test_logout_answers_ok_closes_1000_and_token_is_refused(server):
    tok = server.token("alice", "d1")
    c, r = _auth(server, tok)
    assert r["type"] == "auth_ok", r
    r = c.call({"type": "logout", "id": "bye"})
    assert r["type"] == "ok" and r["re"] == "bye", r
    assert c.close_code() == 1000
    c2, r = _auth(server, tok)
    assert_error(r, "EAUTH", "auth_failed")
    assert c2.close_code() == 1008


def test_logout_closes_other_connections_of_the_session_only(server):
    tok = server.token("alice", "d1")
    other_session = server.token("alice", "d1", cache=False)
    assert other_session != tok
    a1, r = _auth(server, tok)
    assert r["type"] == "auth_ok", r
    a2, r = _auth(server, tok)
    assert r["type"] == "auth_ok", r
    a3, r = _auth(server, other_session)
    assert r["type"] == "auth_ok", r
    assert a1.call({"type": "logout"})["type"] == "ok"
    assert a1.close_code() == 1000
    assert a2.close_code() == 1008, "the same session on another connection must be closed"
    r = a3.call({"type": "ping"})
    assert r["type"] == "pong", "another session of the same user must stay"
    _, r = _auth(server, other_session)
    assert r["type"] == "auth_ok", r


def test_logout_survives_restart(server):
    tok = server.token("alice", "d1")
    c, r = _auth(server, tok)
    assert r["type"] == "auth_ok", r
    assert c.call({"type": "logout"})["type"] == "ok"
    assert c.close_code() == 1000
    server.restart()
    c2, r = _auth(server, tok)
    assert_error(r, "EAUTH", "auth_failed")


def test_logout_of_login_token(make_server):
    srv = make_server(start=False)
    srv.user_add("alice", "pw pw pw")
    srv.start()
    c = srv.ws()
    r = c.call({"type": "login", "v": 1, "user": "alice", "password": "pw pw pw",
                "device": "phone"}, timeout=15)
    assert r["type"] == "auth_ok", r
    tok = r["token"]
    assert c.call({"type": "logout"})["type"] == "ok"
    assert c.close_code() == 1000
    _, r = _auth(srv, tok)
    assert_error(r, "EAUTH", "auth_failed")


def test_logout_before_auth_is_not_authenticated(server):
    c = server.ws()
    assert_error(c.call({"type": "logout", "id": "x"}), "EAUTH", "not_authenticated", re="x")


def test_connection_closes_when_its_token_expires(server):
    tok = server.token("alice", "d1", ttl=2)
    c, r = _auth(server, tok)
    assert r["type"] == "auth_ok", r
    # a connection with a longer-lived token of the same user is not affected
    c2, r = _auth(server, server.token("alice", "d2"))
    assert r["type"] == "auth_ok", r
    assert c.call({"type": "ping"})["type"] == "pong"
    assert c.close_code(timeout=6) == 1008
    assert c.close_reason == "token expired", c.close_reason
    assert c2.call({"type": "ping"})["type"] == "pong"
