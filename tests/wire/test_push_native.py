"""Push to phones end to end: chatd with its push service against local fakes of APNs (HTTP/2
over TLS), FCM (HTTP v1 with its OAuth flow) and an https webhook, which check what the real
services check (tests/wire/pushfakes.py). Clients register devices over the wire protocol
(doc/protocol.md: push_register), go offline, and the fakes receive the pushes.

These need python3-h2 and python3-cryptography. The push service does not depend on the bus, so
they run with the default (local) bus only."""

import json
import os
import re
import time

import pytest

from helpers import send

h2 = pytest.importorskip("h2")
pytest.importorskip("cryptography")

import pushfakes  # noqa: E402  (after the skips: it imports h2 and cryptography)
from pushfakes import apns, fcm, pki  # noqa: E402,F401  (fixtures)

pytestmark = pytest.mark.skipif("--bus queued" in os.environ.get("CHATD_ARGS", ""),
                                reason="push runs on the local bus only")

BOB_PHONE = "a1" * 32
BOB_TABLET = "b2" * 32
CAROL_PHONE = "c3" * 32
FAST = ["--push-limit", "coalesce_ms=200", "--push-limit", "backoff_ms=50",
        "--push-limit", "backoff_max_ms=300", "--push-limit", "flush_ms=1500",
        "--log-level", "info"]


def push_args(pki, *fakes):
    args = ["--push-ca-file", str(pki / "ca.pem")] + FAST
    for f in fakes:
        args += f.args()
    return args


def register(c, platform, token, **extra):
    r = c.call(dict({"type": "push_register", "platform": platform, "token": token}, **extra))
    assert r["type"] == "ok", r


def apns_pushes(fake, token):
    with fake.lock:
        return [p for p in fake.accepted if p["token"] == token]


def wait_apns(fake, token, seq, timeout=10):
    """The push to token carrying seq (or a later one); fails after timeout."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in apns_pushes(fake, token):
            if p["payload"]["libchat"]["seq"] >= seq:
                return p
        time.sleep(0.02)
    raise AssertionError(f"no push to {token[:8]}… with seq {seq} (errors {fake.errors}, "
                         f"got {[p['payload']['libchat'] for p in apns_pushes(fake, token)]})")


def until_offline(alice, user, pushed, timeout=10):
    """chatd learns of a closed socket a moment after the close: alice sends probes until
    pushed(ack) sees the push of one (then user is offline for the server). The ack."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ack = send(alice, "probe", to=user)
        if pushed(ack):
            return ack
    raise AssertionError(f"{user} never went offline")


def seen(fake, token, within=0.3):
    def check(ack):
        end = time.monotonic() + within
        while time.monotonic() < end:
            if any(p["payload"]["libchat"]["seq"] >= ack["seq"] for p in apns_pushes(fake, token)):
                return True
            time.sleep(0.02)
        return False
    return check


def strictly_increasing(pushes):
    seqs = [p["payload"]["libchat"]["seq"] for p in pushes]
    assert seqs == sorted(set(seqs)), f"a seq pushed twice or out of order: {seqs}"


def test_apns_push_reaches_the_offline_device(make_server, pki, apns):
    srv = make_server(*push_args(pki, apns))
    bob = srv.connect("bob", "phone")
    register(bob, "apns", BOB_PHONE.upper())  # kept in lower case
    alice = srv.connect("alice")
    online = send(alice, "while online", to="bob")
    bob.expect("msg", seq=online["seq"])
    bob.close()
    ack = until_offline(alice, "bob", seen(apns, BOB_PHONE))
    first = apns_pushes(apns, BOB_PHONE)[0]
    # bob was online for the first message: nothing went to his phone for it
    assert first["payload"]["libchat"]["seq"] > online["seq"], first
    p = wait_apns(apns, BOB_PHONE, ack["seq"])
    assert p["collapse_id"] == f"conv-{ack['conv']}"
    aps = p["payload"]["aps"]
    assert aps["alert"]["title"] == "alice" and aps["thread-id"] == f"conv-{ack['conv']}", aps
    assert aps["mutable-content"] == 1
    data = p["payload"]["libchat"]
    assert data["conv"] == ack["conv"] and data["sender"] == "alice" and data["kind"] == "text"
    assert data["unread"] == ack["seq"]  # bob read nothing
    # no previews unless the server enables them: no message text anywhere
    assert "probe" not in json.dumps(p["payload"]) and "online" not in json.dumps(p["payload"])

    # a burst: merged into at most as many pushes, the last one with the final unread count
    acks = [send(alice, f"m{i}", to="bob") for i in range(4)]
    last = wait_apns(apns, BOB_PHONE, acks[-1]["seq"])
    assert last["payload"]["libchat"]["unread"] == acks[-1]["seq"]
    pushes = apns_pushes(apns, BOB_PHONE)
    strictly_increasing(pushes)
    assert apns.connections == 1, "one HTTP/2 connection for every push"
    assert not apns.errors, apns.errors


