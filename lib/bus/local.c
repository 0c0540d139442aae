/* The in-process bus: every device is connected to this engine, so publishing is a direct,
 * synchronous call into the sink with the engine's own frame, with no allocation or copy. */
#include "chat/sys/bus.h"

#include "bus/check.h"
#include "bus/registry.h"
#include "core/alloc.h"
#include "core/error.h"

struct local_bus {
    chat_bus_sink sink;
    int attached;
    chat__bus_registry *reg;
};

static void local_destroy(void *state)
{
    struct local_bus *b = state;
    if (!b)
        return;
    chat__bus_registry_free(b->reg);
    chat__free(b);
}

static int local_attach(void *state, const chat_bus_sink *sink)
{
    int rc = chat__bus_check_sink(state, sink, 0, 2);
    if (rc)
        return rc;
    struct local_bus *b = state;
    b->sink = *sink;
    b->attached = 1;
    return CHAT_OK;
}

static int local_publish2(void *state, const char *const *users, size_t n_users,
                          const char *except_user, const char *except_device, chat_buf *frame,
                          unsigned int flags)
{
    struct local_bus *b = state;
    int rc = chat__bus_check_publish2(b && b->attached, users, n_users, frame);
    if (rc || (flags & CHAT_BUS_REMOTE_ONLY)) /* every device is here */
        return rc;
    for (size_t i = 0; i < n_users; i++)
        b->sink.deliver2(users[i], chat__bus_except(users[i], except_user, except_device),
                         frame, b->sink.user_data);
    return CHAT_OK;
}

static int local_device_up(void *state, const char *user, const char *device)
{
    struct local_bus *b = state;
    int rc = chat__bus_check_device(b && b->attached, user, device);
    if (rc)
        return rc;
    rc = chat__bus_registry_up(b->reg, user, device);
    if (rc < 0)
        return rc;
    if (rc == 1)
        b->sink.presence(user, 1, b->sink.user_data);
    return CHAT_OK;
}

static int local_device_down(void *state, const char *user, const char *device)
{
    struct local_bus *b = state;
    int rc = chat__bus_check_device(b && b->attached, user, device);
    if (rc)
        return rc;
    rc = chat__bus_registry_down(b->reg, user, device);
    if (rc < 0)
        return rc;
    if (rc == 1)
        b->sink.presence(user, 0, b->sink.user_data);
    return CHAT_OK;
}

static int local_online(void *state, const char *user)
{
    struct local_bus *b = state;
    return b && user && chat__bus_registry_devices(b->reg, user) > 0;
}

static int local_ctl(void *state, int op, void *arg)
{
    return op == CHAT_BUS_CTL_RELIABLE ? CHAT_OK : CHAT_ENOTSUP;
}

static const chat_bus_ops local_ops = {
    .version = CHAT_BUS_OPS_VERSION,
    .destroy = local_destroy,
    .attach = local_attach,
    .publish = NULL, /* publish2 only */
    .device_up = local_device_up,
    .device_down = local_device_down,
    .online = local_online,
    .poll = NULL, /* nothing ever arrives later */
    .ctl = local_ctl,
    .publish2 = local_publish2,
};

int chat_bus_local_new(void **state_out)
{
    if (!state_out)
        return chat__error_set(CHAT_EINVAL, 0, "chat_bus_local_new: state_out is NULL");
    struct local_bus *b = chat__calloc(1, sizeof(*b));
    if (!b)
        return chat__error_set(CHAT_ENOMEM, 0, "chat_bus_local_new: out of memory");
    int rc = chat__bus_registry_new(&b->reg);
    if (rc) {
        chat__free(b);
        return rc;
    }
    *state_out = b;
    return CHAT_OK;
}

const chat_bus_ops *chat_bus_local_ops(void)
{
    return &local_ops;
}
