"""Python bindings of the libchat client engine (ctypes, standard library only).

    import libchat
    with libchat.Client("ws://127.0.0.1:7700/", token=tok, cache="alice.db") as c:
        cmid = c.send("hi", to="bob")
        ev = c.wait_for(lambda e: e.type == libchat.EventType.SENT and e.cmid == cmid)
        for ev in c.events(timeout=10):
            print(ev)

Lifetime: a Client owns its chat_client and frees it on close() (or when garbage collected).
Everything it returns (Event, Message, Conv) is a plain Python copy, so objects may be dropped in
any order; a call on a closed Client raises ChatError(ECLOSED).

Errors, as in the C API and the other bindings: every failure, the library's, the server's or a
bad argument's (a string that is not valid Unicode, an id out of range), raises ChatError with
.status (a Status: the chat_status), .code (its number), .name ("EAUTH") and .reason (the detail
libchat or the server gave). Events carry the C getters' fields (chat_event_*), and a failed
one's .error is that same ChatError.

Threads: a Client may be used from several threads (libchat's calls are [any thread]); close()
waits for calls in progress, which are bounded (waits are sliced into short C calls).
"""

import collections
import ctypes
import enum
import json
import os
import threading
import time

from ctypes import byref, c_char_p, c_int, c_int64, c_size_t, c_uint64, c_void_p

from . import _ffi
from ._ffi import lib, library_path

__all__ = ["Client", "ChatError", "Status", "Event", "EventType", "Message", "Conv",
           "MsgStatus", "ConnState", "ConvKind", "Role", "MsgKind", "strerror", "error_name",
           "library_path"]

# ---- codes ------------------------------------------------------------------------------

# The values come from the library itself (chat_error_from_name), never from a copy here.
_CODE_NAMES = ("ERROR", "EINVAL", "ENOMEM", "ENOTFOUND", "EEXISTS", "EBUSY", "EAGAIN", "ECLOSED",
               "EAUTH", "EPERM", "ELIMIT", "EPROTO", "EIO", "ETIMEDOUT", "ENOTSUP", "EVERSION",
               "EMISUSE", "EUSER")
#: chat_status: Status.EAUTH == libchat.EAUTH == CHAT_EAUTH; an IntEnum, so codes compare as ints.
Status = enum.IntEnum("Status", [("OK", 0)] + [(n, lib.chat_error_from_name(n.encode()))
                                               for n in _CODE_NAMES])
Status.__doc__ = "A chat_status (include/chat/errors.h), as the library numbers it."
OK = Status.OK
for _name in _CODE_NAMES:
    globals()[_name] = Status[_name]  # libchat.EAUTH, as before Status existed
del _name


class EventType(enum.IntEnum):
    CONNECTING = 1
    ONLINE = 2
    OFFLINE = 3
    AUTH_FAILED = 4
    SYNCED = 5
    MESSAGE = 6
    SENT = 7
    SEND_FAILED = 8
    RECEIPT = 9
    CONV = 10
    TYPING = 11
    PRESENCE = 12
    HISTORY = 13
    RESULT = 14
    UPDATED = 15
    EXPIRED = 16


class ConnState(enum.IntEnum):
    STOPPED = 0
    OFFLINE = 1
    CONNECTING = 2
    ONLINE = 3
    AUTH_FAILED = 4


class MsgStatus(enum.IntEnum):
    NONE = 0
    SENDING = 1
    SENT = 2
    DELIVERED = 3
    READ = 4
    FAILED = 5


class ConvKind(enum.IntEnum):
    DIRECT = 1
    GROUP = 2


class Role(enum.IntEnum):
    NONE = 0
    MEMBER = 1
    ADMIN = 2
    OWNER = 3


class MsgKind(enum.IntEnum):
    TEXT = 1
    MEDIA = 2
    EVENT = 3
    EDIT = 4
    DELETE = 5
    REACT = 6


def _s(b):
    return b.decode("utf-8", "replace") if b is not None else ""


def strerror(code):
    return _s(lib.chat_strerror(code))


