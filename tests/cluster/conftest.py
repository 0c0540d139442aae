"""Fixtures for the cluster tests: a nats-server of their own and chatd nodes on it.

The nodes share a token key (a token from one verifies on every node). Each has a SQLite store
of its own, so what crosses between them is the bus only (live frames, presence); with
CHATD_STORE=postgres (under tests/lib/pgtemp.py) they share one PostgreSQL schema, a cluster.
The chatd process handling, the time limit and the WebSocket client come from tests/wire.
"""

import importlib.util
import os
import time

import pytest

WIRE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "wire")
_spec = importlib.util.spec_from_file_location("wire_conftest", os.path.join(WIRE, "conftest.py"))
import sys  # noqa: E402

sys.path.insert(0, WIRE)
wire = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wire)

import natstemp  # noqa: E402 - tests/lib, on the path through the wire conftest

pytest_configure = wire.pytest_configure
_time_limit = wire._time_limit

HEARTBEAT_MS = 100
LEASE_MS = 600
GRACE_MS = 200


class Node(wire.Server):
    """One chatd node of the cluster."""

    def __init__(self, name, nats, key_file, data_dir, log_dir, store_dir, args=(),
                 media_dir=None):
        self.name = name
        self.nats = nats
        self.key_file = key_file
        self.media_dir = str(media_dir)
        super().__init__(data_dir, log_dir, args)
        self.store_dir = str(store_dir)

    def command(self):
        own = ["--key-file", self.key_file, "--media-dir", self.media_dir,
               "--nats", self.nats.url(), "--node-id", self.name,
               "--nats-heartbeat-ms", str(HEARTBEAT_MS), "--nats-lease-ms", str(LEASE_MS),
               "--limit", f"presence_grace_ms={GRACE_MS}"]
        # a test's own args come last: they override these (a longer lease, say)
        cmd = super().command()
        cut = len(cmd) - len(self.args)
        return cmd[:cut] + own + cmd[cut:]

    def token(self, user, device="d1", ttl=None, cache=True):
        r = wire.run_cli(["token", "--key-file", self.key_file, "--data-dir", self.data_dir,
                          user, device])
        assert r.returncode == 0, f"chatd token failed ({r.returncode}): {r.stderr}"
        return r.stdout.strip().split()[-1]

    def stderr_text(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def wait_log(self, text, timeout=10.0):
        """Wait until this node's stderr holds text; returns the whole stderr."""
        deadline = time.time() + timeout
        while True:
            log = self.stderr_text()
            if text in log:
                return log
            assert time.time() < deadline, f"{self.name} never logged {text!r}:\n{log[-3000:]}"
            time.sleep(0.05)


def shared_store():
    return os.environ.get("CHATD_STORE") == "postgres"


@pytest.fixture
def nats(tmp_path):
    n = natstemp.NatsServer(tmp_path / "nats").start()
    yield n
    n.stop()


@pytest.fixture
def cluster(tmp_path, nats):
    """Factory: cluster("a", "b", ...) -> started nodes on one NATS server, sharing a token
    key file (or key_file) and a media directory."""
    nodes = []

    def make(*names, args=(), key_file=str(tmp_path / "token.key")):
        made = []
        for name in names:
            node = Node(name, nats, key_file, tmp_path / f"data-{name}", tmp_path / f"logs-{name}",
                        tmp_path / "store", args, media_dir=tmp_path / "media")
            nodes.append(node)
            made.append(node.start())
        return made

    make.nodes = nodes
    yield make
    errors = []
    for node in nodes:
        try:
            wire._check_teardown(node)
        except BaseException as e:  # noqa: B902 - report after stopping every node
            errors.append(e)
    if errors:
        raise errors[0]
