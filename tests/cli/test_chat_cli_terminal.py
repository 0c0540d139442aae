"""chat-cli's interactive mode in a real terminal: tmux runs it in a pane, send-keys types, and
capture-pane shows what a person would see. Peers act through `chat-cli send` and friends."""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import PASSWORD, child_env, exe

COLS, ROWS = 100, 30

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed (.ci/install-deps installs it)")


class Term:
    """chat-cli in a tmux pane of its own server (a private socket), UTF-8, COLS x ROWS."""

    def __init__(self, args):
        self.dir = tempfile.mkdtemp(prefix="chat-cli-tmux-")  # short: a socket path
        self.sock = os.path.join(self.dir, "s")
        env = child_env()
        env.update(LANG="C.UTF-8", LC_ALL="C.UTF-8")
        env.setdefault("TERM", "xterm")
        cmd = " ".join(_quote(a) for a in [exe("CHAT_CLI")] + list(args))
        # the pane stays after chat-cli exits, with its exit status on the screen
        shell = f"cd {_quote(self.dir)} && {cmd}; echo \"[exit $?]\"; sleep 600"
        self.tmux("new-session", "-d", "-s", "t", "-x", str(COLS), "-y", str(ROWS),
                  "env", "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "sh", "-c", shell, env=env)

    def tmux(self, *args, env=None):
        r = subprocess.run(["tmux", "-u", "-S", self.sock, "-f", "/dev/null"] + list(args),
                           capture_output=True, text=True, timeout=20, env=env or child_env())
        assert r.returncode == 0, f"tmux {args[0]}: {r.stderr}"
        return r.stdout

    def type(self, text):
        self.tmux("send-keys", "-t", "t", "-l", text)

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def screen(self, escapes=False):
        out = self.tmux("capture-pane", "-p", "-t", "t", *(["-e"] if escapes else []))
        return [line.rstrip() for line in out.split("\n")][:ROWS]

    def cursor(self):
        x, y = self.tmux("display-message", "-p", "-t", "t", "#{cursor_x} #{cursor_y}").split()
        return int(x), int(y)

    def prompt_line(self):
        """The last non-empty row: where the input line is."""
        rows = [r for r in self.screen() if r]
        return rows[-1] if rows else ""

    def wait(self, pred, what, timeout=15):
        """Poll the screen until pred(rows) holds; else fail saying what was awaited."""
        end = time.monotonic() + timeout
        while True:
            rows = self.screen()
            if pred(rows):
                return rows
            if time.monotonic() > end:
                pytest.fail(f"the screen did not show {what} within {timeout}s; it shows:\n" +
                            "\n".join(rows), pytrace=False)
            time.sleep(0.05)

    def wait_row(self, text, what=None):
        return self.wait(lambda rows: text in rows, what or repr(text))

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], capture_output=True, timeout=20)
        shutil.rmtree(self.dir, ignore_errors=True)


def _quote(s):
    return "'" + str(s).replace("'", "'\\''") + "'"


@pytest.fixture
def term_of(chatd):
    terms = []

    def make(user, *extra):
        t = Term(["--server", chatd.url, "--user", user, "--password", PASSWORD,
                  "--device", "tty"] + list(extra))
        terms.append(t)
        return t

    yield make
    for t in terms:
        t.close()


def as_user(srv, user, *args, check=True):
    r = subprocess.run([exe("CHAT_CLI"), "--server", srv.url, "--user", user, "--password",
                        PASSWORD, "--quiet"] + list(args), capture_output=True, text=True,
                       timeout=40, stdin=subprocess.DEVNULL, env=child_env())
    if check:
        assert r.returncode == 0, f"chat-cli {args}: exit {r.returncode}\n{r.stderr}"
    return r.stdout


def raw_request(srv, user, frame, burst=(), gap=0.0):
    """One request on a WebSocket of its own (as any client could send it); the answer. With
    burst: those frames, gap seconds apart, before any answer is read; their answers."""
    import asyncio
    import json

    import websockets

    async def go():
        async with websockets.connect(srv.url) as ws:
            await ws.send(json.dumps({"type": "login", "id": "1", "v": 1, "user": user,
                                      "password": PASSWORD, "device": "raw"}))
            while True:
                a = json.loads(await ws.recv())
                if a.get("re") == "1":
                    assert a["type"] == "auth_ok", a
                    break
            frames = [dict(f, id=str(10 + i)) for i, f in enumerate(burst)] or \
                [dict(frame, id="2")]
            for f in frames:
                await ws.send(json.dumps(f))
                await asyncio.sleep(gap)
            answers, want = {}, {f["id"] for f in frames}
            while want - answers.keys():
                a = json.loads(await ws.recv())
                if a.get("re") in want:
                    answers[a["re"]] = a
            return answers["2"] if not burst else [answers[f["id"]] for f in frames]

    return asyncio.run(asyncio.wait_for(go(), 20))