def error_name(code):
    return _s(lib.chat_error_name(code))


def _enum(cls, v):
    try:
        return cls(v)
    except ValueError:
        return v


class ChatError(Exception):
    """Every libchat failure: .status (a Status), .code (its number, negative), .name
    ("EAUTH", chat_error_name), .reason (the detail libchat or the server gave: the C error
    record's message, a failed event's message), .what (the call that failed, or None).
    .message is the reason after the call's name, as str(e) shows it."""

    def __init__(self, code, reason=None, what=None):
        self.code = int(code)
        self.name = error_name(self.code)
        self.reason = reason or strerror(self.code)
        self.what = what
        super().__init__(f"{self.name}: {self.message}")

    @property
    def status(self):
        return _enum(Status, self.code)

    @property
    def message(self):
        return f"{self.what}: {self.reason}" if self.what else self.reason


def _check(rc, what=None):
    if rc >= 0:
        return rc
    info = lib.chat_error_last().contents  # this thread's record, read at once
    reason = _s(info.message) if info.code == rc and info.message else strerror(rc)
    raise ChatError(rc, reason, what)


def _take_string(ptr):
    """Copy a char* that the caller owns, then free it with chat_string_free."""
    if not ptr.value:
        return None
    try:
        return _s(ctypes.string_at(ptr.value))
    finally:
        lib.chat_string_free(ptr)


def _strv(items, what="users"):
    if isinstance(items, (str, bytes, bytearray)):
        raise ChatError(EINVAL, f"{what} must be a list of ids, not one string")
    enc = [_enc(u, f"{what}[{i}]") for i, u in enumerate(items)]
    arr = (c_char_p * max(len(enc), 1))(*enc)
    return arr, len(enc)


def _enc(s, what="a string argument"):
    """UTF-8 bytes of s (str, or bytes that are UTF-8): anything else is ChatError(EINVAL),
    never a string the library or the server would refuse later, or a crash."""
    if isinstance(s, str):
        try:
            return s.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ChatError(EINVAL, f"{what} is not valid Unicode ({e.reason} at {e.start})") \
                from None
    if isinstance(s, (bytes, bytearray)):
        try:
            bytes(s).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ChatError(EINVAL, f"{what} is not UTF-8 ({e.reason} at {e.start})") from None
        return bytes(s)
    raise ChatError(EINVAL, f"{what} must be str or bytes, not {type(s).__name__}")


def _path(p):
    """A file path for the C API: the OS's bytes for it (str, bytes or a PathLike)."""
    try:
        return os.fsencode(p)
    except TypeError:
        raise ChatError(EINVAL, f"a path must be str, bytes or os.PathLike, not "
                        f"{type(p).__name__}") from None


def _conv_id(conv):
    """A conversation id (chat_conv_id, int64_t) for ctypes, which would silently wrap an
    out-of-range int into another conversation's id."""
    if isinstance(conv, bool) or not isinstance(conv, int):
        try:
            conv = int(conv)
        except (TypeError, ValueError):
            raise ChatError(EINVAL, f"conv {conv!r}: not a conversation id") from None
    v = conv
    if not 0 < v < 2 ** 63:
        raise ChatError(EINVAL, f"conv {v}: not a conversation id (1..2^63-1)")
    return v


# ---- value objects (plain copies; no C memory behind them) ------------------------------

