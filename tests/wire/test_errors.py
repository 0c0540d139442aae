"""Malformed frames, limits, rate limits (doc/protocol.md: Errors, Limits)."""

import json
import socket
import time

import pytest

from helpers import assert_error, cmid, history_all, send
from wsclient import OP_BINARY, OP_CONT, OP_TEXT


def _still_works(c):
    r = c.call({"type": "ping"})
    assert r["type"] == "pong", r


def test_malformed_json_bad_json_and_connection_survives(server):
    a = server.connect("alice")
    a.send_text('{"type":"ping","id":"1"')
    e = a.expect("error")
    assert_error(e, "EPROTO", "bad_json", re=None)
    _still_works(a)


def test_invalid_utf8_closes_1007(server):
    # RFC 6455 section 8.1: a text message that is not UTF-8 fails the connection with 1007.
    a = server.connect("alice")
    a.send_raw_frame(OP_TEXT, b'{"type":"ping","x":"\xff\xfe"}')
    assert a.close_code() == 1007
    b = server.connect("alice", "d2")  # the server is unaffected
    _still_works(b)


def test_non_object_is_not_object(server):
    a = server.connect("alice")
    a.send_text('[1,2,3]')
    assert_error(a.expect("error"), "EPROTO", "not_object", re=None)
    a.send_text('"ping"')
    assert_error(a.expect("error"), "EPROTO", "not_object")
    _still_works(a)


def test_unknown_type_is_enotsup_with_re(server):
    a = server.connect("alice")
    r = a.call({"type": "teleport", "id": "u1"})
    assert_error(r, "ENOTSUP", "unknown_type", re="u1")
    _still_works(a)


def test_missing_type_is_refused(server):
    a = server.connect("alice")
    r = a.call({"id": "nt", "conv": 1})
    assert r["type"] == "error" and r["code"] in ("EINVAL", "ENOTSUP"), r


def test_missing_field_is_einval_missing_field(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "id": "m1", "to": "bob", "cmid": cmid()})
    assert_error(r, "EINVAL", "missing_field", re="m1")


def test_wrong_field_type_is_bad_field(server):
    a = server.connect("alice")
    r = a.call({"type": "history", "id": "b1", "conv": "twelve"})
    assert_error(r, "EINVAL", "bad_field", re="b1")


def test_duplicate_key_is_eproto_duplicate_key(server):
    a = server.connect("alice")
    a.send_text('{"type":"send","id":"d1","to":"bob","cmid":"x1","text":"a","text":"b"}')
    e = a.expect("error")
    assert_error(e, "EPROTO", "duplicate_key")
    b = server.connect("bob")
    b.expect_none("msg", within=0.3)
    assert a.call({"type": "convs", "since": 0})["convs"] == []


def test_nested_duplicate_key_is_refused(server):
    a = server.connect("alice")
    a.send_text('{"type":"ping","id":"n","x":{"k":1,"k":2}}')
    assert_error(a.expect("error"), "EPROTO", "duplicate_key")


def _nested(depth_total):
    # the outer object is depth 1; each array adds one level
    return '{"type":"ping","id":"deep","pad":' + "[" * (depth_total - 1) + "]" * (depth_total - 1) + "}"


def test_depth_17_is_too_deep(server):
    a = server.connect("alice")
    a.send_text(_nested(17))
    assert_error(a.expect("error"), "ELIMIT", "too_deep")
    _still_works(a)


def test_depth_16_is_accepted(server):
    a = server.connect("alice")
    a.send_text(_nested(16))
    r = a.expect(None, re="deep")
    assert r["type"] == "pong", r


def test_depth_counts_objects_and_arrays_alike(server):
    a = server.connect("alice")
    # the frame's object is 1; {"p":[{"q":[...]}]} alternates objects and arrays
    def frame(depth):
        inner = "{}" if depth % 2 == 0 else "[]"
        for level in range(depth - 2, 0, -1):
            inner = '{"q":' + inner + "}" if level % 2 == 0 else "[" + inner + "]"
        return '{"type":"ping","id":"d","p":' + inner + "}"
    assert json.loads(frame(16))
    a.send_text(frame(16))
    assert a.expect(None, re="d")["type"] == "pong"
    a.send_text(frame(17))
    assert_error(a.expect("error"), "ELIMIT", "too_deep")


def test_brackets_inside_strings_do_not_count_toward_depth(server):
    a = server.connect("alice")
    r = a.call({"type": "ping", "pad": "[" * 40 + "{" * 40, "k": ["]" * 40]})
    assert r["type"] == "pong", r