def history_texts(srv, user, conv):
    out = as_user(srv, user, "history", "--conv", str(conv))
    return [line.split("\t")[3] for line in out.splitlines() if line]


def open_with_bob(chatd, term_of):
    """bob says hello; alice opens the conversation in her terminal. Returns (term, conv)."""
    conv = None
    as_user(chatd, "bob", "send", "--to", "alice", "hello alice")
    for line in as_user(chatd, "bob", "convs").splitlines():
        conv = int(line.split("\t")[0])
    t = term_of("alice")
    t.wait_row("synced")
    t.type("/open bob")
    t.keys("Enter")
    t.wait_row("#1 bob: hello alice")
    t.wait(lambda rows: t.prompt_line() == "bob>", "the prompt 'bob>'")
    return t, conv


def test_terminal_message_arrives_above_a_half_typed_line(chatd, term_of):
    t, conv = open_with_bob(chatd, term_of)
    t.type("half typed")
    t.wait(lambda rows: t.prompt_line() == "bob> half typed", "the half-typed line")

    as_user(chatd, "bob", "send", "--conv", str(conv), "news while you type")
    rows = t.wait_row("#2 bob: news while you type")
    # the message is above the input line, and the input line is as typed
    filled = [r for r in rows if r]
    assert filled[-1] == "bob> half typed", rows
    assert filled[-2] == "#2 bob: news while you type", rows
    assert not any("half" in r and "news" in r for r in rows), rows
    # the cursor is back at the end of the typed text: typing goes on where it stopped
    x, y = t.cursor()
    assert rows[y] == "bob> half typed" and x == len("bob> half typed"), (x, y, rows)
    t.type(" and done")
    t.keys("Enter")
    # the echo becomes the message line: … while queued, ✓ in place once acked
    t.wait_row("\u2713 alice: half typed and done")
    assert history_texts(chatd, "bob", conv)[-1] == "half typed and done"


def test_terminal_arrow_keys_history_and_redraw(chatd, term_of):
    t, conv = open_with_bob(chatd, term_of)
    t.type("helo world")
    t.keys(*["Left"] * 7)
    t.type("l")
    t.keys("C-a")
    t.type(">> ")
    t.keys("End")
    t.type("!")
    t.wait(lambda rows: t.prompt_line() == "bob> >> hello world!", "the line as edited")
    t.keys("Enter")
    t.wait_row("\u2713 alice: >> hello world!")
    assert history_texts(chatd, "bob", conv)[-1] == ">> hello world!"

    # Up brings the line back from the history; Ctrl-U empties it again
    t.keys("Up")
    t.wait(lambda rows: t.prompt_line() == "bob> >> hello world!", "the recalled line")
    t.keys("C-u")
    t.wait(lambda rows: t.prompt_line() == "bob>", "an empty input line")

    # Ctrl-L clears the screen and draws the input line, with what was typed, at the top
    t.type("kept")
    t.keys("C-l")
    rows = t.wait(lambda rows: rows[0] == "bob> kept", "the input line alone at the top")
    assert [r for r in rows if r] == ["bob> kept"], rows
    t.keys("C-u")
    t.type("/quit")
    t.keys("Enter")
    t.wait_row("[exit 0]")


def test_terminal_neutralises_what_peers_send(chatd, term_of):
    t, conv = open_with_bob(chatd, term_of)
    t.type("draft")
    # clear screen, red text, a window title, a C1 CSI, a right-to-left override
    evil = "\x1b[2J\x1b[31mred\x1b]0;owned\x07 \u009b1m \u202eabc"
    as_user(chatd, "bob", "send", "--conv", str(conv), evil)
    rows = t.wait(lambda rows: any(r.startswith("#2 bob: ") for r in rows), "bob's message")
    line = next(r for r in rows if r.startswith("#2 bob: "))
    assert line == "#2 bob: ^[[2J^[[31mred^[]0;owned^G \\u009b1m \\u202eabc", line
    # nothing was cleared or coloured: the earlier lines are there, and the pane holds no
    # styled text at all
    assert "#1 bob: hello alice" in rows and t.prompt_line() == "bob> draft", rows
    assert "\x1b" not in "".join(t.screen(escapes=True)), t.screen(escapes=True)

    # a file whose name holds an escape, in a group whose title holds one (a media message
    # may name any id: chat-cli's own uploads refuse such a file name, a peer's client may not)
    gid = int(as_user(chatd, "bob", "group-create", "Te\x1b[5mam", "alice").strip())
    ack = raw_request(chatd, "bob", {"type": "send", "conv": gid, "cmid": "evil-1",
                                     "kind": "media",
                                     "media": {"id": "elsewhere-1", "mime": "text/plain",
                                               "size": 12, "name": "x\x1b[2Jy.txt"}})
    assert ack["type"] == "ack", ack
    # (its first message may come before the group is known: then it is "[conv N #1]")
    t.wait(lambda rows: any(r.endswith(" #1] bob created the group \"Te^[[5mam\" with alice")
                            for r in rows), "the group's creation, its title neutralised")
    t.wait_row("[#Te^[[5mam #2] bob sent x^[[2Jy.txt (text/plain, 12 bytes); "
               "/download 2 saves it")
    assert t.prompt_line() == "bob> draft"


