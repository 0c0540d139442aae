"""Fixtures for the black-box wire tests of chatd.

CHATD: path of the chatd binary (required by every test that uses a server).
CHATD_ARGS: extra arguments for every `chatd run` (e.g. "--bus queued").
CHATD_STORE=postgres: every server keeps its store in PostgreSQL, on the server of
    tests/lib/pgtemp.py (CHAT_TEST_PG), in a schema of its data dir's own.
CHATD_CLUSTER=N (N >= 2, with CHATD_STORE=postgres and NATS_SERVER): every server is a cluster
    of N chatd nodes on a nats-server of its own, sharing that schema, one token key file and
    one media directory; WebSocket connections go to the nodes in turn (ws(), connect()), and
    HTTP (port) to the first node. Tests that look at one process mark themselves
    single_node(reason) and are skipped then.
"""

import hashlib
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading

import pytest

from wsclient import WS

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import natstemp  # noqa: E402
import pgtemp  # noqa: E402

LISTEN_RE = re.compile(r"^chatd listening on 127\.0\.0\.1:(\d+)$")
DEFAULT_TEST_SECONDS = 60


def pytest_configure(config):
    config.addinivalue_line("markers", "chatd_args(*args): extra `chatd run` arguments")
    config.addinivalue_line("markers", "seconds(n): per-test time limit (default 60)")
    config.addinivalue_line("markers", "single_node(reason): skipped when every server is a "
                                       "cluster (CHATD_CLUSTER), for that reason")


def cluster_size():
    """N of CHATD_CLUSTER=N (0: a server is one chatd)."""
    n = int(os.environ.get("CHATD_CLUSTER", "0") or 0)
    return n if n >= 2 else 0


def pytest_collection_modifyitems(config, items):
    if not cluster_size():
        return
    for item in items:
        m = item.get_closest_marker("single_node")
        if m:
            item.add_marker(pytest.mark.skip(reason="one chatd only: " + m.args[0]))


def chatd_path():
    path = os.environ.get("CHATD")
    if not path:
        pytest.fail("CHATD is not set: point it at the chatd binary "
                    "(e.g. CHATD=build/examples/chatd/chatd)", pytrace=False)
    if not os.access(path, os.X_OK):
        pytest.fail(f"CHATD={path} is not an executable file", pytrace=False)
    return path


def extra_args():
    return shlex.split(os.environ.get("CHATD_ARGS", ""))


def store_args(data_dir):
    """`--postgres CONNINFO` when the suite runs on PostgreSQL: one schema per data dir, so a
    server restarted on its data dir finds its store again and every other starts empty."""
    if os.environ.get("CHATD_STORE") != "postgres":
        return []
    base = os.environ.get("CHAT_TEST_PG")
    if not base:
        pytest.fail("CHATD_STORE=postgres needs CHAT_TEST_PG (run under tests/lib/pgtemp.py)",
                    pytrace=False)
    schema = "w" + hashlib.sha1(os.path.abspath(str(data_dir)).encode()).hexdigest()[:20]
    pgtemp.sql(base, f"CREATE SCHEMA IF NOT EXISTS {schema}")
    return ["--postgres", f"{base} options=-csearch_path={schema}"]


def run_cli(args, input_text=None, timeout=15):
    """Run `chatd ARGS...`; returns CompletedProcess (text mode)."""
    return subprocess.run([chatd_path()] + list(args), input=input_text, capture_output=True,
                          text=True, timeout=timeout, stdin=None if input_text is not None
                          else subprocess.DEVNULL)


