/* Presence coalescing; see presgate.h. Entries are keyed by user id; those with a deadline are
 * also on a doubly linked list, which the engine's timer walks. */
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
    int64_t due_ms;         /* 0: not on the due list */
    chat__bucket bucket;    /* announcements */
    struct chat__presgate_user *prev, *next;
} pres_user;

static double rate_per_s(const chat__presgate *g)
{
    return g->per_minute / 60.0;
}

void chat__presgate_init(chat__presgate *g, int64_t grace_ms, double per_minute)
{
    memset(g, 0, sizeof *g);
    chat__strmap_init(&g->users);
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
    g->due = NULL;
}

static void unschedule(chat__presgate *g, pres_user *pu)
{
    if (!pu->due_ms)
        return;
    if (pu->prev)
        pu->prev->next = pu->next;
    else
        g->due = pu->next;
    if (pu->next)
        pu->next->prev = pu->prev;
    pu->prev = pu->next = NULL;
    pu->due_ms = 0;
}

static void schedule(chat__presgate *g, pres_user *pu, int64_t at)
{
    unschedule(g, pu);
    pu->due_ms = at > 0 ? at : 1;
    pu->next = g->due;
    if (g->due)
        g->due->prev = pu;
    g->due = pu;
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
 * forget the offline). pu may be freed. Returns its new deadline, 0 for none. */
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
                pu->announced = pu->online;
                if (!pu->online)
                    pu->told_left_ms = pu->left_ms;
                stale = 0;
                cb(pu->user, pu->online, pu->left_ms, ud);
            } else {
                at = now + retry;
            }
        }
        if (pu->online != pu->announced || stale) {
            schedule(g, pu, at);
            return pu->due_ms;
        }
    }
    if (pu->online)
        return 0;
    int64_t full = full_at(g, &pu->bucket);
    if (full <= now || stopping) {
        forget(g, pu);
        return 0;
    }
    schedule(g, pu, full);
    return pu->due_ms;
}

int chat__presgate_change(chat__presgate *g, const char *user, int online, int64_t now_ms,
                          chat__presgate_cb cb, void *ud, int64_t *due_ms)
{
    *due_ms = 0;
    pres_user *pu = chat__strmap_get(&g->users, user);
    if (!pu) {
        pu = chat__calloc(1, sizeof *pu);
        if (!pu || chat__strmap_put(&g->users, user, pu) != CHAT_OK) {
            chat__free(pu);
            return CHAT_ENOMEM;
        }
        snprintf(pu->user, sizeof pu->user, "%s", user);
        /* No entry: contacts were told the opposite (or nothing, before a first online). */
        pu->announced = !online;
        chat__bucket_init(&pu->bucket, g->per_minute, now_ms);
    }
    pu->online = online ? 1 : 0;
    if (!online)
        pu->left_ms = now_ms;
    *due_ms = step(g, pu, now_ms, 0, cb, ud);
    return CHAT_OK;
}

int64_t chat__presgate_run(chat__presgate *g, int64_t now_ms, chat__presgate_cb cb, void *ud)
{
    int64_t first = 0;
    pres_user *next;
    /* step re-links only pu itself, at the head, so the saved next stays valid (and an entry
     * re-linked at the head is not visited again). */
    for (pres_user *pu = g->due; pu; pu = next) {
        next = pu->next;
        int64_t due = pu->due_ms <= now_ms ? step(g, pu, now_ms, 0, cb, ud) : pu->due_ms;
        if (due && (!first || due < first))
            first = due;
    }
    return first;
}

void chat__presgate_flush(chat__presgate *g, int64_t now_ms, chat__presgate_cb cb, void *ud)
{
    pres_user *next;
    for (pres_user *pu = g->due; pu; pu = next) {
        next = pu->next;
        step(g, pu, now_ms, 1, cb, ud);
    }
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
