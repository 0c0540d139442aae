/* Internal ctl ops of the webhook notifier (tests and examples/chatd use them). */
#ifndef CHAT_PUSH_WEBHOOK_H
#define CHAT_PUSH_WEBHOOK_H

#include "chat/sys/push.h"

#include <stdint.h>

/* ctl(state, CHAT__PUSH_CTL_STATS, chat__push_webhook_stats *out): a snapshot of the counters.
 * @return CHAT_OK, CHAT_EINVAL (out NULL). */
#define CHAT__PUSH_CTL_STATS 1
/* ctl(state, CHAT__PUSH_CTL_FLUSH, NULL): wait until the queue is empty and no request is in
 * flight, at most 10 s. @return CHAT_OK, CHAT_ETIMEDOUT. Not from the worker, obviously. */
#define CHAT__PUSH_CTL_FLUSH CHAT_PUSH_CTL_FLUSH

typedef struct chat__push_webhook_stats {
    uint64_t queued;  /* events accepted into the queue since creation */
    uint64_t sent;    /* answered 2xx */
    uint64_t failed;  /* any other answer, or no answer (after the retry) */
    uint64_t dropped; /* refused because the queue was full, or discarded at destroy */
} chat__push_webhook_stats;

#endif
