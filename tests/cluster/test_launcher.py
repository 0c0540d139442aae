"""examples/cluster.py, the one command that starts a local cluster (PostgreSQL, nats-server,
chatd nodes): what it prints works, two users on two nodes chat, and Ctrl-C stops and
removes everything it started."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import shared_store
from helpers import http, send
from wsclient import WS

import pgtemp  # noqa: E402 - tests/lib, on the path through the wire conftest

LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                        "cluster.py")
NODE_RE = re.compile(r"^  node (n\d+)  ws://127\.0\.0\.1:(\d+)/  pid (\d+)  log (\S+)$")
ADMIN_RE = re.compile(r"^  node (n\d+)  http://(\S+)/readyz  ")

pytestmark = pytest.mark.skipif(shared_store(), reason="runs once, with cluster-nats")


def launch(*args):
    if not pgtemp.find_bindir():
        pytest.skip("PostgreSQL's server binaries are not installed")
    p = subprocess.Popen([sys.executable, LAUNCHER, "--chatd", os.environ["CHATD"],
                          "--nats-server", os.environ["NATS_SERVER"], "--port", "0", *args],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in p.stdout:
        lines.append(line.rstrip("\n"))
        if line.strip() == "cluster ready":
            break
    else:
        p.wait(30)
        pytest.fail(f"the launcher exited ({p.returncode}):\n" + "\n".join(lines),
                    pytrace=False)
    nodes = [NODE_RE.match(ln).groups() for ln in lines if NODE_RE.match(ln)]
    token_cmd = next(ln.strip() for ln in lines if " token --key-file " in ln)
    return p, lines, nodes, token_cmd


def token(token_cmd, user, device):
    # the printed line: CHATD token --key-file FILE alice laptop (its CHATD may be relative)
    args = token_cmd.split()[1:-2] + [user, device]
    r = subprocess.run([os.environ["CHATD"]] + args, capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def connect(port, tok):
    c = WS(port)
    r = c.call({"type": "auth", "v": 1, "token": tok})
    assert r["type"] == "auth_ok", r
    return c


def stop(p, nodes, lines):
    p.send_signal(signal.SIGINT)
    out, _ = p.communicate(timeout=60)
    assert p.returncode == 0, out
    assert out.strip().endswith("stopped"), out
    workdir = next(ln.split()[1] for ln in lines if ln.strip().startswith("files"))
    assert not os.path.exists(workdir), f"{workdir} was left behind"
    for _, _, pid, _ in nodes:
        deadline = time.time() + 5
        while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{pid}"), f"chatd {pid} was left running"


@pytest.mark.seconds(120)
def test_launcher_starts_a_cluster_and_stops_it():
    p, lines, nodes, token_cmd = launch("--nodes", "2")
    try:
        assert [n for n, _, _, _ in nodes] == ["n1", "n2"], lines
        ports = {n: int(port) for n, port, _, _ in nodes}
        assert ports["n1"] != ports["n2"]
        alice = connect(ports["n1"], token(token_cmd, "alice", "laptop"))
        bob = connect(ports["n2"], token(token_cmd, "bob", "phone"))
        ack = send(alice, "hello from n1", to="bob")
        bob.expect("msg", conv=ack["conv"], seq=ack["seq"], text="hello from n1")
        alice.close()
        bob.close()
        # each node's readiness probe, at the address printed for it
        probes = [ADMIN_RE.match(ln).groups() for ln in lines if ADMIN_RE.match(ln)]
        assert [n for n, _ in probes] == ["n1", "n2"], lines
        for _, addr in probes:
            assert http(addr, "/readyz") == (200, "ready\n")
    finally:
        stop(p, nodes, lines)


@pytest.mark.seconds(120)
def test_launcher_shares_one_port():
    p, lines, nodes, token_cmd = launch("--nodes", "2", "--shared-port")
    try:
        ports = {int(port) for _, port, _, _ in nodes}
        assert len(nodes) == 2 and len(ports) == 1, lines
        port = ports.pop()
        alice = connect(port, token(token_cmd, "alice", "laptop"))
        bob = connect(port, token(token_cmd, "bob", "phone"))
        ack = send(alice, "one port", to="bob")
        bob.expect("msg", conv=ack["conv"], seq=ack["seq"], text="one port")
        alice.close()
        bob.close()
    finally:
        stop(p, nodes, lines)
