/* chat__flat_scan: the one-pass reading of flat frames (core/flat.h). What it takes, it must
 * read exactly as cJSON does (fuzz_frame.c checks that broadly); these pin what it takes and
 * what it leaves to the full decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "core/flat.h"

static int scan(const char *text, chat__flat *fl)
{
    return chat__flat_scan(text, strlen(text), fl);
}

static void assert_str(const chat__flat *fl, const char *key, const char *want)
{
    const chat__flat_val *v = chat__flat_get(fl, key);
    assert_non_null(v);
    assert_non_null(v->raw);
    char out[256];
    assert_true(v->len < sizeof out);
    chat__flat_copy(v, out);
    assert_string_equal(out, want);
    assert_true(chat__flat_is(v, want));
}

static void test_flat_reads_a_send(void **state)
{
    (void)state;
    chat__flat fl;
    assert_true(scan("{\"type\":\"send\",\"id\":7,\"to\":\"bob\",\"cmid\":\"c-1\",\"text\":\"hi\"}",
                     &fl));
    assert_int_equal(fl.n, 5);
    assert_str(&fl, "type", "send");
    assert_str(&fl, "to", "bob");
    assert_str(&fl, "text", "hi");
    const chat__flat_val *id = chat__flat_get(&fl, "id");
    assert_non_null(id);
    assert_null(id->raw);
    assert_int_equal(id->num, 7);
    assert_null(chat__flat_get(&fl, "conv"));
    static const char *const keys[] = {"text", "t", "conv", "type", "types", "id"};
    const chat__flat_val *v[6];
    chat__flat_pick(&fl, keys, 6, v);
    assert_ptr_equal(v[0], chat__flat_get(&fl, "text"));
    assert_null(v[1]);
    assert_null(v[2]);
    assert_ptr_equal(v[3], chat__flat_get(&fl, "type"));
    assert_null(v[4]);
    assert_ptr_equal(v[5], id);
    assert_false(chat__flat_is(chat__flat_get(&fl, "type"), "sen"));
    assert_false(chat__flat_is(id, "7"));
}

static void test_flat_whitespace_numbers_and_empty(void **state)
{
    (void)state;
    chat__flat fl;
    assert_true(scan(" \r\n{ \"conv\" :\t999999999999999 , \"seq\":0 }\n ", &fl));
    assert_int_equal(fl.n, 2);
    assert_int_equal(chat__flat_get(&fl, "conv")->num, 999999999999999ull);
    assert_int_equal(chat__flat_get(&fl, "seq")->num, 0);
    assert_true(scan("{}", &fl));
    assert_int_equal(fl.n, 0);
}

static void test_flat_decodes_simple_escapes(void **state)
{
    (void)state;
    chat__flat fl;
    assert_true(scan("{\"text\":\"a \\\"q\\\" \\\\ \\/ \\n\\t\\b\\f\\r.\"}", &fl));
    const chat__flat_val *t = chat__flat_get(&fl, "text");
    assert_int_equal(t->len, 16);
    assert_int_equal(t->raw_len, 25);
    assert_str(&fl, "text", "a \"q\" \\ / \n\t\b\f\r.");
    /* UTF-8 is taken byte for byte (the transport has checked it). */
    assert_true(scan("{\"text\":\"h\xc3\xa9llo\"}", &fl));
    assert_str(&fl, "text", "h\xc3\xa9llo");
}

/* Everything here goes to the full decoder: it is not refused, only not taken. */
static void test_flat_leaves_the_rest_to_the_decoder(void **state)
{
    (void)state;
    static const char *const declined[] = {
        "",
        "[]",
        "\"send\"",
        "{\"a\":{\"b\":1}}",                     /* nesting */
        "{\"a\":[1]}",                           /* an array */
        "{\"a\":true}",                          /* true, false, null */
        "{\"a\":null}",
        "{\"a\":-1}",                            /* negative, fraction, exponent */
        "{\"a\":1.5}",
        "{\"a\":1e3}",
        "{\"a\":01}",                            /* a leading zero */
        "{\"a\":1000000000000000}",              /* 16 digits */
        "{\"a\":\"\\u0041\"}",                   /* \u escapes */
        "{\"a\":\"\\x\"}",                       /* not an escape at all */
        "{\"\\u0061\":1}",                       /* a key with an escape */
        "{\"a\":\"x\ty\"}",                      /* a control byte in a string */
        "{\"a\":1,\"a\":2}",                     /* a repeated key */
        "{\"a\":1,}",                            /* invalid JSON */
        "{\"a\" 1}",
        "{\"a\":1",
        "{\"a\":\"x}",
        "{\"a\":1}x",                            /* text after the object */
        "{\"a\":1}{}",
        "\xef\xbb\xbf{\"a\":1}",                 /* a byte-order mark */
        "\x01{\"a\":1}",                         /* a control byte cJSON skips as space */
    };
    chat__flat fl;
    for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++) {
        if (scan(declined[i], &fl))
            fail_msg("took '%s'", declined[i]);
    }
    assert_false(chat__flat_scan("{\"a\":1}", 7, NULL));
    assert_false(chat__flat_scan(NULL, 0, &fl));
    /* A NUL byte inside the length is never taken. */
    assert_false(chat__flat_scan("{\"a\":\"x\0y\"}", 11, &fl));
}

static void test_flat_member_limit(void **state)
{
    (void)state;
    char text[512] = "{";
    for (int i = 0; i < CHAT__FLAT_MAX; i++) {
        char m[16];
        snprintf(m, sizeof m, "%s\"k%d\":%d", i ? "," : "", i, i);
        strcat(text, m);
    }
    strcat(text, "}");
    chat__flat fl;
    assert_true(scan(text, &fl));
    assert_int_equal(fl.n, CHAT__FLAT_MAX);
    assert_int_equal(chat__flat_get(&fl, "k15")->num, 15);
    text[strlen(text) - 1] = '\0';
    strcat(text, ",\"one_more\":1}");
    assert_false(scan(text, &fl));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flat_reads_a_send),
        cmocka_unit_test(test_flat_whitespace_numbers_and_empty),
        cmocka_unit_test(test_flat_decodes_simple_escapes),
        cmocka_unit_test(test_flat_leaves_the_rest_to_the_decoder),
        cmocka_unit_test(test_flat_member_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
