"""ctypes declarations of libchat's client API (include/chat/client.h, errors.h, common.h).

The library is found, in order, at $LIBCHAT_PATH (the .so itself or a directory holding
libchat.so); for a copy installed by meson, at the path of the libchat installed with it and
then as libchat.so.0 through the dynamic loader; for the source tree, in the build tree next to
this package (build/lib of the checkout); last through ctypes.util.find_library("chat").
"""

import ctypes
import ctypes.util
import os

from ctypes import (CFUNCTYPE, POINTER, byref, c_char_p, c_int, c_int64, c_size_t, c_uint64,
                    c_void_p, Structure)

__all__ = ["lib", "library_path", "byref", "PROGRESS_CB"]

# chat_progress_cb: int (*)(uint64_t done, uint64_t total, void *user_data)
PROGRESS_CB = CFUNCTYPE(c_int, c_uint64, c_uint64, c_void_p)


class ErrorInfo(Structure):
    _fields_ = [("code", c_int), ("message", c_char_p), ("backend_code", c_int)]


def _candidates():
    env = os.environ.get("LIBCHAT_PATH")
    if env:
        if os.path.isdir(env):
            yield os.path.join(env, "libchat.so")
        else:
            yield env
        return  # an explicit path is not second-guessed
    try:
        from . import _installed  # written by meson install
    except ImportError:
        _installed = None
    if _installed is not None:
        yield _installed.LIBRARY
        yield "libchat.so.0"  # the loader's search (LD_LIBRARY_PATH, ldconfig's cache)
    else:
        here = os.path.dirname(os.path.abspath(__file__))
        root = os.path.normpath(os.path.join(here, "..", "..", ".."))
        for build in ("build", "builddir", "_build"):
            yield os.path.join(root, build, "lib", "libchat.so")
    found = ctypes.util.find_library("chat")
    if found:
        yield found


def _load():
    errors = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            errors.append(f"{path}: not found")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(f"{path}: {e}")
    raise ImportError("libchat: cannot load libchat.so (set LIBCHAT_PATH): " +
                      ("; ".join(errors) or "no candidate"))


lib, library_path = _load()

_p = c_void_p            # opaque handles
_pp = POINTER(c_void_p)  # chat_x **out
_str = c_char_p          # borrowed const char *
_strarr = POINTER(c_char_p)
_conv = c_int64          # chat_conv_id

