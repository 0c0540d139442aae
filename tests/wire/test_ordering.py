"""One order per conversation under concurrent senders (doc/protocol.md: msg)."""

import threading

import pytest

from helpers import create_group, event_is

FAST = ("--limit", "send_rate=100000", "--limit", "send_burst=100000")
N_PER_SENDER = 50
SENDERS = ("alice", "bob", "carol", "dave")


@pytest.mark.single_node("senders on several nodes: live frames of one conversation arrive in "
                         "commit order from each node, not across nodes (clients order by "
                         "seq); tests/cluster checks seqs and delivery of writers on two nodes")
@pytest.mark.seconds(120)
@pytest.mark.chatd_args(*FAST)
def test_concurrent_senders_one_gapless_order_seen_by_all(server):
    conns = {u: server.connect(u, "d1") for u in SENDERS}
    observer = server.connect("alice", "watch")
    conv = create_group(conns["alice"], ["bob", "carol", "dave"])
    cid = conv["conv"]
    assert conv["head"] == 1, conv
    for c in [conns[u] for u in SENDERS[1:]] + [observer]:
        c.expect("msg", conv=cid, seq=1, kind="event", event=event_is("created"))

    acks = {u: [] for u in SENDERS}
    errors = []
    barrier = threading.Barrier(len(SENDERS))

    def run(user):
        try:
            c = conns[user]
            barrier.wait(10)
            ids = []
            for i in range(N_PER_SENDER):
                rid = f"{user}-{i}"
                ids.append(rid)
                c.send_json({"type": "send", "id": rid, "conv": cid, "cmid": f"{user}-{i}",
                             "text": f"{user} {i}"})
            for rid in ids:
                r = c.expect(None, timeout=30, re=rid)
                assert r["type"] == "ack", r
                acks[user].append(r)
        except BaseException as e:  # reported by the main thread
            errors.append((user, e))

    threads = [threading.Thread(target=run, args=(u,), daemon=True) for u in SENDERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "sender threads hung"
    assert not errors, errors

    total = len(SENDERS) * N_PER_SENDER
    expected_seqs = list(range(2, total + 2))
    # the reference order: what the observer (a device of alice that sent nothing) saw
    seen = {}
    for name, c in [(u, conns[u]) for u in SENDERS] + [("observer", observer)]:
        own = 0 if name == "observer" else N_PER_SENDER
        msgs = [c.expect("msg", timeout=15, conv=cid) for _ in range(total - own)]
        c.expect_none("msg", within=0.3, conv=cid)
        seqs = [m["seq"] for m in msgs]
        assert all(x < y for x, y in zip(seqs, seqs[1:])), f"{name} saw out of order: {seqs}"
        ack_seqs = [a["seq"] for a in acks.get(name, [])]
        assert sorted(seqs + ack_seqs) == expected_seqs, f"{name}: gaps or duplicates"
        seen[name] = {m["seq"]: (m["from"], m["cmid"], m["text"]) for m in msgs}
        if name != "observer":
            assert all(m["from"] != name for m in msgs), f"{name}'s device got its own msg"

    ref = seen["observer"]
    assert sorted(ref) == expected_seqs
    for name, view in seen.items():
        for seq, what in view.items():
            assert ref[seq] == what, f"{name} saw seq {seq} as {what}, observer as {ref[seq]}"
    for user in SENDERS:
        seqs = [a["seq"] for a in acks[user]]
        assert [a["cmid"] for a in acks[user]] == [f"{user}-{i}" for i in range(N_PER_SENDER)]
        assert all(x < y for x, y in zip(seqs, seqs[1:])), f"{user}'s sends reordered: {seqs}"
        for a in acks[user]:
            assert ref[a["seq"]] == (user, a["cmid"], f"{user} {a['cmid'].split('-')[1]}")
