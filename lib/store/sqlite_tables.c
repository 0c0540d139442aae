/* Row methods of the SQLite store. Each binds its prepared statement, steps it and resets it
 * before returning, so no statement keeps a read snapshot open between calls.
 *
 * Arguments are not checked here: the store is used through the checking layer
 * (store/checked.h), which validates them (store/check.h: strings bounded, counters at most
 * INT64_MAX so they bind as SQLite integers) and refuses every call but the point reads
 * (conv_get, member_get, ...) from inside a row callback, so no iterator or writer resets a
 * statement that is still stepping or changes rows under it. */
#include "store/check.h"
#include "store/sqlite_fts.h"
#include "store/sqlite_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <string.h>

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    /* STATIC is safe: every statement is reset (dropping the binding) before we return. */
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    sqlite3_bind_int64(st, i, (sqlite3_int64)v); /* checked <= INT64_MAX by the caller */
}

static void col_copy(sqlite3_stmt *st, int i, char *dst, size_t size)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    chat__store_copy(dst, size, v, v ? (size_t)sqlite3_column_bytes(st, i) : 0);
}

static const char *col_str(sqlite3_stmt *st, int i)
{
    const char *v = (const char *)sqlite3_column_text(st, i);
    return v ? v : "";
}

static void read_conv(sqlite3_stmt *st, chat_store_conv *c)
{
    c->id = sqlite3_column_int64(st, 0);
    c->kind = sqlite3_column_int(st, 1);
    col_copy(st, 2, c->title, sizeof c->title);
    col_copy(st, 3, c->dm_key, sizeof c->dm_key);
    c->head_seq = (uint64_t)sqlite3_column_int64(st, 4);
    c->change = (uint64_t)sqlite3_column_int64(st, 5);
    c->created_ms = sqlite3_column_int64(st, 6);
    c->member_count = sqlite3_column_int(st, 7);
    c->msg_ttl_ms = sqlite3_column_int64(st, 8);
}

static void read_member(sqlite3_stmt *st, chat_store_member *m)
{
    m->conv = sqlite3_column_int64(st, 0);
    col_copy(st, 1, m->user, sizeof m->user);
    m->role = sqlite3_column_int(st, 2);
    m->delivered_seq = (uint64_t)sqlite3_column_int64(st, 3);
    m->read_seq = (uint64_t)sqlite3_column_int64(st, 4);
    m->delivered_ms = sqlite3_column_int64(st, 5);
    m->read_ms = sqlite3_column_int64(st, 6);
    m->joined_seq = (uint64_t)sqlite3_column_int64(st, 7);
    m->change = (uint64_t)sqlite3_column_int64(st, 8);
}

void chat__sqlite_read_msg(sqlite3_stmt *st, chat_store_msg *m)
{
    m->conv = sqlite3_column_int64(st, 0);
    m->seq = (uint64_t)sqlite3_column_int64(st, 1);
    m->ts_ms = sqlite3_column_int64(st, 2);
    m->sender = col_str(st, 3);
    m->device = col_str(st, 4);
    m->cmid = col_str(st, 5);
    m->kind = sqlite3_column_int(st, 6);
    m->body = sqlite3_column_blob(st, 7);
    m->body_len = (size_t)sqlite3_column_bytes(st, 7);
    if (!m->body) /* an empty blob comes back as NULL */
        m->body = "";
    m->target_seq = (uint64_t)sqlite3_column_int64(st, 8);
    m->thread_seq = (uint64_t)sqlite3_column_int64(st, 9);
    m->edited_ms = sqlite3_column_int64(st, 10);
    m->expires_ms = sqlite3_column_int64(st, 11);
    m->flags = (unsigned int)sqlite3_column_int(st, 12);
}

/* Step a point query: CHAT_OK with the row ready (the caller reads, then resets), else the
 * statement is already reset. */
int chat__sqlite_fetch(chat__sqlite *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return CHAT_OK;
    int ret = rc == SQLITE_DONE
                  ? chat__error_set(CHAT_ENOTFOUND, 0, "sqlite store: %s: not found", what)
                  : chat__sqlite_fail(s->db, rc, what);
    chat__sqlite_reset(st);
    return ret;
}

