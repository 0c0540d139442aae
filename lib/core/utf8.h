/* UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), in
 * one piece or streamed across chunks that may split a character. */
#ifndef CHAT_CORE_UTF8_H
#define CHAT_CORE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Validate p[0..n) continuing from *state (0 at the start of a text). Returns 0, or -1 at the
 * first byte that cannot be part of valid UTF-8 (then *state is meaningless). */
int chat__utf8_feed(uint32_t *state, const unsigned char *p, size_t n);

/* The text fed so far ends between characters. */
static inline int chat__utf8_complete(uint32_t state)
{
    return state == 0;
}

/* 1 if p[0..n) is whole, valid UTF-8. */
int chat__utf8_valid(const unsigned char *p, size_t n);

#endif
