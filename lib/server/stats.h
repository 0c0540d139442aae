/* Server statistics on the hot path. Every counter has one owner, the thread that updates it:
 * the loop thread (chat__loop_stats, in the server) or whichever thread runs the writer's
 * batch (chat__writer_stats, in the writer; the batch runs under the worker's busy flag, so
 * one thread at a time). An owner adds with a relaxed load and store, which is a plain
 * add on x86 and arm64 (no locked instruction, no fence); chat_server_stats() reads with
 * relaxed loads from any thread. Values a walk must compute (connections by state, queue
 * depths) are gathered on the loop thread at the stats call, in one hand-over. Nothing
 * takes a lock per message. */
#ifndef CHAT_SERVER_STATS_H
#define CHAT_SERVER_STATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef _Atomic uint64_t chat__counter;

/* Add n to a counter this thread owns. */
static inline void chat__count(chat__counter *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline uint64_t chat__counter_read(const chat__counter *c)
{
    return atomic_load_explicit((chat__counter *)c, memory_order_relaxed);
}

/* A histogram with fixed bounds: per-bucket counts (not cumulative; the last is +Inf) and
 * the sum of the observed values. */
#define CHAT__HIST_SLOTS 18
typedef struct chat__hist {
    chat__counter n[CHAT__HIST_SLOTS];
    chat__counter sum;
} chat__hist;

/* Latency buckets, microseconds: 1-2-5 steps from 50 us to 10 s (then +Inf). */
#define CHAT__LAT_BOUNDS 17
extern const uint64_t chat__lat_bounds_us[CHAT__LAT_BOUNDS];
/* The first bucket whose bound is at or above 2^k, by k: a value's bucket is that one or the
 * next (bounds are at least twice apart, so an octave holds at most one). */
extern const unsigned char chat__lat_first[64];
/* Batch-size buckets: powers of two, 1 to 1024 (then +Inf). */
#define CHAT__BATCH_BOUNDS 11

static inline void chat__hist_latency(chat__hist *h, uint64_t us)
{
    size_t i = chat__lat_first[63 - __builtin_clzll(us | 1)];
    if (i < CHAT__LAT_BOUNDS && us > chat__lat_bounds_us[i])
        i++;
    chat__count(&h->n[i], 1);
    chat__count(&h->sum, us);
}

static inline void chat__hist_batch(chat__hist *h, uint64_t jobs)
{
    size_t i = 0;
    while (i < CHAT__BATCH_BOUNDS && jobs > ((uint64_t)1 << i))
        i++;
    chat__count(&h->n[i], 1);
    chat__count(&h->sum, jobs);
}

/* Close codes counted by chat_connections_closed_total (the engine's, and how others ended). */
enum {
    CHAT__CLOSE_1000, CHAT__CLOSE_1001, CHAT__CLOSE_1002, CHAT__CLOSE_1008, CHAT__CLOSE_1009,
    CHAT__CLOSE_1011, CHAT__CLOSE_1013, CHAT__CLOSE_OTHER,
    CHAT__CLOSE_PEER,    /* the peer closed or went away, no close decided here */
    CHAT__CLOSE_DROPPED, /* dropped by the engine: silent, or a close that could not get out */
    CHAT__CLOSE_KINDS
};

/* Error frames by code: index -code, CHAT_ERROR (1) to CHAT_EUSER (18). */
#define CHAT__ERR_CODES 19

/* Loop thread. Aligned apart from the writer's, so the two owners never share a line. */
typedef struct chat__loop_stats {
    _Alignas(64) chat__counter opened, refused;
    chat__counter closed[CHAT__CLOSE_KINDS];
    chat__counter frames_in, bytes_in, frames_out, bytes_out;
    chat__counter delivered; /* msg frames handed to a local connection */
    chat__counter errors[CHAT__ERR_CODES];
    chat__counter bus_errors, push_errors;
    chat__counter affinity_out, affinity_in, affinity_fallback; /* affinity.c */
    chat__hist ack;    /* send received -> its ack written, us */
    chat__hist fanout; /* commit -> the msg frame written to a recipient, us */
    /* The loop iteration's receive time (us, CLOCK_MONOTONIC), read at its first message. */
    uint64_t rx_us;
    int rx_valid;
    /* The write time of timed frames while one request's outputs go out (its ack and its
     * fan-out, microseconds apart): 0 not kept, 1 to keep once read, 2 kept in tx_us. */
    uint64_t tx_us;
    int tx_state;
} chat__loop_stats;

/* Whichever thread runs the writer's batch. */
typedef struct chat__writer_stats {
    _Alignas(64) chat__counter batches, jobs, stored, failed; /* failed: rolled back */
    chat__hist commit_us; /* begin -> commit returned */
    chat__hist batch;     /* jobs per transaction */
} chat__writer_stats;

/* A frame's latency stamp (chat__frame.stamp): microseconds of CLOCK_MONOTONIC modulo 2^32
 * (differences are right up to 71 minutes), the low bit telling which histogram; 0: none. */
#define CHAT__STAMP_ACK 0u
#define CHAT__STAMP_FANOUT 1u
static inline uint32_t chat__stamp(uint64_t us, unsigned kind)
{
    uint32_t s = ((uint32_t)us & ~1u) | kind;
    return s ? s : 2u;
}

#endif
