/* chat__wsrx_feed: the server's RFC 6455 receiver, and chat__ws_header for outgoing frames.
 * tests/fuzz/fuzz_wsrx.c checks the receiver against a model of RFC 6455; these pin each
 * behaviour the native transport relies on, one per test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "transport/wsrx.h"

#define FIN 0x80
#define TEXT (FIN | CHAT__WS_OP_TEXT)
#define BINARY (FIN | CHAT__WS_OP_BINARY)
#define CONT_FIN (FIN | CHAT__WS_OP_CONT)
#define PING (FIN | CHAT__WS_OP_PING)
#define PONG (FIN | CHAT__WS_OP_PONG)
#define CLOSE (FIN | CHAT__WS_OP_CLOSE)
#define CAP 1024
#define FRAGS 8

/* ---- encoding frames as a client sends them ------------------------------------------------ */

/* A masked frame with first byte b0 and payload p[0..n) at out; form is the length encoding (7,
 * 16 or 64 bits, 0 for the shortest). Returns its size. */
static size_t frame_x(unsigned char *out, unsigned b0, int form, uint32_t key, const void *p,
                      size_t n)
{
    if (!form)
        form = n < 126 ? 7 : n <= 0xFFFF ? 16 : 64;
    size_t h = 0;
    out[h++] = (unsigned char)b0;
    if (form == 7) {
        out[h++] = (unsigned char)(0x80 | n);
    } else if (form == 16) {
        out[h++] = 0x80 | 126;
        out[h++] = (unsigned char)(n >> 8);
        out[h++] = (unsigned char)n;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[h++] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    unsigned char mask[4] = {(unsigned char)(key >> 24), (unsigned char)(key >> 16),
                             (unsigned char)(key >> 8), (unsigned char)key};
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = ((const unsigned char *)p)[i] ^ mask[i & 3];
    return h + n;
}

static size_t frame(unsigned char *out, unsigned b0, const void *p, size_t n)
{
    return frame_x(out, b0, 0, 0x37FA213Du, p, n);
}

static size_t frame_s(unsigned char *out, unsigned b0, const char *s)
{
    return frame(out, b0, s, strlen(s));
}

/* ---- what the receiver hands over ---------------------------------------------------------- */

typedef struct rec {
    unsigned char *log; /* per event: kind ('m' or 'c'), flag or op, 8 bytes of length, bytes */
    size_t n, cap;
    int events, stop_at; /* stop_at: return non-zero from this event on (0: never) */
    const unsigned char *in_lo, *in_hi; /* the input fed now */
    int from_input;      /* messages handed over from the input itself */
    int unterminated;    /* messages whose buf[len] was not a NUL */
} rec;

static void log_event(rec *r, int kind, int flag, const void *p, size_t len)
{
    if (r->n + 10 + len > r->cap) {
        r->cap = (r->n + 10 + len) * 2;
        r->log = realloc(r->log, r->cap);
        assert_non_null(r->log);
    }
    r->log[r->n++] = (unsigned char)kind;
    r->log[r->n++] = (unsigned char)flag;
    for (int i = 0; i < 8; i++)
        r->log[r->n++] = (unsigned char)((uint64_t)len >> (8 * i));
    if (len)
        memcpy(r->log + r->n, p, len);
    r->n += len;
    r->events++;
}

static int on_message(void *ud, const char *buf, size_t len, int binary)
{
    rec *r = ud;
    assert_non_null(buf);
    if (buf[len] != '\0')
        r->unterminated++;
    if ((const unsigned char *)buf >= r->in_lo && (const unsigned char *)buf < r->in_hi)
        r->from_input++;
    log_event(r, 'm', binary, buf, len);
    return r->stop_at && r->events >= r->stop_at;
}

static int on_control(void *ud, int op, const unsigned char *p, size_t len)
{
    rec *r = ud;
    assert_true(len <= 125);
    log_event(r, 'c', op, p, len);
    return r->stop_at && r->events >= r->stop_at;
}

static const chat__wsrx_cb cb = {on_message, on_control};

/* Feed in[0..n) as one read: copied into a buffer of its own with a writable byte after it (a
 * transport's read buffer). */
static int feed_ex(chat__wsrx *w, rec *r, const unsigned char *in, size_t n, size_t max_bytes,
                   int64_t max_frags)
{
    unsigned char *b = malloc(n + 1);
    assert_non_null(b);
    if (n)
        memcpy(b, in, n);
    b[n] = 0xEE;
    r->in_lo = b;
    r->in_hi = b + n + 1;
    int rc = chat__wsrx_feed(w, b, n, max_bytes, max_frags, &cb, r);
    assert_int_equal(b[n], 0xEE); /* the byte after the input is given back */
    free(b);
    return rc;
}

/* A fresh receiver fed in[0..n) in the pieces cut at cuts[0..ncuts) (increasing); the first
 * non-OK result, or OK. */
static int feed_cut(rec *r, const unsigned char *in, size_t n, const size_t *cuts, size_t ncuts,
                    size_t max_bytes, int64_t max_frags)
{
    chat__wsrx w = {0};
    size_t at = 0;
    int rc = CHAT__WSRX_OK;
    for (size_t i = 0; i <= ncuts && rc == CHAT__WSRX_OK; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        rc = feed_ex(&w, r, in + at, to - at, max_bytes, max_frags);
        at = to;
    }
    chat__wsrx_reset(&w);
    return rc;
}

static int feed_whole(rec *r, const unsigned char *in, size_t n)
{
    return feed_cut(r, in, n, NULL, 0, CAP, FRAGS);
}

/* The log as it should be. */
static void expect_message(rec *want, int binary, const void *p, size_t len)
{
    log_event(want, 'm', binary, p, len);
}

static void expect_control(rec *want, int op, const void *p, size_t len)
{
    log_event(want, 'c', op, p, len);
}

static void assert_same_log(const rec *got, const rec *want)
{
    assert_int_equal(got->events, want->events);
    assert_int_equal(got->n, want->n);
    if (want->n)
        assert_memory_equal(got->log, want->log, want->n);
    assert_int_equal(got->unterminated, 0);
}

static void rec_clear(rec *r)
{
    free(r->log);
    memset(r, 0, sizeof *r);
}

/* ---- messages ------------------------------------------------------------------------------ */

static void test_wsrx_text_message_handed_over(void **state)
{
    (void)state;
    unsigned char w[64];
    size_t n = frame_s(w, TEXT, "hello");
    rec got = {0}, want = {0};
    assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_OK);
    expect_message(&want, 0, "hello", 5);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_binary_message_flagged(void **state)
{
    (void)state;
    unsigned char w[64];
    size_t n = frame(w, BINARY, "\x00\xff\x80", 3);
    rec got = {0}, want = {0};
    assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_OK);
    expect_message(&want, 1, "\x00\xff\x80", 3);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_fragments_joined_around_control_frames(void **state)
{
    (void)state;
    unsigned char w[256];
    size_t n = frame_s(w, CHAT__WS_OP_TEXT, "frag");
    n += frame_s(w + n, PING, "p1");
    n += frame_s(w + n, CHAT__WS_OP_CONT, "men");
    n += frame_s(w + n, PONG, "");
    n += frame_s(w + n, CLOSE, "\x03\xe8"); /* a close between fragments is handed over too */
    n += frame_s(w + n, CONT_FIN, "ted");
    rec got = {0}, want = {0};
    assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_OK);
    expect_control(&want, CHAT__WS_OP_PING, "p1", 2);
    expect_control(&want, CHAT__WS_OP_PONG, "", 0);
    expect_control(&want, CHAT__WS_OP_CLOSE, "\x03\xe8", 2);
    expect_message(&want, 0, "fragmented", 10);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_control_frames_do_not_count_as_fragments(void **state)
{
    (void)state;
    unsigned char w[256];
    size_t n = frame_s(w, CHAT__WS_OP_TEXT, "a");
    for (int i = 0; i < 5; i++)
        n += frame_s(w + n, PING, "");
    n += frame_s(w + n, CONT_FIN, "b");
    rec got = {0};
    assert_int_equal(feed_cut(&got, w, n, NULL, 0, CAP, 2), CHAT__WSRX_OK);
    assert_int_equal(got.events, 6);
    rec_clear(&got);
}

/* A stream with every kind of frame: single-frame text (the fast path), a fragmented text with
 * control frames between and a character split across fragments, 16- and 64-bit lengths, a
 * binary message, an empty message, a close. */
static size_t mixed_stream(unsigned char *w, rec *want)
{
    size_t n = frame_s(w, TEXT, "hello");
    expect_message(want, 0, "hello", 5);
    n += frame_x(w + n, CHAT__WS_OP_TEXT, 7, 0x01020304u, "caf\xc3", 4);
    n += frame_x(w + n, PING, 7, 0xA0B0C0D0u, "ping", 4);
    n += frame_x(w + n, CHAT__WS_OP_CONT, 16, 0xFFFFFFFFu, "\xa9 ", 2);
    n += frame_x(w + n, PONG, 7, 0x00000000u, "", 0);
    n += frame_x(w + n, CONT_FIN, 64, 0x12345678u, "au lait", 7);
    expect_control(want, CHAT__WS_OP_PING, "ping", 4);
    expect_control(want, CHAT__WS_OP_PONG, "", 0);
    expect_message(want, 0, "caf\xc3\xa9 au lait", 13);
    n += frame_x(w + n, BINARY, 16, 0x5A5A5A5Au, "\x01\x02\x03\x04\x05", 5);
    expect_message(want, 1, "\x01\x02\x03\x04\x05", 5);
    n += frame_x(w + n, TEXT, 64, 0x9E3779B9u, "sixty-four bits", 15);
    expect_message(want, 0, "sixty-four bits", 15);
    n += frame_s(w + n, TEXT, "");
    expect_message(want, 0, "", 0);
    n += frame_s(w + n, CLOSE, "\x03\xe8" "bye");
    expect_control(want, CHAT__WS_OP_CLOSE, "\x03\xe8" "bye", 5);
    return n;
}

static void test_wsrx_same_messages_fed_whole_or_byte_by_byte(void **state)
{
    (void)state;
    unsigned char w[512];
    rec want = {0}, got = {0};
    size_t n = mixed_stream(w, &want);
    assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    assert_true(got.from_input > 0); /* the single-frame text went without a copy */
    rec_clear(&got);
    size_t cuts[512];
    for (size_t i = 0; i + 1 < n; i++)
        cuts[i] = i + 1;
    assert_int_equal(feed_cut(&got, w, n, cuts, n - 1, CAP, FRAGS), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_same_messages_split_in_two_at_every_byte(void **state)
{
    (void)state;
    unsigned char w[512];
    rec want = {0};
    size_t n = mixed_stream(w, &want);
    for (size_t cut = 0; cut <= n; cut++) {
        rec got = {0};
        assert_int_equal(feed_cut(&got, w, n, &cut, 1, CAP, FRAGS), CHAT__WSRX_OK);
        assert_same_log(&got, &want);
        rec_clear(&got);
    }
    rec_clear(&want);
}

static void test_wsrx_unmasks_at_every_mask_offset_and_alignment(void **state)
{
    (void)state;
    /* A payload long enough for the eight-bytes-at-a-time unmasking, cut so that each piece
     * starts at every position in the mask, at every alignment of the input. */
    char text[61];
    for (int i = 0; i < 60; i++)
        text[i] = (char)('A' + i % 26);
    text[60] = '\0';
    static const uint32_t keys[] = {0x00000000u, 0xFFFFFFFFu, 0x01020304u, 0x80C0E0F0u};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (unsigned b0 = TEXT; b0 <= BINARY; b0++) {
            unsigned char w[128];
            size_t n = frame_x(w, b0, 0, keys[k], text, 60);
            rec want = {0};
            expect_message(&want, b0 == BINARY, text, 60);
            for (size_t first = 6; first <= n; first++)
                for (size_t second = first; second <= n && second < first + 9; second++) {
                    size_t cuts[2] = {first, second};
                    rec got = {0};
                    assert_int_equal(feed_cut(&got, w, n, cuts, 2, CAP, FRAGS), CHAT__WSRX_OK);
                    assert_same_log(&got, &want);
                    rec_clear(&got);
                }
            for (size_t align = 0; align < 8; align++) {
                unsigned char buf[160];
                memcpy(buf + align, w, n);
                rec got = {0};
                chat__wsrx r = {0};
                got.in_lo = buf;
                got.in_hi = buf + sizeof buf;
                assert_int_equal(chat__wsrx_feed(&r, buf + align, n, CAP, FRAGS, &cb, &got),
                                 CHAT__WSRX_OK);
                assert_same_log(&got, &want);
                chat__wsrx_reset(&r);
                rec_clear(&got);
            }
            rec_clear(&want);
        }
}

static void test_wsrx_fast_path_restores_the_byte_after_the_payload(void **state)
{
    (void)state;
    unsigned char w[64];
    size_t first = frame_s(w, TEXT, "abc");
    size_t n = first + frame_s(w + first, TEXT, "de");
    unsigned char buf[65];
    memcpy(buf, w, n);
    buf[n] = 'Z';
    rec got = {0}, want = {0};
    got.in_lo = buf;
    got.in_hi = buf + n + 1;
    chat__wsrx r = {0};
    assert_int_equal(chat__wsrx_feed(&r, buf, n, CAP, FRAGS, &cb, &got), CHAT__WSRX_OK);
    expect_message(&want, 0, "abc", 3);
    expect_message(&want, 0, "de", 2);
    assert_same_log(&got, &want);   /* each NUL-terminated during its call */
    assert_int_equal(got.from_input, 2);
    assert_int_equal(buf[first], TEXT); /* the next frame's first byte, written back */
    assert_int_equal(buf[n], 'Z');      /* and the caller's byte after the input */
    assert_memory_equal(buf + first - 3, "abc", 3); /* the payload is unmasked in place */
    chat__wsrx_reset(&r);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_16_bit_lengths(void **state)
{
    (void)state;
    static const size_t lens[] = {126, 1000, 65535};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t len = lens[i];
        char *p = malloc(len);
        unsigned char *w = malloc(len + 16);
        assert_true(p && w);
        memset(p, 'x', len);
        size_t n = frame(w, TEXT, p, len);
        assert_int_equal(n, len + 8);
        assert_int_equal(w[1], 0x80 | 126);
        rec got = {0}, want = {0};
        expect_message(&want, 0, p, len);
        assert_int_equal(feed_cut(&got, w, n, NULL, 0, 65536, FRAGS), CHAT__WSRX_OK);
        assert_same_log(&got, &want);
        rec_clear(&got);
        size_t cut = 3; /* inside the length */
        assert_int_equal(feed_cut(&got, w, n, &cut, 1, 65536, FRAGS), CHAT__WSRX_OK);
        assert_same_log(&got, &want);
        rec_clear(&got);
        rec_clear(&want);
        free(p);
        free(w);
    }
}

static void test_wsrx_64_bit_lengths(void **state)
{
    (void)state;
    size_t len = 70000;
    char *p = malloc(len);
    unsigned char *w = malloc(len + 16);
    assert_true(p && w);
    memset(p, 'y', len);
    size_t n = frame(w, BINARY, p, len);
    assert_int_equal(n, len + 14);
    assert_int_equal(w[1], 0x80 | 127);
    rec got = {0}, want = {0};
    expect_message(&want, 1, p, len);
    for (size_t cut = 0; cut <= 16; cut++) { /* every cut through the header */
        assert_int_equal(feed_cut(&got, w, n, &cut, 1, len, FRAGS), CHAT__WSRX_OK);
        assert_same_log(&got, &want);
        rec_clear(&got);
    }
    rec_clear(&want);
    free(p);
    free(w);
}

static void test_wsrx_64_bit_length_with_top_bit_refused(void **state)
{
    (void)state;
    unsigned char w[16] = {TEXT, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    rec got = {0};
    assert_int_equal(feed_whole(&got, w, 14), CHAT__WSRX_PROTOCOL);
    rec_clear(&got);
}

static void test_wsrx_empty_messages(void **state)
{
    (void)state;
    unsigned char w[128];
    size_t n = frame_s(w, TEXT, "");
    n += frame_s(w + n, BINARY, "");
    n += frame_s(w + n, CHAT__WS_OP_TEXT, "");
    n += frame_s(w + n, CHAT__WS_OP_CONT, "");
    n += frame_s(w + n, CONT_FIN, "");
    rec got = {0}, want = {0};
    expect_message(&want, 0, "", 0);
    expect_message(&want, 1, "", 0);
    expect_message(&want, 0, "", 0);
    assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_OK);
    assert_same_log(&got, &want); /* each with a buffer holding a NUL */
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_empty_message_after_a_longer_one_is_nul_terminated(void **state)
{
    (void)state;
    /* The first message leaves its bytes in the kept buffer; the empty one after it must not
     * show them. */
    unsigned char w[128];
    size_t n = frame_s(w, CHAT__WS_OP_BINARY, "left");
    n += frame_s(w + n, CONT_FIN, "over");
    n += frame_s(w + n, BINARY, "");
    rec got = {0}, want = {0};
    expect_message(&want, 1, "leftover", 8);
    expect_message(&want, 1, "", 0);
    assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_large_buffer_freed_after_its_message(void **state)
{
    (void)state;
    static char big[CHAT__WSRX_KEEP_BYTES + 100];
    memset(big, 'b', sizeof big);
    unsigned char *w = malloc(2 * sizeof big);
    assert_non_null(w);
    size_t n = frame(w, CHAT__WS_OP_TEXT, big, sizeof big / 2);
    n += frame(w + n, CONT_FIN, big, sizeof big / 2);
    chat__wsrx r = {0};
    rec got = {0};
    assert_int_equal(feed_ex(&r, &got, w, n, 65536, FRAGS), CHAT__WSRX_OK);
    assert_int_equal(got.events, 1);
    assert_null(r.buf);
    n = frame_s(w, CHAT__WS_OP_TEXT, "sm");
    n += frame_s(w + n, CONT_FIN, "all");
    assert_int_equal(feed_ex(&r, &got, w, n, 65536, FRAGS), CHAT__WSRX_OK);
    assert_int_equal(got.events, 2);
    assert_non_null(r.buf); /* a small one is kept for the next message */
    chat__wsrx_reset(&r);
    free(w);
    rec_clear(&got);
}

/* ---- the caps ------------------------------------------------------------------------------ */

/* Feed only the header of w (hl bytes), one byte at a time: OK until its last byte, which gets
 * rc. */
static void assert_refused_at_header(const unsigned char *w, size_t hl, size_t max_bytes,
                                     int64_t max_frags, int rc)
{
    chat__wsrx r = {0};
    rec got = {0};
    for (size_t i = 0; i + 1 < hl; i++)
        assert_int_equal(feed_ex(&r, &got, w + i, 1, max_bytes, max_frags), CHAT__WSRX_OK);
    assert_int_equal(feed_ex(&r, &got, w + hl - 1, 1, max_bytes, max_frags), rc);
    chat__wsrx_reset(&r);
    /* and the same header in one read */
    assert_int_equal(feed_ex(&r, &got, w, hl, max_bytes, max_frags), rc);
    chat__wsrx_reset(&r);
    rec_clear(&got);
}

static void test_wsrx_over_cap_refused_at_the_header(void **state)
{
    (void)state;
    static char p[70000];
    unsigned char *w = malloc(sizeof p + 16);
    assert_non_null(w);
    /* 7-bit, 16-bit (both single-frame text: the fast path) and 64-bit lengths, one over */
    frame_x(w, TEXT, 7, 1, p, 101);
    assert_refused_at_header(w, 6, 100, FRAGS, CHAT__WSRX_TOO_BIG);
    frame_x(w, TEXT, 16, 1, p, 1001);
    assert_refused_at_header(w, 8, 1000, FRAGS, CHAT__WSRX_TOO_BIG);
    frame_x(w, BINARY, 16, 1, p, 1001);
    assert_refused_at_header(w, 8, 1000, FRAGS, CHAT__WSRX_TOO_BIG);
    frame_x(w, TEXT, 64, 1, p, 70000);
    assert_refused_at_header(w, 14, 69999, FRAGS, CHAT__WSRX_TOO_BIG);
    /* the whole frame in one read (the fast path) is refused too, and nothing handed over */
    size_t n = frame_x(w, TEXT, 7, 1, p, 101);
    chat__wsrx r = {0};
    rec got = {0};
    assert_int_equal(feed_ex(&r, &got, w, n, 100, FRAGS), CHAT__WSRX_TOO_BIG);
    assert_int_equal(got.events, 0);
    chat__wsrx_reset(&r);
    rec_clear(&got);
    /* a length of 2^63 - 1 */
    unsigned char huge[14] = {BINARY, 0x80 | 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_refused_at_header(huge, 14, CAP, FRAGS, CHAT__WSRX_TOO_BIG);
    free(w);
}

static void test_wsrx_exactly_the_cap_accepted(void **state)
{
    (void)state;
    static char p[100];
    memset(p, 'c', sizeof p);
    unsigned char w[256];
    size_t n = frame(w, TEXT, p, 100);
    rec got = {0};
    assert_int_equal(feed_cut(&got, w, n, NULL, 0, 100, FRAGS), CHAT__WSRX_OK);
    assert_int_equal(got.events, 1);
    rec_clear(&got);
    n = frame(w, CHAT__WS_OP_TEXT, p, 60);
    n += frame(w + n, CONT_FIN, p, 40);
    assert_int_equal(feed_cut(&got, w, n, NULL, 0, 100, FRAGS), CHAT__WSRX_OK);
    assert_int_equal(got.events, 1);
    rec_clear(&got);
}

static void test_wsrx_fragment_over_cap_refused_at_its_header(void **state)
{
    (void)state;
    /* 60 bytes buffered, then a continuation announcing 41 under a cap of 100 */
    static char p[100];
    unsigned char w[256];
    size_t first = frame(w, CHAT__WS_OP_TEXT, p, 60);
    size_t n = first + frame(w + first, CONT_FIN, p, 41);
    chat__wsrx r = {0};
    rec got = {0};
    assert_int_equal(feed_ex(&r, &got, w, first, 100, FRAGS), CHAT__WSRX_OK);
    assert_int_equal(feed_ex(&r, &got, w + first, 6, 100, FRAGS), CHAT__WSRX_TOO_BIG);
    assert_int_equal(got.events, 0);
    (void)n;
    chat__wsrx_reset(&r);
    rec_clear(&got);
}

static void test_wsrx_fragments_up_to_the_cap_accepted(void **state)
{
    (void)state;
    /* max_frags is fragments per message: three frames of one message with a cap of 3 */
    unsigned char w[128];
    size_t n = frame_s(w, CHAT__WS_OP_TEXT, "a");
    n += frame_s(w + n, CHAT__WS_OP_CONT, "b");
    n += frame_s(w + n, CONT_FIN, "c");
    n += frame_s(w + n, CHAT__WS_OP_BINARY, "d"); /* the count starts again */
    n += frame_s(w + n, CHAT__WS_OP_CONT, "e");
    n += frame_s(w + n, CONT_FIN, "f");
    rec got = {0}, want = {0};
    expect_message(&want, 0, "abc", 3);
    expect_message(&want, 1, "def", 3);
    assert_int_equal(feed_cut(&got, w, n, NULL, 0, CAP, 3), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_too_many_fragments_refused_at_the_header(void **state)
{
    (void)state;
    /* With a cap of 3 fragments, a third frame without FIN means a fourth is coming: refused
     * at its header. */
    unsigned char w[128];
    size_t n = frame_s(w, CHAT__WS_OP_TEXT, "a");
    n += frame_s(w + n, CHAT__WS_OP_CONT, "b");
    chat__wsrx r = {0};
    rec got = {0};
    assert_int_equal(feed_ex(&r, &got, w, n, CAP, 3), CHAT__WSRX_OK);
    size_t third = frame_s(w, CHAT__WS_OP_CONT, "c");
    assert_int_equal(feed_ex(&r, &got, w, third - 1, CAP, 3), CHAT__WSRX_TOO_MANY);
    assert_int_equal(got.events, 0);
    chat__wsrx_reset(&r);
    /* a cap of 1: no fragmentation at all */
    n = frame_s(w, CHAT__WS_OP_BINARY, "a");
    assert_int_equal(feed_ex(&r, &got, w, n, CAP, 1), CHAT__WSRX_TOO_MANY);
    chat__wsrx_reset(&r);
    rec_clear(&got);
}

static void test_wsrx_no_cap_with_size_max(void **state)
{
    (void)state;
    /* SIZE_MAX as the cap: the buffer still grows to what the message needs */
    static char p[700];
    memset(p, 'n', sizeof p);
    unsigned char w[1600];
    size_t n = frame(w, CHAT__WS_OP_BINARY, p, 350);
    n += frame(w + n, CONT_FIN, p + 350, 350);
    rec got = {0}, want = {0};
    expect_message(&want, 1, p, sizeof p);
    assert_int_equal(feed_cut(&got, w, n, NULL, 0, SIZE_MAX, FRAGS), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

/* ---- refusals ------------------------------------------------------------------------------ */

static int feed_one(const unsigned char *w, size_t n)
{
    rec got = {0};
    int rc = feed_whole(&got, w, n);
    rec_clear(&got);
    return rc;
}

static void test_wsrx_unmasked_frame_refused(void **state)
{
    (void)state;
    unsigned char text[] = {TEXT, 2, 'h', 'i'};
    assert_int_equal(feed_one(text, sizeof text), CHAT__WSRX_PROTOCOL);
    unsigned char ping[] = {PING, 0};
    assert_int_equal(feed_one(ping, sizeof ping), CHAT__WSRX_PROTOCOL);
}

static void test_wsrx_rsv_bits_refused(void **state)
{
    (void)state;
    for (unsigned rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        unsigned char w[32];
        assert_int_equal(feed_one(w, frame_s(w, TEXT | rsv, "x")), CHAT__WSRX_PROTOCOL);
        assert_int_equal(feed_one(w, frame_s(w, PING | rsv, "")), CHAT__WSRX_PROTOCOL);
    }
}

static void test_wsrx_reserved_opcodes_refused(void **state)
{
    (void)state;
    static const unsigned ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        unsigned char w[32];
        assert_int_equal(feed_one(w, frame_s(w, FIN | ops[i], "x")), CHAT__WSRX_PROTOCOL);
        assert_int_equal(feed_one(w, frame_s(w, ops[i], "x")), CHAT__WSRX_PROTOCOL);
    }
}

static void test_wsrx_continuation_without_a_message_refused(void **state)
{
    (void)state;
    unsigned char w[32];
    assert_int_equal(feed_one(w, frame_s(w, CONT_FIN, "x")), CHAT__WSRX_PROTOCOL);
    assert_int_equal(feed_one(w, frame_s(w, CHAT__WS_OP_CONT, "x")), CHAT__WSRX_PROTOCOL);
    /* nor after a finished one */
    size_t n = frame_s(w, TEXT, "a");
    n += frame_s(w + n, CONT_FIN, "b");
    assert_int_equal(feed_one(w, n), CHAT__WSRX_PROTOCOL);
}

static void test_wsrx_new_message_inside_a_fragmented_one_refused(void **state)
{
    (void)state;
    static const unsigned second[] = {TEXT, BINARY, CHAT__WS_OP_TEXT, CHAT__WS_OP_BINARY};
    for (size_t i = 0; i < 4; i++) {
        unsigned char w[64];
        size_t n = frame_s(w, CHAT__WS_OP_TEXT, "a");
        n += frame_s(w + n, second[i], "b");
        assert_int_equal(feed_one(w, n), CHAT__WSRX_PROTOCOL);
    }
}

static void test_wsrx_fragmented_control_frame_refused(void **state)
{
    (void)state;
    static const unsigned ops[] = {CHAT__WS_OP_PING, CHAT__WS_OP_PONG, CHAT__WS_OP_CLOSE};
    for (size_t i = 0; i < 3; i++) {
        unsigned char w[32];
        assert_int_equal(feed_one(w, frame_s(w, ops[i], "")), CHAT__WSRX_PROTOCOL);
    }
}

static void test_wsrx_control_payload_over_125_refused(void **state)
{
    (void)state;
    static char p[126];
    memset(p, 'p', sizeof p);
    unsigned char w[256];
    assert_int_equal(feed_one(w, frame(w, PING, p, 126)), CHAT__WSRX_PROTOCOL);
    assert_int_equal(feed_one(w, frame(w, PONG, p, 126)), CHAT__WSRX_PROTOCOL);
    rec got = {0}, want = {0};
    expect_control(&want, CHAT__WS_OP_PING, p, 125);
    assert_int_equal(feed_whole(&got, w, frame(w, PING, p, 125)), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_control_over_125_refused_at_its_header(void **state)
{
    (void)state;
    unsigned char w[16];
    frame_x(w, PING, 16, 1, "", 0);
    w[2] = 0;
    w[3] = 126;
    assert_refused_at_header(w, 8, CAP, FRAGS, CHAT__WSRX_PROTOCOL);
}

/* ---- UTF-8 --------------------------------------------------------------------------------- */

static void test_wsrx_invalid_utf8_refused_at_the_first_bad_byte(void **state)
{
    (void)state;
    /* A text frame of 10 bytes whose third byte cannot be UTF-8: refused once that byte
     * arrives, not at the end of the frame. */
    unsigned char w[64];
    size_t n = frame(w, TEXT, "ab\xff" "defghij", 10);
    chat__wsrx r = {0};
    rec got = {0};
    assert_int_equal(feed_ex(&r, &got, w, 6 + 2, CAP, FRAGS), CHAT__WSRX_OK);
    assert_int_equal(feed_ex(&r, &got, w + 8, 1, CAP, FRAGS), CHAT__WSRX_UTF8);
    chat__wsrx_reset(&r);
    /* in a first fragment: refused before any FIN */
    n = frame(w, CHAT__WS_OP_TEXT, "\xe0\x80", 2);
    assert_int_equal(feed_ex(&r, &got, w, n, CAP, FRAGS), CHAT__WSRX_UTF8);
    chat__wsrx_reset(&r);
    /* whole in one read (the fast path) */
    n = frame(w, TEXT, "ok\xed\xa0\x80", 5);
    assert_int_equal(feed_ex(&r, &got, w, n, CAP, FRAGS), CHAT__WSRX_UTF8);
    assert_int_equal(got.events, 0);
    chat__wsrx_reset(&r);
    rec_clear(&got);
}

static void test_wsrx_utf8_split_across_fragments_accepted(void **state)
{
    (void)state;
    unsigned char w[64];
    size_t n = frame(w, CHAT__WS_OP_TEXT, "\xf0\x9f", 2);
    n += frame(w + n, CHAT__WS_OP_CONT, "\x98", 1);
    n += frame(w + n, CONT_FIN, "\x80", 1);
    rec got = {0}, want = {0};
    expect_message(&want, 0, "\xf0\x9f\x98\x80", 4);
    assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_text_ending_inside_a_character_refused(void **state)
{
    (void)state;
    unsigned char w[64];
    assert_int_equal(feed_one(w, frame(w, TEXT, "caf\xc3", 4)), CHAT__WSRX_UTF8);
    size_t n = frame(w, CHAT__WS_OP_TEXT, "x", 1);
    n += frame(w + n, CONT_FIN, "\xe2\x82", 2);
    assert_int_equal(feed_one(w, n), CHAT__WSRX_UTF8);
}

static void test_wsrx_binary_is_not_checked_as_utf8(void **state)
{
    (void)state;
    unsigned char w[64];
    rec got = {0};
    assert_int_equal(feed_whole(&got, w, frame(w, BINARY, "\xff\xc0\xed\xa0", 4)),
                     CHAT__WSRX_OK);
    assert_int_equal(got.events, 1);
    rec_clear(&got);
}

/* ---- close frames -------------------------------------------------------------------------- */

static int feed_close(unsigned code, const char *reason, size_t rlen)
{
    unsigned char p[125], w[160];
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    memcpy(p + 2, reason, rlen);
    return feed_one(w, frame(w, CLOSE, p, 2 + rlen));
}

static void test_wsrx_close_empty_accepted(void **state)
{
    (void)state;
    unsigned char w[32];
    rec got = {0}, want = {0};
    expect_control(&want, CHAT__WS_OP_CLOSE, "", 0);
    assert_int_equal(feed_whole(&got, w, frame_s(w, CLOSE, "")), CHAT__WSRX_OK);
    assert_same_log(&got, &want);
    rec_clear(&got);
    rec_clear(&want);
}

static void test_wsrx_close_with_one_byte_refused(void **state)
{
    (void)state;
    unsigned char w[32];
    assert_int_equal(feed_one(w, frame_s(w, CLOSE, "\x03")), CHAT__WSRX_PROTOCOL);
}

static void test_wsrx_close_codes_a_peer_may_send_accepted(void **state)
{
    (void)state;
    static const unsigned ok[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                  1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        assert_int_equal(feed_close(ok[i], "", 0), CHAT__WSRX_OK);
    assert_int_equal(feed_close(1000, "caf\xc3\xa9", 5), CHAT__WSRX_OK);
}

static void test_wsrx_close_codes_never_sent_refused(void **state)
{
    (void)state;
    static const unsigned bad[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(feed_close(bad[i], "", 0), CHAT__WSRX_PROTOCOL);
}

static void test_wsrx_close_reason_not_utf8_refused(void **state)
{
    (void)state;
    assert_int_equal(feed_close(1000, "\xff", 1), CHAT__WSRX_UTF8);
    assert_int_equal(feed_close(1001, "ends in \xc3", 9), CHAT__WSRX_UTF8);
    assert_int_equal(feed_close(4000, "\xed\xa0\x80", 3), CHAT__WSRX_UTF8);
}

/* ---- stopping and starting again ----------------------------------------------------------- */

static void test_wsrx_callback_stops_the_feed(void **state)
{
    (void)state;
    unsigned char w[128];
    /* fast path, then the general path (binary), then a control frame */
    static const unsigned b0[] = {TEXT, BINARY, PING};
    for (size_t i = 0; i < 3; i++) {
        size_t n = frame_s(w, b0[i], "");
        n += frame_s(w + n, TEXT, "never");
        rec got = {0};
        got.stop_at = 1;
        assert_int_equal(feed_whole(&got, w, n), CHAT__WSRX_STOP);
        assert_int_equal(got.events, 1);
        rec_clear(&got);
    }
}

static void test_wsrx_reset_starts_afresh(void **state)
{
    (void)state;
    unsigned char w[64];
    chat__wsrx r = {0};
    rec got = {0};
    size_t n = frame_s(w, CHAT__WS_OP_TEXT, "half");
    assert_int_equal(feed_ex(&r, &got, w, n, CAP, FRAGS), CHAT__WSRX_OK);
    n = frame_s(w, TEXT, "new");
    assert_int_equal(feed_ex(&r, &got, w, n, CAP, FRAGS), CHAT__WSRX_PROTOCOL);
    chat__wsrx_reset(&r);
    assert_int_equal(feed_ex(&r, &got, w, n, CAP, FRAGS), CHAT__WSRX_OK);
    rec want = {0};
    expect_message(&want, 0, "new", 3);
    assert_same_log(&got, &want);
    chat__wsrx_reset(&r);
    rec_clear(&got);
    rec_clear(&want);
}

/* ---- outgoing headers ---------------------------------------------------------------------- */

static void assert_header(size_t len, int op, const unsigned char *want, size_t wn)
{
    unsigned char buf[32];
    memset(buf, 0xAA, sizeof buf);
    unsigned char *data = buf + 16;
    unsigned char *h = chat__ws_header(data, op, len);
    assert_ptr_equal(h, data - wn);
    assert_memory_equal(h, want, wn);
    for (unsigned char *p = buf; p < h; p++)
        assert_int_equal(*p, 0xAA); /* nothing written before the header */
    assert_int_equal(data[0], 0xAA);
}

static void test_wsrx_header_for_0_bytes(void **state)
{
    (void)state;
    assert_header(0, CHAT__WS_OP_TEXT, (const unsigned char *)"\x81\x00", 2);
    assert_header(0, CHAT__WS_OP_CLOSE, (const unsigned char *)"\x88\x00", 2);
}

static void test_wsrx_header_for_125_bytes(void **state)
{
    (void)state;
    assert_header(125, CHAT__WS_OP_PONG, (const unsigned char *)"\x8a\x7d", 2);
}

static void test_wsrx_header_for_126_bytes(void **state)
{
    (void)state;
    assert_header(126, CHAT__WS_OP_TEXT, (const unsigned char *)"\x81\x7e\x00\x7e", 4);
}

static void test_wsrx_header_for_65535_bytes(void **state)
{
    (void)state;
    assert_header(65535, CHAT__WS_OP_TEXT, (const unsigned char *)"\x81\x7e\xff\xff", 4);
}

static void test_wsrx_header_for_65536_bytes(void **state)
{
    (void)state;
    assert_header(65536, CHAT__WS_OP_BINARY,
                  (const unsigned char *)"\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wsrx_text_message_handed_over),
        cmocka_unit_test(test_wsrx_binary_message_flagged),
        cmocka_unit_test(test_wsrx_fragments_joined_around_control_frames),
        cmocka_unit_test(test_wsrx_control_frames_do_not_count_as_fragments),
        cmocka_unit_test(test_wsrx_same_messages_fed_whole_or_byte_by_byte),
        cmocka_unit_test(test_wsrx_same_messages_split_in_two_at_every_byte),
        cmocka_unit_test(test_wsrx_unmasks_at_every_mask_offset_and_alignment),
        cmocka_unit_test(test_wsrx_fast_path_restores_the_byte_after_the_payload),
        cmocka_unit_test(test_wsrx_16_bit_lengths),
        cmocka_unit_test(test_wsrx_64_bit_lengths),
        cmocka_unit_test(test_wsrx_64_bit_length_with_top_bit_refused),
        cmocka_unit_test(test_wsrx_empty_messages),
        cmocka_unit_test(test_wsrx_empty_message_after_a_longer_one_is_nul_terminated),
        cmocka_unit_test(test_wsrx_large_buffer_freed_after_its_message),
        cmocka_unit_test(test_wsrx_over_cap_refused_at_the_header),
        cmocka_unit_test(test_wsrx_exactly_the_cap_accepted),
        cmocka_unit_test(test_wsrx_fragment_over_cap_refused_at_its_header),
        cmocka_unit_test(test_wsrx_fragments_up_to_the_cap_accepted),
        cmocka_unit_test(test_wsrx_too_many_fragments_refused_at_the_header),
        cmocka_unit_test(test_wsrx_no_cap_with_size_max),
        cmocka_unit_test(test_wsrx_unmasked_frame_refused),
        cmocka_unit_test(test_wsrx_rsv_bits_refused),
        cmocka_unit_test(test_wsrx_reserved_opcodes_refused),
        cmocka_unit_test(test_wsrx_continuation_without_a_message_refused),
        cmocka_unit_test(test_wsrx_new_message_inside_a_fragmented_one_refused),
        cmocka_unit_test(test_wsrx_fragmented_control_frame_refused),
        cmocka_unit_test(test_wsrx_control_payload_over_125_refused),
        cmocka_unit_test(test_wsrx_control_over_125_refused_at_its_header),
        cmocka_unit_test(test_wsrx_invalid_utf8_refused_at_the_first_bad_byte),
        cmocka_unit_test(test_wsrx_utf8_split_across_fragments_accepted),
        cmocka_unit_test(test_wsrx_text_ending_inside_a_character_refused),
        cmocka_unit_test(test_wsrx_binary_is_not_checked_as_utf8),
        cmocka_unit_test(test_wsrx_close_empty_accepted),
        cmocka_unit_test(test_wsrx_close_with_one_byte_refused),
        cmocka_unit_test(test_wsrx_close_codes_a_peer_may_send_accepted),
        cmocka_unit_test(test_wsrx_close_codes_never_sent_refused),
        cmocka_unit_test(test_wsrx_close_reason_not_utf8_refused),
        cmocka_unit_test(test_wsrx_callback_stops_the_feed),
        cmocka_unit_test(test_wsrx_reset_starts_afresh),
        cmocka_unit_test(test_wsrx_header_for_0_bytes),
        cmocka_unit_test(test_wsrx_header_for_125_bytes),
        cmocka_unit_test(test_wsrx_header_for_126_bytes),
        cmocka_unit_test(test_wsrx_header_for_65535_bytes),
        cmocka_unit_test(test_wsrx_header_for_65536_bytes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
