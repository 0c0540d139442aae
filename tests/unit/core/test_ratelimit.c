/* Token bucket on a fake clock: burst, refusal, refill, and retry_after being exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/ratelimit.h"

static void test_ratelimit_burst_then_refusal(void **state)
{
    (void)state;
    chat__bucket b;
    chat__bucket_init(&b, 3, 1000);
    int64_t retry = -7;
    for (int i = 0; i < 3; i++)
        assert_int_equal(chat__bucket_take(&b, 2, 3, 1000, &retry), 1);
    assert_int_equal(retry, -7); /* untouched on success */
    assert_int_equal(chat__bucket_take(&b, 2, 3, 1000, &retry), 0);
    assert_int_equal(retry, 500); /* 2 per second: one token every 500 ms */
}

static void test_ratelimit_retry_after_is_exact(void **state)
{
    (void)state;
    chat__bucket b;
    int64_t retry = 0;
    chat__bucket_init(&b, 1, 0);
    assert_int_equal(chat__bucket_take(&b, 2, 1, 0, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 2, 1, 0, &retry), 0);
    assert_int_equal(retry, 500);
    assert_int_equal(chat__bucket_take(&b, 2, 1, 499, &retry), 0);
    assert_int_equal(retry, 1);
    assert_int_equal(chat__bucket_take(&b, 2, 1, 500, &retry), 1);

    /* 3 per second: 333.3 ms rounds up to 334, and 333 is really too early */
    chat__bucket_init(&b, 1, 0);
    assert_int_equal(chat__bucket_take(&b, 3, 1, 0, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 3, 1, 0, &retry), 0);
    assert_int_equal(retry, 334);
    assert_int_equal(chat__bucket_take(&b, 3, 1, 333, &retry), 0);
    assert_int_equal(retry, 1);
    assert_int_equal(chat__bucket_take(&b, 3, 1, 334, &retry), 1);
}

static void test_ratelimit_partial_refills_add_up(void **state)
{
    (void)state;
    /* 20 per second: 0.6 + 0.4 tokens after 30 + 20 ms must make one whole token, despite
     * neither being exact in binary */
    chat__bucket b;
    int64_t retry = 0;
    chat__bucket_init(&b, 1, 0);
    assert_int_equal(chat__bucket_take(&b, 20, 1, 0, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 20, 1, 30, &retry), 0);
    assert_int_equal(retry, 20);
    assert_int_equal(chat__bucket_take(&b, 20, 1, 50, &retry), 1);
    /* and every retry_after honoured at once succeeds, over many rates */
    for (int rate = 1; rate <= 1000; rate += 7) {
        chat__bucket_init(&b, 1, 0);
        int64_t now = 0;
        assert_int_equal(chat__bucket_take(&b, rate, 1, now, &retry), 1);
        for (int i = 0; i < 20; i++) {
            now += 3;
            if (chat__bucket_take(&b, rate, 1, now, &retry))
                continue;
            int64_t wait = retry, again = 0;
            assert_int_equal(chat__bucket_take(&b, rate, 1, now + wait - 1, &again), 0);
            assert_int_equal(again, 1);
            now += wait;
            assert_int_equal(chat__bucket_take(&b, rate, 1, now, &retry), 1);
        }
    }
}

static void test_ratelimit_refill_capped_at_burst(void **state)
{
    (void)state;
    chat__bucket b;
    int64_t retry = 0;
    chat__bucket_init(&b, 2, 0);
    assert_int_equal(chat__bucket_take(&b, 10, 2, 0, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 10, 2, 0, &retry), 1);
    /* an hour idle buys back two tokens, not 36000 */
    int64_t t = 3600 * 1000;
    assert_int_equal(chat__bucket_take(&b, 10, 2, t, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 10, 2, t, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 10, 2, t, &retry), 0);
    assert_int_equal(retry, 100);
}

static void test_ratelimit_clock_backwards_refills_nothing(void **state)
{
    (void)state;
    chat__bucket b;
    int64_t retry = 0;
    chat__bucket_init(&b, 1, 10000);
    assert_int_equal(chat__bucket_take(&b, 1, 1, 10000, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 1, 1, 5000, &retry), 0);
    assert_int_equal(retry, 1000);
    assert_int_equal(chat__bucket_take(&b, 1, 1, 10999, &retry), 0);
    assert_int_equal(chat__bucket_take(&b, 1, 1, 11000, &retry), 1);
}

static void test_ratelimit_zero_rate_never_refills(void **state)
{
    (void)state;
    chat__bucket b;
    int64_t retry = 0;
    chat__bucket_init(&b, 1, 0);
    assert_int_equal(chat__bucket_take(&b, 0, 1, 0, &retry), 1);
    assert_int_equal(chat__bucket_take(&b, 0, 1, 1000000, &retry), 0);
    assert_true(retry == INT64_MAX);
    assert_int_equal(chat__bucket_take(&b, 0, 1, 2000000, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit_burst_then_refusal),
        cmocka_unit_test(test_ratelimit_retry_after_is_exact),
        cmocka_unit_test(test_ratelimit_partial_refills_add_up),
        cmocka_unit_test(test_ratelimit_refill_capped_at_burst),
        cmocka_unit_test(test_ratelimit_clock_backwards_refills_nothing),
        cmocka_unit_test(test_ratelimit_zero_rate_never_refills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
