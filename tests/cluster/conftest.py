"""Fixtures for the cluster tests: a nats-server of their own and chatd nodes on it.

The nodes share a token key (a token from one verifies on every node). Each has a SQLite store
of its own, so what crosses between them is the bus only (live frames, presence); with
CHATD_STORE=postgres (under tests/lib/pgtemp.py) they share one PostgreSQL schema, a cluster.
The chatd process handling, the time limit and the WebSocket client come from tests/wire.
"""

import glob
import importlib.util
import os
import signal
import socket
import subprocess
import time

import pytest

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wire")
_spec = importlib.util.spec_from_file_location("wire_conftest", os.path.join(WIRE, "conftest.py"))
import sys  # noqa: E402

sys.path.insert(0, WIRE)
wire = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wire)

pytest_configure = wire.pytest_configure
_time_limit = wire._time_limit

HEARTBEAT_MS = 100
LEASE_MS = 600
GRACE_MS = 200


class NatsServer:
    """nats-server on 127.0.0.1, on an ephemeral port found in its ports file."""

    def __init__(self, workdir):
        self.dir = str(workdir)
        self.proc = None
        self.port = None

    def start(self, port=None):
        os.makedirs(self.dir, exist_ok=True)
        for f in glob.glob(os.path.join(self.dir, "*.ports")):
            os.unlink(f)
        self.proc = subprocess.Popen(
            [os.environ["NATS_SERVER"], "-a", "127.0.0.1", "-p", str(port or -1),
             "--ports_file_dir", self.dir, "-l", os.path.join(self.dir, "nats.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline and not self.port_ready(port):
            time.sleep(0.02)
        assert self.port, "nats-server did not come up (see nats.log)"
        return self

    def port_ready(self, port):
        if port is None:
            files = glob.glob(os.path.join(self.dir, "*.ports"))
            if not files:
                return False
            with open(files[0]) as f:
                text = f.read()
            if "127.0.0.1:" not in text:
                return False
            port = int(text.split("127.0.0.1:")[1].split('"')[0])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return False
        self.port = port
        return True

    def url(self):
        return f"nats://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


class Node(wire.Server):
    """One chatd node of the cluster."""

    def __init__(self, name, nats, key_file, data_dir, log_dir, store_dir, args=()):
        self.name = name
        self.nats = nats
        self.key_file = key_file
        super().__init__(data_dir, log_dir, args)
        self.store_dir = str(store_dir)

    def command(self):
        return super().command() + [
            "--key-file", self.key_file, "--nats", self.nats.url(), "--node-id", self.name,
            "--nats-heartbeat-ms", str(HEARTBEAT_MS), "--nats-lease-ms", str(LEASE_MS),
            "--limit", f"presence_grace_ms={GRACE_MS}"]

    def token(self, user, device="d1", ttl=None, cache=True):
        r = wire.run_cli(["token", "--key-file", self.key_file, "--data-dir", self.data_dir,
                          user, device])
        assert r.returncode == 0, f"chatd token failed ({r.returncode}): {r.stderr}"
        return r.stdout.strip().split()[-1]


def shared_store():
    return os.environ.get("CHATD_STORE") == "postgres"


@pytest.fixture
def nats(tmp_path):
    n = NatsServer(tmp_path / "nats").start()
    yield n
    n.stop()


@pytest.fixture
def cluster(tmp_path, nats):
    """Factory: cluster("a", "b", ...) -> started nodes on one NATS server."""
    key_file = str(tmp_path / "token.key")
    nodes = []

    def make(*names, args=()):
        made = []
        for name in names:
            node = Node(name, nats, key_file, tmp_path / f"data-{name}", tmp_path / f"logs-{name}",
                        tmp_path / "store", args)
            nodes.append(node)
            made.append(node.start())
        return made

    yield make
    errors = []
    for node in nodes:
        try:
            wire._check_teardown(node)
        except BaseException as e:  # noqa: B902 - report after stopping every node
            errors.append(e)
    if errors:
        raise errors[0]
