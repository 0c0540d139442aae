/* The inbox change counter of the PostgreSQL store, late: several servers write batches at
 * once and only the end of each is serialised.
 *
 * The engine reads the counter (meta_get of CHAT_STORE_CHANGE_KEY) first in a transaction,
 * gives the rows it changes base + 1, base + 2, ... and writes base + k back just before
 * commit. Read under a lock held to the commit, as any other meta key, that would let one
 * transaction in the whole cluster write at a time. Instead:
 * - the read takes no lock: base is the counter as committed then;
 * - the rows written with a change above base are remembered (their ids);
 * - meta_set takes the key's lock, adds k to the counter as committed by then (C) and moves
 *   those rows up by C - base, in one statement sent with the COMMIT that follows; the
 *   commit releases the lock.
 * So transactions commit in counter order, each with changes above every one committed
 * before it: a reader that sees the counter at C sees every change up to C, and no change
 * at or below C commits later, which is what makes a client's inbox cursor (the counter read
 * at the start of the reader's transaction) skip nothing. The remembered rows are locked by
 * this transaction since it wrote them, so nobody else changed them meanwhile. A transaction
 * rolled back, or cut off before its commit, takes its counter update with it.
 *
 * The lock is the same advisory lock the other meta keys take, so a server running the
 * earlier rule (the lock for the whole transaction) still serialises with these. */
#include "store/pg_internal.h"

#include "core/alloc.h"
#include "core/array.h"
#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void chat__pg_change_reset(chat__pg *s)
{
    chat__pg_change *c = &s->change;
    c->armed = c->found = 0;
    c->base = 0;
    c->n_convs = c->n_members = 0;
}

void chat__pg_change_free(chat__pg *s)
{
    chat__pg_change *c = &s->change;
    chat__free(c->convs);
    chat__free(c->members);
    memset(c, 0, sizeof *c);
    chat__free(s->scratch);
    s->scratch = NULL;
    s->cap_scratch = 0;
}

char *chat__pg_scratch(chat__pg *s, size_t size)
{
    if (size > s->cap_scratch) {
        char *t = chat__realloc(s->scratch, size);
        if (!t)
            return NULL;
        s->scratch = t;
        s->cap_scratch = size;
    }
    return s->scratch;
}

int chat__pg_change_get(chat__pg *s, int64_t *value)
{
    chat__pg_change *c = &s->change;
    if (!c->armed) {
        chat__pg_params p = {0};
        chat__pg_text(&p, CHAT_STORE_CHANGE_KEY);
        PGresult *r;
        int rc = chat__pg_query(s, CHAT__PG_META_GET, &p, &r, "meta_get");
        if (rc != CHAT_OK)
            return rc;
        c->found = PQntuples(r) > 0;
        c->base = c->found ? (uint64_t)chat__pg_col_i64(r, 0, 0) : 0;
        c->armed = 1;
        PQclear(r);
    }
    /* Again in the same transaction: the value it counts from, not a newer one. */
    if (!c->found)
        return chat__error_set(CHAT_ENOTFOUND, 0, "postgres store: meta_get: not found");
    *value = (int64_t)c->base;
    return CHAT_OK;
}

static int out_of_memory(chat__pg *s)
{
    /* A row left out would not be renumbered: the transaction must not commit. */
    return chat__pg_tx_fail(s, chat__error_set(CHAT_ENOMEM, 0, "postgres store: out of memory"));
}

int chat__pg_change_conv(chat__pg *s, int64_t conv, uint64_t change)
{
    chat__pg_change *c = &s->change;
    if (!s->in_tx || !c->armed || change <= c->base)
        return CHAT_OK;
    if (c->n_convs && c->convs[c->n_convs - 1] == conv)
        return CHAT_OK; /* the same conversation again, as most batches write it */
    int64_t *v = chat__array_reserve(c->convs, c->n_convs, &c->cap_convs, sizeof *v);
    if (!v)
        return out_of_memory(s);
    c->convs = v;
    c->convs[c->n_convs++] = conv;
    return CHAT_OK;
}

int chat__pg_change_member(chat__pg *s, int64_t conv, const char *user, uint64_t change)
{
    chat__pg_change *c = &s->change;
    if (!s->in_tx || !c->armed || change <= c->base)
        return CHAT_OK;
    if (c->n_members && c->members[c->n_members - 1].conv == conv &&
        strcmp(c->members[c->n_members - 1].user, user) == 0)
        return CHAT_OK;
    chat__pg_member_key *v =
        chat__array_reserve(c->members, c->n_members, &c->cap_members, sizeof *v);
    if (!v)
        return out_of_memory(s);
    c->members = v;
    v = &c->members[c->n_members++];
    v->conv = conv;
    snprintf(v->user, sizeof v->user, "%s", user);
    return CHAT_OK;
}

/* Array literals of PostgreSQL's text format: {1,2} and {"a","b\"c"}. */
char *chat__pg_put_ids(char *p, const int64_t *ids, size_t n, size_t stride)
{
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        int64_t id = *(const int64_t *)(const void *)((const char *)ids + i * stride);
        p += sprintf(p, "%s%" PRId64, i ? "," : "", id);
    }
    *p++ = '}';
    *p++ = '\0';
    return p;
}

static char *put_users(char *p, const chat__pg_member_key *m, size_t n)
{
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        *p++ = '"';
        for (const char *u = m[i].user; *u; u++) {
            if (*u == '"' || *u == '\\')
                *p++ = '\\';
            *p++ = *u;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p++ = '\0';
    return p;
}

int chat__pg_change_set(chat__pg *s, int64_t value)
{
    chat__pg_change *c = &s->change;
    if (value < 0 || (uint64_t)value < c->base)
        return chat__error_set(CHAT_EINVAL, 0,
                               "postgres store: meta_set: the inbox change counter goes from "
                               "%" PRIu64 " down to %" PRId64, c->base, value);
    if ((uint64_t)value == c->base)
        return CHAT_OK; /* nothing counted: nothing to add, no lock to take */
    /* A user id at most doubled by escapes, quoted, and a comma. */
    char *convs = chat__pg_scratch(s, CHAT__PG_IDS_SIZE(c->n_convs) +
                                          CHAT__PG_IDS_SIZE(c->n_members) + 3 +
                                          c->n_members * (2 * CHAT_ID_MAX + 3));
    if (!convs)
        return out_of_memory(s);
    char *member_convs = chat__pg_put_ids(convs, c->convs, c->n_convs, sizeof *c->convs);
    char *member_users =
        chat__pg_put_ids(member_convs, c->members ? &c->members[0].conv : NULL, c->n_members,
                         sizeof *c->members);
    put_users(member_users, c->members, c->n_members);

    chat__pg_params key = {0}, p = {0};
    chat__pg_text(&key, CHAT_STORE_CHANGE_KEY);
    chat__pg_text(&p, CHAT_STORE_CHANGE_KEY);
    chat__pg_i64(&p, value);
    chat__pg_u64(&p, c->base);
    chat__pg_text(&p, convs);
    chat__pg_text(&p, member_convs);
    chat__pg_text(&p, member_users);
    int rc = chat__pg_exec(s, CHAT__PG_LOCK_KEY, &key, "meta_set");
    if (rc == CHAT_OK)
        rc = chat__pg_exec(s, CHAT__PG_CHANGE_ADD, &p, "meta_set");
    if (rc != CHAT_OK)
        return rc;
    /* Counted from here on, should the transaction count more before it commits. */
    c->base = (uint64_t)value;
    c->found = 1;
    c->n_convs = c->n_members = 0;
    return CHAT_OK;
}
