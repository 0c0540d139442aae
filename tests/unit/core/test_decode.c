/* chat__decode_frame: the bytes of one text message to a validated request or an error; and
 * chat__decode_reply, the client engine's side of the same checks. The fuzz targets
 * tests/fuzz/fuzz_frame.c and fuzz_reply.c check their invariants broadly; these pin the
 * findings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "chat/errors.h"
#include "core/decode.h"

static int decode(const char *text, chat__decoded *d)
{
    return chat__decode_frame(text, strlen(text), 16, d);
}

static void assert_refused(const char *text, int code, const char *reason, int with_re)
{
    chat__decoded d;
    assert_int_equal(decode(text, &d), code);
    assert_null(d.frame);
    assert_string_equal(d.reason, reason);
    assert_non_null(d.message);
    assert_int_equal(d.re != NULL, with_re);
    cJSON_Delete(d.re);
}

static void test_decode_accepts_request_and_detaches_id(void **state)
{
    (void)state;
    chat__decoded d;
    assert_int_equal(decode(" {\"type\":\"ping\",\"id\":\"r1\"} \n", &d), CHAT_OK);
    assert_string_equal(d.type, "ping");
    assert_string_equal(d.re->valuestring, "r1");
    assert_null(cJSON_GetObjectItemCaseSensitive(d.frame, "id"));
    cJSON_Delete(d.frame);
    cJSON_Delete(d.re);
}

static void test_decode_refuses_text_after_the_value(void **state)
{
    (void)state;
    assert_refused("{\"type\":\"ping\"}{\"type\":\"send\"}", CHAT_EPROTO, "bad_json", 0);
    assert_refused("{\"type\":\"ping\"} x", CHAT_EPROTO, "bad_json", 0);
    assert_refused("3,[[[", CHAT_EPROTO, "bad_json", 0);
}

static void test_decode_refuses_repeated_id(void **state)
{
    (void)state;
    assert_refused("{\"type\":\"ping\",\"id\":\"a\",\"id\":\"b\"}", CHAT_EPROTO, "duplicate_key",
                   1);
    assert_refused("{\"type\":\"ping\",\"k\":1,\"k\":2}", CHAT_EPROTO, "duplicate_key", 0);
}

static void test_decode_refuses_escaped_nul(void **state)
{
    (void)state;
    assert_refused("{\"type\":\"ping\\u0000x\"}", CHAT_EPROTO, "bad_json", 0);
    /* an escaped backslash followed by u0000 is plain text */
    chat__decoded d;
    assert_int_equal(decode("{\"type\":\"ping\",\"t\":\"a\\\\u0000\"}", &d), CHAT_OK);
    cJSON_Delete(d.frame);
    cJSON_Delete(d.re);
}

static void test_decode_refuses_numbers_out_of_range(void **state)
{
    (void)state;
    assert_refused("{\"type\":\"ping\",\"n\":1e400}", CHAT_EPROTO, "bad_json", 0);
    assert_refused("{\"type\":\"ping\",\"n\":[-1e999]}", CHAT_EPROTO, "bad_json", 0);
}

static void test_decode_id_bounds(void **state)
{
    (void)state;
    chat__decoded d;
    assert_int_equal(decode("{\"type\":\"ping\",\"id\":9007199254740991}", &d), CHAT_OK);
    assert_non_null(d.re);
    cJSON_Delete(d.frame);
    cJSON_Delete(d.re);
    assert_refused("{\"type\":\"ping\",\"id\":9007199254740992}", CHAT_EINVAL, "bad_field", 0);
    assert_refused("{\"type\":\"ping\",\"id\":-1}", CHAT_EINVAL, "bad_field", 0);
}

static void test_decode_depth_and_empty(void **state)
{
    (void)state;
    assert_refused("", CHAT_EPROTO, "bad_json", 0);
    assert_refused("{\"type\":\"ping\",\"a\":[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]}", CHAT_ELIMIT,
                   "too_deep", 0);
    chat__decoded d;
    assert_int_equal(chat__decode_frame(NULL, 0, 16, &d), CHAT_EPROTO);
}

