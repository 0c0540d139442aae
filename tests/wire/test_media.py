"""Media over HTTP on chatd's port: uploads (resumable), signed downloads, media messages
(doc/media.md). Real sockets throughout."""

import base64
import hashlib
import hmac
import http.client
import os
import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import assert_error, cmid, create_group, history_all

MIB = 1024 * 1024


def blake(data):
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def b64(s):
    return base64.b64encode(s.encode()).decode()


class Http:
    """Tiny HTTP client against one chatd; a fresh connection per request."""

    def __init__(self, server):
        self.server = server

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)

    def request(self, method, path, body=None, headers=None):
        c = self.conn()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def auth(self, user, device="d1"):
        return {"Authorization": "Bearer " + self.server.token(user, device)}

    def create(self, user, length, name="file.bin", mime="application/octet-stream",
               expect=201):
        h = self.auth(user)
        h["Upload-Length"] = str(length)
        h["Upload-Metadata"] = f"name {b64(name)},type {b64(mime)}"
        st, hd, body = self.request("POST", "/media/uploads", headers=h)
        assert st == expect, (st, hd, body)
        if expect != 201:
            return None, hd, body
        loc = hd["location"]
        assert loc.startswith("/media/uploads/"), hd
        return loc, hd, body

    def patch(self, user, loc, offset, data):
        h = self.auth(user)
        h["Upload-Offset"] = str(offset)
        h["Content-Type"] = "application/offset+octet-stream"
        return self.request("PATCH", loc, body=data, headers=h)

    def upload(self, user, data, name="file.bin", mime="application/octet-stream"):
        loc, _, _ = self.create(user, len(data), name, mime)
        if not data:
            raise AssertionError("use create() for empty uploads")
        st, hd, body = self.patch(user, loc, 0, data)
        assert st == 201, (st, hd, body)
        import json
        meta = json.loads(body)
        assert meta["media"] == blake(data) and meta["size"] == len(data), meta
        assert meta["mime"] == mime and meta["name"] == name, meta
        return meta["media"]


def media_url(c, media_id):
    r = c.call({"type": "media_url", "media": media_id})
    assert r["type"] == "media_url", r
    assert r["media"] == media_id and r["url"].startswith("/media/" + media_id + "?"), r
    return r


def staging(server):
    """Staged uploads (in a directory per node when nodes share the media directory)."""
    out = []
    for root, _, files in os.walk(os.path.join(server.data_dir, "media", "staging")):
        out.extend(files)
    return sorted(out)


def objects(server):
    out = []
    for root, _, files in os.walk(os.path.join(server.data_dir, "media", "objects")):
        out.extend(files)
    return sorted(out)


def token_key(server):
    """The current token key from the data dir (the last line signs)."""
    lines = [ln.split() for ln in open(os.path.join(server.data_dir, "token.key"))
             if ln.strip() and not ln.startswith("#")]
    kid, hexkey = lines[-1]
    return int(kid), bytes.fromhex(hexkey)


def sign_url(server, media_id, exp_s, scope, mime):
    """The documented URL scheme (doc/media.md), computed independently of the server."""
    kid, key = token_key(server)
    url_key = hashlib.blake2b(b"libchat media url v2", key=key, digest_size=32).digest()
    msg = b""
    for field in (b"libchat media url v2", media_id.encode(), str(exp_s).encode(),
                  scope.encode(), mime.encode(), str(kid).encode()):
        msg += len(field).to_bytes(2, "big") + field
    tag = hmac.new(url_key, msg, hashlib.sha512).digest()[:32]
    t = base64.urlsafe_b64encode(mime.encode()).decode().rstrip("=")
    return f"/media/{media_id}?e={exp_s}&s={scope}&t={t}&k={kid}&sig={tag.hex()}"


def shared_with_bob(server, hp, data, mime="video/mp4", name="clip.mp4"):
    """alice uploads data and sends it to bob; returns (media id, bob's ws)."""
    a = server.connect("alice")
    b = server.connect("bob")
    mid = hp.upload("alice", data, name, mime)
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "media",
                "media": {"id": mid, "mime": mime, "size": len(data), "name": name}})
    assert r["type"] == "ack", r
    b.expect("msg", conv=r["conv"])
    return mid, b


# ---- round trip, dedupe, resume ----------------------------------------------------------------

