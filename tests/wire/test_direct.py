"""1:1 messages, acks, fan-out to devices, dedupe (doc/protocol.md: Messages)."""

import json

from helpers import assert_error, assert_ts, cmid, history_all, is_int, send


def test_send_to_user_acks_seq1_and_reaches_every_other_device(server):
    a1 = server.connect("alice", "a1")
    a2 = server.connect("alice", "a2")
    b1 = server.connect("bob", "b1")
    b2 = server.connect("bob", "b2")
    cm = cmid()
    r = a1.call({"type": "send", "id": "2", "to": "bob", "cmid": cm, "text": "hi Bob"})
    assert r["type"] == "ack", r
    assert r["re"] == "2" and r["cmid"] == cm and r["seq"] == 1 and r["dup"] is False, r
    assert is_int(r["conv"]), r
    assert_ts(r["ts"])
    for dev in (b1, b2, a2):
        m = dev.expect("msg", conv=r["conv"])
        assert m == {"type": "msg", "conv": r["conv"], "seq": 1, "ts": r["ts"], "from": "alice",
                     "device": "a1", "cmid": cm, "kind": "text", "text": "hi Bob"}, m
        dev.expect_none("msg", within=0.3)
    a1.expect_none("msg", within=0.5)


def test_reply_via_conv_gets_seq2(server):
    a = server.connect("alice")
    b = server.connect("bob")
    r1 = send(a, "hi", to="bob")
    b.expect("msg", conv=r1["conv"], seq=1)
    r2 = b.call({"type": "send", "conv": r1["conv"], "cmid": cmid(), "text": "hello"})
    assert r2["type"] == "ack" and r2["conv"] == r1["conv"] and r2["seq"] == 2, r2
    m = a.expect("msg", conv=r1["conv"])
    assert m["seq"] == 2 and m["from"] == "bob" and m["text"] == "hello", m


def test_same_pair_always_same_conversation(server):
    a = server.connect("alice")
    b = server.connect("bob")
    c = server.connect("carol")
    r1 = send(a, "1", to="bob")
    r2 = send(b, "2", to="alice")
    r3 = send(a, "3", to="bob")
    assert r1["conv"] == r2["conv"] == r3["conv"]
    assert (r1["seq"], r2["seq"], r3["seq"]) == (1, 2, 3)
    r4 = send(a, "4", to="carol")
    assert r4["conv"] != r1["conv"] and r4["seq"] == 1
    c.expect("msg", conv=r4["conv"], seq=1)
    b.expect_none("msg", conv=r4["conv"], within=0.3)


def test_send_to_self_is_einval(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "alice", "cmid": cmid(), "text": "me"})
    assert_error(r, "EINVAL", "bad_field", re=r.get("re"))


def test_send_with_both_to_and_conv_is_einval(server):
    a = server.connect("alice")
    r1 = send(a, "x", to="bob")
    r = a.call({"type": "send", "to": "bob", "conv": r1["conv"], "cmid": cmid(), "text": "y"})
    assert_error(r, "EINVAL", "bad_field")


def test_send_without_to_or_conv_is_missing_field(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "cmid": cmid(), "text": "y"})
    assert_error(r, "EINVAL", "missing_field")


def test_send_without_cmid_is_missing_field(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "text": "y"})
    assert_error(r, "EINVAL", "missing_field")


def test_send_cmid_over_64_chars_is_bad_field(server):
    a = server.connect("alice")
    ok = a.call({"type": "send", "to": "bob", "cmid": "c" * 64, "text": "y"})
    assert ok["type"] == "ack", ok
    r = a.call({"type": "send", "to": "bob", "cmid": "c" * 65, "text": "y"})
    assert_error(r, "EINVAL", "bad_field")


def test_send_empty_text_is_bad_field(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "text": ""})
    assert_error(r, "EINVAL", "bad_field")


def test_send_text_not_a_string_is_bad_field(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "text": 5})
    assert_error(r, "EINVAL", "bad_field")


def test_send_to_unknown_conv_is_not_found(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "conv": 987654, "cmid": cmid(), "text": "y"})
    assert_error(r, "ENOTFOUND", "not_found")


