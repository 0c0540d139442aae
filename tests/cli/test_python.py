"""The Python bindings (bindings/python/libchat) against a real chatd: two clients chat, with
receipts, typing, presence, groups and offline delivery; objects dropped in odd orders."""

import gc
import json
import threading
import time

import pytest

import libchat
from libchat import ChatError, Client, EventType as E, MsgStatus


def client(srv, user, **kw):
    kw.setdefault("backoff", (100, 1000))
    return Client(srv.url, srv.token(user, kw.pop("device", "py")), **kw)


def synced(c, timeout=15):
    return c.wait_for(type=E.SYNCED, timeout=timeout)


def test_python_two_clients_chat(chatd):
    with client(chatd, "alice") as alice, client(chatd, "bob") as bob:
        synced(alice)
        synced(bob)
        assert alice.user == "alice" and bob.user == "bob"

        cmid = alice.send("hi bob", to="bob")
        assert len(cmid) == 27
        sent = alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        conv, seq = sent.conv, sent.seq
        assert conv > 0 and seq >= 1
        got = bob.wait_for(lambda e: e.text == "hi bob", type=E.MESSAGE)
        assert (got.conv, got.seq, got.user) == (conv, seq, "alice")

        # bob's client sends delivered by itself: ✓✓ on alice's side
        alice.wait_for(lambda e: e.user == "bob" and e.delivered >= seq, type=E.RECEIPT)
        assert alice.message_status(cmid) == (MsgStatus.DELIVERED, conv, seq)
        # a live message of a new conversation may come before its members are synced (the
        # engine then syncs and emits CONV): poll, bounded
        deadline = time.monotonic() + 10
        while True:
            [bc] = [c for c in bob.convs() if c.id == conv]
            if bc.peer or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert bc.peer == "alice" and bc.unread == 1 and bc.kind == libchat.ConvKind.DIRECT

        bob.mark_read(conv, seq)
        assert [c.unread for c in bob.convs() if c.id == conv] == [0]
        alice.wait_for(lambda e: e.user == "bob" and e.read >= seq, type=E.RECEIPT)
        assert alice.message_status(cmid)[0] == MsgStatus.READ
        assert alice.message_receipts(conv, seq) == (1, 1, 1)

        # the other way, by conversation id
        cmid2 = bob.send("hello alice \u2713", conv)
        bob.wait_for(lambda e: e.cmid == cmid2, type=E.SENT)
        m = alice.wait_for(lambda e: e.user == "bob", type=E.MESSAGE)
        assert m.text == "hello alice \u2713" and m.conv == conv

        # typing reaches the peer
        bob.typing(conv, True)
        t = alice.wait_for(lambda e: e.user == "bob", type=E.TYPING)
        assert t.conv == conv and t.active

        # presence: bob is online for alice
        req = alice.presence_query(["bob"])
        p = alice.wait_for(lambda e: e.user == "bob", type=E.PRESENCE)
        assert p.active
        alice.request(req)

        hist = alice.history(conv, wait=10)
        assert [(m.sender, m.text) for m in hist][-2:] == [("alice", "hi bob"),
                                                          ("bob", "hello alice \u2713")]
        assert hist[-2].status == MsgStatus.READ and hist[-1].status == MsgStatus.NONE

        # bob goes away: alice sees him offline
        bob.close()
        p = alice.wait_for(lambda e: e.user == "bob" and not e.active, type=E.PRESENCE)
        assert p.last_seen_ms >= 0


def test_python_groups(chatd):
    with client(chatd, "alice") as alice, client(chatd, "carol") as carol:
        synced(alice)
        synced(carol)
        ev = alice.request(alice.group_create("Team", ["bob", "carol"]))
        gid = ev.conv
        assert gid > 0
        # with a client id, a repeated create answers the same group
        once = [alice.request(alice.group_create("Once", ["carol"], cmid="g1")).conv
                for _ in range(2)]
        assert once[0] == once[1] and once[0] not in (0, gid), once
        alice.request(alice.group_rename(gid, "Team 2"))
        cmid = alice.send("hi team", gid)
        alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        carol.wait_for(lambda e: e.text == "hi team", type=E.MESSAGE)
        deadline = time.monotonic() + 10
        while True:
            titles = {c.id: c.title for c in carol.convs()}
            if titles.get(gid) == "Team 2" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert titles.get(gid) == "Team 2"
        # a refused request raises its ChatError
        with pytest.raises(ChatError) as ei:
            carol.request(carol.group_add(gid, ["nobody-at-all"]))
        assert ei.value.code < 0 and ei.value.name == libchat.error_name(ei.value.code)


