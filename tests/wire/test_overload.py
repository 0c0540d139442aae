"""Writer backpressure: the queue of requests waiting for the store is bounded (writer_queue);
a send beyond it is refused with a retryable EAGAIN/busy error and nothing is stored."""
import json

import pytest
from helpers import assert_error, history_all
from wsclient import OP_TEXT, encode_frame


@pytest.mark.chatd_args("--limit", "writer_queue=1")
def test_send_over_writer_queue_is_refused_busy(server):
    a = server.connect("alice")
    b = server.connect("bob")
    n = 20
    # One write: the server reads every frame in one loop iteration, before the writer can
    # finish the first, so all but the first find the queue full.
    burst = b"".join(
        encode_frame(OP_TEXT, json.dumps({"type": "send", "id": f"s{i}", "to": "bob",
                                          "cmid": f"ov-{i}", "text": str(i)}).encode())
        for i in range(n))
    a.send_raw_bytes(burst)
    answers = [a.expect(None, re=f"s{i}") for i in range(n)]
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
