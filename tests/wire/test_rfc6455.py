"""RFC 6455 framing edge cases, sent over a raw socket to a real chatd.

Each case breaks one framing rule on a fresh connection, expects the close code RFC 6455
section 7.4.1 assigns (1002 protocol error, 1007 invalid data, 1009 too big), and then checks
that the server still serves another client. The JSON-level errors (malformed JSON, depth,
oversize messages, binary frames, basic invalid UTF-8) are in test_errors.py.

The server's receiver is lib/transport/wsrx.c (the native transport): every rule below is its
own, each answered with the RFC's close code and a close frame. Messages over the frame limit
are refused at the header of the frame whose announced length does not fit, before any of its
payload is read. A few cases still accept "closed without a close frame" as well.
"""

import json
import socket
import struct
import time

import pytest

from wsclient import OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, encode_frame


def _still_serves(server):
    """The server is up and a new client works end to end."""
    assert server.alive(), "chatd died"
    c = server.connect("survivor", f"d{time.monotonic_ns()}")
    r = c.call({"type": "ping"})
    assert r["type"] == "pong", r
    c.close()


def _closed_with(c, timeout=5.0):
    """The close code the server sent, or None if it dropped TCP without a close frame.
    Fails if the connection stays open."""
    assert c.wait_closed(timeout), "server kept the connection open"
    return c.close_code_value


def _hdr(fin, op, rsv=0):
    return (0x80 if fin else 0) | ((rsv & 7) << 4) | (op & 0xF)


# ---- masking, reserved bits, opcodes ---------------------------------------------------------

def test_unmasked_client_frame_closes_1002(server):
    # RFC 6455 5.1: a server closes on a frame a client did not mask.
    c = server.ws()
    c.send_raw_frame(OP_TEXT, b'{"type":"ping"}', mask=False)
    assert _closed_with(c, timeout=2.0) == 1002
    _still_serves(server)


def test_unmasked_frame_after_an_authenticated_session_closes_1002(server):
    c = server.connect("alice")
    c.send_raw_bytes(encode_frame(OP_TEXT, b'{"type":"ping","id":"u"}', mask=False))
    assert _closed_with(c, timeout=2.0) == 1002
    _still_serves(server)


@pytest.mark.parametrize("rsv", [1, 2, 4, 7])
def test_reserved_bits_close_1002(server, rsv):
    c = server.ws()
    c.send_raw_frame(OP_TEXT, b'{"type":"ping"}', rsv=rsv)
    assert _closed_with(c) == 1002
    _still_serves(server)


@pytest.mark.parametrize("op", [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])
def test_reserved_opcode_closes_1002(server, op):
    c = server.ws()
    c.send_raw_frame(op, b"x")
    assert _closed_with(c) == 1002
    _still_serves(server)


# ---- control frames --------------------------------------------------------------------------

@pytest.mark.parametrize("op", [OP_PING, OP_PONG, OP_CLOSE])
def test_control_frame_over_125_bytes_closes(server, op):
    # RFC 6455 5.5 / 7.4.1: 1002. lws 4.1.6 refuses the 16-bit length of a control frame in its
    # parser and drops the TCP connection without a close frame (None); our callbacks never
    # see the frame, so that is what we can assert: closed, and the server unaffected.
    c = server.ws()
    payload = (struct.pack("!H", 1000) if op == OP_CLOSE else b"") + b"p" * 126
    c.send_raw_frame(op, payload[:126])
    code = _closed_with(c)
    assert code in (1002, None), code
    _still_serves(server)


@pytest.mark.parametrize("op", [OP_PING, OP_PONG, OP_CLOSE])
def test_fragmented_control_frame_closes_1002(server, op):
    c = server.ws()
    c.send_raw_frame(op, struct.pack("!H", 1000) if op == OP_CLOSE else b"p", fin=False)
    assert _closed_with(c) == 1002
    _still_serves(server)


