/* Row methods of the SQLite store, version 5: the message lifecycle (updates and erasure,
 * threads, unread counts, expiry), reactions, search, account deletion and media references.
 * Arguments were checked by the checking layer (store/checked.h), as in sqlite_tables.c. */
#include "store/check.h"
#include "store/sqlite_fts.h"
#include "store/sqlite_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

/* Seqs are at most INT64_MAX; an upper bound "below before_seq" becomes inclusive. */
static uint64_t upper_of(uint64_t before_seq)
{
    return before_seq == 0 || before_seq > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX
                                                               : before_seq - 1;
}

/* The value of column c of the search index for conversation conv. */
static void conv_token(char out[24], int64_t conv)
{
    snprintf(out, 24, "%lld", (long long)conv);
}

int chat__sqlite_index(chat__sqlite *s, int64_t sid, int64_t conv, uint64_t seq,
                       const char *text, size_t len)
{
    sqlite3_stmt *st = s->st[CHAT__ST_DOC_INSERT];
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_int64(st, 2, conv);
    bind_u64(st, 3, seq);
    int rc = chat__sqlite_exec(s, st, "index a message");
    if (rc != CHAT_OK)
        return rc;
    char cs[24];
    conv_token(cs, conv);
    st = s->st[CHAT__ST_FTS_INSERT];
    sqlite3_bind_int64(st, 1, sid);
    sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
    bind_text(st, 3, cs);
    return chat__sqlite_exec(s, st, "index a message");
}

int chat__sqlite_msg_get(void *state, int64_t conv, uint64_t seq, chat_store_msg_cb cb,
                         void *user_data)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_GET];
    sqlite3_bind_int64(st, 1, conv);
    bind_u64(st, 2, seq);
    int rc = chat__sqlite_fetch(s, st, "msg_get");
    if (rc)
        return rc;
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    rc = chat__sqlite_emit_msg(st, &k);
    chat__sqlite_reset(st);
    return rc;
}

/* The words a row in the index was given: the same chat__fts_doc of the same body. */
typedef struct old_doc {
    int64_t sid;
    char *text; /* a copy: the statement that read it is reset */
    size_t len;
} old_doc;

static int read_old(chat__sqlite *s, int64_t conv, uint64_t seq, old_doc *out)
{
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_OLD];
    sqlite3_bind_int64(st, 1, conv);
    bind_u64(st, 2, seq);
    int rc = chat__sqlite_fetch(s, st, "msg_update");
    if (rc)
        return rc;
    out->sid = sqlite3_column_int64(st, 2);
    out->text = NULL;
    out->len = 0;
    if (out->sid) {
        char *owned;
        const char *t = chat__fts_doc(sqlite3_column_int(st, 0), sqlite3_column_blob(st, 1),
                                      (size_t)sqlite3_column_bytes(st, 1), &out->len, &owned);
        out->text = owned ? owned : chat__strndup(t ? t : "", out->len);
        if (!out->text)
            rc = chat__error_set(CHAT_ENOMEM, 0, "sqlite store: out of memory");
    }
    chat__sqlite_reset(st);
    return rc;
}

