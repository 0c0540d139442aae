"""Write affinity (chatd --affinity, doc/cluster.md): a send taken by one node for a
conversation that another node owns (rendezvous hashing over the live nodes) is written by the
owner, acked by the node the client is on, delivered once; with the owner killed, sends go on
(written where they are taken) with nothing lost or doubled. Only for nodes sharing a store."""

import os
import re
import signal
import time

import pytest

from conftest import shared_store
from helpers import admin_addr, history_all, http, send, shows

pytestmark = pytest.mark.skipif(not shared_store(), reason="affinity needs a shared store")

AFFINITY = ("--affinity", "--admin-listen", "127.0.0.1:0")
M64 = (1 << 64) - 1


def mix64(x):
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & M64
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def weight(node, conv):
    """The rendezvous weight libchat gives node for conv (lib/server/affinity.c)."""
    h = 0xcbf29ce484222325
    for ch in node.encode():
        h = ((h ^ ch) * 0x100000001b3) & M64
    return mix64(h ^ mix64(conv & M64))


def owner(names, conv):
    return max(names, key=lambda n: (weight(n, conv), n))


def affinity_counts(node):
    """{way: count} of chat_affinity_sends_total on node's /metrics."""
    status, text = http(admin_addr(node), "/metrics")
    assert status == 200, text
    got = {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'^chat_affinity_sends_total\{way="(\w+)"\} (\S+)$', text, re.M)}
    assert set(got) == {"out", "in", "fallback"}, text
    return got


def owned_pair(nodes, conv):
    """(origin, owner) of conv among nodes {name: node}: the owner and the other one."""
    own = owner(list(nodes), conv)
    return next(n for name, n in nodes.items() if name != own), nodes[own]


def until_forwarded(origin, alice, conv, acks, timeout=10.0):
    """Send until origin has forwarded one (it has heard of the owner); every ack kept."""
    deadline = time.monotonic() + timeout
    while affinity_counts(origin)["out"] == 0:
        assert time.monotonic() < deadline, "the origin never forwarded a send"
        acks.append(send(alice, f"warm-up {len(acks)}", conv=conv))
        time.sleep(0.05)


def assert_once(client, acks, conv):
    """client got each acked message once, and nothing else of conv."""
    for a in acks:
        client.expect("msg", conv=conv, seq=a["seq"], timeout=10)
    client.drain(within=0.5)
    seqs = [f["seq"] for f in client.take_all("msg", conv=conv)]
    assert not seqs, f"{client.user}/{client.device} got these again: {seqs}"


def test_a_send_goes_through_its_owner(cluster):
    a, b = cluster("a", "b", args=AFFINITY)
    setup = a.connect("alice", "setup")
    conv = send(setup, "hello", to="bob")["conv"]  # by "to": written where it was taken
    origin, own = owned_pair({"a": a, "b": b}, conv)
    alice = origin.connect("alice", "laptop")
    alice_other = own.connect("alice", "tablet")
    bob_here, bob_there = origin.connect("bob", "phone"), own.connect("bob", "desk")
    acks = []
    until_forwarded(origin, alice, conv, acks)
    before_out, before_in = affinity_counts(origin), affinity_counts(own)
    for i in range(5):
        acks.append(send(alice, f"through the owner {i}", conv=conv))
    after_out, after_in = affinity_counts(origin), affinity_counts(own)
    assert after_out["out"] - before_out["out"] == 5, (before_out, after_out)
    assert after_in["in"] - before_in["in"] == 5, (before_in, after_in)
    assert after_out["fallback"] == 0 and after_in["out"] == 0, (after_out, after_in)
    # acked like a local send: seqs in order, the request id echoed (send() checks the rest)
    seqs = [x["seq"] for x in acks]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    for c in (bob_here, bob_there, alice_other):
        assert_once(c, acks, conv)
    alice.expect_none("msg", within=0.3, conv=conv)  # the sending device is skipped
    # a resend of a forwarded message (same cmid) is the same message, acked as a duplicate
    again = alice.call({"type": "send", "conv": conv, "cmid": acks[-1]["cmid"],
                        "text": "through the owner 4"})
    assert again["type"] == "ack" and again["seq"] == acks[-1]["seq"] and again["dup"], again
    bob_here.expect_none("msg", within=0.3, conv=conv)
    texts = [m["text"] for m in history_all(bob_here, conv)]
    assert len(texts) == len(set(texts)) == len(acks) + 1, texts


def test_owner_stopped_send_times_out_and_is_stored_once(cluster):
    # the owner stops (SIGSTOP) and gets the request only after the origin gave up on it and
    # wrote the send itself: once it runs again, its own write of it must find it there
    a, b = cluster("a", "b", args=AFFINITY + ("--nats-lease-ms", "8000"))
    setup = a.connect("alice", "setup")
    conv = send(setup, "hello", to="bob")["conv"]
    origin, own = owned_pair({"a": a, "b": b}, conv)
    alice = origin.connect("alice", "laptop")
    bob = origin.connect("bob", "phone")
    acks = []
    until_forwarded(origin, alice, conv, acks)
    served = affinity_counts(own)["in"]
    os.kill(own.proc.pid, signal.SIGSTOP)
    try:
        acks.append(send(alice, "while the owner sleeps", conv=conv))  # after the timeout
        assert affinity_counts(origin)["fallback"] == 1, affinity_counts(origin)
    finally:
        os.kill(own.proc.pid, signal.SIGCONT)
    deadline = time.monotonic() + 15
    while affinity_counts(own)["in"] == served:  # it answers the stale request (unheard)
        assert time.monotonic() < deadline, "the owner never took the request it slept on"
        time.sleep(0.05)
    acks.append(send(alice, "the owner is back", conv=conv))
    seqs = [x["seq"] for x in acks]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert_once(bob, acks, conv)
    texts = [m["text"] for m in history_all(bob, conv)]
    assert len(texts) == len(set(texts)) == len(acks) + 1, texts


def test_owner_killed_sends_go_on(cluster):
    # a long lease: after the kill the owner stays in the live set for a while, so the first
    # sends are forwarded, find no one and are written here (fallback); then it leaves
    a, b = cluster("a", "b", args=AFFINITY + ("--nats-lease-ms", "4000"))
    setup = a.connect("alice", "setup")
    conv = send(setup, "hello", to="bob")["conv"]
    origin, own = owned_pair({"a": a, "b": b}, conv)
    alice = origin.connect("alice", "laptop")
    bob = origin.connect("bob", "phone")
    send(setup, "hi", to="carol")
    own.connect("carol", "desk")  # her going offline tells that the owner's lease ran out
    alice.expect("presence", users=shows("carol", True))
    acks = []
    until_forwarded(origin, alice, conv, acks)
    own.kill9()
    for i in range(5):
        acks.append(send(alice, f"owner dead {i}", conv=conv))
    fallback = affinity_counts(origin)["fallback"]
    assert fallback >= 1, affinity_counts(origin)
    alice.expect("presence", timeout=15, users=shows("carol", False))
    for i in range(5):  # the owner left: written here without asking
        acks.append(send(alice, f"owner gone {i}", conv=conv))
    assert affinity_counts(origin)["fallback"] == fallback
    seqs = [x["seq"] for x in acks]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    assert_once(bob, acks, conv)
    texts = [m["text"] for m in history_all(bob, conv)]
    assert len(texts) == len(set(texts)) == len(acks) + 1, texts
