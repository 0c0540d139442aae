/* Store contract, version 5: the message lifecycle (updates and erasure, related messages,
 * threads, unread counts, expiry, messages by sender), search, reactions, account deletion
 * and media references. Run against every backend by test_store.c (LIFE_TESTS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat/errors.h"
#include "chat/sys/store.h"
#include "store_fx.h"

/* ---- helpers ---- */

static int64_t new_conv(fx *f)
{
    chat_store_conv c;
    memset(&c, 0, sizeof c);
    c.kind = CHAT_CONV_GROUP;
    c.created_ms = 1000;
    assert_int_equal(f->ops->conv_insert(f->st, &c), CHAT_OK);
    return c.id;
}

typedef struct mspec {
    uint64_t seq;
    const char *sender;
    int kind;
    const char *body;
    uint64_t target, thread;
    int64_t expires;
    unsigned flags;
} mspec;

static int put_msg(fx *f, int64_t conv, mspec s)
{
    chat_store_msg m;
    memset(&m, 0, sizeof m);
    char cmid[32];
    snprintf(cmid, sizeof cmid, "c%llu", (unsigned long long)s.seq);
    m.conv = conv;
    m.seq = s.seq;
    m.ts_ms = 7000 + (int64_t)s.seq;
    m.sender = s.sender ? s.sender : "ann";
    m.device = "d";
    m.cmid = cmid;
    m.kind = s.kind ? s.kind : CHAT_MSG_TEXT;
    m.body = s.body ? s.body : "";
    m.body_len = strlen(m.body);
    m.target_seq = s.target;
    m.thread_seq = s.thread;
    m.expires_ms = s.expires;
    m.flags = s.flags;
    return f->ops->msg_insert(f->st, &m);
}

/* What a listing saw, as one string. */
typedef struct seen {
    char buf[2048];
    int n, stop_after;
} seen;

static int add(seen *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add(seen *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len = strlen(w->buf);
    vsnprintf(w->buf + len, sizeof w->buf - len, fmt, ap);
    va_end(ap);
    w->n++;
    return w->stop_after && w->n >= w->stop_after ? 42 : 0;
}

static int seq_of(const chat_store_msg *m, void *ud)
{
    return add(ud, "%llu,", (unsigned long long)m->seq);
}

/* The whole of a message, as the contract promises to keep it. */
static int full_of(const chat_store_msg *m, void *ud)
{
    return add(ud, "%lld/%llu %s %s %s k%d [%.*s] t%llu th%llu e%lld x%lld f%u",
               (long long)m->conv, (unsigned long long)m->seq, m->sender, m->device, m->cmid,
               m->kind, (int)m->body_len, m->body, (unsigned long long)m->target_seq,
               (unsigned long long)m->thread_seq, (long long)m->edited_ms,
               (long long)m->expires_ms, m->flags);
}

static const char *get(fx *f, int64_t conv, uint64_t seq, seen *w)
{
    memset(w, 0, sizeof *w);
    int rc = f->ops->msg_get(f->st, conv, seq, full_of, w);
    if (rc == CHAT_ENOTFOUND)
        return "(none)";
    assert_int_equal(rc, CHAT_OK);
    return w->buf;
}

static int update(fx *f, int64_t conv, uint64_t seq, int kind, const char *body, unsigned flags,
                  int64_t edited, int64_t expires)
{
    chat_store_msg m;
    memset(&m, 0, sizeof m);
    m.conv = conv;
    m.seq = seq;
    m.sender = "ignored";
    m.device = "ignored";
    m.cmid = "";
    m.kind = kind;
    m.body = body;
    m.body_len = strlen(body);
    m.flags = flags;
    m.edited_ms = edited;
    m.expires_ms = expires;
    m.target_seq = 999; /* stays what it was */
    return f->ops->msg_update(f->st, &m);
}

static int hit_of(const chat_store_msg *m, uint64_t cursor, void *ud)
{
    (void)cursor;
    return add(ud, "%lld/%llu,", (long long)m->conv, (unsigned long long)m->seq);
}

typedef struct hits {
    seen w;
    uint64_t last_cursor, prev_cursor;
    int ordered;
} hits;

static int hit_cursor(const chat_store_msg *m, uint64_t cursor, void *ud)
{
    hits *h = ud;
    if (h->prev_cursor && cursor >= h->prev_cursor)
        h->ordered = 0;
    h->prev_cursor = h->last_cursor = cursor;
    return hit_of(m, cursor, &h->w);
}

static const char *search(fx *f, const char *text, const int64_t *convs, const uint64_t *after,
                          size_t n, uint64_t before, int limit, hits *h)
{
    memset(h, 0, sizeof *h);
    h->ordered = 1;
    chat_store_search q = {text, convs, after, n, before, limit};
    assert_int_equal(f->ops->msg_search(f->st, &q, hit_cursor, h), CHAT_OK);
    assert_true(h->ordered);
    return h->w.buf;
}

static int reaction_of(const chat_store_reaction *r, void *ud)
{
    return add(ud, "%llu:%s:%s,", (unsigned long long)r->seq, r->emoji, r->user);
}

static const char *reactions(fx *f, int64_t conv, uint64_t after, uint64_t before, seen *w)
{
    memset(w, 0, sizeof *w);
    assert_int_equal(f->ops->reaction_list(f->st, conv, after, before, reaction_of, w), CHAT_OK);
    return w->buf;
}

int react(fx *f, int64_t conv, uint64_t seq, const char *user, const char *emoji, int64_t ts,
          int on)
{
    chat_store_reaction r;
    memset(&r, 0, sizeof r);
    r.conv = conv;
    r.seq = seq;
    snprintf(r.user, sizeof r.user, "%s", user);
    snprintf(r.emoji, sizeof r.emoji, "%s", emoji);
    r.ts_ms = ts;
    return f->ops->reaction_set(f->st, &r, on);
}

/* ---- tests ---- */

void test_store_life_fields_roundtrip(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, id, &c), CHAT_OK);
    assert_int_equal(c.msg_ttl_ms, 0);
    c.msg_ttl_ms = 86400000;
    assert_int_equal(f->ops->conv_update(f->st, &c), CHAT_OK);
    memset(&c, 0, sizeof c);
    assert_int_equal(f->ops->conv_get(f->st, id, &c), CHAT_OK);
    assert_int_equal(c.msg_ttl_ms, 86400000);

    assert_int_equal(put_msg(f, id, (mspec){.seq = 1, .body = "root"}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 2, .body = "reply", .target = 1, .thread = 1,
                                            .expires = 123456}), CHAT_OK);
    seen w;
    assert_string_equal(get(f, id, 2, &w),
                        "1/2 ann d c2 k1 [reply] t1 th1 e0 x123456 f0"); /* conv id 1: fresh */
    assert_string_equal(get(f, id, 3, &w), "(none)");
    /* msg_range and msg_find_cmid carry the version-5 fields too */
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_range(f->st, id, 1, 0, 5, 0, full_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "1/2 ann d c2 k1 [reply] t1 th1 e0 x123456 f0");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "d", "c2", full_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "1/2 ann d c2 k1 [reply] t1 th1 e0 x123456 f0");
}

