/* Row methods of the PostgreSQL store, version 5: the message lifecycle, reactions, search,
 * account deletion and media references. As in pg_tables.c: reads are one round trip, writes
 * that only succeed or fail are deferred in a transaction, arguments were checked by the
 * checking layer. */
#include "store/check.h"
#include "store/pg_internal.h"
#include "store/sqlite_fts.h"

#include "core/alloc.h"
#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static uint64_t upper_of(uint64_t before_seq)
{
    return before_seq == 0 || before_seq > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX
                                                               : before_seq - 1;
}

char *chat__pg_words(const char *text, size_t len)
{
    char *out = chat__malloc(len + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        int punct = (ch >= '!' && ch <= '/') || (ch >= ':' && ch <= '@') ||
                    (ch >= '[' && ch <= '`') || (ch >= '{' && ch <= '~') || ch < ' ';
        out[i] = punct ? ' ' : (char)ch;
    }
    out[len] = '\0';
    return out;
}

/* A statement's rows count as changed ("1"), or not ("0"). */
static int changed(const PGresult *r)
{
    return strcmp(PQcmdTuples((PGresult *)r), "0") != 0;
}

int chat__pg_msg_get(void *state, int64_t conv, uint64_t seq, chat_store_msg_cb cb,
                     void *user_data)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_u64(&p, seq);
    PGresult *r;
    int rc = chat__pg_fetch(s, CHAT__PG_MSG_GET, &p, &r, "msg_get");
    if (rc != CHAT_OK)
        return rc;
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    rc = chat__pg_emit_msg(r, 0, &k);
    PQclear(r);
    return rc;
}

int chat__pg_msg_update(void *state, const chat_store_msg *m)
{
    chat__pg *s = state;
    size_t len;
    char *owned, *words = NULL;
    const char *doc = m->flags & CHAT_STORE_MSG_ERASED
                          ? NULL
                          : chat__fts_doc(m->kind, m->body, m->body_len, &len, &owned);
    if (doc) {
        words = chat__pg_words(doc, len);
        chat__free(owned);
        if (!words)
            return chat__error_set(CHAT_ENOMEM, 0, "postgres store: out of memory");
    }
    chat__pg_params p = {0};
    chat__pg_i64(&p, m->conv);
    chat__pg_u64(&p, m->seq);
    chat__pg_i64(&p, m->kind);
    chat__pg_bytes(&p, m->body, m->body_len);
    chat__pg_i64(&p, m->flags);
    chat__pg_i64(&p, m->edited_ms);
    chat__pg_i64(&p, m->expires_ms);
    chat__pg_text(&p, words);
    PGresult *r;
    int rc = chat__pg_query(s, CHAT__PG_MSG_UPDATE, &p, &r, "msg_update");
    chat__free(words);
    if (rc != CHAT_OK)
        return rc;
    int found = changed(r);
    PQclear(r);
    return found ? CHAT_OK
                 : chat__error_set(CHAT_ENOTFOUND, 0, "postgres store: msg_update: no message %"
                                   PRIu64 " in conv %" PRId64, m->seq, m->conv);
}

int chat__pg_msg_related(void *state, int64_t conv, uint64_t target_seq, int kind,
                         chat_store_msg_cb cb, void *user_data)
{
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_u64(&p, target_seq);
    chat__pg_i64(&p, kind);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_MSG_RELATED, &p, "msg_related", chat__pg_emit_msg, &k);
}

