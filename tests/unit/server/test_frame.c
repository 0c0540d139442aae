/* The direct frame encoder (frame.h) prints exactly what cJSON prints for the same values:
 * the msg frame and the msg item of replies (history, convs) against chat__msg_json() over
 * awkward strings and large integers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/lifecycle.h"

#include <stdlib.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static void check_msg(const chat_store_msg *m)
{
    chat__frame *direct = chat__msg_frame(m, NULL);
    assert_non_null(direct);
    cJSON *o = chat__msg_json(m);
    assert_non_null(o);
    char *want = cJSON_PrintUnformatted(o);
    assert_non_null(want);
    assert_int_equal(direct->len, strlen(want));
    assert_string_equal((const char *)chat__frame_data(direct), want);
    /* The reply item, inside an array as in a history page, prints the same object. */
    cJSON *page = cJSON_CreateArray();
    cJSON_AddItemToArray(page, chat__msg_item(m, NULL));
    cJSON_AddItemToArray(page, chat__msg_item(m, NULL));
    char *got = cJSON_PrintUnformatted(page);
    assert_non_null(got);
    size_t n = strlen(want);
    assert_int_equal(strlen(got), 2 * n + 3);
    assert_memory_equal(got + 1, want, n);
    assert_memory_equal(got + 2 + n, want, n);
    cJSON_free(got);
    cJSON_Delete(page);
    cJSON_free(want);
    cJSON_Delete(o);
    chat__frame_unref(direct);
}

static void test_server_frame_msg_matches_cjson(void **state)
{
    (void)state;
    static const char *texts[] = {
        "hello",
        "quote \" backslash \\ slash / tab \t nl \n cr \r bs \b ff \f",
        "ctl \x01\x02\x1f del \x7f",
        "utf-8: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
        "",
    };
    static const uint64_t seqs[] = {1, 42, 999999999999999ULL, 4503599627370496ULL};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        for (size_t j = 0; j < sizeof seqs / sizeof seqs[0]; j++) {
            chat_store_msg m = {0};
            m.conv = (int64_t)seqs[j] + 6;
            m.seq = seqs[j];
            m.ts_ms = 1764331200123;
            m.sender = "alice";
            m.device = "d\"1";
            m.cmid = "c-1\\x";
            m.kind = CHAT_MSG_TEXT;
            m.body = texts[i];
            m.body_len = strlen(texts[i]) ? strlen(texts[i]) : 1;
            check_msg(&m);
        }
    }
}

/* Every escaped byte at every position of texts longer than the encoder's eight-byte steps,
 * beside bytes that need none (0x20, 0x7f, UTF-8), so the run scanner is checked at each
 * offset. */
static void test_server_frame_escapes_at_every_offset(void **state)
{
    (void)state;
    static const unsigned char special[] = {'"', '\\', '\n', '\t', 0x01, 0x1f, 0x20, 0x7f, 0xc3};
    for (size_t k = 0; k < sizeof special; k++) {
        for (size_t pos = 0; pos < 41; pos++) {
            char text[48];
            memset(text, 'a', 41);
            text[41] = '\0';
            text[pos] = (char)special[k];
            if (special[k] == 0xc3 && pos < 40)
                text[pos + 1] = (char)0xa9; /* a whole UTF-8 character */
            else if (special[k] == 0xc3)
                text[pos] = 'z';
            chat_store_msg m = {0};
            m.conv = 7;
            m.seq = 1;
            m.ts_ms = 1;
            m.sender = "alice";
            m.device = "d1";
            m.cmid = text; /* another string the encoder writes */
            m.kind = CHAT_MSG_TEXT;
            m.body = text;
            m.body_len = strlen(text);
            check_msg(&m);
        }
    }
}

static void test_server_frame_text_stops_at_nul(void **state)
{
    (void)state;
    chat_store_msg m = {0};
    m.conv = 1;
    m.seq = 1;
    m.sender = "a";
    m.device = "d";
    m.cmid = "c";
    m.kind = CHAT_MSG_TEXT;
    m.body = "ab\0cd";
    m.body_len = 5;
    check_msg(&m);
}

static void test_server_frame_event_falls_back(void **state)
{
    (void)state;
    chat_store_msg m = {0};
    m.conv = 3;
    m.seq = 9;
    m.sender = "a";
    m.device = "";
    m.cmid = "!9";
    m.kind = CHAT_MSG_EVENT;
    m.body = "{\"type\":\"created\",\"by\":\"a\"}";
    m.body_len = strlen(m.body);
    check_msg(&m);
}

static void test_server_frame_ids(void **state)
{
    (void)state;
    cJSON *ids[] = {cJSON_CreateString("7"), cJSON_CreateString("a\"b"), cJSON_CreateNumber(0),
                    cJSON_CreateNumber(12345), cJSON_CreateNumber(9007199254740991.0)};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        chat__fb b = {NULL, 0};
        chat__frame *f = NULL;
        for (int pass = 0; pass < 2; pass++) {
            chat__fb_id(&b, ids[i]);
            if (pass == 0)
                f = chat__fb_alloc(&b);
        }
        assert_non_null(f);
        cJSON *back = cJSON_Parse((const char *)chat__frame_data(f));
        assert_non_null(back);
        assert_true(cJSON_Compare(back, ids[i], 1));
        cJSON_Delete(back);
        chat__frame_unref(f);
        cJSON_Delete(ids[i]);
    }
}

/* Numbers are sized by comparison and written by division: both must agree at every length. */
static void test_server_frame_numbers_at_every_length(void **state)
{
    (void)state;
    uint64_t vals[64];
    size_t n = 0;
    vals[n++] = 0;
    for (uint64_t p = 1; n < 60; p *= 10) {
        vals[n++] = p;
        vals[n++] = p * 9 + (p - 1); /* 9...9 of the same length */
        if (p > UINT64_MAX / 10)
            break;
    }
    vals[n++] = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof want, "%" PRIu64, vals[i]);
        chat__fb b = {NULL, 0};
        chat__fb_u64(&b, vals[i]);
        assert_int_equal(b.len, strlen(want));
        chat__frame *f = chat__fb_alloc(&b);
        assert_non_null(f);
        chat__fb_u64(&b, vals[i]);
        assert_int_equal(b.len, strlen(want));
        assert_memory_equal(chat__frame_data(f), want, b.len);
        chat__frame_unref(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_frame_msg_matches_cjson),
        cmocka_unit_test(test_server_frame_escapes_at_every_offset),
        cmocka_unit_test(test_server_frame_text_stops_at_nul),
        cmocka_unit_test(test_server_frame_event_falls_back),
        cmocka_unit_test(test_server_frame_ids),
        cmocka_unit_test(test_server_frame_numbers_at_every_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
