"""Connecting and authenticating (doc/protocol.md: Transport, Connecting and authenticating)."""

import time

import pytest

from helpers import assert_error, assert_ts, is_int, send


def test_handshake_selects_libchat_v1_subprotocol(server):
    c = server.ws()
    assert c.protocol == "libchat.v1"


def test_handshake_without_subprotocol_is_served(server):
    c = server.ws(subprotocol=None)
    r = c.call({"type": "auth", "v": 1, "token": server.token("alice", "d1")})
    assert r["type"] == "auth_ok", r


def test_token_auth_ok(server):
    c = server.ws()
    r = c.call({"type": "auth", "id": "1", "v": 1, "token": server.token("alice", "laptop")})
    assert r["type"] == "auth_ok", r
    assert r["re"] == "1" and r["v"] == 1
    assert r["user"] == "alice" and r["device"] == "laptop"
    assert_ts(r["ts"])
    assert is_int(r["cursor"]) and r["cursor"] >= 0
    assert "token" not in r, "token is present after login only"


def test_auth_ok_is_followed_by_presence(server):
    a = server.connect("alice")
    send(a, "hi", to="bob")
    b = server.ws()
    r = b.call({"type": "auth", "v": 1, "token": server.token("bob", "d1")})
    assert r["type"] == "auth_ok", r
    p = b.recv_json(timeout=5)
    assert p["type"] == "presence" and "re" not in p, p
    alice = [u for u in p["users"] if u["user"] == "alice"]
    assert len(alice) == 1 and alice[0]["online"] is True, p


def test_auth_ok_presence_sent_even_with_no_contacts(server):
    c = server.ws()
    r = c.call({"type": "auth", "v": 1, "token": server.token("loner", "d1")})
    assert r["type"] == "auth_ok", r
    p = c.recv_json(timeout=5)
    assert p["type"] == "presence" and p["users"] == [], p


def test_integer_request_id_is_echoed(server):
    c = server.ws()
    c.send_json({"type": "auth", "id": 7, "v": 1, "token": server.token("alice", "d1")})
    r = c.expect("auth_ok", re=7)
    assert r["re"] == 7 and is_int(r["re"])


def _tamper(tok):
    i = len(tok) // 2
    ch = "A" if tok[i] != "A" else "B"
    return tok[:i] + ch + tok[i + 1:]


def test_tampered_token_auth_failed_and_close_1008(server):
    c = server.ws()
    r = c.call({"type": "auth", "id": "1", "v": 1, "token": _tamper(server.token("alice"))})
    assert_error(r, "EAUTH", "auth_failed", re="1")
    assert c.close_code() == 1008


def test_token_of_another_server_key_is_refused(server, make_server):
    other = make_server()
    forged = other.token("alice", "d1")
    assert forged != server.token("alice", "d1")
    c = server.ws()
    r = c.call({"type": "auth", "v": 1, "token": forged})
    assert_error(r, "EAUTH", "auth_failed")
    assert c.close_code() == 1008


def test_garbage_token_auth_failed_and_close_1008(server):
    c = server.ws()
    r = c.call({"type": "auth", "v": 1, "token": "not-a-token"})
    assert_error(r, "EAUTH", "auth_failed")
    assert c.close_code() == 1008


def test_expired_token_auth_failed(server):
    tok = server.token("alice", "d1", ttl=1)
    time.sleep(2.1)
    c = server.ws()
    r = c.call({"type": "auth", "v": 1, "token": tok})
    assert_error(r, "EAUTH", "auth_failed")
    assert c.close_code() == 1008


def test_token_with_ttl_works_before_expiry(server):
    tok = server.token("alice", "d1", ttl=60)
    c = server.ws()
    r = c.call({"type": "auth", "v": 1, "token": tok})
    assert r["type"] == "auth_ok" and r["user"] == "alice", r


@pytest.mark.chatd_args("--limit", "auth_deadline_ms=500")
def test_no_auth_within_deadline_closes_1008(server):
    c = server.ws()
    t0 = time.monotonic()
    assert c.close_code(timeout=5) == 1008
    assert time.monotonic() - t0 >= 0.35, "closed before the auth deadline"


