/* Typing table: a small array, since only users typing right now are in it. */
#include "core/typing.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/array.h"

#include <string.h>

void chat__typing_init(chat__typing *t)
{
    memset(t, 0, sizeof *t);
}

void chat__typing_free(chat__typing *t)
{
    chat__free(t->v);
    chat__typing_init(t);
}

static chat__typing_entry *find(chat__typing *t, int64_t conv, const char *user)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].conv == conv && strcmp(t->v[i].user, user) == 0)
            return &t->v[i];
    return NULL;
}

int chat__typing_start(chat__typing *t, int64_t conv, const char *user, int64_t expires_ms)
{
    chat__typing_entry *e = find(t, conv, user);
    if (e) {
        e->expires_ms = expires_ms;
        return 0;
    }
    if (strlen(user) >= sizeof e->user)
        return CHAT_EINVAL;
    chat__typing_entry *nv = chat__array_reserve(t->v, t->n, &t->cap, sizeof *nv);
    if (!nv)
        return CHAT_ENOMEM;
    t->v = nv;
    e = &t->v[t->n++];
    e->conv = conv;
    strcpy(e->user, user);
    e->expires_ms = expires_ms;
    return 1;
}

int chat__typing_stop(chat__typing *t, int64_t conv, const char *user)
{
    chat__typing_entry *e = find(t, conv, user);
    if (!e)
        return 0;
    *e = t->v[--t->n];
    return 1;
}

size_t chat__typing_expire(chat__typing *t, int64_t now_ms,
                           void (*cb)(int64_t conv, const char *user, void *ud), void *ud)
{
    size_t count = 0;
    for (size_t i = 0; i < t->n;) {
        if (t->v[i].expires_ms <= now_ms) {
            chat__typing_entry e = t->v[i];
            t->v[i] = t->v[--t->n];
            count++;
            if (cb)
                cb(e.conv, e.user, ud);
        } else {
            i++;
        }
    }
    return count;
}

int64_t chat__typing_next_deadline(const chat__typing *t)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].expires_ms < next)
            next = t->v[i].expires_ms;
    return next;
}
