/* Presence coalescing; see presgate.h. Entries are keyed by user id; those with a deadline are
 * also in a min-heap by deadline, so the engine's timer visits only the entries that are due. */
#include "core/presgate.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/ratelimit.h"

#include <stdio.h>
#include <string.h>

typedef struct chat__presgate_user {
    char user[65];
    int online;             /* the bus's latest word */
    int announced;          /* what contacts were last told */
    int64_t left_ms;        /* when the last device left, while offline */
    int64_t told_left_ms;   /* the last seen contacts were last told */
    chat__timenode due;     /* queued while something is due */
    chat__bucket bucket;    /* announcements */
} pres_user;

static double rate_per_s(const chat__presgate *g)
{
    return g->per_minute / 60.0;
}

void chat__presgate_init(chat__presgate *g, int64_t grace_ms, double per_minute)
{
    memset(g, 0, sizeof *g);
    chat__strmap_init(&g->users);
    chat__timeheap_init(&g->due);
    g->grace_ms = grace_ms;
    g->per_minute = per_minute;
}

static void free_entry(const char *key, void *value, void *ud)
{
    (void)key;
    (void)ud;
    chat__free(value);
}

void chat__presgate_free(chat__presgate *g)
{
    chat__strmap_each(&g->users, free_entry, NULL);
    chat__strmap_clear(&g->users);
    chat__timeheap_free(&g->due);
}

static void unschedule(chat__presgate *g, pres_user *pu)
{
    chat__timeheap_del(&g->due, &pu->due);
}

/* Room in the heap was reserved when the entry was made. */
static int64_t schedule(chat__presgate *g, pres_user *pu, int64_t at)
{
    chat__timeheap_set(&g->due, &pu->due, at);
    return at;
}

/* When the bucket will hold burst tokens again. */
static int64_t full_at(const chat__presgate *g, const chat__bucket *b)
{
    double missing = g->per_minute - b->tokens;
    if (missing <= 0)
        return b->last_ms;
    return b->last_ms + (int64_t)(missing * 1000.0 / rate_per_s(g)) + 1;
}

static void forget(chat__presgate *g, pres_user *pu)
{
    unschedule(g, pu);
    chat__free(chat__strmap_del(&g->users, pu->user));
}

/* Bring pu up to date at now: announce, wait, or forget (stopping: announce at once and
 * forget the offline). pu may be freed. Returns its new deadline, 0 for none; a deadline is
 * always later than now (a refused token's retry is >= 1 ms away), and stopping sets none. */
static int64_t step(chat__presgate *g, pres_user *pu, int64_t now, int stopping,
                    chat__presgate_cb cb, void *ud)
{
    unschedule(g, pu);
    /* Back offline after an offline was announced, the online in between held back by the
     * bucket: the state is the same, but the last seen is not. */
    int stale = !pu->online && !pu->announced && pu->left_ms != pu->told_left_ms;
    if (pu->online != pu->announced || stale) {
        int64_t at = now;
        if (!pu->online && !stopping)
            at = pu->left_ms + g->grace_ms;
        if (at <= now) {
            int64_t retry = 0;
            if (stopping ||
                chat__bucket_take(&pu->bucket, rate_per_s(g), g->per_minute, now, &retry)) {
                int was = pu->announced;
                int64_t was_left = pu->told_left_ms;
                pu->announced = pu->online;
                if (!pu->online)
                    pu->told_left_ms = pu->left_ms;
                int was_stale = stale;
                stale = 0;
                if (cb(pu->user, pu->online, pu->left_ms, ud) != 0 && !stopping) {
                    /* Contacts were told nothing: as before, and again a little later. */
                    pu->announced = was;
                    pu->told_left_ms = was_left;
                    stale = was_stale;
                    at = now + CHAT__PRESGATE_RETRY_MS;
                }
            } else {
                at = now + retry;
            }
        }
        if (pu->online != pu->announced || stale)
            return schedule(g, pu, at);
    }
    if (pu->online)
        return 0;
    int64_t full = full_at(g, &pu->bucket);
    if (full <= now || stopping) {
        forget(g, pu);
        return 0;
    }
    return schedule(g, pu, full);
}

