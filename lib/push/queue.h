/* The persistent queue of one push provider: a small SQLite database (a file in the server's
 * data directory, or in memory) that only the provider's thread opens.
 *
 * A notification waits under a coalescing key (the device or user, and the conversation): a
 * later event of the same key merges into the waiting one (latest seq, unread count and
 * preview; count of merged events), so a burst becomes one notification. After a key was
 * pushed, the next one of that key waits out the coalescing window, and an event whose seq was
 * already pushed within the dedupe window is dropped: a provider outage, a retry or a restart
 * never shows one message twice from this side. */
#ifndef CHAT_PUSH_QUEUE_H
#define CHAT_PUSH_QUEUE_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat__pq chat__pq;

typedef struct chat__pq_limits {
    int64_t max;         /* notifications waiting, at most */
    int64_t coalesce_ms; /* a key's pushes are at least this far apart */
    int64_t dedupe_ms;   /* a pushed seq of a key is remembered this long */
} chat__pq_limits;

typedef struct chat__pq_item {
    int64_t id;
    char *key, *target, *ev; /* ev: the latest event, JSON */
    uint64_t seq;
    int64_t count;           /* events merged into this notification */
    int64_t created_ms;      /* the first event's arrival */
    int64_t due_ms;
    int attempts;
} chat__pq_item;

/* What chat__pq_add did with an event. */
enum {
    CHAT__PQ_QUEUED = 0,
    CHAT__PQ_COALESCED = 1, /* merged into a waiting notification */
    CHAT__PQ_DEDUPED = 2,   /* that seq (or a later one) was already pushed or is waiting */
    CHAT__PQ_FULL = 3       /* the queue is at its maximum: dropped */
};

/* Open (creating) the queue at path, NULL for one in memory. @return CHAT_OK, CHAT_EIO,
 * CHAT_ENOMEM. */
int chat__pq_open(chat__pq **out, const char *path, const chat__pq_limits *lim);
void chat__pq_close(chat__pq *q);

/* Group the calls between them in one transaction (one sync of the file). */
int chat__pq_begin(chat__pq *q);
int chat__pq_commit(chat__pq *q);

/* Queue an event under key for target (a device token or a user). @return one of the
 * CHAT__PQ_* outcomes, or a negative chat_status. */
int chat__pq_add(chat__pq *q, const char *key, const char *target, const char *ev, uint64_t seq,
                 int64_t now_ms);
/* Up to max notifications due at or before until_ms, the earliest first; *n receives how many.
 * Free each with chat__pq_item_clear. */
int chat__pq_take(chat__pq *q, int64_t until_ms, chat__pq_item *items, size_t max, size_t *n);
void chat__pq_item_clear(chat__pq_item *it);
/* Pushed: forget it, remember its seq for the dedupe and coalescing windows. */
int chat__pq_done(chat__pq *q, const chat__pq_item *it, int64_t now_ms);
/* Try again at due_ms. */
int chat__pq_retry(chat__pq *q, const chat__pq_item *it, int64_t due_ms);
/* Forget one notification, or every one of target (a token the provider called invalid);
 * *n (may be NULL) receives how many went. */
int chat__pq_drop(chat__pq *q, int64_t id);
int chat__pq_drop_target(chat__pq *q, const char *target, int64_t *n);
/* The earliest due time, INT64_MAX when empty. */
int64_t chat__pq_next_due(chat__pq *q);
int64_t chat__pq_count(chat__pq *q);
/* Forget pushed seqs older than the dedupe window. */
int chat__pq_prune(chat__pq *q, int64_t now_ms);

#endif
