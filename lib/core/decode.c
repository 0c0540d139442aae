/* Inbound frame decoding; see decode.h. Frames come from untrusted peers: everything that two
 * JSON parsers could read differently (duplicate keys, escaped NULs, out-of-range numbers) is
 * refused rather than interpreted. */
#include "core/decode.h"

#include "chat/errors.h"
#include "core/ids.h"
#include "core/json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* 1 if every number under node is finite (cJSON turns 1e400 into infinity, and prints it back
 * as null). */
static int numbers_finite(const cJSON *node)
{
    for (; node; node = node->next) {
        if (cJSON_IsNumber(node) && !isfinite(node->valuedouble))
            return 0;
        if (node->child && !numbers_finite(node->child))
            return 0;
    }
    return 1;
}

cJSON *chat__decode_parse(const char *buf, size_t len)
{
    if (!buf || !len)
        return NULL;
    /* cJSON_ParseWithLength stops after the first value and ignores the rest:
     * '{"type":"ping"}{"type":"send",...}' would pass as a ping. Only whitespace may follow. */
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!v)
        return NULL;
    size_t i = end ? (size_t)(end - buf) : 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
        i++;
    if (!end || i != len) {
        cJSON_Delete(v);
        return NULL;
    }
    return v;
}

size_t chat__utf8_cut(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max)
        return n;
    /* s[max] exists; step back while it is a continuation byte, so s[n] starts a sequence. */
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

int chat__decode_id_valid(const cJSON *id)
{
    if (cJSON_IsString(id))
        return chat__cmid_valid(id->valuestring, strlen(id->valuestring));
    if (cJSON_IsNumber(id))
        return id->valuedouble >= 0 && id->valuedouble <= (double)CHAT__JSON_INT_MAX &&
               (double)(int64_t)id->valuedouble == id->valuedouble;
    return 0;
}

static int fail(chat__decoded *out, int code, const char *reason, const char *message)
{
    out->reason = reason;
    out->message = message;
    return code;
}

static int fail_reply(chat__reply *out, int code, const char *reason, const char *message)
{
    out->reason = reason;
    out->message = message;
    return code;
}

int chat__decode_json(const char *buf, size_t len, int max_depth, cJSON **out,
                      const char **reason, const char **message)
{
    *out = NULL;
    *reason = "bad_json";
    if (!buf && len) {
        *message = "no frame";
        return CHAT_EINVAL;
    }
    /* One pass over the text first: a deep document is refused without being built. cJSON
     * would write an escaped NUL into the C string, and every reader would see it cut short. */
    int text = chat__json_precheck(buf, len, max_depth);
    if (text == CHAT__JSON_TEXT_TOO_DEEP) {
        *reason = "too_deep";
        *message = "JSON nested too deeply";
        return CHAT_ELIMIT;
    }
    if (text == CHAT__JSON_TEXT_NUL_BYTE) {
        *message = "NUL byte in frame";
        return CHAT_EPROTO;
    }
    errno = 0;
    cJSON *v = chat__decode_parse(buf, len);
    if (!v && errno == ENOMEM) { /* the allocator's word (core/json.h, chat__json_parse) */
        *reason = "internal";
        *message = "out of memory";
        return CHAT_ENOMEM;
    }
    if (!v) {
        *message = "frame is not valid JSON";
        return CHAT_EPROTO;
    }
    if (text == CHAT__JSON_TEXT_NUL_ESCAPE) {
        *message = "strings must not contain U+0000";
        goto err;
    }
    if (!numbers_finite(v)) {
        *message = "number out of range";
        goto err;
    }
    *reason = *message = NULL;
    *out = v;
    return CHAT_OK;
err:
    cJSON_Delete(v);
    return CHAT_EPROTO;
}

int chat__decode_frame(const char *buf, size_t len, int max_depth, chat__decoded *out)
{
    memset(out, 0, sizeof *out);
    cJSON *f = NULL;
    int rc = chat__decode_json(buf, len, max_depth, &f, &out->reason, &out->message);
    if (rc != CHAT_OK)
        return rc;
    if (!cJSON_IsObject(f)) {
        rc = fail(out, CHAT_EPROTO, "not_object", "frame must be a JSON object");
        goto err;
    }
    /* Duplicates are looked for before "id" is detached, so a repeated "id" is caught too. */
    int dup = chat__json_has_duplicate_keys(f);
    cJSON *id = chat__json_get(f, "id");
    if (id && chat__decode_id_valid(id))
        out->re = cJSON_DetachItemViaPointer(f, id);
    if (dup < 0) {
        rc = fail(out, CHAT_ENOMEM, "internal", "out of memory");
        goto err;
    }
    if (dup) {
        rc = fail(out, CHAT_EPROTO, "duplicate_key", "an object repeats a key");
        goto err;
    }
    if (id && !out->re) {
        rc = fail(out, CHAT_EINVAL, "bad_field",
                  "field 'id' must be 1-64 printable ASCII characters (no space) or an integer");
        goto err;
    }
    const cJSON *t = chat__json_get(f, "type");
    if (!t) {
        rc = fail(out, CHAT_EINVAL, "missing_field", "field 'type' is required");
        goto err;
    }
    if (!cJSON_IsString(t)) {
        rc = fail(out, CHAT_EINVAL, "bad_field", "field 'type' must be a string");
        goto err;
    }
    out->frame = f;
    out->type = t->valuestring;
    return CHAT_OK;
err:
    cJSON_Delete(f);
    return rc;
}

/* "re" as the client engine writes "id": canonical decimal 1..2^64-1. */
static uint64_t reply_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 20 || s[0] == '0')
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    return v;
}

int chat__decode_reply(const char *buf, size_t len, chat__reply *out)
{
    memset(out, 0, sizeof *out);
    cJSON *f = NULL;
    int rc = chat__decode_json(buf, len, CHAT__REPLY_MAX_DEPTH, &f, &out->reason,
                               &out->message);
    if (rc != CHAT_OK)
        return rc;
    if (!cJSON_IsObject(f)) {
        rc = fail_reply(out, CHAT_EPROTO, "not_object", "frame must be a JSON object");
        goto err;
    }
    int dup = chat__json_has_duplicate_keys(f);
    if (dup) {
        rc = dup < 0 ? fail_reply(out, CHAT_ENOMEM, "internal", "out of memory")
                     : fail_reply(out, CHAT_EPROTO, "duplicate_key", "an object repeats a key");
        goto err;
    }
    const char *type = chat__json_str(f, "type", NULL);
    const char *re = chat__json_str(f, "re", NULL);
    out->frame = f;
    out->type = type ? type : "";
    out->re = re ? reply_id(re) : 0;
    out->has_re = chat__json_get(f, "re") != NULL;
    return CHAT_OK;
err:
    cJSON_Delete(f);
    return rc;
}