class Server:
    """One chatd process on a data dir; restartable on the same dir."""

    nodes = ()  # a cluster's chatd processes (Cluster)

    def __init__(self, data_dir, log_dir, args=()):
        self.data_dir = str(data_dir)
        self.store_dir = self.data_dir  # names the PostgreSQL schema (servers may share one)
        self.log_dir = str(log_dir)
        self.args = list(args)
        self.proc = None
        self.port = None
        self.clients = []
        self.starts = 0
        self.stdout_lines = []
        self.expected_dead = False
        self.preexec = None  # run in the child before exec (e.g. to set resource limits)
        self._tokens = {}
        os.makedirs(self.data_dir, exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)

    # ---- process ---------------------------------------------------------------------------

    def command(self):
        store = [] if "--memory" in self.args else store_args(self.store_dir)
        return ([chatd_path(), "run", "--data-dir", self.data_dir, "--port", "0",
                 "--listen", "127.0.0.1"] + store + extra_args() + self.args)

    def start(self, timeout=15):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        self.stderr_path = os.path.join(self.log_dir, f"chatd-{self.starts}.stderr")
        self._stderr = open(self.stderr_path, "wb")
        cmd = self.command()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._stderr, preexec_fn=self.preexec)
        lines = queue.Queue()
        proc = self.proc

        def pump():
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                self.stdout_lines.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        self.expected_dead = True  # until it is listening: a failed start is reported once
        try:
            first = lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            self.proc.wait(5)
            pytest.fail(f"chatd printed no line within {timeout}s: {cmd}\n{self.stderr_tail()}",
                        pytrace=False)
        if first is None:
            rc = self.proc.wait(5)
            pytest.fail(f"chatd exited ({rc}) before listening: {cmd}\n{self.stderr_tail()}",
                        pytrace=False)
        m = LISTEN_RE.match(first)
        if not m:
            self.proc.kill()
            self.proc.wait(5)
            pytest.fail(f"first stdout line is not 'chatd listening on 127.0.0.1:PORT': "
                        f"{first!r}\n{self.stderr_tail()}", pytrace=False)
        self.port = int(m.group(1))
        assert 0 < self.port < 65536
        self.expected_dead = False
        return self

    def stderr_tail(self, n=4000):
        try:
            with open(self.stderr_path, "rb") as f:
                data = f.read()
            return "chatd stderr:\n" + data[-n:].decode("utf-8", "replace")
        except (OSError, AttributeError):
            return "(no stderr)"

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def close_clients(self):
        for c in self.clients:
            try:
                c.close(timeout=0.5)
            except Exception:
                pass
        self.clients = []

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stop with SIGTERM (default); returns the exit status."""
        if self.proc is None:
            return None
        self.close_clients()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                pytest.fail(f"chatd did not exit within {timeout}s of signal {sig}\n"
                            f"{self.stderr_tail()}", pytrace=False)
        self._stderr.close()
        self.expected_dead = True
        return self.proc.returncode

    def kill9(self):
        for c in self.clients:
            c.abort()
        self.clients = []
        self.expected_dead = True
        self.proc.kill()
        self.proc.wait(10)
        self._stderr.close()

    def restart(self):
        if self.alive():
            self.stop()
        return self.start()

    def release(self):
        """After the last stop: what the server needs besides its process goes too."""

    def first_node(self):
        """The chatd process itself (a Cluster's first node): where a limit that each node
        keeps on its own (per-user rates, pending logins) is tested."""
        return self

    # ---- CLI -------------------------------------------------------------------------------

    def token(self, user, device="d1", ttl=None, cache=True):
        key = (user, device)
        if ttl is None and cache and key in self._tokens:
            return self._tokens[key]
        args = ["token", "--data-dir", self.data_dir, user, device]
        if ttl is not None:
            args += ["--ttl", str(ttl)]
        r = run_cli(args)
        assert r.returncode == 0, f"chatd token failed ({r.returncode}): {r.stderr}"
        out = r.stdout.strip()
        assert out and len(out.splitlines()) == 1, f"chatd token printed {r.stdout!r}"
        tok = out.split()[-1]
        if ttl is None and cache:
            self._tokens[key] = tok
        return tok

    def user_add(self, name, password):
        r = run_cli(["user", "add", "--data-dir", self.data_dir, name] +
                    store_args(self.data_dir), input_text=password + "\n")
        assert r.returncode == 0, f"chatd user add failed ({r.returncode}): {r.stderr}"
        return r

    # ---- clients ---------------------------------------------------------------------------

    def ws(self, **kw):
        c = WS(self.port, **kw)
        self.clients.append(c)
        return c

    def connect(self, user, device="d1", timeout=5.0, **kw):
        c = self.ws(**kw)
        r = c.call({"type": "auth", "v": 1, "token": self.token(user, device)}, timeout=timeout)
        assert r["type"] == "auth_ok", f"auth as {user}/{device} answered {r!r}"
        assert r.get("user") == user and r.get("device") == device, r
        c.auth_ok = r
        c.user = user
        c.device = device
        # the presence frame that follows auth_ok (its absence is the business of
        # test_auth.py::test_auth_ok_is_followed_by_presence, not of every test)
        try:
            c.initial_presence = c.expect("presence", timeout=2.0)
        except AssertionError:
            c.initial_presence = None
        return c


class Node(Server):
    """One chatd of a Cluster."""

    def __init__(self, cluster, index):
        self.cluster = cluster
        self.name = f"n{index}"
        data = cluster.data_dir if index == 0 else f"{cluster.data_dir}-{self.name}"
        super().__init__(data, os.path.join(cluster.log_dir, self.name), cluster.args)
        self.store_dir = cluster.store_dir

    def command(self):
        c = self.cluster
        return super().command() + [
            "--key-file", c.key_file, "--media-dir", c.media_dir,
            "--nats", c.nats.url(), "--node-id", self.name]


class Cluster(Server):
    """CHATD_CLUSTER nodes that a test drives as one server: they share the PostgreSQL schema
    of the first node's data dir, its token key file and its media directory, and a
    nats-server of their own. WebSocket connections go to the nodes in turn."""

    def __init__(self, data_dir, log_dir, args=(), size=2):
        super().__init__(data_dir, log_dir, args)
        if os.environ.get("CHATD_STORE") != "postgres":
            pytest.fail("CHATD_CLUSTER needs CHATD_STORE=postgres (the nodes share a store)",
                        pytrace=False)
        if "--memory" in self.args:
            pytest.fail("a cluster shares its store: --memory makes no sense here "
                        "(mark the test single_node)", pytrace=False)
        self.key_file = os.path.join(self.data_dir, "token.key")
        self.media_dir = os.path.join(self.data_dir, "media")
        self.nats = natstemp.NatsServer(os.path.join(self.log_dir, "nats"))
        self.nodes = [Node(self, i) for i in range(size)]
        self._turn = 0

    # one process in the tests' eyes: the first node's
    @property
    def proc(self):
        return self.nodes[0].proc if self.nodes else None

    @proc.setter
    def proc(self, value):
        pass

    @property
    def port(self):
        return self.nodes[0].port if self.nodes else None

    @port.setter
    def port(self, value):
        pass

    @property
    def stdout_lines(self):
        return self.nodes[0].stdout_lines if self.nodes else []

    @stdout_lines.setter
    def stdout_lines(self, value):
        pass

    @property
    def preexec(self):
        return self.nodes[0].preexec if self.nodes else None

    @preexec.setter
    def preexec(self, fn):
        for n in getattr(self, "nodes", ()):
            n.preexec = fn

    def start(self, timeout=15):
        if not self.nats.proc or self.nats.proc.poll() is not None:
            try:
                self.nats.start(self.nats.port)
            except RuntimeError as e:
                pytest.fail(str(e), pytrace=False)
        self.starts += 1
        self.expected_dead = True
        for n in self.nodes:  # in turn: the first creates the key file
            n.start(timeout)
        self.expected_dead = False
        return self

    def alive(self):
        return all(n.alive() for n in self.nodes)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        self.close_clients()
        codes = [n.stop(sig, timeout) for n in self.nodes]
        self.expected_dead = True
        return next((c for c in codes if c), codes[0])

    def kill9(self):
        for n in self.nodes:
            n.kill9()
        self.clients = []
        self.expected_dead = True

    def release(self):
        self.nats.stop()

    def first_node(self):
        return self.nodes[0]

    def stderr_tail(self, n=4000):
        return "\n".join(f"[{node.name}] " + node.stderr_tail(n // len(self.nodes))
                         for node in self.nodes)

    def ws(self, **kw):
        node = self.nodes[self._turn % len(self.nodes)]
        self._turn += 1
        c = node.ws(**kw)
        self.clients.append(c)
        return c


def _check_teardown(srv):
    if srv.nodes:
        try:
            errors = []
            for n in srv.nodes:
                try:
                    _check_teardown(n)
                except BaseException as e:  # noqa: B902 - report after stopping every node
                    errors.append(e)
            if errors:
                raise errors[0]
        finally:
            srv.release()
        return
    crashed = srv.proc is not None and not srv.expected_dead and srv.proc.poll() is not None
    rc = srv.proc.returncode if crashed else None
    try:
        srv.stop()
    except Exception:
        pass
    if crashed:
        pytest.fail(f"chatd died during the test (exit status {rc})\n{srv.stderr_tail()}",
                    pytrace=False)


@pytest.fixture(autouse=True)
def _time_limit(request):
    m = request.node.get_closest_marker("seconds")
    seconds = int(m.args[0]) if m else DEFAULT_TEST_SECONDS

    def on_alarm(signum, frame):
        pytest.fail(f"test exceeded its {seconds}s time limit", pytrace=True)

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


@pytest.fixture
def make_server(tmp_path):
    """Factory: make_server(*args, start=True) -> Server on a fresh data dir."""
    servers = []

    def make(*args, start=True):
        n = len(servers) + 1
        if cluster_size():
            srv = Cluster(tmp_path / f"data{n}", tmp_path / f"logs{n}", args, cluster_size())
        else:
            srv = Server(tmp_path / f"data{n}", tmp_path / f"logs{n}", args)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    errors = []
    for srv in servers:
        try:
            _check_teardown(srv)
        except BaseException as e:  # noqa: B902 - report after stopping every server
            errors.append(e)
    if errors:
        raise errors[0]


@pytest.fixture
def server(request, make_server):
    """A fresh running chatd; args from @pytest.mark.chatd_args(...)."""
    m = request.node.get_closest_marker("chatd_args")
    args = list(m.args) if m else []
    return make_server(*args)
