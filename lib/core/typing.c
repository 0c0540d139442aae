/* Typing table: entries found by a "conv:user" key and expired from a deadline heap, so that a
 * server with thousands of users typing at once pays O(log n) per update, not a scan. */
#include "core/typing.h"

#include "chat/errors.h"
#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

typedef struct typing_entry {
    chat__timenode expiry; /* at: when the indicator lapses */
    int64_t conv;
    char user[65];
} typing_entry;

/* The conversation id ends at the first ':', so the key is unambiguous for any user id. */
typedef struct typing_key {
    char s[24 + 65];
} typing_key;

static int make_key(typing_key *k, int64_t conv, const char *user)
{
    int n = snprintf(k->s, sizeof k->s, "%lld:%s", (long long)conv, user);
    return n > 0 && (size_t)n < sizeof k->s;
}

void chat__typing_init(chat__typing *t)
{
    chat__strmap_init(&t->by_key);
    chat__timeheap_init(&t->expiry);
}

void chat__typing_free(chat__typing *t)
{
    for (size_t i = 0; i < t->expiry.n; i++) /* every entry is queued */
        chat__free(CHAT__TIMENODE_ENTRY(t->expiry.v[i], typing_entry, expiry));
    chat__timeheap_free(&t->expiry);
    chat__strmap_clear(&t->by_key);
}

int chat__typing_start(chat__typing *t, int64_t conv, const char *user, int64_t expires_ms)
{
    typing_key k;
    typing_entry *e;
    if (strlen(user) >= sizeof e->user || !make_key(&k, conv, user))
        return CHAT_EINVAL;
    e = chat__strmap_get(&t->by_key, k.s);
    if (e) {
        chat__timeheap_set(&t->expiry, &e->expiry, expires_ms);
        return 0;
    }
    if (chat__timeheap_reserve(&t->expiry, t->expiry.n + 1) != CHAT_OK ||
        !(e = chat__calloc(1, sizeof *e)))
        return CHAT_ENOMEM;
    if (chat__strmap_put(&t->by_key, k.s, e) != CHAT_OK) {
        chat__free(e);
        return CHAT_ENOMEM;
    }
    e->conv = conv;
    strcpy(e->user, user);
    chat__timeheap_set(&t->expiry, &e->expiry, expires_ms);
    return 1;
}

int chat__typing_stop(chat__typing *t, int64_t conv, const char *user)
{
    typing_key k;
    if (!make_key(&k, conv, user))
        return 0;
    typing_entry *e = chat__strmap_del(&t->by_key, k.s);
    if (!e)
        return 0;
    chat__timeheap_del(&t->expiry, &e->expiry);
    chat__free(e);
    return 1;
}

size_t chat__typing_expire(chat__typing *t, int64_t now_ms,
                           void (*cb)(int64_t conv, const char *user, void *ud), void *ud)
{
    size_t count = 0;
    chat__timenode *top;
    while ((top = chat__timeheap_top(&t->expiry)) && top->at <= now_ms) {
        typing_entry *e = CHAT__TIMENODE_ENTRY(top, typing_entry, expiry);
        chat__timeheap_del(&t->expiry, top);
        typing_key k;
        make_key(&k, e->conv, e->user); /* it was made once already */
        chat__strmap_del(&t->by_key, k.s);
        count++;
        /* Gone from the table before cb runs: cb may start or stop indicators. */
        if (cb)
            cb(e->conv, e->user, ud);
        chat__free(e);
    }
    return count;
}

int64_t chat__typing_next_deadline(const chat__typing *t)
{
    const chat__timenode *top = chat__timeheap_top(&t->expiry);
    return top ? top->at : INT64_MAX;
}

size_t chat__typing_count(const chat__typing *t)
{
    return t->expiry.n;
}
