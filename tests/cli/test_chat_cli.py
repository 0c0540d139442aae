"""A scripted chat-cli session against a real chatd: what a user (or a script) sees."""

import inspect
import os
import queue
import subprocess
import threading
import time

import pytest

from conftest import PASSWORD, child_env, exe


def cli(srv, *args, user=None, token=None, timeout=10, extra=()):
    cmd = [exe("CHAT_CLI"), "--server", srv.url, "--timeout", str(timeout)]
    if token is not None:
        cmd += ["--token", token]
    elif user is not None:
        cmd += ["--user", user, "--password", PASSWORD, "--device", "cli"]
    cmd += list(extra) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 20,
                          stdin=subprocess.DEVNULL, env=child_env())


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r.stdout


def rows(out):
    return [line.split("\t") for line in out.splitlines() if line]


def conv_with(out, name):
    for row in rows(out):
        if row[1] == name:
            return int(row[0]), int(row[2])
    raise AssertionError(f"no conversation {name!r} in:\n{out}")


def test_cli_send_history_convs_and_marks(chatd):
    r = cli(chatd, "send", "--to", "bob", "hello", "bob", user="alice")
    assert ok(r).strip() == "1", "send prints the seq of the first message"

    conv, unread = conv_with(ok(cli(chatd, "convs", user="bob")), "alice")
    assert unread == 1

    hist = rows(ok(cli(chatd, "history", "--conv", str(conv), user="bob")))
    assert hist == [["1", "alice", "-", "hello bob"]], "not mine: no mark"

    # bob's client sent a delivered receipt while syncing: alice sees ✓✓
    hist = rows(ok(cli(chatd, "history", "--conv", str(conv), user="alice")))
    assert hist == [["1", "alice", "\u2713\u2713", "hello bob"]]

    # bob reads it (listen --read marks what arrives read): alice sees "read", bob unread 0
    ok(cli(chatd, "listen", "--seconds", "2", "--read", user="bob"))
    hist = rows(ok(cli(chatd, "history", "--conv", str(conv), user="alice")))
    assert hist == [["1", "alice", "read", "hello bob"]]
    assert conv_with(ok(cli(chatd, "convs", user="bob")), "alice") == (conv, 0)

    # a reply by conversation id, with a token this time
    r = cli(chatd, "send", "--conv", str(conv), "hi", "alice", token=chatd.token("bob"))
    assert ok(r).strip() == "2"
    hist = rows(ok(cli(chatd, "history", "--conv", str(conv), "--limit", "1", user="alice")))
    assert hist == [["2", "bob", "-", "hi alice"]]


def test_cli_group_create_and_send(chatd):
    out = ok(cli(chatd, "group-create", "Team", "bob", "carol", user="alice"))
    gid = int(out.strip())
    seq = int(ok(cli(chatd, "send", "--conv", str(gid), "hi team", user="alice")).strip())
    out = ok(cli(chatd, "convs", user="carol"))
    conv, unread = conv_with(out, "#Team")
    assert conv == gid and unread >= 1
    hist = rows(ok(cli(chatd, "history", "--conv", str(gid), user="carol")))
    assert [str(seq), "alice", "-", "hi team"] in hist


def test_cli_group_create_with_id_is_safe_to_repeat(chatd):
    first = int(ok(cli(chatd, "group-create", "--id", "g-1", "Once", "bob", user="alice")))
    # a script that lost the answer runs the same command again: the same group, not a second
    again = int(ok(cli(chatd, "group-create", "--id", "g-1", "Once", "bob", user="alice")))
    assert again == first
    other = int(ok(cli(chatd, "group-create", "--id", "g-2", "Once", "bob", user="alice")))
    assert other != first
    titles = [row[1] for row in rows(ok(cli(chatd, "convs", user="bob")))]
    assert titles.count("#Once") == 2
    r = cli(chatd, "group-create", "--id", "x" * 65, "Bad", "bob", user="alice")
    assert r.returncode == 1 and "group-create" in r.stderr and "EINVAL" in r.stderr
    r = cli(chatd, "send", "--id", "g-3", "--to", "bob", "hi", user="alice")
    assert r.returncode == 2 and "--id applies to group-create only" in r.stderr


def test_cli_cache_keeps_state(chatd, tmp_path):
    cache = str(tmp_path / "alice.db")
    ok(cli(chatd, "send", "--to", "bob", "cached", user="alice", extra=["--cache", cache]))
    assert os.path.exists(cache)
    conv, _ = conv_with(ok(cli(chatd, "convs", user="alice", extra=["--cache", cache])), "bob")
    hist = rows(ok(cli(chatd, "history", "--conv", str(conv), user="alice",
                       extra=["--cache", cache])))
    assert hist[-1][3] == "cached"