int chat__pg_msg_thread(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                        uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                        void *user_data)
{
    uint64_t upper = upper_of(before_seq);
    if (limit == 0 || after_seq >= upper || thread_seq == 0)
        return CHAT_OK;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_u64(&p, thread_seq);
    chat__pg_u64(&p, after_seq);
    chat__pg_u64(&p, upper);
    chat__pg_i64(&p, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__pg_each(state, descending ? CHAT__PG_MSG_THREAD_DESC : CHAT__PG_MSG_THREAD_ASC,
                         &p, "msg_thread", chat__pg_emit_msg, &k);
}

int chat__pg_msg_count(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                       uint64_t upto_seq, uint64_t *out)
{
    chat__pg *s = state;
    *out = 0;
    if (after_seq >= upto_seq)
        return CHAT_OK;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_u64(&p, thread_seq);
    chat__pg_u64(&p, after_seq);
    chat__pg_u64(&p, upto_seq);
    PGresult *r;
    int rc = chat__pg_fetch(s, CHAT__PG_MSG_COUNT, &p, &r, "msg_count");
    if (rc != CHAT_OK)
        return rc;
    *out = (uint64_t)chat__pg_col_i64(r, 0, 0);
    PQclear(r);
    return CHAT_OK;
}

int chat__pg_msg_expired(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                         void *user_data)
{
    if (limit == 0 || now_ms <= 0)
        return CHAT_OK;
    chat__pg_params p = {0};
    chat__pg_i64(&p, now_ms);
    chat__pg_i64(&p, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_MSG_EXPIRED, &p, "msg_expired", chat__pg_emit_msg, &k);
}

int chat__pg_msg_by_sender(void *state, int64_t conv, const char *sender, uint64_t after_seq,
                           int limit, chat_store_msg_cb cb, void *user_data)
{
    if (limit == 0)
        return CHAT_OK;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_text(&p, sender);
    chat__pg_u64(&p, after_seq);
    chat__pg_i64(&p, limit);
    chat__store_sink k = {.cb.msg = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_MSG_BY_SENDER, &p, "msg_by_sender", chat__pg_emit_msg,
                         &k);
}

/* An array literal of n integers, "{1,2,3}" (from chat__malloc). */
static char *int_array(const int64_t *a, const uint64_t *u, size_t n)
{
    char *out = chat__malloc(2 + n * 21);
    if (!out)
        return NULL;
    size_t len = 0;
    out[len++] = '{';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(out + len, "%s%lld", i ? "," : "",
                               a ? (long long)a[i] : (long long)u[i]);
    out[len++] = '}';
    out[len] = '\0';
    return out;
}

int chat__pg_msg_search(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                        void *user_data)
{
    chat__pg *s = state;
    if (q->limit == 0 || q->n_convs == 0)
        return CHAT_OK;
    char *convs = int_array(q->convs, NULL, q->n_convs);
    char *after = int_array(NULL, q->after, q->n_convs);
    char *words = chat__pg_words(q->text, strlen(q->text));
    int rc = CHAT_OK;
    if (!convs || !after || !words) {
        rc = chat__error_set(CHAT_ENOMEM, 0, "postgres store: out of memory");
        goto out;
    }
    chat__pg_params p = {0};
    chat__pg_text(&p, convs);
    chat__pg_text(&p, after);
    chat__pg_text(&p, words);
    chat__pg_u64(&p, q->before && q->before <= (uint64_t)INT64_MAX ? q->before
                                                                     : (uint64_t)INT64_MAX);
    chat__pg_i64(&p, q->limit);
    PGresult *r;
    if ((rc = chat__pg_query(s, CHAT__PG_SEARCH, &p, &r, "msg_search")) != CHAT_OK)
        goto out;
    int n = PQntuples(r);
    for (int i = 0; i < n && rc == CHAT_OK; i++) {
        chat_store_msg m;
        chat__store_reacts x;
        /* The message columns, its reactions, then its sid: the cursor. */
        chat__pg_read_msg(r, i, &m);
        if ((rc = chat__pg_read_reacts(r, i, &m, &x)) != CHAT_OK)
            break;
        rc = cb(&m, (uint64_t)chat__pg_col_i64(r, i, 14), user_data);
        chat__store_reacts_free(&x);
    }
    PQclear(r);
out:
    chat__free(convs);
    chat__free(after);
    chat__free(words);
    return rc;
}

/* ---- reactions ---- */

int chat__pg_reaction_set(void *state, const chat_store_reaction *rx, int on)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_i64(&p, rx->conv);
    chat__pg_u64(&p, rx->seq);
    chat__pg_text(&p, rx->emoji);
    chat__pg_text(&p, rx->user);
    if (on)
        chat__pg_i64(&p, rx->ts_ms);
    PGresult *r;
    int rc = chat__pg_query(s, on ? CHAT__PG_REACT_PUT : CHAT__PG_REACT_DEL, &p, &r,
                            "reaction_set");
    if (rc != CHAT_OK)
        return rc;
    int did = changed(r);
    PQclear(r);
    if (did)
        return CHAT_OK;
    return on ? chat__error_set(CHAT_EEXISTS, 0, "postgres store: reaction_set: already on")
              : chat__error_set(CHAT_ENOTFOUND, 0, "postgres store: reaction_set: not on");
}

