/* Status codes: names and texts are stable and round-trip; the last-error record is per thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "chat/errors.h"
#include "chat/version.h"
#include "core/error.h"

static void test_core_error_names_round_trip(void **state)
{
    (void)state;
    for (int code = CHAT_OK; code >= CHAT_EUSER; code--) {
        const char *name = chat_error_name(code);
        assert_non_null(name);
        assert_int_equal(chat_error_from_name(name), code);
        assert_string_not_equal(chat_strerror(code), "unknown error");
    }
    assert_string_equal(chat_error_name(CHAT_EPERM), "EPERM");
    assert_string_equal(chat_error_name(-999), "ERROR");
    assert_string_equal(chat_strerror(-999), "unknown error");
    assert_int_equal(chat_error_from_name("NOPE"), CHAT_ERROR);
}

static void test_core_error_last_records_detail(void **state)
{
    (void)state;
    assert_int_equal(chat__error_set(CHAT_EIO, 10, "disk %s", "full"), CHAT_EIO);
    const chat_error_info *e = chat_error_last();
    assert_int_equal(e->code, CHAT_EIO);
    assert_int_equal(e->backend_code, 10);
    assert_string_equal(e->message, "disk full");
    chat__error_clear();
    assert_int_equal(chat_error_last()->code, CHAT_OK);
}

static void test_core_version_matches_header(void **state)
{
    (void)state;
    assert_int_equal(chat_version(), CHAT_VERSION_NUMBER);
    assert_string_equal(chat_version_string(), CHAT_VERSION_STRING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_error_names_round_trip),
        cmocka_unit_test(test_core_error_last_records_detail),
        cmocka_unit_test(test_core_version_matches_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