@pytest.mark.seconds(120)
def test_upload_download_round_trip_multi_mib_with_hash(server):
    hp = Http(server)
    data = os.urandom(5 * MIB + 123)
    a = server.connect("alice")
    mid = hp.upload("alice", data, "movie.mp4", "video/mp4")
    assert mid == blake(data)
    u = media_url(a, mid)
    assert u["size"] == len(data) and u["mime"] == "video/mp4" and u["name"] == "movie.mp4", u
    st, hd, body = hp.request("GET", u["url"])
    assert st == 200, (st, hd)
    assert blake(body) == mid and len(body) == len(data)
    assert hd["content-type"] == "video/mp4", hd
    assert hd["content-length"] == str(len(data)), hd
    assert hd["etag"] == f'"{mid}"', hd
    assert "immutable" in hd["cache-control"] and "public" in hd["cache-control"], hd
    assert hd["accept-ranges"] == "bytes", hd
    assert staging(server) == [] and objects(server) == [mid]


def test_single_request_upload_with_body_in_post(server):
    hp = Http(server)
    data = os.urandom(200000)
    h = hp.auth("alice")
    h["Upload-Length"] = str(len(data))
    st, hd, body = hp.request("POST", "/media/uploads", body=data, headers=h)
    assert st == 201, (st, hd, body)
    assert blake(data) in body.decode()
    # a creating POST that carries only the first part: 201, Location, Upload-Offset
    h["Upload-Length"] = str(2 * len(data))
    st, hd, body = hp.request("POST", "/media/uploads", body=data, headers=h)
    assert st == 201 and hd["upload-offset"] == str(len(data)), (st, hd, body)
    st, hd, body = hp.patch("alice", hd["location"], len(data), data)
    assert st == 201 and blake(data + data) in body.decode(), (st, body)


def test_identical_uploads_are_stored_once(server):
    hp = Http(server)
    data = os.urandom(300000)
    m1 = hp.upload("alice", data, "a.bin")
    m2 = hp.upload("bob", data, "b.bin")
    assert m1 == m2
    assert objects(server) == [m1] and staging(server) == []
    # both uploaders may obtain URLs
    for user in ("alice", "bob"):
        media_url(server.connect(user), m1)


def test_empty_upload_completes_at_creation(server):
    hp = Http(server)
    loc, hd, body = hp.create("alice", 0)
    assert blake(b"") in body.decode()
    url = media_url(server.connect("alice"), blake(b""))["url"]
    st, hd, got = hp.request("GET", url)
    assert st == 200 and got == b"" and hd["content-length"] == "0", (st, hd)
    st, hd, _ = hp.request("GET", url, headers={"Range": "bytes=0-"})
    assert st == 416 and hd["content-range"] == "bytes */0", (st, hd)


