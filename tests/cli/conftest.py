"""Fixtures for tests/cli: a real chatd with users alice, bob and carol (password "pw").

CHATD: the chatd binary. CHAT_CLI: the chat-cli binary. LIBCHAT_PATH and PYTHONPATH point the
Python bindings (bindings/python) at the built libchat.so.
"""

import os
import queue
import re
import signal
import subprocess
import threading
import time

import pytest

LISTEN_RE = re.compile(r"^chatd listening on 127\.0\.0\.1:(\d+)$")
USERS = ("alice", "bob", "carol")
PASSWORD = "pw"
DEFAULT_TEST_SECONDS = 90


def child_env():
    """Environment for child processes: without an LD_PRELOAD meant for python itself (the
    ASan runtime preloaded for ctypes would clash with the one linked into chatd)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    return env


def exe(var):
    path = os.environ.get(var)
    if not path or not os.access(path, os.X_OK):
        pytest.fail(f"{var} is not set to an executable ({path!r})", pytrace=False)
    return path


class Chatd:
    def __init__(self, tmp_path):
        self.data_dir = str(tmp_path / "data")
        self.stderr_path = str(tmp_path / "chatd.stderr")
        self.proc = None
        self.port = None
        self._tokens = {}
        for u in USERS:
            r = subprocess.run([exe("CHATD"), "user", "add", "--data-dir", self.data_dir, u],
                               input=PASSWORD + "\n", capture_output=True, text=True,
                               timeout=30, env=child_env())
            assert r.returncode == 0, f"chatd user add {u}: {r.stderr}"

    def _launch(self, timeout, extra, port):
        """Run chatd; the line it printed first, or None."""
        self._stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [exe("CHATD"), "run", "--data-dir", self.data_dir, "--port", str(port),
             "--listen", "127.0.0.1"] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr,
            env=child_env())
        lines = queue.Queue()

        def pump(out):
            for raw in out:
                lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        try:
            first = lines.get(timeout=timeout)
        except queue.Empty:
            first = None
        m = LISTEN_RE.match(first or "")
        if not m:
            self.stop()
            return first
        self.port = int(m.group(1))
        self._extra = extra
        return None

    def start(self, timeout=20, extra=()):
        """Run chatd on a free port; extra: more `chatd run` options (--tls-cert...)."""
        first = self._launch(timeout, extra, 0)
        if self.proc is None:
            pytest.fail(f"chatd did not print 'chatd listening on 127.0.0.1:PORT' within "
                        f"{timeout}s (it printed {first!r}): it failed to start or to bind "
                        f"127.0.0.1\n{self.stderr_tail()}", pytrace=False)
        return self

    def restart(self, seconds=10):
        """After stop(): run chatd again on the same port, where its clients reconnect. The
        port may stay taken a moment after the old process is gone: retried (bounded)."""
        end = time.monotonic() + seconds
        while True:
            first = self._launch(20, self._extra, self.port)
            if self.proc is not None:
                return self
            if time.monotonic() > end:
                pytest.fail(f"chatd did not listen on port {self.port} again within "
                            f"{seconds}s (last said {first!r})\n{self.stderr_tail()}",
                            pytrace=False)
            time.sleep(0.2)

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/"

    def token(self, user, device="d1"):
        key = (user, device)
        if key not in self._tokens:
            r = subprocess.run([exe("CHATD"), "token", "--data-dir", self.data_dir, user, device],
                               capture_output=True, text=True, timeout=30, env=child_env())
            assert r.returncode == 0, f"chatd token: {r.stderr}"
            self._tokens[key] = r.stdout.strip().split()[-1]
        return self._tokens[key]

    def stderr_tail(self, n=3000):
        try:
            with open(self.stderr_path, "rb") as f:
                return "chatd stderr:\n" + f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return "(no stderr)"

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._stderr.close()
        rc, self.proc = self.proc.returncode, None
        return rc


@pytest.fixture
def chatd(tmp_path):
    srv = Chatd(tmp_path).start()
    yield srv
    crashed = srv.proc is not None and srv.proc.poll() is not None
    srv.stop()
    if crashed:
        pytest.fail(f"chatd died during the test\n{srv.stderr_tail()}", pytrace=False)


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


def pytest_configure(config):
    config.addinivalue_line("markers", "seconds(n): per-test time limit (default 90)")