/* The entry of user, made (as if the bus had just said online) when there is none. */
static pres_user *entry(chat__presgate *g, const char *user, int online, int64_t now_ms)
{
    pres_user *pu = chat__strmap_get(&g->users, user);
    if (pu)
        return pu;
    /* The heap's room for this entry is taken now, so scheduling it never fails later. */
    if (chat__timeheap_reserve(&g->due, g->users.used + 1) != CHAT_OK)
        return NULL;
    pu = chat__calloc(1, sizeof *pu);
    if (!pu || chat__strmap_put(&g->users, user, pu) != CHAT_OK) {
        chat__free(pu);
        return NULL;
    }
    snprintf(pu->user, sizeof pu->user, "%s", user);
    /* No entry: contacts were told the opposite (or nothing, before a first online). */
    pu->online = online ? 1 : 0;
    pu->announced = !pu->online;
    chat__bucket_init(&pu->bucket, g->per_minute, now_ms);
    return pu;
}

int chat__presgate_change(chat__presgate *g, const char *user, int online, int64_t now_ms,
                          chat__presgate_cb cb, void *ud, int64_t *due_ms)
{
    *due_ms = 0;
    pres_user *pu = entry(g, user, online, now_ms);
    if (!pu)
        return CHAT_ENOMEM;
    pu->online = online ? 1 : 0;
    if (!online)
        pu->left_ms = now_ms;
    *due_ms = step(g, pu, now_ms, 0, cb, ud);
    return CHAT_OK;
}

int64_t chat__presgate_run(chat__presgate *g, int64_t now_ms, chat__presgate_cb cb, void *ud)
{
    /* Ends: step sets only deadlines later than now_ms. */
    chat__timenode *top;
    while ((top = chat__timeheap_top(&g->due)) && top->at <= now_ms)
        step(g, CHAT__TIMENODE_ENTRY(top, pres_user, due), now_ms, 0, cb, ud);
    return top ? top->at : 0;
}

void chat__presgate_flush(chat__presgate *g, int64_t now_ms, chat__presgate_cb cb, void *ud)
{
    /* Ends: stopping, step sets no deadline. */
    chat__timenode *top;
    while ((top = chat__timeheap_top(&g->due)))
        step(g, CHAT__TIMENODE_ENTRY(top, pres_user, due), now_ms, 1, cb, ud);
}

int64_t chat__presgate_failed(chat__presgate *g, const char *user, int online,
                              int64_t last_seen_ms, int64_t now_ms)
{
    int existed = chat__strmap_get(&g->users, user) != NULL;
    pres_user *pu = entry(g, user, online, now_ms);
    if (!pu)
        return CHAT_ENOMEM;
    if (!existed) {
        /* Forgotten after the offline announcement: nothing changed since (a change makes
         * an entry), so the state to announce is the failed one. */
        pu->left_ms = last_seen_ms;
    } else if (pu->announced != (online ? 1 : 0) ||
               (!online && pu->told_left_ms != last_seen_ms)) {
        /* A later announcement went out: the failed one no longer matters. */
        return chat__timenode_queued(&pu->due) ? pu->due.at : 0;
    }
    pu->announced = !online;
    int64_t at = now_ms + CHAT__PRESGATE_RETRY_MS;
    if (chat__timenode_queued(&pu->due) && pu->due.at < at)
        at = pu->due.at;
    return schedule(g, pu, at);
}

int chat__presgate_shown(const chat__presgate *g, const char *user)
{
    const pres_user *pu = chat__strmap_get(&g->users, user);
    return pu ? pu->announced : -1;
}

size_t chat__presgate_size(const chat__presgate *g)
{
    return g->users.used;
}
