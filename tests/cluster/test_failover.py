"""Nodes sharing a PostgreSQL store under load while something fails (doc/cluster.md, failure
modes): a node killed, PostgreSQL restarted, nats-server restarted, two nodes writing one
conversation at once. What is checked every time: nothing acked is lost, nothing is stored or
delivered live twice, seqs have no gap, and the clients (tests/cluster/load.py: they resend
with the same client id and fetch from history what they miss, as a client must) end up with
every message. Media uploaded through one node downloads through another."""

import base64
import hashlib
import http.client
import os
import shlex
import subprocess
import time

import pytest

from conftest import shared_store
from helpers import create_group, send
from load import Receiver, Sender, acked_keys, check_store, connect

pytestmark = pytest.mark.skipif(not shared_store(), reason="needs the nodes to share a store")


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out: {what}"
        time.sleep(0.02)


def start(*workers):
    for w in workers:
        w.start()
    for w in workers:
        if isinstance(w, Receiver):
            wait_until(lambda: w.c is not None, 10, f"{w.user} connects")


def stop(*workers):
    for w in workers:
        w.stop()


def conv_of(receiver):
    convs = {c for (c, _) in receiver.got}
    assert len(convs) == 1, convs
    return convs.pop()


@pytest.mark.seconds(120)
def test_node_killed_under_load(cluster):
    """kill -9 of a node with senders and receivers on it: its clients resume on the others
    and hold every message acked before the kill within 5 s of it."""
    a, b, c = cluster("a", "b", "c")
    s1 = Sender([c, a], "s1", count=300, to="r1")    # on the node that dies
    s2 = Sender([a, b], "s2", count=300, to="r2")
    s3 = Sender([b, a], "s3", count=300, to="r3")
    r1 = Receiver([b, a], "r1")
    r2 = Receiver([c, a], "r2")                      # on the node that dies
    r3 = Receiver([c, b], "r3")                      # on the node that dies
    start(r1, r2, r3, s1, s2, s3)
    pairs = [(s1, r1), (s2, r2), (s3, r3)]
    wait_until(lambda: all(len(r.got) >= 20 for _, r in pairs), 30, "load on every pair")
    killed_at = time.monotonic()
    c.kill9()
    for s, r in pairs:
        if r in (r2, r3):
            r.wait_for(acked_keys([s], before=killed_at), killed_at + 5,
                       "acked before the kill, 5 s after it")
    wait_until(lambda: all(s.next == s.count or s.error for s, _ in pairs), 60, "senders done")
    for s, r in pairs:
        s.stop()
        r.wait_for(acked_keys([s]), time.monotonic() + 10, "acked")
    stop(r1, r2, r3)
    assert s1.reconnects >= 1 and r2.reconnects >= 1 and r3.reconnects >= 1
    for s, r in pairs:
        assert not r.dups, f"{r.user} got these live twice: {r.dups[:10]}"
        check_store(a, r.user, conv_of(r), [s])


def pg_ctl(action):
    cmd = os.environ.get("CHAT_TEST_PG_CTL")
    assert cmd, "CHAT_TEST_PG_CTL is not set (run under tests/lib/pgtemp.py)"
    subprocess.run(shlex.split(cmd) + [action], check=True, timeout=90,
                   stdout=subprocess.DEVNULL)


@pytest.mark.seconds(120)
def test_postgres_restart_under_load(cluster):
    """While PostgreSQL is down, sends are refused with busy (safe to retry); once it is back
    they are acked again, and nothing acked before, during or after is lost or doubled."""
    a, b = cluster("a", "b")
    s = Sender([a], "alice", count=10 ** 6, to="bob", rate=50)
    r = Receiver([b], "bob")
    start(r, s)
    try:
        wait_until(lambda: len(r.got) >= 10, 20, "messages flow")
        pg_ctl("stop")
        try:
            wait_until(lambda: s.refusals or s.error, 20, "a send refused while the store is down")
            assert not s.error, s.error
            assert all(x["reason"] == "busy" for x in s.refusals), s.refusals
        finally:
            pg_ctl("start")
        acked = len(s.acks)
        wait_until(lambda: len(s.acks) >= acked + 20 or s.error, 30, "sends acked again")
    finally:
        s.stop()
    r.wait_for(acked_keys([s]), time.monotonic() + 15, "acked")
    r.stop()
    assert not r.dups, r.dups[:10]
    check_store(b, "bob", conv_of(r), [s])


