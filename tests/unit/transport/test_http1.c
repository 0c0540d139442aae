/* chat__http1_parse and its helpers: the native transport's request heads. tests/fuzz/
 * fuzz_http1.c checks the parser against a model on random bytes; these pin each accepted form
 * and each refusal, one per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/http1.h"
#include "transport/transport.h"

/* Parse a copy of s (the parser writes into its buffer); the copy stays alive in *keep for
 * the pointers of req. */
static int parse(const char *s, chat__http1_req *req, char **keep)
{
    size_t n = strlen(s);
    char *b = malloc(n + 1);
    assert_non_null(b);
    memcpy(b, s, n + 1);
    int rc = chat__http1_parse(b, n, req);
    if (keep)
        *keep = b;
    else
        free(b);
    return rc;
}

static int parse_rc(const char *s)
{
    chat__http1_req req;
    return parse(s, &req, NULL);
}

static void test_http1_simple_get(void **state)
{
    (void)state;
    const char *s = "GET /chat HTTP/1.1\r\nHost: example\r\n\r\nBODY";
    chat__http1_req req;
    char *b;
    assert_int_equal(parse(s, &req, &b), CHAT__HTTP1_OK);
    assert_int_equal(req.method, CHAT__HTTP_GET);
    assert_int_equal(req.minor, 1);
    assert_string_equal(req.path, "/chat");
    assert_string_equal(req.query, "");
    assert_int_equal(req.content_length, -1);
    assert_int_equal(req.nfields, 1);
    assert_string_equal(req.field[0].name, "host");
    assert_string_equal(req.field[0].value, "example");
    assert_int_equal(req.head_len, strlen(s) - 4);
    assert_memory_equal(b + req.head_len, "BODY", 4); /* what follows the head is untouched */
    free(b);
}

static void test_http1_no_fields(void **state)
{
    (void)state;
    chat__http1_req req;
    assert_int_equal(parse("OPTIONS / HTTP/1.1\r\n\r\n", &req, NULL), CHAT__HTTP1_OK);
    assert_int_equal(req.nfields, 0);
    assert_int_equal(req.head_len, 22);
}

static void test_http1_leading_crlfs_skipped(void **state)
{
    (void)state;
    const char *s = "\r\n\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n";
    chat__http1_req req;
    char *b;
    assert_int_equal(parse(s, &req, &b), CHAT__HTTP1_OK);
    assert_int_equal(req.head_len, strlen(s)); /* the empty lines belong to the head */
    assert_string_equal(req.path, "/");
    assert_int_equal(req.nfields, 1);
    free(b);
    /* only empty lines so far: partial */
    assert_int_equal(parse_rc("\r\n\r\n\r\n"), CHAT__HTTP1_PARTIAL);
}

static void test_http1_methods(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int method;
    } cases[] = {
        {"GET / HTTP/1.1\r\n\r\n", CHAT__HTTP_GET},
        {"HEAD / HTTP/1.1\r\n\r\n", CHAT__HTTP_HEAD},
        {"POST / HTTP/1.1\r\n\r\n", CHAT__HTTP_POST},
        {"PUT / HTTP/1.1\r\n\r\n", CHAT__HTTP_PUT},
        {"PATCH / HTTP/1.1\r\n\r\n", CHAT__HTTP_PATCH},
        {"DELETE / HTTP/1.1\r\n\r\n", CHAT__HTTP_DELETE},
        {"OPTIONS / HTTP/1.1\r\n\r\n", CHAT__HTTP_OPTIONS},
        {"BREW / HTTP/1.1\r\n\r\n", CHAT__HTTP_OTHER},
        {"get / HTTP/1.1\r\n\r\n", CHAT__HTTP_OTHER}, /* methods are case-sensitive */
        {"GETS / HTTP/1.1\r\n\r\n", CHAT__HTTP_OTHER},
        {"M-SEARCH / HTTP/1.1\r\n\r\n", CHAT__HTTP_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        chat__http1_req req;
        assert_int_equal(parse(cases[i].line, &req, NULL), CHAT__HTTP1_OK);
        assert_int_equal(req.method, cases[i].method);
    }
}

static void test_http1_http10_and_http11(void **state)
{
    (void)state;
    chat__http1_req req;
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &req, NULL), CHAT__HTTP1_OK);
    assert_int_equal(req.minor, 0);
    assert_int_equal(parse("GET / HTTP/1.1\r\n\r\n", &req, NULL), CHAT__HTTP1_OK);
    assert_int_equal(req.minor, 1);
}

