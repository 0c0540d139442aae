/* Eight bytes at a time: which bytes of a 64-bit word equal a value, or lie below one. Each
 * returns a word with the high bit of such bytes set (and possibly of bytes above a match,
 * through the borrow: callers use it only to know whether to look closer). Scanners of text
 * (JSON strings, UTF-8) skip runs of ordinary bytes with these. */
#ifndef CHAT_CORE_SWAR_H
#define CHAT_CORE_SWAR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define CHAT__SWAR_ONES 0x0101010101010101ull
#define CHAT__SWAR_HIGH 0x8080808080808080ull

static inline uint64_t chat__swar_load(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

/* Bytes equal to c. */
static inline uint64_t chat__swar_eq(uint64_t w, unsigned char c)
{
    uint64_t x = w ^ (CHAT__SWAR_ONES * c);
    return (x - CHAT__SWAR_ONES) & ~x & CHAT__SWAR_HIGH;
}

/* Bytes below n (n at most 0x80). */
static inline uint64_t chat__swar_lt(uint64_t w, unsigned char n)
{
    return (w - CHAT__SWAR_ONES * n) & ~w & CHAT__SWAR_HIGH;
}

/* The length of the run at the start of s[0..n) that a JSON string holds as it is: bytes of
 * 0x20 and above other than '"' and '\\'. Both the frame encoder (escaping) and the flat-frame
 * scanner (core/flat.h) step over text with it. */
static inline size_t chat__swar_json_plain(const unsigned char *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = chat__swar_load(s + i);
        uint64_t m = chat__swar_lt(w, 0x20) | chat__swar_eq(w, '"') | chat__swar_eq(w, '\\');
        if (m) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            /* The lowest flagged byte is a real one: the borrow only runs upwards. */
            return i + (size_t)(__builtin_ctzll(m) >> 3);
#else
            break; /* the byte loop below finds it */
#endif
        }
    }
    while (i < n && s[i] >= 0x20 && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

#endif