def test_cli_errors_have_exit_codes_and_messages(chatd):
    r = cli(chatd, "convs", token="not-a-token")
    assert r.returncode == 3 and "authentication failed" in r.stderr and r.stdout == ""

    r = subprocess.run([exe("CHAT_CLI"), "--server", chatd.url, "--user", "alice",
                        "--password", "wrong", "send", "--to", "bob", "x"],
                       capture_output=True, text=True, timeout=30, env=child_env())
    assert r.returncode == 3 and "authentication failed" in r.stderr

    r = cli(chatd, "send", "--conv", "4242", "hi", user="alice")
    assert r.returncode == 1 and "refused" in r.stderr, r.stderr

    r = subprocess.run([exe("CHAT_CLI"), "--server", "ws://127.0.0.1:1/", "--timeout", "2",
                        "--token", "t", "convs"], capture_output=True, text=True, timeout=30,
                       env=child_env())
    assert r.returncode == 4 and "timed out" in r.stderr and "not connected" in r.stderr

    for args in (["--bogus", "convs"], ["--token", "t", "frobnicate"],
                 ["--token", "t", "send", "--to", "bob"],
                 ["--token", "t", "send", "--to", "bob", "--conv", "1", "x"],
                 ["--token", "t", "history"], ["--token", "t", "--limit", "x", "history"],
                 ["convs"], ["--user", "alice", "convs"], ["--token"]):
        r = subprocess.run([exe("CHAT_CLI"), "--server", chatd.url] + args, capture_output=True,
                           text=True, timeout=30, env={k: v for k, v in child_env().items()
                                                       if k != "CHAT_TOKEN"})
        assert r.returncode == 2, (args, r.returncode, r.stderr)
        assert "usage:" in r.stderr and r.stdout == "", args

    r = subprocess.run([exe("CHAT_CLI"), "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "usage:" in r.stdout


def wanted(pred):
    """What a predicate waits for, as written in the test (for failure messages)."""
    try:
        src = inspect.getsource(pred).strip()
    except (OSError, TypeError):
        return repr(pred)
    i = src.find("lambda")
    return src[i:].rstrip(")") if i >= 0 else src


class Lines:
    """Reads a child's stdout lines on a thread; expect() waits (bounded) for a match."""

    def __init__(self, proc):
        self.q = queue.Queue()
        self.seen = []
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, f):
        for line in f:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def expect(self, pred, timeout=10):
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {wanted(pred)} within {timeout}s "
                                     "(chat-cli still running, not printing it); saw:\n" +
                                     "\n".join(self.seen[-60:]))
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"chat-cli's output ended before a line matching "
                                     f"{wanted(pred)}; saw:\n" + "\n".join(self.seen[-60:]))
            self.seen.append(line)
            if pred(line):
                return line


def popen_cli(srv, user, *args):
    return subprocess.Popen([exe("CHAT_CLI"), "--server", srv.url, "--user", user, "--password",
                             PASSWORD, "--device", "cli"] + list(args),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=child_env())


def finish(proc, timeout=15):
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise
    return proc.returncode


def test_cli_listen_and_interactive_session(chatd):
    # bob listens; alice works interactively: /to bob, a line, /typing, /convs, /quit
    bob = popen_cli(chatd, "bob", "listen", "--seconds", "20", "--read")
    bob_out = Lines(bob)
    alice = popen_cli(chatd, "alice")
    alice_out = Lines(alice)
    try:
        bob_out.expect(lambda l: l == "synced")
        alice_out.expect(lambda l: l == "synced")
        alice.stdin.write("/to bob\nhello from the terminal\n")
        alice.stdin.flush()
        alice_out.expect(lambda l: l.startswith("\u2713 sent #1 in conv "))
        bob_out.expect(lambda l: l.endswith("] alice: hello from the terminal"))
        # bob's listen --read marks it read: alice's open conversation shows it live
        alice_out.expect(lambda l: l == "read by bob up to #1")
        alice.stdin.write("/typing\n")
        alice.stdin.flush()
        bob_out.expect(lambda l: l.endswith(": alice is typing\u2026"))
        alice.stdin.write("/convs\n/quit\n")
        alice.stdin.flush()
        alice_out.expect(lambda l: l.split()[1:] == ["bob", "0", "unread"])
        assert finish(alice) == 0
    finally:
        for p in (alice, bob):
            if p.poll() is None:
                p.kill()
                p.wait(5)


# ---- media: send-file and download, with interruption and resume ------------------------------

