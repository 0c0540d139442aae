"""Writer backpressure: the queue of requests waiting for the store is bounded (writer_queue);
a send beyond it is refused with a retryable EAGAIN/busy error and nothing is stored."""
import json

import pytest
from helpers import assert_error, history_all
from wsclient import OP_TEXT, encode_frame


def _burst(a, n, prefix, timeout=5.0):
    """n sends to bob in one write (ids s0.., cmids prefix-0..); returns their answers in order.
    The server reads every frame in one loop iteration, before the writer can finish the first,
    so at writer_queue=1 all but the first find the queue full."""
    burst = b"".join(
        encode_frame(OP_TEXT, json.dumps({"type": "send", "id": f"s{i}", "to": "bob",
                                          "cmid": f"{prefix}-{i}", "text": str(i)}).encode())
        for i in range(n))
    a.send_raw_bytes(burst)
    return [a.expect(None, re=f"s{i}", timeout=timeout) for i in range(n)]


@pytest.mark.chatd_args("--limit", "writer_queue=1")
def test_send_over_writer_queue_is_refused_busy(server):
    a = server.connect("alice")
    b = server.connect("bob")
    answers = _burst(a, 20, "ov")
    assert answers[0]["type"] == "ack", answers[0]
    busy = [r for r in answers if r["type"] == "error"]
    assert busy, f"no send was refused: {answers}"
    for e in busy:
        assert_error(e, "EAGAIN", "busy")
        assert isinstance(e.get("retry_after_ms"), int) and e["retry_after_ms"] > 0, e
    acked = [r for r in answers if r["type"] == "ack"]
    assert [r["seq"] for r in acked] == list(range(1, len(acked) + 1))
    stored = history_all(b, acked[0]["conv"])
    assert [m["cmid"] for m in stored] == [r["cmid"] for r in acked]
    # A refused send is safe to retry once the queue drained.
    e = busy[0]
    i = int(e["re"][1:])
    r = a.call({"type": "send", "to": "bob", "cmid": f"ov-{i}", "text": str(i)})
    assert r["type"] == "ack" and r["dup"] is False, r


@pytest.mark.chatd_args("--limit", "writer_queue=1", "--limit", "send_rate=100000",
                        "--limit", "send_burst=100000", "--limit", "user_send_rate=100000",
                        "--limit", "user_send_burst=100000")
def test_busy_flood_keeps_the_connection(server):
    # Far more busy refusals than the 50-errors abuse limit: busy is the server's own
    # back-pressure, so the connection stays, and every send is answered, the acks of the
    # committed ones included.
    a = server.connect("alice")
    b = server.connect("bob")
    n = 300
    answers = _burst(a, n, "bf", timeout=10)
    busy = [r for r in answers if r["type"] == "error"]
    for e in busy:
        assert_error(e, "EAGAIN", "busy")
    acked = [r for r in answers if r["type"] == "ack"]
    assert len(busy) + len(acked) == n
    stored = history_all(b, acked[0]["conv"])
    assert [m["cmid"] for m in stored] == [r["cmid"] for r in acked]
    assert a.call({"type": "ping"})["type"] == "pong"
