/* Token bucket on an injected millisecond clock: no I/O, no allocation, no locking (each bucket
 * belongs to one connection on the loop thread). Called per frame, so it is a few flops. */
#ifndef CHAT_CORE_RATELIMIT_H
#define CHAT_CORE_RATELIMIT_H

#include <stdint.h>

typedef struct chat__bucket {
    double tokens;   /* available now, 0..burst */
    int64_t last_ms; /* clock reading of the last refill */
} chat__bucket;

/* Start full: burst tokens at now_ms. */
void chat__bucket_init(chat__bucket *b, double burst, int64_t now_ms);

/*
 * Refill at rate_per_s tokens per second (capped at burst) up to now_ms, then try to take one.
 * A clock that goes backwards refills nothing and does not move last_ms.
 * @param retry_after_ms if not NULL, set on refusal to the whole milliseconds until one token
 *        is available (>= 1), so a retry at now_ms + *retry_after_ms succeeds if nothing else
 *        took a token meanwhile; INT64_MAX if rate_per_s <= 0 or burst < 1 (never). Untouched
 *        when a token is taken.
 * @return 1 taken, 0 refused.
 */
int chat__bucket_take(chat__bucket *b, double rate_per_s, double burst, int64_t now_ms,
                      int64_t *retry_after_ms);

#endif
