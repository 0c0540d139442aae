/* Media input checked without a socket or a server: media ids, signed download URLs (signing, the
 * query's one canonical spelling, the MAC), Range, decimal header values, Upload-Metadata and
 * mime types. Pure functions of their arguments (the keyring and the time are passed in), so
 * they are unit-tested (tests/unit/server/test_media_parse.c) and fuzzed
 * (tests/fuzz/fuzz_media.c) on their own; media.c and media_http.c are their only users. */
#ifndef CHAT_SERVER_MEDIA_PARSE_H
#define CHAT_SERVER_MEDIA_PARSE_H

#include "auth/keyring.h"
#include "chat/sys/store.h"
#include "core/ids.h"

#include <stddef.h>
#include <stdint.h>

/* A media id: the lower-case hex BLAKE2b-256 of the bytes. */
#define CHAT__MEDIA_ID_LEN 64
#define CHAT__MEDIA_PREFIX "/media/"
/* The longest e= a URL may carry (digits): 10^18 s is far past any expiry we sign. */
#define CHAT__MEDIA_EXP_DIGITS 18

/* 1 when s[0..n) is a well-formed media id (64 lower-case hex digits): never '/', '.' or
 * anything a path could use. NULL gives 0. */
int chat__media_id_valid(const char *s, size_t n);

/* The fields of a download URL's query, as chat__media_query_parse read them. */
typedef struct chat__media_url {
    int64_t exp_s;                         /* e: expiry, Unix seconds */
    char scope[CHAT__ID_MAX + 1];          /* s: the user the URL was issued to */
    char mime[CHAT_MEDIA_STR_MAX + 1];     /* t, decoded: the mime type to serve */
    unsigned kid;                          /* k: the token key id (0..255) */
    unsigned char sig[32];                 /* sig, decoded */
} chat__media_url;

/*
 * Sign: the path and query of the download URL of id for scope (a user id) and mime, valid
 * until exp_s (Unix seconds, 0..10^18-1), MACed with the current key of kr:
 * "/media/<id>?e=<exp>&s=<scope>&t=<mime base64url>&k=<kid>&sig=<hex>".
 * @return CHAT_OK; CHAT_EAUTH (no key); CHAT_EINVAL (a bad argument, or it does not fit).
 * [any thread]
 */
int chat__media_sign(const chat__keyring *kr, const char *id, const char *scope,
                     const char *mime, int64_t exp_s, char *out, size_t size);

/*
 * Read q[0..len), a download URL's query (no '?'), accepting only the spelling that
 * chat__media_sign writes: exactly e, s, t, k, sig in that order, each once, separated by
 * single '&'; e and k canonical decimal (no sign, no leading zero, e at most 18 digits, k at
 * most 255); s a user id; t the canonical unpadded base64url of a non-empty mime type without
 * NUL; sig 64 lower-case hex digits. Anything else (another parameter, a repeated one, another
 * order, "k=01", upper-case hex, bytes outside the base64url alphabet) is refused.
 * @return CHAT_OK (out filled) or CHAT_EAUTH.
 */
int chat__media_query_parse(const char *q, size_t len, chat__media_url *out);

/*
 * Verify a download URL: id[0..id_len) a media id, q[0..q_len) its query (see above), its MAC
 * made with key kid of kr, checked in constant time; then its expiry against now_ms.
 * @return CHAT_OK (out filled, if not NULL); CHAT_EAUTH (malformed, unknown key, bad MAC);
 *         CHAT_ETIMEDOUT (authentic but expired: exp_s * 1000 <= now_ms).
 */
int chat__media_verify(const chat__keyring *kr, int64_t now_ms, const char *id, size_t id_len,
                       const char *q, size_t q_len, chat__media_url *out);

/* A decimal header value (Content-Length, Upload-Length, Upload-Offset, Range bounds): 1..20
 * digits, nothing else, at most 2^64 - 1 (leading zeros allowed, as HTTP allows them). 0 with
 * *out set, else -1. */
int chat__media_parse_u64(const char *s, uint64_t *out);

/*
 * A Range header against an object of size bytes: "bytes=a-b", "bytes=a-", "bytes=-n".
 * @return 1 with 0 <= *from <= *to < size (a satisfiable range, b clamped to size - 1);
 *         0 when the header is to be ignored (malformed, several ranges, b < a): serve all;
 *         -1 when unsatisfiable (a >= size, "-0", a suffix of an empty object).
 */
int chat__media_parse_range(const char *r, uint64_t size, uint64_t *from, uint64_t *to);

/*
 * tus-style Upload-Metadata, "name <base64>,type <base64>" (standard alphabet, padded; other
 * keys and keys without a value are ignored). name and mime (each CHAT_MEDIA_STR_MAX + 1 bytes)
 * receive the decoded values, which must be well-formed UTF-8 without control characters; a
 * key given twice is refused. 0 or -1.
 */
int chat__media_parse_metadata(const char *s, char *name, char *mime);

/* 1 if m looks like a mime type we can put in a header: "x/y", printable ASCII without
 * spaces, quotes or commas. */
int chat__media_mime_ok(const char *m);

/* 1 if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points above
 * U+10FFFF). */
int chat__media_utf8_ok(const unsigned char *s, size_t n);

#endif
