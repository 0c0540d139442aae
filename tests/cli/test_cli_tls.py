"""chat-cli over wss:// (--ca-file): a chatd serving TLS with a throwaway test PKI."""

import os
import re
import subprocess

import pytest

from conftest import child_env, exe

PKI_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "make_pki.sh")


@pytest.fixture
def tls_chatd(tmp_path):
    pki = tmp_path / "pki"
    subprocess.run(["sh", PKI_SCRIPT, str(pki)], check=True, timeout=60)
    data = tmp_path / "data"
    proc = subprocess.Popen([exe("CHATD"), "run", "--data-dir", str(data), "--port", "0",
                             "--tls-cert", str(pki / "server.pem"),
                             "--tls-key", str(pki / "server.key")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=child_env(), text=True)
    line = proc.stdout.readline()
    m = re.match(r"^chatd listening on 127\.0\.0\.1:(\d+)$", line.strip())
    assert m, line
    tok = subprocess.run([exe("CHATD"), "token", "--data-dir", str(data), "alice", "cli"],
                         capture_output=True, text=True, timeout=30, env=child_env(),
                         check=True).stdout.strip()
    yield int(m.group(1)), pki, tok
    proc.terminate()
    proc.wait(15)


def _cli(*args):
    return subprocess.run([exe("CHAT_CLI")] + list(args), capture_output=True, text=True,
                          timeout=60, env=child_env(), stdin=subprocess.DEVNULL)


def test_cli_sends_over_wss_with_ca_file(tls_chatd):
    port, pki, tok = tls_chatd
    r = _cli("--server", f"wss://127.0.0.1:{port}/", "--ca-file", str(pki / "ca.pem"),
             "--token", tok, "--timeout", "10", "send", "--to", "bob", "over", "wss")
    assert r.returncode == 0, (r.stdout, r.stderr)


def test_cli_refuses_untrusted_server_and_says_why(tls_chatd):
    port, pki, tok = tls_chatd
    r = _cli("--server", f"wss://127.0.0.1:{port}/", "--token", tok, "--timeout", "2",
             "send", "--to", "bob", "hi")
    assert r.returncode != 0, r.stdout
    assert "TLS: server certificate not trusted" in r.stderr, r.stderr
    r = _cli("--server", f"wss://127.0.0.1:{port}/", "--ca-file", str(pki / "rogue-ca.pem"),
             "--token", tok, "--timeout", "2", "send", "--to", "bob", "hi")
    assert r.returncode != 0 and "not trusted" in r.stderr, r.stderr


def test_cli_send_file_and_download_over_https(tls_chatd, tmp_path):
    import hashlib
    port, pki, tok = tls_chatd
    data = os.urandom(1024 * 1024 + 7)
    src = tmp_path / "clip.bin"
    src.write_bytes(data)
    base = ("--server", f"wss://127.0.0.1:{port}/", "--token", tok, "--timeout", "20")
    ca = ("--ca-file", str(pki / "ca.pem"))
    r = _cli(*base, *ca, "send-file", "--to", "bob", str(src))
    assert r.returncode == 0, (r.stdout, r.stderr)
    media_id = r.stdout.split()[0]
    assert media_id == hashlib.blake2b(data, digest_size=32).hexdigest()
    dst = tmp_path / "got.bin"
    r = _cli(*base, *ca, "download", media_id, str(dst))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert dst.read_bytes() == data

    # the rogue CA's trust: the connection never gets online, nothing is transferred
    other = tmp_path / "other.bin"
    r = _cli(*base[:-2], "--timeout", "2", "--ca-file", str(pki / "rogue-ca.pem"),
             "download", media_id, str(other))
    assert r.returncode != 0 and "not trusted" in r.stderr, r.stderr
    assert not other.exists() and not (tmp_path / "other.bin.part").exists()