@pytest.mark.seconds(90)
def test_resume_after_dropped_connection(server):
    hp = Http(server)
    data = os.urandom(4 * MIB)
    loc, _, _ = hp.create("alice", len(data), "big.bin")
    # a PATCH announcing everything, cut after about half, without a goodbye
    s = socket.create_connection(("127.0.0.1", server.port))
    head = (f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            f"{server.token('alice')}\r\nUpload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()
    s.sendall(head + data[:2 * MIB + 777])
    time.sleep(0.3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    # where to resume: retry while the server still sees the old request appending
    for _ in range(100):
        st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
        assert st == 200, (st, hd)
        if "upload-busy" not in hd:
            break
        time.sleep(0.05)
    off = int(hd["upload-offset"])
    assert 0 < off <= 2 * MIB + 777, off
    assert hd["upload-length"] == str(len(data))
    st, hd, body = hp.patch("alice", loc, off, data[off:])
    assert st == 201, (st, hd, body)
    assert blake(data) in body.decode()
    mid = blake(data)
    st, hd, got = hp.request("GET", media_url(server.connect("alice"), mid)["url"])
    assert st == 200 and got == data, (st, got[:300])
    # a later HEAD of the finished upload names the media
    st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert st == 200 and hd["media-id"] == mid and hd["upload-offset"] == str(len(data))
    assert staging(server) == []


def test_resume_in_several_patches_and_wrong_offset_is_409(server):
    hp = Http(server)
    data = os.urandom(100000)
    loc, _, _ = hp.create("alice", len(data))
    st, hd, _ = hp.patch("alice", loc, 0, data[:40000])
    assert st == 204 and hd["upload-offset"] == "40000", (st, hd)
    st, hd, body = hp.patch("alice", loc, 0, data[:10])
    assert st == 409 and hd["upload-offset"] == "40000", (st, hd, body)
    assert b"bad_offset" in body
    st, hd, body = hp.patch("alice", loc, 40000, data[40000:])
    assert st == 201, (st, hd, body)


def test_delete_upload_removes_staged_bytes(server):
    hp = Http(server)
    loc, _, _ = hp.create("alice", 1000)
    hp.patch("alice", loc, 0, b"x" * 10)
    assert len(staging(server)) == 1
    st, _, _ = hp.request("DELETE", loc, headers=hp.auth("alice"))
    assert st == 204
    assert staging(server) == []
    st, _, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert st == 404


# ---- ranges, HEAD, conditional -------------------------------------------------------------

def test_range_requests_206_and_416(server):
    hp = Http(server)
    data = os.urandom(1 * MIB)
    mid, b = shared_with_bob(server, hp, data)
    url = media_url(b, mid)["url"]
    st, hd, body = hp.request("GET", url, headers={"Range": "bytes=1000-1999"})
    assert st == 206 and body == data[1000:2000], (st, hd)
    assert hd["content-range"] == f"bytes 1000-1999/{len(data)}", hd
    assert hd["content-length"] == "1000"
    st, hd, body = hp.request("GET", url, headers={"Range": "bytes=-100"})
    assert st == 206 and body == data[-100:], (st, hd)
    st, hd, body = hp.request("GET", url, headers={"Range": f"bytes={len(data) - 5}-"})
    assert st == 206 and body == data[-5:], (st, hd)
    st, hd, body = hp.request("GET", url, headers={"Range": f"bytes=500-{len(data) + 999}"})
    assert st == 206 and body == data[500:], (st, hd)  # end clamped
    st, hd, body = hp.request("GET", url, headers={"Range": f"bytes={len(data)}-"})
    assert st == 416, (st, hd)
    assert hd["content-range"] == f"bytes */{len(data)}", hd
    st, hd, body = hp.request("GET", url, headers={"Range": f"bytes={len(data) + 10}-{len(data) + 20}"})
    assert st == 416, (st, hd)


def test_head_and_if_none_match(server):
    hp = Http(server)
    data = os.urandom(70000)
    mid, b = shared_with_bob(server, hp, data, mime="image/png", name="p.png")
    url = media_url(b, mid)["url"]
    st, hd, body = hp.request("HEAD", url)
    assert st == 200 and body == b"", (st, hd)
    assert hd["content-length"] == str(len(data)) and hd["content-type"] == "image/png", hd
    assert hd["etag"] == f'"{mid}"'
    st, hd, body = hp.request("GET", url, headers={"If-None-Match": f'"{mid}"'})
    assert st == 304 and body == b"", (st, hd)


def test_same_url_within_the_minute_is_cacheable(server):
    """URLs for one requester are stable for a while, so a CDN keys one copy per user."""
    hp = Http(server)
    mid = hp.upload("alice", b"z" * 5000)
    a = server.connect("alice")
    u1, u2 = media_url(a, mid), media_url(a, mid)
    assert u1["url"] == u2["url"] or u1["expires"] != u2["expires"]
    q = parse_qs(urlsplit(u1["url"]).query)
    assert int(q["e"][0]) * 1000 == u1["expires"]
    assert q["s"] == ["alice"]


# ---- bad input -----------------------------------------------------------------------------

def test_wrong_or_tampered_signature_is_403(server):
    hp = Http(server)
    data = os.urandom(5000)
    mid = hp.upload("alice", data)
    url = media_url(server.connect("alice"), mid)["url"]
    sig = parse_qs(urlsplit(url).query)["sig"][0]
    bad = url.replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
    st, _, body = hp.request("GET", bad)
    assert st == 403 and b"bad_signature" in body, (st, body)
    st, _, body = hp.request("GET", url.replace("s=alice", "s=mallory"))
    assert st == 403, st
    st, _, body = hp.request("GET", url.split("&sig=")[0])
    assert st == 403, st
    st, _, body = hp.request("GET", "/media/" + mid)
    assert st == 403, st
    # a valid signature for another id does not open this one
    other = hp.upload("alice", os.urandom(100))
    st, _, _ = hp.request("GET", url.replace(mid, other))
    assert st == 403


def test_independently_signed_url_works_and_expired_is_403(server):
    hp = Http(server)
    data = os.urandom(3000)
    mid = hp.upload("alice", data, mime="image/jpeg")
    good = sign_url(server, mid, int(time.time()) + 600, "alice", "image/jpeg")
    st, hd, body = hp.request("GET", good)
    assert st == 200 and body == data and hd["content-type"] == "image/jpeg", (st, hd)
    expired = sign_url(server, mid, int(time.time()) - 1, "alice", "image/jpeg")
    st, _, body = hp.request("GET", expired)
    assert st == 403 and b"expired" in body, (st, body)


# Every other spelling of a valid URL decodes to the same fields; each must be refused, or a
# client could fetch one object under endless URLs and go around a cache to the origin.
@pytest.mark.parametrize("change", [
    ("&k={k}&", "&k=0{k}&"),                      # leading zero in the key id
    ("&k={k}&", "&k=00{k}&"),
    ("&k={k}&", "&k=%2B{k}&"),                    # "+1"
    ("?e=", "?e=0"),                              # leading zero in the expiry
    ("&t={t}&", "&t={t}%B8&"),                    # a byte libsodium 1.0.18 reads as '_'
    ("&t={t}&", "&t={t}%FF&"),
    ("&t={t}&", "&t={t}=&"),                      # padding
    ("&sig={sig}", "&sig={SIG}"),                 # upper-case hex
    ("?e=", "?x=1&e="),                           # an unknown parameter
    ("&sig=", "&k={k}&sig="),                     # a repeated parameter
    ("&s=alice", "&s=alice&s=alice"),
    ("&sig={sig}", "&sig={sig}&sig={sig}"),
    ("&sig={sig}", "&sig={sig}&"),                # a trailing '&'
    ("&s=alice&t={t}", "&t={t}&s=alice"),         # another order
])
def test_non_canonical_url_spellings_are_403(server, change):
    hp = Http(server)
    mid = hp.upload("alice", os.urandom(700), mime="text/x")
    url = media_url(server.connect("alice"), mid)["url"]
    q = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    f = dict(k=q["k"], t=q["t"], sig=q["sig"], SIG=q["sig"].upper())
    old, new = change[0].format(**f), change[1].format(**f)
    assert old in url, (old, url)
    st, _, body = hp.request("GET", url)
    assert st == 200, (st, body)
    st, _, body = hp.request("GET", url.replace(old, new, 1))
    assert st == 403 and b"bad_signature" in body, (url.replace(old, new, 1), st, body)


@pytest.mark.parametrize("path", [
    "/media/../../etc/passwd",
    "/media/..%2F..%2Fetc%2Fpasswd",
    "/media/%2e%2e/token.key",
    "/media/uploads/../../token.key",
    "/media/uploads/..%2F..%2Ftoken.key",
    "/media/" + "a" * 63 + "/",
    "/media/" + "A" * 64,
    "/media/chat.db",
])
def test_path_like_ids_are_refused(server, path):
    hp = Http(server)
    before = sorted(os.listdir(server.data_dir))
    for method in ("GET", "HEAD"):
        st, _, body = hp.request(method, path + "?e=9999999999&s=alice&t=eA&k=1&sig=00",
                                 headers=hp.auth("alice"))
        # 405: a GET on an upload's path ("/media/uploads/..." as sent, never normalised)
        assert st in (400, 403, 404, 405), (method, path, st)
        assert b"token" not in body.lower() or b"code" in body
    st, _, _ = hp.request("PATCH", path, body=b"x", headers=dict(hp.auth("alice"),
                                                                   **{"Upload-Offset": "0"}))
    assert st in (400, 403, 404, 405), (path, st)
    assert sorted(os.listdir(server.data_dir)) == before
    assert staging(server) == [] and objects(server) == []


@pytest.mark.chatd_args("--limit", "media_bytes=1048576")
def test_oversize_upload_is_413_and_leaves_nothing(server):
    hp = Http(server)
    _, _, body = hp.create("alice", MIB + 1, expect=413)
    assert b"too_large" in body
    assert staging(server) == []
    # a body longer than the declared length: refused before a byte is stored
    loc, _, _ = hp.create("alice", 1000)
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               f"{server.token('alice')}\r\nUpload-Offset: 0\r\n"
               f"Content-Length: {2 * MIB}\r\n\r\n").encode())
    s.settimeout(5)
    resp = s.recv(4096)
    s.close()
    assert resp.startswith(b"HTTP/1.1 413"), resp[:100]
    st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert st == 200 and hd["upload-offset"] == "0"
    # at the limit exactly is fine
    data = os.urandom(MIB)
    assert hp.upload("alice", data) == blake(data)