@pytest.mark.chatd_args("--limit", "json_depth=4")
def test_depth_limit_is_configurable(server):
    a = server.connect("alice")
    a.send_text(_nested(5))
    assert_error(a.expect("error"), "ELIMIT", "too_deep")
    a.send_text(_nested(4))
    assert a.expect(None, re="deep")["type"] == "pong"


def test_text_over_body_limit_is_body_too_large(server):
    a = server.connect("alice")
    b = server.connect("bob")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "text": "x" * (16 * 1024 + 1)})
    assert_error(r, "ELIMIT", "body_too_large")
    ok = a.call({"type": "send", "to": "bob", "cmid": cmid(), "text": "y" * (16 * 1024)})
    assert ok["type"] == "ack" and ok["seq"] == 1, ok
    m = b.expect("msg", seq=1)
    assert m["text"] == "y" * 16384


def test_body_limit_counts_utf8_bytes(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "text": "\u00e9" * 8193})
    assert_error(r, "ELIMIT", "body_too_large")


@pytest.mark.chatd_args("--limit", "frame_bytes=4096")
def test_frame_over_limit_closes_1009(server):
    a = server.connect("alice")
    a.send_json({"type": "ping", "id": "big", "pad": "x" * 5000})
    assert a.close_code() == 1009


@pytest.mark.chatd_args("--limit", "frame_bytes=4096")
def test_frame_over_limit_sends_frame_too_large_before_close(server):
    a = server.connect("alice")
    a.send_json({"type": "ping", "id": "big", "pad": "x" * 5000})
    code = a.close_code()
    errs = [f for f in a.backlog if f["type"] == "error"]
    assert errs and errs[0]["code"] == "ELIMIT" and errs[0]["reason"] == "frame_too_large", a.backlog
    assert code == 1009


@pytest.mark.chatd_args("--limit", "frame_bytes=4096")
def test_fragmented_message_over_limit_closes_1009(server):
    a = server.connect("alice")
    _send_fragments_until_closed(a, json.dumps({"type": "ping", "pad": "x" * 6000}), 4)
    if not a.closed:
        a.close_code()
    assert a.close_code_value == 1009, (a.close_code_value, a.backlog)


def test_fragmented_message_is_reassembled(server):
    a = server.connect("alice")
    a.send_fragmented(json.dumps({"type": "ping", "id": "frag"}), 5)
    assert a.expect(None, re="frag")["type"] == "pong"


