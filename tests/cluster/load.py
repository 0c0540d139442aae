"""Load for the cluster tests: senders and receivers on threads that behave as a client must
when nodes die, restart or lose frames (doc/protocol.md, doc/cluster.md).

A Sender sends numbered messages (client ids "<name>-<i>") one at a time; a refusal it may
retry (busy, rate_limited) is retried after retry_after_ms with the same client id, and a lost
connection is re-established on the next node of its list and the unacked message sent again:
the store's client-id dedupe makes that safe. A Receiver records the messages of the
conversations it hears of, live or fetched: after a reconnection, on a catch-up prompt (sync),
on a position hint (head) ahead of what it holds and on a live frame that skips a seq, it
fetches what it misses from history.
"""

import threading
import time

from wsclient import WS, WSError, WSTimeout

RETRY = ("EAGAIN",)  # busy, rate_limited: nothing was stored, retry with the same client id


def connect(node, user, device):
    """A WebSocket to node, authenticated; not registered with the node (kill9 leaves it to
    notice on its own, as a client would)."""
    c = WS(node.port, timeout=5)
    r = c.call({"type": "auth", "v": 1, "token": node.token(user, device)})
    assert r["type"] == "auth_ok", r
    return c


class Worker(threading.Thread):
    def __init__(self, nodes, user, device):
        super().__init__(daemon=True)
        self.nodes = list(nodes)
        self.user, self.device = user, device
        self.turn = 0
        self.c = None
        self.stop_flag = threading.Event()
        self.error = None
        self.reconnects = 0
        self.node = None

    def live_nodes(self):
        return [n for n in self.nodes if n.alive()]

    def ensure(self):
        """Be connected, to the next live node in turn; True once connected."""
        while self.c is None and not self.stop_flag.is_set():
            live = self.live_nodes()
            if not live:
                time.sleep(0.05)
                continue
            node = live[self.turn % len(live)]
            self.turn += 1
            try:
                self.c = connect(node, self.user, self.device)
                self.node = node
            except (OSError, WSError, AssertionError):
                self.drop()
                time.sleep(0.05)
                continue
            self.connected()
        return self.c is not None

    def connected(self):
        pass

    def drop(self):
        if self.c:
            try:
                self.c.abort()
            except OSError:
                pass
        self.c = None
        self.node = None
        self.reconnects += 1

    def stop(self):
        self.stop_flag.set()
        self.join(30)
        assert not self.is_alive(), f"{self.user} did not stop"
        if self.c:
            self.c.abort()
        if self.error:
            raise self.error


class Sender(Worker):
    """Sends count messages to `to` (a user) or into conv, at most rate per second."""

    def __init__(self, nodes, user, count, to=None, conv=None, rate=100, device="s"):
        super().__init__(nodes, user, device)
        self.count, self.to, self.conv, self.rate = count, to, conv, rate
        self.acks = {}          # client id -> (conv, seq, when acked)
        self.refusals = []      # retryable refusals met ({code, reason})
        self.next = 0

    def run(self):
        try:
            while self.next < self.count and not self.stop_flag.is_set():
                if not self.ensure():
                    break
                cm = f"{self.user}-{self.next}"
                f = {"type": "send", "cmid": cm, "text": cm}
                if self.conv is not None:
                    f["conv"] = self.conv
                else:
                    f["to"] = self.to
                started = time.monotonic()
                try:
                    r = self.c.call(f, timeout=10)
                except (OSError, WSError, AssertionError):
                    self.drop()  # the answer may have been lost: the same client id again
                    continue
                if r["type"] == "ack":
                    self.acks[cm] = (r["conv"], r["seq"], time.monotonic())
                    self.next += 1
                elif r.get("type") == "error" and r.get("code") in RETRY:
                    self.refusals.append(r)
                    time.sleep(max(r.get("retry_after_ms", 50), 10) / 1000)
                else:
                    raise AssertionError(f"{self.user}: send answered {r!r}")
                pause = 1 / self.rate - (time.monotonic() - started)
                if pause > 0:
                    time.sleep(pause)
        except BaseException as e:  # noqa: B902 - reported by stop()
            self.error = e