def test_apns_outage_delivers_everything_once(make_server, pki, apns):
    srv = make_server(*push_args(pki, apns))
    bob = srv.connect("bob", "phone")
    carol = srv.connect("carol", "phone")
    register(bob, "apns", BOB_PHONE)
    register(carol, "apns", CAROL_PHONE)
    alice = srv.connect("alice")
    bob.close()
    carol.close()
    until_offline(alice, "bob", seen(apns, BOB_PHONE))
    until_offline(alice, "carol", seen(apns, CAROL_PHONE))

    apns.down = (503, [])
    tries = apns.attempts.get(BOB_PHONE, 0)
    to_bob = [send(alice, f"b{i}", to="bob") for i in range(3)]
    to_carol = send(alice, "c", to="carol")
    end = time.monotonic() + 10
    while apns.attempts.get(BOB_PHONE, 0) < tries + 2 and time.monotonic() < end:
        time.sleep(0.02)
    assert apns.attempts.get(BOB_PHONE, 0) >= tries + 2, "the push service did not retry"
    apns.down = None

    pb = wait_apns(apns, BOB_PHONE, to_bob[-1]["seq"])
    pc = wait_apns(apns, CAROL_PHONE, to_carol["seq"])
    assert pb["payload"]["libchat"]["unread"] == to_bob[-1]["seq"]
    assert pc["payload"]["libchat"]["unread"] == to_carol["seq"]
    # what was refused meanwhile is delivered once: a later push to carol is the barrier
    barrier = send(alice, "after", to="carol")
    wait_apns(apns, CAROL_PHONE, barrier["seq"])
    strictly_increasing(apns_pushes(apns, BOB_PHONE))
    strictly_increasing(apns_pushes(apns, CAROL_PHONE))
    assert not apns.errors, apns.errors


def test_apns_queue_survives_a_restart(make_server, pki, apns):
    srv = make_server(*push_args(pki, apns))
    bob = srv.connect("bob", "phone")
    register(bob, "apns", BOB_PHONE)
    alice = srv.connect("alice")
    bob.close()
    until_offline(alice, "bob", seen(apns, BOB_PHONE))
    apns.down = (503, [])
    tries = apns.attempts.get(BOB_PHONE, 0)
    queued = [send(alice, f"q{i}", to="bob") for i in range(2)]
    end = time.monotonic() + 10
    while apns.attempts.get(BOB_PHONE, 0) <= tries and time.monotonic() < end:
        time.sleep(0.02)
    assert srv.stop() == 0  # a clean stop: the flush cannot deliver, the queue keeps it
    apns.down = None
    srv.start()
    p = wait_apns(apns, BOB_PHONE, queued[-1]["seq"])
    assert p["payload"]["libchat"]["unread"] == queued[-1]["seq"]
    strictly_increasing(apns_pushes(apns, BOB_PHONE))


def test_apns_410_drops_the_token(make_server, pki, apns):
    srv = make_server(*push_args(pki, apns))
    phone = srv.connect("bob", "phone")
    tablet = srv.connect("bob", "tablet")
    register(phone, "apns", BOB_PHONE)
    register(tablet, "apns", BOB_TABLET)
    apns.gone.add(BOB_PHONE)
    alice = srv.connect("alice")
    phone.close()
    tablet.close()
    until_offline(alice, "bob", seen(apns, BOB_TABLET))
    wait_log(srv, "deleted the registrations of 1 invalid token")
    tries = apns.attempts[BOB_PHONE]
    ack = send(alice, "after", to="bob")
    wait_apns(apns, BOB_TABLET, ack["seq"])
    assert apns.attempts[BOB_PHONE] == tries, "a push went to the token APNs called gone"
    assert apns_pushes(apns, BOB_PHONE) == []


def log(srv):
    """What chatd logged: every node's, when the server is a cluster (CHATD_CLUSTER), since
    the node that stores a message is the one that pushes it."""
    text = ""
    for node in getattr(srv, "nodes", None) or [srv]:
        with open(node.stderr_path, "rb") as f:
            text += f.read().decode("utf-8", "replace")
    return text


def wait_log(srv, text, timeout=10):
    """Wait until chatd logged text (the engine's deletion of an invalid token, say)."""
    end = time.monotonic() + timeout
    while text not in log(srv):
        assert time.monotonic() < end, f"chatd never logged {text!r}\n{log(srv)[-3000:]}"
        time.sleep(0.05)


