/* timers-bench: what the engine's presence and typing timers cost as the number of users they
 * hold grows. Drives the two tables the server keeps on its loop thread, on a simulated clock:
 *
 *   typing    N users type at once; random ones refresh their indicator (a typing frame every
 *             3 s each), the expiry timer runs every 25 ms: ns per refresh.
 *   presence  N users go offline, spread evenly over a minute (steady churn); the presence
 *             timer runs as the server arms it (at the earliest deadline, at most every 25 ms)
 *             until every offline is announced and every entry aged out: ns of timer work per
 *             user.
 *
 * Each size is printed with its ratio to the smallest size of the same run: flat means the
 * cost per user does not grow with the crowd.
 *
 *   timers-bench [MAX_USERS]   (default 100000)
 */
#include "core/presgate.h"
#include "core/typing.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define T0 1700000000000LL

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static unsigned seed = 88172645u;

/* Fixed-seed pseudo-random numbers, so every run does the same work. */
static uint64_t next_rand(void)
{
    return (uint64_t)rand_r(&seed);
}

static void on_expired(int64_t conv, const char *user, void *ud)
{
    (void)conv;
    (void)user;
    (*(long *)ud)++;
}

/* ns per refresh with n users typing. */
static double typing_case(int n)
{
    chat__typing t;
    chat__typing_init(&t);
    char user[16];
    int64_t now = T0;
    for (int i = 0; i < n; i++) {
        snprintf(user, sizeof user, "u%d", i);
        chat__typing_start(&t, i / 2, user, now + 5000 + (int64_t)(next_rand() % 3000));
    }
    /* n / 3 refreshes per simulated second (one per user every 3 s), 20 simulated seconds */
    long refreshes = 0, expired = 0, per_tick = n / 120 > 0 ? n / 120 : 1;
    int64_t t0 = mono_ns();
    for (int tick = 0; tick < 800; tick++) {
        now += 25;
        for (long k = 0; k < per_tick; k++) {
            int i = (int)(next_rand() % (uint64_t)n);
            snprintf(user, sizeof user, "u%d", i);
            chat__typing_start(&t, i / 2, user, now + 5000);
            refreshes++;
        }
        chat__typing_expire(&t, now, on_expired, &expired);
        (void)chat__typing_next_deadline(&t);
    }
    double ns = (double)(mono_ns() - t0) / (double)refreshes;
    chat__typing_free(&t);
    return ns;
}

static int on_announce(const char *user, int online, int64_t last_seen_ms, void *ud)
{
    (void)user;
    (void)online;
    (void)last_seen_ms;
    (*(long *)ud)++;
    return 0;
}

/* ns of timer work per user after n users leave. */
static double presence_case(int n, long *announced)
{
    chat__presgate g;
    chat__presgate_init(&g, 2000, 12); /* the server's defaults */
    char user[16];
    int64_t due, first = 0;
    *announced = 0;
    for (int i = 0; i < n; i++) {
        snprintf(user, sizeof user, "u%d", i);
        chat__presgate_change(&g, user, 1, T0, on_announce, announced, &due);
    }
    for (int i = 0; i < n; i++) {
        snprintf(user, sizeof user, "u%d", i);
    }
    /* The leaves and the timer interleave on the clock, as on the server's loop. */
    int64_t cost = 0, now = T0, next_tick = 0;
    for (int i = 0; i < n || first;) {
        int64_t left = i < n ? T0 + 1000 + (int64_t)((long long)i * 60000 / n) : INT64_MAX;
        int64_t at = first > next_tick ? first : next_tick;
        if (first && at <= left) {
            now = at;
            int64_t t0 = mono_ns();
            first = chat__presgate_run(&g, now, on_announce, announced);
            cost += mono_ns() - t0;
            next_tick = now + 25;
            continue;
        }
        snprintf(user, sizeof user, "u%d", i++);
        int64_t t0 = mono_ns();
        chat__presgate_change(&g, user, 0, left, on_announce, announced, &due);
        cost += mono_ns() - t0;
        if (due && (!first || due < first))
            first = due;
    }
    double ns = (double)cost / n;
    chat__presgate_free(&g);
    return ns;
}

int main(int argc, char **argv)
{
    int max = argc > 1 ? atoi(argv[1]) : 100000;
    if (max < 1000) {
        fprintf(stderr, "timers-bench: MAX_USERS must be at least 1000\n");
        return 2;
    }
    printf("%-10s %8s %14s %10s\n", "timer", "users", "ns per unit", "x smallest");
    double base = 0;
    for (int n = 1000; n <= max; n *= 10) {
        double ns = typing_case(n);
        if (!base)
            base = ns;
        printf("%-10s %8d %14.1f %10.2f   (per refresh)\n", "typing", n, ns, ns / base);
    }
    base = 0;
    for (int n = 1000; n <= max; n *= 10) {
        long announced;
        double ns = presence_case(n, &announced);
        if (!base)
            base = ns;
        printf("%-10s %8d %14.1f %10.2f   (per user leaving; %ld announcements)\n", "presence", n,
               ns, ns / base, announced);
    }
    return 0;
}
