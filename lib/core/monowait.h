/* Waiting on the monotonic clock: condition variables whose timed waits ignore wall-clock
 * jumps, and the absolute deadlines those waits take. Shared by every thread that sleeps with
 * a bound (the client's event queue, the loopback transport, the webhook worker, the server's
 * commit window). */
#ifndef CHAT_CORE_MONOWAIT_H
#define CHAT_CORE_MONOWAIT_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* pthread_cond_init with CLOCK_MONOTONIC; @return 0 or an errno value. */
int chat__cond_init_mono(pthread_cond_t *cv);

/* The CLOCK_MONOTONIC time ms milliseconds from now (ms < 0 counts as 0), for
 * pthread_cond_timedwait on a condition variable made by chat__cond_init_mono. */
struct timespec chat__mono_deadline(int ms);

/* CLOCK_MONOTONIC now, in nanoseconds. */
uint64_t chat__mono_ns(void);

/* The timespec of a CLOCK_MONOTONIC time in nanoseconds (as chat__mono_ns counts). */
struct timespec chat__mono_at(uint64_t ns);

#endif /* CHAT_CORE_MONOWAIT_H */