int chat__sqlite_msg_update(void *state, const chat_store_msg *m)
{
    chat__sqlite *s = state;
    old_doc old;
    int rc = read_old(s, m->conv, m->seq, &old);
    if (rc)
        return rc;
    size_t len = 0;
    char *owned = NULL;
    const char *doc = m->flags & CHAT_STORE_MSG_ERASED
                          ? NULL
                          : chat__fts_doc(m->kind, m->body, m->body_len, &len, &owned);
    char cs[24];
    conv_token(cs, m->conv);
    int64_t sid = old.sid;
    if (sid) { /* forget the old words, given as they were indexed */
        sqlite3_stmt *st = s->st[CHAT__ST_FTS_DELETE];
        sqlite3_bind_int64(st, 1, sid);
        sqlite3_bind_text(st, 2, old.text, (int)old.len, SQLITE_STATIC);
        bind_text(st, 3, cs);
        rc = chat__sqlite_exec(s, st, "msg_update: unindex");
    }
    if (rc == CHAT_OK && sid && !doc) {
        sqlite3_stmt *st = s->st[CHAT__ST_DOC_DELETE];
        sqlite3_bind_int64(st, 1, sid);
        rc = chat__sqlite_exec(s, st, "msg_update: unindex");
        sid = 0;
    } else if (rc == CHAT_OK && sid && doc) { /* the same document, new words */
        sqlite3_stmt *st = s->st[CHAT__ST_FTS_INSERT];
        sqlite3_bind_int64(st, 1, sid);
        sqlite3_bind_text(st, 2, doc, (int)len, SQLITE_STATIC);
        bind_text(st, 3, cs);
        rc = chat__sqlite_exec(s, st, "msg_update: index");
    } else if (rc == CHAT_OK && doc) {
        sid = s->next_sid;
        if ((rc = chat__sqlite_index(s, sid, m->conv, m->seq, doc, len)) == CHAT_OK)
            s->next_sid++;
    }
    if (rc == CHAT_OK) {
        sqlite3_stmt *st = s->st[CHAT__ST_MSG_UPDATE];
        sqlite3_bind_int64(st, 1, m->conv);
        bind_u64(st, 2, m->seq);
        sqlite3_bind_int(st, 3, m->kind);
        sqlite3_bind_blob64(st, 4, m->body_len ? m->body : "", m->body_len, SQLITE_STATIC);
        sqlite3_bind_int(st, 5, (int)m->flags);
        sqlite3_bind_int64(st, 6, m->edited_ms);
        sqlite3_bind_int64(st, 7, m->expires_ms);
        sqlite3_bind_int64(st, 8, sid);
        rc = chat__sqlite_exec(s, st, "msg_update");
    }
    /* A body replaced is a body erased: the commit then wipes the WAL (sqlite.c). */
    if (rc == CHAT_OK)
        s->erased = 1;
    chat__free(owned);
    chat__free(old.text);
    return rc;
}

int chat__sqlite_msg_related(void *state, int64_t conv, uint64_t target_seq, int kind,
                             chat_store_msg_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_RELATED];
    sqlite3_bind_int64(st, 1, conv);
    bind_u64(st, 2, target_seq);
    sqlite3_bind_int(st, 3, kind);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "msg_related", chat__sqlite_emit_msg, &k);
}

int chat__sqlite_msg_thread(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                            uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                            void *user_data)
{
    chat__sqlite *s = state;
    uint64_t upper = upper_of(before_seq);
    if (limit == 0 || after_seq >= upper || thread_seq == 0)
        return CHAT_OK;
    sqlite3_stmt *st = s->st[descending ? CHAT__ST_MSG_THREAD_DESC : CHAT__ST_MSG_THREAD_ASC];
    sqlite3_bind_int64(st, 1, conv);
    bind_u64(st, 2, thread_seq);
    bind_u64(st, 3, after_seq);
    bind_u64(st, 4, upper);
    sqlite3_bind_int(st, 5, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "msg_thread", chat__sqlite_emit_msg, &k);
}

int chat__sqlite_msg_count(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                           uint64_t upto_seq, uint64_t *out)
{
    chat__sqlite *s = state;
    *out = 0;
    if (after_seq >= upto_seq)
        return CHAT_OK;
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_COUNT];
    sqlite3_bind_int64(st, 1, conv);
    bind_u64(st, 2, thread_seq);
    bind_u64(st, 3, after_seq);
    bind_u64(st, 4, upto_seq);
    int rc = chat__sqlite_fetch(s, st, "msg_count");
    if (rc)
        return rc;
    *out = (uint64_t)sqlite3_column_int64(st, 0);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

int chat__sqlite_msg_expired(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                             void *user_data)
{
    chat__sqlite *s = state;
    if (limit == 0 || now_ms <= 0)
        return CHAT_OK;
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_EXPIRED];
    sqlite3_bind_int64(st, 1, now_ms);
    sqlite3_bind_int(st, 2, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "msg_expired", chat__sqlite_emit_msg, &k);
}

