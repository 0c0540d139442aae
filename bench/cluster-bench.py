#!/usr/bin/env python3
"""Two chatd nodes against one, on one PostgreSQL and one nats-server, driven by chat-bench.

Every server process (the chatd nodes, PostgreSQL, nats-server) is pinned to cpu 0 and the
generator to cpu 1, as in run-all.sh. In each round, at each fixed rate (1:1 pairs, --conns
connections):

  one-node     one chatd on PostgreSQL, alone (the local bus)
  same-node    two nodes on NATS, each pair on one node (alternating): nothing crosses
  cross-node   two nodes on NATS, partners on different nodes: every message crosses

chat-bench reports the chatd processes' CPU (summed over the nodes) and, with --aux-pids, that
of PostgreSQL (the postmaster and its backends) and of nats-server. The summary gives, for
each, the server CPU per delivered message (chatd alone, PostgreSQL, NATS) and p99, medians of
the rounds, and cross-node's chatd CPU per message over same-node's.

Then the durable ceilings: one chatd on PostgreSQL (fsync on, synchronous_commit on: an ack
means flushed) against one on SQLite (synchronous NORMAL and FULL), stepped rates.

--one-conv instead: two nodes writing one conversation at once (a group of --members, its
senders alternating between the nodes), write affinity off against on in every round:

  conv-off     each node writes what its clients send: both contend for the conversation's lock
  conv-on      --affinity: the conversation's owner writes every send

    bench/cluster-bench.py [BUILD (build)] [--rounds 3] [--rates 2000,5000] [--conns 1000]
                           [--step-secs 5] [--ceiling-rates R1,R2,...] [--no-ceilings]
                           [--one-conv [--members 8] [--senders 8]]

Needs PostgreSQL's server binaries and nats-server (Debian: postgresql, nats-server). Prints
every chat-bench line, then a summary.
"""

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import natstemp  # noqa: E402
import pgtemp  # noqa: E402

STEP_RE = re.compile(r"^(\S+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+"
                     r"([\d.]+)\s+([\d.]+)\s+(\d+)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)")
AUX_RE = re.compile(r"^# aux CPU % \(the --aux-pids groups\):((?: [\d.]+)+)")


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def pin(pid, cpu=0):
    subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], check=True,
                   stdout=subprocess.DEVNULL)


