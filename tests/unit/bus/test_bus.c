/* The local and queued buses: fan-out with one excluded device, presence edges, online(),
 * the queued bus's deferred, ordered delivery, and frames shared by reference from publish2
 * to every delivery. A recording sink fakes the engine. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "chat/errors.h"
#include "chat/sys/bus.h"
#include "chat/testing.h"

#define MAX_CALLS 64

struct call {
    char what; /* 'd' deliver, 'p' presence */
    char user[32];
    char except[32]; /* "" when NULL */
    char frame[32];
    const chat_buf *buf; /* the buffer delivered */
    int online;
};

struct rec {
    struct call calls[MAX_CALLS];
    int n;     /* recorded calls (the first MAX_CALLS) */
    int total; /* all calls */
    int wakes;
};

/* Version-2 buses never deliver bytes: a call here fails the test. */
static void rec_deliver(const char *user, const char *except_device, const void *frame,
                        size_t len, void *ud)
{
    fail_msg("deliver() called for %s: the bus copied the frame", user);
}

static void rec_deliver2(const char *user, const char *except_device, chat_buf *frame, void *ud)
{
    struct rec *r = ud;
    if (r->total++ >= MAX_CALLS)
        return;
    struct call *c = &r->calls[r->n++];
    c->what = 'd';
    snprintf(c->user, sizeof(c->user), "%s", user);
    snprintf(c->except, sizeof(c->except), "%s", except_device ? except_device : "");
    snprintf(c->frame, sizeof(c->frame), "%.*s", (int)chat_buf_len(frame),
             (const char *)chat_buf_data(frame));
    c->buf = frame;
}

static void rec_presence(const char *user, int online, void *ud)
{
    struct rec *r = ud;
    if (r->total++ >= MAX_CALLS)
        return;
    struct call *c = &r->calls[r->n++];
    c->what = 'p';
    snprintf(c->user, sizeof(c->user), "%s", user);
    c->online = online;
}

static void rec_wake(void *ud)
{
    ((struct rec *)ud)->wakes++;
}

static void rec_lost(void *ud)
{
    fail_msg("lost() from an in-process bus");
}

struct fixture {
    const chat_bus_ops *ops;
    void *bus;
    struct rec rec;
    int queued;
};

static struct fixture *open_bus(int queued)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    f.queued = queued;
    f.ops = queued ? chat_bus_queued_ops() : chat_bus_local_ops();
    assert_int_equal(queued ? chat_bus_queued_new(&f.bus) : chat_bus_local_new(&f.bus), CHAT_OK);
    chat_bus_sink sink = {
        .deliver = rec_deliver, .presence = rec_presence, .wake = rec_wake, .user_data = &f.rec,
        .deliver2 = rec_deliver2, .lost = rec_lost};
    assert_int_equal(f.ops->attach(f.bus, &sink), CHAT_OK);
    return &f;
}

/* publish2 of a buffer holding text; the caller's reference is dropped right after, so a bus
 * that delivers later must hold its own. */
static int pub(struct fixture *f, const char *const *users, size_t n, const char *except_user,
               const char *except_device, const char *text)
{
    chat_buf *b = NULL;
    assert_int_equal(chat_buf_new(&b, text, strlen(text)), CHAT_OK);
    int rc = f->ops->publish2(f->bus, users, n, except_user, except_device, b, 0);
    chat_buf_unref(b);
    return rc;
}

/* Lets queued deliveries happen; a no-op for the local bus. */
static void settle(struct fixture *f)
{
    if (f->ops->poll)
        assert_int_equal(f->ops->poll(f->bus), CHAT_OK);
}

static void assert_deliver(const struct call *c, const char *user, const char *except,
                           const char *frame)
{
    assert_int_equal(c->what, 'd');
    assert_string_equal(c->user, user);
    assert_string_equal(c->except, except);
    assert_string_equal(c->frame, frame);
}

static void assert_presence(const struct call *c, const char *user, int online)
{
    assert_int_equal(c->what, 'p');
    assert_string_equal(c->user, user);
    assert_int_equal(c->online, online);
}

static void check_deliver_excludes_one_device(int queued)
{
    struct fixture *f = open_bus(queued);
    const char *users[] = {"alice", "bob", "carol"};
    assert_int_equal(pub(f, users, 3, "bob", "bob-phone", "hello"), CHAT_OK);
    settle(f);
    assert_int_equal(f->rec.n, 3);
    assert_deliver(&f->rec.calls[0], "alice", "", "hello");
    assert_deliver(&f->rec.calls[1], "bob", "bob-phone", "hello");
    assert_deliver(&f->rec.calls[2], "carol", "", "hello");
    /* An exclusion needs both halves. */
    assert_int_equal(pub(f, users, 2, "bob", NULL, "x"), CHAT_OK);
    settle(f);
    assert_int_equal(f->rec.n, 5);
    assert_deliver(&f->rec.calls[4], "bob", "", "x");
    f->ops->destroy(f->bus);
}