def test_cli_send_file_and_download_resume(chatd, tmp_path):
    import hashlib
    data = os.urandom(3 * 1024 * 1024 + 17)
    src = tmp_path / "clip.mp4"
    src.write_bytes(data)
    want = hashlib.blake2b(data, digest_size=32).hexdigest()
    cache = str(tmp_path / "alice.db")
    args = ("send-file", "--to", "bob", "--mime", "video/mp4", str(src))

    # interrupted after ~1 MiB: nothing sent, the upload stays resumable
    r = cli(chatd, *args, "--stop-after", "1000000", user="alice", extra=("--cache", cache))
    assert r.returncode == 1 and "interrupted" in r.stderr, r.stderr
    assert "upload:" in r.stderr and "%" in r.stderr, "a progress display"

    r = cli(chatd, *args, user="alice", extra=("--cache", cache))
    media_id, seq = ok(r).split()
    assert media_id == want and seq == "1"
    resumed = [ln for ln in r.stderr.replace("\r", "\n").splitlines() if "resumed at byte" in ln]
    # resumed where the server stood: what it took in before the abort, never from 0
    assert resumed and 0 < int(resumed[0].split()[-1]) <= 1000000 + 65536, r.stderr

    # bob sees the media message in history
    conv, _ = conv_with(ok(cli(chatd, "convs", user="bob")), "alice")
    hist = rows(ok(cli(chatd, "history", "--conv", str(conv), user="bob")))
    # a sentence, not JSON: who, the file name, its size, and the command that fetches it
    assert len(hist) == 1 and hist[0][1] == "alice", hist
    assert hist[0][3] == ("sent clip.mp4 (video/mp4, 3.0 MiB); get it with: "
                          f"chat-cli download {want} clip.mp4"), hist

    # bob downloads, interrupted, then resumed; the result is checked
    dst = tmp_path / "got.mp4"
    r = cli(chatd, "download", media_id, str(dst), "--stop-after", "1500000", user="bob")
    assert r.returncode == 1 and not dst.exists(), r.stderr
    assert (tmp_path / "got.mp4.part").stat().st_size >= 1500000
    r = cli(chatd, "download", media_id, str(dst), user="bob")
    assert ok(r).strip() == str(dst)
    assert "resumed at byte" in r.stderr, r.stderr
    assert dst.read_bytes() == data
    assert not (tmp_path / "got.mp4.part").exists()

    # carol is in no conversation with it: refused, nothing written
    r = cli(chatd, "download", media_id, str(tmp_path / "carol.mp4"), user="carol")
    assert r.returncode == 1 and "EPERM" in r.stderr, r.stderr
    assert not (tmp_path / "carol.mp4").exists()


def test_cli_history_during_the_outbox_flush_shows_each_message_once(chatd):
    """Messages queued offline, then /history over and over while the outbox flushes on the
    reconnect: every message is listed exactly once each time, queued (…) or acked. An
    acked message moves from the outbox to the history in one cache transaction; a display
    that reads the two at different moments must not list it twice (or not at all)."""
    alice = popen_cli(chatd, "alice")
    out = Lines(alice)
    try:
        out.expect(lambda l: l == "synced")
        alice.stdin.write("/to bob\nfirst\n")
        alice.stdin.flush()
        out.expect(lambda l: l.startswith("\u2713 sent #1 in conv "))
        chatd.stop()
        out.expect(lambda l: l.startswith("offline: "))
        texts = [f"queued {i:03}" for i in range(100)]
        alice.stdin.write("".join(t + "\n" for t in texts))
        alice.stdin.flush()
        out.expect(lambda l: l.endswith("alice: " + texts[-1]))
        chatd.restart()
        out.expect(lambda l: l == "back online", timeout=20)
        # listings while the outbox flushes, each ended by the line the session prints for
        # "/-"; until every message is acked (bounded)
        listings, current, acked = [], [], 0
        end = time.monotonic() + 20
        while acked < len(texts) and time.monotonic() < end:
            alice.stdin.write("/history 200\n/-\n")
            alice.stdin.flush()
            while True:
                line = out.expect(lambda l: True, timeout=20)
                if line.startswith("\u2713 sent #"):
                    acked += 1
                elif line.startswith("unknown command /-"):
                    listings.append(current)
                    current = []
                    break
                elif line.startswith("#"):
                    current.append(line)
        assert acked == len(texts), f"{acked} of {len(texts)} acked within 20 s"
        midway = [l for l in listings if any(x.endswith("\u2026 queued") for x in l) and
                  any(x.endswith("\u2713") for x in l[1:])]
        assert midway, "no listing came while the outbox flushed: the test tested nothing"
        for listing in listings:
            shown = [l.split(": ", 1)[1].rsplit("  ", 1)[0] for l in listing]
            doubled = sorted({t for t in shown if shown.count(t) > 1})
            assert not doubled, f"listed twice: {doubled}\n" + "\n".join(listing)
            assert sorted(shown) == sorted(["first"] + texts), "\n".join(listing)
        alice.stdin.write("/quit\n")
        alice.stdin.flush()
        assert finish(alice) == 0
        conv = conv_with(ok(cli(chatd, "convs", user="bob")), "alice")[0]
        hist = [row[3] for row in rows(ok(cli(chatd, "history", "--conv", str(conv),
                                              "--limit", "200", user="bob")))]
        assert hist == ["first"] + texts
    finally:
        if alice.poll() is None:
            alice.kill()
            alice.wait(5)


