/**
 * @file sys/clock.h
 * @brief An injectable clock, so timers and token expiry can be tested without sleeping.
 *
 * The clock's type, ::chat_clock_fn, is in types.h; this header adds the real clock.
 */
#ifndef CHAT_SYS_CLOCK_H
#define CHAT_SYS_CLOCK_H

#include "../common.h"
#include "../types.h"

CHAT_BEGIN_DECLS

/** The real wall clock (CLOCK_REALTIME) in milliseconds. [any thread] @since 0.1 */
CHAT_API int64_t chat_clock_real_ms(void *user_data);

CHAT_END_DECLS

#endif /* CHAT_SYS_CLOCK_H */
