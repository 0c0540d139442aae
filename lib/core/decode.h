/* The first step of every inbound frame, on both sides: the bytes of one WebSocket text message
 * in, a validated request (server: a JSON object with a string "type", and the request id
 * detached for echoing) or a validated reply (client engine: an object, its "type" and the
 * request id it answers) or a protocol error out. Both go through the same strict JSON checks
 * (chat__decode_json). Pure (no I/O, no engine state), so each is fuzzed on its own. */
#ifndef CHAT_CORE_DECODE_H
#define CHAT_CORE_DECODE_H

#include <stddef.h>
#include <stdint.h>

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
 * The JSON checks every peer's text goes through, whichever side reads it: buf[0..len) (need
 * not be NUL-terminated; NULL only with len 0) nested no deeper than max_depth (checked before
 * parsing: CHAT_ELIMIT "too_deep"), without NUL bytes, exactly one JSON value with only
 * whitespace after it, no "\u0000" escape and only numbers a double holds (else CHAT_EPROTO
 * "bad_json"; CHAT_EINVAL for NULL). CHAT_ENOMEM ("internal") when cJSON ran out of memory
 * parsing it, which the allocator tells by errno (core/json.h, chat__json_parse).
 * @return CHAT_OK with *out the value (owned; *reason and *message NULL), or the error code with
 *         *out NULL and *reason, *message static strings.
 */
int chat__decode_json(const char *buf, size_t len, int max_depth, cJSON **out,
                      const char **reason, const char **message);

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

/* The client engine's limit on a server frame's nesting: above the server's own json_depth
 * limit (at most 128) plus the levels a history answer wraps around a stored message. */
#define CHAT__REPLY_MAX_DEPTH 160

typedef struct chat__reply {
    cJSON *frame;        /* the frame, owned */
    const char *type;    /* its "type" string, "" if none; borrowed from frame */
    uint64_t re;         /* the request id it answers: "re" in the canonical decimal the client
                          * engine writes its ids in (1..2^64-1), else 0 */
    int has_re;          /* 1 if the frame has an "re" member at all (answers, not pushes) */
    const char *reason;  /* on failure, static strings (as chat__decode_frame's) */
    const char *message;
} chat__reply;

/*
 * Decode a frame from the server, as the client engine reads it (lib/client/client.c): the
 * checks of chat__decode_json at CHAT__REPLY_MAX_DEPTH, then a JSON object ("not_object") with
 * no repeated key in any object ("duplicate_key").
 * @return CHAT_OK (out->frame, out->type, out->re set) or the error code with out->frame NULL
 *         and out->reason, out->message set; CHAT_ENOMEM if cJSON ran out of memory where that
 *         can be told.
 */
int chat__decode_reply(const char *buf, size_t len, chat__reply *out);

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