def test_wrong_token_is_401(server):
    hp = Http(server)
    for h in ({}, {"Authorization": "Bearer nope"},
              {"Authorization": "Basic " + b64("alice:pw")},
              {"Authorization": "Bearer " + server.token("alice")[:-2] + "xx"}):
        h = dict(h, **{"Upload-Length": "10"})
        st, hd, body = hp.request("POST", "/media/uploads", headers=h)
        assert st == 401 and hd.get("www-authenticate") == "Bearer", (h, st, body)
    assert staging(server) == []
    loc, _, _ = hp.create("alice", 10)
    st, _, _ = hp.request("PATCH", loc, body=b"0123456789",
                          headers={"Upload-Offset": "0", "Authorization": "Bearer x"})
    assert st == 401
    st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert hd["upload-offset"] == "0"


def test_expired_token_is_401(server):
    hp = Http(server)
    tok = server.token("alice", ttl=1, cache=False)
    time.sleep(1.5)
    st, _, _ = hp.request("POST", "/media/uploads",
                          headers={"Authorization": "Bearer " + tok, "Upload-Length": "5"})
    assert st == 401


def test_someone_elses_upload_session_is_403_and_untouched(server):
    hp = Http(server)
    data = os.urandom(20000)
    loc, _, _ = hp.create("alice", len(data))
    hp.patch("alice", loc, 0, data[:5000])
    st, _, body = hp.patch("mallory", loc, 5000, b"EVIL" * 100)
    assert st == 403 and b"forbidden" in body, (st, body)
    st, _, _ = hp.request("HEAD", loc, headers=hp.auth("mallory"))
    assert st == 403
    st, _, _ = hp.request("DELETE", loc, headers=hp.auth("mallory"))
    assert st == 403
    # alice's own other device may continue it
    st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice", "phone"))
    assert st == 200 and hd["upload-offset"] == "5000"
    st, _, body = hp.patch("alice", loc, 5000, data[5000:])
    assert st == 201 and blake(data) in body.decode()


