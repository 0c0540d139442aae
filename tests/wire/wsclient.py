"""A small synchronous RFC 6455 client for black-box tests of chatd (stdlib only).

Every wait is bounded. Frames the server pushes that a test is not waiting for are kept in a
backlog (in arrival order), so unrelated presence/typing pushes never break a test, and every
timeout reports what did arrive.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


class WSError(Exception):
    pass


class HandshakeError(WSError):
    pass


class ProtocolError(WSError):
    """The server broke RFC 6455 or the framing rules of the libchat protocol."""


class WSTimeout(WSError, AssertionError):
    pass


class ConnectionClosed(WSError):
    def __init__(self, code, reason="", note=""):
        self.code = code
        self.reason = reason
        super().__init__(f"connection closed by server (code={code!r}, reason={reason!r}) {note}")


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def mask_bytes(data, key):
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def encode_frame(opcode, payload, fin=True, mask=True, rsv=0, mask_key=None):
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        hdr = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        hdr = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        return hdr + key + mask_bytes(payload, key)
    return hdr + payload


def _no_dup_pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ProtocolError(f"server sent a JSON object with duplicate key {k!r}")
        d[k] = v
    return d


def frame_matches(frame, type_=None, match=None):
    if type_ is not None and frame.get("type") != type_:
        return False
    for k, v in (match or {}).items():
        if k.endswith("_") and k[:-1] in ("from", "type", "id"):
            k = k[:-1]
        if k not in frame:
            return False
        if callable(v):
            try:
                if not v(frame[k]):
                    return False
            except Exception:
                return False
        elif not strict_eq(frame[k], v):
            return False
    return True


def strict_eq(a, b):
    """== that does not confuse true/false with 1/0."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


