"""The Python binding against the C engine alone, in one run (bench/bindings-bench.sh runs it;
figures in bindings/python/README.md). The same workloads as bench/node-bench.mjs:

- live: a chatd on 127.0.0.1 (send limits lifted); alice's C client (client-events send) sends
  N messages to bob, and bob's Python client (this process) and bob's C client (client-events
  live) take them as they come: the CPU time each process spends per message (the engine's
  threads included), at the sender's pace;
- backlog: the same while neither takes any (this thread waits for the sender, the C one for
  a line on stdin), so that the events pile up in each engine's queue; then the Python client
  drains its queue, and after it the C one (one at a time, not competing for the cores): events
  per second from the first to the Nth message event, and the CPU time per event;
- send cost: send(to=) against chat_client_send_text_to() on clients that are not started
  (in-memory outbox): the time of one call.

Rounds alternate the C and the Python measurement; the RESULT line has the medians.

    CHATD=build/examples/chatd/chatd CLIENT_EVENTS=build/bench/client-events \\
    LIBCHAT_PATH=build/lib PYTHONPATH=bindings/python \\
    python3 bindings/python/bench.py [N (5000)] [CALLS (20000)] [ROUNDS (3)]
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import libchat

LIMITS = [a for lim in ("send_rate", "send_burst", "user_send_rate", "user_send_burst")
          for a in ("--limit", f"{lim}=1000000")]


def result(line):
    if not line or not line.startswith("RESULT "):
        raise RuntimeError(f"client-events said {line!r}")
    return dict(kv.split("=", 1) for kv in line.split()[1:])


class Chatd:
    """chatd on an ephemeral port of 127.0.0.1, with users alice and bob, in a temp dir."""

    def __init__(self, tmp, extra):
        self.exe, self.data = os.environ["CHATD"], os.path.join(tmp, "data")
        for u in ("alice", "bob"):
            subprocess.run([self.exe, "user", "add", "--data-dir", self.data, u], input="pw\n",
                           capture_output=True, text=True, timeout=30, check=True)
        self.proc = subprocess.Popen([self.exe, "run", "--data-dir", self.data, "--port", "0",
                                      "--listen", "127.0.0.1"] + extra,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        first = self.proc.stdout.readline()
        m = re.match(r"chatd listening on 127\.0\.0\.1:(\d+)$", first.strip())
        if not m:
            self.stop()
            raise RuntimeError(f"chatd said {first!r}")
        self.url = f"ws://127.0.0.1:{m.group(1)}/"
        self.tokens = {}

    def token(self, user, device):
        if (user, device) not in self.tokens:
            r = subprocess.run([self.exe, "token", "--data-dir", self.data, user, device],
                               capture_output=True, text=True, timeout=30, check=True)
            self.tokens[user, device] = r.stdout.split()[-1]
        return self.tokens[user, device]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu():
    return time.process_time()  # the whole process: every thread


class Bench:
    def __init__(self, srv, n, calls):
        self.srv, self.n, self.calls = srv, n, calls
        self.exe = os.environ["CLIENT_EVENTS"]
        self.drain_s = 60 + n / 1000  # bounds: a stuck run fails instead of hanging
        self.send_s = 60 + n / 50
        self.bob = libchat.Client(srv.url, token=srv.token("bob", "bench-py"))
        self.bob.wait_for(type=libchat.EventType.SYNCED, timeout=30)

    def close(self):
        self.bob.close()

    def count(self, tag):
        """Take bob's events until N messages tagged tag: (events/s, CPU us per event)."""
        n, t0, c0 = 0, 0.0, 0.0
        end = time.monotonic() + self.drain_s
        while n < self.n:
            ev = self.bob.wait_event(max(0.0, end - time.monotonic()))
            if ev is None:
                raise RuntimeError(f"the Python client got {n} of {self.n} messages")
            if ev.type == libchat.EventType.MESSAGE and ev.text.startswith(tag):
                n += 1
                if n == 1:
                    t0, c0 = time.perf_counter(), cpu()
        secs, used = time.perf_counter() - t0, cpu() - c0
        return (self.n - 1) / secs, used * 1e6 / (self.n - 1)

    def c_receiver(self, mode, tag):
        p = subprocess.Popen([self.exe, mode, self.srv.url, self.srv.token("bob", "bench-c"),
                              str(self.n), tag], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        ready = p.stdout.readline().strip()
        if ready != "ready":
            p.kill()
            p.wait()
            raise RuntimeError(f"client-events {mode}: {ready!r}")
        return p

    def sender(self, tag):
        return [self.exe, "send", self.srv.url, self.srv.token("alice", "bench-send"), "bob",
                str(self.n), tag]

    def send_cost(self):
        r = subprocess.run([self.exe, "sendcost", str(self.calls)], capture_output=True,
                           text=True, timeout=120, check=True)
        c_us = float(result(r.stdout)["us_per_call"])
        with libchat.Client("ws://127.0.0.1:9/", token="unused", start=False) as c:
            t0 = time.perf_counter()
            for _ in range(self.calls):
                c.send("hello", to="bob")
            py_us = (time.perf_counter() - t0) * 1e6 / self.calls
        return c_us, py_us

    def round(self, r):
        out = {}
        out["c_send_us"], out["py_send_us"] = self.send_cost()

        tag = f"r{r}l"
        c = self.c_receiver("live", tag)
        try:
            s = subprocess.Popen(self.sender(tag), stdout=subprocess.PIPE, text=True)
            out["live_eps"], out["live_py_cpu_us"] = self.count(tag)
            s_out, _ = s.communicate(timeout=self.send_s)
            if s.returncode != 0:
                raise RuntimeError(f"client-events send: exit {s.returncode}")
            c_out, _ = c.communicate(timeout=self.drain_s)
            out["live_c_cpu_us"] = float(result(c_out.strip())["cpu_us_per_event"])
        finally:
            if c.poll() is None:
                c.kill()
                c.wait()

        tag = f"r{r}b"
        c = self.c_receiver("recv", tag)
        try:
            subprocess.run(self.sender(tag), capture_output=True, text=True, check=True,
                           timeout=self.send_s)
            out["py_eps"], out["py_cpu_us"] = self.count(tag)
            c_out, _ = c.communicate("go\n", timeout=self.drain_s)
            cr = result(c_out.strip())
            out["c_eps"], out["c_cpu_us"] = float(cr["events_per_s"]), float(cr["cpu_us_per_event"])
        finally:
            if c.poll() is None:
                c.kill()
                c.wait()
        return out


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if n < 2 or calls < 1 or rounds < 1:
        sys.exit("usage: bench.py [N>1] [CALLS] [ROUNDS]")
    with tempfile.TemporaryDirectory() as tmp:
        srv = Chatd(tmp, LIMITS)
        try:
            b = Bench(srv, n, calls)
            try:
                res = []
                for r in range(rounds):
                    res.append(b.round(r))
                    print(f"ROUND {r} " + " ".join(f"{k}={v:.2f}" for k, v in res[-1].items()),
                          flush=True)
            finally:
                b.close()
        finally:
            srv.stop()

    def m(k):
        return statistics.median(x[k] for x in res)

    print(f"RESULT label=python-bench events={n} calls={calls} rounds={rounds} "
          f"live_events_per_s={m('live_eps'):.0f} live_c_cpu_us_per_event={m('live_c_cpu_us'):.2f} "
          f"live_py_cpu_us_per_event={m('live_py_cpu_us'):.2f} "
          f"c_events_per_s={m('c_eps'):.0f} py_events_per_s={m('py_eps'):.0f} "
          f"ratio={statistics.median(x['py_eps'] / x['c_eps'] for x in res):.2f} "
          f"c_cpu_us_per_event={m('c_cpu_us'):.2f} py_cpu_us_per_event={m('py_cpu_us'):.2f} "
          f"c_send_us_per_call={m('c_send_us'):.2f} py_send_us_per_call={m('py_send_us'):.2f}")


if __name__ == "__main__":
    main()
