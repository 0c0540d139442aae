/* Typing indicators: who types where, until when. Pure state on an injected clock; the engine
 * turns transitions into frames and arms one timer at chat__typing_next_deadline(). */
#ifndef CHAT_CORE_TYPING_H
#define CHAT_CORE_TYPING_H

#include "core/strmap.h"
#include "core/timeheap.h"

#include <stddef.h>
#include <stdint.h>

/* Indexed by (conv, user) and ordered by deadline: a start, stop or expiry costs O(log n) in
 * the number of users typing on the server, not a scan of them. */
typedef struct chat__typing {
    chat__strmap by_key;   /* "conv:user" -> entry */
    chat__timeheap expiry; /* entries, earliest deadline first */
} chat__typing;

void chat__typing_init(chat__typing *t);
void chat__typing_free(chat__typing *t);
/* Mark (conv, user) typing until expires_ms. Returns 1 when it was not typing (a transition
 * to announce), 0 when it only extended the deadline, or CHAT_ENOMEM. */
int chat__typing_start(chat__typing *t, int64_t conv, const char *user, int64_t expires_ms);
/* Returns 1 when (conv, user) was typing (a transition to announce), else 0. */
int chat__typing_stop(chat__typing *t, int64_t conv, const char *user);
/* Remove every entry with expires_ms <= now_ms, calling cb for each; returns how many. */
size_t chat__typing_expire(chat__typing *t, int64_t now_ms,
                           void (*cb)(int64_t conv, const char *user, void *ud), void *ud);
/* Earliest deadline, or INT64_MAX when nobody types. */
int64_t chat__typing_next_deadline(const chat__typing *t);
/* Entries held (for tests and stats). */
size_t chat__typing_count(const chat__typing *t);

#endif
