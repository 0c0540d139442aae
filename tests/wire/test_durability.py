"""Acked means durable (doc/protocol.md: Durability)."""

import signal
import threading
import time

import pytest

from helpers import create_group, history_all, send

FAST = ("--limit", "send_rate=100000", "--limit", "send_burst=100000")


def _send_and_kill(server, n=200, kill_after=None):
    a = server.connect("alice")
    ids = []
    for i in range(n):
        rid = f"k{i}"
        a.send_json({"type": "send", "id": rid, "to": "bob", "cmid": f"dur-{i}", "text": f"d{i}"})
        ids.append(rid)
    acks = {}
    for rid in ids:
        r = a.expect(None, timeout=30, re=rid)
        assert r["type"] == "ack", r
        acks[r["cmid"]] = r
        if kill_after is not None and len(acks) >= kill_after:
            break
    server.kill9()
    return acks


def _check(server, acks, sent):
    b = server.connect("bob")
    conv = next(iter(acks.values()))["conv"]
    msgs = history_all(b, conv, page=50)
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(1, len(seqs) + 1)), f"seqs not contiguous from 1: {seqs}"
    cmids = [m["cmid"] for m in msgs]
    assert len(set(cmids)) == len(cmids), "a message was stored twice"
    by_cmid = {m["cmid"]: m for m in msgs}
    for cm, ack in acks.items():
        assert cm in by_cmid, f"acked message {cm} (seq {ack['seq']}) lost after kill -9"
        m = by_cmid[cm]
        assert m["seq"] == ack["seq"] and m["ts"] == ack["ts"], (m, ack)
        assert m["text"] == "d" + cm.split("-")[1]
    assert set(cmids) <= {f"dur-{i}" for i in range(sent)}
    # one sender, pipelined: storage order is send order
    assert cmids == sorted(cmids, key=lambda c: int(c.split("-")[1]))
    return msgs


@pytest.mark.seconds(120)
@pytest.mark.chatd_args(*FAST)
def test_every_acked_message_survives_kill9(server):
    acks = _send_and_kill(server, 200)
    assert len(acks) == 200
    server.start()
    msgs = _check(server, acks, 200)
    assert len(msgs) == 200


@pytest.mark.seconds(120)
@pytest.mark.chatd_args(*FAST)
def test_acked_messages_survive_kill9_mid_stream(server):
    acks = _send_and_kill(server, 200, kill_after=60)
    server.start()
    _check(server, acks, 200)


@pytest.mark.seconds(120)
@pytest.mark.chatd_args("--sync", "full", *FAST)
def test_sync_full_acked_messages_survive_kill9(server):
    acks = _send_and_kill(server, 50)
    server.start()
    _check(server, acks, 50)


@pytest.mark.chatd_args(*FAST)
def test_seq_continues_after_restart_without_dup(server):
    a = server.connect("alice")
    r1 = send(a, "one", to="bob", cm="keep-1")
    server.kill9()
    server.start()
    a = server.connect("alice")
    again = a.call({"type": "send", "to": "bob", "cmid": "keep-1", "text": "one"})
    assert again["type"] == "ack" and again["dup"] is True and again["seq"] == r1["seq"], again
    r2 = send(a, "two", to="bob")
    assert r2["conv"] == r1["conv"] and r2["seq"] == 2, r2


@pytest.mark.chatd_args(*FAST)
def test_groups_and_receipts_survive_restart(server):
    a = server.connect("alice")
    b = server.connect("bob")
    conv = create_group(a, ["bob"], title="Keep")
    cid = conv["conv"]
    send(a, "x", conv=cid)
    b.expect("msg", conv=cid, seq=2)
    assert b.call({"type": "receipt", "conv": cid, "read": 2})["type"] == "ok"
    server.kill9()
    server.start()
    b = server.connect("bob")
    cv = [c for c in b.call({"type": "convs", "since": 0})["convs"] if c["conv"] == cid][0]
    assert cv["title"] == "Keep" and cv["role"] == "member", cv
    assert cv["head"] == 2 and cv["read"] == 2 and cv["unread"] == 0, cv


def test_sigterm_exits_zero(server):
    server.connect("alice")
    assert server.stop() == 0, server.stderr_tail()


def test_sigint_exits_zero(server):
    server.connect("alice")
    assert server.stop(sig=signal.SIGINT) == 0, server.stderr_tail()


def test_restart_on_same_data_dir_keeps_tokens_valid(server):
    tok = server.token("alice", "d1")
    server.restart()
    c = server.ws()
    r = c.call({"type": "auth", "v": 1, "token": tok})
    assert r["type"] == "auth_ok", r


@pytest.mark.seconds(120)
@pytest.mark.chatd_args(*FAST)
def test_concurrent_writers_acked_messages_survive_kill9(server):
    users = ["alice", "bob", "carol", "dave"]
    conns = {u: server.connect(u) for u in users}
    conv = create_group(conns["alice"], users[1:], title="Load")
    cid = conv["conv"]
    acked = {u: [] for u in users}
    stop = threading.Event()

    def run(u):
        c = conns[u]
        try:
            for i in range(60):
                c.send_json({"type": "send", "id": f"{u}{i}", "conv": cid, "cmid": f"{u}-{i}",
                             "text": f"{u} {i}"})
            for i in range(60):
                r = c.expect(None, timeout=20, re=f"{u}{i}")
                if r["type"] != "ack":
                    break
                acked[u].append(r)
                if stop.is_set():
                    break
        except (AssertionError, OSError):
            pass

    threads = [threading.Thread(target=run, args=(u,), daemon=True) for u in users]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while sum(len(v) for v in acked.values()) < 120 and time.monotonic() < deadline:
        time.sleep(0.005)
    stop.set()
    server.kill9()
    for t in threads:
        t.join(30)
    server.start()
    b = server.connect("bob", "after")
    msgs = history_all(b, cid, page=50)
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(1, len(seqs) + 1)), "seqs not contiguous after kill -9"
    stored = {(m["from"], m["cmid"]): m for m in msgs if m["kind"] != "event"}
    assert len(stored) == len(msgs) - 1
    n = 0
    for u, acks in acked.items():
        for a in acks:
            m = stored.get((u, a["cmid"]))
            assert m is not None, f"acked {u}/{a['cmid']} seq {a['seq']} lost"
            assert m["seq"] == a["seq"], (m, a)
            n += 1
    assert n >= 1
