/* chat__reasm_feed: WebSocket message reassembly under the caps. tests/fuzz/fuzz_reasm.c checks
 * it against a message model; these pin the behaviours the transport relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "transport/reasm.h"

#define F CHAT__REASM_FIRST
#define M CHAT__REASM_MORE
#define E CHAT__REASM_FINAL

static void test_reasm_fragments_join(void **state)
{
    (void)state;
    chat__reasm r = {0};
    assert_int_equal(chat__reasm_feed(&r, "ab", 2, F | M, 1, 64, 4), CHAT__REASM_PARTIAL);
    assert_int_equal(chat__reasm_feed(&r, "c", 1, 0, 0, 64, 4), CHAT__REASM_PARTIAL);
    assert_int_equal(chat__reasm_feed(&r, "de", 2, E, 0, 64, 4), CHAT__REASM_COMPLETE);
    assert_int_equal(r.len, 5);
    assert_string_equal(r.buf, "abcde");
    chat__reasm_consumed(&r);
    chat__reasm_free(&r);
}

static void test_reasm_empty_message_has_a_buffer(void **state)
{
    (void)state;
    chat__reasm r = {0};
    assert_int_equal(chat__reasm_feed(&r, NULL, 0, F | E, 0, 64, 4), CHAT__REASM_COMPLETE);
    assert_non_null(r.buf);
    assert_int_equal(r.len, 0);
    assert_int_equal(r.buf[0], '\0');
    chat__reasm_free(&r);
}

static void test_reasm_announced_length_over_cap_refused_at_once(void **state)
{
    (void)state;
    chat__reasm r = {0};
    /* 4 bytes here, 2^62 announced: refused before anything more is buffered */
    assert_int_equal(chat__reasm_feed(&r, "abcd", 4, F | M, (uint64_t)1 << 62, 64, 4),
                     CHAT__REASM_TOO_BIG);
    assert_int_equal(r.len, 0);
    /* exactly at the cap is fine */
    assert_int_equal(chat__reasm_feed(&r, "abcd", 4, F | M, 60, 64, 4), CHAT__REASM_PARTIAL);
    chat__reasm_free(&r);
}

static void test_reasm_too_many_fragments(void **state)
{
    (void)state;
    chat__reasm r = {0};
    assert_int_equal(chat__reasm_feed(&r, "a", 1, F, 0, 64, 2), CHAT__REASM_PARTIAL);
    assert_int_equal(chat__reasm_feed(&r, "b", 1, 0, 0, 64, 2), CHAT__REASM_TOO_MANY);
    chat__reasm_free(&r);
}

static void test_reasm_bad_sequences_are_protocol_errors(void **state)
{
    (void)state;
    chat__reasm r = {0};
    assert_int_equal(chat__reasm_feed(&r, "a", 1, E, 0, 64, 4), CHAT__REASM_PROTOCOL);
    assert_int_equal(chat__reasm_feed(&r, "a", 1, F, 0, 64, 4), CHAT__REASM_PARTIAL);
    assert_int_equal(chat__reasm_feed(&r, "b", 1, F | E, 0, 64, 4), CHAT__REASM_PROTOCOL);
    assert_int_equal(r.open, 0);
    chat__reasm_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasm_fragments_join),
        cmocka_unit_test(test_reasm_empty_message_has_a_buffer),
        cmocka_unit_test(test_reasm_announced_length_over_cap_refused_at_once),
        cmocka_unit_test(test_reasm_too_many_fragments),
        cmocka_unit_test(test_reasm_bad_sequences_are_protocol_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