@pytest.mark.chatd_args("--limit", "auth_deadline_ms=800")
def test_auth_deadline_runs_per_connection_from_its_arrival(server):
    # Unauthenticated connections wait in arrival order behind one timer: each still gets its
    # own deadline, and one that authenticates (here the middle one) leaves the queue.
    a = server.ws()
    time.sleep(0.3)
    b = server.ws()
    time.sleep(0.3)
    c = server.ws()
    r = b.call({"type": "auth", "v": 1, "token": server.token("bob")})
    assert r["type"] == "auth_ok", r
    t0 = time.monotonic()
    assert a.close_code(timeout=5) == 1008
    t_a = time.monotonic() - t0
    assert c.close_code(timeout=5) == 1008
    t_c = time.monotonic() - t0
    assert t_a < 0.5, f"the first connection closed {t_a:.2f}s after the third arrived"
    assert t_c >= 0.5, f"the third connection closed early ({t_c:.2f}s after it arrived)"
    assert b.call({"type": "ping"})["type"] == "pong"


@pytest.mark.chatd_args("--limit", "auth_deadline_ms=500")
def test_authenticated_connection_outlives_auth_deadline(server):
    c = server.connect("alice")
    time.sleep(1.0)
    r = c.call({"type": "ping"})
    assert r["type"] == "pong", r


def test_request_before_auth_not_authenticated(server):
    c = server.ws()
    r = c.call({"type": "ping", "id": "p"})
    assert_error(r, "EAUTH", "not_authenticated", re="p")
    r = c.call({"type": "send", "to": "bob", "cmid": "x", "text": "hi"})
    assert_error(r, "EAUTH", "not_authenticated")
    # the connection stays open and may still authenticate
    r = c.call({"type": "auth", "v": 1, "token": server.token("alice")})
    assert r["type"] == "auth_ok", r


def test_bad_version_eversion_and_close_1002(server):
    c = server.ws()
    r = c.call({"type": "auth", "id": "v", "v": 2, "token": server.token("alice")})
    assert_error(r, "EVERSION", "bad_version", re="v")
    assert c.close_code() == 1002


def test_login_right_password_returns_working_token(make_server):
    srv = make_server(start=False)
    srv.user_add("alice", "correct horse")
    srv.start()
    c = srv.ws()
    r = c.call({"type": "login", "id": "1", "v": 1, "user": "alice",
                "password": "correct horse", "device": "laptop"}, timeout=15)
    assert r["type"] == "auth_ok", r
    assert r["re"] == "1" and r["user"] == "alice" and r["device"] == "laptop", r
    assert isinstance(r["token"], str) and r["token"], r
    c2 = srv.ws()
    r2 = c2.call({"type": "auth", "v": 1, "token": r["token"]})
    assert r2["type"] == "auth_ok", r2
    assert r2["user"] == "alice" and r2["device"] == "laptop", r2


def test_login_wrong_password_keeps_connection_for_retry(make_server):
    srv = make_server(start=False)
    srv.user_add("alice", "correct horse")
    srv.start()
    c = srv.ws()
    r = c.call({"type": "login", "id": "1", "v": 1, "user": "alice",
                "password": "wrong", "device": "laptop"}, timeout=15)
    assert_error(r, "EAUTH", "auth_failed", re="1")
    r = c.call({"type": "login", "id": "2", "v": 1, "user": "alice",
                "password": "correct horse", "device": "laptop"}, timeout=15)
    assert r["type"] == "auth_ok" and r["re"] == "2", r
    assert r["user"] == "alice"


def test_login_unknown_user_auth_failed(make_server):
    srv = make_server(start=False)
    srv.user_add("alice", "pw1")
    srv.start()
    c = srv.ws()
    r = c.call({"type": "login", "v": 1, "user": "mallory", "password": "pw1",
                "device": "x"}, timeout=15)
    assert_error(r, "EAUTH", "auth_failed")


def test_user_added_while_running_can_log_in(server):
    server.user_add("carol", "s3cret pass")
    c = server.ws()
    r = c.call({"type": "login", "v": 1, "user": "carol", "password": "s3cret pass",
                "device": "phone"}, timeout=15)
    assert r["type"] == "auth_ok" and r["user"] == "carol", r



def test_failed_login_does_not_extend_auth_deadline(make_server):
    srv = make_server("--limit", "auth_deadline_ms=1500", start=False)
    srv.user_add("alice", "right")
    srv.start()
    c = srv.ws()
    t0 = time.monotonic()
    r = c.call({"type": "login", "v": 1, "user": "alice", "password": "wrong", "device": "x"},
               timeout=15)
    assert_error(r, "EAUTH", "auth_failed")
    assert c.close_code(timeout=10) == 1008
    assert time.monotonic() - t0 < 8


def test_login_bad_version_eversion(make_server):
    srv = make_server(start=False)
    srv.user_add("alice", "pw")
    srv.start()
    c = srv.ws()
    r = c.call({"type": "login", "v": 99, "user": "alice", "password": "pw", "device": "x"},
               timeout=15)
    assert_error(r, "EVERSION", "bad_version")
    assert c.close_code() == 1002
