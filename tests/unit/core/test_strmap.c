/* String map: put/get/replace/del, growth, tombstone reuse, iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/errors.h"
#include "core/strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *val(uintptr_t v)
{
    return (void *)v;
}

static void test_strmap_put_get_replace_del(void **state)
{
    (void)state;
    chat__strmap m;
    chat__strmap_init(&m);
    assert_null(chat__strmap_get(&m, "alice")); /* empty, no table yet */
    assert_null(chat__strmap_del(&m, "alice"));

    assert_int_equal(chat__strmap_put(&m, "alice", val(1)), CHAT_OK);
    assert_int_equal(chat__strmap_put(&m, "bob", val(2)), CHAT_OK);
    assert_ptr_equal(chat__strmap_get(&m, "alice"), val(1));
    assert_ptr_equal(chat__strmap_get(&m, "bob"), val(2));
    assert_null(chat__strmap_get(&m, "carol"));
    assert_null(chat__strmap_get(&m, "alic"));
    assert_int_equal(m.used, 2);

    /* replace keeps one entry */
    assert_int_equal(chat__strmap_put(&m, "alice", val(3)), CHAT_OK);
    assert_ptr_equal(chat__strmap_get(&m, "alice"), val(3));
    assert_int_equal(m.used, 2);

    /* keys are copied */
    char key[16];
    strcpy(key, "dave");
    assert_int_equal(chat__strmap_put(&m, key, val(4)), CHAT_OK);
    strcpy(key, "XXXX");
    assert_ptr_equal(chat__strmap_get(&m, "dave"), val(4));
    assert_null(chat__strmap_get(&m, "XXXX"));

    assert_ptr_equal(chat__strmap_del(&m, "alice"), val(3));
    assert_null(chat__strmap_get(&m, "alice"));
    assert_null(chat__strmap_del(&m, "alice"));
    assert_ptr_equal(chat__strmap_get(&m, "bob"), val(2));
    assert_int_equal(m.used, 2);

    /* a deleted key can come back */
    assert_int_equal(chat__strmap_put(&m, "alice", val(5)), CHAT_OK);
    assert_ptr_equal(chat__strmap_get(&m, "alice"), val(5));
    assert_int_equal(m.used, 3);

    chat__strmap_clear(&m);
    assert_int_equal(m.used, 0);
    assert_int_equal(m.cap, 0);
    assert_null(chat__strmap_get(&m, "bob"));
    /* usable again after clear */
    assert_int_equal(chat__strmap_put(&m, "bob", val(6)), CHAT_OK);
    assert_ptr_equal(chat__strmap_get(&m, "bob"), val(6));
    chat__strmap_clear(&m);
}

static void test_strmap_grows_past_many_keys(void **state)
{
    (void)state;
    enum { N = 10000 };
    chat__strmap m;
    chat__strmap_init(&m);
    char key[32];
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "user-%lu", (unsigned long)i);
        assert_int_equal(chat__strmap_put(&m, key, val(i + 1)), CHAT_OK);
    }
    assert_int_equal(m.used, N);
    assert_true(m.cap >= N);
    assert_int_equal(m.cap & (m.cap - 1), 0); /* a power of two */
    assert_true(m.used * 4 <= m.cap * 3);     /* load factor kept */
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "user-%lu", (unsigned long)i);
        assert_ptr_equal(chat__strmap_get(&m, key), val(i + 1));
    }
    assert_null(chat__strmap_get(&m, "user-10000"));
    /* delete the even ones; the odd ones stay reachable across the tombstones */
    for (uintptr_t i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "user-%lu", (unsigned long)i);
        assert_ptr_equal(chat__strmap_del(&m, key), val(i + 1));
    }
    assert_int_equal(m.used, N / 2);
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "user-%lu", (unsigned long)i);
        if (i % 2)
            assert_ptr_equal(chat__strmap_get(&m, key), val(i + 1));
        else
            assert_null(chat__strmap_get(&m, key));
    }
    chat__strmap_clear(&m);
}