def test_send_to_conv_of_others_is_not_member(server):
    a = server.connect("alice")
    m = server.connect("mallory")
    r1 = send(a, "secret", to="bob")
    r = m.call({"type": "send", "conv": r1["conv"], "cmid": cmid(), "text": "y"})
    assert_error(r, "EPERM", "not_member")
    a.expect_none("msg", within=0.3)


def test_media_message_reaches_peer_with_media_object(server):
    a = server.connect("alice")
    b = server.connect("bob")
    media = {"id": "9f2c01", "mime": "image/jpeg", "size": 48213, "name": "cat.jpg",
             "width": 800, "height": 600}
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "media", "media": media})
    assert r["type"] == "ack" and r["seq"] == 1, r
    m = b.expect("msg", conv=r["conv"], seq=1)
    assert m["kind"] == "media" and m["media"] == media, m
    assert "text" not in m or m["text"] in ("", None), m


def test_media_message_without_media_object_is_missing_field(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "media"})
    assert_error(r, "EINVAL", "missing_field")


def test_media_id_over_128_chars_is_bad_field(server):
    a = server.connect("alice")
    media = {"id": "x" * 129, "mime": "image/png", "size": 1, "name": "a.png"}
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "media", "media": media})
    assert_error(r, "EINVAL", "bad_field")


def test_unknown_kind_is_bad_field(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "sticker", "text": "x"})
    assert_error(r, "EINVAL", "bad_field")


def test_client_cannot_send_event_kind(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "event",
                "event": {"type": "renamed", "title": "x"}})
    assert r["type"] == "error", f"a client must not forge event messages: {r!r}"


def test_unicode_text_roundtrips(server):
    a = server.connect("alice")
    b = server.connect("bob")
    text = "héllo \u2713 \U0001F600 \"quoted\" \\ new\nline"
    r = send(a, text, to="bob")
    m = b.expect("msg", conv=r["conv"])
    assert m["text"] == text


# ---- dedupe ----------------------------------------------------------------------------------

def test_resend_same_cmid_acks_original_seq_ts_with_dup(server):
    a = server.connect("alice")
    b = server.connect("bob")
    cm = cmid()
    r1 = a.call({"type": "send", "to": "bob", "cmid": cm, "text": "once"})
    assert r1["type"] == "ack" and r1["dup"] is False, r1
    b.expect("msg", conv=r1["conv"], seq=1)
    send(a, "other", conv=r1["conv"])
    r2 = a.call({"type": "send", "to": "bob", "cmid": cm, "text": "once"})
    assert r2["type"] == "ack", r2
    assert (r2["seq"], r2["ts"], r2["conv"], r2["cmid"]) == (r1["seq"], r1["ts"], r1["conv"], cm)
    assert r2["dup"] is True, r2
    r3 = a.call({"type": "send", "conv": r1["conv"], "cmid": cm, "text": "once"})
    assert r3["type"] == "ack" and r3["seq"] == 1 and r3["dup"] is True, r3
    b.expect("msg", conv=r1["conv"], seq=2)
    b.expect_none("msg", within=0.5)


def test_resent_message_is_in_history_once(server):
    a = server.connect("alice")
    cm = cmid()
    r1 = send(a, "once", to="bob", cm=cm)
    for _ in range(3):
        send(a, "once", to="bob", cm=cm)
    msgs = history_all(a, r1["conv"])
    assert [m["cmid"] for m in msgs] == [cm], msgs


def test_same_cmid_from_another_device_is_a_new_message(server):
    a1 = server.connect("alice", "a1")
    a2 = server.connect("alice", "a2")
    cm = cmid()
    r1 = send(a1, "from a1", to="bob", cm=cm)
    r2 = send(a2, "from a2", to="bob", cm=cm)
    assert r2["conv"] == r1["conv"] and r2["seq"] == 2 and r2["dup"] is False, r2
    msgs = history_all(a1, r1["conv"])
    assert [(m["seq"], m["device"], m["text"]) for m in msgs] == [(1, "a1", "from a1"),
                                                                   (2, "a2", "from a2")]


def test_same_cmid_in_another_conversation_is_a_new_message(server):
    a = server.connect("alice")
    cm = cmid()
    r1 = send(a, "to bob", to="bob", cm=cm)
    r2 = send(a, "to carol", to="carol", cm=cm)
    assert r2["conv"] != r1["conv"] and r2["seq"] == 1 and r2["dup"] is False


