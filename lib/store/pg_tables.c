/* Row methods of the PostgreSQL store. Reads are one round trip each (with whatever the
 * transaction deferred before them); writes that only succeed or fail are deferred in a
 * transaction (pg.c). Results are read whole, so a row callback may re-enter with a point
 * read: the connection is idle while it runs.
 *
 * Arguments are not checked here: the store is used through the checking layer
 * (store/checked.h), which validates them (store/check.h). */
#include "store/check.h"
#include "store/pg_internal.h"
#include "store/sqlite_fts.h"

#include "core/alloc.h"
#include "core/error.h"

#include <inttypes.h>
#include <string.h>

/* Tries of conv_insert when another server takes the same new id meanwhile. */
#define CONV_INSERT_TRIES 8

static int not_found(const char *what)
{
    return chat__error_set(CHAT_ENOTFOUND, 0, "postgres store: %s: not found", what);
}

int chat__pg_fetch(chat__pg *s, int st, const chat__pg_params *p, PGresult **out,
                   const char *what)
{
    int rc = chat__pg_query(s, st, p, out, what);
    if (rc == CHAT_OK && PQntuples(*out) == 0) {
        PQclear(*out);
        *out = NULL;
        rc = not_found(what);
    }
    return rc;
}

static void read_conv(const PGresult *r, int i, chat_store_conv *c)
{
    c->id = chat__pg_col_i64(r, i, 0);
    c->kind = (int)chat__pg_col_i64(r, i, 1);
    chat__pg_col_copy(r, i, 2, c->title, sizeof c->title);
    chat__pg_col_copy(r, i, 3, c->dm_key, sizeof c->dm_key);
    c->head_seq = (uint64_t)chat__pg_col_i64(r, i, 4);
    c->change = (uint64_t)chat__pg_col_i64(r, i, 5);
    c->created_ms = chat__pg_col_i64(r, i, 6);
    c->member_count = (int)chat__pg_col_i64(r, i, 7);
    c->msg_ttl_ms = chat__pg_col_i64(r, i, 8);
}

static void read_member(const PGresult *r, int i, chat_store_member *m)
{
    m->conv = chat__pg_col_i64(r, i, 0);
    chat__pg_col_copy(r, i, 1, m->user, sizeof m->user);
    m->role = (int)chat__pg_col_i64(r, i, 2);
    m->delivered_seq = (uint64_t)chat__pg_col_i64(r, i, 3);
    m->read_seq = (uint64_t)chat__pg_col_i64(r, i, 4);
    m->delivered_ms = chat__pg_col_i64(r, i, 5);
    m->read_ms = chat__pg_col_i64(r, i, 6);
    m->joined_seq = (uint64_t)chat__pg_col_i64(r, i, 7);
    m->change = (uint64_t)chat__pg_col_i64(r, i, 8);
}

void chat__pg_read_msg(const PGresult *r, int i, chat_store_msg *m)
{
    m->conv = chat__pg_col_i64(r, i, 0);
    m->seq = (uint64_t)chat__pg_col_i64(r, i, 1);
    m->ts_ms = chat__pg_col_i64(r, i, 2);
    m->sender = chat__pg_col_str(r, i, 3);
    m->device = chat__pg_col_str(r, i, 4);
    m->cmid = chat__pg_col_str(r, i, 5);
    m->kind = (int)chat__pg_col_i64(r, i, 6);
    m->body = PQgetvalue(r, i, 7); /* binary bytea: the bytes themselves */
    m->body_len = (size_t)PQgetlength(r, i, 7);
    m->target_seq = (uint64_t)chat__pg_col_i64(r, i, 8);
    m->thread_seq = (uint64_t)chat__pg_col_i64(r, i, 9);
    m->edited_ms = chat__pg_col_i64(r, i, 10);
    m->expires_ms = chat__pg_col_i64(r, i, 11);
    m->flags = (unsigned int)chat__pg_col_i64(r, i, 12);
}

int chat__pg_read_reacts(const PGresult *r, int i, chat_store_msg *m, chat__store_reacts *x)
{
    return chat__store_reacts_decode(x, m, PQgetvalue(r, i, 13), (size_t)PQgetlength(r, i, 13));
}

