/* Eight bytes at a time: which bytes of a 64-bit word equal a value, or lie below one. Each
 * returns a word with the high bit of such bytes set (and possibly of bytes above a match,
 * through the borrow: callers use it only to know whether to look closer). Scanners of text
 * (JSON strings, UTF-8) skip runs of ordinary bytes with these. */
#ifndef CHAT_CORE_SWAR_H
#define CHAT_CORE_SWAR_H

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

#endif