def fcm_until_offline(alice, fcm, user, token):
    def check(ack):
        end = time.monotonic() + 0.3
        while time.monotonic() < end:
            with fcm.lock:
                if any(m["token"] == token and int(m["data"]["seq"]) >= ack["seq"]
                       for m in fcm.accepted):
                    return True
            time.sleep(0.02)
        return False
    return until_offline(alice, user, check)


def test_fcm_push_with_its_oauth_flow(make_server, pki, fcm):
    srv = make_server(*push_args(pki, fcm), "--push-previews")
    bob = srv.connect("bob", "pixel")
    carol = srv.connect("carol", "pixel")
    register(bob, "fcm", "fcm-bob:APA91b_x-y.z")
    register(carol, "fcm", "fcm-carol-gone")
    fcm.unregistered.add("fcm-carol-gone")
    alice = srv.connect("alice")
    bob.close()
    carol.close()
    ack = fcm_until_offline(alice, fcm, "bob", "fcm-bob:APA91b_x-y.z")
    with fcm.lock:
        m = [x for x in fcm.accepted if int(x["data"]["seq"]) == ack["seq"]][0]
    assert m["notification"] == {"title": "alice", "body": "probe"}  # previews on
    assert m["data"]["conv"] == str(ack["conv"]) and m["data"]["unread"] == str(ack["seq"])
    assert m["android"]["collapse_key"] == f"conv-{ack['conv']}"
    assert m["android"]["notification"]["tag"] == f"conv-{ack['conv']}"
    assert m["android"]["priority"] == "HIGH" and re.fullmatch(r"\d+s", m["android"]["ttl"])
    # carol's token is gone: FCM says UNREGISTERED, chatd drops the registration
    send(alice, "hi carol", to="carol")
    wait_log(srv, "deleted the registrations of 1 invalid token")
    send(alice, "again", to="bob")
    fcm.next_message()
    assert fcm.token_requests == 1, "the access token is kept until it nears its expiry"
    assert not fcm.errors, fcm.errors


def test_webhook_signed_over_https(make_server, pki, tmp_path):
    secret = b"a-webhook-secret-of-some-length"
    (tmp_path / "hook.secret").write_bytes(secret + b"\n")
    hook = pushfakes.WebhookFake(pki, secret)
    try:
        srv = make_server("--webhook", hook.url, "--webhook-secret-file",
                          str(tmp_path / "hook.secret"), *push_args(pki))
        alice = srv.connect("alice")
        r = send(alice, "hello", to="bob")
        ev = hook.next_event()
        assert ev["user"] == "bob" and ev["sender"] == "alice" and ev["conv"] == r["conv"], ev
        assert ev["seq"] == r["seq"] and ev["unread"] == 1 and ev["count"] == 1, ev
        assert "preview" not in ev
        assert not hook.errors, hook.errors
    finally:
        hook.stop()


def test_push_secrets_stay_out_of_the_log(make_server, pki, apns, fcm, tmp_path):
    secret = b"0123456789abcdef-webhook-secret"
    (tmp_path / "hook.secret").write_bytes(secret)
    hook = pushfakes.WebhookFake(pki, secret)
    try:
        args = push_args(pki, apns, fcm) + ["--webhook", hook.url, "--webhook-secret-file",
                                           str(tmp_path / "hook.secret"), "--log-level", "debug"]
        srv = make_server(*args)
        phone = srv.connect("bob", "phone")
        pixel = srv.connect("bob", "pixel")
        register(phone, "apns", BOB_PHONE)
        register(pixel, "fcm", "fcm-secret-token-of-bob")
        carol = srv.connect("carol", "phone")
        register(carol, "apns", CAROL_PHONE)
        apns.gone.add(CAROL_PHONE)
        alice = srv.connect("alice")
        for c in (phone, pixel, carol):
            c.close()
        until_offline(alice, "bob", seen(apns, BOB_PHONE))
        send(alice, "x", to="carol")
        fcm.next_message()
        hook.next_event()
        wait_log(srv, "invalid token")
        srv.stop()
        text = log(srv)
        # the log says what happened, at debug level ...
        assert "push apns: sent to bob/phone" in text and "push fcm: sent to bob/pixel" in text
        assert "push webhook: sent to bob" in text
        # ... and holds no token, key, access token, JWT or secret
        with open(apns.key_file) as f:
            p8_lines = [l for l in f.read().splitlines() if l and not l.startswith("-----")]
        secrets = ([BOB_PHONE, CAROL_PHONE, "fcm-secret-token-of-bob", secret.decode()] +
                   p8_lines + fcm.key_lines + list(fcm.issued) + list(apns.jwts))
        assert len(apns.jwts) >= 1 and len(fcm.issued) >= 1
        for s in secrets:
            assert s not in text, f"a secret reached the log: {s[:12]}…"
        assert "eyJ" not in text  # no JWT of any kind
    finally:
        hook.stop()
