/* lib/client/cache.c: what storing a message and taking my own watermark cost must not grow with
 * the conversation (counted in SQLite VM steps, not time), the end of the contiguous run of
 * cached seqs, and the kept prepared statements (one in use is never handed out twice; more
 * distinct statements than are kept still run). An in-memory cache, alice's, conversation 12
 * with bob. */
#include "client/cache_internal.h"
#include "chat/errors.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static unsigned long steps;

static int count_step(void *ud)
{
    (void)ud;
    steps++;
    return 0;
}

static int setup(void **state)
{
    chat__cache *c = NULL;
    assert_int_equal(chat__cache_open(&c, NULL), CHAT_OK);
    cJSON *conv = cJSON_Parse("{\"conv\":12,\"kind\":\"direct\",\"head\":0,\"delivered\":0,"
                              "\"read\":0,\"joined\":0,\"unread\":0,\"members\":["
                              "{\"user\":\"alice\",\"role\":\"member\"},"
                              "{\"user\":\"bob\",\"role\":\"member\"}]}");
    assert_non_null(conv);
    assert_int_equal(chat__cache_conv_upsert(c, conv, "alice", NULL), CHAT_OK);
    cJSON_Delete(conv);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    chat__cache_close(*state);
    return 0;
}

/* bob's message seq, new to the cache */
static void store(chat__cache *c, uint64_t seq)
{
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"type\":\"msg\",\"conv\":12,\"seq\":%llu,\"ts\":1764331200000,\"from\":\"bob\","
             "\"device\":\"phone\",\"cmid\":\"b-%llu\",\"kind\":\"text\",\"text\":\"hello %llu\"}",
             (unsigned long long)seq, (unsigned long long)seq, (unsigned long long)seq);
    cJSON *m = cJSON_Parse(buf);
    assert_non_null(m);
    int known = 0;
    assert_int_equal(chat__cache_msg_insert(c, m, "alice", &known, NULL), 1);
    assert_true(known);
    cJSON_Delete(m);
}

static void store_range(chat__cache *c, uint64_t from, uint64_t to)
{
    for (uint64_t s = from; s <= to; s++)
        store(c, s);
}

static void count_on(chat__cache *c)
{
    steps = 0;
    sqlite3_progress_handler(c->db, 1, count_step, NULL);
}

static unsigned long count_off(chat__cache *c)
{
    sqlite3_progress_handler(c->db, 0, NULL, NULL);
    return steps;
}

static int64_t unread(chat__cache *c)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(c->db, "SELECT unread FROM convs WHERE conv=12", -1, &st,
                                        NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Storing the 2000th message of a conversation costs what storing the 21st did, within a
 * margin (a deeper b-tree): no walk over the cached messages on the way. */
static void test_cache_store_cost_does_not_grow(void **state)
{
    chat__cache *c = *state;
    store_range(c, 1, 20);
    count_on(c);
    store(c, 21);
    unsigned long early = count_off(c);
    store_range(c, 22, 1999);
    count_on(c);
    store(c, 2000);
    unsigned long late = count_off(c);
    print_message("VM steps to store message 21: %lu, message 2000: %lu\n", early, late);
    assert_true(early > 0);
    assert_true(late < early * 2);
}

/* My delivered mark (echoed for every message a device takes) leaves the unread count as it is
 * and costs the same with 20 or 2000 unread; a read mark that moves recounts it. */
static void test_cache_delivered_mark_does_not_recount(void **state)
{
    chat__cache *c = *state;
    store_range(c, 1, 20);
    count_on(c);
    assert_int_equal(chat__cache_watermark(c, 12, "alice", 20, 0, 1, 0, "alice"), CHAT_OK);
    unsigned long early = count_off(c);
    store_range(c, 21, 2000);
    count_on(c);
    assert_int_equal(chat__cache_watermark(c, 12, "alice", 2000, 0, 2, 0, "alice"), CHAT_OK);
    unsigned long late = count_off(c);
    print_message("VM steps of a delivered mark at 20 unread: %lu, at 2000: %lu\n", early, late);
    assert_true(late < early * 2);
    assert_int_equal(unread(c), 2000);
    assert_int_equal(chat__cache_watermark(c, 12, "alice", 2000, 1500, 3, 3, "alice"), CHAT_OK);
    assert_int_equal(unread(c), 500);
    /* bob's marks are his: my count stays */
    assert_int_equal(chat__cache_watermark(c, 12, "bob", 2000, 2000, 4, 4, "alice"), CHAT_OK);
    assert_int_equal(unread(c), 500);
}

/* The run that starts at the lowest cached seq ends before the first gap; filling the gap
 * extends it to the newest. */
static void test_cache_contig_ends_at_the_first_gap(void **state)
{
    chat__cache *c = *state;
    assert_int_equal(chat__cache_conv_contig(c, 12), 0);
    store_range(c, 3, 7);
    store_range(c, 9, 10);
    assert_int_equal(chat__cache_conv_contig(c, 12), 7);
    chat__conv_row row;
    assert_int_equal(chat__cache_conv_get(c, 12, &row), CHAT_OK);
    assert_int_equal(row.max_seq, 10);
    store(c, 8);
    assert_int_equal(chat__cache_conv_contig(c, 12), 10);
    assert_int_equal(chat__cache_conv_contig(c, 99), 0);
}

static int64_t one_int(chat__cache *c, sqlite3_stmt *st, int64_t bind)
{
    assert_non_null(st);
    sqlite3_bind_int64(st, 1, bind);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    (void)c;
    return v;
}

/* A statement in use is not handed out again (nested uses of one SQL text get two), a kept one
 * comes back reset with no bindings, and SQL past the kept number still runs. */
static void test_cache_statements_kept_and_nested(void **state)
{
    chat__cache *c = *state;
    static const char *const sql = "SELECT ?1 + 1";
    chat__cache_lock(c);
    sqlite3_stmt *a = chat__cache_prep(c, sql);
    assert_int_equal(one_int(c, a, 1), 2);
    sqlite3_stmt *b = chat__cache_prep(c, sql); /* a still stepping */
    assert_ptr_not_equal(a, b);
    assert_int_equal(one_int(c, b, 41), 42);
    chat__cache_done(c, b);
    chat__cache_done(c, a);
    sqlite3_stmt *again = chat__cache_prep(c, sql);
    assert_ptr_equal(again, a);
    assert_int_equal(sqlite3_step(again), SQLITE_ROW); /* unbound: NULL + 1 */
    assert_int_equal(sqlite3_column_type(again, 0), SQLITE_NULL);
    chat__cache_done(c, again);

    /* every statement of the cache's own plus twice the kept number of new texts, twice */
    static char texts[2 * CHAT__CACHE_STMTS][32];
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 2 * CHAT__CACHE_STMTS; i++) {
            snprintf(texts[i], sizeof texts[i], "SELECT ?1 * %d", i + 2);
            sqlite3_stmt *st = chat__cache_prep(c, texts[i]);
            assert_int_equal(one_int(c, st, 3), 3 * (i + 2));
            chat__cache_done(c, st);
        }
    assert_int_equal(c->nstmts, CHAT__CACHE_STMTS);
    chat__cache_done(c, NULL);
    assert_null(chat__cache_prep(c, "SELECT FROM nowhere"));
    chat__cache_unlock(c);
    /* the cache works on after all that */
    store_range(c, 1, 3);
    assert_int_equal(chat__cache_conv_contig(c, 12), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cache_store_cost_does_not_grow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_delivered_mark_does_not_recount, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_contig_ends_at_the_first_gap, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cache_statements_kept_and_nested, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
