/* Built without libnats (-Dnats=disabled, or not found): the NATS bus's entry points exist,
 * so the ABI does not depend on the build, and say why they cannot help. */
#include "chat/sys/bus.h"

#include "core/error.h"

int chat_bus_nats_new(void **state_out, const char *url, const char *node_id)
{
    return chat__error_set(CHAT_ENOTSUP, 0, "this libchat was built without NATS "
                                            "(meson -Dnats=enabled needs libnats)");
}

const chat_bus_ops *chat_bus_nats_ops(void)
{
    return NULL;
}

int chat_bus_nats_set_prefix(void *state, const char *prefix)
{
    return chat__error_set(CHAT_ENOTSUP, 0, "this libchat was built without NATS");
}

int chat_bus_nats_set_timing(void *state, int64_t heartbeat_ms, int64_t lease_ms)
{
    return chat__error_set(CHAT_ENOTSUP, 0, "this libchat was built without NATS");
}
