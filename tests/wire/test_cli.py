"""chatd command line (the contract of examples/chatd)."""

import os
import subprocess

import pytest

from conftest import LISTEN_RE, chatd_path, run_cli


def test_listening_line_is_exact_and_port_serves(server):
    assert LISTEN_RE.match(server.stdout_lines[0]), server.stdout_lines
    c = server.connect("alice")
    assert c.call({"type": "ping"})["type"] == "pong"


def test_run_creates_token_key(server):
    assert os.path.isfile(os.path.join(server.data_dir, "token.key"))


def test_token_prints_one_line(tmp_path):
    r = run_cli(["token", "--data-dir", str(tmp_path), "alice", "laptop"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].strip(), r.stdout
    assert os.path.isfile(tmp_path / "token.key")


def test_tokens_differ_per_device(tmp_path):
    t1 = run_cli(["token", "--data-dir", str(tmp_path), "alice", "a"]).stdout.strip()
    t2 = run_cli(["token", "--data-dir", str(tmp_path), "alice", "b"]).stdout.strip()
    assert t1 and t2 and t1 != t2


@pytest.mark.parametrize("args", [
    ["run", "--bogus-flag"],
    ["run", "--port", "0", "--bus", "nope"],
    ["run", "--port", "0", "--sync", "sometimes"],
    ["run", "--port", "0", "--limit", "no_such_limit=5"],
    ["run", "--port", "0", "--limit", "frame_bytes=abc"],
    ["run", "--port", "0", "--limit", "frame_bytes"],
    ["frobnicate"],
    ["token", "alice"],
])
def test_bad_command_line_fails_with_message(tmp_path, args):
    full = args[:1] + ["--data-dir", str(tmp_path)] + args[1:]
    if args[0] == "run":
        full += ["--listen", "127.0.0.1"]
    r = subprocess.run([chatd_path()] + full, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=10)
    assert r.returncode != 0, f"{full} exited 0; stdout={r.stdout!r}"
    assert r.stderr.strip(), f"{full} failed without a message on stderr"
    assert "listening" not in r.stdout


def test_user_add_reads_password_from_stdin(tmp_path):
    r = run_cli(["user", "add", "--data-dir", str(tmp_path), "alice"], input_text="pw one\n")
    assert r.returncode == 0, r.stderr


def test_run_accepts_every_documented_limit(make_server):
    limits = ["frame_bytes=65536", "fragments=64", "json_depth=16", "body_bytes=16384",
              "group_members=1024", "auth_deadline_ms=5000", "idle_ping_ms=20000",
              "idle_hangup_ms=45000", "send_rate=20", "send_burst=40", "typing_ttl_ms=5000",
              "page_max=200", "typing_rate=2"]
    args = []
    for l in limits:
        args += ["--limit", l]
    srv = make_server(*args, "--sync", "normal")
    assert srv.connect("alice").call({"type": "ping"})["type"] == "pong"


@pytest.mark.chatd_args("--limit", "body_bytes=10")
def test_body_bytes_limit_is_configurable(server):
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": "c1", "text": "x" * 11})
    assert r["type"] == "error" and r["reason"] == "body_too_large", r
    r = a.call({"type": "send", "to": "bob", "cmid": "c2", "text": "x" * 10})
    assert r["type"] == "ack", r



def test_config_file_sets_options_and_limits(make_server, tmp_path):
    """--config reads 'name = value' lines: options and limit.NAME entries."""
    cfg = tmp_path / "chatd.conf"
    cfg.write_text("# chatd settings\nsync = full\n\nlimit.body_bytes = 10\n")
    server = make_server("--config", str(cfg))
    a = server.connect("alice")
    r = a.call({"type": "send", "to": "bob", "cmid": "c1", "text": "x" * 11})
    assert r["type"] == "error" and r["reason"] == "body_too_large", r
    r = a.call({"type": "send", "to": "bob", "cmid": "c2", "text": "x" * 10})
    assert r["type"] == "ack", r


@pytest.mark.parametrize("text,needle", [
    ("port = 0\nlimit.frame_bytes = 12\n", "frame_bytes"),
    ("port = 0\nbus = sideways\n", "line 2"),
    ("no_such_option = 1\n", "no_such_option"),
])
def test_bad_config_file_is_refused_with_a_message(tmp_path, text, needle):
    cfg = tmp_path / "chatd.conf"
    cfg.write_text(text)
    r = run_cli(["run", "--data-dir", str(tmp_path / "d"), "--config", str(cfg)])
    assert r.returncode != 0
    assert needle in r.stderr, r.stderr


def test_missing_config_file_is_refused(tmp_path):
    r = run_cli(["run", "--data-dir", str(tmp_path / "d"), "--config", str(tmp_path / "nope")])
    assert r.returncode != 0 and "config" in r.stderr, r.stderr
