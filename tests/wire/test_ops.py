"""Operating chatd (doc/operations.md): the admin listener's /metrics (read by the Prometheus
client library's own parser), /healthz and /readyz, the drain on SIGTERM under load, the log
(JSON lines, no bodies or tokens, SIGHUP reopens it) and `chatd admin`."""

import json
import os
import signal
import threading
import time

import pytest

from conftest import extra_args, run_cli, store_args
from helpers import admin_addr, history_all, http, readyz_until, send

# One node's own counters, drain, log and admin listener; nodes together: tests/cluster.
pytestmark = pytest.mark.single_node("a node's own metrics, drain, log and admin")

FAST = ("--limit", "send_rate=100000", "--limit", "send_burst=100000",
        "--limit", "user_send_rate=100000", "--limit", "user_send_burst=100000")
ADMIN = ("--admin-listen", "127.0.0.1:0")
def metric(families, name, **labels):
    """The value of one sample, from prometheus_client's parse of the page."""
    for fam in families:
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise AssertionError(f"no sample {name}{labels}")


@pytest.mark.chatd_args(*ADMIN)
def test_metrics_page_parses_and_counts(server):
    parser = pytest.importorskip("prometheus_client.parser")
    addr = admin_addr(server)
    a, b = server.connect("alice"), server.connect("bob")
    for i in range(5):
        send(a, f"m{i}", to="bob")
        b.expect("msg")
    a.send_json({"type": "history", "id": "h"})  # no conv: EINVAL
    a.expect("error", re="h")
    status, text = http(addr, "/metrics")
    assert status == 200
    families = list(parser.text_string_to_metric_families(text))
    kinds = {f.name: f.type for f in families}
    assert kinds["chat_messages_stored"] == "counter"
    assert kinds["chat_connections"] == "gauge"
    assert kinds["chat_ack_latency_seconds"] == "histogram"
    assert metric(families, "chat_messages_stored_total") == 5
    assert metric(families, "chat_acks_total") == 5
    assert metric(families, "chat_messages_delivered_total") == 5
    assert metric(families, "chat_errors_total", code="EINVAL") == 1
    assert metric(families, "chat_connections", state="authenticated") == 2
    assert metric(families, "chat_ack_latency_seconds_count") == 5
    assert metric(families, "chat_ack_latency_seconds_bucket", le="+Inf") == 5
    assert metric(families, "chat_store_commit_seconds_count") >= 5
    assert metric(families, "chat_draining") == 0
    assert http(addr, "/healthz") == (200, "ok\n")
    assert http(addr, "/readyz") == (200, "ready\n")
    assert http(addr, "/nope")[0] == 404
    assert http(addr, "/metrics", method="POST")[0] == 405


@pytest.mark.chatd_args(*ADMIN)
def test_readyz_fails_while_draining_and_logins_finish_first(server):
    """SIGTERM: not ready at once; logins already taken are answered, then 1001 for all."""
    addr = admin_addr(server)
    server.user_add("ann", "pw")
    clients = [server.ws() for _ in range(8)]
    for i, c in enumerate(clients):
        c.send_json({"type": "login", "v": 1, "id": f"l{i}", "user": "ann", "password": "pw",
                     "device": f"d{i}"})
    # Wait until several password checks are queued (one at a time, ~0.1 s each).
    parse = pytest.importorskip("prometheus_client.parser").text_string_to_metric_families
    for _ in range(200):
        fams = list(parse(http(addr, "/metrics")[1]))
        if metric(fams, "chat_connections", state="handshake") >= 4:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the logins were never seen in flight")
    server.proc.send_signal(signal.SIGTERM)
    # The signal reaches chatd's main thread a moment later; the logins still in flight keep
    # the drain going for a while (their checks run one at a time).
    status, body = readyz_until(addr, ready=False)
    assert status == 503 and "draining" in body, (status, body)
    assert http(addr, "/healthz")[0] == 200  # alive, only not ready
    answered = 0
    for c in clients:
        code = c.close_code(timeout=30)
        frames = c.backlog
        assert code == 1001, (code, frames)
        assert all(f["type"] != "error" for f in frames), frames
        answered += any(f["type"] == "auth_ok" for f in frames)
    assert answered >= 4  # every login seen in flight got its token before the close
    server.proc.wait(30)
    assert server.proc.returncode == 0
    server.expected_dead = True