static int emit_reaction(const PGresult *r, int i, const chat__store_sink *k)
{
    chat_store_reaction x;
    memset(&x, 0, sizeof x);
    x.conv = chat__pg_col_i64(r, i, 0);
    x.seq = (uint64_t)chat__pg_col_i64(r, i, 1);
    chat__pg_col_copy(r, i, 2, x.user, sizeof x.user);
    chat__pg_col_copy(r, i, 3, x.emoji, sizeof x.emoji);
    x.ts_ms = chat__pg_col_i64(r, i, 4);
    return k->cb.reaction(&x, k->user_data);
}

int chat__pg_reaction_list(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                           chat_store_reaction_cb cb, void *user_data)
{
    uint64_t upper = upper_of(before_seq);
    if (after_seq >= upper)
        return CHAT_OK;
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_u64(&p, after_seq);
    chat__pg_u64(&p, upper);
    chat__store_sink k = {.cb.reaction = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_REACT_LIST, &p, "reaction_list", emit_reaction, &k);
}

int chat__pg_reaction_clear(void *state, int64_t conv, uint64_t seq, const char *user)
{
    chat__pg_params p = {0};
    chat__pg_i64(&p, conv);
    chat__pg_u64(&p, seq);
    chat__pg_text(&p, user);
    return chat__pg_exec(state, CHAT__PG_REACT_CLEAR, &p, "reaction_clear");
}

/* ---- accounts ---- */

int chat__pg_user_delete(void *state, const char *name, int64_t deleted_ms)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, name);
    int rc = chat__pg_exec(state, CHAT__PG_USER_DEL, &p, "user_delete");
    if (rc != CHAT_OK)
        return rc;
    chat__pg_i64(&p, deleted_ms);
    return chat__pg_exec(state, CHAT__PG_DELETED_PUT, &p, "user_delete");
}

static int emit_deleted(const PGresult *r, int i, const chat__store_sink *k)
{
    return k->cb.deleted(chat__pg_col_str(r, i, 0), chat__pg_col_i64(r, i, 1), k->user_data);
}

int chat__pg_user_deleted(void *state, chat_store_deleted_cb cb, void *user_data)
{
    chat__store_sink k = {.cb.deleted = cb, .user_data = user_data};
    return chat__pg_each(state, CHAT__PG_DELETED_LIST, NULL, "user_deleted", emit_deleted, &k);
}

/* ---- media references ---- */

int chat__pg_media_refs(void *state, const char *id, int delta, int64_t *refs_out)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_text(&p, id);
    chat__pg_i64(&p, delta);
    PGresult *r;
    int rc = chat__pg_fetch(s, CHAT__PG_MEDIA_REFS, &p, &r, "media_refs");
    if (rc != CHAT_OK)
        return rc;
    if (refs_out)
        *refs_out = chat__pg_col_i64(r, 0, 0);
    PQclear(r);
    return CHAT_OK;
}

int chat__pg_media_delete(void *state, const char *id)
{
    chat__pg *s = state;
    chat__pg_params p = {0};
    chat__pg_text(&p, id);
    PGresult *r;
    int rc = chat__pg_query(s, CHAT__PG_MEDIA_DEL, &p, &r, "media_delete");
    if (rc != CHAT_OK)
        return rc;
    int found = changed(r);
    PQclear(r);
    if (!found)
        return chat__error_set(CHAT_ENOTFOUND, 0, "postgres store: media_delete: no media %s",
                               id);
    return chat__pg_exec(s, CHAT__PG_GRANTS_DEL, &p, "media_delete");
}