def test_ping_between_fragments_is_answered_and_message_kept(server):
    # RFC 6455 5.4: control frames may be injected in the middle of a fragmented message.
    c = server.connect("alice")
    c.send_raw_frame(OP_TEXT, b'{"type":"ping",', fin=False)
    c.ws_ping(b"mid")
    c.send_raw_frame(OP_CONT, b'"id":"frag"}', fin=True)
    r = c.expect("pong")
    assert r.get("re") == "frag", r


# ---- fragmentation ---------------------------------------------------------------------------

def test_continuation_without_start_closes_1002(server):
    c = server.ws()
    c.send_raw_frame(OP_CONT, b'{"type":"ping"}', fin=True)
    assert _closed_with(c) == 1002
    _still_serves(server)


@pytest.mark.parametrize("op", [OP_TEXT, OP_BINARY])
def test_new_message_inside_fragmented_one_closes_1002(server, op):
    c = server.connect("alice")
    c.send_raw_frame(OP_TEXT, b'{"type":"ping",', fin=False)
    c.send_raw_frame(op, b'{"type":"ping"}', fin=True)
    assert _closed_with(c) == 1002
    _still_serves(server)


def test_continuation_after_complete_message_closes_1002(server):
    c = server.connect("alice")
    c.send_raw_frame(OP_TEXT, b'{"type":"ping","id":"one"}', fin=True)
    c.send_raw_frame(OP_CONT, b'{"type":"ping"}', fin=True)
    assert _closed_with(c) == 1002
    _still_serves(server)


# ---- invalid UTF-8 ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [
    b"\xc0\x80",          # overlong NUL
    b"\xed\xa0\x80",      # UTF-16 surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\x80",              # lone continuation byte
], ids=["overlong", "surrogate", "above-10ffff", "lone-continuation"])
def test_invalid_utf8_variants_close_1007(server, bad):
    c = server.ws()
    c.send_raw_frame(OP_TEXT, b'{"type":"ping","x":"' + bad + b'"}')
    assert _closed_with(c) == 1007
    _still_serves(server)


def test_utf8_sequence_split_across_fragments_is_accepted(server):
    c = server.connect("alice")
    text = '{"type":"ping","id":"caf\u00e9"}'.encode()  # \u00e9 is c3 a9
    cut = text.index(b"\xc3") + 1
    c.send_raw_frame(OP_TEXT, text[:cut], fin=False)
    c.send_raw_frame(OP_CONT, text[cut:], fin=True)
    # 'caf\u00e9' is not a valid request id (ASCII only): the answer is an error without re,
    # but it is an answer: the message arrived whole.
    r = c.recv_json()
    assert r["type"] in ("pong", "error"), r


def test_message_ending_inside_utf8_sequence_closes_1007(server):
    c = server.ws()
    c.send_raw_frame(OP_TEXT, b'{"type":"ping"}\xc3', fin=True)
    assert _closed_with(c) == 1007
    _still_serves(server)


def test_invalid_utf8_in_close_reason_closes_1007_or_drops(server):
    # RFC 6455 7.4.1 wants 1007; lws 4.1.6 validates the reason before any callback and drops
    # the connection without a close frame (None).
    c = server.ws()
    c.send_raw_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff\xfe")
    code = _closed_with(c)
    assert code in (1007, None), code
    _still_serves(server)


# ---- lengths ---------------------------------------------------------------------------------

def _raw_header_64(c, length, op=OP_TEXT):
    c.send_raw_bytes(struct.pack("!BBQ", _hdr(True, op), 0x80 | 127, length) + b"\x01\x02\x03\x04")


def test_64bit_length_with_top_bit_set_closes(server):
    # RFC 6455 5.2: the most significant bit must be 0, so 1002. lws 4.1.6 checks it in its
    # parser ("b63 of length must be zero") and drops the connection without a close frame.
    c = server.ws()
    _raw_header_64(c, 1 << 63)
    code = _closed_with(c)
    assert code in (1002, None), code
    _still_serves(server)


