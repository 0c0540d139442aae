/* Fuzz target: the bytes of one WebSocket text message -> chat__decode_frame, the server's
 * first step for every inbound frame (depth scan, NUL check, cJSON, duplicate keys, request id,
 * type). Invariants, at two depth limits:
 *  - an accepted frame is an object with a string type, a valid or absent request id, no
 *    repeated key in any object, only finite numbers, nesting within the limit, and (for UTF-8
 *    input, which lws guarantees) only UTF-8 strings;
 *  - re-encoding an accepted frame (id put back) decodes to the same frame, type and id;
 *  - the id as an answer's "re" carries it (chat__json_id_copy) reads back as exactly the same
 *    value (cJSON's own printing loses integers from about 4.5e15 on);
 *  - "too_deep" is answered only for text whose parsed nesting really is over the limit, and
 *    valid JSON nested over the limit is never accepted;
 *  - JSON that cJSON parses with a repeated key is never accepted;
 *  - a refusal always carries a reason and a message, and no frame;
 *  - the type as the dispatcher quotes it in an error (chat__utf8_cut) is whole UTF-8;
 *  - what the flat-frame scanner (core/flat.h) takes, the JSON checks take too, as an object
 *    with the same members in the same order and the same values. */
#include "fuzz.h"
#include "fuzz_json.h"

#include "chat/errors.h"
#include "core/decode.h"
#include "core/flat.h"
#include "core/json.h"

#include <stdlib.h>
#include <string.h>

static int tree_utf8(const cJSON *n)
{
    for (; n; n = n->next) {
        if (n->string && !fuzz_utf8_valid((const unsigned char *)n->string, strlen(n->string)))
            return 0;
        if (cJSON_IsString(n) &&
            !fuzz_utf8_valid((const unsigned char *)n->valuestring, strlen(n->valuestring)))
            return 0;
        if (n->child && !tree_utf8(n->child))
            return 0;
    }
    return 1;
}

static void check_accepted(const chat__decoded *d, int max_depth, int utf8)
{
    FUZZ_CHECK(cJSON_IsObject(d->frame));
    FUZZ_CHECK(d->type && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d->frame, "type")));
    FUZZ_CHECK(!d->re || chat__decode_id_valid(d->re));
    FUZZ_CHECK(!d->re || !cJSON_GetObjectItemCaseSensitive(d->frame, "id"));
    FUZZ_CHECK(fuzz_tree_depth(d->frame) <= max_depth);
    FUZZ_CHECK(!fuzz_tree_has_dup(d->frame));
    FUZZ_CHECK(!utf8 || tree_utf8(d->frame));
    /* The dispatcher quotes an unknown type cut with chat__utf8_cut: whole characters only. */
    size_t tlen = strlen(d->type), cut = chat__utf8_cut(d->type, 40);
    FUZZ_CHECK(cut <= 40 && cut <= tlen && (tlen > 40 || cut == tlen));
    if (utf8) { /* whole characters, and at most one (3 bytes of it) cut off */
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)d->type, cut));
        FUZZ_CHECK(cut + 3 >= (tlen < 40 ? tlen : 40));
    }

    /* The id echoed in "re": exactly the value sent, not merely one close to it. */
    if (d->re) {
        cJSON *echo = chat__json_id_copy(d->re);
        char *etext = echo ? cJSON_PrintUnformatted(echo) : NULL;
        cJSON *back = etext ? cJSON_Parse(etext) : NULL;
        if (back) {
            if (cJSON_IsString(d->re))
                FUZZ_CHECK(cJSON_IsString(back) &&
                           strcmp(back->valuestring, d->re->valuestring) == 0);
            else
                FUZZ_CHECK(cJSON_IsNumber(back) && back->valuedouble == d->re->valuedouble);
        }
        cJSON_Delete(back);
        cJSON_free(etext);
        cJSON_Delete(echo);
    }

    /* Round trip: the frame as a client would have sent it, encoded by cJSON. */
    cJSON *whole = cJSON_Duplicate(d->frame, 1);
    if (!whole)
        return;
    if (d->re)
        cJSON_AddItemToObject(whole, "id", cJSON_Duplicate(d->re, 1));
    char *text = cJSON_PrintUnformatted(whole);
    cJSON_Delete(whole);
    if (!text)
        return;
    chat__decoded d2;
    int rc = chat__decode_frame(text, strlen(text), max_depth, &d2);
    if (rc != CHAT_OK)
        fprintf(stderr, "re-encoded frame refused (%s): %s\n", d2.reason, text);
    FUZZ_CHECK(rc == CHAT_OK);
    FUZZ_CHECK(strcmp(d->type, d2.type) == 0);
    FUZZ_CHECK(cJSON_Compare(d->frame, d2.frame, 1));
    FUZZ_CHECK((d->re == NULL) == (d2.re == NULL));
    FUZZ_CHECK(!d->re || cJSON_Compare(d->re, d2.re, 1));
    cJSON_Delete(d2.frame);
    cJSON_Delete(d2.re);
    cJSON_free(text);
}