@pytest.mark.seconds(120)
def test_nats_restart_under_load(cluster, nats):
    """nats-server restarted under load: sends go on being acked (they need the store only),
    live delivery between the nodes comes back, and the receiver fills what the bus lost."""
    a, b = cluster("a", "b")
    s = Sender([a], "alice", count=10 ** 6, to="bob", rate=50)
    r = Receiver([b], "bob")
    start(r, s)
    try:
        wait_until(lambda: len(r.got) >= 10, 20, "messages flow")
        port = nats.port
        nats.stop()
        acked = len(s.acks)
        wait_until(lambda: len(s.acks) >= acked + 20 or s.error, 20, "acks while NATS is down")
        nats.start(port)
        restarted = time.monotonic()
        wait_until(lambda: any(t > restarted and (cv, seq) in r.live
                               for cv, seq, t in list(s.acks.values())),
                   20, "a message sent after the restart arrives live")
    finally:
        s.stop()
    r.wait_for(acked_keys([s]), time.monotonic() + 15, "acked, gaps filled")
    r.stop()
    assert not r.dups, r.dups[:10]
    check_store(b, "bob", conv_of(r), [s])


@pytest.mark.seconds(120)
def test_two_nodes_write_one_conversation(cluster):
    """Two nodes write one group conversation at once: every message acked, seqs gap-free,
    no message stored twice, no deadlock (at most busy, retried), every member gets all."""
    a, b = cluster("a", "b")
    owner = connect(a, "alice", "admin")
    conv = create_group(owner, ["bob", "carol"])["conv"]
    owner.close()
    w1 = Sender([a], "alice", count=150, conv=conv, rate=1000)
    w2 = Sender([b], "bob", count=150, conv=conv, rate=1000)
    on_a = Receiver([a], "carol", device="ra")
    on_b = Receiver([b], "carol", device="rb")
    start(on_a, on_b, w1, w2)
    wait_until(lambda: (w1.next == w1.count and w2.next == w2.count) or w1.error or w2.error,
               60, "both writers done")
    stop(w1, w2)
    want = acked_keys([w1, w2])
    assert len(want) == 300
    for r in (on_a, on_b):
        r.wait_for(want, time.monotonic() + 15, "written on both nodes")
    stop(on_a, on_b)
    assert not on_a.dups and not on_b.dups
    msgs = check_store(a, "carol", conv, [w1, w2])
    assert len(msgs) == 301  # the group's creation event, then the 300


def http_call(node, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", node.port, timeout=10)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_media_crosses_nodes(cluster):
    """An upload through one node downloads through another (one media directory and one
    store), and a signed URL from either node verifies on both (one key file)."""
    a, b = cluster("a", "b")
    data = os.urandom(100_000)
    mid = hashlib.blake2b(data, digest_size=32).hexdigest()
    auth = {"Authorization": "Bearer " + a.token("alice")}
    meta = "name " + base64.b64encode(b"pic.png").decode() + ",type " + \
        base64.b64encode(b"image/png").decode()
    st, hd, _ = http_call(a, "POST", "/media/uploads",
                          headers=dict(auth, **{"Upload-Length": str(len(data)),
                                                "Upload-Metadata": meta}))
    assert st == 201, (st, hd)
    st, hd, body = http_call(a, "PATCH", hd["location"], body=data,
                             headers=dict(auth, **{"Upload-Offset": "0"}))
    assert st == 201 and mid.encode() in body, (st, hd, body)
    alice = connect(a, "alice", "d1")
    bob = connect(b, "bob", "d1")
    ack = alice.call({"type": "send", "to": "bob", "cmid": "m1", "kind": "media",
                      "media": {"id": mid, "mime": "image/png", "size": len(data),
                                "name": "pic.png"}})
    assert ack["type"] == "ack", ack
    bob.expect("msg", conv=ack["conv"], seq=ack["seq"])
    for asker, server in ((bob, b), (alice, b), (bob, a)):
        r = asker.call({"type": "media_url", "media": mid})
        assert r["type"] == "media_url", r
        st, hd, body = http_call(server, "GET", r["url"])
        assert st == 200 and body == data, (st, hd)
    send(alice, "done", to="bob")
    alice.close()
    bob.close()