int chat__pg_emit_msg(const PGresult *r, int i, const chat__store_sink *k)
{
    chat_store_msg m;
    chat__store_reacts x;
    chat__pg_read_msg(r, i, &m);
    int rc = chat__pg_read_reacts(r, i, &m, &x);
    if (rc)
        return rc;
    rc = k->cb.msg(&m, k->user_data);
    chat__store_reacts_free(&x);
    return rc;
}

static int emit_member(const PGresult *r, int i, const chat__store_sink *k)
{
    chat_store_member m;
    read_member(r, i, &m);
    return k->cb.member(&m, k->user_data);
}

static int emit_name(const PGresult *r, int i, const chat__store_sink *k)
{
    return k->cb.name(chat__pg_col_str(r, i, 0), k->user_data);
}

static int emit_revoked(const PGresult *r, int i, const chat__store_sink *k)
{
    return k->cb.revoked(chat__pg_col_str(r, i, 0), chat__pg_col_i64(r, i, 1), k->user_data);
}

static int emit_grant(const PGresult *r, int i, const chat__store_sink *k)
{
    return k->cb.grant(chat__pg_col_i64(r, i, 0), chat__pg_col_str(r, i, 1), k->user_data);
}

int chat__pg_each(chat__pg *s, int st, const chat__pg_params *p, const char *what,
                  chat__pg_emit_fn emit, const chat__store_sink *k)
{
    PGresult *r;
    int rc = chat__pg_query(s, st, p, &r, what);
    if (rc != CHAT_OK)
        return rc;
    int n = PQntuples(r);
    for (int i = 0; i < n && rc == 0; i++)
        rc = emit(r, i, k);
    PQclear(r);
    return rc;
}

/* ---- conversations ---- */

int chat__pg_conv_insert(void *state, chat_store_conv *conv)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv->kind);
    chat__pg_text(&p, conv->title);
    chat__pg_text(&p, conv->dm_key[0] ? conv->dm_key : NULL); /* groups: NULL, never equal */
    chat__pg_u64(&p, conv->head_seq);
    chat__pg_u64(&p, conv->change);
    chat__pg_i64(&p, conv->created_ms);
    chat__pg_i64(&p, conv->member_count);
    chat__pg_i64(&p, conv->msg_ttl_ms);
    for (int tries = 0; tries < CONV_INSERT_TRIES; tries++) {
        PGresult *r;
        int rc = chat__pg_query(s, CHAT__PG_CONV_INSERT, &p, &r, "conv_insert");
        if (rc != CHAT_OK)
            return rc;
        int inserted = PQntuples(r) == 1;
        if (inserted)
            conv->id = chat__pg_col_i64(r, 0, 0);
        PQclear(r);
        if (inserted)
            return chat__pg_change_conv(s, conv->id, conv->change);
        /* A conflict: the dm_key is taken, or another server took the id first. */
        if (conv->dm_key[0]) {
            chat__pg_params q = {0};
            chat__pg_text(&q, conv->dm_key);
            rc = chat__pg_query(s, CHAT__PG_CONV_DM_TAKEN, &q, &r, "conv_insert");
            if (rc != CHAT_OK)
                return rc;
            int taken = PQntuples(r) > 0;
            PQclear(r);
            if (taken)
                return chat__error_set(CHAT_EEXISTS, 0,
                                       "postgres store: conv_insert: dm_key exists");
        }
    }
    return chat__error_set(CHAT_EAGAIN, 0,
                           "postgres store: conv_insert: new conversation ids taken by others "
                           "%d times in a row", CONV_INSERT_TRIES);
}

static int conv_lookup(chat__pg *s, int st, const chat__pg_params *p, chat_store_conv *out,
                       const char *what)
{
    PGresult *r;
    int rc = chat__pg_fetch(s, st, p, &r, what);
    if (rc != CHAT_OK)
        return rc;
    read_conv(r, 0, out);
    PQclear(r);
    return CHAT_OK;
}

int chat__pg_conv_get(void *state, int64_t id, chat_store_conv *out)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, id);
    /* In a transaction: the row locked, its head_seq the latest (see pg.c). */
    return conv_lookup(s, s->in_tx ? CHAT__PG_CONV_GET_LOCK : CHAT__PG_CONV_GET, &p, out,
                       "conv_get");
}

