"""The manual pages (doc/man) against --help: every option one shows, the other shows too,
and groff formats the pages without a warning."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import child_env, exe

MAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "doc", "man")
OPTION = re.compile(r"(?<![\w/-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])")


def help_text(var):
    r = subprocess.run([exe(var), "--help"], capture_output=True, text=True, timeout=30,
                       env=child_env())
    assert r.returncode == 0, r.stderr
    return r.stdout


def man_text(page):
    with open(os.path.join(MAN, page), encoding="utf-8") as f:
        lines = [l for l in f if not l.startswith('.\\"')]
    text = "".join(lines).replace("\\-", "-").replace("\\&", "")
    return re.sub(r"\\f[BIRP]", "", text)


@pytest.mark.parametrize("var,page", [("CHATD", "chatd.1"), ("CHAT_CLI", "chat-cli.1")])
def test_man_page_and_help_name_the_same_options(var, page):
    in_help = set(OPTION.findall(help_text(var)))
    in_man = set(OPTION.findall(man_text(page)))
    assert in_help, "no option found in --help"
    assert in_help - in_man == set(), f"in --help, not in {page}"
    assert in_man - in_help == set(), f"in {page}, not in --help"


def test_man_page_and_help_name_the_same_chatd_limits():
    h = help_text("CHATD")
    h = h[h.index("--limit NAME=VALUE") + len("--limit NAME=VALUE"):h.index("--config")]
    in_help = set(re.findall(r"\b[a-z][a-z_]*\b", h.replace("(media: doc/media.md)", "")))
    m = man_text("chatd.1")
    m = m[m.index(".SH LIMITS"):m.index(".SH FILES")]
    in_man = set(re.findall(r"^\.BR? (.*)$", m, re.M))
    in_man = {w for line in in_man for w in re.findall(r"\b[a-z][a-z_]*\b", line)} - {"limit"}
    assert in_help and in_help == in_man, (in_help - in_man, in_man - in_help)


def test_chat_cli_commands_are_in_its_man_page():
    h = help_text("CHAT_CLI")
    commands = re.findall(r"^  ([a-z][a-z-]+) ", h[h.index("Commands:"):], re.M)
    assert "send" in commands and "download" in commands, commands
    m = man_text("chat-cli.1")
    m = m[m.index(".SH COMMANDS"):m.index(".SH INTERACTIVE MODE")]
    for c in commands:
        assert re.search(rf"^(\.B[IR]? \"?)?{c}\b", m, re.M), f"{c} not under COMMANDS"


@pytest.mark.skipif(shutil.which("groff") is None, reason="no groff (package groff-base)")
@pytest.mark.parametrize("page", ["chatd.1", "chat-cli.1"])
def test_man_page_formats_without_warnings(page):
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(MAN, page)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stderr == "", r.stderr