class WS:
    """One client connection. Not thread-safe: use one WS per thread."""

    def __init__(self, port, host="127.0.0.1", path="/", subprotocol="libchat.v1", timeout=5.0,
                 extra_headers=None, auto_pong=True, ssl_context=None, server_hostname=None):
        self.host = host
        self.port = port
        self.auto_pong = auto_pong
        self.backlog = []          # parsed JSON frames not yet consumed, in arrival order
        self.log = []              # every data frame received, for diagnostics
        self.pings = []            # payloads of pings the server sent
        self.pongs = []            # payloads of pongs the server sent
        self.close_received = False
        self.close_sent = False
        self.closed = False
        self.close_code_value = None
        self.close_reason = ""
        self.eof = False
        self.protocol = None
        self.auth_ok = None
        self._buf = bytearray()
        self._frag_op = None
        self._frag_parts = []
        self._next_id = 0
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if ssl_context is not None:  # wss://: TLS, verified as the context says
            self.sock = ssl_context.wrap_socket(self.sock,
                                                server_hostname=server_hostname or host)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._handshake(path, subprotocol, timeout, extra_headers or {})

    # ---- handshake -------------------------------------------------------------------------

    def _handshake(self, path, subprotocol, timeout, extra_headers):
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.host}:{self.port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
        if subprotocol:
            lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
        for k, v in extra_headers.items():
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self._buf:
            if len(self._buf) > 65536:
                raise HandshakeError("handshake response too large")
            self._fill(deadline)
        head, _, rest = bytes(self._buf).partition(b"\r\n\r\n")
        self._buf = bytearray(rest)
        text = head.decode("latin-1")
        status, *hdr_lines = text.split("\r\n")
        parts = status.split(" ", 2)
        if len(parts) < 2 or parts[1] != "101":
            raise HandshakeError(f"expected 101 Switching Protocols, got {status!r}")
        headers = {}
        for ln in hdr_lines:
            if ":" in ln:
                k, v = ln.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        self.response_headers = headers
        if headers.get("upgrade", "").lower() != "websocket":
            raise HandshakeError(f"bad Upgrade header: {headers.get('upgrade')!r}")
        if "upgrade" not in [t.strip().lower() for t in headers.get("connection", "").split(",")]:
            raise HandshakeError(f"bad Connection header: {headers.get('connection')!r}")
        if headers.get("sec-websocket-accept") != accept_for(key):
            raise HandshakeError(f"bad Sec-WebSocket-Accept {headers.get('sec-websocket-accept')!r}")
        proto = headers.get("sec-websocket-protocol")
        if subprotocol:
            if proto != subprotocol:
                raise HandshakeError(f"server selected subprotocol {proto!r}, offered {subprotocol!r}")
        elif proto is not None:
            raise HandshakeError(f"server selected subprotocol {proto!r} though none was offered")
        if headers.get("sec-websocket-extensions"):
            raise HandshakeError("server selected an extension that was not offered")
        self.protocol = proto

    # ---- low level -------------------------------------------------------------------------

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WSTimeout("timed out reading from server")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise WSTimeout("timed out reading from server") from None
        except (ConnectionResetError, BrokenPipeError) as e:
            self.eof = True
            self.closed = True
            raise ConnectionClosed(self.close_code_value, self.close_reason, f"({e})") from None
        if not data:
            self.eof = True
            self.closed = True
            raise ConnectionClosed(self.close_code_value, self.close_reason, "(EOF)")
        self._buf += data

    def _need(self, n, deadline):
        while len(self._buf) < n:
            self._fill(deadline)

    def _read_frame(self, deadline):
        """Read one whole frame; consumes nothing until the whole frame is buffered."""
        if self.close_received or self.eof:
            raise ConnectionClosed(self.close_code_value, self.close_reason, "(already closed)")
        self._need(2, deadline)
        b0, b1 = self._buf[0], self._buf[1]
        fin = bool(b0 & 0x80)
        rsv = (b0 >> 4) & 7
        op = b0 & 0xF
        masked = bool(b1 & 0x80)
        n = b1 & 0x7F
        off = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self._buf[2:4])[0]
            off = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self._buf[2:10])[0]
            off = 10
        if masked:
            raise ProtocolError("server sent a masked frame")
        if rsv:
            raise ProtocolError(f"server set RSV bits {rsv} with no extension")
        if op in (OP_CLOSE, OP_PING, OP_PONG):
            if not fin:
                raise ProtocolError("fragmented control frame")
            if n > 125:
                raise ProtocolError("control frame payload over 125 bytes")
        elif op not in (OP_CONT, OP_TEXT, OP_BINARY):
            raise ProtocolError(f"reserved opcode {op}")
        self._need(off + n, deadline)
        payload = bytes(self._buf[off:off + n])
        del self._buf[:off + n]
        return fin, op, payload

    def _send(self, data):
        self.sock.sendall(data)

    def send_raw_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        self._send(encode_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv))

    def send_raw_bytes(self, data):
        self._send(data)

    def recv_message(self, timeout=5.0, return_control=False):
        """Next whole data message from the socket (not the backlog): (opcode, payload).

        Pings are answered, pongs recorded (and returned too if return_control); a close frame
        is echoed and raises ConnectionClosed.
        """
        deadline = time.monotonic() + timeout
        while True:
            fin, op, payload = self._read_frame(deadline)
            if op == OP_PING:
                self.pings.append(payload)
                if self.auto_pong and not self.close_sent:
                    try:
                        self.send_raw_frame(OP_PONG, payload)
                    except OSError:
                        pass
                if return_control:
                    return op, payload
                continue
            if op == OP_PONG:
                self.pongs.append(payload)
                if return_control:
                    return op, payload
                continue
            if op == OP_CLOSE:
                self.close_received = True
                if len(payload) >= 2:
                    self.close_code_value = struct.unpack("!H", payload[:2])[0]
                    self.close_reason = payload[2:].decode("utf-8", "replace")
                elif len(payload) == 1:
                    raise ProtocolError("close frame with a 1-byte payload")
                else:
                    self.close_code_value = 1005
                if not self.close_sent:
                    try:
                        self.close_sent = True
                        echo = payload[:2] if len(payload) >= 2 else b""
                        self.send_raw_frame(OP_CLOSE, echo)
                    except OSError:
                        pass
                self.closed = True
                raise ConnectionClosed(self.close_code_value, self.close_reason)
            if op == OP_CONT:
                if self._frag_op is None:
                    raise ProtocolError("continuation frame with no message in progress")
                self._frag_parts.append(payload)
                if fin:
                    whole = b"".join(self._frag_parts)
                    opc = self._frag_op
                    self._frag_op, self._frag_parts = None, []
                    return opc, whole
                continue
            # text or binary
            if self._frag_op is not None:
                raise ProtocolError("new data frame while a fragmented message is in progress")
            if fin:
                return op, payload
            self._frag_op, self._frag_parts = op, [payload]

    def _read_obj(self, deadline):
        timeout = max(0.0, deadline - time.monotonic())
        if timeout <= 0:
            raise WSTimeout("timed out")
        op, payload = self.recv_message(timeout)
        return self._to_obj(op, payload)

    def _to_obj(self, op, payload):
        if op != OP_TEXT:
            raise ProtocolError(f"server sent a binary message: {payload[:200]!r}")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ProtocolError(f"server sent invalid UTF-8: {e}") from None
        try:
            obj = json.loads(text, object_pairs_hook=_no_dup_pairs)
        except ValueError as e:
            raise ProtocolError(f"server sent non-JSON text {text[:300]!r}: {e}") from None
        if not isinstance(obj, dict):
            raise ProtocolError(f"server sent a JSON non-object: {text[:300]!r}")
        if not isinstance(obj.get("type"), str):
            raise ProtocolError(f"server frame without a string type: {text[:300]!r}")
        self.log.append(obj)
        return obj

    # ---- JSON level ------------------------------------------------------------------------

    def new_id(self):
        self._next_id += 1
        return f"r{self._next_id}"

    def send_text(self, text):
        self.send_raw_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text)

    def send_json(self, obj):
        self.send_text(json.dumps(obj, separators=(",", ":"), ensure_ascii=False))

    def send_fragmented(self, payload, nfrags, opcode=OP_TEXT):
        if isinstance(payload, str):
            payload = payload.encode()
        step = max(1, -(-len(payload) // nfrags))
        chunks = [payload[i:i + step] for i in range(0, len(payload), step)]
        while len(chunks) < nfrags:
            chunks.append(b"")
        for i, ch in enumerate(chunks):
            op = opcode if i == 0 else OP_CONT
            self.send_raw_frame(op, ch, fin=(i == len(chunks) - 1))

    def recv_json(self, timeout=5.0):
        """Next JSON frame: from the backlog first, then from the socket."""
        if self.backlog:
            return self.backlog.pop(0)
        return self._read_obj(time.monotonic() + timeout)

    def _describe(self):
        bl = json.dumps(self.backlog, default=str)
        if len(bl) > 4000:
            bl = bl[:4000] + f"... ({len(self.backlog)} frames)"
        return f"backlog={bl}"

    def expect(self, type_=None, timeout=5.0, **match):
        """Return the first frame (backlog first) of type `type_` whose fields equal `match`.

        A match value may be a callable (predicate). Use `from_=` for the `from` field.
        Frames that do not match stay in the backlog. Raises AssertionError on timeout or close.
        """
        for i, f in enumerate(self.backlog):
            if frame_matches(f, type_, match):
                return self.backlog.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self._read_obj(deadline)
            except WSTimeout:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for type={type_!r} {match!r}; "
                    f"{self._describe()}") from None
            except ConnectionClosed as e:
                raise AssertionError(
                    f"connection closed (code {e.code!r}) while waiting for type={type_!r} "
                    f"{match!r}; {self._describe()}") from None
            if frame_matches(f, type_, match):
                return f
            self.backlog.append(f)

    def expect_none(self, type_=None, within=0.5, **match):
        """Fail if a frame of that type matching `match` is in the backlog or arrives within."""
        for f in self.backlog:
            if frame_matches(f, type_, match):
                raise AssertionError(f"unexpected frame {f!r}; {self._describe()}")
        deadline = time.monotonic() + within
        while True:
            try:
                f = self._read_obj(deadline)
            except (WSTimeout, ConnectionClosed):
                return
            if frame_matches(f, type_, match):
                raise AssertionError(f"unexpected frame {f!r}; {self._describe()}")
            self.backlog.append(f)

    def drain(self, within=0.3):
        """Read everything that arrives within `within` seconds into the backlog; return a copy."""
        deadline = time.monotonic() + within
        while True:
            try:
                self.backlog.append(self._read_obj(deadline))
            except (WSTimeout, ConnectionClosed):
                return list(self.backlog)

    def take_all(self, type_=None, **match):
        """Remove and return every backlog frame matching (no reading)."""
        out = [f for f in self.backlog if frame_matches(f, type_, match)]
        self.backlog = [f for f in self.backlog if not frame_matches(f, type_, match)]
        return out

    def call(self, obj, timeout=5.0):
        """Send a request (an id is added if absent) and return the frame answering it (re=id)."""
        obj = dict(obj)
        if "id" not in obj:
            obj["id"] = self.new_id()
        self.send_json(obj)
        return self.expect(None, timeout=timeout, re=obj["id"])

    def ws_ping(self, payload=b"p", timeout=5.0):
        """WebSocket-level ping; waits for the pong (data frames go to the backlog)."""
        self.send_raw_frame(OP_PING, payload)
        deadline = time.monotonic() + timeout
        while payload not in self.pongs:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise WSTimeout("timed out")
                op, data = self.recv_message(left, return_control=True)
            except WSTimeout:
                raise AssertionError(f"no pong within {timeout}s; {self._describe()}") from None
            if op in (OP_TEXT, OP_BINARY):
                self.backlog.append(self._to_obj(op, data))
        self.pongs.remove(payload)

    def close_code(self, timeout=5.0):
        """Wait for the server to close; return its close code (None if it dropped TCP only)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.backlog.append(self._read_obj(deadline))
            except ConnectionClosed:
                return self.close_code_value
            except WSTimeout:
                raise AssertionError(
                    f"server did not close within {timeout}s; {self._describe()}") from None

    def wait_closed(self, timeout=5.0):
        """Like close_code, but returns True/False instead of raising on timeout."""
        try:
            self.close_code(timeout)
            return True
        except AssertionError:
            return False

    def close(self, code=1000, timeout=2.0):
        """Clean close handshake (bounded), then drop the socket."""
        if self.closed and (self.close_received or self.eof):
            self._drop()
            return
        try:
            if not self.close_sent:
                self.close_sent = True
                self.send_raw_frame(OP_CLOSE, struct.pack("!H", code))
            deadline = time.monotonic() + timeout
            while True:
                self.backlog.append(self._read_obj(deadline))
        except (WSError, OSError):
            pass
        self._drop()

    def abort(self):
        """Drop the TCP connection with no close frame."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self._drop()

    def _drop(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