int chat__sqlite_msg_by_sender(void *state, int64_t conv, const char *sender, uint64_t after_seq,
                               int limit, chat_store_msg_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    if (limit == 0)
        return CHAT_OK;
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_BY_SENDER];
    sqlite3_bind_int64(st, 1, conv);
    bind_text(st, 2, sender);
    bind_u64(st, 3, after_seq);
    sqlite3_bind_int(st, 4, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "msg_by_sender", chat__sqlite_emit_msg, &k);
}

/* ---- search ---- */

typedef struct conv_after {
    int64_t conv;
    uint64_t after;
} conv_after;

static int cmp_conv_after(const void *a, const void *b)
{
    int64_t x = ((const conv_after *)a)->conv, y = ((const conv_after *)b)->conv;
    return x < y ? -1 : x > y;
}

struct hit_ctx {
    chat_store_hit_cb cb;
    void *user_data;
    uint64_t cursor;
};

static int emit_hit(const chat_store_msg *m, void *ud)
{
    struct hit_ctx *h = ud;
    return h->cb(m, h->cursor, h->user_data);
}

/* Whether naming the n conversations in the match pays. Each one named is a list of all its
 * documents that the index merges; the hits are filtered by conversation here anyway. Named,
 * a user's 100 conversations made a search cost 4-6 ms (p99 over 20 ms) in a store of 1M
 * messages where they were all of them; filtered here, 0.25 ms. Naming them pays when they
 * are a small part of the store, where the words' hits would mostly be others': under a
 * quarter of the conversations (the highest id counts them: they are never removed). */
static int narrows(chat__sqlite *s, size_t n)
{
    sqlite3_stmt *st = s->st[CHAT__ST_CONV_MAX];
    int64_t all = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    chat__sqlite_reset(st);
    return (int64_t)n < all / 4;
}

int chat__sqlite_msg_search(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                            void *user_data)
{
    chat__sqlite *s = state;
    if (q->limit == 0 || q->n_convs == 0)
        return CHAT_OK;
    conv_after *ca = chat__malloc(q->n_convs * sizeof *ca);
    int64_t *ids = chat__malloc(q->n_convs * sizeof *ids);
    char *match = NULL;
    int rc = ca && ids ? CHAT_OK : chat__error_set(CHAT_ENOMEM, 0, "sqlite store: out of memory");
    for (size_t i = 0; rc == CHAT_OK && i < q->n_convs; i++)
        ca[i] = (conv_after){q->convs[i], q->after[i]};
    if (rc == CHAT_OK) {
        qsort(ca, q->n_convs, sizeof *ca, cmp_conv_after);
        for (size_t i = 0; i < q->n_convs; i++)
            ids[i] = ca[i].conv;
        rc = chat__fts_match(s->fts, q->text, ids, narrows(s, q->n_convs) ? q->n_convs : 0,
                             &match);
    }
    if (rc != CHAT_OK || !match) {
        chat__free(ca);
        chat__free(ids);
        return rc;
    }
    sqlite3_stmt *st = s->st[CHAT__ST_SEARCH];
    bind_text(st, 1, match);
    sqlite3_bind_int64(st, 2, q->before && q->before <= (uint64_t)INT64_MAX
                                  ? (sqlite3_int64)q->before
                                  : INT64_MAX);
    int n = 0, step = SQLITE_DONE;
    while (rc == CHAT_OK && n < q->limit && (step = sqlite3_step(st)) == SQLITE_ROW) {
        conv_after key = {sqlite3_column_int64(st, 0), 0};
        uint64_t seq = (uint64_t)sqlite3_column_int64(st, 1);
        const conv_after *c = bsearch(&key, ca, q->n_convs, sizeof *ca, cmp_conv_after);
        if (!c || seq <= c->after)
            continue;
        struct hit_ctx h = {cb, user_data, (uint64_t)sqlite3_column_int64(st, 2)};
        rc = chat__sqlite_msg_get(s, key.conv, seq, emit_hit, &h);
        if (rc == CHAT_ENOTFOUND) /* cannot be: the document goes with its message */
            rc = CHAT_OK;
        else if (rc == CHAT_OK)
            n++;
    }
    if (rc == CHAT_OK && n < q->limit && step != SQLITE_DONE)
        rc = chat__sqlite_fail(s->db, step, "msg_search");
    chat__sqlite_reset(st);
    chat__free(match);
    chat__free(ca);
    chat__free(ids);
    return rc;
}