def test_python_offline_delivery_exactly_once(chatd, tmp_path):
    bob_cache = str(tmp_path / "bob.db")
    alice_cache = str(tmp_path / "alice.db")
    with client(chatd, "bob", cache=bob_cache) as bob:
        synced(bob)
    # alice queues while not started (no network), then restarts the "app" on the cache
    alice = client(chatd, "alice", cache=alice_cache, start=False)
    cmid = alice.send("while you were away", to="bob")
    assert alice.outbox_count() == 1
    assert alice.message_status(cmid)[0] == MsgStatus.SENDING
    alice.close()
    with client(chatd, "alice", cache=alice_cache) as alice:
        sent = alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        assert alice.outbox_count() == 0
    # bob comes back on the same cache file: the message, once
    with client(chatd, "bob", cache=bob_cache) as bob:
        synced(bob)
        msgs = [e for e in bob.events(timeout=2) if e.type == E.MESSAGE]
        first = [e for e in msgs if e.text == "while you were away"]
        assert len(first) <= 1
        hist = bob.history(sent.conv, wait=10)
        assert [m.text for m in hist].count("while you were away") == 1
        assert [m.seq for m in hist if m.text == "while you were away"] == [sent.seq]
        bob.close()
    with client(chatd, "bob", cache=bob_cache) as bob:  # and once more: nothing new
        synced(bob)
        again = [e for e in bob.events(timeout=1.5) if e.type == E.MESSAGE]
        assert [e for e in again if e.text == "while you were away"] == []
        assert [m.text for m in bob.history(sent.conv)].count("while you were away") == 1


def test_python_slow_download_outlasts_the_http_timeout(chatd, tmp_path):
    """A download that takes longer than lws's HTTP timeout (5 s) completes while its reader
    keeps reading: the server extends the timeout with every chunk it writes."""
    import os
    import socket
    data = os.urandom(16 * 1024 * 1024)
    src = tmp_path / "film.bin"
    src.write_bytes(data)
    with client(chatd, "alice") as alice, client(chatd, "bob") as bob:
        synced(alice)
        synced(bob)
        media_id = alice.upload_file(src, "application/octet-stream")
        media = {"id": media_id, "mime": "application/octet-stream", "size": len(data),
                 "name": "film.bin"}
        cmid = alice.send_media(media, to="bob")
        alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        url = bob.media_url(media_id)["url"]
    # A reader paced at 2 MiB/s with a small receive window: 8 s, so the server is still
    # writing well past 5 s even with its socket buffer (up to 4 MiB) full.
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(10)
    s.connect(("127.0.0.1", chatd.port))
    s.sendall(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        assert chunk, "closed before the headers"
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200"), head
    got = [body]
    n = len(body)
    start = time.monotonic()
    while n < len(data):
        chunk = s.recv(65536)
        if not chunk:
            break
        got.append(chunk)
        n += len(chunk)
        ahead = start + n / (2 * 1024 * 1024) - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    s.close()
    took = time.monotonic() - start
    assert n == len(data), f"closed after {n} of {len(data)} bytes, {took:.1f} s in"
    assert b"".join(got) == data and took > 6, took


def test_python_objects_dropped_in_any_order(chatd):
    # an iterator keeps its Client alive; dropping the Client name first is fine
    c = client(chatd, "alice")
    it = c.events(timeout=5)
    del c
    gc.collect()
    assert next(it).type in set(E)
    del it
    gc.collect()

    # events, lists and waits after close raise ChatError(ECLOSED); copies stay usable
    c = client(chatd, "alice")
    synced(c)
    convs = c.convs()
    it = c.events()
    c.close()
    c.close()  # idempotent
    with pytest.raises(ChatError) as ei:
        next(it)
    assert ei.value.code == libchat.ECLOSED and ei.value.name == "ECLOSED"
    for call in (lambda: c.wait_event(1), lambda: c.send("x", to="bob"), lambda: c.convs(),
                 lambda: c.history(1), lambda: c.next_event(), lambda: c.user):
        with pytest.raises(ChatError):
            call()
    assert c.state == libchat.ConnState.STOPPED
    assert isinstance(convs, list)
    del c
    gc.collect()

    # close from another thread while one waits: the waiter wakes with ECLOSED, no crash
    c = client(chatd, "alice")
    synced(c)
    errors = []

    def waiter():
        try:
            while True:
                c.wait_event(30)
        except ChatError as e:
            errors.append(e.code)

    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.3)
    c.close()
    th.join(10)
    assert not th.is_alive() and errors == [libchat.ECLOSED]

    # clients dropped without close, with events queued, are freed by the GC
    for _ in range(5):
        d = client(chatd, "bob")
        d.send("dropped", to="alice")
        del d
    gc.collect()

    # bad credentials: an AUTH_FAILED event, then the Client is still closable
    with Client(chatd.url, "bad-token", backoff=(100, 1000)) as bad:
        ev = bad.wait_for(type=E.AUTH_FAILED)
        assert ev.code == libchat.EAUTH and ev.error.name == "EAUTH"
        # the engine emits AUTH_FAILED just before it records the state (lib/client/client.c)
        deadline = time.monotonic() + 5
        while bad.state != libchat.ConnState.AUTH_FAILED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bad.state == libchat.ConnState.AUTH_FAILED

    # errors at construction carry the code
    with pytest.raises(ChatError) as ei:
        Client(chatd.url)  # no credentials
    assert ei.value.code == libchat.EINVAL and ei.value.name == "EINVAL"
    with pytest.raises(ChatError) as ei:
        client(chatd, "alice").send("x")
    assert ei.value.code == libchat.EINVAL
    with pytest.raises(ChatError) as ei:
        client(chatd, "alice").wait_for(type=E.HISTORY, timeout=0.3)
    assert ei.value.code == libchat.ETIMEDOUT

    # conversation ids are int64: out of range is EINVAL, never wrapped into another id
    c = client(chatd, "alice")
    for bad in (-1, 0, 2 ** 64 + 3, 2 ** 63):
        for call in (lambda: c.send("x", conv=bad), lambda: c.mark_read(bad, 1),
                     lambda: c.history(bad)):
            with pytest.raises(ChatError) as ei:
                call()
            assert ei.value.code == libchat.EINVAL
    assert c.outbox_count() == 0
    c.close()


