"""The Python bindings over wss:// and https:// (Client(ca_file=...)): a chatd serving TLS with
a throwaway test PKI (tests/tls/make_pki.sh). The client trusts the test CA only through
ca_file; without it, or with another CA, it never gets online and its media transfers fail
before sending anything."""

import hashlib
import os
import socket
import subprocess
import time

import pytest

import libchat
from libchat import ChatError, Client, EventType as E

from conftest import Chatd

PKI_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "make_pki.sh")


@pytest.fixture
def tls_chatd(tmp_path):
    pki = tmp_path / "pki"
    subprocess.run(["sh", PKI_SCRIPT, str(pki)], check=True, timeout=60)
    srv = Chatd(tmp_path).start(extra=("--tls-cert", str(pki / "server.pem"),
                                       "--tls-key", str(pki / "server.key")))
    srv.pki = pki
    yield srv
    crashed = srv.proc is not None and srv.proc.poll() is not None
    srv.stop()
    if crashed:
        pytest.fail(f"chatd died during the test\n{srv.stderr_tail()}", pytrace=False)


def wss(srv, host="127.0.0.1"):
    return f"wss://{host}:{srv.port}/"


def client(srv, user, host="127.0.0.1", ca="ca.pem", **kw):
    kw.setdefault("backoff", (100, 1000))
    if ca is not None:
        kw["ca_file"] = str(srv.pki / ca)
    return Client(wss(srv, host), srv.token(user, kw.pop("device", "py")), **kw)


def refused_at_tls(c, why, attempts=2):
    """The next attempts end OFFLINE with a message naming the TLS failure; never ONLINE."""
    for _ in range(attempts):
        while True:
            e = c.wait_event(timeout=10)
            assert e is not None, "no OFFLINE event"
            assert e.type not in (E.ONLINE, E.SYNCED), e
            if e.type == E.OFFLINE:
                assert "closed (1015): TLS" in e.message and why in e.message, e
                assert e.code == libchat.ECLOSED
                break
    assert c.state != libchat.ConnState.ONLINE


def localhost_resolves():
    """A bare container may have no /etc/hosts: then the name localhost means nothing."""
    try:
        socket.getaddrinfo("localhost", None, socket.AF_INET)
        return True
    except OSError:
        return False


NO_LOCALHOST = ("the name localhost does not resolve on this machine (no /etc/hosts?); this "
                "test connects by name to check the certificate's DNS name")


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_python_ca_file_chat_over_wss(tls_chatd, host):
    if host == "localhost" and not localhost_resolves():
        pytest.skip(NO_LOCALHOST)
    with client(tls_chatd, "alice", host) as alice, client(tls_chatd, "bob", host) as bob:
        alice.wait_for(type=E.SYNCED, timeout=15)
        bob.wait_for(type=E.SYNCED, timeout=15)
        cmid = alice.send("over wss from python", to="bob")
        alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        m = bob.wait_for(lambda e: e.text == "over wss from python", type=E.MESSAGE)
        assert m.user == "alice"


def test_python_without_ca_file_is_refused(tls_chatd):
    # the system trust store does not know the test CA
    with client(tls_chatd, "alice", ca=None) as c:
        refused_at_tls(c, "TLS: server certificate not trusted")


def test_python_ca_file_of_another_ca_is_refused(tls_chatd):
    with client(tls_chatd, "alice", ca="rogue-ca.pem") as c:
        refused_at_tls(c, "not trusted")


def test_python_ca_file_with_a_name_not_in_the_certificate_is_refused(tls_chatd):
    # the certificate names 127.0.0.1 and localhost; "127.1" is the same address under a name
    # the certificate does not hold
    with client(tls_chatd, "alice", host="127.1") as c:
        refused_at_tls(c, "not trusted")


def test_python_missing_ca_file_is_a_tls_failure(tls_chatd):
    with client(tls_chatd, "alice", ca="no-such-ca.pem") as c:
        refused_at_tls(c, "cannot load the CA file")


def test_python_ca_file_argument_checks(tls_chatd):
    with pytest.raises(ChatError) as ei:
        Client(wss(tls_chatd), tls_chatd.token("alice"), ca_file="", start=False)
    assert ei.value.code == libchat.EINVAL


# ---- media over https -------------------------------------------------------------------------

class Stop(Exception):
    pass


def stop_after(n, seen):
    def progress(done, total):
        seen.append((done, total))
        if n <= done < total:
            time.sleep(0.3)  # let the server take in what was sent
            raise Stop()
    return progress


def test_python_media_over_https_upload_download_resume(tls_chatd, tmp_path):
    data = os.urandom(2 * 1024 * 1024 + 3)
    src = tmp_path / "photo.jpg"
    src.write_bytes(data)
    want = hashlib.blake2b(data, digest_size=32).hexdigest()
    with client(tls_chatd, "alice", cache=str(tmp_path / "a.db")) as alice, \
            client(tls_chatd, "bob", host="localhost" if localhost_resolves() else
                   "127.0.0.1") as bob:
        alice.wait_for(type=E.SYNCED, timeout=15)
        bob.wait_for(type=E.SYNCED, timeout=15)
        seen = []
        with pytest.raises(Stop):
            alice.upload_file(src, "image/jpeg", stop_after(700000, seen))
        seen2 = []
        media_id = alice.upload_file(src, "image/jpeg", lambda d, t: seen2.append((d, t)))
        assert media_id == want
        assert 0 < seen2[0][0] <= seen[-1][0], (seen2[0], seen[-1])  # resumed over https
        assert seen2[-1] == (len(data), len(data))

        media = {"id": media_id, "mime": "image/jpeg", "size": len(data), "name": "photo.jpg"}
        cmid = alice.send_media(media, to="bob")
        alice.wait_for(lambda e: e.cmid == cmid, type=E.SENT)
        bob.wait_for(lambda e: e.user == "alice" and e.kind == libchat.MsgKind.MEDIA,
                     type=E.MESSAGE)

        u = bob.media_url(media_id)
        dst = tmp_path / "got.jpg"
        with pytest.raises(Stop):
            bob.download(media_id, dst, stop_after(900000, []), url=u["url"])
        assert not dst.exists() and (tmp_path / "got.jpg.part").stat().st_size >= 900000
        seen3 = []
        assert bob.download(media_id, dst, lambda d, t: seen3.append(d)) == str(dst)
        assert seen3[0] >= 900000  # a Range request over https
        assert dst.read_bytes() == data
        assert not (tmp_path / "got.jpg.part").exists()


def test_python_media_over_https_refused_certificate(tls_chatd, tmp_path):
    src = tmp_path / "doc.bin"
    src.write_bytes(os.urandom(50000))
    mid = hashlib.blake2b(src.read_bytes(), digest_size=32).hexdigest()
    # not started: a transfer needs only the token, and must send nothing to this server
    c = client(tls_chatd, "alice", ca="rogue-ca.pem", start=False)
    try:
        calls = []
        with pytest.raises(ChatError) as ei:
            c.upload_file(src, None, lambda d, t: calls.append(d))
        assert ei.value.code == libchat.EIO
        assert "TLS: server certificate not trusted" in ei.value.message, ei.value.message
        assert calls == []
        dst = tmp_path / "never.bin"
        url = f"/media/{mid}?e=9999999999&s=alice&t=eA&k=1&sig=00"
        with pytest.raises(ChatError) as ei:
            c.download(mid, dst, url=url)
        assert ei.value.code == libchat.EIO and "not trusted" in ei.value.message
        assert not dst.exists() and not (tmp_path / "never.bin.part").exists()
    finally:
        c.close()
