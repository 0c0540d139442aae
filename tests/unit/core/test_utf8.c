/* chat__utf8_feed / chat__utf8_valid: RFC 3629 validation, whole or streamed. Boundary cases one
 * by one, then every short string against the fuzz harnesses' decoding model (fuzz.h), and
 * streaming split at every byte against the one-piece verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/utf8.h"

#include "../../fuzz/fuzz.h"

#define VALID(s) chat__utf8_valid((const unsigned char *)(s), sizeof(s) - 1)

static void test_utf8_ascii_and_empty_are_valid(void **state)
{
    (void)state;
    assert_true(chat__utf8_valid(NULL, 0));
    assert_true(VALID("hello, world"));
    assert_true(VALID("\x00\x7f"));
}

static void test_utf8_range_edges_are_valid(void **state)
{
    (void)state;
    assert_true(VALID("\xc2\x80"));             /* U+0080 */
    assert_true(VALID("\xdf\xbf"));             /* U+07FF */
    assert_true(VALID("\xe0\xa0\x80"));         /* U+0800 */
    assert_true(VALID("\xed\x9f\xbf"));         /* U+D7FF, below the surrogates */
    assert_true(VALID("\xee\x80\x80"));         /* U+E000, above them */
    assert_true(VALID("\xef\xbf\xbf"));         /* U+FFFF */
    assert_true(VALID("\xf0\x90\x80\x80"));     /* U+10000 */
    assert_true(VALID("\xf4\x8f\xbf\xbf"));     /* U+10FFFF */
}

static void test_utf8_overlong_two_byte_forms_refused(void **state)
{
    (void)state;
    assert_false(VALID("\xc0\x80"));
    assert_false(VALID("\xc0\xaf"));
    assert_false(VALID("\xc1\xbf"));
}

static void test_utf8_overlong_three_byte_forms_refused(void **state)
{
    (void)state;
    assert_false(VALID("\xe0\x80\x80"));
    assert_false(VALID("\xe0\x9f\xbf"));
}

static void test_utf8_overlong_four_byte_forms_refused(void **state)
{
    (void)state;
    assert_false(VALID("\xf0\x80\x80\x80"));
    assert_false(VALID("\xf0\x8f\xbf\xbf"));
}

static void test_utf8_surrogates_refused(void **state)
{
    (void)state;
    assert_false(VALID("\xed\xa0\x80")); /* U+D800 */
    assert_false(VALID("\xed\xbf\xbf")); /* U+DFFF */
    assert_false(VALID("\xed\xa0\xbd\xed\xb8\x80")); /* a CESU-8 pair */
}

static void test_utf8_above_10ffff_refused(void **state)
{
    (void)state;
    assert_false(VALID("\xf4\x90\x80\x80"));
    assert_false(VALID("\xf4\xbf\xbf\xbf"));
}

static void test_utf8_f5_and_above_refused(void **state)
{
    (void)state;
    for (unsigned c = 0xf5; c <= 0xff; c++) {
        unsigned char s[4] = {(unsigned char)c, 0x80, 0x80, 0x80};
        assert_false(chat__utf8_valid(s, 1));
        assert_false(chat__utf8_valid(s, 4));
    }
}

static void test_utf8_lone_continuation_refused(void **state)
{
    (void)state;
    assert_false(VALID("\x80"));
    assert_false(VALID("a\xbf"));
    assert_false(VALID("\xc2\x80\x80"));
}

static void test_utf8_bad_continuation_refused(void **state)
{
    (void)state;
    assert_false(VALID("\xc2\x41"));
    assert_false(VALID("\xe1\x80\x41"));
    assert_false(VALID("\xf1\x80\x80\xc0"));
    assert_false(VALID("\xe1\xc0\x80"));
}

static void test_utf8_truncated_sequence_is_incomplete_not_refused(void **state)
{
    (void)state;
    static const char *prefixes[] = {"\xc2", "\xe0\xa0", "\xed\x9f", "\xf0\x90\x80", "\xf4\x8f",
                                     "ab\xe2\x82"};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        const unsigned char *p = (const unsigned char *)prefixes[i];
        size_t n = strlen(prefixes[i]);
        uint32_t st = 0;
        assert_int_equal(chat__utf8_feed(&st, p, n), 0);
        assert_false(chat__utf8_complete(st));
        assert_false(chat__utf8_valid(p, n));
    }
}

static void test_utf8_feed_refuses_at_the_first_impossible_byte(void **state)
{
    (void)state;
    /* E0 can only be followed by A0..BF: the 80 is refused at once, before the text ends. */
    uint32_t st = 0;
    assert_int_equal(chat__utf8_feed(&st, (const unsigned char *)"ok\xe0", 3), 0);
    assert_int_equal(chat__utf8_feed(&st, (const unsigned char *)"\x80", 1), -1);
    st = 0;
    assert_int_equal(chat__utf8_feed(&st, (const unsigned char *)"\xed", 1), 0);
    assert_int_equal(chat__utf8_feed(&st, (const unsigned char *)"\xa0", 1), -1);
    st = 0;
    assert_int_equal(chat__utf8_feed(&st, (const unsigned char *)"\xf4", 1), 0);
    assert_int_equal(chat__utf8_feed(&st, (const unsigned char *)"\x90", 1), -1);
}