static void test_strmap_tombstones_keep_cap_bounded(void **state)
{
    (void)state;
    chat__strmap m;
    chat__strmap_init(&m);
    char key[32];
    /* a few resident keys, and a stream of short-lived ones: the table must not keep growing
     * with the number of keys ever inserted */
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "resident-%d", i);
        assert_int_equal(chat__strmap_put(&m, key, val((uintptr_t)i + 1)), CHAT_OK);
    }
    size_t max_cap = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "conn-%d", i);
        assert_int_equal(chat__strmap_put(&m, key, val(7)), CHAT_OK);
        assert_ptr_equal(chat__strmap_del(&m, key), val(7));
        if (m.cap > max_cap)
            max_cap = m.cap;
        assert_true(m.used + m.dead < m.cap); /* always an empty slot: lookups terminate */
    }
    assert_int_equal(m.used, 5);
    assert_true(max_cap <= 64);
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "resident-%d", i);
        assert_ptr_equal(chat__strmap_get(&m, key), val((uintptr_t)i + 1));
    }
    assert_null(chat__strmap_get(&m, "conn-99999"));

    /* re-inserting a just-deleted key reuses the slot instead of adding to the load */
    assert_int_equal(chat__strmap_put(&m, "again", val(1)), CHAT_OK);
    size_t cap = m.cap, load = m.used + m.dead;
    for (int i = 0; i < 1000; i++) {
        assert_ptr_equal(chat__strmap_del(&m, "again"), val(1));
        assert_int_equal(m.dead, load - m.used);
        assert_int_equal(chat__strmap_put(&m, "again", val(1)), CHAT_OK);
        assert_int_equal(m.used + m.dead, load); /* the tombstone was taken back */
    }
    assert_int_equal(m.cap, cap);
    assert_int_equal(m.used, 6);
    chat__strmap_clear(&m);
}

typedef struct visit {
    int n;
    unsigned char *hits; /* by value - 1 */
    size_t max;
    int bad;
} visit;

static void count_visit(const char *key, void *value, void *ud)
{
    visit *v = ud;
    uintptr_t i = (uintptr_t)value;
    char expect[32];
    if (i == 0 || i > v->max) {
        v->bad++;
        return;
    }
    snprintf(expect, sizeof expect, "k%lu", (unsigned long)(i - 1));
    if (strcmp(expect, key) != 0)
        v->bad++;
    v->hits[i - 1]++;
    v->n++;
}

static void test_strmap_each_visits_live_keys_once(void **state)
{
    (void)state;
    enum { N = 1000 };
    chat__strmap m;
    chat__strmap_init(&m);
    visit v = {0, calloc(N, 1), N, 0};
    assert_non_null(v.hits);

    chat__strmap_each(&m, count_visit, &v); /* empty: no call */
    assert_int_equal(v.n, 0);

    char key[32];
    for (uintptr_t i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%lu", (unsigned long)i);
        assert_int_equal(chat__strmap_put(&m, key, val(i + 1)), CHAT_OK);
    }
    for (uintptr_t i = 0; i < N; i += 3) {
        snprintf(key, sizeof key, "k%lu", (unsigned long)i);
        assert_non_null(chat__strmap_del(&m, key));
    }
    chat__strmap_each(&m, count_visit, &v);
    assert_int_equal(v.bad, 0);
    int live = 0;
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(v.hits[i], i % 3 ? 1 : 0);
        live += i % 3 ? 1 : 0;
    }
    assert_int_equal(v.n, live);
    assert_int_equal(m.used, (size_t)live);
    free(v.hits);
    chat__strmap_clear(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strmap_put_get_replace_del),
        cmocka_unit_test(test_strmap_grows_past_many_keys),
        cmocka_unit_test(test_strmap_tombstones_keep_cap_bounded),
        cmocka_unit_test(test_strmap_each_visits_live_keys_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
