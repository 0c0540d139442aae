/* Typing table on an injected clock: transitions, expiry, the next deadline. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/errors.h"
#include "core/typing.h"

#include <stdio.h>
#include <string.h>

/* What an expiry callback saw. */
typedef struct seen {
    int n;
    int64_t conv[64];
    char user[64][65];
} seen;

static void record(int64_t conv, const char *user, void *ud)
{
    seen *s = ud;
    assert_true(s->n < 64);
    s->conv[s->n] = conv;
    snprintf(s->user[s->n], sizeof s->user[s->n], "%s", user);
    s->n++;
}

static int saw(const seen *s, int64_t conv, const char *user)
{
    int hits = 0;
    for (int i = 0; i < s->n; i++)
        if (s->conv[i] == conv && strcmp(s->user[i], user) == 0)
            hits++;
    return hits;
}

static void test_typing_start_is_a_transition_only_once(void **state)
{
    (void)state;
    chat__typing t;
    chat__typing_init(&t);
    assert_int_equal(chat__typing_start(&t, 1, "alice", 1000), 1);
    assert_int_equal(chat__typing_start(&t, 1, "alice", 2000), 0); /* only extends */
    assert_int_equal(chat__typing_start(&t, 1, "alice", 3000), 0);
    assert_int_equal(chat__typing_count(&t), 1);
    assert_int_equal(chat__typing_next_deadline(&t), 3000);
    /* another user, or the same user elsewhere, is a transition of its own */
    assert_int_equal(chat__typing_start(&t, 1, "bob", 1500), 1);
    assert_int_equal(chat__typing_start(&t, 2, "alice", 1500), 1);
    assert_int_equal(chat__typing_count(&t), 3);
    chat__typing_free(&t);
}

static void test_typing_stop_only_when_typing(void **state)
{
    (void)state;
    chat__typing t;
    chat__typing_init(&t);
    assert_int_equal(chat__typing_stop(&t, 1, "alice"), 0); /* empty table */
    assert_int_equal(chat__typing_start(&t, 1, "alice", 1000), 1);
    assert_int_equal(chat__typing_start(&t, 1, "bob", 1000), 1);
    assert_int_equal(chat__typing_stop(&t, 2, "alice"), 0); /* other conversation */
    assert_int_equal(chat__typing_stop(&t, 1, "carol"), 0);
    assert_int_equal(chat__typing_stop(&t, 1, "alice"), 1);
    assert_int_equal(chat__typing_stop(&t, 1, "alice"), 0); /* already stopped */
    assert_int_equal(chat__typing_count(&t), 1);
    /* starting again after a stop is a new transition */
    assert_int_equal(chat__typing_start(&t, 1, "alice", 1000), 1);
    chat__typing_free(&t);
}

static void test_typing_expire_removes_due_entries_only(void **state)
{
    (void)state;
    chat__typing t;
    chat__typing_init(&t);
    assert_int_equal(chat__typing_start(&t, 1, "a", 100), 1);
    assert_int_equal(chat__typing_start(&t, 1, "b", 200), 1);
    assert_int_equal(chat__typing_start(&t, 2, "c", 199), 1);
    assert_int_equal(chat__typing_start(&t, 3, "d", 201), 1);
    assert_int_equal(chat__typing_start(&t, 3, "e", 50), 1);

    seen s = {0};
    assert_int_equal(chat__typing_expire(&t, 49, record, &s), 0);
    assert_int_equal(s.n, 0);

    /* at now = 200: the entries expiring at or before 200 go, each reported once */
    assert_int_equal(chat__typing_expire(&t, 200, record, &s), 4);
    assert_int_equal(s.n, 4);
    assert_int_equal(saw(&s, 1, "a"), 1);
    assert_int_equal(saw(&s, 1, "b"), 1);
    assert_int_equal(saw(&s, 2, "c"), 1);
    assert_int_equal(saw(&s, 3, "e"), 1);
    assert_int_equal(saw(&s, 3, "d"), 0);
    assert_int_equal(chat__typing_count(&t), 1);
    assert_int_equal(chat__typing_stop(&t, 3, "d"), 1); /* the survivor is intact */

    /* expired entries are gone: starting them again is a transition */
    assert_int_equal(chat__typing_start(&t, 1, "a", 300), 1);
    /* an extended deadline is honoured: not expired at the old one */
    assert_int_equal(chat__typing_start(&t, 1, "a", 400), 0);
    s.n = 0;
    assert_int_equal(chat__typing_expire(&t, 300, record, &s), 0);
    assert_int_equal(chat__typing_expire(&t, 400, NULL, NULL), 1); /* cb is optional */
    assert_int_equal(chat__typing_count(&t), 0);
    chat__typing_free(&t);
}

