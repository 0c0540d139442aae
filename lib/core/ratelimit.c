/* Token bucket. Tokens are fractional doubles; the tolerance below keeps the promise of
 * retry_after exact in the face of rounding: 0.6 + 0.4 tokens must count as one token, and a
 * deficit of exactly 50 ms worth must say 50, not 51. */
#include "core/ratelimit.h"


/* A token counts as available from 1 - TAKE_EPS; retry_after aims at 1 - TAKE_EPS / 2, so the
 * retry lands safely above the threshold after rounding, yet below the next whole millisecond. */
#define TAKE_EPS 1e-9

void chat__bucket_init(chat__bucket *b, double burst, int64_t now_ms)
{
    b->tokens = burst > 0 ? burst : 0;
    b->last_ms = now_ms;
}

int chat__bucket_take(chat__bucket *b, double rate_per_s, double burst, int64_t now_ms,
                      int64_t *retry_after_ms)
{
    if (now_ms > b->last_ms) {
        if (rate_per_s > 0) {
            b->tokens += (double)(now_ms - b->last_ms) * rate_per_s / 1000.0;
            if (b->tokens > burst)
                b->tokens = burst;
        }
        b->last_ms = now_ms;
    }
    if (b->tokens >= 1.0 - TAKE_EPS) {
        b->tokens -= 1.0;
        if (b->tokens < 0)
            b->tokens = 0;
        return 1;
    }
    if (retry_after_ms) {
        if (rate_per_s <= 0 || burst < 1.0) {
            *retry_after_ms = INT64_MAX;
        } else {
            /* ceil by hand: the library does not link libm for one call */
            double ms = (1.0 - TAKE_EPS / 2 - b->tokens) * 1000.0 / rate_per_s;
            int64_t whole = ms > 9e18 ? INT64_MAX : (int64_t)ms;
            if (whole != INT64_MAX && (double)whole < ms)
                whole++;
            *retry_after_ms = whole < 1 ? 1 : whole;
        }
    }
    return 0;
}
