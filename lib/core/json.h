/* JSON helpers for the frame codec, over Debian's cJSON. The depth scan runs on raw bytes before
 * cJSON parses them; the rest read a parsed tree. Internal only: cJSON types never reach
 * include/chat/. */
#ifndef CHAT_CORE_JSON_H
#define CHAT_CORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "chat/types.h"

/* Largest integer the getters accept: 2^53 - 1. cJSON keeps numbers as doubles, and from 2^53
 * on two texts share one double (9007199254740993 parses as ...992), so those are refused. */
#define CHAT__JSON_INT_MAX 9007199254740991LL

/*
 * 1 if the nesting depth of {} and [] in buf[0..len) never exceeds max_depth, else 0.
 * One pass, no allocation, string-aware (brackets inside strings, including after escaped
 * quotes, do not count). It does not validate the JSON: cJSON does that afterwards, and
 * unbalanced closers are simply ignored here. Run it before cJSON_ParseWithLength so a deep
 * document is refused without being built. NULL buf with len > 0, or max_depth < 0, gives 0.
 */
int chat__json_depth_ok(const char *buf, size_t len, int max_depth);

/* What chat__json_precheck found, in the order a frame is refused for them. */
#define CHAT__JSON_TEXT_OK 0
#define CHAT__JSON_TEXT_TOO_DEEP 1   /* nested deeper than max_depth */
#define CHAT__JSON_TEXT_NUL_BYTE 2   /* a NUL byte anywhere */
#define CHAT__JSON_TEXT_NUL_ESCAPE 3 /* a string escapes U+0000 (only meaningful once the text
                                      * parsed as JSON) */

/*
 * The checks a frame's raw text gets before cJSON parses it, in one pass (the depth scan of
 * chat__json_depth_ok, NUL bytes, "\u0000" in strings); string contents are skipped eight
 * bytes at a time. NULL buf with len > 0, or max_depth < 0, gives CHAT__JSON_TEXT_TOO_DEEP.
 */
int chat__json_precheck(const char *buf, size_t len, int max_depth);

/*
 * 1 if any object in the tree under node (node included) has two members with the same key
 * (compared byte-wise, case-sensitive), 0 if none or node is NULL.
 * Objects of up to 16 members are checked pairwise; larger ones are sorted, O(n log n).
 * @return 1, 0, or CHAT_ENOMEM (negative) if the sort buffer could not be allocated, so a
 *         caller that refuses on any non-zero value fails closed.
 * Recursion depth is that of the tree, which cJSON caps at CJSON_NESTING_LIMIT and the codec at
 * CHAT_LIMIT_JSON_DEPTH.
 */
int chat__json_has_duplicate_keys(const cJSON *node);

/* obj's member named key (case-sensitive), or NULL when there is none or obj is no object.
 * As cJSON_GetObjectItemCaseSensitive, but the first two bytes are compared before the rest: a
 * frame's lookups mostly miss on them, and a frame is read with a dozen lookups. */
cJSON *chat__json_get(const cJSON *obj, const char *key);

/*
 * Typed getters. key is looked up case-sensitively among obj's members. On failure they set
 * the error record (naming the key, but for a missing one: an optional field is absent on
 * every frame, and its message is not worth formatting), and leave *out untouched.
 */

/* The string value of key, borrowed from obj, with its byte length in *len (if len is not
 * NULL); NULL if obj is not an object, or key is missing or not a string. No error record. */
const char *chat__json_str(const cJSON *obj, const char *key, size_t *len);

/* An integer 0..2^53-1. Fractions, negatives, larger values and non-numbers are CHAT_EINVAL;
 * "1e3" is 1000 and "-0" is 0. The value read is cJSON's double, the one nearest to the text, so
 * a text whose nearest double is an integer reads as that integer: above 2^52 a double holds no
 * fraction ("4503599627370496.5"), a fraction with more than 15 significant digits may round
 * to a whole number ("0.99999999999999999999" is 1), and one below about 1e-308 to 0 ("1e-400").
 * Every other fraction is caught (tests/fuzz/fuzz_numbers.c checks this against an exact model).
 * @return CHAT_OK, CHAT_ENOTFOUND (missing), CHAT_EINVAL (wrong type or range, NULL args). */
int chat__json_u64(const cJSON *obj, const char *key, uint64_t *out);

/* An integer -(2^53-1)..2^53-1; otherwise as chat__json_u64. */
int chat__json_i64(const cJSON *obj, const char *key, int64_t *out);

/* A copy of a request id for the "re" of an answer, or NULL (ENOMEM). An integer becomes a raw
 * item holding its exact decimal: cJSON prints numbers with 15 significant digits and keeps
 * that text if it reads back within a relative epsilon, so from about 4.5e15 on an id would
 * come back as a different number written as a float. Anything else is duplicated. */
cJSON *chat__json_id_copy(const cJSON *id);

/* A conversation id as the wire carries it: 0..2^53-1, as chat__json_u64. */
static inline int chat__json_conv(const cJSON *obj, const char *key, chat_conv_id *out)
{
    uint64_t v = 0;
    int rc = chat__json_u64(obj, key, &v);
    if (rc == 0)
        *out = (chat_conv_id)v;
    return rc;
}

/*
 * Add key: v to obj as an integer printed exactly, like "%lld". cJSON prints a number through
 * its double with 15 significant digits whenever that reads back within a relative epsilon, so
 * from about 4.5e15 on an integer can come out changed (9007199254740991 as 9007199254740990),
 * as chat__json_id_copy says for request ids. The item is raw text, which cJSON_IsNumber does
 * not see as a number: use it in objects that are printed, not read back.
 * @return the item, or NULL (out of memory; obj unchanged).
 */
cJSON *chat__json_add_int(cJSON *obj, const char *key, int64_t v);

/* true or false, as 1 or 0. @return CHAT_OK, CHAT_ENOTFOUND, CHAT_EINVAL (not a boolean). */
int chat__json_bool(const cJSON *obj, const char *key, int *out);

/*
 * Building. cJSON's adders return NULL (or 0) when an allocation fails, and a frame built
 * without checking each of them goes out with fields missing; every add is checked, in the
 * form `ok = o && cJSON_Add...(o, ...) && chat__json_add(o, key, cJSON_Create...()) && ...`.
 * An item made before such a chain must be consumed whatever the chain did:
 * `ok = chat__json_add(ok ? o : NULL, key, item) && ok`.
 */

/* cJSON_AddItemToObject that owns item whatever happens: 1 when added; 0 when obj or item is
 * NULL or the key could not be copied, with item deleted (cJSON's own leaves it to the caller,
 * so `cJSON_AddItemToObject(o, k, cJSON_Create...())` leaks on failure). */
int chat__json_add(cJSON *obj, const char *key, cJSON *item);

/* cJSON_ParseWithLength that tells why it found nothing: NULL with *oom 1 when an allocation
 * failed, 0 when the text is not JSON. Out of memory is known by errno, which a failing
 * allocator sets to ENOMEM as malloc does (doc/embedding.md). */
cJSON *chat__json_parse(const char *buf, size_t len, int *oom);

#endif
