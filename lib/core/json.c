/* JSON helpers over cJSON. Frames come from untrusted peers, so: bound nesting before parsing,
 * refuse duplicate keys (two parsers could disagree about which one wins), and read numbers
 * only where a double holds them exactly. */
#include "core/json.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/swar.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many bytes at the start of p[0..n) are ordinary string content: neither a quote, a
 * backslash nor a NUL. */
static size_t string_run(const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w = chat__swar_load(p + i);
        if (chat__swar_eq(w, 0) | chat__swar_eq(w, '"') | chat__swar_eq(w, '\\'))
            break;
    }
    while (i < n && p[i] && p[i] != '"' && p[i] != '\\')
        i++;
    return i;
}

int chat__json_precheck(const char *buf, size_t len, int max_depth)
{
    if ((!buf && len) || max_depth < 0)
        return CHAT__JSON_TEXT_TOO_DEEP;
    const unsigned char *p = (const unsigned char *)buf;
    int depth = 0, in_string = 0, nul_byte = 0, nul_escape = 0;
    for (size_t i = 0; i < len; i++) {
        if (in_string) {
            i += string_run(p + i, len - i);
            if (i == len)
                break;
        }
        unsigned char c = p[i];
        if (c == 0) {
            nul_byte = 1;
        } else if (in_string) {
            if (c == '"') {
                in_string = 0;
            } else if (i + 1 < len) { /* a backslash: the escaped byte is skipped */
                i++;
                if (p[i] == 'u' && i + 4 < len && memcmp(p + i + 1, "0000", 4) == 0)
                    nul_escape = 1;
                else if (p[i] == 0)
                    nul_byte = 1;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            if (++depth > max_depth)
                return CHAT__JSON_TEXT_TOO_DEEP;
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return nul_byte ? CHAT__JSON_TEXT_NUL_BYTE : nul_escape ? CHAT__JSON_TEXT_NUL_ESCAPE
                                                            : CHAT__JSON_TEXT_OK;
}

int chat__json_depth_ok(const char *buf, size_t len, int max_depth)
{
    return chat__json_precheck(buf, len, max_depth) != CHAT__JSON_TEXT_TOO_DEEP;
}

/* a equals b. The first two bytes are compared before strcmp is called: a frame's keys
 * mostly differ in them ("type", "to", "text", "thread"; "conv", "cmid"). */
static int key_eq(const char *a, const char *b)
{
    if (a[0] != b[0])
        return 0;
    if (!a[0])
        return 1;
    if (a[1] != b[1])
        return 0;
    return !a[1] || strcmp(a + 2, b + 2) == 0;
}

cJSON *chat__json_get(const cJSON *obj, const char *key)
{
    if (!cJSON_IsObject(obj) || !key)
        return NULL;
    for (cJSON *m = obj->child; m; m = m->next)
        if (m->string && key_eq(m->string, key))
            return m;
    return NULL;
}

static int cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Duplicate check of one object's own members (not its descendants). */
static int object_has_duplicates(const cJSON *obj)
{
    enum { SMALL = 16 };
    size_t n = 0;
    for (const cJSON *m = obj->child; m; m = m->next)
        n++;
    if (n < 2)
        return 0;
    if (n <= SMALL) {
        for (const cJSON *a = obj->child; a; a = a->next) {
            const char *ka = a->string ? a->string : "";
            for (const cJSON *b = a->next; b; b = b->next) {
                const char *kb = b->string ? b->string : "";
                if (key_eq(ka, kb))
                    return 1;
            }
        }
        return 0;
    }
    const char **keys = chat__malloc(n * sizeof *keys);
    if (!keys)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory checking duplicate JSON keys");
    size_t i = 0;
    for (const cJSON *m = obj->child; m; m = m->next)
        keys[i++] = m->string ? m->string : "";
    qsort(keys, n, sizeof *keys, cmp_keys);
    int dup = 0;
    for (i = 1; i < n && !dup; i++)
        dup = strcmp(keys[i - 1], keys[i]) == 0;
    chat__free(keys);
    return dup;
}

int chat__json_has_duplicate_keys(const cJSON *node)
{
    if (!node)
        return 0;
    if (cJSON_IsObject(node)) {
        int r = object_has_duplicates(node);
        if (r)
            return r;
    }
    if (cJSON_IsObject(node) || cJSON_IsArray(node)) {
        for (const cJSON *c = node->child; c; c = c->next) {
            int r = chat__json_has_duplicate_keys(c);
            if (r)
                return r;
        }
    }
    return 0;
}

const char *chat__json_str(const cJSON *obj, const char *key, size_t *len)
{
    const cJSON *item = chat__json_get(obj, key);
    if (!cJSON_IsString(item) || !item->valuestring)
        return NULL;
    if (len)
        *len = strlen(item->valuestring);
    return item->valuestring;
}

/* Shared part of the integer getters: the number under key, checked to be a whole number
 * within [min, CHAT__JSON_INT_MAX]. */
static int get_int(const cJSON *obj, const char *key, double min, double *out)
{
    if (!cJSON_IsObject(obj) || !key)
        return chat__error_set(CHAT_EINVAL, 0, "invalid arguments");
    const cJSON *item = chat__json_get(obj, key);
    if (!item)
        return chat__error_set(CHAT_ENOTFOUND, 0, "missing field"); /* often not an error */
    if (!cJSON_IsNumber(item))
        return chat__error_set(CHAT_EINVAL, 0, "field \"%s\" is not a number", key);
    double d = item->valuedouble;
    /* The range test also rejects NaN and infinities (every comparison with NaN is false). */
    if (!(d >= min && d <= (double)CHAT__JSON_INT_MAX))
        return chat__error_set(CHAT_EINVAL, 0, "field \"%s\" is out of range", key);
    /* In range, so the cast is defined; a round trip that changes d means a fraction. */
    if ((double)(int64_t)d != d)
        return chat__error_set(CHAT_EINVAL, 0, "field \"%s\" is not an integer", key);
    *out = d;
    return CHAT_OK;
}

int chat__json_u64(const cJSON *obj, const char *key, uint64_t *out)
{
    double d;
    if (!out)
        return chat__error_set(CHAT_EINVAL, 0, "invalid arguments");
    int rc = get_int(obj, key, 0.0, &d);
    if (rc == CHAT_OK)
        *out = (uint64_t)(int64_t)d;
    return rc;
}

int chat__json_i64(const cJSON *obj, const char *key, int64_t *out)
{
    double d;
    if (!out)
        return chat__error_set(CHAT_EINVAL, 0, "invalid arguments");
    int rc = get_int(obj, key, -(double)CHAT__JSON_INT_MAX, &d);
    if (rc == CHAT_OK)
        *out = (int64_t)d;
    return rc;
}

/* v as a raw item holding its exact decimal (see chat__json_add_int). */
static cJSON *raw_int(int64_t v)
{
    char text[24];
    snprintf(text, sizeof text, "%" PRId64, v);
    return cJSON_CreateRaw(text);
}

cJSON *chat__json_id_copy(const cJSON *id)
{
    if (cJSON_IsNumber(id) && id->valuedouble >= -(double)CHAT__JSON_INT_MAX &&
        id->valuedouble <= (double)CHAT__JSON_INT_MAX &&
        (double)(int64_t)id->valuedouble == id->valuedouble)
        return raw_int((int64_t)id->valuedouble);
    return cJSON_Duplicate(id, 1);
}

cJSON *chat__json_add_int(cJSON *obj, const char *key, int64_t v)
{
    cJSON *item = raw_int(v);
    if (!item || !cJSON_AddItemToObject(obj, key, item)) {
        cJSON_Delete(item);
        return NULL;
    }
    return item;
}

int chat__json_bool(const cJSON *obj, const char *key, int *out)
{
    if (!cJSON_IsObject(obj) || !key || !out)
        return chat__error_set(CHAT_EINVAL, 0, "invalid arguments");
    const cJSON *item = chat__json_get(obj, key);
    if (!item)
        return chat__error_set(CHAT_ENOTFOUND, 0, "missing field"); /* often not an error */
    if (!cJSON_IsBool(item))
        return chat__error_set(CHAT_EINVAL, 0, "field \"%s\" is not a boolean", key);
    *out = cJSON_IsTrue(item) ? 1 : 0;
    return CHAT_OK;
}

int chat__json_add(cJSON *obj, const char *key, cJSON *item)
{
    if (obj && item && cJSON_AddItemToObject(obj, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

cJSON *chat__json_parse(const char *buf, size_t len, int *oom)
{
    errno = 0;
    cJSON *v = cJSON_ParseWithLength(buf, len);
    *oom = !v && errno == ENOMEM;
    return v;
}