def test_unknown_upload_is_404(server):
    hp = Http(server)
    st, _, _ = hp.request("HEAD", "/media/uploads/" + "0" * 32, headers=hp.auth("alice"))
    assert st == 404
    st, _, _ = hp.patch("alice", "/media/uploads/" + "0" * 32, 0, b"x")
    assert st == 404


def test_missing_upload_length_is_400(server):
    hp = Http(server)
    st, _, _ = hp.request("POST", "/media/uploads", headers=hp.auth("alice"))
    assert st == 400
    st, _, _ = hp.request("POST", "/media/uploads",
                          headers=dict(hp.auth("alice"), **{"Upload-Length": "-1"}))
    assert st == 400
    assert staging(server) == []


def test_other_http_paths_are_404(server):
    hp = Http(server)
    st, _, _ = hp.request("GET", "/")
    assert st == 404
    st, _, _ = hp.request("GET", "/chat.db")
    assert st == 404


# ---- media in messages, authorization of URLs -----------------------------------------------

def test_media_message_reaches_group_member_who_downloads_it(server):
    hp = Http(server)
    data = os.urandom(2 * MIB + 5)
    a = server.connect("alice")
    b = server.connect("bob")
    d = server.connect("dave")
    mid = hp.upload("alice", data, "holiday.jpg", "image/jpeg")
    # not shared yet: only the uploader may get a URL
    assert_error(b.call({"type": "media_url", "media": mid}), "EPERM", "forbidden")
    g = create_group(a, ["bob", "carol"])
    b.expect("msg", conv=g["conv"])
    media = {"id": mid, "mime": "image/jpeg", "size": len(data), "name": "holiday.jpg",
             "width": 4000, "height": 3000}
    r = a.call({"type": "send", "conv": g["conv"], "cmid": cmid(), "kind": "media",
                "media": media})
    assert r["type"] == "ack", r
    m = b.expect("msg", conv=g["conv"], seq=r["seq"])
    assert m["kind"] == "media" and m["media"] == media, m
    u = media_url(b, mid)
    st, hd, body = hp.request("GET", u["url"])
    assert st == 200 and blake(body) == mid
    # the URL names bob: its scope
    assert parse_qs(urlsplit(u["url"]).query)["s"] == ["bob"]
    # history carries it like any message
    hist = history_all(b, g["conv"])
    assert any(x.get("kind") == "media" and x["media"] == media for x in hist), hist
    # a non-member gets no URL, and cannot share it either
    assert_error(d.call({"type": "media_url", "media": mid}), "EPERM", "forbidden")
    r = d.call({"type": "send", "to": "erin", "cmid": cmid(), "kind": "media", "media": media})
    assert_error(r, "EPERM", "forbidden")
    # a member may forward it to someone else, who may then fetch it
    r = b.call({"type": "send", "to": "dave", "cmid": cmid(), "kind": "media", "media": media})
    assert r["type"] == "ack", r
    d.expect("msg", conv=r["conv"])
    media_url(d, mid)