def _sender(srv, user, peer, window, out):
    """Send to peer as fast as acks come back until the server closes the connection."""
    c = srv.connect(user)
    acks, errors, n, inflight, sending = [], [], 0, 0, True
    try:
        while True:
            while sending and inflight < window:
                try:
                    c.send_json({"type": "send", "id": f"{user}-{n}", "to": peer,
                                 "cmid": f"{user}-{n}", "text": f"load {user} {n}"})
                except OSError:  # the server closed its side: its close frame is to be read
                    sending = False
                    break
                n += 1
                inflight += 1
            f = c.recv_json(timeout=30)
            if f.get("type") == "ack":
                acks.append(f)
                inflight -= 1
            elif f.get("type") == "error":
                errors.append(f)
    except Exception as e:  # the close ends the loop
        out["end"][user] = e
    out["acks"][user] = acks
    out["errors"][user] = errors
    out["close"][user] = c.close_code_value


def _reader(srv, user, out):
    c = srv.connect(user)
    errors = []
    try:
        while True:
            f = c.recv_json(timeout=30)
            if f.get("type") == "error":
                errors.append(f)
    except Exception:
        pass
    out["errors"][user] = errors
    out["close"][user] = c.close_code_value


@pytest.mark.seconds(120)
@pytest.mark.chatd_args(*FAST, "--drain-secs", "20")
def test_sigterm_under_load_loses_nothing_acked(server):
    pairs = [(f"s{i}", f"r{i}") for i in range(4)]
    out = {"acks": {}, "errors": {}, "close": {}, "end": {}}
    threads = [threading.Thread(target=_reader, args=(server, r, out)) for _, r in pairs]
    threads += [threading.Thread(target=_sender, args=(server, s, r, 16, out)) for s, r in pairs]
    for t in threads:
        t.start()
    # Let the load run, then take the server down gracefully in the middle of it.
    time.sleep(1.0)
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a client never saw the server close"
    server.proc.wait(30)
    assert server.proc.returncode == 0, server.stderr_tail()
    server.expected_dead = True
    server.clients = []
    for user, code in out["close"].items():
        assert code == 1001, f"{user} saw close {code} ({out['end'].get(user)!r})"
    for user, errs in out["errors"].items():
        assert not errs, f"{user} saw errors: {errs[:3]}"
    total = sum(len(a) for a in out["acks"].values())
    assert total > 0
    # Every ack received is in the store after the restart, at its seq.
    server.start()
    for s, r in pairs:
        acks = out["acks"][s]
        if not acks:
            continue
        reader = server.connect(r)
        msgs = {m["cmid"]: m for m in history_all(reader, acks[0]["conv"], page=200)}
        for a in acks:
            m = msgs.get(a["cmid"])
            assert m is not None, f"acked {a['cmid']} (seq {a['seq']}) is not in the store"
            assert m["seq"] == a["seq"] and m["text"] == f"load {s} {a['cmid'].split('-')[1]}"


def test_json_log_has_stable_keys_no_secrets_and_reopens(make_server, tmp_path):
    log = tmp_path / "chatd.log"
    srv = make_server("--log-format", "json", "--log-level", "debug", "--log-file", str(log))
    token = srv.token("alice")
    a = srv.connect("alice")
    secret = "the body nobody may log 1f3a"
    send(a, secret, to="bob")
    a.send_json({"type": "send", "id": "bad-1", "to": "bob", "cmid": "x"})  # no text
    a.expect("error", re="bad-1")
    a.close()
    time.sleep(0.3)
    text = log.read_text()
    assert token not in text and secret not in text
    lines = [json.loads(l) for l in text.splitlines()]
    keys = {"ts", "level", "msg", "conn", "user", "device", "req", "code"}
    for l in lines:
        assert set(l) <= keys, l
        assert {"ts", "level", "msg"} <= set(l), l
    assert any(l["msg"] == "authenticated" and l.get("user") == "alice" and
               l.get("device") == "d1" and isinstance(l.get("conn"), int) for l in lines), text
    assert any(l.get("req") == "bad-1" and l.get("code") == "EINVAL" and l["level"] == "debug"
               for l in lines), text
    # logrotate: the file is moved away, SIGHUP, and the next lines go to a new file.
    os.rename(log, tmp_path / "chatd.log.1")
    srv.proc.send_signal(signal.SIGHUP)
    for _ in range(100):
        if log.exists():
            break
        time.sleep(0.05)
    srv.connect("bob")
    time.sleep(0.3)
    fresh = [json.loads(l) for l in log.read_text().splitlines()]
    assert any(l.get("user") == "bob" for l in fresh), fresh