def test_media_negative_size_is_bad_field(server):
    a = server.connect("alice")
    media = {"id": "m1", "mime": "image/png", "size": -1, "name": "a.png"}
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "media", "media": media})
    assert_error(r, "EINVAL", "bad_field")


def test_msg_frames_reach_all_devices_of_offline_then_online_user_via_history(server):
    a = server.connect("alice")
    r = send(a, "while you slept", to="bob")
    b1 = server.connect("bob", "b1")
    b1.expect_none("msg", within=0.3)
    h = b1.call({"type": "history", "conv": r["conv"], "after": 0})
    assert [m["text"] for m in h["messages"]] == ["while you slept"], h


def test_back_to_back_duplicate_sends_store_once(server):
    a = server.connect("alice")
    b = server.connect("bob")
    send(a, "open", to="bob")
    b.expect("msg", seq=1)
    cm = cmid()
    for rid in ("x1", "x2", "x3"):
        a.send_json({"type": "send", "id": rid, "to": "bob", "cmid": cm, "text": "racy"})
    acks = [a.expect(None, re=rid) for rid in ("x1", "x2", "x3")]
    assert all(r["type"] == "ack" for r in acks), acks
    assert {r["seq"] for r in acks} == {2} and len({r["ts"] for r in acks}) == 1, acks
    assert sorted(r["dup"] for r in acks) == [False, True, True], acks
    b.expect("msg", seq=2)
    b.expect_none("msg", within=0.5)
    assert [m["cmid"] for m in history_all(b, acks[0]["conv"])].count(cm) == 1


def test_every_form_of_a_send_frame_delivers_the_same_message(server):
    """The server reads plain text sends in one pass and every other frame through cJSON
    (core/flat.h); whichever way a frame goes, the peer gets what was sent and the ack echoes
    the id as sent."""
    a = server.connect("alice", "a1")
    b = server.connect("bob", "b1")
    conv = send(a, "first", to="bob")["conv"]
    b.expect("msg", conv=conv, seq=1)
    forms = [
        # (frame text, the id it carries, the text bob must get)
        ('{"type":"send","id":"f1","to":"bob","cmid":"%s","text":"plain"}', "f1", "plain"),
        (' {\n "text" : "a \\"q\\" \\\\ \\/ \\n\\t.", "cmid":"%s" , "conv":' + str(conv) +
         ', "type":"send", "id":42, "kind":"text" } ', 42, 'a "q" \\ / \n\t.'),
        ('{"type":"send","id":"f3","to":"bob","cmid":"%s","text":"\\u00e9t\\u00e9 \\ud83d\\ude00"}',
         "f3", "\u00e9t\u00e9 \U0001f600"),
        ('{"type":"send","id":1234567890123456,"to":"bob","cmid":"%s","text":"long id"}',
         1234567890123456, "long id"),
        ('{"type":"send","id":"f5","conv":' + str(conv) + '.0,"cmid":"%s","text":"conv 1.0"}',
         "f5", "conv 1.0"),
        ('{"type":"send","id":"f6","to":"bob","cmid":"%s","text":"caf\u00e9 \U0001f600",'
         '"extra":{"ignored":[1,2]}}', "f6", "caf\u00e9 \U0001f600"),
    ]
    seq = 1
    for text, rid, want in forms:
        cm = cmid()
        a.send_text(text % cm)
        r = a.expect(None, re=rid)
        seq += 1
        assert r["type"] == "ack" and r["seq"] == seq and r["dup"] is False, (text, r)
        assert type(r["re"]) is type(rid), r
        m = b.expect("msg", conv=conv, seq=seq)
        assert m["text"] == want and m["cmid"] == cm and m["from"] == "alice", (text, m)
        # The same cmid again, in the other form: one message, acked as a resend.
        again = {"type": "send", "id": "again", "conv": conv, "cmid": cm, "text": want}
        a.send_text(json.dumps(again, ensure_ascii=bool(seq % 2)))
        d = a.expect(None, re="again")
        assert d["type"] == "ack" and d["seq"] == seq and d["dup"] is True, d
    b.expect_none("msg", within=0.3)
    assert [m["text"] for m in history_all(b, conv)] == ["first"] + [w for _, _, w in forms]
