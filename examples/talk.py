#!/usr/bin/env python3
"""Talk to a libchat server from a terminal (standard library only).

    python3 examples/talk.py --token TOKEN                 print everything that arrives
    python3 examples/talk.py --token TOKEN --to bob hello  send "hello" to bob, then print

Each line typed on stdin is sent as a raw protocol frame (JSON), see doc/protocol.md.
"""
import argparse
import base64
import json
import os
import select
import socket
import struct
import sys


def send_frame(sock, text):
    data = text.encode()
    mask = os.urandom(4)
    head = bytes([0x81])
    n = len(data)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    return buf


def recv_frame(sock):
    """One server message (server frames are unmasked); returns (opcode, payload)."""
    payload, first_op = b"", None
    while True:
        b0, b1 = read_exact(sock, 2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", read_exact(sock, 2))[0]
        elif n == 127:
            n = struct.unpack("!Q", read_exact(sock, 8))[0]
        payload += read_exact(sock, n)
        first_op = first_op if first_op is not None else b0 & 0x0F
        if b0 & 0x80:
            return first_op, payload


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7700)
    ap.add_argument("--token", required=True, help="from: chatd token USER DEVICE")
    ap.add_argument("--to", help="send the message to this user")
    ap.add_argument("message", nargs="*")
    args = ap.parse_args()

    sock = socket.create_connection((args.host, args.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: {args.host}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Protocol: libchat.v1\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += read_exact(sock, 1)
    if b" 101 " not in head.split(b"\r\n")[0]:
        sys.exit(f"talk: upgrade refused: {head.decode(errors='replace').splitlines()[0]}")
    sock.settimeout(None)
    send_frame(sock, json.dumps({"type": "auth", "id": "auth", "v": 1, "token": args.token}))
    if args.to:
        text = " ".join(args.message) or sys.exit("talk: --to needs a message")
        send_frame(sock, json.dumps({"type": "send", "id": "send", "to": args.to,
                                     "cmid": base64.b16encode(os.urandom(8)).decode(),
                                     "text": text}))
    inputs = [sock, sys.stdin]
    while True:
        ready, _, _ = select.select(inputs, [], [])
        if sys.stdin in ready:
            line = sys.stdin.readline()
            if not line:
                inputs = [sock]  # stdin closed: keep printing until the server closes
            elif line.strip():
                send_frame(sock, line.strip())
        if sock in ready:
            try:
                op, payload = recv_frame(sock)
            except EOFError as e:
                print(f"talk: {e}", file=sys.stderr)
                return 1
            if op == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                print(f"talk: closed by the server ({code} {payload[2:].decode(errors='replace')})",
                      file=sys.stderr)
                return 1
            if op == 1:
                print(payload.decode(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
