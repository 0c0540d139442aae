"""Two chatd nodes on one nats-server (doc/backends.md, the NATS bus): a live frame reaches a
user connected to the other node, and presence holds across nodes, including a node that
dies. The suite runs with a store per node (only the bus connects them) and once more with
the nodes sharing a PostgreSQL store (cluster-nats-postgres)."""

import time

import pytest

from conftest import GRACE_MS, Node, shared_store
from helpers import admin_addr, assert_error, http, presence_of, readyz_until, send, shows


def send_until_received(sender, receiver, text, timeout=5.0, **to):
    """Send until one copy reaches receiver: the first frames may go out before the sending
    node's directory knows where the receiver is. Returns (ack, msg)."""
    deadline = time.time() + timeout
    while True:
        ack = send(sender, text, **to)
        try:
            return ack, receiver.expect("msg", timeout=0.5, conv=ack["conv"], seq=ack["seq"])
        except AssertionError:
            assert time.time() < deadline, f"{text!r} never crossed to the other node"


def alice_sees_bob(a, b):
    """alice on a (bob's contact in a's store) sees bob come online on b. (alice, bob)"""
    alice = a.connect("alice")
    send(alice, "hi", to="bob")
    bob = b.connect("bob")
    alice.expect("presence", users=shows("bob", True))
    return alice, bob


def test_live_frame_reaches_the_other_node(cluster):
    a, b = cluster("a", "b")
    bob = b.connect("bob", "phone")
    alice_b = b.connect("alice", "tablet")  # alice's other device, on the other node
    alice = a.connect("alice", "laptop")
    ack, m = send_until_received(alice, bob, "hello from a", to="bob")
    assert m["from"] == "alice" and m["device"] == "laptop" and m["text"] == "hello from a", m
    # the sender's other device, on the other node, gets it too; the sending device does not
    alice_b.expect("msg", conv=ack["conv"], seq=ack["seq"])
    alice.expect_none("msg", within=0.3, seq=ack["seq"])
    # and again at once, now that the route is known: every message, in order
    for i in range(5):
        ack = send(alice, f"n{i}", conv=ack["conv"])
        m = bob.expect("msg", conv=ack["conv"], seq=ack["seq"])
        assert m["text"] == f"n{i}", m


def test_presence_across_nodes(cluster):
    a, b = cluster("a", "b")
    alice, bob = alice_sees_bob(a, b)
    r = alice.call({"type": "presence", "users": ["bob"]})
    assert presence_of(r, "bob")["online"] is True, r
    # a second device of bob on a, then the one on b leaves: still online
    bob_a = a.connect("bob", "d2")
    bob.close()
    alice.expect_none("presence", within=0.6, users=shows("bob", False))
    bob_a.close()
    p = alice.expect("presence", users=shows("bob", False))
    assert isinstance(presence_of(p, "bob").get("last_seen"), int), p


def test_dead_node_takes_its_users_offline(cluster):
    a, b = cluster("a", "b")
    alice, _ = alice_sees_bob(a, b)
    b.kill9()  # no goodbye: only the missing heartbeats tell
    alice.expect("presence", timeout=10, users=shows("bob", False))
    r = alice.call({"type": "presence", "users": ["bob"]})
    assert presence_of(r, "bob")["online"] is False, r


def test_node_restart_announces_its_users_again(cluster):
    a, b = cluster("a", "b")
    alice, _ = alice_sees_bob(a, b)
    b.restart()  # a clean stop says goodbye; bob's client reconnects to the new b
    alice.expect("presence", timeout=10, users=shows("bob", False))
    bob = b.connect("bob")
    alice.expect("presence", users=shows("bob", True))
    ack = send(alice, "after the restart", to="bob")
    bob.expect("msg", conv=ack["conv"], seq=ack["seq"], text="after the restart")


def nats_outage(cluster, nats, during=None):
    """a and b with alice on a and bob on b in a conversation; NATS goes down, alice sends
    (acked all the same), during(a, alice, conv) runs, NATS comes back, and bob gets b's
    catch-up prompt. Returns (alice, bob, conv, ack of the message sent while down)."""
    a, b = cluster("a", "b")
    alice = a.connect("alice")
    bob = b.connect("bob")
    ack, _ = send_until_received(alice, bob, "before", to="bob")
    conv = ack["conv"]
    port = nats.port
    nats.stop()
    lost = send(alice, "while nats is down", conv=conv)
    if during:
        during(a, alice, conv)
    nats.start(port)
    bob.expect("sync", timeout=10)
    return alice, bob, conv, lost


def test_nats_restart_delivery_resumes(cluster, nats):
    def local_delivery_goes_on(a, alice, conv):
        local = a.connect("bob", "on-a")
        ack = send(alice, "local", conv=conv)
        local.expect("msg", conv=conv, seq=ack["seq"], text="local")

    alice, bob, conv, _ = nats_outage(cluster, nats, local_delivery_goes_on)
    send_until_received(alice, bob, "nats is back", conv=conv)
    for node in cluster.nodes:  # the operator reads both in the log
        log = node.wait_log("connected to the NATS server")
        assert "lost the NATS server" in log, log