int chat__pg_conv_find_direct(void *state, const char *dm_key, chat_store_conv *out)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_text(&p, dm_key);
    return conv_lookup(s, s->in_tx ? CHAT__PG_CONV_FIND_LOCK : CHAT__PG_CONV_FIND, &p, out,
                       "conv_find_direct");
}

int chat__pg_conv_update(void *state, const chat_store_conv *conv)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv->id);
    chat__pg_text(&p, conv->title);
    chat__pg_u64(&p, conv->head_seq);
    chat__pg_u64(&p, conv->change);
    chat__pg_i64(&p, conv->member_count);
    chat__pg_i64(&p, conv->msg_ttl_ms);
    int rc = chat__pg_change_conv(s, conv->id, conv->change);
    return rc ? rc : chat__pg_exec_update(s, CHAT__PG_CONV_UPDATE, &p, conv->id, "conv_update");
}

int chat__pg_lock_convs(void *state, const chat_conv_id *ids, size_t n)
{
    chat__pg *s = state;
    if (!s->in_tx)
        return CHAT_OK;
    char *text = chat__pg_scratch(s, CHAT__PG_IDS_SIZE(n));
    if (!text) /* nothing sent: the transaction goes on */
        return chat__error_set(CHAT_ENOMEM, 0, "postgres store: out of memory");
    chat__pg_put_ids(text, ids, n, sizeof *ids);
    chat__pg_params p = {0};
    chat__pg_text(&p, text);
    /* Its rows are not needed: it travels with the next call, waits included. */
    return chat__pg_exec(s, CHAT__PG_CONV_LOCK, &p, "lock_convs");
}

/* ---- members ---- */

int chat__pg_member_get(void *state, int64_t conv, const char *user, chat_store_member *out)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_text(&p, user);
    PGresult *r;
    int rc = chat__pg_fetch(s, CHAT__PG_MEMBER_GET, &p, &r, "member_get");
    if (rc != CHAT_OK)
        return rc;
    read_member(r, 0, out);
    PQclear(r);
    return CHAT_OK;
}

int chat__pg_member_put(void *state, const chat_store_member *m)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, m->conv);
    chat__pg_text(&p, m->user);
    chat__pg_i64(&p, m->role);
    chat__pg_u64(&p, m->delivered_seq);
    chat__pg_u64(&p, m->read_seq);
    chat__pg_i64(&p, m->delivered_ms);
    chat__pg_i64(&p, m->read_ms);
    chat__pg_u64(&p, m->joined_seq);
    chat__pg_u64(&p, m->change);
    int rc = chat__pg_change_member(s, m->conv, m->user, m->change);
    return rc ? rc : chat__pg_exec(s, CHAT__PG_MEMBER_PUT, &p, "member_put");
}

int chat__pg_member_list(void *state, int64_t conv, int only_active, chat_store_member_cb cb,
                         void *user_data)
{
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__store_sink k = {.cb.member = cb, .user_data = user_data};
    return chat__pg_each(state, only_active ? CHAT__PG_MEMBER_LIST_ACTIVE : CHAT__PG_MEMBER_LIST, &p,
                "member_list", emit_member, &k);
}

/* ---- messages ---- */

int chat__pg_msg_insert(void *state, const chat_store_msg *msg)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, msg->conv);
    chat__pg_u64(&p, msg->seq);
    chat__pg_i64(&p, msg->ts_ms);
    chat__pg_text(&p, msg->sender);
    chat__pg_text(&p, msg->device);
    chat__pg_text(&p, chat__store_cmid(msg)); /* none: NULL, which never conflicts */
    chat__pg_i64(&p, msg->kind);
    chat__pg_bytes(&p, msg->body, msg->body_len);
    chat__pg_u64(&p, msg->target_seq);
    chat__pg_u64(&p, msg->thread_seq);
    chat__pg_i64(&p, msg->edited_ms);
    chat__pg_i64(&p, msg->expires_ms);
    chat__pg_i64(&p, msg->flags);
    /* The words to index (NULL: none); the row takes a search id only with some. */
    size_t len;
    char *owned, *words = NULL;
    const char *doc = msg->flags & CHAT_STORE_MSG_ERASED
                          ? NULL
                          : chat__fts_doc(msg->kind, msg->body, msg->body_len, &len, &owned);
    if (doc) {
        words = chat__pg_words(doc, len);
        chat__free(owned);
        if (!words)
            return chat__error_set(CHAT_ENOMEM, 0, "postgres store: out of memory");
    }
    chat__pg_text(&p, words);
    PGresult *r;
    int rc = chat__pg_query(s, CHAT__PG_MSG_INSERT, &p, &r, "msg_insert");
    chat__free(words);
    if (rc != CHAT_OK)
        return rc;
    /* ON CONFLICT DO NOTHING: a taken (conv, seq) or client id inserts no row and, unlike a
     * unique violation, leaves the transaction usable. */
    int inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (!inserted)
        return chat__error_set(CHAT_EEXISTS, 0,
                               "postgres store: msg_insert: seq %" PRIu64 " or client id taken "
                               "in conv %" PRId64, msg->seq, msg->conv);
    return CHAT_OK;
}