static void test_typing_next_deadline_is_the_minimum(void **state)
{
    (void)state;
    chat__typing t;
    chat__typing_init(&t);
    assert_true(chat__typing_next_deadline(&t) == INT64_MAX);
    assert_int_equal(chat__typing_start(&t, 1, "a", 500), 1);
    assert_int_equal(chat__typing_next_deadline(&t), 500);
    assert_int_equal(chat__typing_start(&t, 1, "b", 300), 1);
    assert_int_equal(chat__typing_next_deadline(&t), 300);
    assert_int_equal(chat__typing_start(&t, 1, "c", 900), 1);
    assert_int_equal(chat__typing_next_deadline(&t), 300);
    /* extending the earliest moves the minimum to the next one */
    assert_int_equal(chat__typing_start(&t, 1, "b", 1000), 0);
    assert_int_equal(chat__typing_next_deadline(&t), 500);
    assert_int_equal(chat__typing_stop(&t, 1, "a"), 1);
    assert_int_equal(chat__typing_next_deadline(&t), 900);
    assert_int_equal(chat__typing_expire(&t, 5000, NULL, NULL), 2);
    assert_true(chat__typing_next_deadline(&t) == INT64_MAX);
    chat__typing_free(&t);
}

static void test_typing_many_entries(void **state)
{
    (void)state;
    enum { N = 2000 };
    chat__typing t;
    chat__typing_init(&t);
    char user[32];
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof user, "u%d", i);
        /* deadlines 1..N, in a scrambled order */
        int64_t dl = (int64_t)((i * 7919) % N) + 1;
        assert_int_equal(chat__typing_start(&t, i % 7, user, dl), 1);
    }
    assert_int_equal(chat__typing_count(&t), N);
    assert_int_equal(chat__typing_next_deadline(&t), 1);
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof user, "u%d", i);
        assert_int_equal(chat__typing_start(&t, i % 7, user, (int64_t)((i * 7919) % N) + 1), 0);
    }
    assert_int_equal(chat__typing_count(&t), N);

    /* expire the lower half: exactly the deadlines 1..N/2 */
    size_t count = 0;
    int64_t now = N / 2;
    count = chat__typing_expire(&t, now, NULL, NULL);
    assert_int_equal(count, N / 2);
    assert_int_equal(chat__typing_count(&t), N / 2);
    assert_int_equal(chat__typing_next_deadline(&t), now + 1);

    /* stop every survivor by name: each one was typing, exactly once */
    int stopped = 0;
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof user, "u%d", i);
        int64_t dl = (int64_t)((i * 7919) % N) + 1;
        int r = chat__typing_stop(&t, i % 7, user);
        assert_int_equal(r, dl > now ? 1 : 0);
        stopped += r;
    }
    assert_int_equal(stopped, N / 2);
    assert_int_equal(chat__typing_count(&t), 0);
    assert_true(chat__typing_next_deadline(&t) == INT64_MAX);
    chat__typing_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typing_start_is_a_transition_only_once),
        cmocka_unit_test(test_typing_stop_only_when_typing),
        cmocka_unit_test(test_typing_expire_removes_due_entries_only),
        cmocka_unit_test(test_typing_next_deadline_is_the_minimum),
        cmocka_unit_test(test_typing_many_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
