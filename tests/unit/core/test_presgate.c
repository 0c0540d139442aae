/* Presence coalescing on an injected clock: the offline grace, the per-user bucket, the final
 * state and last seen, flush at stop, that entries go away, and that announcements that could
 * not go out are tried again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/errors.h"
#include "core/presgate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1700000000000LL

/* The announcements seen, in order. */
typedef struct seen {
    int n;
    int online[256];
    int64_t last_seen[256];
    int refuse; /* refuse this many announcements (out of memory), recording nothing */
} seen;

static int record(const char *user, int online, int64_t last_seen_ms, void *ud)
{
    seen *s = ud;
    assert_string_equal(user, "alice");
    if (s->refuse > 0) {
        s->refuse--;
        return CHAT_ENOMEM;
    }
    assert_true(s->n < 256);
    s->online[s->n] = online;
    s->last_seen[s->n] = last_seen_ms;
    s->n++;
    return 0;
}

static int64_t change(chat__presgate *g, int online, int64_t now, seen *s)
{
    int64_t due = -1;
    assert_int_equal(chat__presgate_change(g, "alice", online, now, record, s, &due), CHAT_OK);
    return due;
}

/* Run the gate's timer as an engine would, from now until `until`; returns the clock. */
static int64_t run_until(chat__presgate *g, int64_t now, int64_t until, int64_t due, seen *s)
{
    while (due && due <= until) {
        now = due > now ? due : now;
        due = chat__presgate_run(g, now, record, s);
    }
    return until > now ? until : now;
}

static void test_presgate_online_is_announced_at_once(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 2000, 12);
    assert_int_equal(chat__presgate_shown(&g, "alice"), -1);
    assert_int_equal(change(&g, 1, T0, &s), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.online[0], 1);
    assert_int_equal(chat__presgate_shown(&g, "alice"), 1);
    chat__presgate_free(&g);
}

static void test_presgate_offline_waits_for_the_grace(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 2000, 12);
    change(&g, 1, T0, &s);
    int64_t due = change(&g, 0, T0 + 100, &s);
    assert_true(due == T0 + 2100);
    assert_int_equal(s.n, 1);
    assert_int_equal(chat__presgate_shown(&g, "alice"), 1); /* still shown online */
    assert_true(chat__presgate_run(&g, T0 + 2099, record, &s) == T0 + 2100);
    assert_int_equal(s.n, 1);
    chat__presgate_run(&g, T0 + 2100, record, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.online[1], 0);
    assert_true(s.last_seen[1] == T0 + 100); /* when the device left, not the grace's end */
    assert_int_equal(chat__presgate_shown(&g, "alice"), 0);
    chat__presgate_free(&g);
}

static void test_presgate_reconnect_within_the_grace_announces_nothing(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 2000, 12);
    change(&g, 1, T0, &s);
    int64_t due = change(&g, 0, T0 + 100, &s);
    assert_int_equal(change(&g, 1, T0 + 1500, &s), 0);
    run_until(&g, T0 + 1500, T0 + 60000, due, &s);
    assert_int_equal(s.n, 1);
    assert_int_equal(chat__presgate_shown(&g, "alice"), 1);
    chat__presgate_free(&g);
}

static void test_presgate_fast_flapping_is_one_online_and_one_offline(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 2000, 12);
    int64_t now = T0, due = 0;
    for (int i = 0; i < 50; i++) {
        change(&g, 1, now, &s);
        due = change(&g, 0, now + 10, &s);
        now += 20;
    }
    run_until(&g, now, now + 120000, due, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.online[0], 1);
    assert_int_equal(s.online[1], 0);
    assert_true(s.last_seen[1] == now - 10);
    assert_int_equal(chat__presgate_size(&g), 0); /* forgotten once the bucket is full */
    chat__presgate_free(&g);
}

/* Flaps slower than the grace: at most burst + rate * t announcements, and the last one is
 * the true state with the last disconnect's last seen, even when the bucket held back the
 * online before it. */