int chat__sqlite_emit_msg(sqlite3_stmt *st, const chat__store_sink *k)
{
    chat_store_msg m;
    chat__sqlite_read_msg(st, &m);
    /* Decoded per row, not into a buffer of the store: a callback may call msg_get. */
    chat__store_reacts r;
    int rc = chat__store_reacts_decode(&r, &m, (const char *)sqlite3_column_text(st, 13),
                                       (size_t)sqlite3_column_bytes(st, 13));
    if (rc)
        return rc;
    rc = k->cb.msg(&m, k->user_data);
    chat__store_reacts_free(&r);
    return rc;
}

static int emit_member(sqlite3_stmt *st, const chat__store_sink *k)
{
    chat_store_member m;
    read_member(st, &m);
    return k->cb.member(&m, k->user_data);
}

static int emit_name(sqlite3_stmt *st, const chat__store_sink *k)
{
    return k->cb.name(col_str(st, 0), k->user_data);
}

static int emit_revoked(sqlite3_stmt *st, const chat__store_sink *k)
{
    return k->cb.revoked(col_str(st, 0), sqlite3_column_int64(st, 1), k->user_data);
}

static int emit_grant(sqlite3_stmt *st, const chat__store_sink *k)
{
    return k->cb.grant(sqlite3_column_int64(st, 0), col_str(st, 1), k->user_data);
}

static int emit_reg(sqlite3_stmt *st, const chat__store_sink *k)
{
    chat_store_push_reg r;
    memset(&r, 0, sizeof r);
    col_copy(st, 0, r.user, sizeof r.user);
    col_copy(st, 1, r.device, sizeof r.device);
    r.platform = sqlite3_column_int(st, 2);
    r.sandbox = sqlite3_column_int(st, 3);
    col_copy(st, 4, r.token, sizeof r.token);
    col_copy(st, 5, r.topic, sizeof r.topic);
    r.updated_ms = sqlite3_column_int64(st, 6);
    return k->cb.reg(&r, k->user_data);
}

/* Run a bound query and pass each row to emit; a non-zero callback result stops and is
 * returned as is. */
int chat__sqlite_each(chat__sqlite *s, sqlite3_stmt *st, const char *what,
                      chat__sqlite_emit_fn emit, const chat__store_sink *k)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int r = emit(st, k);
        if (r) {
            chat__sqlite_reset(st);
            return r;
        }
    }
    int ret = rc == SQLITE_DONE ? CHAT_OK : chat__sqlite_fail(s->db, rc, what);
    chat__sqlite_reset(st);
    return ret;
}

int chat__sqlite_conv_insert(void *state, chat_store_conv *conv)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_CONV_INSERT];
    sqlite3_bind_int(st, 1, conv->kind);
    bind_text(st, 2, conv->title);
    if (conv->dm_key[0]) /* groups store NULL, which UNIQUE never compares equal */
        bind_text(st, 3, conv->dm_key);
    bind_u64(st, 4, conv->head_seq);
    bind_u64(st, 5, conv->change);
    sqlite3_bind_int64(st, 6, conv->created_ms);
    sqlite3_bind_int(st, 7, conv->member_count);
    sqlite3_bind_int64(st, 8, conv->msg_ttl_ms);
    if ((rc = chat__sqlite_exec(s, st, "conv_insert")))
        return rc;
    conv->id = sqlite3_last_insert_rowid(s->db);
    return CHAT_OK;
}

int chat__sqlite_conv_get(void *state, int64_t id, chat_store_conv *out)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_CONV_GET];
    sqlite3_bind_int64(st, 1, id);
    int rc = chat__sqlite_fetch(s, st, "conv_get");
    if (rc)
        return rc;
    read_conv(st, out);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

int chat__sqlite_conv_find_direct(void *state, const char *dm_key, chat_store_conv *out)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_CONV_FIND];
    bind_text(st, 1, dm_key);
    if ((rc = chat__sqlite_fetch(s, st, "conv_find_direct")))
        return rc;
    read_conv(st, out);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

int chat__sqlite_conv_update(void *state, const chat_store_conv *conv)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_CONV_UPDATE];
    sqlite3_bind_int64(st, 1, conv->id);
    bind_text(st, 2, conv->title);
    bind_u64(st, 3, conv->head_seq);
    bind_u64(st, 4, conv->change);
    sqlite3_bind_int(st, 5, conv->member_count);
    sqlite3_bind_int64(st, 6, conv->msg_ttl_ms);
    if ((rc = chat__sqlite_exec(s, st, "conv_update")))
        return rc;
    if (sqlite3_changes(s->db) == 0)
        return chat__error_set(CHAT_ENOTFOUND, 0, "sqlite store: conv_update: no conv %lld",
                               (long long)conv->id);
    return CHAT_OK;
}

