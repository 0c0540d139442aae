"""Push notifications through the webhook notifier (doc/protocol.md: Push)."""

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import create_group, is_int, send


class Hook:
    def __init__(self):
        self.q = queue.Queue()
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                try:
                    obj = json.loads(body)
                except ValueError:
                    obj = {"_invalid_json": body.decode("utf-8", "replace")}
                hook.q.put((self.path, self.headers.get("Content-Type", ""), obj))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/push"
        self.t = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.t.start()

    def next(self, timeout=5.0):
        try:
            path, ctype, obj = self.q.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no push within {timeout}s") from None
        assert path == "/push", path
        assert "json" in ctype.lower(), f"webhook Content-Type {ctype!r}"
        return obj

    def none(self, within=1.0, **match):
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                _, _, obj = self.q.get(timeout=left)
            except queue.Empty:
                return
            if all(obj.get(k) == v for k, v in match.items()):
                raise AssertionError(f"unexpected push {obj!r}")

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.stop()


def test_push_to_offline_recipient_counts_unread(make_server, hook):
    srv = make_server("--webhook", hook.url)
    a = srv.connect("alice")
    r1 = send(a, "hi Bob", to="bob")
    p = hook.next()
    assert p["user"] == "bob" and p["sender"] == "alice", p
    assert p["conv"] == r1["conv"] and p["seq"] == 1 and p["unread"] == 1, p
    assert p["conv_kind"] == "direct" and p["kind"] == "text", p
    assert is_int(p["ts"]) and p["ts"] == r1["ts"], p
    assert p.get("preview", "") == "", f"preview without --push-previews: {p!r}"
    r2 = send(a, "second", to="bob")
    p = hook.next()
    assert p["user"] == "bob" and p["seq"] == r2["seq"] == 2 and p["unread"] == 2, p
    hook.none(within=0.8, user="alice")


def test_push_preview_with_push_previews(make_server, hook):
    srv = make_server("--webhook", hook.url, "--push-previews")
    a = srv.connect("alice")
    send(a, "hi Bob", to="bob")
    p = hook.next()
    assert p["user"] == "bob" and p["preview"] == "hi Bob", p


def test_no_push_for_online_recipient(make_server, hook):
    srv = make_server("--webhook", hook.url)
    a = srv.connect("alice")
    b = srv.connect("bob", "phone")
    r = send(a, "you are online", to="bob")
    b.expect("msg", conv=r["conv"])
    hook.none(within=1.0, user="bob")


def test_push_resumes_when_recipient_goes_offline_with_unread_after_read(make_server, hook):
    srv = make_server("--webhook", hook.url)
    a = srv.connect("alice")
    b = srv.connect("bob")
    r = send(a, "1", to="bob")
    send(a, "2", to="bob")
    b.expect("msg", seq=2)
    assert b.call({"type": "receipt", "conv": r["conv"], "read": 1})["type"] == "ok"
    hook.none(within=0.3, user="bob")
    b.close()
    time.sleep(0.3)
    send(a, "3", to="bob")
    p = hook.next()
    assert p["user"] == "bob" and p["seq"] == 3 and p["unread"] == 2, p


def test_group_push_goes_to_each_offline_member_only(make_server, hook):
    srv = make_server("--webhook", hook.url, "--push-previews")
    a = srv.connect("alice")
    c = srv.connect("carol")
    conv = create_group(a, ["bob", "carol", "dave"], title="Team")
    c.expect("msg", conv=conv["conv"], seq=1)
    while True:  # drop pushes of the created event, if any
        try:
            hook.q.get(timeout=1.0)
        except queue.Empty:
            break
    r = send(a, "hello team", conv=conv["conv"])
    got = {}
    for _ in range(2):
        p = hook.next()
        got[p["user"]] = p
    assert set(got) == {"bob", "dave"}, got
    for p in got.values():
        assert p["conv"] == conv["conv"] and p["conv_kind"] == "group", p
        assert p["title"] == "Team" and p["seq"] == r["seq"] and p["sender"] == "alice", p
        assert p["preview"] == "hello team", p
    hook.none(within=0.8)


def test_unreachable_webhook_does_not_affect_messaging(make_server):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    srv = make_server("--webhook", f"http://127.0.0.1:{port}/push")
    a = srv.connect("alice")
    for i in range(3):
        r = send(a, f"m{i}", to="bob")
        assert r["seq"] == i + 1
    b = srv.connect("bob")
    h = b.call({"type": "history", "conv": r["conv"]})
    assert [m["text"] for m in h["messages"]] == ["m0", "m1", "m2"], h