/* ---- reactions ---- */

/* Rewrite the copy of the reactions that the rows of message seq of conv (0: of every message
 * of conv that has one) carry, from the reactions table. */
static int sync_reacts(chat__sqlite *s, int64_t conv, uint64_t seq, const char *what)
{
    sqlite3_stmt *st = s->st[seq ? CHAT__ST_REACT_SYNC_MSG : CHAT__ST_REACT_SYNC_CONV];
    sqlite3_bind_int64(st, 1, conv);
    if (seq)
        bind_u64(st, 2, seq);
    return chat__sqlite_exec(s, st, what);
}

int chat__sqlite_reaction_set(void *state, const chat_store_reaction *r, int on)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[on ? CHAT__ST_REACT_PUT : CHAT__ST_REACT_DEL];
    sqlite3_bind_int64(st, 1, r->conv);
    bind_u64(st, 2, r->seq);
    bind_text(st, 3, r->emoji);
    bind_text(st, 4, r->user);
    if (on)
        sqlite3_bind_int64(st, 5, r->ts_ms);
    int rc = chat__sqlite_exec(s, st, "reaction_set");
    if (rc == CHAT_OK && sqlite3_changes(s->db) == 0)
        return on ? chat__error_set(CHAT_EEXISTS, 0, "sqlite store: reaction_set: already on")
                  : chat__error_set(CHAT_ENOTFOUND, 0, "sqlite store: reaction_set: not on");
    return rc ? rc : sync_reacts(s, r->conv, r->seq, "reaction_set");
}

static void read_reaction(sqlite3_stmt *st, chat_store_reaction *r)
{
    memset(r, 0, sizeof *r);
    r->conv = sqlite3_column_int64(st, 0);
    r->seq = (uint64_t)sqlite3_column_int64(st, 1);
    const char *u = (const char *)sqlite3_column_text(st, 2);
    const char *e = (const char *)sqlite3_column_text(st, 3);
    chat__store_copy(r->user, sizeof r->user, u, u ? (size_t)sqlite3_column_bytes(st, 2) : 0);
    chat__store_copy(r->emoji, sizeof r->emoji, e, e ? (size_t)sqlite3_column_bytes(st, 3) : 0);
    r->ts_ms = sqlite3_column_int64(st, 4);
}

/* By time put on, then by user. */
static int cmp_reacted(const void *pa, const void *pb)
{
    const chat_store_reaction *a = pa, *b = pb;
    return a->ts_ms != b->ts_ms ? (a->ts_ms > b->ts_ms) - (a->ts_ms < b->ts_ms)
                                : strcmp(a->user, b->user);
}

/* Rows of one (message, emoji) in key order, told in the order they were put on. */
typedef struct react_group {
    chat_store_reaction *v;
    size_t n, cap;
} react_group;

static int flush_group(react_group *g, chat_store_reaction_cb cb, void *user_data)
{
    int rc = 0;
    if (g->n > 1)
        qsort(g->v, g->n, sizeof *g->v, cmp_reacted);
    for (size_t i = 0; rc == 0 && i < g->n; i++)
        rc = cb(&g->v[i], user_data);
    g->n = 0;
    return rc;
}

