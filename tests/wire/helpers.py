"""Assertion helpers shared by the wire tests."""

import itertools
import re
import time
import urllib.error
import urllib.request

_cmid_counter = itertools.count(1)

MISSING = object()


def cmid(prefix="c"):
    return f"{prefix}-{int(time.time())}-{next(_cmid_counter)}"


def now_ms():
    return int(time.time() * 1000)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def assert_error(frame, code, reason=None, re=MISSING):
    assert frame.get("type") == "error", f"expected error {code}/{reason}, got {frame!r}"
    assert frame.get("code") == code, f"expected code {code}, got {frame!r}"
    if reason is not None:
        assert frame.get("reason") == reason, f"expected reason {reason}, got {frame!r}"
    assert isinstance(frame.get("message"), str), f"error without a message string: {frame!r}"
    if re is not MISSING:
        if re is None:
            assert "re" not in frame, f"error should carry no re: {frame!r}"
        else:
            assert frame.get("re") == re, f"expected re={re!r}: {frame!r}"


def assert_ts(v, slack_ms=60000):
    assert is_int(v), f"timestamp {v!r} is not an integer"
    assert abs(v - now_ms()) < slack_ms, f"timestamp {v} is not near now ({now_ms()})"


def send(c, text="hi", to=None, conv=None, cm=None, **extra):
    """Send a text message; returns the ack (asserted)."""
    f = {"type": "send", "cmid": cm or cmid(), "text": text}
    if to is not None:
        f["to"] = to
    if conv is not None:
        f["conv"] = conv
    f.update(extra)
    r = c.call(f)
    assert r["type"] == "ack", f"send {f!r} answered {r!r}"
    assert r["cmid"] == f["cmid"] and is_int(r["seq"]) and is_int(r["conv"]), r
    return r


def presence_of(frame, user):
    for u in frame.get("users", []):
        if u.get("user") == user:
            return u
    return None


def shows(user, online):
    """Predicate for expect('presence', users=shows('alice', True))."""
    def pred(users):
        return any(u.get("user") == user and u.get("online") is online for u in users)
    return pred


def event_is(kind):
    return lambda ev: isinstance(ev, dict) and ev.get("type") == kind


def create_group(c, members, title="Team", timeout=5.0):
    r = c.call({"type": "group_create", "title": title, "members": list(members)},
               timeout=timeout)
    assert r["type"] == "conv", f"group_create answered {r!r}"
    conv = r["conv"]
    assert conv["kind"] == "group" and conv["title"] == title and conv["role"] == "owner", r
    assert is_int(conv["conv"]), r
    return conv


def history_all(c, conv, page=50, timeout=5.0):
    """All messages with after-paging; asserts page shape."""
    out = []
    after = 0
    for _ in range(10000):
        r = c.call({"type": "history", "conv": conv, "after": after, "limit": page},
                   timeout=timeout)
        assert r["type"] == "history", r
        msgs = r["messages"]
        assert len(msgs) <= page
        out.extend(msgs)
        if not r["more"]:
            return out
        assert msgs, f"more:true with an empty page: {r!r}"
        after = msgs[-1]["seq"]
    raise AssertionError("history paging did not end")


# ---- the admin listener (chatd --admin-listen) ----

ADMIN_RE = re.compile(r"^chatd admin listening on (127\.0\.0\.1:\d+)$")


def admin_addr(srv):
    for _ in range(100):
        for line in srv.stdout_lines:
            m = ADMIN_RE.match(line)
            if m:
                return m.group(1)
        time.sleep(0.05)
    raise AssertionError(f"no admin listener line on stdout: {srv.stdout_lines!r}")


def http(addr, path, method="GET", token=None, timeout=10):
    """(status, body text) of one request to the admin listener."""
    req = urllib.request.Request(f"http://{addr}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def readyz_until(addr, ready, timeout=10.0):
    """Poll /readyz until it says ready (200) or not (anything else), as asked; the last
    (status, body)."""
    deadline = time.monotonic() + timeout
    while True:
        status, body = http(addr, "/readyz")
        if (status == 200) == ready or time.monotonic() > deadline:
            return status, body
        time.sleep(0.02)