class Event:
    """One client event, copied out of a chat_event (freed right after)."""

    __slots__ = ("type", "conv", "seq", "ts_ms", "user", "device", "cmid", "kind", "text",
                 "json", "code", "message", "request", "delivered", "read", "active",
                 "last_seen_ms", "retry_ms", "count", "more")

    @classmethod
    def _from_c(cls, ev):
        e = cls.__new__(cls)
        e.type = _enum(EventType, lib.chat_event_type(ev))
        e.conv = lib.chat_event_conv(ev)
        e.seq = lib.chat_event_seq(ev)
        e.ts_ms = lib.chat_event_ts_ms(ev)
        e.user = _s(lib.chat_event_user(ev))
        e.device = _s(lib.chat_event_device(ev))
        e.cmid = _s(lib.chat_event_cmid(ev))
        e.kind = _enum(MsgKind, lib.chat_event_kind(ev))
        n = c_size_t(0)
        p = lib.chat_event_text(ev, byref(n))
        e.text = ctypes.string_at(p, n.value).decode("utf-8", "replace") if p else ""
        e.json = _s(lib.chat_event_json(ev))
        e.code = lib.chat_event_code(ev)
        e.message = _s(lib.chat_event_message(ev))
        e.request = lib.chat_event_request(ev)
        e.delivered = lib.chat_event_delivered(ev)
        e.read = lib.chat_event_read(ev)
        e.active = bool(lib.chat_event_active(ev))
        e.last_seen_ms = lib.chat_event_last_seen_ms(ev)
        e.retry_ms = lib.chat_event_retry_ms(ev)
        e.count = lib.chat_event_count(ev)
        e.more = bool(lib.chat_event_more(ev))
        return e

    @property
    def error(self):
        """ChatError for a failed RESULT/HISTORY/SEND_FAILED/OFFLINE event, else None."""
        return ChatError(self.code, self.message or None) if self.code < 0 else None

    @property
    def reason(self):
        """The detail of a failed event (its message), as ChatError.reason."""
        return self.message

    def __repr__(self):
        name = self.type.name if isinstance(self.type, EventType) else self.type
        fields = []
        for k in ("conv", "seq", "user", "cmid", "text", "code", "message", "request",
                  "delivered", "read", "active"):
            v = getattr(self, k)
            if v not in (0, "", False):
                fields.append(f"{k}={v!r}")
        return f"<Event {name} {' '.join(fields)}>"


class Message:
    """A cached message as it is now: .edited_ms (0: never edited), .deleted (a tombstone),
    .expires_ms, .reply_to and .thread (seqs, 0: none), .reactions ({emoji: [users]})."""
    __slots__ = ("conv", "seq", "ts_ms", "sender", "cmid", "kind", "text", "json", "status",
                 "delivered_count", "read_count", "others", "edited_ms", "deleted",
                 "expires_ms", "reply_to", "thread", "reactions")

    def __repr__(self):
        return (f"<Message conv={self.conv} seq={self.seq} from={self.sender!r} "
                f"status={self.status.name if isinstance(self.status, MsgStatus) else self.status}"
                f" text={self.text!r}>")


class History(list):
    """A list of Message with .complete (1 when the range is whole) and .request (the id of
    the HISTORY event that follows when it is not, else 0)."""
    complete = True
    request = 0


class Conv:
    __slots__ = ("id", "kind", "title", "peer", "role", "head", "read", "unread",
                 "member_count", "muted_until")

    @property
    def name(self):
        return self.peer if self.kind == ConvKind.DIRECT else self.title

    def __repr__(self):
        return f"<Conv {self.id} {self.name!r} unread={self.unread}>"


def _msg_list(l):
    out = History()
    out.complete = bool(lib.chat_msg_list_complete(l))
    for i in range(lib.chat_msg_list_count(l)):
        m = Message()
        m.conv = lib.chat_msg_list_conv(l, i)
        m.seq = lib.chat_msg_list_seq(l, i)
        m.ts_ms = lib.chat_msg_list_ts_ms(l, i)
        m.sender = _s(lib.chat_msg_list_from(l, i))
        m.cmid = _s(lib.chat_msg_list_cmid(l, i))
        m.kind = _enum(MsgKind, lib.chat_msg_list_kind(l, i))
        n = c_size_t(0)
        p = lib.chat_msg_list_text(l, i, byref(n))
        m.text = ctypes.string_at(p, n.value).decode("utf-8", "replace") if p else ""
        m.json = _s(lib.chat_msg_list_json(l, i))
        m.status = _enum(MsgStatus, lib.chat_msg_list_status(l, i))
        m.delivered_count = lib.chat_msg_list_delivered_count(l, i)
        m.read_count = lib.chat_msg_list_read_count(l, i)
        m.others = lib.chat_msg_list_others(l, i)
        m.edited_ms = lib.chat_msg_list_edited_ms(l, i)
        m.deleted = bool(lib.chat_msg_list_deleted(l, i))
        m.expires_ms = lib.chat_msg_list_expires_ms(l, i)
        m.reply_to = lib.chat_msg_list_reply_to(l, i)
        m.thread = lib.chat_msg_list_thread(l, i)
        r = _s(lib.chat_msg_list_reactions(l, i))
        m.reactions = {g["emoji"]: g["users"] for g in json.loads(r)} if r else {}
        out.append(m)
    return out


