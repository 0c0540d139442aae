/* Identifier alphabets: exact lengths and exact byte sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/ids.h"

static void test_ids_user_id_alphabet(void **state)
{
    (void)state;
    assert_int_equal(chat__id_valid("alice", 5), 1);
    assert_int_equal(chat__id_valid("A-z_0.9@x", 9), 1);
    /* every byte outside [A-Za-z0-9_.@-] is refused, alone and inside an id */
    for (int c = 0; c < 256; c++) {
        char s[3] = {'a', (char)c, 'b'};
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '@' || c == '-';
        assert_int_equal(chat__id_valid(s, 3), ok);
    }
}

static void test_ids_user_id_length_bounds(void **state)
{
    (void)state;
    char s[66];
    memset(s, 'x', sizeof s);
    assert_int_equal(chat__id_valid(s, 0), 0);
    assert_int_equal(chat__id_valid(s, 1), 1);
    assert_int_equal(chat__id_valid(s, 64), 1);
    assert_int_equal(chat__id_valid(s, 65), 0);
    assert_int_equal(chat__id_valid(NULL, 3), 0);
    /* the length is what counts, not a NUL */
    assert_int_equal(chat__id_valid("ab\0c", 4), 0);
    assert_int_equal(chat__id_valid("ab\0c", 2), 1);
}

static void test_ids_cmid_printable_ascii_only(void **state)
{
    (void)state;
    assert_int_equal(chat__cmid_valid("m-1:{x}/~!", 10), 1);
    for (int c = 0; c < 256; c++) {
        char s[1] = {(char)c};
        assert_int_equal(chat__cmid_valid(s, 1), c >= 0x21 && c <= 0x7e);
    }
    char s[65];
    memset(s, '~', sizeof s);
    assert_int_equal(chat__cmid_valid(s, 64), 1);
    assert_int_equal(chat__cmid_valid(s, 65), 0);
    assert_int_equal(chat__cmid_valid(s, 0), 0);
    assert_int_equal(chat__cmid_valid(NULL, 1), 0);
}

static void test_ids_b64url_chars(void **state)
{
    (void)state;
    const char ok[] = "AZaz09-_";
    assert_int_equal(chat__b64url_chars_valid(ok, strlen(ok)), 1);
    assert_int_equal(chat__b64url_chars_valid("", 0), 1);
    assert_int_equal(chat__b64url_chars_valid(NULL, 1), 0);
    const char *bad[] = {"a=", "a+", "a/", "a b", "a.", "\xb2", "\x80", "\xff"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(chat__b64url_chars_valid(bad[i], strlen(bad[i])), 0);
    assert_int_equal(chat__b64url_chars_valid("ab\0c", 4), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_user_id_alphabet),
        cmocka_unit_test(test_ids_user_id_length_bounds),
        cmocka_unit_test(test_ids_cmid_printable_ascii_only),
        cmocka_unit_test(test_ids_b64url_chars),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
