/* JSON helpers: the pre-parse depth scan, duplicate keys, and the typed getters' edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "chat/errors.h"
#include "core/json.h"

/* depth_ok on a C string, after checking the input is valid JSON, so a scanner bug cannot
 * hide behind a broken test input. */
static int depth_ok(const char *s, int max)
{
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    cJSON_Delete(j);
    return chat__json_depth_ok(s, strlen(s), max);
}

/* n nested containers: "[[[...]]]" or {"a":{"a":...1}}. */
static void nest(char *buf, int n, int objects)
{
    char *p = buf;
    for (int i = 0; i < n; i++)
        p += sprintf(p, objects ? "{\"a\":" : "[");
    p += sprintf(p, "1");
    for (int i = 0; i < n; i++)
        *p++ = objects ? '}' : ']';
    *p = '\0';
}

static void test_json_depth_exact_boundary(void **state)
{
    (void)state;
    char buf[1024];
    for (int objects = 0; objects <= 1; objects++) {
        for (int d = 1; d <= 20; d++) {
            nest(buf, d, objects);
            assert_int_equal(depth_ok(buf, d), 1);
            assert_int_equal(depth_ok(buf, d - 1), 0);
        }
    }
    assert_int_equal(depth_ok("1", 0), 1);
    assert_int_equal(depth_ok("[]", 0), 0);
    /* siblings do not add up: depth is the maximum, not a count */
    assert_int_equal(depth_ok("[[1],[2],{\"a\":3},[]]", 2), 1);
    assert_int_equal(depth_ok("[[1],[2],{\"a\":3},[]]", 1), 0);
    assert_int_equal(depth_ok("[[1],[2],{\"a\":[3]}]", 3), 1);
    assert_int_equal(depth_ok("[[1],[2],{\"a\":[3]}]", 2), 0);
}

static void test_json_depth_ignores_brackets_in_strings(void **state)
{
    (void)state;
    assert_int_equal(depth_ok("[\"[[[[{{{{\"]", 1), 1);
    assert_int_equal(depth_ok("{\"[[[[\":\"]]]]}}}\"}", 1), 1);
    /* an escaped quote does not end the string, so the brackets after it still do not count */
    assert_int_equal(depth_ok("[\"a\\\"[[[[\"]", 1), 1);
    /* an escaped backslash does not escape the closing quote: the brackets after it count */
    assert_int_equal(depth_ok("[\"a\\\\\",[[1]]]", 2), 0);
    assert_int_equal(depth_ok("[\"a\\\\\",[[1]]]", 3), 1);
}

static void test_json_depth_refuses_deep_document_unparsed(void **state)
{
    (void)state;
    /* deeper than cJSON would build, and not even closed: refused by the scan alone */
    static char deep[100000];
    memset(deep, '[', sizeof deep);
    assert_int_equal(chat__json_depth_ok(deep, sizeof deep, 16), 0);
    assert_int_equal(chat__json_depth_ok(NULL, 0, 16), 1);
    assert_int_equal(chat__json_depth_ok(NULL, 1, 16), 0);
}

static int dup(const char *s)
{
    cJSON *j = cJSON_Parse(s);
    assert_non_null(j);
    int r = chat__json_has_duplicate_keys(j);
    cJSON_Delete(j);
    return r;
}

static void test_json_duplicate_keys_nested(void **state)
{
    (void)state;
    assert_int_equal(dup("{\"a\":1,\"b\":2}"), 0);
    assert_int_equal(dup("{\"a\":1,\"a\":2}"), 1);
    assert_int_equal(dup("{\"a\":1,\"A\":2}"), 0);
    assert_int_equal(dup("{\"x\":{\"y\":[1,{\"b\":1,\"c\":{\"d\":0,\"d\":1}}]}}"), 1);
    assert_int_equal(dup("[{\"a\":1},{\"a\":1}]"), 0); /* same key in sibling objects is fine */
    assert_int_equal(dup("[[{\"k\":1,\"k\":1}]]"), 1);
    assert_int_equal(chat__json_has_duplicate_keys(NULL), 0);
}

static void test_json_duplicate_keys_large_object(void **state)
{
    (void)state;
    /* more members than the pairwise path handles, so the sorted path runs */
    char buf[8192];
    char *p = buf;
    p += sprintf(p, "{");
    for (int i = 0; i < 200; i++)
        p += sprintf(p, "%s\"k%d\":%d", i ? "," : "", i, i);
    strcpy(p, "}");
    assert_int_equal(dup(buf), 0);
    strcpy(p, ",\"k0\":1}");
    assert_int_equal(dup(buf), 1);
}