static void one(const char *buf, size_t len, int max_depth, int utf8, const cJSON *plain)
{
    chat__decoded d;
    int rc = chat__decode_frame(buf, len, max_depth, &d);
    if (rc == CHAT_OK) {
        check_accepted(&d, max_depth, utf8);
        cJSON_Delete(d.frame);
        cJSON_Delete(d.re);
        FUZZ_CHECK(plain != NULL); /* cJSON alone parses whatever the decoder accepts */
        return;
    }
    FUZZ_CHECK(rc < 0 && d.frame == NULL && d.reason && d.message);
    FUZZ_CHECK(!d.re || chat__decode_id_valid(d.re));
    if (plain && strcmp(d.reason, "too_deep") == 0)
        FUZZ_CHECK(fuzz_tree_depth(plain) > max_depth);
    if (rc == CHAT_ELIMIT)
        FUZZ_CHECK(strcmp(d.reason, "too_deep") == 0);
    cJSON_Delete(d.re);
}

/* The flat scanner's reading of buf against the decoder's: it may decline anything, but what
 * it takes must be the same object. */
static void check_flat(const char *buf, size_t len)
{
    chat__flat fl;
    if (!chat__flat_scan(buf, len, &fl))
        return;
    cJSON *v = NULL;
    const char *reason, *message;
    int rc = chat__decode_json(buf, len, 4, &v, &reason, &message);
    FUZZ_CHECK(rc == CHAT_OK && cJSON_IsObject(v));
    size_t i = 0;
    for (const cJSON *m = v->child; m; m = m->next, i++) {
        FUZZ_CHECK(i < fl.n);
        const chat__flat_val *f = &fl.v[i];
        FUZZ_CHECK(strlen(m->string) == f->key_len && memcmp(m->string, f->key, f->key_len) == 0);
        FUZZ_CHECK(chat__flat_get(&fl, m->string) == f);
        const char *key = m->string;
        const chat__flat_val *picked;
        chat__flat_pick(&fl, &key, 1, &picked);
        FUZZ_CHECK(picked == f);
        if (f->raw) {
            FUZZ_CHECK(cJSON_IsString(m) && strlen(m->valuestring) == f->len);
            char *copy = malloc(f->len + 1);
            FUZZ_CHECK(copy != NULL);
            chat__flat_copy(f, copy);
            FUZZ_CHECK(strcmp(copy, m->valuestring) == 0);
            FUZZ_CHECK(chat__flat_is(f, m->valuestring));
            free(copy);
        } else {
            FUZZ_CHECK(cJSON_IsNumber(m) && m->valuedouble == (double)f->num);
        }
    }
    FUZZ_CHECK(i == fl.n);
    cJSON_Delete(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    /* What cJSON alone makes of the text (NUL-free text only: the decoder refuses NULs). */
    const char *end = NULL;
    cJSON *plain =
        size && !memchr(buf, '\0', size) ? cJSON_ParseWithLengthOpts(buf, size, &end, 0) : NULL;
    if (plain) {
        /* cJSON ignores text after the first value; the decoder must refuse it. */
        size_t i = (size_t)(end - buf);
        while (i < size && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\r' || buf[i] == '\n'))
            i++;
        if (i != size) {
            chat__decoded d;
            FUZZ_CHECK(chat__decode_frame(buf, size, 128, &d) != CHAT_OK);
            cJSON_Delete(d.re);
            cJSON_Delete(plain);
            plain = NULL;
        }
    }
    if (plain && fuzz_tree_has_dup(plain)) {
        chat__decoded d;
        FUZZ_CHECK(chat__decode_frame(buf, size, 16, &d) != CHAT_OK);
        cJSON_Delete(d.re);
    }
    int utf8 = fuzz_utf8_valid(data, size);
    one(buf, size, 16, utf8, plain); /* the default json_depth limit */
    one(buf, size, 4, utf8, plain);  /* the smallest one allowed */
    check_flat(buf, size);
    cJSON_Delete(plain);
    return 0;
}
