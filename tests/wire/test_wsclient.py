"""Self-test of wsclient.py against a tiny in-process WebSocket server (needs no chatd)."""

import json
import socket
import struct
import threading

import pytest

import wsclient
from wsclient import WS, HandshakeError, ProtocolError, encode_frame


class FakeServer:
    """Accepts one connection, completes the handshake, then runs `script(conn, reader)`."""

    def __init__(self, script, accept_override=None, protocol="libchat.v1"):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(1)
        self.port = self.lsock.getsockname()[1]
        self.script = script
        self.accept_override = accept_override
        self.protocol = protocol
        self.received = []
        self.error = None
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            conn, _ = self.lsock.accept()
            conn.settimeout(5)
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            head, _, rest = buf.partition(b"\r\n\r\n")
            hdrs = {}
            for ln in head.decode().split("\r\n")[1:]:
                k, v = ln.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
            accept = self.accept_override or wsclient.accept_for(hdrs["sec-websocket-key"])
            resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n")
            if self.protocol:
                resp += f"Sec-WebSocket-Protocol: {self.protocol}\r\n"
            conn.sendall((resp + "\r\n").encode())
            self.reader = Reader(conn, rest)
            self.script(conn, self)
        except Exception as e:  # surfaced by the test
            self.error = e

    def join(self):
        self.t.join(5)
        self.lsock.close()
        if self.error:
            raise self.error


class Reader:
    def __init__(self, conn, buf):
        self.conn, self.buf = conn, buf

    def need(self, n):
        while len(self.buf) < n:
            d = self.conn.recv(65536)
            if not d:
                raise EOFError
            self.buf += d

    def frame(self):
        self.need(2)
        b0, b1 = self.buf[0], self.buf[1]
        assert b1 & 0x80, "client frame not masked"
        n, off = b1 & 0x7F, 2
        if n == 126:
            self.need(4)
            n, off = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self.need(10)
            n, off = struct.unpack("!Q", self.buf[2:10])[0], 10
        self.need(off + 4 + n)
        key = self.buf[off:off + 4]
        payload = wsclient.mask_bytes(self.buf[off + 4:off + 4 + n], key)
        self.buf = self.buf[off + 4 + n:]
        return bool(b0 & 0x80), b0 & 0xF, payload


def srv_frame(op, payload, fin=True):
    return encode_frame(op, payload, fin=fin, mask=False)


def test_wsclient_handshake_and_json_roundtrip():
    def script(conn, s):
        fin, op, p = s.reader.frame()
        s.received.append((fin, op, p))
        obj = json.loads(p)
        conn.sendall(srv_frame(1, json.dumps({"type": "pong", "re": obj["id"], "ts": 1})))
        s.reader.frame()  # close
    fs = FakeServer(script)
    c = WS(fs.port)
    assert c.protocol == "libchat.v1"
    r = c.call({"type": "ping"})
    assert r == {"type": "pong", "re": "r1", "ts": 1}
    c.close(timeout=0.5)
    fs.join()
    assert fs.received[0][:2] == (True, 1)


def test_wsclient_rejects_bad_accept():
    fs = FakeServer(lambda conn, s: None, accept_override="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    with pytest.raises(HandshakeError):
        WS(fs.port)
    fs.join()


def test_wsclient_rejects_missing_subprotocol():
    fs = FakeServer(lambda conn, s: None, protocol=None)
    with pytest.raises(HandshakeError):
        WS(fs.port)
    fs.join()


def test_wsclient_reassembles_fragments_answers_pings_keeps_backlog():
    big = json.dumps({"type": "msg", "seq": 2, "text": "x" * 70000})

    def script(conn, s):
        conn.sendall(srv_frame(1, json.dumps({"type": "presence", "users": []})))
        data = big.encode()
        conn.sendall(srv_frame(1, data[:10], fin=False))
        conn.sendall(srv_frame(9, b"hello"))       # ping between fragments
        conn.sendall(srv_frame(0, data[10:40000], fin=False))
        conn.sendall(srv_frame(0, data[40000:], fin=True))
        fin, op, p = s.reader.frame()
        s.received.append((op, p))
        conn.sendall(srv_frame(8, struct.pack("!H", 1008) + b"bye"))
        fin, op, p = s.reader.frame()
        s.received.append((op, p))
    fs = FakeServer(script)
    c = WS(fs.port)
    m = c.expect("msg", seq=2)
    assert len(m["text"]) == 70000
    assert c.backlog == [{"type": "presence", "users": []}]
    assert c.close_code() == 1008
    fs.join()
    assert fs.received[0] == (10, b"hello")
    assert fs.received[1][0] == 8 and fs.received[1][1][:2] == struct.pack("!H", 1008)


def test_wsclient_expect_times_out_with_backlog_in_message():
    ev = threading.Event()

    def script(conn, s):
        conn.sendall(srv_frame(1, json.dumps({"type": "typing", "user": "zed"})))
        ev.wait(5)
    fs = FakeServer(script)
    c = WS(fs.port)
    with pytest.raises(AssertionError) as ei:
        c.expect("msg", timeout=0.3)
    assert "zed" in str(ei.value)
    c.expect_none("msg", within=0.1)
    with pytest.raises(AssertionError):
        c.expect_none("typing", within=0.1)
    ev.set()
    c.abort()
    fs.join()


def test_wsclient_rejects_masked_server_frame_and_duplicate_keys():
    def script(conn, s):
        conn.sendall(srv_frame(1, '{"type":"a","type":"b"}'))
        conn.sendall(encode_frame(1, '{"type":"x"}', mask=True))
    fs = FakeServer(script)
    c = WS(fs.port)
    with pytest.raises(ProtocolError):
        c.recv_json(timeout=2)
    with pytest.raises(ProtocolError):
        c.recv_json(timeout=2)
    c.abort()
    fs.join()


def test_wsclient_match_distinguishes_bool_from_int():
    assert not wsclient.frame_matches({"type": "ack", "dup": 1}, "ack", {"dup": True})
    assert wsclient.frame_matches({"type": "ack", "dup": True, "from": "a"}, "ack",
                                  {"dup": True, "from_": "a"})
    assert wsclient.frame_matches({"type": "x", "n": 3}, None, {"n": lambda v: v > 2})
