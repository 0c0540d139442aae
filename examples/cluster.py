#!/usr/bin/env python3
"""A libchat cluster on this machine in one command: a throwaway PostgreSQL, a nats-server and
N chatd nodes on loopback, sharing one store, one token key file and one media directory, each
with an admin listener (/metrics, /healthz, /readyz). Ctrl-C stops everything (each node
drains) and removes what it made (doc/cluster.md).

    python3 examples/cluster.py                  3 nodes on ports 7701, 7702, 7703
    python3 examples/cluster.py --shared-port    3 nodes all on port 7700 (SO_REUSEPORT: the
                                                 kernel spreads connections over them)
    python3 examples/cluster.py --nodes 5 --port 9000

Options: --nodes N (default 3), --port P (default 7700: the nodes take P+1..P+N, or P itself
with --shared-port; 0 picks free ports), --chatd PATH (default build/examples/chatd/chatd),
--nats-server PATH (default from PATH or /usr/sbin). PostgreSQL comes from Debian's
postgresql package (initdb in a temporary directory, as the unprivileged "postgres" or
"nobody" user when run as root); nats-server from Debian's nats-server package.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "lib"))
import natstemp  # noqa: E402 - the same helpers the cluster tests use
import pgtemp  # noqa: E402


class Node:
    def __init__(self, name, chatd, workdir, shared, args):
        self.name = name
        self.data = os.path.join(workdir, name)
        self.log = os.path.join(workdir, f"{name}.log")
        self.cmd = [chatd, "run", "--data-dir", self.data, "--node-id", name] + shared + args
        self.proc = None
        self.port = None
        self.admin = None  # ADDR:PORT of /metrics, /healthz, /readyz and the admin commands

    def start(self):
        os.makedirs(self.data, exist_ok=True)
        with open(self.log, "ab") as log:
            # its own process group: a Ctrl-C reaches the launcher, which stops it in order
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=log,
                                         start_new_session=True)
        line = self.proc.stdout.readline().decode(errors="replace").strip()
        if not line.startswith("chatd listening on "):
            self.proc.wait(10)
            raise RuntimeError(f"node {self.name} did not start ({self.proc.returncode}); "
                               f"its log, {self.log}:\n{tail(self.log)}")
        self.port = int(line.rsplit(":", 1)[1])
        line = self.proc.stdout.readline().decode(errors="replace").strip()
        prefix = "chatd admin listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"node {self.name} printed no admin address: {line!r}")
        self.admin = line[len(prefix):]
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def tail(path, n=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def find_chatd(path):
    for p in ([path] if path else
              [os.path.join(HERE, "..", "build", "examples", "chatd", "chatd"),
               shutil.which("chatd")]):
        if p and os.access(p, os.X_OK):
            return os.path.abspath(p)
    sys.exit("chatd not found: build it first (bash .ci/build build) or pass --chatd PATH")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--port", type=int, default=7700)
    ap.add_argument("--shared-port", action="store_true")
    ap.add_argument("--chatd")
    ap.add_argument("--nats-server")
    opts = ap.parse_args()
    if not 1 <= opts.nodes <= 64:
        sys.exit("--nodes must be 1-64")
    chatd = find_chatd(opts.chatd)
    nats_bin = opts.nats_server or natstemp.find_nats_server()
    if not nats_bin:
        sys.exit("nats-server not found: apt-get install nats-server (or --nats-server PATH)")

    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())

    workdir = tempfile.mkdtemp(prefix="chat-cluster-")
    pg = nats = None
    nodes = []
    try:
        try:
            pg = pgtemp.TempPostgres().start()
        except pgtemp.PostgresMissing as e:
            sys.exit(f"PostgreSQL: {e}")
        nats = natstemp.NatsServer(os.path.join(workdir, "nats"), nats_bin).start()
        key_file = os.path.join(workdir, "token.key")
        shared = ["--postgres", pg.conninfo(), "--nats", nats.url(), "--key-file", key_file,
                  "--media-dir", os.path.join(workdir, "media"), "--listen", "127.0.0.1",
                  "--admin-listen", "127.0.0.1:0"]
        for i in range(opts.nodes):
            if opts.shared_port:
                port = nodes[0].port if nodes else opts.port
                args = ["--port", str(port), "--reuse-port"]
            else:
                args = ["--port", str(opts.port + 1 + i if opts.port else 0)]
            node = Node(f"n{i + 1}", chatd, workdir, shared, args)
            nodes.append(node)
            node.start()  # one after the other: the first creates the schema and the key
        report(nodes, pg, nats, chatd, key_file, workdir)
        while not stopping.wait(0.5):
            for n in nodes:
                if n.proc.poll() is not None and not getattr(n, "reported", False):
                    n.reported = True
                    print(f"node {n.name} exited ({n.proc.returncode}); its log, {n.log}:\n"
                          f"{tail(n.log)}", flush=True)
        print("stopping the cluster", flush=True)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    finally:
        for n in reversed(nodes):
            n.stop()
        if nats:
            nats.stop(signal.SIGTERM)
        if pg:
            pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print("stopped", flush=True)
    return 0


def report(nodes, pg, nats, chatd, key_file, workdir):
    rel = os.path.relpath(chatd)
    token = f"{chatd if rel.startswith('..') else rel} token --key-file {key_file}"
    first, second = nodes[0], nodes[1 % len(nodes)]
    print(f"libchat cluster: {len(nodes)} chatd node(s) on one PostgreSQL and one NATS "
          f"(Ctrl-C stops everything)")
    for n in nodes:
        print(f"  node {n.name}  ws://127.0.0.1:{n.port}/  pid {n.proc.pid}  log {n.log}")
    for n in nodes:
        print(f"  node {n.name}  http://{n.admin}/readyz  (and /metrics, /healthz)")
    print(f"  PostgreSQL  {pg.conninfo()}")
    print(f"  NATS        {nats.url()}")
    print(f"  files       {workdir} (token.key, media/, a data dir per node)")
    print("Tokens from the shared key file work on every node:")
    print(f"  {token} alice laptop")
    print("Chat across nodes (two more terminals):")
    print(f"  python3 examples/talk.py --port {second.port} --token \"$({token} bob phone)\"")
    print(f"  python3 examples/talk.py --port {first.port} --token \"$({token} alice laptop)\" "
          f"--to bob \"hello from {first.name}\"")
    print("cluster ready", flush=True)


if __name__ == "__main__":
    sys.exit(main())