static void test_http1_other_versions_refused(void **state)
{
    (void)state;
    static const char *bad[] = {"HTTP/1.2", "HTTP/2.0", "HTTP/1.10", "HTTP/1.", "http/1.1",
                                "HTTP/1.1 ", "HTTP/0.9", "HTTP/11", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "GET / %s\r\n\r\n", bad[i]);
        assert_int_equal(parse_rc(line), CHAT__HTTP1_BAD);
    }
}

static void test_http1_query_split_at_the_first_question_mark(void **state)
{
    (void)state;
    chat__http1_req req;
    char *b;
    assert_int_equal(parse("GET /a/b?x=1&y=?2 HTTP/1.1\r\n\r\n", &req, &b), CHAT__HTTP1_OK);
    assert_string_equal(req.path, "/a/b");
    assert_string_equal(req.query, "x=1&y=?2");
    free(b);
    assert_int_equal(parse("GET /a? HTTP/1.1\r\n\r\n", &req, &b), CHAT__HTTP1_OK);
    assert_string_equal(req.path, "/a");
    assert_string_equal(req.query, "");
    free(b);
}

static void test_http1_target_kept_as_sent(void **state)
{
    (void)state;
    chat__http1_req req;
    char *b;
    assert_int_equal(parse("GET //a/./b/../%2e%2E/c%20d HTTP/1.1\r\n\r\n", &req, &b),
                     CHAT__HTTP1_OK);
    assert_string_equal(req.path, "//a/./b/../%2e%2E/c%20d");
    free(b);
}