int chat__sqlite_member_get(void *state, int64_t conv, const char *user, chat_store_member *out)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_MEMBER_GET];
    sqlite3_bind_int64(st, 1, conv);
    bind_text(st, 2, user);
    if ((rc = chat__sqlite_fetch(s, st, "member_get")))
        return rc;
    read_member(st, out);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

static void bind_member(sqlite3_stmt *st, const chat_store_member *m)
{
    sqlite3_bind_int64(st, 1, m->conv);
    bind_text(st, 2, m->user);
    sqlite3_bind_int(st, 3, m->role);
    bind_u64(st, 4, m->delivered_seq);
    bind_u64(st, 5, m->read_seq);
    sqlite3_bind_int64(st, 6, m->delivered_ms);
    sqlite3_bind_int64(st, 7, m->read_ms);
    bind_u64(st, 8, m->joined_seq);
    bind_u64(st, 9, m->change);
}

int chat__sqlite_member_put(void *state, const chat_store_member *m)
{
    chat__sqlite *s = state;
    /* Most puts change a row that exists (a sender's receipts, with every message): an
     * UPDATE finds it with one b-tree search, where the upsert searches for the conflict
     * and again for its update. A new member is the insert. */
    sqlite3_stmt *st = s->st[CHAT__ST_MEMBER_SET];
    bind_member(st, m);
    int rc = chat__sqlite_exec(s, st, "member_put");
    if (rc != CHAT_OK || sqlite3_changes(s->db) > 0)
        return rc;
    st = s->st[CHAT__ST_MEMBER_PUT];
    bind_member(st, m);
    return chat__sqlite_exec(s, st, "member_put");
}

int chat__sqlite_member_list(void *state, int64_t conv, int only_active, chat_store_member_cb cb,
                             void *user_data)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[only_active ? CHAT__ST_MEMBER_LIST_ACTIVE : CHAT__ST_MEMBER_LIST];
    sqlite3_bind_int64(st, 1, conv);
    chat__store_sink k = {.cb.member = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "member_list", emit_member, &k);
}

int chat__sqlite_msg_insert(void *state, const chat_store_msg *msg)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_INSERT];
    sqlite3_bind_int64(st, 1, msg->conv);
    bind_u64(st, 2, msg->seq);
    sqlite3_bind_int64(st, 3, msg->ts_ms);
    bind_text(st, 4, msg->sender);
    bind_text(st, 5, msg->device);
    const char *cmid = chat__store_cmid(msg);
    if (cmid) /* no client id: NULL, which the dedupe index never matches */
        bind_text(st, 6, cmid);
    sqlite3_bind_int(st, 7, msg->kind);
    /* A NULL pointer would bind SQL NULL; an empty body is an empty blob. */
    int brc = sqlite3_bind_blob64(st, 8, msg->body_len ? msg->body : "", msg->body_len,
                                  SQLITE_STATIC);
    if (brc != SQLITE_OK) {
        chat__sqlite_reset(st);
        return chat__sqlite_fail(s->db, brc, "msg_insert body");
    }
    bind_u64(st, 9, msg->target_seq);
    bind_u64(st, 10, msg->thread_seq);
    sqlite3_bind_int64(st, 11, msg->edited_ms);
    sqlite3_bind_int64(st, 12, msg->expires_ms);
    sqlite3_bind_int(st, 13, (int)msg->flags);
    /* The row names its search document before the document exists: the insert is also the
     * duplicate check, and a refused one must leave no document behind. */
    size_t len;
    char *owned;
    const char *doc = msg->flags & CHAT_STORE_MSG_ERASED
                          ? NULL
                          : chat__fts_doc(msg->kind, msg->body, msg->body_len, &len, &owned);
    int64_t sid = doc ? s->next_sid : 0;
    sqlite3_bind_int64(st, 14, sid);
    int rc = chat__sqlite_exec(s, st, "msg_insert");
    if (rc == CHAT_OK && doc && (rc = chat__sqlite_index(s, sid, msg->conv, msg->seq, doc, len)) ==
                                    CHAT_OK)
        s->next_sid++;
    if (doc)
        chat__free(owned);
    return rc;
}

