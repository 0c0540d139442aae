/* The first step of every inbound frame: the bytes of one WebSocket text message in, a
 * validated request (a JSON object with a string "type", and the request id detached for
 * echoing) or a protocol error out. Pure (no I/O, no server state), so it is fuzzed on its own;
 * the server's dispatcher routes what it returns. */
#ifndef CHAT_CORE_DECODE_H
#define CHAT_CORE_DECODE_H

#include <stddef.h>

#include <cjson/cJSON.h>

typedef struct chat__decoded {
    cJSON *frame;       /* the request object, "id" removed if it was valid; owned */
    cJSON *re;          /* the request id to echo (string or integer), or NULL; owned */
    const char *type;   /* frame's "type", borrowed from frame */
    /* On failure: the error to answer, static strings. */
    const char *reason; /* "too_deep", "bad_json", "not_object", "duplicate_key", ... */
    const char *message;
} chat__decoded;

/*
 * Decode buf[0..len) (need not be NUL-terminated; NULL only with len 0), refusing, in order:
 * nesting deeper than max_depth (before parsing; CHAT_ELIMIT "too_deep"), NUL bytes, text that is
 * not exactly one JSON value (trailing text is refused), numbers a double cannot hold (1e400) and "\u0000" escapes, which C strings would
 * silently truncate (CHAT_EPROTO "bad_json"), a non-object (CHAT_EPROTO "not_object"), an object
 * anywhere that repeats a key (CHAT_EPROTO "duplicate_key"), an "id" that is neither 1-64
 * printable ASCII characters nor an integer 0..2^53-1 (CHAT_EINVAL "bad_field"), a missing or
 * non-string "type" (CHAT_EINVAL "missing_field" / "bad_field").
 * @return CHAT_OK (out->frame, out->re, out->type set) or the error code; on error out->frame is
 *         NULL, out->reason and out->message are set, and out->re holds the request id when the
 *         error should echo it (the caller frees it). CHAT_ENOMEM if cJSON ran out of memory
 *         where that can be told.
 */
int chat__decode_frame(const char *buf, size_t len, int max_depth, chat__decoded *out);

/* cJSON's parse of exactly buf[0..len): one JSON value, with nothing but whitespace after it
 * (cJSON_ParseWithLength ignores whatever follows the first value). NULL if not. */
cJSON *chat__decode_parse(const char *buf, size_t len);

/* The length of the longest prefix of the NUL-terminated UTF-8 string s that is at most max
 * bytes and does not end inside a multi-byte sequence: the way to quote peer text in an error
 * message (the server must only send valid UTF-8: RFC 6455 8.1 binds both ends). */
size_t chat__utf8_cut(const char *s, size_t max);

/* 1 if id is a valid request id (see above), else 0. */
int chat__decode_id_valid(const cJSON *id);

#endif