def test_python_media_upload_send_download_resume(chatd, tmp_path):
    import hashlib
    import os
    data = os.urandom(2 * 1024 * 1024 + 5)
    src = tmp_path / "photo.jpg"
    src.write_bytes(data)
    want = hashlib.blake2b(data, digest_size=32).hexdigest()

    class Stop(Exception):
        pass

    def stop_after(n, seen):
        def progress(done, total):
            seen.append((done, total))
            if done >= n and done < total:
                time.sleep(0.3)  # let the server take in what was sent
                raise Stop()
        return progress

    with client(chatd, "alice", cache=str(tmp_path / "a.db")) as alice, \
            client(chatd, "bob") as bob:
        synced(alice)
        synced(bob)
        seen = []
        with pytest.raises(Stop):
            alice.upload_file(src, "image/jpeg", stop_after(700000, seen))
        assert seen and seen[-1][1] == len(data)
        seen2 = []
        media_id = alice.upload_file(src, "image/jpeg", lambda d, t: seen2.append((d, t)))
        assert media_id == want
        # resumed where the server stood (what it had taken in before the abort), not at 0
        assert 0 < seen2[0][0] <= seen[-1][0], (seen2[0], seen[-1])
        assert seen2[-1] == (len(data), len(data))

        media = {"id": media_id, "mime": "image/jpeg", "size": len(data), "name": "photo.jpg",
                 "width": 640, "height": 480}
        cmid = alice.send_media(media, to="bob")
        alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        m = bob.wait_for(lambda e: e.user == "alice" and e.kind == libchat.MsgKind.MEDIA,
                         type=E.MESSAGE)
        import json
        assert json.loads(m.json)["media"] == media

        u = bob.media_url(media_id)
        assert u["size"] == len(data) and u["mime"] == "image/jpeg" and u["url"].startswith("/media/")
        dst = tmp_path / "got.jpg"
        with pytest.raises(Stop):
            bob.download(media_id, dst, stop_after(900000, []), url=u["url"])
        assert not dst.exists()
        seen3 = []
        assert bob.download(media_id, dst, lambda d, t: seen3.append(d)) == str(dst)
        assert seen3[0] >= 900000  # the .part holds what was written
        assert dst.read_bytes() == data

    with client(chatd, "carol") as carol:
        synced(carol)
        with pytest.raises(ChatError) as ei:
            carol.media_url(media_id)
        assert ei.value.code == libchat.EPERM