int chat__sqlite_msg_find_cmid(void *state, int64_t conv, const char *sender, const char *device,
                               const char *cmid, chat_store_msg_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_MSG_CMID];
    sqlite3_bind_int64(st, 1, conv);
    bind_text(st, 2, sender);
    bind_text(st, 3, device);
    bind_text(st, 4, cmid);
    if ((rc = chat__sqlite_fetch(s, st, "msg_find_cmid")))
        return rc;
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    rc = chat__sqlite_emit_msg(st, &k);
    chat__sqlite_reset(st);
    return rc;
}

int chat__sqlite_msg_range(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                           int limit, int descending, chat_store_msg_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    /* Seqs are at most INT64_MAX; the upper bound becomes inclusive so INT64_MAX fits. */
    uint64_t upper = before_seq == 0 || before_seq > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX
                                                                         : before_seq - 1;
    if (limit == 0 || after_seq >= upper)
        return CHAT_OK;
    sqlite3_stmt *st = s->st[descending ? CHAT__ST_MSG_RANGE_DESC : CHAT__ST_MSG_RANGE_ASC];
    sqlite3_bind_int64(st, 1, conv);
    bind_u64(st, 2, after_seq);
    bind_u64(st, 3, upper);
    sqlite3_bind_int(st, 4, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "msg_range", chat__sqlite_emit_msg, &k);
}

int chat__sqlite_user_convs(void *state, const char *user, uint64_t since_change, int limit,
                            chat_store_member_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    if (limit == 0 || since_change >= (uint64_t)INT64_MAX)
        return CHAT_OK;
    sqlite3_stmt *st = s->st[CHAT__ST_USER_CONVS];
    bind_text(st, 1, user);
    bind_u64(st, 2, since_change);
    sqlite3_bind_int(st, 3, limit);
    chat__store_sink k = {.cb.member = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "user_convs", emit_member, &k);
}

int chat__sqlite_contacts(void *state, const char *user, chat_store_name_cb cb, void *user_data)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_CONTACTS];
    bind_text(st, 1, user);
    chat__store_sink k = {.cb.name = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "contacts", emit_name, &k);
}

int chat__sqlite_user_get(void *state, const char *name, chat_store_user *out)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_USER_GET];
    bind_text(st, 1, name);
    if ((rc = chat__sqlite_fetch(s, st, "user_get")))
        return rc;
    col_copy(st, 0, out->name, sizeof out->name);
    col_copy(st, 1, out->pwhash, sizeof out->pwhash);
    out->hide_last_seen = sqlite3_column_int(st, 2);
    out->last_seen_ms = sqlite3_column_int64(st, 3);
    out->created_ms = sqlite3_column_int64(st, 4);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

int chat__sqlite_user_put(void *state, const chat_store_user *u)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_USER_PUT];
    bind_text(st, 1, u->name);
    bind_text(st, 2, u->pwhash);
    sqlite3_bind_int(st, 3, u->hide_last_seen);
    sqlite3_bind_int64(st, 4, u->last_seen_ms);
    sqlite3_bind_int64(st, 5, u->created_ms);
    return chat__sqlite_exec(s, st, "user_put");
}

int chat__sqlite_revoked_put(void *state, const char *session_id, int64_t exp_ms)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_REVOKED_PUT];
    bind_text(st, 1, session_id);
    sqlite3_bind_int64(st, 2, exp_ms);
    return chat__sqlite_exec(s, st, "revoked_put");
}

int chat__sqlite_revoked_list(void *state, int64_t now_ms,
                              int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                              void *user_data)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_REVOKED_LIST];
    sqlite3_bind_int64(st, 1, now_ms);
    chat__store_sink k = {.cb.revoked = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "revoked_list", emit_revoked, &k);
}

int chat__sqlite_meta_get(void *state, const char *key, int64_t *value)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_META_GET];
    bind_text(st, 1, key);
    if ((rc = chat__sqlite_fetch(s, st, "meta_get")))
        return rc;
    *value = sqlite3_column_int64(st, 0);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

int chat__sqlite_meta_set(void *state, const char *key, int64_t value)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_META_SET];
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, value);
    return chat__sqlite_exec(s, st, "meta_set");
}

