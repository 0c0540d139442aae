"""Local stand-ins for the push providers, for tests that run chatd against them.

- ApnsFake: an HTTP/2 server over TLS (python3-h2) that checks what APNs checks: the provider
  token (an ES256 JWT, verified with the test's public key: kid, iss, iat), the path
  /3/device/<hex token>, apns-topic, apns-push-type, apns-priority, apns-expiration and
  apns-collapse-id. It answers 200, or 410 Unregistered / 400 BadDeviceToken for tokens told to,
  or 503 / 429 while down.
- FcmFake: the same server shape for FCM's HTTP v1 API: the OAuth token endpoint (the RS256
  assertion verified with the service account's public key, the scope, the audience) and
  messages:send (the bearer token it issued, the message body). UNREGISTERED for tokens told to.
- WebhookFake: an https receiver (HTTP/1.1) that verifies X-Libchat-Signature as doc/push.md
  tells a gateway to.

Every fake records what it accepted and every check that failed (errors); tests assert on both.
Keys and the TLS PKI are made by the test (tests/tls/make_pki.sh for the certificates); the
fixtures pki, apns and fcm make them per test (a test module imports them by name).
"""

import base64
import hashlib
import hmac
import json
import os
import queue
import secrets
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

PKI_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tls", "make_pki.sh")


def make_pki(directory):
    subprocess.run(["sh", PKI_SCRIPT, str(directory)], check=True, timeout=60)
    return directory


def _b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _jwt_parts(token):
    head, claims, sig = token.split(".")
    return json.loads(_b64d(head)), json.loads(_b64d(claims)), _b64d(sig), f"{head}.{claims}"


