/*
 * The queued bus behaves as a networked bus would: publish and presence changes are
 * serialized into a FIFO (one allocation per item, ids copied, the frame held by reference)
 * and only take effect when the engine calls poll() after sink->wake. Two registries model the split of a
 * real deployment: `local` (devices connected to this engine, known at once, so device_down
 * can refuse an unknown device) and `global` (the shared registry, updated at poll time, which
 * answers online() and fires presence). Every method runs on the loop thread, so the FIFO
 * needs no lock.
 */
#include "chat/sys/bus.h"
#include "chat/testing.h"

#include "bus/check.h"
#include "bus/registry.h"
#include "core/alloc.h"
#include "core/error.h"

#include <stdint.h>
#include <string.h>

enum item_kind { ITEM_PUBLISH, ITEM_UP, ITEM_DOWN };

struct item {
    struct item *next;
    enum item_kind kind;
    size_t n_users;            /* publish: NUL-separated ids in strings */
    chat_buf *frame;           /* publish: a reference */
    const char *except_user;   /* publish, into data, or NULL */
    const char *except_device; /* publish, into data, or NULL */
    const char *strings;       /* publish: users; up/down: user then device */
    char data[];
};

struct queued_bus {
    chat_bus_sink sink;
    int attached;
    struct item *head, *tail;
    chat__bus_registry *local, *global;
};

/* Appends s (may be NULL) at *pos; returns where it went. */
static const char *put_str(char **pos, const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *at = *pos;
    memcpy(at, s, n);
    *pos += n;
    return at;
}

static int add_size(size_t *total, size_t n)
{
    if (n > SIZE_MAX - *total)
        return -1;
    *total += n;
    return 0;
}

static void push(struct queued_bus *b, struct item *it)
{
    int was_empty = b->head == NULL;
    it->next = NULL;
    if (b->tail)
        b->tail->next = it;
    else
        b->head = it;
    b->tail = it;
    /* One wake per batch: poll() drains everything queued up to then. */
    if (was_empty)
        b->sink.wake(b->sink.user_data);
}

static void free_items(struct item *it)
{
    while (it) {
        struct item *next = it->next;
        chat_buf_unref(it->frame);
        chat__free(it);
        it = next;
    }
}

static void queued_destroy(void *state)
{
    struct queued_bus *b = state;
    if (!b)
        return;
    free_items(b->head);
    chat__bus_registry_free(b->local);
    chat__bus_registry_free(b->global);
    chat__free(b);
}

static int queued_attach(void *state, const chat_bus_sink *sink)
{
    int rc = chat__bus_check_sink(state, sink, 1, 2);
    if (rc)
        return rc;
    struct queued_bus *b = state;
    b->sink = *sink;
    b->attached = 1;
    return CHAT_OK;
}

static int queued_publish2(void *state, const char *const *users, size_t n_users,
                           const char *except_user, const char *except_device, chat_buf *frame,
                           unsigned int flags)
{
    struct queued_bus *b = state;
    int rc = chat__bus_check_publish2(b && b->attached, users, n_users, frame);
    if (rc)
        return rc;
    if (n_users == 0 || (flags & CHAT_BUS_REMOTE_ONLY)) /* every device is in this process */
        return CHAT_OK;
    size_t total = sizeof(struct item);
    int bad = 0;
    for (size_t i = 0; i < n_users; i++)
        bad |= add_size(&total, strlen(users[i]) + 1);
    if (except_user && except_device) {
        bad |= add_size(&total, strlen(except_user) + 1);
        bad |= add_size(&total, strlen(except_device) + 1);
    } else {
        except_user = except_device = NULL;
    }
    struct item *it = bad ? NULL : chat__malloc(total);
    if (!it)
        return chat__error_set(CHAT_ENOMEM, 0, "queued bus: out of memory");
    it->kind = ITEM_PUBLISH;
    it->n_users = n_users;
    it->frame = chat_buf_ref(frame);
    char *pos = it->data;
    it->except_user = put_str(&pos, except_user);
    it->except_device = put_str(&pos, except_device);
    it->strings = pos;
    for (size_t i = 0; i < n_users; i++)
        put_str(&pos, users[i]);
    push(b, it);
    return CHAT_OK;
}

