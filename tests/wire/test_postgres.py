"""chatd on PostgreSQL (the wire-postgres run, CHATD_STORE=postgres): the database stopping or
restarting under a running chatd. Requests are refused busy (nothing stored, retry) while it is
away; nothing acked is lost or stored twice; chatd needs no restart."""

import os
import shlex
import subprocess
import threading
import time

import pytest

import pgtemp
from conftest import run_cli
from helpers import assert_error, cmid, send

pytestmark = pytest.mark.skipif(os.environ.get("CHATD_STORE") != "postgres",
                                reason="chatd on PostgreSQL only (the wire-postgres run)")


def pg_ctl(action):
    subprocess.run(shlex.split(os.environ["CHAT_TEST_PG_CTL"]) + [action], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def send_until_acked(c, frame, seconds=30):
    """Send frame, again after each busy refusal (as a client does), until it is acked."""
    deadline = time.monotonic() + seconds
    busy = 0
    while True:
        r = c.call(frame, timeout=10)
        if r["type"] == "ack":
            return r, busy
        assert_error(r, "EAGAIN", "busy")
        assert r.get("retry_after_ms", 0) > 0, r
        busy += 1
        assert time.monotonic() < deadline, f"still busy after {seconds}s: {r!r}"
        time.sleep(r["retry_after_ms"] / 1000)


def history(c, conv):
    """Every message of conv as (seq, cmid), paging forward."""
    out, after = [], 0
    while True:
        r = c.call({"type": "history", "conv": conv, "after": after, "limit": 100})
        assert r["type"] == "history", r
        out += [(m["seq"], m["cmid"]) for m in r["messages"]]
        if not r["more"]:
            return out
        after = out[-1][0]


def test_database_away_answers_busy_then_recovers(server):
    a, b = server.connect("alice"), server.connect("bob")
    one = send(a, "one", to="bob")
    conv = one["conv"]
    b.expect("msg", cmid=one["cmid"])
    two = {"type": "send", "conv": conv, "cmid": cmid(), "text": "two"}
    pg_ctl("stop")
    try:
        r = a.call(two, timeout=10)
        assert_error(r, "EAGAIN", "busy")
        assert r["retry_after_ms"] > 0, r
        assert_error(b.call({"type": "history", "conv": conv}, timeout=10), "EAGAIN", "busy")
        b.expect_none("msg", within=0.3)
    finally:
        pg_ctl("start")
    # The client's retry of the refused send: stored once, at the next seq, and delivered.
    r, _ = send_until_acked(a, two)
    assert r["seq"] == one["seq"] + 1 and r["dup"] is False, r
    b.expect("msg", cmid=two["cmid"], seq=r["seq"])
    assert history(b, conv) == [(one["seq"], one["cmid"]), (r["seq"], two["cmid"])]


@pytest.mark.seconds(120)
@pytest.mark.chatd_args("--limit", "send_rate=100000", "--limit", "send_burst=100000",
                        "--limit", "user_send_rate=100000", "--limit", "user_send_burst=100000")
def test_restart_under_load_loses_and_doubles_nothing(server):
    a = server.connect("alice")
    conv = send(a, "first", to="bob", cm="load-first")["conv"]
    acked = {"load-first": 1}
    busy = [0]
    stop = threading.Event()
    failure = []

    def sender():
        try:
            i = 0
            while not stop.is_set():
                frame = {"type": "send", "conv": conv, "cmid": f"load-{i}", "text": f"m{i}"}
                r, b = send_until_acked(a, frame)
                acked[frame["cmid"]] = r["seq"]
                busy[0] += b
                i += 1
        except BaseException as e:  # noqa: B902 - reported by the main thread
            failure.append(e)

    def wait_acked(count):
        while len(acked) < count and t.is_alive():
            time.sleep(0.01)

    # Restart twice while a client sends back to back (retrying what is refused).
    t = threading.Thread(target=sender)
    t.start()
    try:
        for _ in range(2):
            wait_acked(len(acked) + 30)
            pg_ctl("restart")
        wait_acked(len(acked) + 30)
    finally:
        stop.set()
        t.join(60)
    assert not t.is_alive(), "the sender did not finish"
    if failure:
        raise failure[0]
    assert busy[0] > 0, "no send was refused while PostgreSQL restarted"
    # Every acked message once, at the seq its ack said; seqs 1..n with no gap.
    h = history(a, conv)
    assert [seq for seq, _ in h] == list(range(1, len(acked) + 1))
    assert dict((cm, seq) for seq, cm in h) == acked


def test_newer_schema_refuses_to_start(make_server):
    srv = make_server()
    send(srv.connect("alice"), "hi", to="bob")
    srv.stop()
    conninfo = srv.command()[srv.command().index("--postgres") + 1]
    pgtemp.sql(conninfo, "UPDATE schema_version SET version = version + 100")
    r = run_cli(srv.command()[1:], timeout=15)
    assert r.returncode != 0 and "listening" not in r.stdout, (r.returncode, r.stdout)
    assert "is newer than this library's" in r.stderr and "EVERSION" in r.stderr, r.stderr
    # Put back, it starts on its data as it was.
    pgtemp.sql(conninfo, "UPDATE schema_version SET version = version - 100")
    srv.start()
    r = srv.connect("alice").call({"type": "convs"})
    assert r["type"] == "convs" and len(r["convs"]) == 1, r