void test_store_life_update(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 1, .body = "first text", .target = 0}),
                     CHAT_OK);
    seen w;
    /* an edit: new body, edited time; sender, cmid, ts, target stay */
    assert_int_equal(update(f, id, 1, CHAT_MSG_TEXT, "second text", 0, 4242, 0), CHAT_OK);
    assert_string_equal(get(f, id, 1, &w), "1/1 ann d c1 k1 [second text] t0 th0 e4242 x0 f0");
    /* rolled back: the edit before it is what stays */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(update(f, id, 1, CHAT_MSG_TEXT, "", CHAT_STORE_MSG_DELETED, 4242, 0),
                     CHAT_OK);
    assert_string_equal(get(f, id, 1, &w), "1/1 ann d c1 k1 [] t0 th0 e4242 x0 f1");
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    assert_string_equal(get(f, id, 1, &w), "1/1 ann d c1 k1 [second text] t0 th0 e4242 x0 f0");
    /* committed */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(update(f, id, 1, CHAT_MSG_TEXT, "", CHAT_STORE_MSG_EXPIRED, 4242, 99),
                     CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_string_equal(get(f, id, 1, &w), "1/1 ann d c1 k1 [] t0 th0 e4242 x99 f2");
    /* an edit carrying its target's text: the flag is kept as given, through every read */
    assert_int_equal(put_msg(f, id, (mspec){.seq = 2, .kind = CHAT_MSG_EDIT, .target = 1,
                                            .body = "now text", .flags = CHAT_STORE_MSG_CURRENT}),
                     CHAT_OK);
    assert_string_equal(get(f, id, 2, &w), "1/2 ann d c2 k4 [now text] t1 th0 e0 x0 f4");
    assert_int_equal(update(f, id, 2, CHAT_MSG_EDIT, "later text", CHAT_STORE_MSG_CURRENT, 4343,
                            0), CHAT_OK);
    assert_string_equal(get(f, id, 2, &w), "1/2 ann d c2 k4 [later text] t1 th0 e4343 x0 f4");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_related(f->st, id, 1, CHAT_MSG_EDIT, full_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "1/2 ann d c2 k4 [later text] t1 th0 e4343 x0 f4");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_range(f->st, id, 1, 0, 5, 0, full_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "1/2 ann d c2 k4 [later text] t1 th0 e4343 x0 f4");
    /* emptied with its target, the flag stays; erased, it is a tombstone like any row */
    assert_int_equal(update(f, id, 2, CHAT_MSG_EDIT, "", CHAT_STORE_MSG_CURRENT, 4343, 0),
                     CHAT_OK);
    assert_string_equal(get(f, id, 2, &w), "1/2 ann d c2 k4 [] t1 th0 e4343 x0 f4");
    assert_int_equal(update(f, id, 2, CHAT_MSG_EDIT, "",
                            CHAT_STORE_MSG_CURRENT | CHAT_STORE_MSG_EXPIRED, 4343, 99), CHAT_OK);
    assert_string_equal(get(f, id, 2, &w), "1/2 ann d c2 k4 [] t1 th0 e4343 x99 f6");
    assert_int_equal(update(f, id, 7, CHAT_MSG_TEXT, "x", 0, 0, 0), CHAT_ENOTFOUND);
    assert_int_equal(update(f, id, 1, CHAT_MSG_TEXT, "x", 0x80, 0, 0), CHAT_EINVAL);
    /* the dedupe key still holds after an update */
    assert_int_equal(put_msg(f, id, (mspec){.seq = 1, .body = "again"}), CHAT_EEXISTS);
}

