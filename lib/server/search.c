/* search: full-text search over the conversations a user is a member of, as they are now
 * (edited messages by their new text; deleted and expired ones not at all), newest first,
 * paged by the store's cursor. */
#include "server/lifecycle.h"

#include "core/alloc.h"
#include "core/array.h"
#include "core/json.h"
#include "core/utf8.h"

#include <inttypes.h>
#include <limits.h>
#include <string.h>

/* Longest query, in bytes. */
#define QUERY_MAX 256
#define DEFAULT_LIMIT 20

typedef struct search_args {
    int64_t conv; /* 0: every conversation of mine */
    uint64_t before;
    int limit;
    const char *query; /* into args */
} search_args;

typedef struct scope {
    int64_t *convs;
    uint64_t *after;
    size_t n, cap, cap2;
} scope;

static int scope_add(scope *s, int64_t conv, uint64_t after)
{
    int64_t *c = chat__array_reserve(s->convs, s->n, &s->cap, sizeof *c);
    if (!c)
        return CHAT_ENOMEM;
    s->convs = c;
    uint64_t *a = chat__array_reserve(s->after, s->n, &s->cap2, sizeof *a);
    if (!a)
        return CHAT_ENOMEM;
    s->after = a;
    s->convs[s->n] = conv;
    s->after[s->n++] = after;
    return CHAT_OK;
}

/* My active memberships: what I may find, each after my join point. */
static int add_membership(const chat_store_member *m, void *ud)
{
    if (m->role == CHAT_ROLE_NONE)
        return 0;
    return scope_add(ud, m->conv, m->joined_seq) == CHAT_OK ? 0 : CHAT_ENOMEM;
}

typedef struct hits {
    chat__page page;
    uint64_t *cursors;
    size_t cap;
} hits;

static int add_hit(const chat_store_msg *m, uint64_t cursor, void *ud)
{
    hits *h = ud;
    uint64_t *c = chat__array_reserve(h->cursors, h->page.n, &h->cap, sizeof *c);
    if (!c)
        return CHAT_ENOMEM;
    h->cursors = c;
    int rc = chat__page_add(m, &h->page);
    if (rc == 0)
        h->cursors[h->page.n - 1] = cursor;
    return rc;
}

static int search_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    search_args *a = r->extra;
    if (!tx->srv->lifecycle)
        return chat__req_no_lifecycle(r);
    scope sc = {0};
    hits h = {0};
    cJSON *o = NULL, *msgs = NULL;
    int rc;
    if (a->conv) {
        chat_store_conv conv;
        chat_store_member me;
        if ((rc = chat__txn_member(tx, r, a->conv, r->user, &conv, &me)) != CHAT_OK)
            goto out;
        rc = scope_add(&sc, conv.id, me.joined_seq);
    } else {
        rc = tx->ops->user_convs(tx->st, r->user, 0, INT_MAX, add_membership, &sc);
    }
    if (rc == CHAT_OK) {
        chat_store_search q = {a->query, sc.convs, sc.after, sc.n, a->before, a->limit + 1};
        rc = tx->ops->msg_search(tx->st, &q, add_hit, &h);
    }
    if (rc != CHAT_OK) {
        rc = chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                            "cannot search");
        goto out;
    }
    int more = h.page.n > (size_t)a->limit;
    if (more)
        chat__msg_free(&h.page.v[--h.page.n]);
    o = chat__req_reply(r, "search");
    msgs = cJSON_CreateArray();
    if (!o || !msgs || (rc = chat__page_encode(tx, &h.page, 0, msgs)) != CHAT_OK) {
        rc = chat__req_fail(r, rc == CHAT_EIO ? CHAT_EIO : CHAT_ENOMEM, "internal",
                            "cannot answer the search");
        goto out;
    }
    cJSON_AddItemToObject(o, "messages", msgs);
    msgs = NULL;
    cJSON_AddBoolToObject(o, "more", more);
    if (h.page.n)
        cJSON_AddNumberToObject(o, "cursor", (double)h.cursors[h.page.n - 1]);
    r->reply = chat__frame_take_json(o);
    o = NULL;
    rc = r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
out:
    cJSON_Delete(o);
    cJSON_Delete(msgs);
    chat__page_free(&h.page);
    chat__free(h.cursors);
    chat__free(sc.convs);
    chat__free(sc.after);
    return rc;
}

void chat__handle_search(chat__conn *c, cJSON *f, cJSON *re)
{
    chat_server *srv = c->srv;
    search_args a = {0};
    size_t n = 0;
    if (!srv->lifecycle) {
        chat__conn_decline(c, re, CHAT_ENOTSUP, "no_lifecycle",
                           "this server's store keeps no search index", 0);
        goto fail;
    }
    if (!chat__arg_str(c, f, re, "query", 1, &a.query, &n))
        goto fail;
    if (n == 0 || n > QUERY_MAX) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'query' must be 1-256 bytes", 0);
        goto fail;
    }
    if (chat__json_get(f, "conv") && !chat__arg_conv(c, f, re, &a.conv))
        goto fail;
    int rb = chat__json_u64(f, "before", &a.before);
    if (rb != CHAT_OK && rb != CHAT_ENOTFOUND) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'before' must be a search cursor", 0);
        goto fail;
    }
    if (!chat__arg_limit(c, f, re, DEFAULT_LIMIT, &a.limit))
        goto fail;
    int64_t retry = 0;
    int64_t rate = chat__limit(srv, CHAT_LIMIT_SEARCH_RATE);
    if (!chat__bucket_take(&c->search_bucket, (double)rate, (double)rate, chat__now_ms(srv),
                           &retry)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited", "searching too fast", retry);
        goto fail;
    }
    chat__req_start(c, f, re, search_run, &a, sizeof a, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
