/* The callback notifier: hands each event, borrowed, to a host function on the loop thread. */
#include "chat/sys/push.h"

#include "core/alloc.h"
#include "core/error.h"

struct callback {
    chat_push_cb cb;
    void *user_data;
    void (*destroy)(void *user_data);
};

static void callback_destroy(void *state)
{
    struct callback *c = state;
    if (!c)
        return;
    if (c->destroy)
        c->destroy(c->user_data);
    chat__free(c);
}

/* @return CHAT_OK, CHAT_EINVAL, CHAT_EUSER (the host callback returned non-zero). */
static int callback_notify(void *state, const chat_push_event *ev)
{
    struct callback *c = state;
    if (!c || !ev)
        return chat__error_set(CHAT_EINVAL, 0, "push callback notify: state and event are "
                                               "required");
    int rc = c->cb(ev, c->user_data);
    if (rc != 0)
        return chat__error_set(CHAT_EUSER, rc, "push callback returned %d", rc);
    return CHAT_OK;
}

static int callback_ctl(void *state, int op, void *arg)
{
    return CHAT_ENOTSUP;
}

static const chat_push_ops callback_ops = {
    .version = CHAT_PUSH_OPS_VERSION,
    .destroy = callback_destroy,
    .notify = callback_notify,
    .ctl = callback_ctl,
};

/* destroy(user_data) runs once, from the notifier's destroy. When this constructor fails
 * (EINVAL, ENOMEM) no notifier exists and destroy is not called: user_data stays the
 * caller's, to release as it sees fit. */
int chat_push_callback_new(void **state_out, chat_push_cb cb, void *user_data,
                           void (*destroy)(void *user_data))
{
    if (!state_out || !cb)
        return chat__error_set(CHAT_EINVAL, 0, "chat_push_callback_new: %s is NULL",
                               !state_out ? "state_out" : "cb");
    struct callback *c = chat__malloc(sizeof(*c));
    if (!c)
        return chat__error_set(CHAT_ENOMEM, 0, "chat_push_callback_new: out of memory");
    c->cb = cb;
    c->user_data = user_data;
    c->destroy = destroy;
    *state_out = c;
    return CHAT_OK;
}

const chat_push_ops *chat_push_callback_ops(void)
{
    return &callback_ops;
}
