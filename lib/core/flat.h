/* The shape most frames have: one JSON object whose values are strings and small unsigned
 * integers, e.g. {"type":"send","id":7,"to":"bob","cmid":"c1","text":"hi"}. Such a frame can be
 * read in one pass over its bytes, without building a cJSON tree (a dozen allocations for a
 * send) and without the separate depth, NUL and duplicate-key passes of core/decode.h.
 *
 * The scanner is deliberately narrow: it accepts only text that chat__decode_frame accepts too,
 * with the same values, and says "not mine" for everything else (nesting, arrays, true, false,
 * null, negative or fractional or exponent numbers, \u escapes, control bytes, repeated keys,
 * more than CHAT__FLAT_MAX members, invalid JSON). Whoever calls it then hands the frame to the
 * full decoder, which is the one place that tells a client what is wrong with a frame. Pure;
 * fuzzed against chat__decode_frame (tests/fuzz/fuzz_frame.c). */
#ifndef CHAT_CORE_FLAT_H
#define CHAT_CORE_FLAT_H

#include <stddef.h>
#include <stdint.h>

#define CHAT__FLAT_MAX 16
/* The largest integer value the scanner reads: 15 digits, below 2^53, so every value it
 * accepts is one cJSON holds exactly. Longer numbers go to the full decoder. */
#define CHAT__FLAT_NUM_DIGITS 15

typedef struct chat__flat_val {
    const char *key;     /* the key's bytes in the frame (no escapes), not NUL-terminated */
    size_t key_len;
    const char *raw;     /* a string value's bytes between its quotes, as sent; NULL: a number */
    size_t raw_len;
    size_t len;          /* the string's length once its escapes are decoded */
    uint64_t num;        /* a number's value */
} chat__flat_val;

typedef struct chat__flat {
    size_t n;
    chat__flat_val v[CHAT__FLAT_MAX];
} chat__flat;

/* 1 if buf[0..len) is such an object (then out describes it, pointing into buf), else 0. */
int chat__flat_scan(const char *buf, size_t len, chat__flat *out);

/* The member named key (NUL-terminated), or NULL. */
const chat__flat_val *chat__flat_get(const chat__flat *fl, const char *key);

/* out[k] = the member named keys[k] (NUL-terminated), or NULL, for k < n: one pass over the
 * members for all the keys a reader wants. */
void chat__flat_pick(const chat__flat *fl, const char *const *keys, size_t n,
                     const chat__flat_val **out);

/* 1 if v is a string whose decoded bytes equal s (NUL-terminated). */
int chat__flat_is(const chat__flat_val *v, const char *s);

/* Write v's string, escapes decoded, to out (room for v->len bytes, then a NUL). */
void chat__flat_copy(const chat__flat_val *v, char *out);

#endif
