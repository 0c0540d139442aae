"""Push on a cluster whose nodes share a PostgreSQL store: the registrations are in the store, so
a device registered through one node is pushed to by the node that stores a message for its
offline user. Against the local APNs fake of tests/wire/pushfakes.py (python3-h2 and
python3-cryptography)."""

import time

import pytest

from conftest import shared_store
from helpers import send

pytest.importorskip("h2")
pytest.importorskip("cryptography")

from pushfakes import apns, pki  # noqa: E402,F401  (fixtures; after the skips: h2, cryptography)

pytestmark = pytest.mark.skipif(not shared_store(),
                                reason="needs the nodes to share a store (the registrations)")

BOB_PHONE = "a1" * 32


def pushed_seqs(fake, token):
    with fake.lock:
        return [p["payload"]["libchat"]["seq"] for p in fake.accepted if p["token"] == token]


def test_node_pushes_to_a_device_registered_through_another(cluster, pki, apns):
    args = ["--push-ca-file", str(pki / "ca.pem"), "--push-limit", "coalesce_ms=100",
            "--push-limit", "backoff_ms=50", "--push-limit", "flush_ms=1500"] + apns.args()
    a, b = cluster("a", "b", args=args)
    bob = a.connect("bob", "phone")
    r = bob.call({"type": "push_register", "platform": "apns", "token": BOB_PHONE})
    assert r["type"] == "ok", r
    bob.close()
    # alice writes through b, which stores the messages and pushes: once b knows bob is offline
    # (the presence lease crosses the bus), bob's phone hears of a message through b alone.
    alice = b.connect("alice")
    deadline = time.monotonic() + 15
    while True:
        ack = send(alice, "probe", to="bob")
        end = time.monotonic() + 0.5
        while time.monotonic() < end and not any(s >= ack["seq"] for s in
                                                 pushed_seqs(apns, BOB_PHONE)):
            time.sleep(0.02)
        if any(s >= ack["seq"] for s in pushed_seqs(apns, BOB_PHONE)):
            break
        assert time.monotonic() < deadline, (f"no push through b (errors {apns.errors}, "
                                             f"pushed {pushed_seqs(apns, BOB_PHONE)})")
    with apns.lock:
        p = next(p for p in apns.accepted if p["payload"]["libchat"]["seq"] >= ack["seq"])
    data = p["payload"]["libchat"]
    assert data["conv"] == ack["conv"] and data["sender"] == "alice", data
    # Unregistered through a: b pushes no more (a barrier push to carol, registered through b
    # after bob's unregister, shows b stored and handled the later message).
    bob = a.connect("bob", "phone")
    r = bob.call({"type": "push_unregister"})
    assert r["type"] == "ok", r
    bob.close()
    carol = b.connect("carol", "phone")
    carol_phone = "c3" * 32
    r = carol.call({"type": "push_register", "platform": "apns", "token": carol_phone})
    assert r["type"] == "ok", r
    carol.close()
    before = len(pushed_seqs(apns, BOB_PHONE))
    deadline = time.monotonic() + 15
    while True:
        after_bob = send(alice, "after unregister", to="bob")
        barrier = send(alice, "barrier", to="carol")
        end = time.monotonic() + 0.5
        while time.monotonic() < end and not pushed_seqs(apns, carol_phone):
            time.sleep(0.02)
        if pushed_seqs(apns, carol_phone):
            break
        assert time.monotonic() < deadline, f"no push to carol (errors {apns.errors})"
    assert barrier["seq"] >= 1 and after_bob["seq"] >= 1
    assert len(pushed_seqs(apns, BOB_PHONE)) == before, pushed_seqs(apns, BOB_PHONE)
    assert not apns.errors, apns.errors