static void test_http1_request_line_forms_refused(void **state)
{
    (void)state;
    static const char *bad[] = {
        "GET\r\n\r\n",                        /* no target */
        "GET /\r\n\r\n",                      /* no version */
        " GET / HTTP/1.1\r\n\r\n",            /* empty method */
        "GET  / HTTP/1.1\r\n\r\n",            /* two spaces */
        "GET /  HTTP/1.1\r\n\r\n",
        "GET\t/ HTTP/1.1\r\n\r\n",            /* a tab is not the separator */
        "GET * HTTP/1.1\r\n\r\n",             /* asterisk-form */
        "GET http://h/ HTTP/1.1\r\n\r\n",     /* absolute-form */
        "CONNECT h:443 HTTP/1.1\r\n\r\n",     /* authority-form */
        "G(T / HTTP/1.1\r\n\r\n",             /* not a token */
        "GET /a\x7f HTTP/1.1\r\n\r\n",        /* DEL in the target */
        "GET /\xc3\xa9 HTTP/1.1\r\n\r\n",     /* raw non-ASCII in the target */
        "GET /a\tb HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(parse_rc(bad[i]), CHAT__HTTP1_BAD);
}

static void test_http1_field_names_lower_cased_values_trimmed(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\n"
                    "Sec-WebSocket-Key:  \t abc def \t \r\n"
                    "X-Empty:\r\n"
                    "X-Blank:   \r\n"
                    "X-Obs: caf\xc3\xa9\tbar\r\n"
                    "\r\n";
    chat__http1_req req;
    char *b;
    assert_int_equal(parse(s, &req, &b), CHAT__HTTP1_OK);
    assert_int_equal(req.nfields, 4);
    assert_string_equal(req.field[0].name, "sec-websocket-key");
    assert_string_equal(req.field[0].value, "abc def"); /* inner spaces kept */
    assert_string_equal(req.field[1].name, "x-empty");
    assert_string_equal(req.field[1].value, "");
    assert_string_equal(req.field[2].value, "");
    assert_string_equal(req.field[3].value, "caf\xc3\xa9\tbar"); /* obs-text, inner tab */
    free(b);
}

static void test_http1_obs_fold_refused(void **state)
{
    (void)state;
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n"), CHAT__HTTP1_BAD);
}

static void test_http1_whitespace_before_colon_refused(void **state)
{
    (void)state;
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nHost\t: h\r\n\r\n"), CHAT__HTTP1_BAD);
}

static void test_http1_field_without_name_or_colon_refused(void **state)
{
    (void)state;
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nno colon here\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\n: empty name\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA(b: c\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\n\xc3\xa9: c\r\n\r\n"), CHAT__HTTP1_BAD);
}

static void test_http1_control_bytes_in_values_refused(void **state)
{
    (void)state;
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA: b\x01" "c\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA: \x1b[0m\r\n\r\n"), CHAT__HTTP1_BAD);
}

static void test_http1_bare_cr_or_lf_refused(void **state)
{
    (void)state;
    assert_int_equal(parse_rc("GET / HTTP/1.1\nA: b\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET / HTTP/1.1\r\nA: b\nc\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("GET /\r HTTP/1.1\r\n\r\n"), CHAT__HTTP1_BAD);
}

static void test_http1_nul_refused(void **state)
{
    (void)state;
    char s[] = "GET / HTTP/1.1\r\nA: b?c\r\n\r\n";
    *strchr(s, '?') = '\0';
    chat__http1_req req;
    assert_int_equal(chat__http1_parse(s, sizeof s - 1, &req), CHAT__HTTP1_BAD);
}

static void test_http1_transfer_encoding_refused(void **state)
{
    (void)state;
    assert_int_equal(parse_rc("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
                     CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("POST / HTTP/1.1\r\ntransfer-encoding: identity\r\n\r\n"),
                     CHAT__HTTP1_BAD);
    assert_int_equal(parse_rc("POST / HTTP/1.1\r\nTRANSFER-ENCODING:\r\n\r\n"), CHAT__HTTP1_BAD);
    assert_int_equal(
        parse_rc("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
        CHAT__HTTP1_BAD);
}

static void test_http1_content_length_read(void **state)
{
    (void)state;
    chat__http1_req req;
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 42\r\n\r\n", &req, NULL),
                     CHAT__HTTP1_OK);
    assert_int_equal(req.content_length, 42);
    assert_int_equal(parse("POST / HTTP/1.1\r\ncontent-length:0\r\n\r\n", &req, NULL),
                     CHAT__HTTP1_OK);
    assert_int_equal(req.content_length, 0);
    assert_int_equal(parse("POST / HTTP/1.1\r\nContent-Length: 007 \r\n\r\n", &req, NULL),
                     CHAT__HTTP1_OK);
    assert_int_equal(req.content_length, 7);
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nContent-Length: 999999999999999\r\n\r\n", &req, NULL),
        CHAT__HTTP1_OK);
    assert_int_equal(req.content_length, 999999999999999LL);
}

static void test_http1_content_length_not_decimal_refused(void **state)
{
    (void)state;
    static const char *bad[] = {"", "-1", "+1", "1a", "0x10", "1 2", "1,1", "1.0",
                                "1000000000000000" /* 16 digits */};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[128];
        snprintf(s, sizeof s, "POST / HTTP/1.1\r\nContent-Length: %s\r\n\r\n", bad[i]);
        assert_int_equal(parse_rc(s), CHAT__HTTP1_BAD);
    }
}

static void test_http1_content_length_twice_refused(void **state)
{
    (void)state;
    assert_int_equal(
        parse_rc("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
        CHAT__HTTP1_BAD);
    assert_int_equal(
        parse_rc("POST / HTTP/1.1\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n"),
        CHAT__HTTP1_BAD);
}

/* A head with nfields fields "F<i>: v". */
static char *head_with_fields(int nfields)
{
    char *s = malloc(32 + (size_t)nfields * 16);
    assert_non_null(s);
    size_t n = (size_t)sprintf(s, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < nfields; i++)
        n += (size_t)sprintf(s + n, "F%d: v\r\n", i);
    strcpy(s + n, "\r\n");
    return s;
}

static void test_http1_field_count_limit(void **state)
{
    (void)state;
    char *s = head_with_fields(CHAT__HTTP1_MAX_FIELDS);
    chat__http1_req req;
    assert_int_equal(parse(s, &req, NULL), CHAT__HTTP1_OK);
    assert_int_equal(req.nfields, CHAT__HTTP1_MAX_FIELDS);
    free(s);
    s = head_with_fields(CHAT__HTTP1_MAX_FIELDS + 1);
    assert_int_equal(parse_rc(s), CHAT__HTTP1_BAD);
    free(s);
}

static void test_http1_partial_until_the_blank_line(void **state)
{
    (void)state;
    const char *s = "\r\nGET /x?y HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n";
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++) {
        char *b = malloc(i + 1);
        assert_non_null(b);
        memcpy(b, s, i);
        chat__http1_req req;
        assert_int_equal(chat__http1_parse(b, i, &req), CHAT__HTTP1_PARTIAL);
        free(b);
    }
    assert_int_equal(parse_rc(s), CHAT__HTTP1_OK);
}

/* A head of exactly total bytes (a long field pads it), blank line included. */
static char *head_of(size_t total)
{
    const char *start = "GET / HTTP/1.1\r\nX: ";
    char *s = malloc(total + 1);
    assert_non_null(s);
    size_t sl = strlen(start);
    memcpy(s, start, sl);
    memset(s + sl, 'a', total - sl - 4);
    memcpy(s + total - 4, "\r\n\r\n", 5);
    return s;
}

static void test_http1_head_of_8_kib_accepted(void **state)
{
    (void)state;
    char *s = head_of(CHAT__HTTP1_MAX_HEAD);
    chat__http1_req req;
    assert_int_equal(parse(s, &req, NULL), CHAT__HTTP1_OK);
    assert_int_equal(req.head_len, CHAT__HTTP1_MAX_HEAD);
    free(s);
}

static void test_http1_head_over_8_kib_too_long(void **state)
{
    (void)state;
    char *s = head_of(CHAT__HTTP1_MAX_HEAD + 1);
    assert_int_equal(parse_rc(s), CHAT__HTTP1_TOO_LONG);
    /* without the blank line: partial up to the limit, too long from it on */
    s[CHAT__HTTP1_MAX_HEAD - 1] = '\0';
    assert_int_equal(parse_rc(s), CHAT__HTTP1_PARTIAL);
    memset(s + CHAT__HTTP1_MAX_HEAD - 8, 'a', 8);
    s[CHAT__HTTP1_MAX_HEAD] = '\0';
    assert_int_equal(parse_rc(s), CHAT__HTTP1_TOO_LONG);
    free(s);
}

static void test_http1_field_get_counts_repeats(void **state)
{
    (void)state;
    chat__http1_req req;
    char *b;
    assert_int_equal(parse("GET / HTTP/1.1\r\nUpgrade: a\r\nHost: h\r\nupgrade: b\r\n\r\n", &req,
                           &b),
                     CHAT__HTTP1_OK);
    int count = -1;
    assert_string_equal(chat__http1_field_get(&req, "upgrade", &count), "a"); /* the first */
    assert_int_equal(count, 2);
    assert_string_equal(chat__http1_field_get(&req, "host", &count), "h");
    assert_int_equal(count, 1);
    assert_null(chat__http1_field_get(&req, "origin", &count));
    assert_int_equal(count, 0);
    assert_null(chat__http1_field_get(&req, "Host", NULL)); /* names are looked up lower case */
    free(b);
}

static void test_http1_has_token(void **state)
{
    (void)state;
    assert_true(chat__http1_has_token("Upgrade", "upgrade"));
    assert_true(chat__http1_has_token("keep-alive, Upgrade", "upgrade"));
    assert_true(chat__http1_has_token(" ,, websocket \t, x", "WebSocket"));
    assert_true(chat__http1_has_token("a,libchat.v1", "libchat.v1"));
    assert_false(chat__http1_has_token("upgrades", "upgrade"));
    assert_false(chat__http1_has_token("grade", "upgrade"));
    assert_false(chat__http1_has_token("up grade", "upgrade"));
    assert_false(chat__http1_has_token("", "upgrade"));
    assert_false(chat__http1_has_token(NULL, "upgrade"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http1_simple_get),
        cmocka_unit_test(test_http1_no_fields),
        cmocka_unit_test(test_http1_leading_crlfs_skipped),
        cmocka_unit_test(test_http1_methods),
        cmocka_unit_test(test_http1_http10_and_http11),
        cmocka_unit_test(test_http1_other_versions_refused),
        cmocka_unit_test(test_http1_query_split_at_the_first_question_mark),
        cmocka_unit_test(test_http1_target_kept_as_sent),
        cmocka_unit_test(test_http1_request_line_forms_refused),
        cmocka_unit_test(test_http1_field_names_lower_cased_values_trimmed),
        cmocka_unit_test(test_http1_obs_fold_refused),
        cmocka_unit_test(test_http1_whitespace_before_colon_refused),
        cmocka_unit_test(test_http1_field_without_name_or_colon_refused),
        cmocka_unit_test(test_http1_control_bytes_in_values_refused),
        cmocka_unit_test(test_http1_bare_cr_or_lf_refused),
        cmocka_unit_test(test_http1_nul_refused),
        cmocka_unit_test(test_http1_transfer_encoding_refused),
        cmocka_unit_test(test_http1_content_length_read),
        cmocka_unit_test(test_http1_content_length_not_decimal_refused),
        cmocka_unit_test(test_http1_content_length_twice_refused),
        cmocka_unit_test(test_http1_field_count_limit),
        cmocka_unit_test(test_http1_partial_until_the_blank_line),
        cmocka_unit_test(test_http1_head_of_8_kib_accepted),
        cmocka_unit_test(test_http1_head_over_8_kib_too_long),
        cmocka_unit_test(test_http1_field_get_counts_repeats),
        cmocka_unit_test(test_http1_has_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