# ---- edits, deletes, reactions and search -----------------------------------------------------

def test_cli_edit_delete_react_search(chatd, tmp_path):
    s1 = int(ok(cli(chatd, "send", "--to", "bob", "lunch at noon", user="alice")).strip())
    conv, _ = conv_with(ok(cli(chatd, "convs", user="alice")), "bob")
    s2 = int(ok(cli(chatd, "send", "--conv", str(conv), "secret plans", user="alice")).strip())
    bob = popen_cli(chatd, "bob", "listen", "--seconds", "20")
    bob_out = Lines(bob)
    try:
        bob_out.expect(lambda l: l == "synced")
        e = int(ok(cli(chatd, "edit", "--conv", str(conv), str(s1), "lunch at one",
                       user="alice")).strip())
        assert e > s2, "an edit takes a seq of its own"
        bob_out.expect(lambda l: l == f"[conv {conv}] alice edited #{s1}: lunch at one")
        ok(cli(chatd, "react", "--conv", str(conv), str(s1), "\U0001f44d", user="bob"))
        bob_out.expect(lambda l: l == f"[conv {conv}] bob reacted \U0001f44d to #{s1}")
        ok(cli(chatd, "delete", "--conv", str(conv), str(s2), user="alice"))
        bob_out.expect(lambda l: l == f"[conv {conv}] alice deleted #{s2}")
    finally:
        bob.kill()
        bob.wait(5)

    # the history shows them as they are now; changes are not lines of their own
    hist = rows(ok(cli(chatd, "history", "--conv", str(conv), user="bob")))
    assert hist == [[str(s1), "alice", "-", "lunch at one (edited) [\U0001f44d 1]"],
                    [str(s2), "alice", "-", "(deleted)"]]

    # refusals: not the author, not a reaction of the server's list; usage errors
    r = cli(chatd, "edit", "--conv", str(conv), str(s1), "mine now", user="bob")
    assert r.returncode == 1 and "refused" in r.stderr and "EPERM" in r.stderr, r.stderr
    r = cli(chatd, "react", "--conv", str(conv), str(s1), "nope", user="bob")
    assert r.returncode == 1 and "EINVAL" in r.stderr, r.stderr
    for args in (["edit", "--conv", str(conv), str(s1)], ["delete", str(s1)],
                 ["react", "--conv", str(conv), "x", "y"], ["search"],
                 ["convs", "--local"], ["search", "--off", "x"]):
        r = cli(chatd, *args, user="bob")
        assert r.returncode == 2 and "usage:" in r.stderr, (args, r.stderr)

    # search, on the server and in a cache: the edited text, never the old nor the deleted
    assert rows(ok(cli(chatd, "search", "ONE", user="bob"))) == \
        [[str(conv), str(s1), "alice", "lunch at one"]]
    assert ok(cli(chatd, "search", "noon", user="bob")) == ""
    assert ok(cli(chatd, "search", "--conv", str(conv), "secret", user="alice")) == ""

    # the interactive mode: /edit, the change shown live, /search over the cache
    alice = popen_cli(chatd, "alice")
    alice_out = Lines(alice)
    try:
        alice_out.expect(lambda l: l == "synced")
        alice.stdin.write(f"/open {conv}\n/edit {s1} lunch at two\n/delete x\n")
        alice.stdin.flush()
        alice_out.expect(lambda l: l == "usage: /delete SEQ")  # at once, before the answer
        alice_out.expect(lambda l: l == f"alice edited #{s1}: lunch at two")
        alice.stdin.write("/search two\n/quit\n")
        alice.stdin.flush()
        alice_out.expect(lambda l: l == f"#{s1} alice: lunch at two (edited) [\U0001f44d 1]")
        assert finish(alice) == 0
    finally:
        if alice.poll() is None:
            alice.kill()
            alice.wait(5)

    cache = str(tmp_path / "bob.db")
    ok(cli(chatd, "history", "--conv", str(conv), user="bob", extra=["--cache", cache]))
    chatd.stop()
    r = cli(chatd, "search", "--local", "lunch", user="bob", extra=["--cache", cache])
    assert rows(ok(r)) == [[str(conv), str(s1), "alice", "lunch at two"]]