class _H2Server:
    """A threaded HTTP/2-over-TLS server; handle(method, path, headers, body) answers
    (status, headers, body bytes)."""

    def __init__(self, pki):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
        ctx.set_alpn_protocols(["h2"])
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.lock = threading.Lock()
        self.connections = 0
        self.errors = []
        self.stopped = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def error(self, what):
        with self.lock:
            self.errors.append(what)

    def _accept(self):
        while not self.stopped:
            try:
                raw, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw):
        try:
            s = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        if s.selected_alpn_protocol() != "h2":
            self.error(f"ALPN {s.selected_alpn_protocol()!r}, not h2")
            s.close()
            return
        with self.lock:
            self.connections += 1
            self.conns.append(s)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        streams = {}
        try:
            while True:
                data = s.recv(65535)
                if not data:
                    break
                for ev in conn.receive_data(data):
                    if isinstance(ev, h2.events.RequestReceived):
                        streams[ev.stream_id] = [dict(ev.headers), b""]
                    elif isinstance(ev, h2.events.DataReceived):
                        streams[ev.stream_id][1] += ev.data
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamEnded):
                        headers, body = streams.pop(ev.stream_id)
                        status, extra, out = self.handle(headers.get(":method"),
                                                         headers.get(":path"), headers, body)
                        conn.send_headers(ev.stream_id, [
                            (":status", str(status)), ("content-type", "application/json"),
                            ("content-length", str(len(out)))] + list(extra))
                        conn.send_data(ev.stream_id, out, end_stream=True)
                    elif isinstance(ev, h2.events.ConnectionTerminated):
                        return
                s.sendall(conn.data_to_send())
        except (OSError, ssl.SSLError, h2.exceptions.ProtocolError):
            pass
        finally:
            s.close()

    def stop(self):
        self.stopped = True
        self.sock.close()
        with self.lock:
            for s in self.conns:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class ApnsFake(_H2Server):
    def __init__(self, pki, key_dir, key_id="ABC123DEFG", team_id="DEF123GHIJ",
                 topic="com.example.chat"):
        super().__init__(pki)
        self.key_id, self.team_id, self.topic = key_id, team_id, topic
        key = ec.generate_private_key(ec.SECP256R1())
        self.public = key.public_key()
        self.key_pem = key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        self.key_file = str(key_dir / f"AuthKey_{key_id}.p8")
        with open(self.key_file, "wb") as f:
            f.write(self.key_pem)
        self.pushes = queue.Queue()  # accepted: dicts
        self.accepted = []
        self.attempts = {}          # token -> requests seen
        self.gone = set()           # tokens answered 410 Unregistered
        self.bad = set()            # tokens answered 400 BadDeviceToken
        self.down = None            # None, or (status, extra headers) while down
        self.jwts = set()

    def args(self):
        return ["--apns-key-file", self.key_file, "--apns-key-id", self.key_id,
                "--apns-team-id", self.team_id, "--apns-topic", self.topic,
                "--apns-endpoint", self.url]

    def _check_jwt(self, auth):
        if not auth.startswith("bearer "):
            return "authorization is not 'bearer <jwt>'"
        token = auth[7:]
        head, claims, sig, signed = _jwt_parts(token)
        if head != {"alg": "ES256", "kid": self.key_id}:
            return f"JWT header {head}"
        if claims.get("iss") != self.team_id or abs(claims.get("iat", 0) - time.time()) > 3600:
            return f"JWT claims {claims}"
        if len(sig) != 64:
            return f"ES256 signature of {len(sig)} bytes, not r||s"
        try:
            self.public.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                                    int.from_bytes(sig[32:], "big")),
                               signed.encode(), ec.ECDSA(hashes.SHA256()))
        except Exception:  # noqa: BLE001 - any failure is a bad signature
            return "JWT signature does not verify"
        with self.lock:
            self.jwts.add(token)
        return None

    def handle(self, method, path, headers, body):
        prefix = "/3/device/"
        token = path[len(prefix):] if path and path.startswith(prefix) else ""
        with self.lock:
            self.attempts[token] = self.attempts.get(token, 0) + 1
            down = self.down
        why = None
        if method != "POST" or not token or any(c not in "0123456789abcdef" for c in token):
            why = f"{method} {path}"
        why = why or self._check_jwt(headers.get("authorization", ""))
        if why:
            self.error(why)
            return 403, [], json.dumps({"reason": "InvalidProviderToken"}).encode()
        if down:
            return down[0], down[1], json.dumps({"reason": "ServiceUnavailable"}).encode()
        for name, want in (("apns-topic", self.topic), ("apns-push-type", "alert"),
                           ("apns-priority", "10")):
            if headers.get(name) != want:
                self.error(f"{name}: {headers.get(name)!r}")
        exp = headers.get("apns-expiration", "")
        if not exp.isdigit() or int(exp) < time.time():
            self.error(f"apns-expiration {exp!r}")
        if token in self.gone:
            return 410, [], json.dumps({"reason": "Unregistered",
                                        "timestamp": int(time.time() * 1000)}).encode()
        if token in self.bad:
            return 400, [], json.dumps({"reason": "BadDeviceToken"}).encode()
        payload = json.loads(body)
        push = {"token": token, "collapse_id": headers.get("apns-collapse-id"),
                "payload": payload, "headers": headers}
        with self.lock:
            self.accepted.append(push)
        self.pushes.put(push)
        return 200, [("apns-id", "0" * 8 + "-0000-0000-0000-" + "0" * 12)], b""

    def next_push(self, timeout=10):
        try:
            return self.pushes.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no APNs push within {timeout}s (errors: {self.errors})") \
                from None