int chat__pg_msg_find_cmid(void *state, int64_t conv, const char *sender, const char *device,
                           const char *cmid, chat_store_msg_cb cb, void *user_data)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_text(&p, sender);
    chat__pg_text(&p, device);
    chat__pg_text(&p, cmid);
    PGresult *r;
    int rc = chat__pg_fetch(s, CHAT__PG_MSG_CMID, &p, &r, "msg_find_cmid");
    if (rc != CHAT_OK)
        return rc;
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    rc = chat__pg_emit_msg(r, 0, &k);
    PQclear(r);
    return rc;
}

int chat__pg_msg_range(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                       int limit, int descending, chat_store_msg_cb cb, void *user_data)
{
    /* Seqs are at most INT64_MAX; the upper bound becomes inclusive so INT64_MAX fits. */
    uint64_t upper = before_seq == 0 || before_seq > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX
                                                                         : before_seq - 1;
    if (limit == 0 || after_seq >= upper)
        return CHAT_OK;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_u64(&p, after_seq);
    chat__pg_u64(&p, upper);
    chat__pg_i64(&p, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__pg_each(state, descending ? CHAT__PG_MSG_RANGE_DESC : CHAT__PG_MSG_RANGE_ASC, &p,
                "msg_range", chat__pg_emit_msg, &k);
}

/* ---- inbox and contacts ---- */

int chat__pg_user_convs(void *state, const char *user, uint64_t since_change, int limit,
                        chat_store_member_cb cb, void *user_data)
{
    if (limit == 0 || since_change >= (uint64_t)INT64_MAX)
        return CHAT_OK;
    chat__pg_params p = {0};
    chat__pg_text(&p, user);
    chat__pg_u64(&p, since_change);
    chat__pg_i64(&p, limit);
    chat__store_sink k = {.cb.member = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_USER_CONVS, &p, "user_convs", emit_member, &k);
}

int chat__pg_contacts(void *state, const char *user, chat_store_name_cb cb, void *user_data)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, user);
    chat__store_sink k = {.cb.name = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_CONTACTS, &p, "contacts", emit_name, &k);
}

/* ---- users, revoked sessions, meta ---- */

int chat__pg_user_get(void *state, const char *name, chat_store_user *out)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_text(&p, name);
    PGresult *r;
    int rc = chat__pg_fetch(s, CHAT__PG_USER_GET, &p, &r, "user_get");
    if (rc != CHAT_OK)
        return rc;
    chat__pg_col_copy(r, 0, 0, out->name, sizeof out->name);
    chat__pg_col_copy(r, 0, 1, out->pwhash, sizeof out->pwhash);
    out->hide_last_seen = (int)chat__pg_col_i64(r, 0, 2);
    out->last_seen_ms = chat__pg_col_i64(r, 0, 3);
    out->created_ms = chat__pg_col_i64(r, 0, 4);
    PQclear(r);
    return CHAT_OK;
}

int chat__pg_user_put(void *state, const chat_store_user *u)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, u->name);
    chat__pg_text(&p, u->pwhash);
    chat__pg_i64(&p, u->hide_last_seen);
    chat__pg_i64(&p, u->last_seen_ms);
    chat__pg_i64(&p, u->created_ms);
    return chat__pg_exec(state, CHAT__PG_USER_PUT, &p, "user_put");
}