def test_terminal_queues_offline_and_marks_the_ack(chatd, term_of):
    t, conv = open_with_bob(chatd, term_of)
    chatd.stop()
    t.wait(lambda rows: t.prompt_line() == "(offline) bob>", "the prompt saying offline")
    time.sleep(3)  # retries go on (backoff 0.2-2 s): none of them adds a line
    t.type("written while down")
    t.keys("Enter")
    rows = t.wait_row("\u2026 alice: written while down", "the message queued (…)")
    row = rows.index("\u2026 alice: written while down")
    assert sum(r.startswith("offline: ") for r in rows) == 1, rows
    t.type("/history")
    t.keys("Enter")
    t.wait_row("#- alice: written while down  \u2026 queued")

    chatd.restart()
    rows = t.wait_row("\u2713 alice: written while down", "the ✓ after the reconnect")
    # the very line that showed … now shows ✓
    assert rows.index("\u2713 alice: written while down") == row, rows
    t.wait_row("back online")
    t.wait(lambda rows: t.prompt_line() == "bob>", "the prompt without (offline)")
    assert history_texts(chatd, "bob", conv).count("written while down") == 1

    t.type("/history")
    t.keys("Enter")
    acked = ("  \u2713", "  \u2713\u2713", "  read")  # bob's client may have it by now
    rows = t.wait(lambda rows: any(r.startswith("#") and "alice: written while down" in r and
                                   r.endswith(acked) for r in rows[row + 1:]),
                  "/history with the message acked")
    after = rows[max(i for i, r in enumerate(rows) if r.endswith("> /history")):]
    assert sum("written while down" in r for r in after) == 1, rows


def test_terminal_group_opens_and_reads_as_sentences(chatd, term_of):
    t = term_of("alice")
    t.wait_row("synced")
    t.type("/group Team bob carol")
    t.keys("Enter")
    rows = t.wait(lambda rows: any(r.startswith("group #Team (conv ") for r in rows),
                  "the group created")
    gid = int(next(r for r in rows if r.startswith("group #Team (conv ")).split()[3][:-1])
    t.wait_row("#1 alice created the group \"Team\" with bob and carol")
    t.wait(lambda rows: t.prompt_line() == "#Team>", "the group open in the prompt")
    t.type("hello team")
    t.keys("Enter")
    t.wait_row("\u2713 alice: hello team")
    assert history_texts(chatd, "carol", gid)[-1] == "hello team"
    t.type("/rename Team 2")
    t.keys("Enter")
    t.wait_row("#3 alice renamed the group to \"Team 2\"")
    t.wait(lambda rows: t.prompt_line() == "#Team 2>", "the new title in the prompt")
    as_user(chatd, "carol", "send", "--conv", str(gid), "hi all")
    t.wait_row("#4 carol: hi all")


def test_terminal_typing_through_a_stream_of_messages(chatd, term_of):
    """Keys and messages arriving together: every key is drawn in the input line, never where
    output goes. (The session handles one key per turn of its loop, after the events of that
    turn; keys sent in bunches while messages stream in make such turns. The screen is read
    all along: a key drawn in the wrong place is erased again by the next message.)"""
    t, conv = open_with_bob(chatd, term_of)
    n = 20
    stream = threading.Thread(
        target=raw_request, args=(chatd, "bob", None),
        kwargs={"gap": 0.05, "burst": [{"type": "send", "conv": conv, "cmid": f"s{i}",
                                        "text": f"stream {i}"} for i in range(n)]})
    # keys that insert, move and delete, and leave the line as it was
    bunch = ["a", "b", "Left", "X", "End", "BSpace", "BSpace", "BSpace"] * 12

    def typist():
        while stream.is_alive():
            t.keys(*bunch)

    keys = threading.Thread(target=typist)
    # every row is one the session printed, or the input line with what the keys leave in it
    printed = re.compile(r"chat-cli interactive; /help for commands|online as alice \(device "
                         r"tty\)|synced|unread: bob \(conv \d+\) 1|/open ID reads a "
                         r"conversation; /convs lists them all|chat> /open bob|"
                         r"#1 bob: hello alice|#\d+ bob: stream \d+|bob>( [abX]*)?|")
    stream.start()
    keys.start()
    wrong = []
    while stream.is_alive() or keys.is_alive():
        rows = t.screen()
        if any(not printed.fullmatch(r) for r in rows):
            wrong = rows
            break
    stream.join(60)
    keys.join(60)
    assert not wrong, "a row the session did not print:\n" + "\n".join(wrong)
    t.wait_row(f"#{n + 1} bob: stream {n - 1}", "the last of bob's messages")
    t.type("done")
    t.wait(lambda rows: t.prompt_line() == "bob> done", "the line as typed")
