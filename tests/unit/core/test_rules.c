/* Receipt watermarks and group permissions: the pure rules behind receipts and group ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/errors.h"
#include "chat/sys/store.h"
#include "core/rules.h"

static void test_rules_marks_move_forward_only(void **state)
{
    (void)state;
    chat__marks m = {0, 0};
    assert_int_equal(chat__marks_apply(&m, 10, 1, 5, 0, 0), 1);
    assert_int_equal(m.delivered, 5);
    assert_int_equal(m.read, 0);
    assert_int_equal(chat__marks_apply(&m, 10, 0, 0, 1, 3), 1);
    assert_int_equal(m.read, 3);
    assert_int_equal(m.delivered, 5);
    /* Stale reports change nothing. */
    assert_int_equal(chat__marks_apply(&m, 10, 1, 4, 1, 2), 0);
    assert_int_equal(m.delivered, 5);
    assert_int_equal(m.read, 3);
}

static void test_rules_marks_read_implies_delivered(void **state)
{
    (void)state;
    chat__marks m = {2, 1};
    assert_int_equal(chat__marks_apply(&m, 9, 0, 0, 1, 7), 1);
    assert_int_equal(m.delivered, 7);
    assert_int_equal(m.read, 7);
    /* A smaller delivered with a larger read still lifts delivered to read. */
    assert_int_equal(chat__marks_apply(&m, 9, 1, 1, 1, 8), 1);
    assert_int_equal(m.delivered, 8);
    assert_true(m.read <= m.delivered);
}

static void test_rules_marks_beyond_head_refused(void **state)
{
    (void)state;
    chat__marks m = {3, 3};
    assert_int_equal(chat__marks_apply(&m, 5, 1, 6, 0, 0), CHAT_EINVAL);
    assert_int_equal(chat__marks_apply(&m, 5, 0, 0, 1, 6), CHAT_EINVAL);
    assert_int_equal(m.delivered, 3);
    assert_int_equal(m.read, 3);
    assert_int_equal(chat__marks_apply(&m, 5, 1, 5, 1, 5), 1);
}

static void test_rules_group_permissions(void **state)
{
    (void)state;
    const int O = CHAT_ROLE_OWNER, A = CHAT_ROLE_ADMIN, M = CHAT_ROLE_MEMBER;
    const int N = CHAT_ROLE_NONE;
    /* rename and add: owners and admins */
    assert_true(chat__group_may(O, CHAT__GROUP_RENAME, 0));
    assert_true(chat__group_may(A, CHAT__GROUP_RENAME, 0));
    assert_false(chat__group_may(M, CHAT__GROUP_RENAME, 0));
    assert_true(chat__group_may(A, CHAT__GROUP_ADD, 0));
    assert_false(chat__group_may(M, CHAT__GROUP_ADD, 0));
    assert_false(chat__group_may(N, CHAT__GROUP_ADD, 0));
    /* remove: the owner anyone, admins plain members only */
    assert_true(chat__group_may(O, CHAT__GROUP_REMOVE, A));
    assert_true(chat__group_may(O, CHAT__GROUP_REMOVE, M));
    assert_true(chat__group_may(A, CHAT__GROUP_REMOVE, M));
    assert_false(chat__group_may(A, CHAT__GROUP_REMOVE, A));
    assert_false(chat__group_may(A, CHAT__GROUP_REMOVE, O));
    assert_false(chat__group_may(M, CHAT__GROUP_REMOVE, M));
    /* roles: the owner only */
    assert_true(chat__group_may(O, CHAT__GROUP_SET_ROLE, 0));
    assert_false(chat__group_may(A, CHAT__GROUP_SET_ROLE, 0));
    assert_false(chat__group_may(M, CHAT__GROUP_SET_ROLE, 0));
    /* the disappearing-messages timer: owners and admins */
    assert_true(chat__group_may(O, CHAT__GROUP_TIMER, 0));
    assert_true(chat__group_may(A, CHAT__GROUP_TIMER, 0));
    assert_false(chat__group_may(M, CHAT__GROUP_TIMER, 0));
    assert_false(chat__group_may(O, 99, 0));
}

static void test_rules_edit_and_delete(void **state)
{
    (void)state;
    const int O = CHAT_ROLE_OWNER, A = CHAT_ROLE_ADMIN, M = CHAT_ROLE_MEMBER;
    /* edit: the author, within the window (its last millisecond included) */
    assert_int_equal(chat__may_edit(1, 0, 1000), CHAT__LIFE_OK);
    assert_int_equal(chat__may_edit(1, 1000, 1000), CHAT__LIFE_OK);
    assert_int_equal(chat__may_edit(1, 1001, 1000), CHAT__LIFE_TOO_LATE);
    assert_int_equal(chat__may_edit(0, 0, 1000), CHAT__LIFE_FORBIDDEN);
    assert_int_equal(chat__may_edit(1, 0, 0), CHAT__LIFE_OK); /* at once, window 0 */
    /* delete: the author within the window; group owners and admins any message, any time */
    assert_int_equal(chat__may_delete(1, 0, M, 10, 10), CHAT__LIFE_OK);
    assert_int_equal(chat__may_delete(1, 0, M, 11, 10), CHAT__LIFE_TOO_LATE);
    assert_int_equal(chat__may_delete(0, 0, M, 0, 10), CHAT__LIFE_FORBIDDEN);
    assert_int_equal(chat__may_delete(0, 1, M, 0, 10), CHAT__LIFE_FORBIDDEN);
    assert_int_equal(chat__may_delete(0, 1, A, 99999, 10), CHAT__LIFE_OK);
    assert_int_equal(chat__may_delete(1, 1, O, 99999, 10), CHAT__LIFE_OK);
    /* a direct conversation has no admins: a role there gives nothing */
    assert_int_equal(chat__may_delete(0, 0, O, 0, 10), CHAT__LIFE_FORBIDDEN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_marks_move_forward_only),
        cmocka_unit_test(test_rules_marks_read_implies_delivered),
        cmocka_unit_test(test_rules_marks_beyond_head_refused),
        cmocka_unit_test(test_rules_group_permissions),
        cmocka_unit_test(test_rules_edit_and_delete),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