# ---- the client -------------------------------------------------------------------------

_SLICE_MS = 100  # longest single blocking C call; bounds how long close() may wait


class Client:
    """A libchat client: Client(server, token=... | user=, password=, device=, cache=None).

    start=True starts the loop thread at once. backoff=(base_ms, max_ms) and
    heartbeat=(interval_ms, timeout_ms) tune reconnects. ca_file= trusts the CAs of that PEM
    file for a wss:// server instead of the system's, for the connection and for media
    transfers over https. Use as a context manager, or call close().
    """

    def __init__(self, server, token=None, *, user=None, password=None, device=None,
                 cache=None, backoff=None, heartbeat=None, auto_delivered=True, start=True,
                 ca_file=None):
        self._h = None
        self._closed = False
        self._cond = threading.Condition()
        self._inflight = 0
        self._backlog = collections.deque()
        cfg = c_void_p()
        _check(lib.chat_client_config_new(byref(cfg)), "config")
        try:
            _check(lib.chat_client_config_set_server(cfg, _enc(server, "server")), "server")
            if token is not None:
                _check(lib.chat_client_config_set_token(cfg, _enc(token, "token")), "token")
            elif user is not None:
                _check(lib.chat_client_config_set_login(cfg, _enc(user, "user"),
                                                        _enc(password or "", "password"),
                                                        _enc(device or "python", "device")),
                       "login")
            if cache is not None:
                _check(lib.chat_client_config_set_cache_path(cfg, _path(cache)), "cache")
            if ca_file is not None:
                _check(lib.chat_client_config_set_ca_file(cfg, _path(ca_file)), "ca_file")
            if backoff is not None:
                _check(lib.chat_client_config_set_backoff(cfg, int(backoff[0]),
                                                          int(backoff[1])), "backoff")
            if heartbeat is not None:
                _check(lib.chat_client_config_set_heartbeat(cfg, int(heartbeat[0]),
                                                            int(heartbeat[1])), "heartbeat")
            _check(lib.chat_client_config_set_auto_delivered(cfg, 1 if auto_delivered else 0))
            h = c_void_p()
            _check(lib.chat_client_new(byref(h), cfg))
            self._h = h
        finally:
            lib.chat_client_config_free(cfg)
        if start:
            self.start()

    # -- lifetime --

    def _enter(self):
        with self._cond:
            if self._closed or self._h is None:
                raise ChatError(ECLOSED, "the Client is closed")
            self._inflight += 1
            return self._h

    def _leave(self):
        with self._cond:
            self._inflight -= 1
            if self._inflight == 0:
                self._cond.notify_all()

    def _call(self, fn, *args, what=None):
        h = self._enter()
        try:
            return _check(fn(h, *args), what)
        finally:
            self._leave()

    def _call_out(self, fn, out, *args, what=None):
        """fn(out, handle, *args): for the out-first calls."""
        h = self._enter()
        try:
            return _check(fn(out, h, *args), what)
        finally:
            self._leave()

    @property
    def closed(self):
        return self._closed

    def start(self):
        self._call(lib.chat_client_start, what="start")

    def stop(self):
        self._call(lib.chat_client_stop, what="stop")

    def close(self):
        """Stop and free the client (idempotent). Waits for calls in progress on other threads."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            while self._inflight:
                self._cond.wait()
            h, self._h = self._h, None
        if h is not None:
            lib.chat_client_free(h)
        self._backlog.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- connection --

    @property
    def state(self):
        if self._closed:
            return ConnState.STOPPED
        h = self._enter()
        try:
            return _enum(ConnState, lib.chat_client_state(h))
        finally:
            self._leave()

    def reconnect_now(self):
        self._call(lib.chat_client_reconnect_now)

    def disconnect(self):
        self._call(lib.chat_client_disconnect)

    def set_token(self, token):
        self._call(lib.chat_client_set_token, _enc(token, "token"), what="set_token")

    @property
    def user(self):
        out = c_void_p()
        self._call_out(lib.chat_client_user, byref(out))
        return _take_string(out)

    @property
    def token(self):
        out = c_void_p()
        self._call_out(lib.chat_client_token, byref(out))
        return _take_string(out)

    # -- sending --

    def send(self, text, conv=None, *, to=None):
        """Queue text in the outbox for conv (an id) or to (a user); returns the cmid."""
        if (conv is None) == (to is None):
            raise ChatError(EINVAL, "send needs exactly one of conv and to")
        data = _enc(text, "text")
        out = c_void_p()
        if to is not None:
            self._call_out(lib.chat_client_send_text_to, byref(out), _enc(to, "to"), data,
                           len(data),
                           what="send")
        else:
            self._call_out(lib.chat_client_send_text, byref(out), _conv_id(conv), data, len(data),
                           what="send")
        return _take_string(out)

    def reply(self, conv, text, *, reply_to=0, thread=0):
        """Queue text in the outbox for conv as a reply to seq reply_to and/or in the thread of
        root seq thread; returns the cmid."""
        data = _enc(text)
        out = c_void_p()
        self._call_out(lib.chat_client_send_reply, byref(out), _conv_id(conv), int(reply_to),
                       int(thread), data, len(data), what="reply")
        return _take_string(out)

    # -- changes to sent messages, timers, search (each returns a request id; one RESULT
    #    event completes it: Client.request(id) waits for it) --

    def _req(self, fn, *args):
        req = c_uint64(0)
        self._call_out(fn, byref(req), *args)
        return req.value

    def edit(self, conv, seq, text):
        data = _enc(text)
        return self._req(lib.chat_client_edit, _conv_id(conv), int(seq), data, len(data))

    def delete(self, conv, seq):
        """Delete message seq of conv for everyone."""
        return self._req(lib.chat_client_delete, _conv_id(conv), int(seq))

    def react(self, conv, seq, emoji, on=True):
        return self._req(lib.chat_client_react, _conv_id(conv), int(seq), _enc(emoji),
                         1 if on else 0)

    def set_timer(self, conv, ttl_ms):
        """Disappearing messages in conv: those sent from now on expire after ttl_ms (0: off)."""
        return self._req(lib.chat_client_set_timer, _conv_id(conv), int(ttl_ms))

    def mark_thread_read(self, conv, root, seq):
        return self._req(lib.chat_client_mark_thread_read, _conv_id(conv), int(root), int(seq))

    def thread(self, conv, root, after=0, limit=50):
        """A page of a thread from the server: the RESULT's json (root, unread, messages)."""
        return self._req(lib.chat_client_thread, _conv_id(conv), int(root), int(after), int(limit))

    def search(self, query, conv=0, before=0, limit=20):
        """Search the server; the RESULT's json is {"messages", "more", "cursor"}."""
        return self._req(lib.chat_client_search, _enc(query), _conv_id(conv) if conv else 0, int(before),
                         int(limit))

    def search_local(self, query, conv=0, limit=50):
        """Search the cache (offline): a list of Message, most recently cached first."""
        return self._list(lib.chat_client_search_local, _enc(query), _conv_id(conv) if conv else 0, int(limit))

    # -- media (doc/media.md) --

    @staticmethod
    def _progress(progress, box):
        """A C progress callback around progress(done, total); an exception aborts the
        transfer (the C call returns CHAT_EUSER) and is re-raised by the caller."""
        if progress is None:
            return ctypes.cast(None, _ffi.PROGRESS_CB)

        def cb(done, total, _ud):
            try:
                progress(done, total)
                return 0
            except BaseException as e:  # noqa: B902 - handed back to the caller
                box.append(e)
                return 1
        return _ffi.PROGRESS_CB(cb)

    def upload_file(self, path, mime=None, progress=None):
        """Upload the file at path over HTTP, HTTPS for a wss:// server (blocking); returns
        its media id (a server certificate not trusted: ChatError EIO). progress(done,
        total) is called as bytes go out; an exception from it aborts, and calling again
        with the same file resumes where the server stands."""
        box = []
        cb = self._progress(progress, box)
        out = c_void_p()
        h = self._enter()
        try:
            rc = lib.chat_client_upload_file(byref(out), h, _path(path),
                                             _enc(mime, "mime") if mime else None, cb, None)
        finally:
            self._leave()
        if box:
            raise box[0]
        _check(rc, "upload")
        return _take_string(out)

    def send_media(self, media, conv=None, *, to=None):
        """Queue a media message; media is the protocol's media object (a dict with id, mime,
        size, name, and optionally width, height, duration_ms). Returns the cmid."""
        if (conv is None) == (to is None):
            raise ChatError(EINVAL, "send_media needs exactly one of conv and to")
        js = _enc(json.dumps(media))
        out = c_void_p()
        if to is not None:
            self._call_out(lib.chat_client_send_media_to, byref(out), _enc(to, "to"), js,
                           what="send_media")
        else:
            self._call_out(lib.chat_client_send_media, byref(out), _conv_id(conv), js,
                           what="send_media")
        return _take_string(out)

    def media_url(self, media_id, timeout=10.0):
        """A signed download URL of media_id: the server's answer as a dict (url, expires,
        mime, size, name). Raises ChatError (EPERM, ENOTFOUND, ECLOSED when offline)."""
        req = c_uint64(0)
        self._call_out(lib.chat_client_media_url, byref(req), _enc(media_id, "media_id"),
                       what="media_url")
        ev = self.request(req.value, timeout=timeout)
        return json.loads(ev.json)

    def download(self, media_id, path, progress=None, url=None):
        """Download media_id into path (blocking), checking its hash; url defaults to a fresh
        media_url(). A path + ".part" left by an interrupted download is continued."""
        if url is None:
            url = self.media_url(media_id)["url"]
        box = []
        cb = self._progress(progress, box)
        h = self._enter()
        try:
            rc = lib.chat_client_download(h, _enc(url, "url"),
                                          _enc(media_id, "media_id") if media_id else None,
                                          _path(path), cb, None)
        finally:
            self._leave()
        if box:
            raise box[0]
        _check(rc, "download")
        return os.fspath(path)

    def outbox_count(self):
        n = c_size_t(0)
        self._call_out(lib.chat_client_outbox_count, byref(n))
        return n.value

    def outbox(self):
        return self._list(lib.chat_client_outbox)

    def mark_read(self, conv, seq):
        self._call(lib.chat_client_mark_read, _conv_id(conv), int(seq), what="mark_read")

    def typing(self, conv, active=True):
        self._call(lib.chat_client_typing, _conv_id(conv), 1 if active else 0, what="typing")

    def presence_query(self, users):
        """Returns the request id; PRESENCE events then one RESULT follow."""
        arr, n = _strv(users)
        req = c_uint64(0)
        self._call_out(lib.chat_client_presence_query, byref(req), arr, n, what="presence")
        return req.value

    # -- groups (each returns a request id; one RESULT event completes it) --

    def group_create(self, title, members, cmid=None):
        """Create a group; with cmid (kept by the caller) a repeated call answers the same one."""
        arr, n = _strv(members, "members")
        req = c_uint64(0)
        self._call_out(lib.chat_client_group_create_id, byref(req),
                       None if cmid is None else _enc(cmid, "cmid"), _enc(title, "title"), arr, n)
        return req.value

    def group_add(self, conv, users):
        arr, n = _strv(users)
        req = c_uint64(0)
        self._call_out(lib.chat_client_group_add, byref(req), _conv_id(conv), arr, n)
        return req.value

    def group_remove(self, conv, users):
        arr, n = _strv(users)
        req = c_uint64(0)
        self._call_out(lib.chat_client_group_remove, byref(req), _conv_id(conv), arr, n)
        return req.value

    def group_leave(self, conv):
        req = c_uint64(0)
        self._call_out(lib.chat_client_group_leave, byref(req), _conv_id(conv))
        return req.value

    def group_rename(self, conv, title):
        req = c_uint64(0)
        self._call_out(lib.chat_client_group_rename, byref(req), _conv_id(conv),
                       _enc(title, "title"))
        return req.value

    def push_register(self, platform, token, *, topic=None, sandbox=False):
        """Register this device for push ("apns" or "fcm"); kept and resent at every connect."""
        req = c_uint64(0)
        self._call_out(lib.chat_client_push_register, byref(req), _enc(platform), _enc(token),
                       _enc(topic) if topic else None, 1 if sandbox else 0, what="push")
        return req.value

    def push_unregister(self):
        req = c_uint64(0)
        self._call_out(lib.chat_client_push_unregister, byref(req), what="push")
        return req.value

    def mute(self, conv, until_ms=None):
        """Mute conv until until_ms (None: until unmuted); unmute(conv) ends it."""
        req = c_uint64(0)
        until = (1 << 63) - 1 if until_ms is None else int(until_ms)
        self._call_out(lib.chat_client_mute, byref(req), int(conv), until, what="mute")
        return req.value

    def unmute(self, conv):
        return self.mute(conv, 0)

    def group_set_role(self, conv, user, role):
        req = c_uint64(0)
        self._call_out(lib.chat_client_group_set_role, byref(req), _conv_id(conv),
                       _enc(user, "user"), int(role))
        return req.value

    def request(self, req, timeout=10.0):
        """Wait for the RESULT/HISTORY of request id req; returns it, raises its ChatError."""
        ev = self.wait_for(lambda e: e.type in (EventType.RESULT, EventType.HISTORY)
                           and e.request == req, timeout=timeout)
        if ev.code < 0:
            raise ev.error
        return ev

    # -- the cache --

    def convs(self):
        l = c_void_p()
        self._call_out(lib.chat_client_convs, byref(l), what="convs")
        try:
            out = []
            for i in range(lib.chat_conv_list_count(l)):
                c = Conv()
                c.id = lib.chat_conv_list_id(l, i)
                c.kind = _enum(ConvKind, lib.chat_conv_list_kind(l, i))
                c.title = _s(lib.chat_conv_list_title(l, i))
                c.peer = _s(lib.chat_conv_list_peer(l, i))
                c.role = _enum(Role, lib.chat_conv_list_role(l, i))
                c.head = lib.chat_conv_list_head(l, i)
                c.read = lib.chat_conv_list_read(l, i)
                c.unread = lib.chat_conv_list_unread(l, i)
                c.member_count = lib.chat_conv_list_member_count(l, i)
                c.muted_until = lib.chat_conv_list_muted_until(l, i)
                out.append(c)
            return out
        finally:
            lib.chat_conv_list_free(l)

    def _list(self, fn, *args):
        l = c_void_p()
        self._call_out(fn, byref(l), *args)
        try:
            return _msg_list(l)
        finally:
            lib.chat_msg_list_free(l)

    def history(self, conv, before=0, limit=50, wait=None):
        """Messages of conv below seq `before` (0: newest), ascending, from the cache.

        Returns a History (a list) with .complete and .request. With wait=SECONDS, an
        incomplete answer waits for the fetch's HISTORY event and asks again.
        """
        deadline = None if wait is None else time.monotonic() + wait
        while True:
            l = c_void_p()
            req = c_uint64(0)
            h = self._enter()
            try:
                _check(lib.chat_client_history(byref(l), byref(req), h, _conv_id(conv), int(before),
                                               int(limit)), "history")
            finally:
                self._leave()
            try:
                out = _msg_list(l)
            finally:
                lib.chat_msg_list_free(l)
            out.request = req.value
            if out.complete or not req.value or deadline is None:
                return out
            self.request(req.value, timeout=max(0.0, deadline - time.monotonic()))
            deadline = None  # one refetch

    def message_status(self, cmid):
        """(MsgStatus, conv, seq) of my message cmid."""
        st, conv, seq = c_int(0), c_int64(0), c_uint64(0)
        h = self._enter()
        try:
            _check(lib.chat_client_message_status(byref(st), byref(conv), byref(seq), h,
                                                  _enc(cmid, "cmid")), "message_status")
        finally:
            self._leave()
        return _enum(MsgStatus, st.value), conv.value, seq.value

    def message_receipts(self, conv, seq):
        """(delivered, read, others) counts of message (conv, seq)."""
        d, r, o = c_size_t(0), c_size_t(0), c_size_t(0)
        h = self._enter()
        try:
            _check(lib.chat_client_message_receipts(byref(d), byref(r), byref(o), h, _conv_id(conv),
                                                    int(seq)), "message_receipts")
        finally:
            self._leave()
        return d.value, r.value, o.value

    # -- events --

    def fileno(self):
        """The event queue's fd (readable while events are queued), for select/poll."""
        h = self._enter()
        try:
            return _check(lib.chat_client_event_fd(h))
        finally:
            self._leave()

    def _pop(self, timeout_ms):
        """One event from the C queue within timeout_ms (0: no wait), or None."""
        h = self._enter()
        try:
            ev = c_void_p()
            if timeout_ms <= 0:
                rc = lib.chat_client_next_event(byref(ev), h)
                if rc == EAGAIN:
                    return None
            else:
                rc = lib.chat_client_wait_event(byref(ev), h, int(timeout_ms))
                if rc == ETIMEDOUT:
                    return None
            _check(rc, "event queue")
            try:
                return Event._from_c(ev)
            finally:
                lib.chat_event_free(ev)
        finally:
            self._leave()

    def wait_event(self, timeout=None):
        """The next event, waiting up to timeout seconds (None: no limit); None on timeout.
        Raises ChatError(ECLOSED) once the Client is closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._closed:
                raise ChatError(ECLOSED, "the Client is closed")
            if self._backlog:
                try:
                    return self._backlog.popleft()
                except IndexError:
                    pass
            left_ms = _SLICE_MS
            if deadline is not None:
                left_ms = min(_SLICE_MS, int((deadline - time.monotonic()) * 1000))
            ev = self._pop(left_ms)
            if ev is not None:
                return ev
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def next_event(self):
        """The next event without waiting, or None."""
        return self.wait_event(timeout=0)

    def events(self, timeout=None):
        """Iterate over events until timeout seconds have passed (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return
            ev = self.wait_event(left)
            if ev is None:
                return
            yield ev

    def wait_for(self, predicate=None, timeout=10.0, *, type=None):
        """Wait for the first event matching type and/or predicate(ev); returns it. Events
        that do not match are kept, in order, for the next wait_event/events/wait_for.
        Raises ChatError(ETIMEDOUT) when none comes within timeout seconds."""
        def ok(e):
            return (type is None or e.type == type) and (predicate is None or predicate(e))

        skipped = []
        for i, e in enumerate(self._backlog):
            if ok(e):
                del self._backlog[i]
                return e
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ChatError(ETIMEDOUT, f"no matching event within {timeout}s")
                if self._closed:
                    raise ChatError(ECLOSED, "the Client is closed")
                ev = self._pop(min(_SLICE_MS, max(1, int(left * 1000))))
                if ev is None:
                    continue
                if ok(ev):
                    return ev
                skipped.append(ev)
        finally:
            self._backlog.extend(skipped)

    def drain(self):
        """Drop every queued event; returns how many."""
        n = len(self._backlog)
        self._backlog.clear()
        while self._pop(0) is not None:
            n += 1
        return n

    def __repr__(self):
        return f"<libchat.Client {'closed' if self._closed else self.state.name}>"