int chat__sqlite_reaction_list(void *state, int64_t conv, uint64_t after_seq,
                               uint64_t before_seq, chat_store_reaction_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    uint64_t upper = upper_of(before_seq);
    if (after_seq >= upper)
        return CHAT_OK;
    sqlite3_stmt *st = s->st[CHAT__ST_REACT_LIST];
    sqlite3_bind_int64(st, 1, conv);
    bind_u64(st, 2, after_seq);
    bind_u64(st, 3, upper);
    /* The rows come in key order (seq, emoji, user), which needs no sort in the query; the
     * time order within a (message, emoji) is an insertion sort of a few rows here. A sort
     * in the query doubled what the reactions of a page cost. */
    react_group g = {0};
    int rc = CHAT_OK, step = SQLITE_DONE;
    while (rc == CHAT_OK && (step = sqlite3_step(st)) == SQLITE_ROW) {
        chat_store_reaction r;
        read_reaction(st, &r);
        if (g.n && (g.v[0].seq != r.seq || strcmp(g.v[0].emoji, r.emoji) != 0))
            rc = flush_group(&g, cb, user_data);
        if (rc)
            break;
        if (g.n == g.cap) {
            size_t cap = g.cap ? 2 * g.cap : 8;
            chat_store_reaction *v = chat__realloc(g.v, cap * sizeof *v);
            if (!v) {
                rc = chat__error_set(CHAT_ENOMEM, 0, "sqlite store: out of memory");
                break;
            }
            g.v = v;
            g.cap = cap;
        }
        g.v[g.n++] = r;
    }
    if (rc == CHAT_OK && step != SQLITE_DONE)
        rc = chat__sqlite_fail(s->db, step, "reaction_list");
    if (rc == CHAT_OK)
        rc = flush_group(&g, cb, user_data);
    chat__sqlite_reset(st);
    chat__free(g.v);
    return rc;
}

int chat__sqlite_reaction_clear(void *state, int64_t conv, uint64_t seq, const char *user)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st;
    if (seq) {
        st = s->st[CHAT__ST_REACT_CLEAR_MSG];
        sqlite3_bind_int64(st, 1, conv);
        bind_u64(st, 2, seq);
        bind_text(st, 3, user);
    } else {
        st = s->st[CHAT__ST_REACT_CLEAR_CONV];
        sqlite3_bind_int64(st, 1, conv);
        bind_text(st, 2, user);
    }
    int rc = chat__sqlite_exec(s, st, "reaction_clear");
    /* Most erased messages had no reactions: their rows are left as they are. */
    if (rc || sqlite3_changes(s->db) == 0)
        return rc;
    return sync_reacts(s, conv, seq, "reaction_clear");
}

/* ---- accounts ---- */

int chat__sqlite_user_delete(void *state, const char *name, int64_t deleted_ms)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_USER_DEL];
    bind_text(st, 1, name);
    int rc = chat__sqlite_exec(s, st, "user_delete");
    if (rc != CHAT_OK)
        return rc;
    st = s->st[CHAT__ST_DELETED_PUT];
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, deleted_ms);
    rc = chat__sqlite_exec(s, st, "user_delete");
    if (rc == CHAT_OK)
        s->erased = 1; /* the password hash */
    return rc;
}

static int emit_deleted(sqlite3_stmt *st, const chat__store_sink *k)
{
    const char *name = (const char *)sqlite3_column_text(st, 0);
    return k->cb.deleted(name ? name : "", sqlite3_column_int64(st, 1), k->user_data);
}

int chat__sqlite_user_deleted(void *state, chat_store_deleted_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    chat__store_sink k = {.cb.deleted = cb, .user_data = user_data};
    return chat__sqlite_each(s, s->st[CHAT__ST_DELETED_LIST], "user_deleted", emit_deleted, &k);
}

/* ---- media references ---- */

int chat__sqlite_media_refs(void *state, const char *id, int delta, int64_t *refs_out)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MEDIA_REFS];
    bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, delta);
    int rc = chat__sqlite_fetch(s, st, "media_refs");
    if (rc)
        return rc;
    if (refs_out)
        *refs_out = sqlite3_column_int64(st, 0);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

int chat__sqlite_media_delete(void *state, const char *id)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MEDIA_DEL];
    bind_text(st, 1, id);
    int rc = chat__sqlite_exec(s, st, "media_delete");
    if (rc != CHAT_OK)
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return chat__error_set(CHAT_ENOTFOUND, 0, "sqlite store: media_delete: no media %s", id);
    st = s->st[CHAT__ST_GRANTS_DEL];
    bind_text(st, 1, id);
    rc = chat__sqlite_exec(s, st, "media_delete");
    if (rc == CHAT_OK)
        s->erased = 1; /* its name and type */
    return rc;
}
