/* Validation of the identifiers that cross the wire: user and device ids, client message ids.
 * Pure functions, no allocation, no error record: callers name the field in their own message. */
#ifndef CHAT_CORE_IDS_H
#define CHAT_CORE_IDS_H

#include <stddef.h>

/* Longest user id, device id or client message id, in bytes. */
#define CHAT__ID_MAX 64

/* 1 if s[0..len) is 1..64 bytes of [A-Za-z0-9_.@-] (user and device ids), else 0.
 * s need not be NUL-terminated; NULL gives 0. An embedded NUL is refused. */
int chat__id_valid(const char *s, size_t len);

/* 1 if s[0..len) is 1..64 bytes of printable ASCII 0x21..0x7e (client message ids: no spaces,
 * no control bytes, no UTF-8), else 0. NULL gives 0. */
int chat__cmid_valid(const char *s, size_t len);

/* 1 if s[0..len) is only base64url characters [A-Za-z0-9_-] (len 0 gives 1; NULL with len > 0
 * gives 0). Check this before sodium_base642bin: libsodium 1.0.18 decodes every byte 0x80-0xff
 * as '_', so without it a base64url text has many spellings that decode alike. */
int chat__b64url_chars_valid(const char *s, size_t len);

#endif