static void test_presgate_slow_flapping_is_bounded_and_converges(void **state)
{
    (void)state;
    for (int end_online = 0; end_online <= 1; end_online++) {
        chat__presgate g;
        seen s = {0};
        chat__presgate_init(&g, 0, 6); /* no grace; 6 per minute: a token per 10 s */
        int64_t now = T0, due = 0, last_left = 0;
        for (int i = 0; i < 40; i++) { /* 80 changes in 40 s */
            due = change(&g, 1, now, &s);
            now = run_until(&g, now, now + 500, due, &s);
            last_left = now;
            due = change(&g, 0, now, &s);
            now = run_until(&g, now, now + 500, due, &s);
        }
        if (end_online)
            due = change(&g, 1, now, &s);
        run_until(&g, now, now + 300000, due ? due : chat__presgate_run(&g, now, record, &s),
                  &s);
        /* 6 at once, then about one per 10 s over the 40 s, plus the final one */
        assert_true(s.n <= 6 + 4 + 1 + 1);
        assert_int_equal(s.online[s.n - 1], end_online);
        if (!end_online)
            assert_true(s.last_seen[s.n - 1] == last_left);
        assert_int_equal(chat__presgate_shown(&g, "alice"), end_online ? 1 : -1);
        chat__presgate_free(&g);
    }
}

static void test_presgate_flush_announces_pending_changes_at_once(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 10000, 12);
    change(&g, 1, T0, &s);
    change(&g, 0, T0 + 100, &s);
    chat__presgate_flush(&g, T0 + 200, record, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.online[1], 0);
    assert_true(s.last_seen[1] == T0 + 100);
    assert_int_equal(chat__presgate_size(&g), 0);
    chat__presgate_free(&g);
}

static void test_presgate_entries_are_dropped_when_idle(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 1000, 60); /* a token per second */
    change(&g, 1, T0, &s);
    assert_int_equal(chat__presgate_size(&g), 1);
    int64_t due = change(&g, 0, T0 + 10, &s);
    /* offline announced at T0 + 1010; two tokens to refill: about 2 s later */
    int64_t now = run_until(&g, T0 + 10, T0 + 1010, due, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(chat__presgate_size(&g), 1);
    due = chat__presgate_run(&g, now, record, &s);
    assert_true(due > now && due <= now + 2100);
    chat__presgate_run(&g, due, record, &s);
    assert_int_equal(chat__presgate_size(&g), 0);
    assert_int_equal(chat__presgate_shown(&g, "alice"), -1);
    chat__presgate_free(&g);
}

/* An announcement refused by the engine (out of memory) is not taken as told: it comes again
 * CHAT__PRESGATE_RETRY_MS later, and the state shown stays the old one until it went out. */
static void test_presgate_refused_announcement_is_retried(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 2000, 12);
    s.refuse = 2;
    int64_t due = change(&g, 1, T0, &s);
    assert_true(due == T0 + CHAT__PRESGATE_RETRY_MS);
    assert_int_equal(s.n, 0);
    assert_int_equal(chat__presgate_shown(&g, "alice"), 0);
    due = chat__presgate_run(&g, due, record, &s); /* refused again */
    assert_true(due == T0 + 2 * CHAT__PRESGATE_RETRY_MS);
    assert_true(chat__presgate_run(&g, due, record, &s) == 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.online[0], 1);
    assert_int_equal(chat__presgate_shown(&g, "alice"), 1);
    chat__presgate_free(&g);
}

/* An announcement that failed after it was handed over (its job ran out of memory) is made
 * again, also an offline one whose entry was already forgotten; one overtaken by a later
 * announcement is not. */
static void test_presgate_failed_announcement_is_retried(void **state)
{
    (void)state;
    chat__presgate g;
    seen s = {0};
    chat__presgate_init(&g, 1000, 600); /* 10 tokens a second: the bucket refills at once */
    change(&g, 1, T0, &s);
    assert_int_equal(s.n, 1);
    int64_t due = chat__presgate_failed(&g, "alice", 1, 0, T0 + 5);
    assert_true(due == T0 + 5 + CHAT__PRESGATE_RETRY_MS);
    assert_int_equal(chat__presgate_shown(&g, "alice"), 0);
    assert_true(chat__presgate_run(&g, due, record, &s) == 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.online[1], 1);

    /* Offline announced, then the entry is forgotten; its failure brings it back. */
    due = change(&g, 0, T0 + 2000, &s);
    int64_t now = run_until(&g, T0 + 2000, T0 + 10000, due, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(chat__presgate_size(&g), 0);
    due = chat__presgate_failed(&g, "alice", 0, T0 + 2000, now);
    assert_true(due == now + CHAT__PRESGATE_RETRY_MS);
    run_until(&g, now, now + 10000, due, &s);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.online[3], 0);
    assert_true(s.last_seen[3] == T0 + 2000);

    /* Online again, announced; the old offline's failure comes late and changes nothing. */
    now += 20000;
    assert_int_equal(change(&g, 1, now, &s), 0);
    assert_int_equal(s.n, 5);
    assert_true(chat__presgate_failed(&g, "alice", 0, T0 + 2000, now) == 0);
    assert_int_equal(chat__presgate_shown(&g, "alice"), 1);
    chat__presgate_free(&g);
}