def test_python_edit_delete_react_reply_search(chatd):
    with client(chatd, "alice") as alice, client(chatd, "bob") as bob:
        synced(alice)
        synced(bob)
        cmids = [alice.send(t, to="bob") for t in ("first draft", "to be deleted", "react here")]
        seqs = {}
        for cm in cmids:
            ev = alice.wait_for(lambda e, cm=cm: e.cmid == cm, type=E.SENT)
            conv, seqs[cm] = ev.conv, ev.seq
        s1, s2, s3 = (seqs[cm] for cm in cmids)
        bob.wait_for(lambda e: e.text == "react here", type=E.MESSAGE)

        assert alice.request(alice.edit(conv, s1, "final text")).seq > s3
        bob.wait_for(lambda e: e.kind == libchat.MsgKind.EDIT and e.seq == s1, type=E.UPDATED)
        alice.request(alice.delete(conv, s2))
        bob.wait_for(lambda e: e.kind == libchat.MsgKind.DELETE and e.seq == s2, type=E.UPDATED)
        bob.request(bob.react(conv, s3, "\U0001f44d"))
        alice.wait_for(lambda e: e.kind == libchat.MsgKind.REACT and e.text == "\U0001f44d",
                       type=E.UPDATED)
        with pytest.raises(ChatError) as ei:
            bob.request(bob.edit(conv, s1, "not mine"))
        assert ei.value.name == "EPERM"

        cm = bob.reply(conv, "answering", reply_to=s3)
        bob.wait_for(lambda e: e.cmid == cm, type=E.SENT)
        alice.wait_for(lambda e: e.text == "answering", type=E.MESSAGE)
        h = {m.seq: m for m in alice.history(conv, wait=10)}
        assert h[s1].text == "final text" and h[s1].edited_ms > 0
        assert h[s2].deleted and h[s2].text == ""
        assert h[s3].reactions == {"\U0001f44d": ["bob"]}
        [answer] = [m for m in h.values() if m.text == "answering"]
        assert answer.reply_to == s3 and answer.thread == 0

        assert [m.seq for m in alice.search_local("FINAL")] == [s1]
        assert alice.search_local("deleted") == []
        res = alice.request(alice.search("text"))
        assert [m["seq"] for m in json.loads(res.json)["messages"]] == [s1]

        alice.request(alice.set_timer(conv, 60000))
        cm = alice.send("short-lived", conv)
        alice.wait_for(lambda e: e.cmid == cm, type=E.SENT)
        m = bob.wait_for(lambda e: e.text == "short-lived", type=E.MESSAGE)
        assert json.loads(m.json)["expires"] > 0


def test_python_errors_and_events_as_in_c(chatd):
    # one exception type: the chat_status (as Status, its number and its name) and the reason
    assert libchat.EAUTH is libchat.Status.EAUTH and libchat.OK == 0
    assert int(libchat.Status.EPERM) == libchat._ffi.lib.chat_error_from_name(b"EPERM")
    with pytest.raises(ChatError) as ei:
        Client(chatd.url)  # no credentials: the C error record's message, without the call
    e = ei.value
    assert e.status is libchat.Status.EINVAL and e.code == libchat.EINVAL and e.name == "EINVAL"
    assert e.reason and not e.reason.startswith("config")
    assert str(e) == f"EINVAL: {e.message}"

    with client(chatd, "alice") as alice, client(chatd, "bob") as bob:
        synced(alice)
        synced(bob)
        # bad input from Python is the same ChatError(EINVAL), naming the argument, and
        # queues nothing
        bad = [(lambda: alice.send("\ud800", to="bob"), "text is not valid Unicode"),
               (lambda: alice.send(b"\xff\xfe", to="bob"), "text is not UTF-8"),
               (lambda: alice.send(42, to="bob"), "text must be str or bytes"),
               (lambda: alice.send("x", to="b\udcffb"), "to is not valid Unicode"),
               (lambda: alice.send("x", conv="twelve"), "not a conversation id"),
               (lambda: alice.group_create("t", "bob"), "members must be a list"),
               (lambda: alice.group_create("t", ["bob", None]), "members[1] must be str"),
               (lambda: alice.presence_query(["\ud800"]), "users[0] is not valid Unicode")]
        for call, why in bad:
            with pytest.raises(ChatError) as ei:
                call()
            assert ei.value.status is libchat.Status.EINVAL and why in ei.value.reason, why
        assert alice.outbox_count() == 0

        # events carry the C getters' fields, with the C enums
        cmid = alice.send("kinds", to="bob")
        m = bob.wait_for(lambda e: e.text == "kinds", type=E.MESSAGE)
        assert m.kind is libchat.MsgKind.TEXT and m.cmid == cmid and m.error is None

        # a failed event's error is the same exception type, with the server's reason
        g = alice.request(alice.group_create("closed", ["bob"]))
        bob.request(bob.group_leave(g.conv))
        cmid = bob.send("after leaving", g.conv)
        failed = bob.wait_for(lambda e: e.cmid == cmid, type=E.SEND_FAILED)
        err = failed.error
        assert isinstance(err, ChatError) and err.status is libchat.Status.EPERM
        assert err.reason == failed.reason == failed.message and err.reason