static void test_json_u64_edges(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"zero\":0,\"max\":9007199254740991,\"over\":9007199254740992,"
                           "\"neg\":-1,\"frac\":1.5,\"exp\":1e3,\"negzero\":-0,\"str\":\"5\","
                           "\"t\":true,\"nul\":null,\"big\":1e300,\"tiny\":1e-300}");
    assert_non_null(j);
    uint64_t v = 42;
    assert_int_equal(chat__json_u64(j, "zero", &v), CHAT_OK);
    assert_true(v == 0);
    assert_int_equal(chat__json_u64(j, "max", &v), CHAT_OK);
    assert_true(v == 9007199254740991ULL);
    assert_int_equal(chat__json_u64(j, "exp", &v), CHAT_OK);
    assert_true(v == 1000);
    assert_int_equal(chat__json_u64(j, "negzero", &v), CHAT_OK);
    assert_true(v == 0);
    v = 42;
    const char *bad[] = {"over", "neg", "frac", "str", "t", "nul", "big", "tiny"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chat__json_u64(j, bad[i], &v), CHAT_EINVAL);
        assert_true(v == 42); /* untouched on failure */
        assert_non_null(strstr(chat_error_last()->message, bad[i]));
    }
    assert_int_equal(chat__json_u64(j, "missing", &v), CHAT_ENOTFOUND);
    assert_int_equal(chat__json_u64(j, "Zero", &v), CHAT_ENOTFOUND); /* case-sensitive */
    assert_int_equal(chat__json_u64(j, "zero", NULL), CHAT_EINVAL);
    assert_int_equal(chat__json_u64(NULL, "zero", &v), CHAT_EINVAL);
    assert_true(v == 42);
    cJSON_Delete(j);
}

static void test_json_i64_edges(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"min\":-9007199254740991,\"under\":-9007199254740992,"
                           "\"neg\":-5,\"frac\":-2.5}");
    assert_non_null(j);
    int64_t v = 42;
    assert_int_equal(chat__json_i64(j, "neg", &v), CHAT_OK);
    assert_true(v == -5);
    assert_int_equal(chat__json_i64(j, "min", &v), CHAT_OK);
    assert_true(v == -9007199254740991LL);
    assert_int_equal(chat__json_i64(j, "under", &v), CHAT_EINVAL);
    assert_int_equal(chat__json_i64(j, "frac", &v), CHAT_EINVAL);
    assert_int_equal(chat__json_i64(j, "nope", &v), CHAT_ENOTFOUND);
    assert_true(v == -9007199254740991LL);
    cJSON_Delete(j);
}

/* Integers from 10^15 on print exactly, and read back equal: cJSON's own number printing
 * turns 9007199254740991 into 9007199254740990. */
static void test_json_add_int_prints_exactly(void **state)
{
    (void)state;
    const int64_t vals[] = {0, -5, 999999999999999LL, 1000000000000001LL,
                            9007199254740991LL, -9007199254740991LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        cJSON *o = cJSON_CreateObject();
        assert_non_null(chat__json_add_int(o, "n", vals[i]));
        char *text = cJSON_PrintUnformatted(o);
        char want[48];
        snprintf(want, sizeof want, "{\"n\":%lld}", (long long)vals[i]);
        assert_string_equal(text, want);
        if (vals[i] >= -9007199254740991LL && vals[i] <= 9007199254740991LL) {
            cJSON *back = cJSON_Parse(text);
            int64_t v = 1;
            assert_int_equal(chat__json_i64(back, "n", &v), CHAT_OK);
            assert_true(v == vals[i]);
            cJSON_Delete(back);
        }
        cJSON_free(text);
        cJSON_Delete(o);
    }
}

static void test_json_str_and_bool_getters(void **state)
{
    (void)state;
    cJSON *j = cJSON_Parse("{\"s\":\"h\\u00e9\",\"n\":1,\"t\":true,\"f\":false,\"z\":0}");
    assert_non_null(j);
    size_t len = 0;
    const char *s = chat__json_str(j, "s", &len);
    assert_non_null(s);
    assert_string_equal(s, "h\xc3\xa9");
    assert_int_equal(len, 3);
    assert_null(chat__json_str(j, "n", &len));
    assert_null(chat__json_str(j, "missing", &len));
    assert_null(chat__json_str(NULL, "s", &len));
    int b = 7;
    assert_int_equal(chat__json_bool(j, "t", &b), CHAT_OK);
    assert_int_equal(b, 1);
    assert_int_equal(chat__json_bool(j, "f", &b), CHAT_OK);
    assert_int_equal(b, 0);
    b = 7;
    assert_int_equal(chat__json_bool(j, "z", &b), CHAT_EINVAL); /* 0 is not false */
    assert_int_equal(chat__json_bool(j, "missing", &b), CHAT_ENOTFOUND);
    assert_int_equal(b, 7);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_depth_exact_boundary),
        cmocka_unit_test(test_json_depth_ignores_brackets_in_strings),
        cmocka_unit_test(test_json_depth_refuses_deep_document_unparsed),
        cmocka_unit_test(test_json_duplicate_keys_nested),
        cmocka_unit_test(test_json_duplicate_keys_large_object),
        cmocka_unit_test(test_json_u64_edges),
        cmocka_unit_test(test_json_i64_edges),
        cmocka_unit_test(test_json_add_int_prints_exactly),
        cmocka_unit_test(test_json_str_and_bool_getters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
