#!/usr/bin/env python3
"""Slow consumer: what a reader that stops reading costs the server and everyone else.

    bench/slow-consumer.py [--chatd build/examples/chatd/chatd] [--seconds 6] [--sync normal]

One chatd (SQLite on a temp dir). A probe pair (carol -> dave) sends a small timestamped message
every 10 ms and measures delivery latency. A heavy sender (alice) pushes 16 KB messages to bob as
fast as acks come back. Two phases of equal length, in the same run:
  A  bob reads everything (baseline);
  B  bob stops reading: his outbound queue fills, the server must cap it (close 1013) and keep
     the probe pair's latency where it was.
Prints the probe's p50/p99 per phase and B/A ratios, chatd's peak RSS per phase, and how bob's
stalled connection ended. Figures only: nothing here passes or fails.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "wire"))
from wsclient import WS, ConnectionClosed, WSTimeout  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


class Phase:
    def __init__(self):
        self.lat = []
        self.rss_peak = 0
        self.sent_bytes = 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chatd", default="build/examples/chatd/chatd")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each phase")
    ap.add_argument("--sync", default="normal", choices=["normal", "full"])
    args = ap.parse_args()

    data = tempfile.mkdtemp(prefix="slow-consumer.")
    cmd = [args.chatd, "run", "--data-dir", data, "--port", "0", "--sync", args.sync,
           "--limit", "send_rate=100000", "--limit", "send_burst=100000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    port = int(proc.stdout.readline().decode().strip().rsplit(":", 1)[1])

    def token(user):
        r = subprocess.run([args.chatd, "token", "--data-dir", data, user, "d1"],
                           capture_output=True, text=True, check=True)
        return r.stdout.strip().split()[-1]

    def connect(user):
        c = WS(port)
        r = c.call({"type": "auth", "v": 1, "token": token(user)}, timeout=10)
        assert r["type"] == "auth_ok", r
        return c

    alice, bob, carol, dave = (connect(u) for u in ("alice", "bob", "carol", "dave"))
    phases = {"A": Phase(), "B": Phase()}
    cur = {"phase": None, "stop": False}
    bob_reads = threading.Event()
    bob_reads.set()

    def probe():  # carol -> dave every 10 ms; dave's reader thread measures
        i = 0
        while not cur["stop"]:
            ph = cur["phase"]
            carol.send_json({"type": "send", "id": f"p{i}", "to": "dave", "cmid": f"p-{i}",
                             "text": f"{ph or '-'} {time.monotonic_ns()}"})
            i += 1
            time.sleep(0.01)

    def carol_drain():  # acks to carol must be read, or carol becomes a slow consumer too
        while not cur["stop"]:
            try:
                carol.recv_json(timeout=0.2)
            except (WSTimeout, ConnectionClosed):
                pass

    def dave_reader():
        while not cur["stop"]:
            try:
                f = dave.recv_json(timeout=0.2)
            except WSTimeout:
                continue
            except ConnectionClosed:
                return
            if f.get("type") == "msg" and f.get("from") == "carol":
                tag, ns = f["text"].split()
                if tag in phases:
                    phases[tag].lat.append((time.monotonic_ns() - int(ns)) / 1e6)

    def heavy():  # alice -> bob, 16 KB, a window of 32 unacked sends
        text = "z" * 16000
        i = inflight = 0
        while not cur["stop"]:
            while inflight < 32 and not cur["stop"]:
                alice.send_json({"type": "send", "id": f"h{i}", "to": "bob", "cmid": f"h-{i}",
                                 "text": text})
                i += 1
                inflight += 1
                if cur["phase"]:
                    phases[cur["phase"]].sent_bytes += len(text)
            try:
                f = alice.recv_json(timeout=0.5)
                if f.get("type") in ("ack", "error"):
                    inflight -= 1
            except WSTimeout:
                inflight = 0  # resynchronize the window
            except ConnectionClosed:
                return

    def bob_reader():
        while not cur["stop"]:
            if not bob_reads.is_set():  # stalled: bob reads nothing from here on
                time.sleep(0.05)
                continue
            try:
                bob.recv_json(timeout=0.2)
            except WSTimeout:
                pass
            except ConnectionClosed:
                return

    def sampler():
        while not cur["stop"]:
            ph = cur["phase"]
            if ph:
                phases[ph].rss_peak = max(phases[ph].rss_peak, rss_kib(proc.pid))
            time.sleep(0.05)

    threads = [threading.Thread(target=t, daemon=True)
               for t in (probe, carol_drain, dave_reader, heavy, bob_reader, sampler)]
    for t in threads:
        t.start()
    rss0 = rss_kib(proc.pid)
    cur["phase"] = "A"
    time.sleep(args.seconds)
    bob_reads.clear()
    cur["phase"] = "B"
    time.sleep(args.seconds)
    cur["stop"] = True
    for t in threads:
        t.join(timeout=5)
    # after the run: drain bob's socket to learn how the server ended his connection
    end = "still open"
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            bob.recv_json(timeout=1)
    except ConnectionClosed as e:
        end = f"closed by the server with {e.code}"
    except WSTimeout:
        pass
    proc.terminate()
    proc.wait(10)

    a, b = phases["A"], phases["B"]
    print(f"slow-consumer: chatd --sync {args.sync}, phases of {args.seconds:.0f} s, "
          f"probe every 10 ms, heavy sender 16 KB x 32 in flight")
    print(f"{'phase':<28}{'probe n':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'heavy MB':>10}{'peak RSS MiB':>14}")
    for name, ph in (("A bob reads", a), ("B bob stalled", b)):
        print(f"{name:<28}{len(ph.lat):>8}{pct(ph.lat, 50):>9.2f}{pct(ph.lat, 99):>9.2f}"
              f"{max(ph.lat or [float('nan')]):>9.2f}{ph.sent_bytes / 1e6:>10.1f}"
              f"{ph.rss_peak / 1024:>14.1f}")
    print(f"ratio B/A: p50 {pct(b.lat, 50) / pct(a.lat, 50):.2f}, p99 "
          f"{pct(b.lat, 99) / pct(a.lat, 99):.2f}; peak RSS growth in B over A "
          f"{(b.rss_peak - a.rss_peak) / 1024:+.1f} MiB (start {rss0 / 1024:.1f} MiB)")
    print(f"bob's stalled connection: {end}")
    print(f"RESULT slow_consumer p99_ratio={pct(b.lat, 99) / pct(a.lat, 99):.2f} "
          f"rss_growth_mib={(b.rss_peak - a.rss_peak) / 1024:.1f} stall_end=\"{end}\"")


if __name__ == "__main__":
    main()
