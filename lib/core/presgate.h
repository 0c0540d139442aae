/* Presence coalescing: decides when a user's online/offline change is announced to contacts.
 * Pure state on an injected clock; the engine turns announcements into frames and arms one
 * timer at the deadline these functions return.
 *
 * Devices that connect and disconnect in quick succession must not make every contact receive
 * an online and an offline frame per flap. Each user the bus reported has an entry with the
 * bus's latest word and what contacts were last told:
 * - an offline is announced only once the user stayed offline for grace_ms; a reconnect within
 *   it cancels it, and nothing is announced;
 * - a user's announcements take a token from a bucket (per_minute, burst the same); without
 *   one, the change waits for the next token and then the state of that moment is announced
 *   (several flaps become one announcement, or none if the state came back; an offline with a
 *   newer last seen than the one announced is announced again).
 * So contacts always end at the true state, with last seen = when the last device left.
 * An announcement that could not go out (out of memory, a failed store) is tried again
 * CHAT__PRESGATE_RETRY_MS later: contacts still believe the opposite until one does.
 * An entry lives while the user is online or something is due, and until its bucket is full
 * again (an entry with a full bucket is no different from none). */
#ifndef CHAT_CORE_PRESGATE_H
#define CHAT_CORE_PRESGATE_H

#include "core/strmap.h"
#include "core/timeheap.h"

#include <stdint.h>

typedef struct chat__presgate {
    chat__strmap users;                /* user id -> struct chat__presgate_user */
    chat__timeheap due;                /* entries with a deadline, earliest first */
    int64_t grace_ms;
    double per_minute;
} chat__presgate;

#define CHAT__PRESGATE_RETRY_MS 1000

/* Announce user online, or offline with last_seen_ms (when the last device left). Non-zero:
 * the announcement cannot go out, try again later. */
typedef int (*chat__presgate_cb)(const char *user, int online, int64_t last_seen_ms, void *ud);

void chat__presgate_init(chat__presgate *g, int64_t grace_ms, double per_minute);
void chat__presgate_free(chat__presgate *g);

/*
 * The bus says user's first device came online (1) or its last one left (0) at now_ms.
 * Announcements due now go through cb. *due_ms is set to the user's next deadline (0: none);
 * the caller's timer must run chat__presgate_run by then.
 * @return CHAT_OK, or CHAT_ENOMEM (nothing kept: the caller announces the change itself).
 */
int chat__presgate_change(chat__presgate *g, const char *user, int online, int64_t now_ms,
                          chat__presgate_cb cb, void *ud, int64_t *due_ms);

/* Do what is due at now_ms; returns the earliest deadline left, or 0 when none. */
int64_t chat__presgate_run(chat__presgate *g, int64_t now_ms, chat__presgate_cb cb, void *ud);

/* Announce every pending change at once, ignoring the grace and the buckets, and drop every
 * offline entry (the server is stopping). */
void chat__presgate_flush(chat__presgate *g, int64_t now_ms, chat__presgate_cb cb, void *ud);

/*
 * An announcement cb accepted (online, last_seen_ms) failed afterwards: unless a later one
 * went out since, contacts were told nothing, and it is tried again at now_ms +
 * CHAT__PRESGATE_RETRY_MS at the latest. Returns the user's deadline for the caller's timer
 * (0: none), or CHAT_ENOMEM when the entry, forgotten meanwhile, cannot be made again.
 */
int64_t chat__presgate_failed(chat__presgate *g, const char *user, int online,
                              int64_t last_seen_ms, int64_t now_ms);

/* What contacts were last told of user: 1 online, 0 offline, -1 no entry (ask the bus). */
int chat__presgate_shown(const chat__presgate *g, const char *user);

/* Entries held (for tests and stats). */
size_t chat__presgate_size(const chat__presgate *g);

#endif