/* Many users: what each one was told, and when (the clock of the run that told it). */
enum { CROWD = 3000 };
typedef struct crowd {
    int64_t now;
    int online[CROWD], offline[CROWD];
    int64_t offline_at[CROWD], last_seen[CROWD];
} crowd;

static int crowd_record(const char *user, int online, int64_t last_seen_ms, void *ud)
{
    crowd *c = ud;
    int i = atoi(user + 1);
    assert_true(i >= 0 && i < CROWD);
    if (online) {
        c->online[i]++;
        return 0;
    }
    c->offline[i]++;
    c->offline_at[i] = c->now;
    c->last_seen[i] = last_seen_ms;
    return 0;
}

/* Users leave in a scrambled order; the timer, run at each deadline it returns, announces every
 * offline exactly at its grace's end, skips the users who came back, and then forgets all. */
static void test_presgate_many_users_are_announced_at_their_deadlines(void **state)
{
    (void)state;
    static crowd c;
    chat__presgate g;
    char user[16];
    int64_t due, first = 0;
    chat__presgate_init(&g, 2000, 12);
    c.now = T0;
    for (int i = 0; i < CROWD; i++) {
        snprintf(user, sizeof user, "u%d", i);
        assert_int_equal(chat__presgate_change(&g, user, 1, T0, crowd_record, &c, &due), CHAT_OK);
        assert_true(due == 0); /* announced at once, nothing left to do */
    }
    for (int i = 0; i < CROWD; i++) {
        snprintf(user, sizeof user, "u%d", i);
        int64_t left = T0 + 10 + (i * 7919) % CROWD;
        assert_int_equal(chat__presgate_change(&g, user, 0, left, crowd_record, &c, &due), CHAT_OK);
        assert_true(due == left + 2000);
        if (!first || due < first)
            first = due;
        if (i % 10 == 0) { /* back within the grace */
            assert_int_equal(chat__presgate_change(&g, user, 1, left + 1000, crowd_record, &c, &due),
                             CHAT_OK);
            assert_true(due == 0);
        }
    }
    /* The engine arms its timer for the earliest deadline, and then for what run returns. */
    int runs = 0;
    for (due = first; due; runs++) {
        assert_true(due > c.now);
        c.now = due;
        due = chat__presgate_run(&g, c.now, crowd_record, &c);
    }
    assert_true(runs > 0);
    for (int i = 0; i < CROWD; i++) {
        int64_t left = T0 + 10 + (i * 7919) % CROWD;
        assert_int_equal(c.online[i], 1);
        if (i % 10 == 0) {
            assert_int_equal(c.offline[i], 0);
            continue;
        }
        assert_int_equal(c.offline[i], 1);
        assert_true(c.offline_at[i] == left + 2000);
        assert_true(c.last_seen[i] == left);
    }
    /* Only the users still online are held once every bucket is full again. */
    assert_int_equal(chat__presgate_size(&g), CROWD / 10);
    chat__presgate_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presgate_online_is_announced_at_once),
        cmocka_unit_test(test_presgate_refused_announcement_is_retried),
        cmocka_unit_test(test_presgate_failed_announcement_is_retried),
        cmocka_unit_test(test_presgate_offline_waits_for_the_grace),
        cmocka_unit_test(test_presgate_reconnect_within_the_grace_announces_nothing),
        cmocka_unit_test(test_presgate_fast_flapping_is_one_online_and_one_offline),
        cmocka_unit_test(test_presgate_slow_flapping_is_bounded_and_converges),
        cmocka_unit_test(test_presgate_flush_announces_pending_changes_at_once),
        cmocka_unit_test(test_presgate_entries_are_dropped_when_idle),
        cmocka_unit_test(test_presgate_many_users_are_announced_at_their_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