_PROTOS = {
    # errors / common
    "chat_strerror": (_str, [c_int]),
    "chat_error_name": (_str, [c_int]),
    "chat_error_from_name": (c_int, [_str]),
    "chat_error_last": (POINTER(ErrorInfo), []),
    "chat_string_free": (None, [c_void_p]),
    # config
    "chat_client_config_new": (c_int, [_pp]),
    "chat_client_config_free": (None, [_p]),
    "chat_client_config_set_server": (c_int, [_p, _str]),
    "chat_client_config_set_token": (c_int, [_p, _str]),
    "chat_client_config_set_login": (c_int, [_p, _str, _str, _str]),
    "chat_client_config_set_cache_path": (c_int, [_p, _str]),
    "chat_client_config_set_ca_file": (c_int, [_p, _str]),
    "chat_client_config_set_backoff": (c_int, [_p, c_int64, c_int64]),
    "chat_client_config_set_heartbeat": (c_int, [_p, c_int64, c_int64]),
    "chat_client_config_set_auto_delivered": (c_int, [_p, c_int]),
    # lifecycle
    "chat_client_new": (c_int, [_pp, _p]),
    "chat_client_start": (c_int, [_p]),
    "chat_client_stop": (c_int, [_p]),
    "chat_client_free": (None, [_p]),
    "chat_client_state": (c_int, [_p]),
    "chat_client_reconnect_now": (c_int, [_p]),
    "chat_client_set_token": (c_int, [_p, _str]),
    "chat_client_disconnect": (c_int, [_p]),
    "chat_client_user": (c_int, [_pp, _p]),
    "chat_client_token": (c_int, [_pp, _p]),
    # sending
    "chat_client_send_text": (c_int, [_pp, _p, _conv, _str, c_size_t]),
    "chat_client_send_text_to": (c_int, [_pp, _p, _str, _str, c_size_t]),
    "chat_client_outbox_count": (c_int, [POINTER(c_size_t), _p]),
    "chat_client_send_reply": (c_int, [_pp, _p, _conv, c_uint64, c_uint64, _str, c_size_t]),
    # the message lifecycle, search
    "chat_client_edit": (c_int, [POINTER(c_uint64), _p, _conv, c_uint64, _str, c_size_t]),
    "chat_client_delete": (c_int, [POINTER(c_uint64), _p, _conv, c_uint64]),
    "chat_client_react": (c_int, [POINTER(c_uint64), _p, _conv, c_uint64, _str, c_int]),
    "chat_client_set_timer": (c_int, [POINTER(c_uint64), _p, _conv, c_int64]),
    "chat_client_mark_thread_read": (c_int, [POINTER(c_uint64), _p, _conv, c_uint64,
                                             c_uint64]),
    "chat_client_thread": (c_int, [POINTER(c_uint64), _p, _conv, c_uint64, c_uint64, c_int]),
    "chat_client_search": (c_int, [POINTER(c_uint64), _p, _str, _conv, c_uint64, c_int]),
    "chat_client_search_local": (c_int, [_pp, _p, _str, _conv, c_int]),
    # media
    "chat_client_upload_file": (c_int, [_pp, _p, _str, _str, PROGRESS_CB, c_void_p]),
    "chat_client_send_media": (c_int, [_pp, _p, _conv, _str]),
    "chat_client_send_media_to": (c_int, [_pp, _p, _str, _str]),
    "chat_client_media_url": (c_int, [POINTER(c_uint64), _p, _str]),
    "chat_client_download": (c_int, [_p, _str, _str, _str, PROGRESS_CB, c_void_p]),
    # receipts, typing, presence
    "chat_client_mark_read": (c_int, [_p, _conv, c_uint64]),
    "chat_client_typing": (c_int, [_p, _conv, c_int]),
    "chat_client_presence_query": (c_int, [POINTER(c_uint64), _p, _strarr, c_size_t]),
    # groups
    "chat_client_group_create": (c_int, [POINTER(c_uint64), _p, _str, _strarr, c_size_t]),
    "chat_client_group_create_id": (c_int, [POINTER(c_uint64), _p, _str, _str, _strarr,
                                            c_size_t]),
    "chat_client_group_add": (c_int, [POINTER(c_uint64), _p, _conv, _strarr, c_size_t]),
    "chat_client_group_remove": (c_int, [POINTER(c_uint64), _p, _conv, _strarr, c_size_t]),
    "chat_client_group_leave": (c_int, [POINTER(c_uint64), _p, _conv]),
    "chat_client_group_rename": (c_int, [POINTER(c_uint64), _p, _conv, _str]),
    "chat_client_group_set_role": (c_int, [POINTER(c_uint64), _p, _conv, _str, c_int]),
    # push
    "chat_client_push_register": (c_int, [POINTER(c_uint64), _p, _str, _str, _str, c_int]),
    "chat_client_push_unregister": (c_int, [POINTER(c_uint64), _p]),
    "chat_client_mute": (c_int, [POINTER(c_uint64), _p, _conv, c_int64]),
    # conversation list
    "chat_client_convs": (c_int, [_pp, _p]),
    "chat_conv_list_count": (c_size_t, [_p]),
    "chat_conv_list_id": (_conv, [_p, c_size_t]),
    "chat_conv_list_kind": (c_int, [_p, c_size_t]),
    "chat_conv_list_title": (_str, [_p, c_size_t]),
    "chat_conv_list_peer": (_str, [_p, c_size_t]),
    "chat_conv_list_role": (c_int, [_p, c_size_t]),
    "chat_conv_list_head": (c_uint64, [_p, c_size_t]),
    "chat_conv_list_read": (c_uint64, [_p, c_size_t]),
    "chat_conv_list_unread": (c_uint64, [_p, c_size_t]),
    "chat_conv_list_member_count": (c_size_t, [_p, c_size_t]),
    "chat_conv_list_muted_until": (c_int64, [_p, c_size_t]),
    "chat_conv_list_free": (None, [_p]),
    # message lists
    "chat_client_history": (c_int, [_pp, POINTER(c_uint64), _p, _conv, c_uint64, c_int]),
    "chat_client_outbox": (c_int, [_pp, _p]),
    "chat_msg_list_count": (c_size_t, [_p]),
    "chat_msg_list_complete": (c_int, [_p]),
    "chat_msg_list_conv": (_conv, [_p, c_size_t]),
    "chat_msg_list_seq": (c_uint64, [_p, c_size_t]),
    "chat_msg_list_ts_ms": (c_int64, [_p, c_size_t]),
    "chat_msg_list_from": (_str, [_p, c_size_t]),
    "chat_msg_list_cmid": (_str, [_p, c_size_t]),
    "chat_msg_list_kind": (c_int, [_p, c_size_t]),
    "chat_msg_list_text": (c_void_p, [_p, c_size_t, POINTER(c_size_t)]),
    "chat_msg_list_json": (_str, [_p, c_size_t]),
    "chat_msg_list_status": (c_int, [_p, c_size_t]),
    "chat_msg_list_delivered_count": (c_size_t, [_p, c_size_t]),
    "chat_msg_list_read_count": (c_size_t, [_p, c_size_t]),
    "chat_msg_list_others": (c_size_t, [_p, c_size_t]),
    "chat_msg_list_edited_ms": (c_int64, [_p, c_size_t]),
    "chat_msg_list_deleted": (c_int, [_p, c_size_t]),
    "chat_msg_list_expires_ms": (c_int64, [_p, c_size_t]),
    "chat_msg_list_reply_to": (c_uint64, [_p, c_size_t]),
    "chat_msg_list_thread": (c_uint64, [_p, c_size_t]),
    "chat_msg_list_reactions": (_str, [_p, c_size_t]),
    "chat_msg_list_free": (None, [_p]),
    "chat_client_message_status": (c_int, [POINTER(c_int), POINTER(_conv), POINTER(c_uint64),
                                           _p, _str]),
    "chat_client_message_receipts": (c_int, [POINTER(c_size_t), POINTER(c_size_t),
                                             POINTER(c_size_t), _p, _conv, c_uint64]),
    # event queue
    "chat_client_event_fd": (c_int, [_p]),
    "chat_client_next_event": (c_int, [_pp, _p]),
    "chat_client_wait_event": (c_int, [_pp, _p, c_int]),
    "chat_event_free": (None, [_p]),
    "chat_event_type": (c_int, [_p]),
    "chat_event_type_name": (_str, [c_int]),
    "chat_event_conv": (_conv, [_p]),
    "chat_event_seq": (c_uint64, [_p]),
    "chat_event_ts_ms": (c_int64, [_p]),
    "chat_event_user": (_str, [_p]),
    "chat_event_device": (_str, [_p]),
    "chat_event_cmid": (_str, [_p]),
    "chat_event_kind": (c_int, [_p]),
    "chat_event_text": (c_void_p, [_p, POINTER(c_size_t)]),
    "chat_event_json": (_str, [_p]),
    "chat_event_code": (c_int, [_p]),
    "chat_event_message": (_str, [_p]),
    "chat_event_request": (c_uint64, [_p]),
    "chat_event_delivered": (c_uint64, [_p]),
    "chat_event_read": (c_uint64, [_p]),
    "chat_event_active": (c_int, [_p]),
    "chat_event_last_seen_ms": (c_int64, [_p]),
    "chat_event_retry_ms": (c_int64, [_p]),
    "chat_event_count": (c_size_t, [_p]),
    "chat_event_more": (c_int, [_p]),
}

for _name, (_res, _args) in _PROTOS.items():
    _f = getattr(lib, _name)  # AttributeError here means the library lacks a symbol
    _f.restype = _res
    _f.argtypes = _args