static void test_bus_local_delivers_to_all_but_excluded_device(void **state)
{
    check_deliver_excludes_one_device(0);
}

static void test_bus_queued_delivers_to_all_but_excluded_device(void **state)
{
    check_deliver_excludes_one_device(1);
}

static void check_presence_edges(int queued)
{
    struct fixture *f = open_bus(queued);
    assert_int_equal(f->ops->online(f->bus, "alice"), 0);
    assert_int_equal(f->ops->device_up(f->bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(f->ops->device_up(f->bus, "alice", "laptop"), CHAT_OK);
    settle(f);
    assert_int_equal(f->rec.n, 1);
    assert_presence(&f->rec.calls[0], "alice", 1);
    assert_int_equal(f->ops->online(f->bus, "alice"), 1);

    assert_int_equal(f->ops->device_down(f->bus, "alice", "phone"), CHAT_OK);
    settle(f);
    assert_int_equal(f->rec.n, 1); /* one device left: still online, no event */
    assert_int_equal(f->ops->online(f->bus, "alice"), 1);

    assert_int_equal(f->ops->device_down(f->bus, "alice", "laptop"), CHAT_OK);
    settle(f);
    assert_int_equal(f->rec.n, 2);
    assert_presence(&f->rec.calls[1], "alice", 0);
    assert_int_equal(f->ops->online(f->bus, "alice"), 0);

    /* Back online after the entry was freed. */
    assert_int_equal(f->ops->device_up(f->bus, "alice", "phone"), CHAT_OK);
    settle(f);
    assert_int_equal(f->rec.n, 3);
    assert_presence(&f->rec.calls[2], "alice", 1);
    f->ops->destroy(f->bus); /* with a device still up: frees it */
}

static void test_bus_local_presence_changes_at_first_and_last_device(void **state)
{
    check_presence_edges(0);
}

static void test_bus_queued_presence_changes_at_first_and_last_device(void **state)
{
    check_presence_edges(1);
}

static void check_device_down_unknown(int queued)
{
    struct fixture *f = open_bus(queued);
    assert_int_equal(f->ops->device_down(f->bus, "ghost", "d1"), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->device_up(f->bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(f->ops->device_down(f->bus, "alice", "tablet"), CHAT_ENOTFOUND);
    settle(f);
    assert_int_equal(f->rec.n, 1);
    assert_int_equal(f->ops->online(f->bus, "alice"), 1);
    assert_int_equal(f->ops->device_down(f->bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(f->ops->device_down(f->bus, "alice", "phone"), CHAT_ENOTFOUND);
    settle(f);
    assert_int_equal(f->rec.n, 2);
    f->ops->destroy(f->bus);
}

static void test_bus_local_device_down_unknown_is_enotfound(void **state)
{
    check_device_down_unknown(0);
}

static void test_bus_queued_device_down_unknown_is_enotfound(void **state)
{
    check_device_down_unknown(1);
}

/* A device reconnecting before its old connection closes must not flap the user offline. */
static void test_bus_local_same_device_twice_needs_two_downs(void **state)
{
    struct fixture *f = open_bus(0);
    assert_int_equal(f->ops->device_up(f->bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(f->ops->device_up(f->bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(f->ops->device_down(f->bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(f->ops->online(f->bus, "alice"), 1);
    assert_int_equal(f->ops->device_down(f->bus, "alice", "phone"), CHAT_OK);
    assert_int_equal(f->ops->online(f->bus, "alice"), 0);
    assert_int_equal(f->rec.n, 2);
    f->ops->destroy(f->bus);
}

static void test_bus_queued_defers_everything_until_poll(void **state)
{
    struct fixture *f = open_bus(1);
    const char *ab[] = {"alice", "bob"};
    assert_int_equal(f->ops->device_up(f->bus, "bob", "pc"), CHAT_OK);
    assert_int_equal(pub(f, ab, 2, "alice", "phone", "one"), CHAT_OK);
    assert_int_equal(pub(f, ab + 1, 1, NULL, NULL, "two"), CHAT_OK); /* the bus holds it */
    assert_int_equal(f->ops->device_down(f->bus, "bob", "pc"), CHAT_OK);

    assert_int_equal(f->rec.n, 0);
    assert_int_equal(f->ops->online(f->bus, "bob"), 0); /* not seen by the registry yet */
    assert_true(f->rec.wakes >= 1);

    assert_int_equal(f->ops->poll(f->bus), CHAT_OK);
    assert_int_equal(f->rec.n, 5);
    assert_presence(&f->rec.calls[0], "bob", 1);
    assert_deliver(&f->rec.calls[1], "alice", "phone", "one");
    assert_deliver(&f->rec.calls[2], "bob", "", "one");
    assert_deliver(&f->rec.calls[3], "bob", "", "two");
    assert_presence(&f->rec.calls[4], "bob", 0);

    int wakes = f->rec.wakes;
    assert_int_equal(f->ops->poll(f->bus), CHAT_OK); /* nothing new */
    assert_int_equal(f->rec.n, 5);
    assert_int_equal(f->ops->device_up(f->bus, "carol", "pc"), CHAT_OK);
    assert_int_equal(f->rec.wakes, wakes + 1);
    assert_int_equal(f->ops->online(f->bus, "carol"), 0);
    assert_int_equal(f->ops->poll(f->bus), CHAT_OK);
    assert_int_equal(f->ops->online(f->bus, "carol"), 1);
    f->ops->destroy(f->bus);
}

static void test_bus_queued_destroy_frees_pending_items(void **state)
{
    struct fixture *f = open_bus(1);
    const char *u[] = {"alice"};
    assert_int_equal(pub(f, u, 1, NULL, NULL, "x"), CHAT_OK);
    assert_int_equal(f->ops->device_up(f->bus, "alice", "pc"), CHAT_OK);
    f->ops->destroy(f->bus); /* leak-checked under ASan */
    assert_int_equal(f->rec.n, 0);
}

static void test_bus_local_many_users_and_devices(void **state)
{
    struct fixture *f = open_bus(0);
    char user[32], dev[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(user, sizeof(user), "user-%d", i);
        for (int d = 0; d < 2; d++) {
            snprintf(dev, sizeof(dev), "dev-%d", d);
            assert_int_equal(f->ops->device_up(f->bus, user, dev), CHAT_OK);
        }
    }
    for (int i = 0; i < 1000; i++) {
        snprintf(user, sizeof(user), "user-%d", i);
        assert_int_equal(f->ops->online(f->bus, user), 1);
        if (i % 2)
            assert_int_equal(f->ops->device_down(f->bus, user, "dev-0"), CHAT_OK);
    }
    assert_int_equal(f->ops->online(f->bus, "user-999"), 1);
    assert_int_equal(f->ops->online(f->bus, "user-1000"), 0);
    assert_int_equal(f->rec.total, 1000); /* one "online" each; nobody went offline */
    f->ops->destroy(f->bus);
}

static void test_bus_rejects_misuse(void **state)
{
    for (int queued = 0; queued < 2; queued++) {
        const chat_bus_ops *ops = queued ? chat_bus_queued_ops() : chat_bus_local_ops();
        void *bus;
        assert_int_equal(queued ? chat_bus_queued_new(&bus) : chat_bus_local_new(&bus), CHAT_OK);
        const char *u[] = {"a"};
        chat_buf *x = NULL;
        assert_int_equal(chat_buf_new(&x, "x", 1), CHAT_OK);
        assert_int_equal(ops->publish2(bus, u, 1, NULL, NULL, x, 0), CHAT_EMISUSE);
        chat_bus_sink no_wake = {
            .deliver = rec_deliver, .presence = rec_presence, .deliver2 = rec_deliver2,
            .lost = rec_lost};
        assert_int_equal(ops->attach(bus, &no_wake), queued ? CHAT_EINVAL : CHAT_OK);
        chat_bus_sink v1_sink = {
            .deliver = rec_deliver, .presence = rec_presence, .wake = rec_wake, .lost = rec_lost};
        assert_int_equal(ops->attach(bus, &v1_sink), CHAT_EINVAL); /* no deliver2 */
        chat_bus_sink sink = {
            .deliver = rec_deliver, .presence = rec_presence, .wake = rec_wake,
            .deliver2 = rec_deliver2, .lost = rec_lost};
        assert_int_equal(ops->attach(bus, NULL), CHAT_EINVAL);
        assert_int_equal(ops->attach(bus, &sink), CHAT_OK);
        const char *holey[] = {"a", NULL};
        assert_int_equal(ops->publish2(bus, holey, 2, NULL, NULL, x, 0), CHAT_EINVAL);
        assert_int_equal(ops->publish2(bus, u, 1, NULL, NULL, NULL, 0), CHAT_EINVAL);
        chat_buf_unref(x);
        assert_int_equal(ops->device_up(bus, NULL, "d"), CHAT_EINVAL);
        assert_int_equal(ops->ctl(bus, CHAT_BUS_CTL_RELIABLE, NULL), CHAT_OK);
        assert_int_equal(ops->ctl(bus, 999, NULL), CHAT_ENOTSUP);
        ops->destroy(bus);
    }
    assert_int_equal(chat_bus_local_new(NULL), CHAT_EINVAL);
}

/* One buffer, shared: every user's delivery gets the very buffer that was published, and the
 * queued bus keeps it alive after the publisher let go. */
static void check_frame_shared(int queued)
{
    struct fixture *f = open_bus(queued);
    const char *users[] = {"alice", "bob", "carol"};
    chat_buf *b = NULL;
    assert_int_equal(chat_buf_new(&b, "shared", 6), CHAT_OK);
    assert_int_equal(f->ops->publish2(f->bus, users, 3, NULL, NULL, chat_buf_ref(b), 0), CHAT_OK);
    chat_buf_unref(b); /* the reference publish2 borrowed */
    settle(f);
    assert_int_equal(f->rec.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_ptr_equal(f->rec.calls[i].buf, b);
        assert_string_equal(f->rec.calls[i].frame, "shared");
    }
    chat_buf_unref(b); /* the last one: a leak or a double free shows under ASan/valgrind */
    f->ops->destroy(f->bus);
}

/* Both buses hold every device in this process: a frame for remote devices only goes nowhere. */
static void check_remote_only(int queued)
{
    struct fixture *f = open_bus(queued);
    const char *users[] = {"alice"};
    assert_int_equal(f->ops->device_up(f->bus, "alice", "phone"), CHAT_OK);
    chat_buf *b = NULL;
    assert_int_equal(chat_buf_new(&b, "hint", 4), CHAT_OK);
    assert_int_equal(f->ops->publish2(f->bus, users, 1, NULL, NULL, b, CHAT_BUS_REMOTE_ONLY),
                     CHAT_OK);
    chat_buf_unref(b);
    settle(f);
    assert_int_equal(f->rec.n, 1); /* alice's presence, no delivery */
    assert_int_equal(f->rec.calls[0].what, 'p');
    f->ops->destroy(f->bus);
}

static void test_bus_local_remote_only_delivers_nothing(void **state)
{
    check_remote_only(0);
}

static void test_bus_queued_remote_only_delivers_nothing(void **state)
{
    check_remote_only(1);
}

static void test_bus_local_shares_one_buffer(void **state)
{
    check_frame_shared(0);
}

static void test_bus_queued_shares_one_buffer(void **state)
{
    check_frame_shared(1);
}

static void test_bus_buf_basics(void **state)
{
    chat_buf *b = NULL;
    assert_int_equal(chat_buf_new(&b, "abc", 3), CHAT_OK);
    assert_int_equal(chat_buf_len(b), 3);
    assert_memory_equal(chat_buf_data(b), "abc", 4); /* NUL after the bytes */
    assert_ptr_equal(chat_buf_ref(b), b);
    chat_buf_unref(b);
    chat_buf_unref(b);
    assert_int_equal(chat_buf_new(&b, NULL, 0), CHAT_OK);
    assert_int_equal(chat_buf_len(b), 0);
    chat_buf_unref(b);
    assert_int_equal(chat_buf_new(NULL, "x", 1), CHAT_EINVAL);
    assert_int_equal(chat_buf_new(&b, NULL, 1), CHAT_EINVAL);
    assert_null(chat_buf_data(NULL));
    assert_int_equal(chat_buf_len(NULL), 0);
    assert_null(chat_buf_ref(NULL));
    chat_buf_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_local_delivers_to_all_but_excluded_device),
        cmocka_unit_test(test_bus_queued_delivers_to_all_but_excluded_device),
        cmocka_unit_test(test_bus_local_presence_changes_at_first_and_last_device),
        cmocka_unit_test(test_bus_queued_presence_changes_at_first_and_last_device),
        cmocka_unit_test(test_bus_local_device_down_unknown_is_enotfound),
        cmocka_unit_test(test_bus_queued_device_down_unknown_is_enotfound),
        cmocka_unit_test(test_bus_local_same_device_twice_needs_two_downs),
        cmocka_unit_test(test_bus_queued_defers_everything_until_poll),
        cmocka_unit_test(test_bus_queued_destroy_frees_pending_items),
        cmocka_unit_test(test_bus_local_many_users_and_devices),
        cmocka_unit_test(test_bus_rejects_misuse),
        cmocka_unit_test(test_bus_local_shares_one_buffer),
        cmocka_unit_test(test_bus_local_remote_only_delivers_nothing),
        cmocka_unit_test(test_bus_queued_remote_only_delivers_nothing),
        cmocka_unit_test(test_bus_queued_shares_one_buffer),
        cmocka_unit_test(test_bus_buf_basics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
