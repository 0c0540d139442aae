/* Fuzz target: the bytes of one text message from the server -> chat__decode_reply, the client
 * engine's first step for every frame (lib/client/client.c on_text), and the getters it then
 * reads top-level fields with. Invariants:
 *  - an accepted frame is an object with no repeated key in any object, only finite numbers,
 *    nesting within CHAT__REPLY_MAX_DEPTH, and exactly one JSON value in the text (cJSON alone
 *    would ignore text after the first value: that is never accepted);
 *  - type is the frame's "type" string, or "" when it has none; has_re says whether it has an
 *    "re" member; re is the value of "re" exactly when it is a string of canonical decimal
 *    1..2^64-1 (a model independent of the decoder), else 0;
 *  - re-encoding an accepted frame decodes to the same frame;
 *  - chat__json_str / _u64 / _i64 / _bool on the fields the engine reads agree with the tree:
 *    a string getter returns the member's string, a number getter succeeds only for numbers,
 *    the boolean getter only for booleans;
 *  - a refusal carries a reason and a message, and no frame. */
#include "fuzz.h"
#include "fuzz_json.h"

#include "chat/errors.h"
#include "core/decode.h"
#include "core/json.h"

#include <math.h>
#include <string.h>

static int tree_finite(const cJSON *n)
{
    for (; n; n = n->next) {
        if (cJSON_IsNumber(n) && !isfinite(n->valuedouble))
            return 0;
        if (n->child && !tree_finite(n->child))
            return 0;
    }
    return 1;
}

/* The model of "re": digits only, no leading zero, 1..2^64-1. */
static uint64_t model_re(const cJSON *f)
{
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(f, "re");
    if (!cJSON_IsString(re))
        return 0;
    const char *s = re->valuestring;
    size_t n = strlen(s);
    if (n == 0 || s[0] == '0')
        return 0;
    unsigned __int128 v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned)(s[i] - '0');
        if (v > UINT64_MAX)
            return 0;
    }
    return (uint64_t)v;
}

/* The getters the engine uses, on the top-level fields it reads. */
static void getters(const cJSON *f)
{
    static const char *const keys[] = {"type", "re", "code", "reason", "message", "conv",
                                       "seq", "ts", "cursor", "more", "dup", "cmid", "from",
                                       "delivered", "read", "expires", "size", "target",
                                       "thread", "edited", "emoji", "on", "deleted",
                                       "expired", "unread", "kind"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(f, keys[i]);
        size_t len = 0;
        const char *s = chat__json_str(f, keys[i], &len);
        FUZZ_CHECK((s != NULL) == cJSON_IsString(m));
        FUZZ_CHECK(!s || (s == m->valuestring && len == strlen(s)));
        uint64_t u = 0;
        int64_t i64 = 0;
        int b = 0;
        int ru = chat__json_u64(f, keys[i], &u), ri = chat__json_i64(f, keys[i], &i64),
            rb = chat__json_bool(f, keys[i], &b);
        FUZZ_CHECK(m || (ru == CHAT_ENOTFOUND && ri == CHAT_ENOTFOUND && rb == CHAT_ENOTFOUND));
        FUZZ_CHECK(ru != CHAT_OK || (cJSON_IsNumber(m) && (double)u == m->valuedouble));
        FUZZ_CHECK(ri != CHAT_OK || (cJSON_IsNumber(m) && (double)i64 == m->valuedouble));
        FUZZ_CHECK(rb != CHAT_OK || (cJSON_IsBool(m) && b == cJSON_IsTrue(m)));
        FUZZ_CHECK(ru != CHAT_OK || ri == CHAT_OK);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    const char *end = NULL;
    cJSON *plain =
        size && !memchr(buf, '\0', size) ? cJSON_ParseWithLengthOpts(buf, size, &end, 0) : NULL;
    int trailing = 0;
    if (plain) {
        size_t i = (size_t)(end - buf);
        while (i < size && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
            i++;
        trailing = i != size;
    }
    chat__reply r;
    int rc = chat__decode_reply(buf, size, &r);
    if (rc != CHAT_OK) {
        FUZZ_CHECK(rc < 0 && !r.frame && r.reason && r.message);
        cJSON_Delete(plain);
        return 0;
    }
    FUZZ_CHECK(plain && !trailing);
    FUZZ_CHECK(cJSON_IsObject(r.frame) && !fuzz_tree_has_dup(r.frame) && tree_finite(r.frame));
    FUZZ_CHECK(fuzz_tree_depth(r.frame) <= CHAT__REPLY_MAX_DEPTH);
    FUZZ_CHECK(cJSON_Compare(plain, r.frame, 1));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r.frame, "type");
    FUZZ_CHECK(cJSON_IsString(t) ? r.type == t->valuestring : strcmp(r.type, "") == 0);
    FUZZ_CHECK(r.has_re == (cJSON_GetObjectItemCaseSensitive(r.frame, "re") != NULL));
    FUZZ_CHECK(r.re == model_re(r.frame));
    getters(r.frame);

    char *text = cJSON_PrintUnformatted(r.frame);
    if (text) {
        chat__reply r2;
        FUZZ_CHECK(chat__decode_reply(text, strlen(text), &r2) == CHAT_OK);
        FUZZ_CHECK(cJSON_Compare(r.frame, r2.frame, 1) && r2.re == r.re &&
                   r2.has_re == r.has_re && strcmp(r2.type, r.type) == 0);
        cJSON_Delete(r2.frame);
        cJSON_free(text);
    }
    cJSON_Delete(r.frame);
    cJSON_Delete(plain);
    return 0;
}