static struct item *device_item(enum item_kind kind, const char *user, const char *device)
{
    size_t total = sizeof(struct item);
    if (add_size(&total, strlen(user) + 1) || add_size(&total, strlen(device) + 1))
        return NULL;
    struct item *it = chat__malloc(total);
    if (!it)
        return NULL;
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    char *pos = it->data;
    it->strings = put_str(&pos, user);
    put_str(&pos, device);
    return it;
}

/* The local registry changes now (so the next device_down is checked against it); the global
 * one changes when the item is polled. The item is allocated first so nothing needs undoing. */
static int queued_device(void *state, enum item_kind kind, const char *user, const char *device)
{
    struct queued_bus *b = state;
    int rc = chat__bus_check_device(b && b->attached, user, device);
    if (rc)
        return rc;
    struct item *it = device_item(kind, user, device);
    if (!it)
        return chat__error_set(CHAT_ENOMEM, 0, "queued bus: out of memory");
    rc = kind == ITEM_UP ? chat__bus_registry_up(b->local, user, device)
                         : chat__bus_registry_down(b->local, user, device);
    if (rc < 0) {
        chat__free(it);
        return rc;
    }
    push(b, it);
    return CHAT_OK;
}

static int queued_device_up(void *state, const char *user, const char *device)
{
    return queued_device(state, ITEM_UP, user, device);
}

static int queued_device_down(void *state, const char *user, const char *device)
{
    return queued_device(state, ITEM_DOWN, user, device);
}

static int queued_online(void *state, const char *user)
{
    struct queued_bus *b = state;
    return b && user && chat__bus_registry_devices(b->global, user) > 0;
}

static int apply(struct queued_bus *b, const struct item *it)
{
    const chat_bus_sink *s = &b->sink;
    if (it->kind == ITEM_PUBLISH) {
        const char *user = it->strings;
        for (size_t i = 0; i < it->n_users; i++, user += strlen(user) + 1)
            s->deliver2(user, chat__bus_except(user, it->except_user, it->except_device),
                        it->frame, s->user_data);
        return CHAT_OK;
    }
    const char *user = it->strings;
    const char *device = user + strlen(user) + 1;
    int rc = it->kind == ITEM_UP ? chat__bus_registry_up(b->global, user, device)
                                 : chat__bus_registry_down(b->global, user, device);
    if (rc == 1)
        s->presence(user, it->kind == ITEM_UP, s->user_data);
    return rc < 0 ? rc : CHAT_OK;
}

/*
 * Drains the batch queued so far, in order. The list is detached first: sink callbacks may
 * publish again, and those items wait for the next poll (push() wakes for them).
 * @return CHAT_OK, or the first failure (ENOMEM in the global registry); the rest still runs.
 */
static int queued_poll(void *state)
{
    struct queued_bus *b = state;
    if (!b || !b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "queued bus poll: no sink attached");
    struct item *it = b->head;
    b->head = b->tail = NULL;
    int first = CHAT_OK;
    while (it) {
        struct item *next = it->next;
        int rc = apply(b, it);
        if (rc && !first)
            first = rc;
        chat_buf_unref(it->frame);
        chat__free(it);
        it = next;
    }
    return first;
}

/* Deferred, but never lost. */
static int queued_ctl(void *state, int op, void *arg)
{
    return op == CHAT_BUS_CTL_RELIABLE ? CHAT_OK : CHAT_ENOTSUP;
}

static const chat_bus_ops queued_ops = {
    .version = CHAT_BUS_OPS_VERSION,
    .destroy = queued_destroy,
    .attach = queued_attach,
    .publish = NULL, /* publish2 only */
    .device_up = queued_device_up,
    .device_down = queued_device_down,
    .online = queued_online,
    .poll = queued_poll,
    .ctl = queued_ctl,
    .publish2 = queued_publish2,
};

int chat_bus_queued_new(void **state_out)
{
    if (!state_out)
        return chat__error_set(CHAT_EINVAL, 0, "chat_bus_queued_new: state_out is NULL");
    struct queued_bus *b = chat__calloc(1, sizeof(*b));
    if (!b)
        return chat__error_set(CHAT_ENOMEM, 0, "chat_bus_queued_new: out of memory");
    int rc = chat__bus_registry_new(&b->local);
    if (!rc)
        rc = chat__bus_registry_new(&b->global);
    if (rc) {
        queued_destroy(b);
        return rc;
    }
    *state_out = b;
    return CHAT_OK;
}

const chat_bus_ops *chat_bus_queued_ops(void)
{
    return &queued_ops;
}