static void test_decode_utf8_cut_keeps_whole_characters(void **state)
{
    (void)state;
    assert_int_equal(chat__utf8_cut("abc", 40), 3);
    assert_int_equal(chat__utf8_cut("abc", 2), 2);
    /* "ab\u00e9": cutting at 3 would keep half of the 2-byte e-acute */
    assert_int_equal(chat__utf8_cut("ab\xc3\xa9", 3), 2);
    assert_int_equal(chat__utf8_cut("ab\xc3\xa9", 4), 4);
    /* a 4-byte emoji after one byte */
    assert_int_equal(chat__utf8_cut("a\xf0\x9f\x98\x80z", 3), 1);
    assert_int_equal(chat__utf8_cut("a\xf0\x9f\x98\x80z", 5), 5);
    assert_int_equal(chat__utf8_cut("", 0), 0);
}

static void assert_reply_refused(const char *text, int code, const char *reason)
{
    chat__reply r;
    assert_int_equal(chat__decode_reply(text, strlen(text), &r), code);
    assert_null(r.frame);
    assert_string_equal(r.reason, reason);
    assert_non_null(r.message);
}

static uint64_t reply_re(const char *text, int *has_re)
{
    chat__reply r;
    assert_int_equal(chat__decode_reply(text, strlen(text), &r), CHAT_OK);
    uint64_t re = r.re;
    *has_re = r.has_re;
    cJSON_Delete(r.frame);
    return re;
}

static void test_decode_reply_is_as_strict_as_requests(void **state)
{
    (void)state;
    chat__reply r;
    const char *ack = "{\"type\":\"ack\",\"re\":\"12\",\"seq\":1} \r\n";
    assert_int_equal(chat__decode_reply(ack, strlen(ack), &r), CHAT_OK);
    assert_string_equal(r.type, "ack");
    assert_true(r.re == 12 && r.has_re);
    cJSON_Delete(r.frame);
    /* cJSON_ParseWithLength would read the ack and ignore the rest */
    assert_reply_refused("{\"type\":\"ack\",\"re\":\"12\"}junk", CHAT_EPROTO, "bad_json");
    assert_reply_refused("{\"type\":\"ack\",\"re\":\"12\"}{\"type\":\"x\"}", CHAT_EPROTO,
                         "bad_json");
    assert_reply_refused("{\"type\":\"ack\",\"seq\":1,\"seq\":2}", CHAT_EPROTO,
                         "duplicate_key");
    assert_reply_refused("{\"type\":\"ack\",\"seq\":1e400}", CHAT_EPROTO, "bad_json");
    assert_reply_refused("{\"type\":\"a\\u0000b\"}", CHAT_EPROTO, "bad_json");
    assert_reply_refused("[1]", CHAT_EPROTO, "not_object");
    assert_reply_refused("", CHAT_EPROTO, "bad_json");
    char deep[2 * CHAT__REPLY_MAX_DEPTH + 8];
    memset(deep, '[', CHAT__REPLY_MAX_DEPTH + 1);
    memset(deep + CHAT__REPLY_MAX_DEPTH + 1, ']', CHAT__REPLY_MAX_DEPTH + 1);
    deep[2 * CHAT__REPLY_MAX_DEPTH + 2] = 0;
    assert_reply_refused(deep, CHAT_ELIMIT, "too_deep");
}

static void test_decode_reply_request_id_is_canonical_decimal(void **state)
{
    (void)state;
    int has = 0;
    assert_true(reply_re("{\"re\":\"18446744073709551615\"}", &has) == UINT64_MAX && has);
    /* strtoull read all of these as ids, "-1" as 2^64-1 */
    const char *other[] = {"\"012\"", "\"+12\"", "\" 12\"", "\"-1\"", "\"12x\"", "\"\"",
                           "\"0\"", "\"18446744073709551616\"", "12", "null"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"type\":\"ack\",\"re\":%s}", other[i]);
        assert_true(reply_re(text, &has) == 0 && has);
    }
    assert_true(reply_re("{\"type\":\"msg\"}", &has) == 0 && !has);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_accepts_request_and_detaches_id),
        cmocka_unit_test(test_decode_refuses_text_after_the_value),
        cmocka_unit_test(test_decode_refuses_repeated_id),
        cmocka_unit_test(test_decode_refuses_escaped_nul),
        cmocka_unit_test(test_decode_refuses_numbers_out_of_range),
        cmocka_unit_test(test_decode_id_bounds),
        cmocka_unit_test(test_decode_depth_and_empty),
        cmocka_unit_test(test_decode_utf8_cut_keeps_whole_characters),
        cmocka_unit_test(test_decode_reply_is_as_strict_as_requests),
        cmocka_unit_test(test_decode_reply_request_id_is_canonical_decimal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