def test_presence_change_told_once(cluster):
    """Every node hears of a change from its bus and tells its own devices; contacts never
    hear it twice (once from each node that knows them as contacts)."""
    a, b = cluster("a", "b")
    alice = a.connect("alice")
    send(alice, "hi", to="bob")  # contacts in a's store
    bob = b.connect("bob")
    send(bob, "hi", to="alice")  # and in b's store
    bob.close()
    alice.expect("presence", timeout=10, users=shows("bob", False))
    alice.drain(within=(GRACE_MS + 500) / 1000)  # a second "offline", if any, arrives here
    alice.take_all("presence")
    b.connect("bob")
    alice.expect("presence", users=shows("bob", True))
    alice.expect_none("presence", within=0.8, users=shows("bob", True))


def test_typing_crosses_nodes(cluster):
    a, b = cluster("a", "b")
    alice = a.connect("alice")
    bob = b.connect("bob")
    ack, _ = send_until_received(alice, bob, "hi", to="bob")
    alice.send_json({"type": "typing", "conv": ack["conv"], "state": "start"})
    t = bob.expect("typing", conv=ack["conv"], user="alice")
    assert t["state"] == "start", t


@pytest.mark.skipif(not shared_store(), reason="needs the nodes to share a store")
def test_shared_store_has_what_the_bus_lost(cluster, nats):
    """What the bus could not carry is in the shared store: after b's catch-up prompt, bob
    finds the message sent while NATS was down through b (convs, then history)."""
    alice, bob, conv, lost = nats_outage(cluster, nats)
    r = bob.call({"type": "convs", "since": 0})
    entry = next(c for c in r["convs"] if c["conv"] == conv)
    assert entry["head"] >= lost["seq"], entry
    h = bob.call({"type": "history", "conv": conv, "after": lost["seq"] - 1})
    assert [m["text"] for m in h["messages"]][:1] == ["while nats is down"], h


def test_readyz_follows_the_nats_connection(cluster, nats):
    """A node cut from NATS answers /readyz 503 (its bus is not connected) and is ready again
    once NATS is back; it stays alive throughout."""
    a, = cluster("a", args=("--admin-listen", "127.0.0.1:0"))
    addr = admin_addr(a)
    assert http(addr, "/readyz") == (200, "ready\n")
    port = nats.port
    nats.stop()
    status, body = readyz_until(addr, ready=False)
    assert status == 503 and "bus" in body, (status, body)
    assert http(addr, "/healthz")[0] == 200
    nats.start(port)
    assert readyz_until(addr, ready=True) == (200, "ready\n")


def auth(node, token):
    c = node.ws()
    return c, c.call({"type": "auth", "v": 1, "token": token})


def test_logout_is_refused_on_every_node(cluster):
    """A logout's answer means the token is refused on every node: the revocation travels
    before the answer does, and the other node closes that session's connections."""
    a, b = cluster("a", "b")
    tok = a.token("alice", "phone")
    on_a, r = auth(a, tok)
    assert r["type"] == "auth_ok", r
    on_b, r = auth(b, tok)
    assert r["type"] == "auth_ok", r
    other, r = auth(b, a.token("alice", "phone"))  # another session of alice stays
    assert r["type"] == "auth_ok", r
    assert on_a.call({"type": "logout"})["type"] == "ok"
    assert on_a.close_code() == 1000
    again, r = auth(b, tok)
    assert_error(r, "EAUTH", "auth_failed")
    assert on_b.close_code() == 1008 and on_b.close_reason == "session revoked"
    assert other.call({"type": "ping"})["type"] == "pong"


def test_nodes_compare_their_token_keys(cluster, tmp_path):
    """Nodes tell each other fingerprints of their token keys: the same file is quiet, a
    node with other keys is named in a warning on both sides, and its tokens fail."""
    a, b = cluster("a", "b", args=("--verbose",))
    a.wait_log("node 'b' has the same token keys")
    b.wait_log("node 'a' has the same token keys")
    c, = cluster("c", key_file=str(tmp_path / "other.key"))  # its own random key, id 1
    log = a.wait_log("token keys differ from node 'c'")
    assert "key id(s) 1 hold another key there" in log, log
    assert "give every node the same key file" in log, log
    c.wait_log("token keys differ from node 'a'")
    _, r = auth(c, a.token("alice"))
    assert_error(r, "EAUTH", "auth_failed")
    assert "token keys differ from node 'a'" not in b.stderr_text()
    assert "token keys differ from node 'b'" not in log


def test_duplicate_node_id_is_reported(cluster, nats, tmp_path):
    """Two processes under one node id break delivery and presence between nodes: both say so,
    naming the id."""
    a, = cluster("a")
    twin = Node("a", nats, a.key_file, tmp_path / "data-twin", tmp_path / "logs-twin",
                tmp_path / "store", media_dir=tmp_path / "media")
    twin.start()
    try:
        for node in (a, twin):
            node.wait_log("another process uses node id 'a'")
    finally:
        twin.stop()