void test_store_life_related_and_thread(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 1, .body = "root"}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 2, .kind = CHAT_MSG_EDIT, .target = 1}),
                     CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 3, .body = "in thread", .thread = 1}),
                     CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 4, .kind = CHAT_MSG_REACT, .target = 1,
                                            .body = "{}"}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 5, .kind = CHAT_MSG_EDIT, .target = 1}),
                     CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 6, .body = "reply", .target = 1,
                                            .thread = 1}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 7, .kind = CHAT_MSG_EDIT, .target = 3}),
                     CHAT_OK);
    seen w = {0};
    assert_int_equal(f->ops->msg_related(f->st, id, 1, CHAT_MSG_EDIT, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "2,5,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_related(f->st, id, 1, CHAT_MSG_TEXT, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "6,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_related(f->st, id, 2, CHAT_MSG_EDIT, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "");

    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_thread(f->st, id, 1, 0, 0, 10, 0, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "3,6,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_thread(f->st, id, 1, 0, 0, 1, 1, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "6,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_thread(f->st, id, 1, 3, 0, 10, 0, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "6,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_thread(f->st, id, 1, 0, 6, 10, 1, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "3,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_thread(f->st, id, 3, 0, 0, 10, 0, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "");
    assert_int_equal(f->ops->msg_thread(f->st, id, 1, 0, 0, -1, 0, seq_of, &w), CHAT_EINVAL);
}

void test_store_life_count(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 1, .body = "a"}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 2, .kind = CHAT_MSG_EVENT, .body = "{}"}),
                     CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 3, .body = "t", .thread = 1}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 4, .kind = CHAT_MSG_REACT, .target = 1,
                                            .body = "{}"}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 5, .kind = CHAT_MSG_MEDIA, .body = "{}"}),
                     CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 6, .body = "gone",
                                            .flags = CHAT_STORE_MSG_DELETED}), CHAT_OK);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 7, .body = "t2", .thread = 1}), CHAT_OK);
    uint64_t n = 99;
    assert_int_equal(f->ops->msg_count(f->st, id, 0, 0, 7, &n), CHAT_OK);
    assert_int_equal(n, 3); /* 1, 2, 5 */
    assert_int_equal(f->ops->msg_count(f->st, id, 0, 1, 4, &n), CHAT_OK);
    assert_int_equal(n, 1); /* 2 */
    assert_int_equal(f->ops->msg_count(f->st, id, 1, 0, 7, &n), CHAT_OK);
    assert_int_equal(n, 2); /* 3, 7 */
    assert_int_equal(f->ops->msg_count(f->st, id, 1, 3, 6, &n), CHAT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(f->ops->msg_count(f->st, id, 0, 7, 7, &n), CHAT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(f->ops->msg_count(f->st, id + 100, 0, 0, 7, &n), CHAT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(f->ops->msg_count(f->st, id, 0, 0, 7, NULL), CHAT_EINVAL);
}

void test_store_life_expired(void **state)
{
    fx *f = *state;
    int64_t a = new_conv(f), b = new_conv(f);
    assert_int_equal(put_msg(f, a, (mspec){.seq = 1, .body = "x", .expires = 500}), CHAT_OK);
    assert_int_equal(put_msg(f, a, (mspec){.seq = 2, .body = "never"}), CHAT_OK);
    assert_int_equal(put_msg(f, a, (mspec){.seq = 3, .body = "x", .expires = 300}), CHAT_OK);
    assert_int_equal(put_msg(f, b, (mspec){.seq = 1, .body = "x", .expires = 300}), CHAT_OK);
    assert_int_equal(put_msg(f, b, (mspec){.seq = 2, .body = "", .expires = 100,
                                           .flags = CHAT_STORE_MSG_EXPIRED}), CHAT_OK);
    assert_int_equal(put_msg(f, b, (mspec){.seq = 3, .body = "x", .expires = 900}), CHAT_OK);
    seen w = {0};
    assert_int_equal(f->ops->msg_expired(f->st, 600, 10, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, a < b ? "3,1,1," : "1,3,1,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_expired(f->st, 300, 10, seq_of, &w), CHAT_OK);
    assert_int_equal(w.n, 2);
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_expired(f->st, 1000, 1, seq_of, &w), CHAT_OK);
    assert_int_equal(w.n, 1);
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_expired(f->st, 99, 10, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "");
    /* an erased message is no longer due */
    assert_int_equal(update(f, b, 1, CHAT_MSG_TEXT, "", CHAT_STORE_MSG_EXPIRED, 0, 300), CHAT_OK);
    assert_int_equal(update(f, a, 1, CHAT_MSG_TEXT, "", CHAT_STORE_MSG_DELETED, 0, 500),
                     CHAT_OK);
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_expired(f->st, 600, 10, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "3,");
}

void test_store_life_by_sender(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    for (uint64_t s = 1; s <= 6; s++)
        assert_int_equal(put_msg(f, id, (mspec){.seq = s, .sender = s % 2 ? "ann" : "bob",
                                                .body = "x",
                                                .flags = s == 5 ? CHAT_STORE_MSG_DELETED : 0}),
                         CHAT_OK);
    seen w = {0};
    assert_int_equal(f->ops->msg_by_sender(f->st, id, "ann", 0, 10, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "1,3,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_by_sender(f->st, id, "bob", 2, 1, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "4,");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_by_sender(f->st, id, "cat", 0, 10, seq_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "");
    assert_int_equal(f->ops->msg_by_sender(f->st, id, "", 0, 10, seq_of, &w), CHAT_EINVAL);
}

void test_store_life_search(void **state)
{
    fx *f = *state;
    int64_t a = new_conv(f), b = new_conv(f), c = new_conv(f);
    assert_int_equal(put_msg(f, a, (mspec){.seq = 1, .body = "The quick brown fox"}), CHAT_OK);
    assert_int_equal(put_msg(f, b, (mspec){.seq = 1, .body = "a BROWN dog, quick!"}), CHAT_OK);
    assert_int_equal(put_msg(f, a, (mspec){.seq = 2, .body = "brownie recipe"}), CHAT_OK);
    assert_int_equal(put_msg(f, c, (mspec){.seq = 1, .body = "brown quick elsewhere"}), CHAT_OK);
    assert_int_equal(put_msg(f, a, (mspec){.seq = 3, .kind = CHAT_MSG_MEDIA,
                                           .body = "{\"id\":\"m1\",\"mime\":\"image/png\","
                                                   "\"size\":3,\"name\":\"brown quick.png\"}"}),
                     CHAT_OK);
    assert_int_equal(put_msg(f, a, (mspec){.seq = 4, .kind = CHAT_MSG_EVENT,
                                           .body = "{\"title\":\"quick brown\"}"}), CHAT_OK);
    assert_int_equal(put_msg(f, b, (mspec){.seq = 2, .body = "quick brown but erased",
                                           .flags = CHAT_STORE_MSG_DELETED}), CHAT_OK);
    /* an edit carrying its target's text is not searched: the target is */
    assert_int_equal(put_msg(f, a, (mspec){.seq = 5, .kind = CHAT_MSG_EDIT, .target = 1,
                                           .body = "quick brown fox",
                                           .flags = CHAT_STORE_MSG_CURRENT}), CHAT_OK);
    int64_t ab[2] = {a, b};
    uint64_t zero[2] = {0, 0};
    hits h;
    char want[128];
    /* every word, any case, whole words, newest first; the media by its name; not the event,
     * not the erased one, not conversation c */
    snprintf(want, sizeof want, "%lld/3,%lld/1,%lld/1,", (long long)a, (long long)b,
             (long long)a);
    assert_string_equal(search(f, "QUICK brown", ab, zero, 2, 0, 10, &h), want);
    /* pages: the cursor of the last hit continues */
    snprintf(want, sizeof want, "%lld/3,%lld/1,", (long long)a, (long long)b);
    assert_string_equal(search(f, "quick brown", ab, zero, 2, 0, 2, &h), want);
    uint64_t next = h.last_cursor;
    snprintf(want, sizeof want, "%lld/1,", (long long)a);
    assert_string_equal(search(f, "quick brown", ab, zero, 2, next, 2, &h), want);
    assert_string_equal(search(f, "quick brown", ab, zero, 2, h.last_cursor, 2, &h), "");
    /* only after a member's join point */
    uint64_t after[2] = {1, 0};
    snprintf(want, sizeof want, "%lld/3,%lld/1,", (long long)a, (long long)b);
    assert_string_equal(search(f, "brown", ab, after, 2, 0, 10, &h), want);
    /* no words, no conversations, no hits */
    assert_string_equal(search(f, " ,;!", ab, zero, 2, 0, 10, &h), "");
    assert_string_equal(search(f, "brown", ab, zero, 0, 0, 10, &h), "");
    assert_string_equal(search(f, "brow", ab, zero, 2, 0, 10, &h), "");
    /* an edit is found by its new words only; an erased message not at all */
    assert_int_equal(update(f, a, 1, CHAT_MSG_TEXT, "the slow grey wolf", 0, 1, 0), CHAT_OK);
    snprintf(want, sizeof want, "%lld/1,", (long long)a);
    assert_string_equal(search(f, "wolf", ab, zero, 2, 0, 10, &h), want);
    snprintf(want, sizeof want, "%lld/1,", (long long)b);
    assert_string_equal(search(f, "fox", ab, zero, 2, 0, 10, &h), "");
    assert_string_equal(search(f, "brown dog", ab, zero, 2, 0, 10, &h), want);
    assert_int_equal(update(f, b, 1, CHAT_MSG_TEXT, "", CHAT_STORE_MSG_DELETED, 0, 0), CHAT_OK);
    assert_string_equal(search(f, "brown dog", ab, zero, 2, 0, 10, &h), "");
    /* a rolled-back edit leaves the words as they were */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(update(f, a, 2, CHAT_MSG_TEXT, "nothing here", 0, 1, 0), CHAT_OK);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    snprintf(want, sizeof want, "%lld/2,", (long long)a);
    assert_string_equal(search(f, "brownie", ab, zero, 2, 0, 10, &h), want);
    assert_string_equal(search(f, "nothing", ab, zero, 2, 0, 10, &h), "");
    /* an erased message made visible again (never done, but the index must follow) */
    assert_int_equal(update(f, b, 1, CHAT_MSG_TEXT, "back again", 0, 0, 0), CHAT_OK);
    snprintf(want, sizeof want, "%lld/1,", (long long)b);
    assert_string_equal(search(f, "again", ab, zero, 2, 0, 10, &h), want);
    /* bad queries */
    chat_store_search q = {NULL, ab, zero, 2, 0, 10};
    assert_int_equal(f->ops->msg_search(f->st, &q, hit_of, &h.w), CHAT_EINVAL);
    q.text = "x";
    q.limit = -1;
    assert_int_equal(f->ops->msg_search(f->st, &q, hit_of, &h.w), CHAT_EINVAL);
    q.limit = 1;
    q.convs = NULL;
    assert_int_equal(f->ops->msg_search(f->st, &q, hit_of, &h.w), CHAT_EINVAL);
    /* a few conversations of many and most of them (a backend may search the two ways
     * differently): the same hits, only theirs, after each one's join point */
    int64_t many[12] = {a, b, c};
    uint64_t joined[12] = {0};
    for (int i = 3; i < 12; i++) {
        many[i] = new_conv(f);
        assert_int_equal(put_msg(f, many[i], (mspec){.seq = 1, .body = "rare otter"}), CHAT_OK);
        assert_int_equal(put_msg(f, many[i], (mspec){.seq = 2, .body = "otter again"}), CHAT_OK);
    }
    int64_t two[2] = {many[11], many[4]};
    uint64_t two_after[2] = {1, 0};
    snprintf(want, sizeof want, "%lld/2,%lld/2,%lld/1,", (long long)many[11],
             (long long)many[4], (long long)many[4]);
    assert_string_equal(search(f, "otter", two, two_after, 2, 0, 10, &h), want);
    joined[5] = 2;
    search(f, "otter", many, joined, 12, 0, 100, &h);
    assert_int_equal(h.w.n, 16); /* 9 conversations of 2, one of them joined after both */
    snprintf(want, sizeof want, "%lld/1,", (long long)many[7]);
    assert_string_equal(search(f, "rare", &many[7], zero, 1, 0, 10, &h), want);
}

void test_store_life_reactions(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    seen w;
    assert_int_equal(react(f, id, 2, "bob", "👍", 10, 1), CHAT_OK);
    assert_int_equal(react(f, id, 2, "ann", "👍", 20, 1), CHAT_OK);
    assert_int_equal(react(f, id, 2, "ann", "❤️", 5, 1), CHAT_OK);
    assert_int_equal(react(f, id, 1, "cat", "👍", 30, 1), CHAT_OK);
    assert_int_equal(react(f, id, 5, "cat", "😂", 30, 1), CHAT_OK);
    assert_int_equal(react(f, id, 2, "bob", "👍", 40, 1), CHAT_EEXISTS);
    /* by seq, then emoji (bytes), then time */
    assert_string_equal(reactions(f, id, 0, 0, &w),
                        "1:👍:cat,2:❤️:ann,2:👍:bob,2:👍:ann,5:😂:cat,");
    assert_string_equal(reactions(f, id, 1, 5, &w), "2:❤️:ann,2:👍:bob,2:👍:ann,");
    assert_string_equal(reactions(f, id + 1, 0, 0, &w), "");
    assert_int_equal(react(f, id, 2, "bob", "👍", 0, 0), CHAT_OK);
    assert_int_equal(react(f, id, 2, "bob", "👍", 0, 0), CHAT_ENOTFOUND);
    assert_string_equal(reactions(f, id, 1, 3, &w), "2:❤️:ann,2:👍:ann,");
    /* rolled back: as before */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(react(f, id, 2, "dan", "👍", 50, 1), CHAT_OK);
    assert_int_equal(react(f, id, 2, "ann", "👍", 0, 0), CHAT_OK);
    assert_int_equal(f->ops->reaction_clear(f->st, id, 0, "cat"), CHAT_OK);
    assert_string_equal(reactions(f, id, 0, 0, &w), "2:❤️:ann,2:👍:dan,");
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    assert_string_equal(reactions(f, id, 0, 0, &w), "1:👍:cat,2:❤️:ann,2:👍:ann,5:😂:cat,");
    /* clear: one message, one user, both, everything */
    assert_int_equal(f->ops->reaction_clear(f->st, id, 2, "ann"), CHAT_OK);
    assert_string_equal(reactions(f, id, 0, 0, &w), "1:👍:cat,5:😂:cat,");
    assert_int_equal(react(f, id, 2, "ann", "👍", 60, 1), CHAT_OK);
    assert_int_equal(f->ops->reaction_clear(f->st, id, 0, "cat"), CHAT_OK);
    assert_string_equal(reactions(f, id, 0, 0, &w), "2:👍:ann,");
    assert_int_equal(f->ops->reaction_clear(f->st, id, 2, ""), CHAT_OK);
    assert_string_equal(reactions(f, id, 0, 0, &w), "");
    /* many users on one emoji, put on in the reverse of their names' order, two at the same
     * time (then by name), next to another emoji of the message */
    static const char *const users[] = {"u9", "u8", "u7", "u6", "u5", "u4", "u3", "u2", "u1"};
    for (int i = 0; i < 9; i++)
        assert_int_equal(react(f, id, 3, users[i], "👍", i == 8 ? 70 : 100 + i, 1), CHAT_OK);
    assert_int_equal(react(f, id, 3, "u0", "👍", 70, 1), CHAT_OK);
    assert_int_equal(react(f, id, 3, "u5", "❤️", 1, 1), CHAT_OK);
    assert_string_equal(reactions(f, id, 2, 4, &w),
                        "3:❤️:u5,3:👍:u0,3:👍:u1,3:👍:u9,3:👍:u8,3:👍:u7,3:👍:u6,3:👍:u5,3:👍:u4,"
                        "3:👍:u3,3:👍:u2,");
    assert_int_equal(f->ops->reaction_clear(f->st, id, 3, ""), CHAT_OK);
    /* bad input */
    assert_int_equal(react(f, id, 2, "", "👍", 0, 1), CHAT_EINVAL);
    assert_int_equal(react(f, id, 2, "ann", "", 0, 1), CHAT_EINVAL);
    assert_int_equal(f->ops->reaction_set(f->st, NULL, 1), CHAT_EINVAL);
}

/* A row with the reactions it carries (version 6): "seq[emoji user ts;...]". */
static int row_reacts_of(const chat_store_msg *m, void *ud)
{
    seen *w = ud;
    add(w, "%llu[", (unsigned long long)m->seq);
    assert_true(m->n_reactions == 0 || m->reactions != NULL);
    for (size_t i = 0; i < m->n_reactions; i++) {
        const chat_store_reaction *r = &m->reactions[i];
        assert_int_equal(r->conv, m->conv);
        assert_int_equal(r->seq, m->seq);
        add(w, "%s %s %lld;", r->emoji, r->user, (long long)r->ts_ms);
    }
    return add(w, "],");
}

static int hit_reacts_of(const chat_store_msg *m, uint64_t cursor, void *ud)
{
    (void)cursor;
    return row_reacts_of(m, ud);
}

/* The reactions of messages 1..4 of conv as every message read hands them over; each read
 * must agree with msg_range's, which is returned. */
static const char *row_reacts(fx *f, int64_t conv, seen *w)
{
    seen o;
    memset(w, 0, sizeof *w);
    assert_int_equal(f->ops->msg_range(f->st, conv, 0, 0, 10, 0, row_reacts_of, w), CHAT_OK);
    memset(&o, 0, sizeof o);
    assert_int_equal(f->ops->msg_range(f->st, conv, 0, 0, 10, 1, row_reacts_of, &o), CHAT_OK);
    assert_int_equal(strlen(o.buf), strlen(w->buf));
    memset(&o, 0, sizeof o);
    for (uint64_t seq = 1; seq <= 4; seq++)
        assert_int_equal(f->ops->msg_get(f->st, conv, seq, row_reacts_of, &o), CHAT_OK);
    assert_string_equal(o.buf, w->buf);
    memset(&o, 0, sizeof o);
    for (uint64_t seq = 1; seq <= 4; seq++) {
        char cmid[32];
        snprintf(cmid, sizeof cmid, "c%llu", (unsigned long long)seq);
        assert_int_equal(f->ops->msg_find_cmid(f->st, conv, "ann", "d", cmid, row_reacts_of, &o),
                         CHAT_OK);
    }
    assert_string_equal(o.buf, w->buf);
    return w->buf;
}

void test_store_life_reactions_in_row(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    seen w;
    for (uint64_t seq = 1; seq <= 4; seq++)
        assert_int_equal(put_msg(f, id, (mspec){.seq = seq, .body = "grape soda",
                                                .target = seq == 4 ? 1 : 0,
                                                .thread = seq == 3 ? 1 : 0,
                                                .expires = seq == 2 ? 500 : 0}),
                         CHAT_OK);
    assert_string_equal(row_reacts(f, id, &w), "1[],2[],3[],4[],");
    assert_int_equal(react(f, id, 2, "bob", "👍", 10, 1), CHAT_OK);
    assert_int_equal(react(f, id, 2, "ann", "👍", 20, 1), CHAT_OK);
    assert_int_equal(react(f, id, 2, "ann", "❤️", 5, 1), CHAT_OK);
    assert_int_equal(react(f, id, 3, "cat", "😂", 30, 1), CHAT_OK);
    assert_int_equal(react(f, id, 4, "ann", "👍", 40, 1), CHAT_OK);
    /* by emoji (bytes), then time: reaction_list's order */
    assert_string_equal(row_reacts(f, id, &w),
                        "1[],2[❤️ ann 5;👍 bob 10;👍 ann 20;],3[😂 cat 30;],4[👍 ann 40;],");
    /* the other reads hand them over too */
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_related(f->st, id, 1, CHAT_MSG_TEXT, row_reacts_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "4[👍 ann 40;],");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_thread(f->st, id, 1, 0, 0, 10, 0, row_reacts_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "3[😂 cat 30;],");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_by_sender(f->st, id, "ann", 2, 10, row_reacts_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "3[😂 cat 30;],4[👍 ann 40;],");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->msg_expired(f->st, 1000, 10, row_reacts_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "2[❤️ ann 5;👍 bob 10;👍 ann 20;],");
    memset(&w, 0, sizeof w);
    int64_t convs[] = {id};
    uint64_t after[] = {0};
    chat_store_search q = {"grape", convs, after, 1, 0, 10};
    assert_int_equal(f->ops->msg_search(f->st, &q, hit_reacts_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "4[👍 ann 40;],3[😂 cat 30;],2[❤️ ann 5;👍 bob 10;👍 ann 20;],1[],");
    /* toggled off; a rolled-back change leaves them as they were */
    assert_int_equal(react(f, id, 2, "bob", "👍", 0, 0), CHAT_OK);
    assert_string_equal(row_reacts(f, id, &w),
                        "1[],2[❤️ ann 5;👍 ann 20;],3[😂 cat 30;],4[👍 ann 40;],");
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(react(f, id, 1, "dan", "👍", 50, 1), CHAT_OK);
    assert_int_equal(f->ops->reaction_clear(f->st, id, 0, "ann"), CHAT_OK);
    assert_string_equal(row_reacts(f, id, &w), "1[👍 dan 50;],2[],3[😂 cat 30;],4[],");
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    assert_string_equal(row_reacts(f, id, &w),
                        "1[],2[❤️ ann 5;👍 ann 20;],3[😂 cat 30;],4[👍 ann 40;],");
    /* cleared: one user everywhere, then one message */
    assert_int_equal(f->ops->reaction_clear(f->st, id, 0, "ann"), CHAT_OK);
    assert_string_equal(row_reacts(f, id, &w), "1[],2[],3[😂 cat 30;],4[],");
    /* more than a few on one message (ten users, put on in the reverse of their names' order) */
    for (int i = 0; i < 10; i++) {
        char u[8];
        snprintf(u, sizeof u, "u%d", 9 - i);
        assert_int_equal(react(f, id, 1, u, "👍", 100 + i, 1), CHAT_OK);
    }
    assert_string_equal(row_reacts(f, id, &w),
                        "1[👍 u9 100;👍 u8 101;👍 u7 102;👍 u6 103;👍 u5 104;👍 u4 105;👍 u3 106;"
                        "👍 u2 107;👍 u1 108;👍 u0 109;],2[],3[😂 cat 30;],4[],");
    /* erased as the engine erases a message: its reactions go with its body, from the row too */
    assert_int_equal(update(f, id, 3, CHAT_MSG_TEXT, "", CHAT_STORE_MSG_DELETED, 0, 0), CHAT_OK);
    assert_int_equal(f->ops->reaction_clear(f->st, id, 3, ""), CHAT_OK);
    assert_int_equal(f->ops->reaction_clear(f->st, id, 1, ""), CHAT_OK);
    assert_string_equal(row_reacts(f, id, &w), "1[],2[],3[],4[],");
    /* msg_update ignores the reactions a row is given */
    chat_store_reaction fake = {id, 4, "eve", "👍", 1};
    chat_store_msg m;
    memset(&m, 0, sizeof m);
    m.conv = id;
    m.seq = 4;
    m.sender = m.device = m.cmid = "";
    m.kind = CHAT_MSG_TEXT;
    m.body = "x";
    m.body_len = 1;
    m.reactions = &fake;
    m.n_reactions = 1;
    assert_int_equal(f->ops->msg_update(f->st, &m), CHAT_OK);
    assert_string_equal(row_reacts(f, id, &w), "1[],2[],3[],4[],");
}

static int deleted_of(const char *name, int64_t ms, void *ud)
{
    return add(ud, "%s=%lld,", name, (long long)ms);
}

void test_store_life_user_delete(void **state)
{
    fx *f = *state;
    chat_store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "ann");
    snprintf(u.pwhash, sizeof u.pwhash, "$argon2id$secret");
    assert_int_equal(f->ops->user_put(f->st, &u), CHAT_OK);
    seen w = {0};
    assert_int_equal(f->ops->user_deleted(f->st, deleted_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "");
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->user_delete(f->st, "ann", 500), CHAT_OK);
    assert_int_equal(f->ops->user_get(f->st, "ann", &u), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    assert_int_equal(f->ops->user_get(f->st, "ann", &u), CHAT_OK);
    assert_string_equal(u.pwhash, "$argon2id$secret");
    assert_int_equal(f->ops->user_delete(f->st, "ann", 500), CHAT_OK);
    assert_int_equal(f->ops->user_delete(f->st, "zed", 400), CHAT_OK); /* never had a row */
    assert_int_equal(f->ops->user_get(f->st, "ann", &u), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->user_deleted(f->st, deleted_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "ann=500,zed=400,");
    assert_int_equal(f->ops->user_delete(f->st, "ann", 700), CHAT_OK); /* deleted again */
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->user_deleted(f->st, deleted_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "ann=700,zed=400,");
    /* an account made again under the name is a new row */
    snprintf(u.pwhash, sizeof u.pwhash, "new");
    assert_int_equal(f->ops->user_put(f->st, &u), CHAT_OK);
    assert_int_equal(f->ops->user_get(f->st, "ann", &u), CHAT_OK);
    assert_int_equal(f->ops->user_delete(f->st, "", 1), CHAT_EINVAL);
}

static int grant_of(int64_t conv, const char *user, void *ud)
{
    return add(ud, "%lld:%s,", (long long)conv, user);
}

void test_store_life_media_refs(void **state)
{
    fx *f = *state;
    chat_store_media m, out;
    memset(&m, 0, sizeof m);
    snprintf(m.id, sizeof m.id, "aa11");
    snprintf(m.uploader, sizeof m.uploader, "ann");
    snprintf(m.mime, sizeof m.mime, "image/png");
    snprintf(m.name, sizeof m.name, "cat.png");
    m.size = 3;
    int64_t refs = -1;
    assert_int_equal(f->ops->media_refs(f->st, "aa11", 1, &refs), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->media_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "aa11", 0, "ann"), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "aa11", 4, ""), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "aa111", 4, ""), CHAT_OK); /* another id */
    assert_int_equal(f->ops->media_refs(f->st, "aa11", 1, &refs), CHAT_OK);
    assert_int_equal(refs, 1);
    assert_int_equal(f->ops->media_refs(f->st, "aa11", 1, NULL), CHAT_OK);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->media_refs(f->st, "aa11", -1, &refs), CHAT_OK);
    assert_int_equal(refs, 1);
    assert_int_equal(f->ops->media_delete(f->st, "aa11"), CHAT_OK);
    assert_int_equal(f->ops->media_get(f->st, "aa11", &out), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    assert_int_equal(f->ops->media_get(f->st, "aa11", &out), CHAT_OK);
    seen w = {0};
    assert_int_equal(f->ops->media_grants(f->st, "aa11", grant_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "0:ann,4:,");
    assert_int_equal(f->ops->media_refs(f->st, "aa11", -1, &refs), CHAT_OK);
    assert_int_equal(refs, 1);
    assert_int_equal(f->ops->media_delete(f->st, "aa11"), CHAT_OK);
    assert_int_equal(f->ops->media_get(f->st, "aa11", &out), CHAT_ENOTFOUND);
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->media_grants(f->st, "aa11", grant_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "");
    memset(&w, 0, sizeof w);
    assert_int_equal(f->ops->media_grants(f->st, "aa111", grant_of, &w), CHAT_OK);
    assert_string_equal(w.buf, "4:,");
    assert_int_equal(f->ops->media_delete(f->st, "aa11"), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->media_delete(f->st, "a\nb"), CHAT_EINVAL);
}

/* The point reads may run inside a listing's callback; the rest are refused there. */
static int reenter(const chat_store_msg *m, void *ud)
{
    fx *f = ud;
    seen w = {0};
    uint64_t n;
    assert_int_equal(f->ops->msg_get(f->st, m->conv, m->seq, seq_of, &w), CHAT_OK);
    assert_int_equal(f->ops->msg_count(f->st, m->conv, 0, 0, m->seq, &n), CHAT_OK);
    assert_int_equal(update(f, m->conv, m->seq, CHAT_MSG_TEXT, "x", 0, 0, 0), CHAT_EMISUSE);
    assert_int_equal(f->ops->reaction_clear(f->st, m->conv, m->seq, ""), CHAT_EMISUSE);
    return 0;
}

void test_store_life_callback_reentry(void **state)
{
    fx *f = *state;
    int64_t id = new_conv(f);
    assert_int_equal(put_msg(f, id, (mspec){.seq = 1, .body = "a"}), CHAT_OK);
    assert_int_equal(f->ops->msg_range(f->st, id, 0, 0, 10, 0, reenter, f), CHAT_OK);
}