def _send_fragments_until_closed(c, payload, nfrags):
    """Send fragments one by one, stopping once the server has closed (no broken pipe)."""
    data = payload.encode()
    step = -(-len(data) // nfrags)
    chunks = [data[i:i + step] for i in range(0, len(data), step)]
    for i, ch in enumerate(chunks):
        if c.closed:
            break
        try:
            c.send_raw_frame(OP_TEXT if i == 0 else OP_CONT, ch, fin=(i == len(chunks) - 1))
        except OSError:
            break
        c.drain(within=0.05)


@pytest.mark.chatd_args("--limit", "fragments=4")
def test_too_many_fragments_closes_1009(server):
    a = server.connect("alice")
    _send_fragments_until_closed(a, json.dumps({"type": "ping", "id": "frag", "pad": "x" * 100}), 8)
    if not a.closed:
        a.close_code()
    assert a.close_code_value == 1009, (a.close_code_value, a.backlog)


@pytest.mark.chatd_args("--limit", "fragments=4")
def test_five_fragments_over_limit_of_four_close_1009(server):
    # The limit counts frames per message: a fifth is one too many (refused at the header of
    # the fourth frame without FIN).
    a = server.connect("alice")
    _send_fragments_until_closed(a, json.dumps({"type": "ping", "id": "frag5", "pad": "x" * 100}), 5)
    if not a.closed:
        a.close_code()
    assert a.close_code_value == 1009, (a.close_code_value, a.backlog)
    assert not any(f.get("re") == "frag5" for f in a.backlog), a.backlog


@pytest.mark.chatd_args("--limit", "fragments=4")
def test_four_fragments_within_limit_are_accepted(server):
    a = server.connect("alice")
    a.send_fragmented(json.dumps({"type": "ping", "id": "frag4", "pad": "x" * 100}), 4)
    assert a.expect(None, re="frag4")["type"] == "pong"


def test_binary_frame_is_eproto_binary_frame(server):
    a = server.connect("alice")
    a.send_raw_frame(OP_BINARY, b'{"type":"ping","id":"bin"}')
    assert_error(a.expect("error"), "EPROTO", "binary_frame")
    _still_works(a)


@pytest.mark.chatd_args("--limit", "send_rate=1", "--limit", "send_burst=2")
def test_send_rate_limited(server):
    a = server.connect("alice")
    b = server.connect("bob")
    ids = []
    for i in range(5):
        rid = f"s{i}"
        a.send_json({"type": "send", "id": rid, "to": "bob", "cmid": f"rl-{i}", "text": f"{i}"})
        ids.append(rid)
    answers = [a.expect(None, re=rid) for rid in ids]
    assert answers[0]["type"] == "ack" and answers[1]["type"] == "ack", answers
    limited = [r for r in answers if r["type"] == "error"]
    assert limited, f"no send was rate limited: {answers}"
    for e in limited:
        assert_error(e, "EAGAIN", "rate_limited")
        assert isinstance(e.get("retry_after_ms"), int) and e["retry_after_ms"] > 0, e
    acked = [r for r in answers if r["type"] == "ack"]
    assert [r["seq"] for r in acked] == list(range(1, len(acked) + 1))
    for r in acked:
        b.expect("msg", seq=r["seq"])
    b.expect_none("msg", within=0.4)
    stored = history_all(b, acked[0]["conv"])
    assert [m["cmid"] for m in stored] == [r["cmid"] for r in acked]


@pytest.mark.chatd_args("--limit", "send_rate=1", "--limit", "send_burst=1")
def test_send_allowed_again_after_retry_after(server):
    a = server.connect("alice")
    send(a, "first", to="bob")
    e = a.call({"type": "send", "to": "bob", "cmid": cmid(), "text": "second"})
    assert_error(e, "EAGAIN", "rate_limited")
    time.sleep(e["retry_after_ms"] / 1000.0 + 0.1)
    send(a, "third", to="bob")


def test_error_flood_closes_1008(server):
    a = server.connect("alice")
    for i in range(60):
        try:
            a.send_json({"type": "nonsense", "id": i})
        except OSError:
            break
    assert a.close_code(timeout=5) == 1008


@pytest.mark.chatd_args("--limit", "typing_rate=1")
def test_rate_limited_frames_do_not_count_as_abuse(server):
    # Back-pressure is the server's answer to a well-formed frame, not a sign of abuse: far more
    # refusals than the 50-errors limit leave the connection open.
    a = server.connect("alice")
    conv = send(a, "x", to="bob")["conv"]
    n = 120
    for i in range(n):
        a.send_json({"type": "typing", "id": f"t{i}", "conv": conv, "state": "start"})
    answers = [a.expect(None, re=f"t{i}") for i in range(1, n)]  # t0 is let through, unanswered
    for e in answers:
        assert_error(e, "EAGAIN", "rate_limited")
    _still_works(a)
    send(a, "still here", to="bob")


def test_unknown_fields_are_ignored(server):
    a = server.connect("alice")
    r = a.call({"type": "ping", "future_field": {"x": [1, 2]}, "other": None})
    assert r["type"] == "pong", r


def test_request_id_over_64_chars_has_no_re(server):
    a = server.connect("alice")
    a.send_json({"type": "teleport", "id": "i" * 65})
    e = a.expect("error")
    assert "re" not in e, f"an unusable id must not be echoed: {e!r}"


def test_space_is_not_allowed_in_ids_and_cmids(server):
    # "printable ASCII" in ids means 0x21-0x7E: no space
    a = server.connect("alice")
    a.send_json({"type": "ping", "id": "a b"})
    e = a.expect("error")
    assert_error(e, "EINVAL", "bad_field")
    assert "re" not in e, e
    for rid in ("!", "~", "!" + "~" * 63):
        assert a.call({"type": "ping", "id": rid})["type"] == "pong"
    assert_error(a.call({"type": "send", "to": "bob", "cmid": "a b", "text": "x"}),
                 "EINVAL", "bad_field")
    assert send(a, "x", to="bob", cm="!~")["cmid"] == "!~"


def test_negative_or_nonprintable_id_is_not_echoed(server):
    a = server.connect("alice")
    for bad in (-1, "tab\there", "", 1.5, True):
        a.send_json({"type": "teleport", "id": bad})
        e = a.expect("error")
        assert "re" not in e, f"unusable id {bad!r} echoed: {e!r}"
    _still_works(a)


# Integers cJSON's %.15g printing does not keep (and its relative epsilon lets pass), and the
# edges: the largest id the protocol takes is 2^53 - 1.
_BIG_IDS = [4503599627370497, 4500000000000001, 1234567890123456, 9007199254740990,
            9007199254740991, 999999999999999, 0]


def _answer_to(c, rid):
    """The next frame carrying an re (frames pushed on their own have none), re unchanged."""
    for _ in range(20):
        f = c.recv_json()
        if "re" in f:
            return f
    raise AssertionError("no answer")


def _assert_re(frame, rid):
    assert type(frame["re"]) is int and frame["re"] == rid, \
        f"id {rid} came back as {frame['re']!r}: {frame!r}"


def test_integer_ids_below_2pow53_are_echoed_exactly(server):
    a = server.connect("alice")
    conv = send(a, "x", to="bob")["conv"]
    for rid in _BIG_IDS:
        a.send_json({"type": "ping", "id": rid})  # answered on the loop thread
        f = _answer_to(a, rid)
        assert f["type"] == "pong", f
        _assert_re(f, rid)
        a.send_json({"type": "teleport", "id": rid})  # an error frame
        f = _answer_to(a, rid)
        assert_error(f, "ENOTSUP", "unknown_type")
        _assert_re(f, rid)
        a.send_json({"type": "send", "id": rid, "to": "bob", "cmid": cmid(), "text": "y"})
        f = _answer_to(a, rid)  # the ack, encoded directly
        assert f["type"] == "ack", f
        _assert_re(f, rid)
        a.send_json({"type": "history", "id": rid, "conv": conv, "limit": 1})
        f = _answer_to(a, rid)  # a reply built by the writer
        assert f["type"] == "history", f
        _assert_re(f, rid)
        a.send_json({"type": "history", "id": rid, "conv": 999999})
        f = _answer_to(a, rid)  # a failed request
        assert_error(f, "ENOTFOUND", "not_found")
        _assert_re(f, rid)
    a.send_json({"type": "logout", "id": _BIG_IDS[0]})
    f = _answer_to(a, _BIG_IDS[0])
    assert f["type"] == "ok", f
    _assert_re(f, _BIG_IDS[0])


@pytest.mark.seconds(120)
@pytest.mark.chatd_args("--limit", "send_rate=100000", "--limit", "send_burst=100000")
def test_slow_reader_outbound_queue_overflow_closes_1013(server):
    # bob reads nothing while ~16 MB is sent to him: more than the kernel buffers on loopback
    # plus the 1 MiB outbound queue
    a = server.connect("alice")
    b = server.connect("bob")
    text = "z" * 16000
    ids = []
    for i in range(1000):
        rid = f"q{i}"
        a.send_json({"type": "send", "id": rid, "to": "bob", "cmid": f"q-{i}", "text": text})
        ids.append(rid)
        if i % 50 == 49:
            for x in ids:
                assert a.expect(None, timeout=30, re=x)["type"] == "ack"
            ids = []
    for x in ids:
        assert a.expect(None, timeout=30, re=x)["type"] == "ack"
    code = b.close_code(timeout=60)
    assert code == 1013, f"slow reader closed with {code!r} after {len(b.backlog)} frames"
    assert a.call({"type": "ping"})["type"] == "pong"


@pytest.mark.seconds(120)
@pytest.mark.chatd_args("--limit", "send_rate=100000", "--limit", "send_burst=100000",
                        "--limit", "out_queue_frames=8")
def test_closed_stalled_reader_is_dropped_whatever_it_sends(server):
    # bob stops reading and his queue overflows: the server decides to close him (1013), but
    # the close frame waits behind his full socket buffer. He keeps sending frames, which must
    # not keep the connection alive: it is gone within seconds of the decision.
    a = server.connect("alice")
    b = server.connect("bob")
    b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    text = "z" * 16000
    for i in range(400):
        a.send_json({"type": "send", "id": f"q{i}", "to": "bob", "cmid": f"q-{i}", "text": text})
        if i % 50 == 49:
            for j in range(i - 49, i + 1):
                assert a.expect(None, timeout=30, re=f"q{j}")["type"] == "ack"
    start = time.monotonic()
    dropped = None
    while time.monotonic() - start < 20:
        try:
            b.send_raw_frame(OP_TEXT, b'{"type":"ping"}')
        except OSError as e:  # the server reset the connection
            dropped = e
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - start
    assert dropped is not None, "the stalled reader was still connected 20 s after its close"
    assert elapsed < 10, f"dropped only after {elapsed:.1f} s"
    _still_works(a)


@pytest.mark.parametrize("path", ["/chat", "/media/x", "//", "/./"])
def test_upgrade_elsewhere_than_root_is_refused(server, path):
    from wsclient import HandshakeError
    with pytest.raises(HandshakeError, match="404"):
        server.ws(path=path)
    _still_works(server.connect("alice"))


def test_upgrade_with_a_body_is_refused(server):
    from wsclient import HandshakeError
    with pytest.raises(HandshakeError, match="400"):
        server.ws(extra_headers={"Content-Length": "10"})
    with pytest.raises(HandshakeError, match="400"):
        server.ws(extra_headers={"Transfer-Encoding": "chunked"})
    _still_works(server.connect("alice"))