def test_removed_member_loses_access(server):
    hp = Http(server)
    a = server.connect("alice")
    b = server.connect("bob")
    g = create_group(a, ["bob"])
    mid = hp.upload("alice", os.urandom(1000))
    r = a.call({"type": "send", "conv": g["conv"], "cmid": cmid(), "kind": "media",
                "media": {"id": mid, "mime": "application/octet-stream", "size": 1000,
                          "name": "x"}})
    assert r["type"] == "ack", r
    media_url(b, mid)
    r = a.call({"type": "group_remove", "conv": g["conv"], "users": ["bob"]})
    assert r["type"] == "ok", r
    assert_error(b.call({"type": "media_url", "media": mid}), "EPERM", "forbidden")


def test_media_url_bad_and_unknown_ids(server):
    a = server.connect("alice")
    assert_error(a.call({"type": "media_url", "media": "../etc"}), "EINVAL", "bad_field")
    assert_error(a.call({"type": "media_url"}), "EINVAL", "missing_field")
    assert_error(a.call({"type": "media_url", "media": "0" * 64}), "ENOTFOUND", "not_found")
    r = a.call({"type": "send", "to": "bob", "cmid": cmid(), "kind": "media",
                "media": {"id": "0" * 64, "mime": "image/png", "size": 1, "name": "a"}})
    assert_error(r, "ENOTFOUND", "not_found")


def test_media_url_needs_authentication(server):
    c = server.ws()
    assert_error(c.call({"type": "media_url", "media": "0" * 64}), "EAUTH", "not_authenticated")


@pytest.mark.single_node("--memory: a store of its own, no cluster")
@pytest.mark.chatd_args("--memory")
def test_memory_server_without_blob_store_refuses_media(server):
    hp = Http(server)
    h = dict(hp.auth("alice"), **{"Upload-Length": "5"})
    st, _, body = hp.request("POST", "/media/uploads", headers=h)
    assert st == 503 and b"no_media" in body


@pytest.mark.single_node("--memory: a store of its own, no cluster")
@pytest.mark.chatd_args("--memory")
def test_memory_server_without_blob_store_answers_media_url_enotsup(server):
    a = server.connect("alice")
    assert_error(a.call({"type": "media_url", "media": "0" * 64}), "ENOTSUP", "no_media")
    assert_error(a.call({"type": "media_url", "media": "../etc"}), "EINVAL", "bad_field")


def test_metadata_must_be_utf8_and_printable(server):
    hp = Http(server)
    for raw in (b"\xff\xfe.bin", b"a\nb", b"\xc0\xafx"):
        h = dict(hp.auth("alice"), **{"Upload-Length": "3",
                                      "Upload-Metadata": "name " + base64.b64encode(raw).decode()})
        st, _, body = hp.request("POST", "/media/uploads", headers=h)
        assert st == 400 and b"bad_field" in body, (raw, st, body)
    st, _, body = hp.request("POST", "/media/uploads", headers=dict(
        hp.auth("alice"), **{"Upload-Length": "3", "Upload-Metadata": f"type {b64('no type')}"}))
    assert st == 400, (st, body)
    assert staging(server) == []