class Node:
    def __init__(self, chatd, name, workdir, args):
        self.data = os.path.join(workdir, name)
        os.makedirs(self.data, exist_ok=True)
        self.log = open(os.path.join(workdir, f"{name}.log"), "wb")
        self.proc = subprocess.Popen(["taskset", "-c", "0", chatd, "run", "--data-dir", self.data,
                                      "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode().strip()
        if "listening on" not in line:
            self.proc.wait(10)
            sys.exit(f"chatd {name} did not start: {line!r} (log in {workdir})")
        self.port = int(line.rsplit(":", 1)[1])

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# Lifted limits, as run-all.sh gives chatd: the generator's rates, not a deployment's.
LIMITS = ["--limit", "send_rate=1000000", "--limit", "send_burst=1000000",
          "--limit", "user_send_rate=1000000", "--limit", "user_send_burst=1000000",
          "--limit", "connections=100000"]


def bench(o, label, ports, pids, aux, rates, key_file, split="peers", mode=("pairs",)):
    cmd = [o.chat_bench, "--mode", *mode, "--label", label, "--port", str(ports[0]),
           "--server-pid", ",".join(map(str, pids)), "--cpu", "1", "--conns", str(o.conns),
           "--rates", rates, "--step-secs", str(o.step_secs), "--key-file", key_file]
    if len(ports) > 1:
        cmd += ["--port2", str(ports[1]), "--split", split]
    if aux:  # groups: PostgreSQL's processes, then nats-server
        cmd += ["--aux-pids", "/".join(",".join(map(str, g)) for g in aux if g)]
    out = subprocess.run(["taskset", "-c", "1", *cmd], capture_output=True, text=True)
    sys.stdout.write(out.stdout)
    sys.stdout.flush()
    steps, last = [], None
    for ln in out.stdout.splitlines():
        m = STEP_RE.match(ln)
        if m and m.group(1) == label:
            last = {"rate": int(m.group(3)), "deliv": float(m.group(5)),
                    "p99": float(m.group(7)), "lost": int(m.group(10)),
                    "errors": int(m.group(11)), "srv": float(m.group(13)), "aux": []}
            steps.append(last)
        m = AUX_RE.match(ln)
        if m and last is not None:
            last["aux"] = [float(x) for x in m.group(1).split()]
    if out.returncode != 0 and not steps:
        print(out.stderr, file=sys.stderr)
    return steps


def aux_split(pg_pid, nats_pid):
    return [pg_pid] + children(pg_pid), [nats_pid]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rates", default="2000,5000")
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--step-secs", type=float, default=5)
    ap.add_argument("--ceiling-rates",
                    default="2500,5000,7500,10000,12500,15000,17500,20000,22500,25000,30000")
    ap.add_argument("--no-ceilings", action="store_true")
    ap.add_argument("--one-conv", action="store_true")
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--senders", type=int, default=8)
    o = ap.parse_args()
    if o.one_conv:
        o.no_ceilings = True
    configs = ("conv-off", "conv-on") if o.one_conv else ("one-node", "same-node", "cross-node")
    chatd = os.path.join(o.build, "examples", "chatd", "chatd")
    o.chat_bench = os.path.join(o.build, "bench", "chat-bench")
    nats_bin = natstemp.find_nats_server()
    if not nats_bin or not pgtemp.find_bindir():
        sys.exit("needs nats-server and PostgreSQL's server binaries")
    work = tempfile.mkdtemp(prefix="chat-cluster-bench-")
    key_file = os.path.join(work, "token.key")
    subprocess.run([chatd, "token", "--key-file", key_file, "x", "y"], check=True,
                   stdout=subprocess.DEVNULL)
    pg = pgtemp.TempPostgres(fsync=True).start()
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        pg_pid = int(f.readline())
    for p in [pg_pid] + children(pg_pid):
        pin(p)
    nats = natstemp.NatsServer(os.path.join(work, "nats"), nats_bin).start()
    pin(nats.proc.pid)
    results = {}  # (config, rate) -> list of (chatd us/msg, pg us/msg, nats us/msg, p99)
    shape = (f"one group of {o.members} members, {o.senders} senders" if o.one_conv
             else f"{o.conns} connections")
    print(f"# cluster-bench: {o.rounds} round(s), rates {o.rates}, {shape}, "
          f"steps of {o.step_secs} s; servers pinned to cpu 0, chat-bench to cpu 1; "
          f"PostgreSQL with fsync on")
    try:
        for rnd in range(1, o.rounds + 1):
            print(f"## round {rnd} of {o.rounds}", flush=True)
            for config in configs:
                schema = f"b{rnd}{config.replace('-', '')}"
                pgtemp.sql(pg.conninfo(), f"CREATE SCHEMA {schema}")
                conninfo = pg.conninfo() + f" options=-csearch_path={schema}"
                common = ["--postgres", conninfo, "--key-file", key_file,
                          "--media-dir", os.path.join(work, "media")] + LIMITS
                nodes = []
                try:
                    if config == "one-node":
                        nodes.append(Node(chatd, f"{schema}-a", work, common))
                    else:
                        for name in ("a", "b"):
                            nodes.append(Node(chatd, f"{schema}-{name}", work, common + [
                                "--nats", nats.url(), "--node-id", name,
                                "--nats-prefix", schema] + (
                                    ["--affinity"] if config == "conv-on" else [])))
                    pg_pids, nats_pids = aux_split(pg_pid, nats.proc.pid)
                    for p in pg_pids:
                        pin(p)
                    split = "pairs" if config == "same-node" else "peers"
                    aux = [pg_pids] + ([nats_pids] if config != "one-node" else [])
                    mode = (("group", "--members", str(o.members), "--group-senders",
                             str(o.senders)) if o.one_conv else ("pairs",))
                    steps = bench(o, config, [n.port for n in nodes],
                                  [n.proc.pid for n in nodes], aux, o.rates, key_file, split,
                                  mode)
                    for s in steps:
                        results.setdefault((config, s["rate"]), []).append(s)
                finally:
                    for n in nodes:
                        n.stop()
        if not o.no_ceilings:
            print("## durable ceilings", flush=True)
            for label, args in (("pg-fsync", ["--postgres"]), ("sqlite-normal", []),
                                ("sqlite-full", ["--sync", "full"])):
                extra = []
                if label == "pg-fsync":
                    schema = "bceiling"
                    pgtemp.sql(pg.conninfo(), f"CREATE SCHEMA {schema}")
                    extra = ["--postgres", pg.conninfo() + f" options=-csearch_path={schema}"]
                else:
                    extra = args
                n = Node(chatd, label, work, ["--key-file", key_file] + extra + LIMITS)
                try:
                    pg_pids = [pg_pid] + children(pg_pid) if label == "pg-fsync" else []
                    for p in pg_pids:
                        pin(p)
                    steps = bench(o, label, [n.port], [n.proc.pid], [pg_pids],
                                  o.ceiling_rates, key_file)
                    ok = [s for s in steps if s["lost"] == 0 and s["errors"] == 0 and
                          s["p99"] <= 100]
                    results[(label, "ceiling")] = max((s["deliv"] for s in ok), default=0)
                finally:
                    n.stop()
    finally:
        nats.stop(signal.SIGTERM)
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    if o.one_conv:
        summary_one_conv(o, results)
    else:
        summary(o, results)


def summary_one_conv(o, results):
    """Messages/s (deliveries over the members who receive each) and p99, off against on."""
    print(f"\n== one conversation written by two nodes: messages/s and p99 (ms), medians of "
          f"rounds; {o.members} members, {o.senders} senders ==")
    print(f"{'rate':>6} {'off msg/s':>10} {'on msg/s':>9} {'on/off':>7} {'off p99':>8} "
          f"{'on p99':>8} {'on/off':>7}  lost+errors off, on")
    for rate in sorted({r for (_, r) in results}):
        row = {}
        for config in ("conv-off", "conv-on"):
            steps = results.get((config, rate), [])
            if steps:
                row[config] = (statistics.median(s["deliv"] for s in steps) / (o.members - 1),
                               statistics.median(s["p99"] for s in steps),
                               sum(s["lost"] + s["errors"] for s in steps))
        if len(row) < 2:
            continue
        (m0, p0, e0), (m1, p1, e1) = row["conv-off"], row["conv-on"]
        print(f"{rate:>6} {m0:10.0f} {m1:9.0f} {m1 / m0 if m0 else 0:7.2f} {p0:8.2f} {p1:8.2f} "
              f"{p1 / p0 if p0 else 0:7.2f}  {e0}, {e1}")


def summary(o, results):
    print("\n== chatd CPU per delivered message (us; medians of rounds), p99 (ms) ==")
    print(f"{'config':12} {'rate':>6} {'chatd us':>9} {'pg us':>7} {'nats us':>8} "
          f"{'p99 ms':>8}  chatd us per round")
    per = {}
    for (config, rate), steps in sorted(results.items(), key=lambda kv: str(kv[0])):
        if rate == "ceiling":
            continue
        us = [1e4 * s["srv"] / s["deliv"] for s in steps if s["deliv"] > 0]
        def med_aux(g):
            v = [1e4 * s["aux"][g] / s["deliv"] for s in steps
                 if s["deliv"] > 0 and len(s["aux"]) > g]
            return statistics.median(v) if v else 0
        p99 = [s["p99"] for s in steps]
        per[(config, rate)] = statistics.median(us) if us else 0
        print(f"{config:12} {rate:>6} {per[(config, rate)]:9.2f} {med_aux(0):7.2f} "
              f"{med_aux(1):8.2f} {statistics.median(p99) if p99 else 0:8.2f}  "
              + " ".join(f"{u:.2f}" for u in us))
    for rate in sorted({r for (_, r) in per if r != "ceiling"}):
        same, cross = per.get(("same-node", rate)), per.get(("cross-node", rate))
        if same and cross:
            print(f"cross-node / same-node chatd CPU per message at {rate}/s: {cross / same:.2f}")
    if not o.no_ceilings:
        print("\n== durable 1:1 ceilings (one node, p99 <= 100 ms, nothing lost) ==")
        for label in ("pg-fsync", "sqlite-normal", "sqlite-full"):
            print(f"{label:14} {results.get((label, 'ceiling'), 0):9.0f} msgs/s")


if __name__ == "__main__":
    main()