/* The verdict of feeding s in the pieces [0,a), [a,b), [b,n). */
static int verdict3(const unsigned char *s, size_t n, size_t a, size_t b)
{
    uint32_t st = 0;
    return chat__utf8_feed(&st, s, a) == 0 && chat__utf8_feed(&st, s + a, b - a) == 0 &&
           chat__utf8_feed(&st, s + b, n - b) == 0 && chat__utf8_complete(st);
}

static void test_utf8_streamed_at_every_split_gives_the_same_verdict(void **state)
{
    (void)state;
    static const char *texts[] = {
        "plain ascii text, longer than eight bytes",
        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf end",
        "0123456\xe2\x82\xac" "89abcdef\xc3\xa9",
        "eight by\xed\xa0\x80tes then a surrogate",
        "overlong \xe0\x80\x80 inside",
        "ends mid character \xf0\x9f\x98",
        "\xf4\x90\x80\x80 too high",
        "\xc1\xbf",
    };
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        const unsigned char *s = (const unsigned char *)texts[t];
        size_t n = strlen(texts[t]);
        int whole = chat__utf8_valid(s, n);
        assert_int_equal(whole, fuzz_utf8_valid(s, n));
        for (size_t a = 0; a <= n; a++)
            for (size_t b = a; b <= n; b++)
                assert_int_equal(verdict3(s, n, a, b), whole);
        uint32_t st = 0;
        int ok = 1;
        for (size_t i = 0; i < n && ok; i++)
            ok = chat__utf8_feed(&st, s + i, 1) == 0;
        assert_int_equal(ok && chat__utf8_complete(st), whole);
    }
}

static void test_utf8_multibyte_at_every_offset_of_an_ascii_run(void **state)
{
    (void)state;
    /* The ASCII run is checked eight bytes at a time: put a character (valid or not) at every
     * offset of a 24-byte run, at every alignment of the buffer. */
    static const char *chars[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xed\xa0\x80",
                                  "\x80", "\xff"};
    unsigned char buf[64];
    for (size_t c = 0; c < sizeof chars / sizeof chars[0]; c++) {
        size_t cl = strlen(chars[c]);
        for (size_t align = 0; align < 8; align++)
            for (size_t off = 0; off + cl <= 24; off++) {
                unsigned char *s = buf + align;
                memset(s, 'a', 24);
                memcpy(s + off, chars[c], cl);
                assert_int_equal(chat__utf8_valid(s, 24), c < 3);
            }
    }
}

static void test_utf8_agrees_with_a_decoder_on_every_short_string(void **state)
{
    (void)state;
    /* Every string of one and two bytes, every three-byte string that starts with a lead byte,
     * and four-byte strings over each lead and second byte with edge continuations. */
    unsigned char s[4];
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        assert_int_equal(chat__utf8_valid(s, 1), fuzz_utf8_valid(s, 1));
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            assert_int_equal(chat__utf8_valid(s, 2), fuzz_utf8_valid(s, 2));
            if (a < 0xc0)
                continue;
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                assert_int_equal(chat__utf8_valid(s, 3), fuzz_utf8_valid(s, 3));
            }
            static const unsigned char edge[] = {0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f,
                                                 0xa0, 0xbf, 0xc0, 0xff};
            for (size_t c = 0; c < sizeof edge; c++)
                for (size_t d = 0; d < sizeof edge; d++) {
                    s[2] = edge[c];
                    s[3] = edge[d];
                    assert_int_equal(chat__utf8_valid(s, 4), fuzz_utf8_valid(s, 4));
                }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_ascii_and_empty_are_valid),
        cmocka_unit_test(test_utf8_range_edges_are_valid),
        cmocka_unit_test(test_utf8_overlong_two_byte_forms_refused),
        cmocka_unit_test(test_utf8_overlong_three_byte_forms_refused),
        cmocka_unit_test(test_utf8_overlong_four_byte_forms_refused),
        cmocka_unit_test(test_utf8_surrogates_refused),
        cmocka_unit_test(test_utf8_above_10ffff_refused),
        cmocka_unit_test(test_utf8_f5_and_above_refused),
        cmocka_unit_test(test_utf8_lone_continuation_refused),
        cmocka_unit_test(test_utf8_bad_continuation_refused),
        cmocka_unit_test(test_utf8_truncated_sequence_is_incomplete_not_refused),
        cmocka_unit_test(test_utf8_feed_refuses_at_the_first_impossible_byte),
        cmocka_unit_test(test_utf8_streamed_at_every_split_gives_the_same_verdict),
        cmocka_unit_test(test_utf8_multibyte_at_every_offset_of_an_ascii_run),
        cmocka_unit_test(test_utf8_agrees_with_a_decoder_on_every_short_string),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