int chat__sqlite_media_put(void *state, const chat_store_media *m)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MEDIA_PUT];
    bind_text(st, 1, m->id);
    bind_text(st, 2, m->uploader);
    bind_text(st, 3, m->mime);
    bind_text(st, 4, m->name);
    bind_u64(st, 5, m->size);
    sqlite3_bind_int64(st, 6, m->created_ms);
    return chat__sqlite_exec(s, st, "media_put");
}

int chat__sqlite_media_get(void *state, const char *id, chat_store_media *out)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_MEDIA_GET];
    bind_text(st, 1, id);
    if ((rc = chat__sqlite_fetch(s, st, "media_get")))
        return rc;
    memset(out, 0, sizeof *out);
    col_copy(st, 0, out->id, sizeof out->id);
    col_copy(st, 1, out->uploader, sizeof out->uploader);
    col_copy(st, 2, out->mime, sizeof out->mime);
    col_copy(st, 3, out->name, sizeof out->name);
    out->size = (uint64_t)sqlite3_column_int64(st, 4);
    out->created_ms = sqlite3_column_int64(st, 5);
    chat__sqlite_reset(st);
    return CHAT_OK;
}

int chat__sqlite_media_grant(void *state, const char *id, int64_t conv, const char *user)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MEDIA_GRANT];
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, conv);
    bind_text(st, 3, user);
    return chat__sqlite_exec(s, st, "media_grant");
}

int chat__sqlite_media_grants(void *state, const char *id, chat_store_grant_cb cb,
                              void *user_data)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_MEDIA_GRANTS];
    bind_text(st, 1, id);
    chat__store_sink k = {.cb.grant = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "media_grants", emit_grant, &k);
}

int chat__sqlite_push_reg_put(void *state, const chat_store_push_reg *reg)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_PUSH_REG_PUT];
    bind_text(st, 1, reg->user);
    bind_text(st, 2, reg->device);
    sqlite3_bind_int(st, 3, reg->platform);
    sqlite3_bind_int(st, 4, reg->sandbox);
    bind_text(st, 5, reg->token);
    bind_text(st, 6, reg->topic);
    sqlite3_bind_int64(st, 7, reg->updated_ms);
    return chat__sqlite_exec(s, st, "push_reg_put");
}

int chat__sqlite_push_reg_del(void *state, const char *user, const char *device)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_PUSH_REG_DEL];
    bind_text(st, 1, user);
    bind_text(st, 2, device);
    int rc = chat__sqlite_exec(s, st, "push_reg_del");
    if (rc == CHAT_OK && sqlite3_changes(s->db) == 0)
        return chat__error_set(CHAT_ENOTFOUND, 0, "sqlite store: push_reg_del: not found");
    return rc;
}

int chat__sqlite_push_reg_del_token(void *state, int platform, const char *token)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_PUSH_REG_DEL_TOKEN];
    bind_text(st, 1, token);
    sqlite3_bind_int(st, 2, platform);
    return chat__sqlite_exec(s, st, "push_reg_del_token");
}

int chat__sqlite_push_reg_list(void *state, const char *user, chat_store_push_reg_cb cb,
                               void *user_data)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[CHAT__ST_PUSH_REG_LIST];
    bind_text(st, 1, user);
    chat__store_sink k = {.cb.reg = cb, .user_data = user_data};
    return chat__sqlite_each(s, st, "push_reg_list", emit_reg, &k);
}

int chat__sqlite_push_mute_put(void *state, const char *user, int64_t conv, int64_t until_ms)
{
    chat__sqlite *s = state;
    sqlite3_stmt *st = s->st[until_ms ? CHAT__ST_PUSH_MUTE_PUT : CHAT__ST_PUSH_MUTE_DEL];
    bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, conv);
    if (until_ms)
        sqlite3_bind_int64(st, 3, until_ms);
    return chat__sqlite_exec(s, st, "push_mute_put");
}

int chat__sqlite_push_mute_get(void *state, const char *user, int64_t conv, int64_t *until_ms)
{
    chat__sqlite *s = state;
    int rc;
    sqlite3_stmt *st = s->st[CHAT__ST_PUSH_MUTE_GET];
    bind_text(st, 1, user);
    sqlite3_bind_int64(st, 2, conv);
    if ((rc = chat__sqlite_fetch(s, st, "push_mute_get")))
        return rc;
    *until_ms = sqlite3_column_int64(st, 0);
    chat__sqlite_reset(st);
    return CHAT_OK;
}