class Receiver(Worker):
    """Records (conv, seq) -> text of what reaches user, filling gaps from history."""

    def __init__(self, nodes, user, device="r"):
        super().__init__(nodes, user, device)
        self.got = {}           # (conv, seq) -> text
        self.live = set()       # (conv, seq) that came as live frames
        self.dups = []          # live frames of a (conv, seq) already held
        self.lock = threading.Lock()
        self.want_fill = set()  # conversations to fetch

    def held(self, conv):
        with self.lock:
            return {s for (c, s) in self.got if c == conv}

    def connected(self):
        with self.lock:  # fetched by run() before it reads on
            self.want_fill |= {c for (c, _) in self.got}

    def record(self, m, live):
        key = (m["conv"], m["seq"])
        with self.lock:
            if live:
                if key in self.live:
                    self.dups.append(key)
                self.live.add(key)
            self.got[key] = m.get("text")

    def fill(self, conv):
        """Fetch what conv misses; False when the server asked to retry later (busy)."""
        have = self.held(conv)
        after = 0
        while after + 1 in have:
            after += 1
        while True:
            r = self.c.call({"type": "history", "conv": conv, "after": after, "limit": 200},
                            timeout=10)
            if r.get("type") == "error" and r.get("code") in RETRY:
                return False
            assert r["type"] == "history", r
            for m in r["messages"]:
                self.record(m, live=False)
            if not r["more"] or not r["messages"]:
                return True
            after = r["messages"][-1]["seq"]

    def fill_all(self):
        with self.lock:
            convs, self.want_fill = self.want_fill, set()
        for conv in convs:
            if not self.fill(conv):
                with self.lock:
                    self.want_fill.add(conv)

    def run(self):
        try:
            while not self.stop_flag.is_set():
                if not self.ensure():
                    break
                try:
                    self.fill_all()
                    f = self.c.recv_json(timeout=0.1)
                except WSTimeout:  # nothing arrived
                    continue
                except (OSError, WSError):
                    self.drop()
                    continue
                except AssertionError as e:
                    if not self.c.closed:
                        raise
                    self.drop()  # a request of fill_all met the closed connection
                    continue
                kind = f.get("type")
                if kind == "msg":
                    if f["seq"] > 1 and f["seq"] - 1 not in self.held(f["conv"]):
                        self.want_fill.add(f["conv"])  # it skips a seq: one was lost
                    self.record(f, live=True)
                elif kind == "head" and f["seq"] not in self.held(f["conv"]):
                    self.want_fill.add(f["conv"])
                elif kind == "sync":
                    with self.lock:
                        self.want_fill |= {c for (c, _) in self.got}
        except BaseException as e:  # noqa: B902 - reported by stop()
            self.error = e

    def wait_for(self, keys, deadline, what):
        """Wait until every (conv, seq) of keys is held, until deadline (time.monotonic)."""
        keys = set(keys)
        while True:
            with self.lock:
                missing = keys - set(self.got)
            if not missing:
                return
            if self.error:
                raise self.error
            assert time.monotonic() < deadline, (
                f"{self.user} misses {len(missing)} of {len(keys)} messages {what}: "
                f"{sorted(missing)[:10]}")
            time.sleep(0.02)


def acked_keys(senders, before=None):
    """(conv, seq) of every message the senders have acked (before a time.monotonic())."""
    return {(conv, seq) for s in senders for (conv, seq, t) in list(s.acks.values())
            if before is None or t <= before}


def check_store(node, user, conv, senders):
    """The conversation in the store: seqs gap-free from 1, each client id stored once, every
    acked message under the seq its ack gave."""
    c = connect(node, user, "check")
    try:
        msgs, after = [], 0
        while True:
            r = c.call({"type": "history", "conv": conv, "after": after, "limit": 200},
                       timeout=10)
            assert r["type"] == "history", r
            msgs += r["messages"]
            if not r["more"]:
                break
            after = msgs[-1]["seq"]
    finally:
        c.close()
    seqs = [m["seq"] for m in msgs]
    assert seqs == list(range(1, len(seqs) + 1)), f"conversation {conv}: seqs with gaps {seqs}"
    texts = [m.get("text") for m in msgs if m.get("kind", "text") == "text"]
    assert len(texts) == len(set(texts)), f"conversation {conv}: a message stored twice"
    stored = {m.get("text"): m["seq"] for m in msgs}
    for s in senders:
        for cm, (cv, seq, _) in s.acks.items():
            if cv == conv:
                assert stored.get(cm) == seq, f"acked {cm} at seq {seq}, stored: {stored.get(cm)}"
    return msgs
