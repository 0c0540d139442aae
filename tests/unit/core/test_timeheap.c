/* The deadline heap against a plain array as the reference: after every random set, move and
 * delete, the top is the earliest queued deadline and every node's slot points back at it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/errors.h"
#include "core/timeheap.h"

#include <stdlib.h>

enum { NODES = 300, OPS = 20000 };

static unsigned seed = 20261206u;

/* Fixed-seed pseudo-random numbers, so every run does the same work. */
static uint64_t next_rand(void)
{
    return (uint64_t)rand_r(&seed);
}

/* The heap order, the slots, and the top against the reference. */
static void check(const chat__timeheap *h, chat__timenode *nodes, const int *queued)
{
    size_t count = 0;
    chat__timenode *min = NULL;
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(chat__timenode_queued(&nodes[i]), queued[i]);
        if (!queued[i])
            continue;
        count++;
        assert_ptr_equal(h->v[nodes[i].slot - 1], &nodes[i]);
        if (!min || nodes[i].at < min->at)
            min = &nodes[i];
    }
    assert_int_equal(h->n, count);
    for (size_t i = 1; i < h->n; i++)
        assert_true(h->v[(i - 1) / 2]->at <= h->v[i]->at);
    if (!min)
        assert_null(chat__timeheap_top(h));
    else
        assert_true(chat__timeheap_top(h)->at == min->at);
}

static void test_timeheap_random_operations_keep_the_order(void **state)
{
    (void)state;
    chat__timeheap h;
    chat__timenode nodes[NODES] = {0};
    int queued[NODES] = {0};
    chat__timeheap_init(&h);
    assert_int_equal(chat__timeheap_reserve(&h, NODES), CHAT_OK);
    for (int op = 0; op < OPS; op++) {
        int i = (int)(next_rand() % NODES);
        uint64_t r = next_rand() % 10;
        if (r < 6) {
            /* queue or move, with many equal deadlines among few values */
            chat__timeheap_set(&h, &nodes[i], (int64_t)(next_rand() % 1000));
            queued[i] = 1;
        } else if (r < 9) {
            chat__timeheap_del(&h, &nodes[i]); /* also when not queued: a no-op */
            queued[i] = 0;
        } else {
            /* pop the earliest, as a timer does */
            chat__timenode *top = chat__timeheap_top(&h);
            if (top) {
                chat__timeheap_del(&h, top);
                queued[top - nodes] = 0;
            }
        }
        check(&h, nodes, queued);
    }
    chat__timeheap_free(&h);
}

static void test_timeheap_pops_in_deadline_order(void **state)
{
    (void)state;
    enum { N = 5000 };
    static chat__timenode nodes[N];
    chat__timeheap h;
    chat__timeheap_init(&h);
    for (int i = 0; i < N; i++) {
        /* room grows as an engine reserves it, one entry at a time */
        assert_int_equal(chat__timeheap_reserve(&h, (size_t)i + 1), CHAT_OK);
        chat__timeheap_set(&h, &nodes[i], (int64_t)((i * 7919) % N));
    }
    /* move a quarter later, and back before everyone */
    for (int i = 0; i < N; i += 4)
        chat__timeheap_set(&h, &nodes[i], nodes[i].at + N);
    chat__timeheap_set(&h, &nodes[1], -1);
    int64_t last = INT64_MIN;
    size_t popped = 0;
    chat__timenode *top;
    while ((top = chat__timeheap_top(&h))) {
        assert_true(top->at >= last);
        last = top->at;
        chat__timeheap_del(&h, top);
        popped++;
    }
    assert_int_equal(popped, N);
    assert_true(nodes[1].at == -1);
    chat__timeheap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeheap_random_operations_keep_the_order),
        cmocka_unit_test(test_timeheap_pops_in_deadline_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