def test_length_2_pow_62_closes_1009(server):
    # The announced length is over the frame limit: refused at the header.
    c = server.ws()
    _raw_header_64(c, 1 << 62)
    c.send_raw_bytes(b"{" * 16)
    assert _closed_with(c) == 1009
    _still_serves(server)


def test_frame_header_over_the_limit_is_refused_before_any_payload(server):
    # Only the header of a 1 MiB frame: the refusal (an error frame, then 1009) comes without
    # waiting for a byte of its payload.
    c = server.connect("alice")
    _raw_header_64(c, 1 << 20)
    e = c.expect("error", timeout=3)
    assert e["reason"] == "frame_too_large", e
    assert _closed_with(c) == 1009
    _still_serves(server)


def test_length_over_frame_limit_closes_1009_before_the_payload(server):
    # 1 MiB declared, only a little sent: the cap must not wait for the whole payload.
    c = server.ws()
    _raw_header_64(c, 1 << 20)
    try:
        c.send_raw_bytes(b"x" * 70000)
    except OSError:
        pass
    assert _closed_with(c) == 1009
    _still_serves(server)


def test_close_with_one_byte_payload_closes_1002(server):
    # A 1-byte close body is invalid (RFC 6455 5.5.1): 1002, not an echo of it.
    c = server.ws()
    c.send_raw_frame(OP_CLOSE, b"\x03")
    assert _closed_with(c) == 1002
    _still_serves(server)


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 2999])
def test_close_with_reserved_code_closes_1002(server, code):
    # lws answers a close code that may not be sent on the wire with 1002.
    c = server.ws()
    c.send_raw_frame(OP_CLOSE, struct.pack("!H", code))
    assert _closed_with(c) == 1002
    _still_serves(server)


def test_normal_close_is_echoed(server):
    c = server.ws()
    c.send_raw_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye")
    assert _closed_with(c) == 1000
    _still_serves(server)


def test_rsv_bit_on_continuation_closes_1002(server):
    c = server.connect("alice")
    c.send_raw_frame(OP_TEXT, b'{"type":"ping",', fin=False)
    c.send_raw_frame(OP_CONT, b'"id":"x"}', fin=True, rsv=4)
    assert _closed_with(c) == 1002
    _still_serves(server)


def test_many_clients_survive_a_protocol_error_storm(server):
    # Broken framings on many connections at once, interleaved with a working client.
    ok = server.connect("bob")
    bad = [server.ws() for _ in range(20)]
    frames = [encode_frame(5, b"x"), encode_frame(OP_CONT, b"x"),
              encode_frame(OP_PING, b"p", fin=False), encode_frame(OP_TEXT, b"x", rsv=2),
              encode_frame(OP_TEXT, b"\xff")]
    for i, c in enumerate(bad):
        c.send_raw_bytes(frames[i % len(frames)])
    for c in bad:
        assert c.wait_closed(5.0)
    r = ok.call({"type": "ping", "id": "still"})
    assert r["type"] == "pong" and r.get("re") == "still", r
    _still_serves(server)


# ---- what the server sends ---------------------------------------------------------------------

def test_error_quoting_a_long_utf8_type_is_valid_utf8(server):
    # RFC 6455 8.1 binds the server too: the unknown_type error quotes at most 40 bytes of the
    # type, and used to cut the 2-byte \u00e9 in half (wsclient refuses invalid UTF-8).
    c = server.connect("alice")
    for pad in range(36, 42):
        c.send_text(json.dumps({"type": "a" * pad + "\u00e9\u20ac\U0001f600", "id": f"t{pad}"},
                               ensure_ascii=False))
        r = c.expect("error", re=f"t{pad}")
        assert r["reason"] == "unknown_type", r
        assert len(r["message"].encode()) <= len("unknown frame type ''") + 40, r