def _admin(srv, *args):
    # The suite's own options too: with --postgres the store to read is there.
    return run_cli(["admin", "--data-dir", srv.data_dir, *store_args(srv.data_dir),
                    *extra_args(), *args])


@pytest.mark.chatd_args(*ADMIN)
def test_admin_commands_through_the_listener(server):
    addr = admin_addr(server)
    a = server.connect("alice", "phone")
    lap = server.connect("alice", "laptop")
    old_laptop = server.token("alice", "laptop")
    ack = send(a, "hello", to="bob")

    r = _admin(server, "user", "alice")
    assert r.returncode == 0, r.stderr
    u = json.loads(r.stdout)
    devices = {d["device"]: d for d in u["devices"]}
    assert set(devices) == {"phone", "laptop"} and u["online"] is True
    phone_conn = devices["phone"]["connections"][0]["id"]

    r = _admin(server, "conv", str(ack["conv"]))
    assert r.returncode == 0, r.stderr
    conv = json.loads(r.stdout)
    assert conv["head"] == 1 and [m["user"] for m in conv["members"]] == ["alice", "bob"]

    r = _admin(server, "stats")
    assert r.returncode == 0 and "chat_messages_stored_total 1" in r.stdout, r.stdout

    r = _admin(server, "disconnect", str(phone_conn))
    assert r.returncode == 0, r.stderr
    assert a.close_code() == 1008
    r = _admin(server, "disconnect", str(phone_conn))
    assert r.returncode != 0 and "ENOTFOUND" in r.stderr

    r = _admin(server, "revoke-device", "alice", "laptop")
    assert r.returncode == 0, r.stderr
    assert lap.close_code() == 1008
    # The listener refuses the admin routes without the token; the probes need none.
    assert http(addr, "/admin/users/alice")[0] == 401
    assert http(addr, "/admin/users/alice", token="0" * 64)[0] == 401

    # The revocation survives a restart: the old token is refused, a new one works.
    server.restart()
    c = server.ws()
    f = c.call({"type": "auth", "v": 1, "token": old_laptop})
    assert f["type"] == "error" and f["code"] == "EAUTH", f
    fresh = server.token("alice", "laptop", cache=False)
    c2 = server.ws()
    assert c2.call({"type": "auth", "v": 1, "token": fresh})["type"] == "auth_ok"

    # With the server stopped, conv and user read the store directly.
    server.stop()
    r = _admin(server, "conv", str(ack["conv"]))
    assert r.returncode == 0 and json.loads(r.stdout)["head"] == 1, r.stderr
    r = _admin(server, "user", "alice")
    assert r.returncode == 0, r.stderr
    revoked = {d["device"]: d["revoked_ms"] for d in json.loads(r.stdout)["devices"]}
    assert revoked["laptop"] > 0
    r = _admin(server, "stats")
    assert r.returncode != 0 and "admin listener" in r.stderr
    # An address left behind by a chatd that died (kill -9): the store is read all the same.
    with open(os.path.join(server.data_dir, "admin.addr"), "w") as f:
        f.write("127.0.0.1:1\n")
    r = _admin(server, "conv", str(ack["conv"]))
    assert r.returncode == 0 and json.loads(r.stdout)["head"] == 1, r.stderr


def test_admin_refused_to_others_than_the_owner(tmp_path):
    d = tmp_path / "data"
    d.mkdir()
    if os.geteuid() == 0:
        os.chown(d, 65534, 65534)
        target = str(d)
    else:
        target = "/"  # owned by root
    r = run_cli(["admin", "--data-dir", target, "conv", "1"])
    assert r.returncode != 0 and "owner" in r.stderr, r.stderr