def test_keep_alive_connection_serves_several_requests(server):
    hp = Http(server)
    data = os.urandom(100000)
    mid, b = shared_with_bob(server, hp, data)
    url = media_url(b, mid)["url"]
    c = hp.conn()
    for headers, status, want in (({}, 200, data), ({"Range": "bytes=10-19"}, 206, data[10:20]),
                                  ({"If-None-Match": f'"{mid}"'}, 304, b""),
                                  ({}, 200, data)):
        c.request("GET", url, headers=headers)
        r = c.getresponse()
        body = r.read()
        assert r.status == status and body == want, (headers, r.status)
    c.request("HEAD", url)
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    c.request("GET", "/nothing")
    r = c.getresponse()
    r.read()
    assert r.status == 404
    c.close()


@pytest.mark.chatd_args("--media-base-url", "https://cdn.example.invalid/chat/")
def test_media_base_url_prefixes_signed_urls_for_a_cdn(server):
    hp = Http(server)
    data = os.urandom(4000)
    mid = hp.upload("alice", data)
    r = server.connect("alice").call({"type": "media_url", "media": mid})
    assert r["type"] == "media_url", r
    assert r["url"].startswith("https://cdn.example.invalid/chat/media/" + mid + "?"), r
    # the CDN forwards the path below its prefix to the origin unchanged
    path = r["url"][len("https://cdn.example.invalid/chat"):]
    st, hd, body = hp.request("GET", path)
    assert st == 200 and body == data, st


def test_chatd_refuses_a_bad_media_base_url(make_server):
    srv = make_server("--media-base-url", "ftp://x", start=False)
    from conftest import run_cli
    r = run_cli(srv.command()[1:], timeout=10)
    assert r.returncode != 0 and "media base URL" in r.stderr, (r.returncode, r.stderr)


def test_restart_drops_unfinished_uploads_and_their_bytes(server):
    hp = Http(server)
    data = os.urandom(50000)
    mid = hp.upload("alice", data)
    loc, _, _ = hp.create("alice", 10000)
    hp.patch("alice", loc, 0, b"x" * 3000)
    assert len(staging(server)) == 1
    server.restart()
    hp = Http(server)
    assert staging(server) == []
    st, _, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert st == 404
    # finished media and its metadata survive
    st, _, body = hp.request("GET", media_url(server.connect("alice"), mid)["url"])
    assert st == 200 and body == data


@pytest.mark.chatd_args("--limit", "uploads_per_user=2", "--limit", "uploads=3")
def test_unfinished_upload_caps_per_user_and_per_server(server):
    hp = Http(server)
    l1, _, _ = hp.create("alice", 10)
    l2, _, _ = hp.create("alice", 10)
    _, hd, body = hp.create("alice", 10, expect=429)
    assert b"rate_limited" in body and hd["retry-after"]
    # another user is not held back by alice
    l3, _, _ = hp.create("bob", 10)
    _, _, body = hp.create("carol", 10, expect=503)  # the server-wide cap
    st, _, _ = hp.request("DELETE", l1, headers=hp.auth("alice"))
    assert st == 204
    hp.create("alice", 10)
    # finished uploads do not hold slots when room is needed
    for loc, user in ((l2, "alice"), (l3, "bob")):
        st, _, _ = hp.patch(user, loc, 0, os.urandom(10))
        assert st == 201
    hp.create("carol", 10)
    hp.create("carol", 10)


@pytest.mark.parametrize("mime,inline", [("image/jpeg", True), ("video/mp4", True),
                                         ("audio/ogg", True), ("text/html", False),
                                         ("image/svg+xml", False), ("application/pdf", False)])
def test_only_images_video_audio_are_served_inline(server, mime, inline):
    hp = Http(server)
    mid = hp.upload("alice", b"<html><script>alert(1)</script>" + os.urandom(8), mime=mime)
    st, hd, _ = hp.request("GET", media_url(server.connect("alice"), mid)["url"])
    assert st == 200 and hd["content-type"] == mime
    assert hd.get("x-content-type-options") == "nosniff"
    assert ("content-disposition" not in hd) == inline, hd


