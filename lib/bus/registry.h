/* Who is online: user id -> the devices connected, shared by the local, queued and NATS buses. */
#ifndef CHAT_BUS_REGISTRY_H
#define CHAT_BUS_REGISTRY_H

#include <stddef.h>

typedef struct chat__bus_registry chat__bus_registry;

/* @return CHAT_OK, CHAT_ENOMEM. */
int chat__bus_registry_new(chat__bus_registry **out);
/* Accepts NULL. */
void chat__bus_registry_free(chat__bus_registry *r);

/*
 * One more connection of (user, device). A device that is already up gains a reference
 * instead of counting twice, so a reconnect racing the old socket's close keeps the user
 * online. @return 1 when the user went from no device to one, 0 otherwise, CHAT_ENOMEM.
 */
int chat__bus_registry_up(chat__bus_registry *r, const char *user, const char *device);

/*
 * Drop one connection of (user, device); the user's entry is freed with its last device.
 * @return 1 when the user went offline, 0 otherwise, CHAT_ENOTFOUND (nothing changed).
 */
int chat__bus_registry_down(chat__bus_registry *r, const char *user, const char *device);

/* Number of distinct devices of user that are up (0 for an unknown user). */
size_t chat__bus_registry_devices(const chat__bus_registry *r, const char *user);

/* Number of users with a device up. */
size_t chat__bus_registry_users(const chat__bus_registry *r);

/* Call fn for every user with a device up, in no particular order; fn must not change r.
 * A non-zero return stops the walk and is returned. */
int chat__bus_registry_each(const chat__bus_registry *r, int (*fn)(const char *user, void *ud),
                            void *ud);

#endif
