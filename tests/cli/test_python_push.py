"""Push through the Python bindings end to end: bob's app registers its APNs token with the
client engine (Client.push_register), closes, and alice's message reaches the APNs fake
(tests/wire/pushfakes.py) for bob's device, collapsed per conversation with bob's unread count.
A mute made on bob's phone shows in his other device's cache (Client.mute, Conv.muted_until)."""

import os
import sys
import time

import pytest

pytest.importorskip("h2")
pytest.importorskip("cryptography")

from libchat import Client, EventType as E  # noqa: E402

from conftest import Chatd  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wire"))
import pushfakes  # noqa: E402

TOKEN = "5f" * 32


@pytest.fixture
def push_chatd(tmp_path):
    pki = pushfakes.make_pki(tmp_path / "pki")
    apns = pushfakes.ApnsFake(pki, tmp_path)
    srv = Chatd(tmp_path).start(extra=apns.args() + [
        "--push-ca-file", str(pki / "ca.pem"), "--push-limit", "coalesce_ms=100"])
    srv.apns = apns
    yield srv
    crashed = srv.proc is not None and srv.proc.poll() is not None
    srv.stop()
    apns.stop()
    if crashed:
        pytest.fail(f"chatd died during the test\n{srv.stderr_tail()}", pytrace=False)


def client(srv, user, device):
    return Client(srv.url, srv.token(user, device), backoff=(100, 1000))


def result(c, req):
    e = c.wait_for(lambda e: e.request == req, type=E.RESULT, timeout=15)
    assert e.code == 0, e
    return e


def pushes_for(apns, seq):
    with apns.lock:
        return [p for p in apns.accepted if p["payload"]["libchat"]["seq"] >= seq]


def test_python_push_register_then_offline(push_chatd):
    apns = push_chatd.apns
    with client(push_chatd, "alice", "laptop") as alice:
        alice.wait_for(type=E.SYNCED, timeout=15)
        bob = client(push_chatd, "bob", "phone")
        result(bob, bob.push_register("apns", TOKEN, topic="com.example.chat"))
        cmid = alice.send("hello bob", to="bob")
        sent = alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        bob.wait_for(lambda e: e.text == "hello bob", type=E.MESSAGE)
        conv = sent.conv
        # muted on the phone: the laptop's cache shows it
        with client(push_chatd, "bob", "laptop") as laptop:
            laptop.wait_for(type=E.SYNCED, timeout=15)
            result(bob, bob.mute(conv))
            end = time.monotonic() + 10
            while [c.muted_until for c in laptop.convs() if c.id == conv] != [-1]:
                assert time.monotonic() < end, laptop.convs()
                laptop.wait_event(timeout=0.1)
            result(bob, bob.unmute(conv))
        bob.close()

        # bob is gone: alice's messages go to his phone through APNs
        deadline = time.monotonic() + 15
        seq = 0
        while not pushes_for(apns, max(seq, 2)):
            assert time.monotonic() < deadline, f"no push ({apns.errors})"
            c = alice.send("are you there?", conv)
            seq = alice.wait_for(lambda e: e.cmid == c, type=E.SENT).seq
            time.sleep(0.2)
        p = pushes_for(apns, 2)[0]
        assert p["token"] == TOKEN and p["collapse_id"] == f"conv-{conv}"
        data = p["payload"]["libchat"]
        assert data["conv"] == conv and data["sender"] == "alice"
        assert data["unread"] == data["seq"]  # bob marked nothing read
    assert not apns.errors, apns.errors