def test_expect_100_continue(server):
    """A client that waits for the go-ahead gets 100 Continue once the request is accepted, and
    the final refusal instead when it is not (so no body is sent in vain)."""
    hp = Http(server)
    data = os.urandom(300000)
    loc, _, _ = hp.create("alice", len(data))
    for token, first in (("nope", b"HTTP/1.1 401"), (server.token("alice"), b"HTTP/1.1 100")):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.settimeout(5)
        s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                   f"Upload-Offset: 0\r\nContent-Length: {len(data)}\r\n"
                   f"Expect: 100-continue\r\n\r\n").encode())
        resp = s.recv(4096)
        assert resp.startswith(first), resp[:80]
        if first.endswith(b"100"):
            s.sendall(data)
            while b"\r\n\r\n" not in resp.split(b"\r\n\r\n", 1)[1]:
                resp += s.recv(65536)
            final = resp.split(b"\r\n\r\n", 1)[1]
            assert final.startswith(b"HTTP/1.1 201"), final[:80]
        s.close()
    st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert hd["media-id"] == blake(data)


def _read_all(s, timeout=5):
    s.settimeout(timeout)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    return out


@pytest.mark.parametrize("content_length", [True, False])
def test_transfer_encoding_is_refused_and_nothing_is_smuggled(server, content_length):
    """RFC 9112 6.1: a body framed by Transfer-Encoding must never be read by Content-Length.
    The request is answered 400 and the connection closes, so the bytes after its headers (here
    a DELETE of the upload) are never run as a second request."""
    hp = Http(server)
    data = os.urandom(1000)
    loc, _, _ = hp.create("alice", len(data))
    tok = server.token("alice")
    smuggled = (f"DELETE {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                f"Content-Length: 0\r\n\r\n").encode()
    body = b"0\r\n\r\n" + smuggled
    head = (f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
            f"Upload-Offset: 0\r\nTransfer-Encoding: chunked\r\n")
    if content_length:
        head += "Content-Length: 5\r\n"
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(head.encode() + b"\r\n" + body)
    resp = _read_all(s)
    s.close()
    assert resp.startswith(b"HTTP/1.1 400"), resp[:200]
    assert resp.count(b"HTTP/1.1 ") == 1, f"a second request was answered: {resp!r}"
    st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert st == 200 and hd["upload-offset"] == "0", (st, hd)
    st, hd, body = hp.patch("alice", loc, 0, data)  # the upload is intact and completes
    assert st == 201, (st, hd, body)


def test_repeated_upload_length_or_offset_is_400(server):
    """A header that means one number, sent twice, is refused rather than read either way."""
    hp = Http(server)
    tok = server.token("alice")
    for head in (f"POST /media/uploads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
                 "Upload-Length: 10\r\nUpload-Length: 99999999\r\n\r\n",):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(head.encode())
        resp = _read_all(s)
        s.close()
        assert resp.startswith(b"HTTP/1.1 400"), resp[:200]
        assert b"Upload-Length" in resp, resp
    loc, _, _ = hp.create("alice", 10)
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall((f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {tok}\r\n"
               "Upload-Offset: 0\r\nUpload-Offset: 5\r\nContent-Length: 10\r\n\r\n"
               "0123456789").encode())
    resp = _read_all(s)
    s.close()
    assert resp.startswith(b"HTTP/1.1 400"), resp[:200]
    st, hd, _ = hp.request("HEAD", loc, headers=hp.auth("alice"))
    assert st == 200 and hd["upload-offset"] == "0", (st, hd)
    assert staging(server) != [] and objects(server) == []


def test_a_signed_url_has_exactly_one_spelling_of_its_path(server):
    """The path is served as sent: no slash merging or dot segments, so a cache in front never
    holds one object under two URLs."""
    hp = Http(server)
    mid = hp.upload("alice", os.urandom(500))
    url = media_url(server.connect("alice"), mid)["url"]
    st, _, _ = hp.request("GET", url)
    assert st == 200
    for other in (url.replace("/media/", "/media//", 1), url.replace("/media/", "/./media/", 1),
                  url.replace("/media/", "/x/../media/", 1),
                  url.replace("/media/" + mid, "/media/%" + hex(ord(mid[0]))[2:] + mid[1:], 1)):
        st, _, body = hp.request("GET", other)
        assert st in (400, 404), (other, st, body)
