"""A connection flood past the process's open-file limit is refused cleanly.

chatd runs with RLIMIT_NOFILE = 128 (soft and hard, so it cannot raise it) and the connection
limit far above that; a flood of raw TCP connections must not exhaust the descriptors (accept()
failing with EMFILE would leave the backlog readable and spin the loop), connected users keep
chatting during the flood, and every descriptor comes back once the flood ends.
"""

import os
import resource
import socket
import time

from helpers import cmid

NOFILE = 128


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_flood_past_the_fd_limit_is_refused_and_recovers(make_server):
    srv = make_server("--limit", "connections=100000", start=False)
    srv.preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    srv.start()
    pid = srv.proc.pid
    alice = srv.connect("alice")
    bob = srv.connect("bob")
    baseline = fd_count(pid)

    flood = []
    for _ in range(2 * NOFILE):  # bounded: twice the limit
        s = socket.socket()
        s.settimeout(2)
        s.connect(("127.0.0.1", srv.port))  # the kernel completes it; chatd accepts or refuses
        flood.append(s)
    try:
        time.sleep(0.5)
        held = fd_count(pid)
        assert held < NOFILE, f"chatd holds {held} descriptors of {NOFILE}"
        # refused sockets are closed by chatd, not left to rot in the backlog
        refused = 0
        for s in flood:
            s.settimeout(0.01)
            try:
                if s.recv(1) == b"":
                    refused += 1
            except ConnectionResetError:
                refused += 1
            except socket.timeout:
                pass
        assert refused >= NOFILE // 2, f"only {refused} of {len(flood)} flood sockets were refused"

        # no busy loop on the listening socket while the flood is held (a spin burns a core)
        t0 = cpu_ticks(pid)
        time.sleep(1.0)
        burned = (cpu_ticks(pid) - t0) / os.sysconf("SC_CLK_TCK")
        assert burned < 0.5, f"chatd used {burned:.2f} s of CPU in 1 s while flooded"

        # connected users are served during the flood
        m = cmid()
        ack = alice.call({"type": "send", "to": "bob", "cmid": m, "text": "during the flood"})
        assert ack["type"] == "ack", ack
        got = bob.expect("msg", cmid=m)
        assert got["text"] == "during the flood"
    finally:
        for s in flood:
            s.close()

    # every descriptor comes back, and new users get in
    deadline = time.monotonic() + 10
    while fd_count(pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert fd_count(pid) <= baseline, f"{fd_count(pid)} descriptors after the flood, {baseline} before"
    carol = srv.connect("carol")
    ack = carol.call({"type": "send", "to": "alice", "cmid": cmid(), "text": "after"})
    assert ack["type"] == "ack", ack
    assert alice.expect("msg", text="after")["from"] == "carol"
