/**
 * @file sys/bus.h
 * @brief Delivery bus vtable: routes frames and presence between engine instances
 * (backend-author API, stable per minor release).
 *
 * The engine never assumes that all of a user's devices are connected to this process: it
 * publishes every live frame to users through the bus, and learns of users coming online or
 * going offline anywhere through the sink it attaches. The default bus is in-process.
 *
 * Threading: every method is called on the loop thread. A bus that receives from elsewhere
 * calls sink->wake (any thread) and does its delivering from poll() on the loop thread.
 */
#ifndef CHAT_SYS_BUS_H
#define CHAT_SYS_BUS_H

#include "../common.h"
#include "../types.h"

CHAT_BEGIN_DECLS

/** The engine's side of the bus, handed over by attach(); valid until destroy. */
typedef struct chat_bus_sink {
    /** Deliver frame to every device of user connected here except except_device (may be NULL). */
    void (*deliver)(const char *user, const char *except_device, const void *frame, size_t len,
                    void *user_data);
    /** A user's first device anywhere came online (1) or the last one went offline (0). */
    void (*presence)(const char *user, int online, void *user_data);
    /** Ask for poll() to be called soon on the loop thread. [any thread] */
    void (*wake)(void *user_data);
    void *user_data;
} chat_bus_sink;

#define CHAT_BUS_OPS_VERSION 1

struct chat_bus_ops {
    unsigned int version; /**< CHAT_BUS_OPS_VERSION */
    void (*destroy)(void *state);
    /** Called once before any other method. */
    int (*attach)(void *state, const chat_bus_sink *sink);
    /**
     * Deliver frame to every device of each of users[0..n_users) wherever it is connected,
     * except the device (except_user, except_device) when both are non-NULL.
     */
    int (*publish)(void *state, const char *const *users, size_t n_users,
                   const char *except_user, const char *except_device,
                   const void *frame, size_t len);
    /** A device of user connected to this engine / disconnected from it. */
    int (*device_up)(void *state, const char *user, const char *device);
    int (*device_down)(void *state, const char *user, const char *device);
    /** 1 when user has a device online anywhere, else 0. */
    int (*online)(void *state, const char *user);
    /** Optional: deliver what arrived since the last call (after sink->wake). */
    int (*poll)(void *state);
    /** Optional; unknown ops answer CHAT_ENOTSUP. */
    int (*ctl)(void *state, int op, void *arg);
};

/** The in-process bus (the default): delivers synchronously. @since 0.1 */
CHAT_API int chat_bus_local_new(void **state_out);
/** The in-process bus's vtable, static. @since 0.1 */
CHAT_API const chat_bus_ops *chat_bus_local_ops(void);

CHAT_END_DECLS

#endif /* CHAT_SYS_BUS_H */
