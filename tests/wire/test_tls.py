"""TLS and the handshake (doc/security.md: TLS): wss:// and https:// with a certificate made by
the test (openssl CLI), verified against the test CA; ALPN http/1.1 only; no extensions;
allowed origins."""

import http.client
import os
import socket
import ssl
import subprocess

import pytest

from conftest import run_cli
from wsclient import WS, HandshakeError, WSError

PKI_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "make_pki.sh")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    subprocess.run(["sh", PKI_SCRIPT, str(d)], check=True, timeout=60)
    return d


def _ctx(cafile, alpn=None):
    ctx = ssl.create_default_context(cafile=str(cafile))  # verifies chain and host name
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


@pytest.fixture
def tls_server(make_server, pki):
    return make_server("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "server.key"))


def _wss(srv, ctx, host="127.0.0.1", **kw):
    c = WS(srv.port, ssl_context=ctx, server_hostname=host, **kw)
    srv.clients.append(c)
    return c


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_wss_verified_against_test_ca_carries_the_protocol(tls_server, pki, name):
    a = _wss(tls_server, _ctx(pki / "ca.pem"), host=name)
    assert a.sock.version() in ("TLSv1.2", "TLSv1.3"), a.sock.version()
    assert a.protocol == "libchat.v1"
    r = a.call({"type": "auth", "v": 1, "token": tls_server.token("alice")})
    assert r["type"] == "auth_ok", r
    b = _wss(tls_server, _ctx(pki / "ca.pem"), host=name)
    assert b.call({"type": "auth", "v": 1, "token": tls_server.token("bob")})["type"] == "auth_ok"
    r = a.call({"type": "send", "to": "bob", "cmid": "tls-1", "text": "over TLS"})
    assert r["type"] == "ack", r
    m = b.expect("msg", conv=r["conv"])
    assert m["text"] == "over TLS" and m["from"] == "alice", m


def test_https_side_served_over_tls(tls_server, pki):
    conn = http.client.HTTPSConnection("127.0.0.1", tls_server.port, timeout=5,
                                       context=_ctx(pki / "ca.pem"))
    conn.request("GET", "/")
    r = conn.getresponse()
    r.read()
    assert r.status == 404, r.status  # verified TLS, then the HTTP side answers
    conn.close()


def test_alpn_offers_http11_only(tls_server, pki):
    ctx = _ctx(pki / "ca.pem", alpn=["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.selected_alpn_protocol() == "http/1.1", s.selected_alpn_protocol()
    ctx = _ctx(pki / "ca.pem", alpn=["h2"])
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                assert s.selected_alpn_protocol() is None, s.selected_alpn_protocol()
        except ssl.SSLError:
            pass  # refusing the handshake (no_application_protocol) is fine too


def test_certificate_of_another_ca_is_refused_by_a_verifying_client(make_server, pki):
    rogue = make_server("--tls-cert", str(pki / "rogue.pem"), "--tls-key", str(pki / "rogue.key"))
    with pytest.raises(ssl.SSLCertVerificationError):
        WS(rogue.port, ssl_context=_ctx(pki / "ca.pem"), server_hostname="127.0.0.1")


def test_wrong_host_name_is_refused(tls_server, pki):
    with pytest.raises(ssl.SSLCertVerificationError):
        WS(tls_server.port, ssl_context=_ctx(pki / "ca.pem"), server_hostname="chat.example.org")


def test_plain_ws_to_a_tls_port_gets_no_websocket(tls_server):
    with pytest.raises((WSError, OSError, AssertionError)):
        c = WS(tls_server.port, timeout=3)
        c.call({"type": "ping"}, timeout=2)


def test_permessage_deflate_offer_is_not_negotiated(server):
    c = server.ws(extra_headers={"Sec-WebSocket-Extensions":
                                 "permessage-deflate; client_max_window_bits"})
    assert "sec-websocket-extensions" not in c.response_headers, c.response_headers
    assert c.call({"type": "auth", "v": 1, "token": server.token("alice")})["type"] == "auth_ok"


def test_mismatched_cert_and_key_fail_at_start(make_server, pki):
    srv = make_server("--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "rogue.key"),
                      start=False)
    r = subprocess.run(srv.command(), capture_output=True, text=True, timeout=15,
                       stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "listening" not in r.stdout, (r.stdout, r.stderr)
    assert "TLS" in r.stderr, r.stderr


def test_tls_options_need_each_other(pki, tmp_path):
    r = run_cli(["run", "--data-dir", str(tmp_path / "d"), "--port", "0",
                 "--tls-cert", str(pki / "server.pem")])
    assert r.returncode != 0 and "TLS" in r.stderr, r.stderr
    r = run_cli(["run", "--data-dir", str(tmp_path / "d"), "--port", "0",
                 "--tls-cert", str(pki / "server.pem"), "--tls-key", str(tmp_path / "nope")])
    assert r.returncode != 0 and "nope" in r.stderr, r.stderr


def test_config_file_keys_for_tls_and_origins(make_server, pki, tmp_path):
    conf = tmp_path / "chatd.conf"
    conf.write_text(f"tls-cert = {pki / 'server.pem'}\ntls-key = {pki / 'server.key'}\n"
                    "allow-origin = https://chat.example.org\n")
    srv = make_server("--config", str(conf))
    c = _wss(srv, _ctx(pki / "ca.pem"), extra_headers={"Origin": "https://chat.example.org"})
    assert c.call({"type": "auth", "v": 1, "token": srv.token("alice")})["type"] == "auth_ok"
    with pytest.raises(HandshakeError, match="403"):
        WS(srv.port, ssl_context=_ctx(pki / "ca.pem"),
           extra_headers={"Origin": "https://evil.example"})


# ---- Origin (plain ws://; the check is the same with TLS) ------------------------------------

ORIGINS = ("--allow-origin", "https://chat.example.org", "--allow-origin", "http://localhost:8080")


@pytest.mark.chatd_args(*ORIGINS)
@pytest.mark.parametrize("origin,allowed", [
    ("https://chat.example.org", True),
    ("http://localhost:8080", True),
    (None, True),                             # native clients send no Origin
    ("https://evil.example", False),
    ("https://chat.example.org.evil.example", False),
    ("http://chat.example.org", False),      # another scheme is another origin
    ("https://chat.example.org:444", False),  # and so is another port
    ("HTTPS://CHAT.EXAMPLE.ORG", False),      # exact match (browsers send lower case)
    ("null", False),
])
def test_allowed_origins(server, origin, allowed):
    headers = {"Origin": origin} if origin is not None else {}
    if allowed:
        c = server.ws(extra_headers=headers)
        assert c.call({"type": "auth", "v": 1, "token": server.token("alice")})["type"] == \
            "auth_ok"
    else:
        with pytest.raises(HandshakeError, match=r"403"):
            server.ws(extra_headers=headers)
        # the refusal leaves the server serving others
        c = server.ws()
        assert c.call({"type": "auth", "v": 1, "token": server.token("bob")})["type"] == "auth_ok"


def test_without_allowed_origins_any_origin_is_accepted(server):
    c = server.ws(extra_headers={"Origin": "https://anything.example"})
    assert c.call({"type": "auth", "v": 1, "token": server.token("alice")})["type"] == "auth_ok"


# A body of 1,450,027 bytes stalled a few bytes short of its end over TLS until lws's 5 s
# timeout (lws read 4 KiB at a time and left the end of the last TLS record inside OpenSSL);
# plain HTTP was fine. The server now reads whole records (lib/transport/lws.c).
def test_https_upload_continued_from_an_offset_completes(tls_server, pki):
    size, first = 2097163, 647136
    data = os.urandom(size)
    auth = "Bearer " + tls_server.token("alice")

    def https():
        return http.client.HTTPSConnection("127.0.0.1", tls_server.port, timeout=3,
                                           context=_ctx(pki / "ca.pem"))

    def patch(loc, off, body):
        c = https()
        c.request("PATCH", loc, body=body,
                  headers={"Authorization": auth, "Upload-Offset": str(off),
                           "Content-Type": "application/offset+octet-stream"})
        r = c.getresponse()
        r.read()
        c.close()
        return r.status

    c = https()
    c.request("POST", "/media/uploads", headers={"Authorization": auth,
                                                 "Upload-Length": str(size)})
    r = c.getresponse()
    r.read()
    loc = r.getheader("Location")
    c.close()
    assert r.status == 201 and loc, r.status
    assert patch(loc, 0, data[:first]) == 204
    assert patch(loc, first, data[first:]) == 201  # timed out (3 s) while the bug was there