int chat__pg_revoked_put(void *state, const char *session_id, int64_t exp_ms)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, session_id);
    chat__pg_i64(&p, exp_ms);
    return chat__pg_exec(state, CHAT__PG_REVOKED_PUT, &p, "revoked_put");
}

int chat__pg_revoked_list(void *state, int64_t now_ms,
                          int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                          void *user_data)
{
    chat__pg_params p = {0};
    chat__pg_i64(&p, now_ms);
    chat__store_sink k = {.cb.revoked = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_REVOKED_LIST, &p, "revoked_list", emit_revoked, &k);
}

int chat__pg_meta_get(void *state, const char *key, int64_t *value)
{
    chat__pg *s = state;
    /* The inbox change counter: read without a lock (pg_change.c). */
    if (s->in_tx && strcmp(key, CHAT_STORE_CHANGE_KEY) == 0)
        return chat__pg_change_get(s, value);
    chat__pg_params p = {0};
    chat__pg_text(&p, key);
    int rc;
    /* Other keys: in a transaction, lock the key first, in a statement of its own: a read in the same
     * statement would use a snapshot taken before the lock was granted. */
    if (s->in_tx && (rc = chat__pg_exec(s, CHAT__PG_LOCK_KEY, &p, "meta_get")) != CHAT_OK)
        return rc;
    PGresult *r;
    if ((rc = chat__pg_fetch(s, CHAT__PG_META_GET, &p, &r, "meta_get")) != CHAT_OK)
        return rc;
    *value = chat__pg_col_i64(r, 0, 0);
    PQclear(r);
    return CHAT_OK;
}

int chat__pg_meta_set(void *state, const char *key, int64_t value)
{
    chat__pg *s = state;
    /* The inbox change counter after the transaction read it: added, its rows renumbered. */
    if (s->in_tx && s->change.armed && strcmp(key, CHAT_STORE_CHANGE_KEY) == 0)
        return chat__pg_change_set(s, value);
    chat__pg_params p = {0};
    chat__pg_text(&p, key);
    chat__pg_i64(&p, value);
    return chat__pg_exec(state, CHAT__PG_META_SET, &p, "meta_set");
}

/* ---- media ---- */

int chat__pg_media_put(void *state, const chat_store_media *m)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_text(&p, m->id);
    chat__pg_text(&p, m->uploader);
    chat__pg_text(&p, m->mime);
    chat__pg_text(&p, m->name);
    chat__pg_u64(&p, m->size);
    chat__pg_i64(&p, m->created_ms);
    PGresult *r;
    int rc = chat__pg_query(s, CHAT__PG_MEDIA_PUT, &p, &r, "media_put");
    if (rc != CHAT_OK)
        return rc;
    int inserted = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    return inserted ? CHAT_OK
                    : chat__error_set(CHAT_EEXISTS, 0, "postgres store: media_put: %s exists",
                                      m->id);
}

int chat__pg_media_get(void *state, const char *id, chat_store_media *out)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_text(&p, id);
    PGresult *r;
    int rc = chat__pg_fetch(s, CHAT__PG_MEDIA_GET, &p, &r, "media_get");
    if (rc != CHAT_OK)
        return rc;
    memset(out, 0, sizeof *out);
    chat__pg_col_copy(r, 0, 0, out->id, sizeof out->id);
    chat__pg_col_copy(r, 0, 1, out->uploader, sizeof out->uploader);
    chat__pg_col_copy(r, 0, 2, out->mime, sizeof out->mime);
    chat__pg_col_copy(r, 0, 3, out->name, sizeof out->name);
    out->size = (uint64_t)chat__pg_col_i64(r, 0, 4);
    out->created_ms = chat__pg_col_i64(r, 0, 5);
    PQclear(r);
    return CHAT_OK;
}

int chat__pg_media_grant(void *state, const char *id, int64_t conv, const char *user)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, id);
    chat__pg_i64(&p, conv);
    chat__pg_text(&p, user);
    return chat__pg_exec(state, CHAT__PG_MEDIA_GRANT, &p, "media_grant");
}

int chat__pg_media_grants(void *state, const char *id, chat_store_grant_cb cb, void *user_data)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, id);
    chat__store_sink k = {.cb.grant = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_MEDIA_GRANTS, &p, "media_grants", emit_grant, &k);
}