class FcmFake(_H2Server):
    def __init__(self, pki, key_dir, project="libchat-test"):
        super().__init__(pki)
        self.project = project
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public = key.public_key()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        self.key_lines = [l for l in pem.splitlines() if l and not l.startswith("-----")]
        self.key_id = secrets.token_hex(20)
        self.email = f"push@{project}.iam.gserviceaccount.com"
        self.token_uri = f"{self.url}/token"
        self.account_file = str(key_dir / "service-account.json")
        with open(self.account_file, "w") as f:
            json.dump({"type": "service_account", "project_id": project,
                       "private_key_id": self.key_id, "private_key": pem,
                       "client_email": self.email, "client_id": "1",
                       "token_uri": "https://oauth2.googleapis.com/token"}, f)
        self.issued = set()
        self.token_requests = 0
        self.messages = queue.Queue()
        self.accepted = []
        self.unregistered = set()

    def args(self):
        return ["--fcm-service-account", self.account_file, "--fcm-endpoint", self.url,
                "--fcm-token-uri", self.token_uri]

    def _token(self, body):
        form = urllib.parse.parse_qs(body.decode())
        if form.get("grant_type") != ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
            return f"grant_type {form.get('grant_type')}"
        head, claims, sig, signed = _jwt_parts(form.get("assertion", ["x.x.x"])[0])
        if head != {"alg": "RS256", "typ": "JWT", "kid": self.key_id}:
            return f"assertion header {head}"
        now = time.time()
        if (claims.get("iss") != self.email or claims.get("aud") != self.token_uri or
                claims.get("scope") != "https://www.googleapis.com/auth/firebase.messaging" or
                not claims.get("iat", 0) <= now + 60 < claims.get("exp", 0) + 60 or
                claims["exp"] - claims["iat"] > 3600):
            return f"assertion claims {claims}"
        try:
            self.public.verify(sig, signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        except Exception:  # noqa: BLE001
            return "assertion signature does not verify"
        return None

    def handle(self, method, path, headers, body):
        if path == "/token":
            with self.lock:
                self.token_requests += 1
            why = self._token(body)
            if why:
                self.error(why)
                return 400, [], json.dumps({"error": "invalid_grant"}).encode()
            tok = "ya29." + secrets.token_urlsafe(32)
            with self.lock:
                self.issued.add(tok)
            return 200, [], json.dumps({"access_token": tok, "expires_in": 3599,
                                        "token_type": "Bearer"}).encode()
        if path != f"/v1/projects/{self.project}/messages:send" or method != "POST":
            self.error(f"{method} {path}")
            return 404, [], b"{}"
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.issued:
            self.error("bearer token not one issued")
            return 401, [], json.dumps({"error": {"code": 401,
                                                  "status": "UNAUTHENTICATED"}}).encode()
        msg = json.loads(body).get("message", {})
        token = msg.get("token", "")
        if token in self.unregistered:
            return 404, [], json.dumps({"error": {
                "code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND",
                "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                             "errorCode": "UNREGISTERED"}]}}).encode()
        if not all(isinstance(v, str) for v in msg.get("data", {}).values()):
            self.error(f"FCM data values must be strings: {msg.get('data')}")
        with self.lock:
            self.accepted.append(msg)
        self.messages.put(msg)
        return 200, [], json.dumps({"name": f"projects/{self.project}/messages/1"}).encode()

    def next_message(self, timeout=10):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no FCM message within {timeout}s (errors: {self.errors})") \
                from None


def verify_signature(secret, header, body, window=300):
    """What a gateway does with X-Libchat-Signature (doc/push.md has these lines)."""
    t, v1 = (p.split("=", 1)[1] for p in header.split(","))
    mac = hmac.new(secret, f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, v1) and abs(time.time() - int(t)) <= window


class WebhookFake:
    def __init__(self, pki, secret):
        self.secret = secret
        self.events = queue.Queue()
        self.errors = []
        self.status = 204
        hook = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                sig = self.headers.get("X-Libchat-Signature", "")
                if not sig or not verify_signature(hook.secret, sig, body):
                    hook.errors.append(f"bad signature {sig!r}")
                    self.send_response(401)
                else:
                    hook.events.put(json.loads(body))
                    self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(pki / "server.pem"), str(pki / "server.key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}/push"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def next_event(self, timeout=10):
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no webhook event within {timeout}s ({self.errors})") from None

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def pki(tmp_path):
    return make_pki(tmp_path / "pki")


@pytest.fixture
def apns(pki, tmp_path):
    fake = ApnsFake(pki, tmp_path)
    yield fake
    fake.stop()


@pytest.fixture
def fcm(pki, tmp_path):
    fake = FcmFake(pki, tmp_path)
    yield fake
    fake.stop()
