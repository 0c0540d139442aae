/* Argument checks shared by the bus backends, so all of them answer a caller mistake the same
 * way, and what the engine asks of a table of a given version. */
#ifndef CHAT_BUS_CHECK_H
#define CHAT_BUS_CHECK_H

#include "chat/sys/bus.h"
#include "core/error.h"

#include <string.h>

/* version: the table's; a version-2 bus delivers through deliver2 and needs it. */
static inline int chat__bus_check_sink(const void *state, const chat_bus_sink *sink,
                                       int need_wake, unsigned int version)
{
    if (!state || !sink || !sink->deliver || !sink->presence)
        return chat__error_set(CHAT_EINVAL, 0, "bus attach: state, sink, deliver and presence "
                                               "are required");
    if (need_wake && !sink->wake)
        return chat__error_set(CHAT_EINVAL, 0, "bus attach: this bus needs sink->wake");
    if (version >= 2 && !sink->deliver2)
        return chat__error_set(CHAT_EINVAL, 0, "bus attach: this bus needs sink->deliver2");
    return CHAT_OK;
}

static inline int chat__bus_check_publish(int attached, const char *const *users, size_t n_users,
                                          const void *frame, size_t len)
{
    if (!attached)
        return chat__error_set(CHAT_EMISUSE, 0, "bus publish: no sink attached");
    if ((n_users && !users) || (len && !frame))
        return chat__error_set(CHAT_EINVAL, 0, "bus publish: users and frame are required");
    for (size_t i = 0; i < n_users; i++)
        if (!users[i])
            return chat__error_set(CHAT_EINVAL, 0, "bus publish: users[%zu] is NULL", i);
    return CHAT_OK;
}

/* publish2's checks: publish's, and a frame. */
static inline int chat__bus_check_publish2(int attached, const char *const *users,
                                           size_t n_users, const chat_buf *frame)
{
    if (attached && !frame)
        return chat__error_set(CHAT_EINVAL, 0, "bus publish: frame is required");
    return chat__bus_check_publish(attached, users, n_users, NULL, 0);
}

/* 1 when the engine calls publish2 on this table rather than publish (sys/bus.h). */
static inline int chat__bus_has_publish2(const chat_bus_ops *ops)
{
    return ops->version >= 2 && ops->publish2 != NULL;
}

static inline int chat__bus_check_device(int attached, const char *user, const char *device)
{
    if (!attached)
        return chat__error_set(CHAT_EMISUSE, 0, "bus: no sink attached");
    if (!user || !device)
        return chat__error_set(CHAT_EINVAL, 0, "bus: user and device are required");
    return CHAT_OK;
}

/* The device a delivery to user must skip: except_device only for except_user. */
static inline const char *chat__bus_except(const char *user, const char *except_user,
                                           const char *except_device)
{
    return except_user && except_device && strcmp(user, except_user) == 0 ? except_device : NULL;
}

#endif
