/* The message lifecycle in the client's cache: the changes the server sends (edits, deletes
 * for everyone, reactions, account deletions, expiries) applied to the cached messages they
 * name, so the cache always shows the current state; tombstones that keep a message's seq
 * (the cache's contiguity) with its text gone; local expiry by each message's "expires"; and
 * the local search index (FTS5 over hashed words, lib/store/sqlite_fts.h), which follows every
 * change. The caller holds the cache's lock (cache_internal.h). */
#include "client/cache_internal.h"
#include "client/lists.h"

#include "chat/client.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/error.h"
#include "core/json.h"
#include "store/sqlite_fts.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* ---- schema and the search index ---- */

static const char *const schema_v4 =
    "ALTER TABLE messages ADD COLUMN target INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN thread INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN edited INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN expires INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX IF NOT EXISTS messages_expiry ON messages(expires)"
    " WHERE expires > 0 AND flags = 0;"
    "CREATE TABLE IF NOT EXISTS reactions(conv INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " emoji TEXT NOT NULL, user TEXT NOT NULL, ts INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(conv, seq, emoji, user)) WITHOUT ROWID;"
    "ALTER TABLE convs ADD COLUMN unread INTEGER NOT NULL DEFAULT 0;"
    "UPDATE convs SET unread = max(head - read, 0);"
    "ALTER TABLE outbox ADD COLUMN reply INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE outbox ADD COLUMN thread INTEGER NOT NULL DEFAULT 0;"
    "INSERT OR REPLACE INTO meta(key, value) VALUES('fts_key', hex(randomblob(16)));"
    "CREATE VIRTUAL TABLE IF NOT EXISTS msg_fts USING fts5(t, content='', tokenize='chat');";

/* What a cached message gives the index: its text, or a media message's file name. */
static const char *row_doc(int kind, const char *text, size_t len, const char *json,
                           size_t *dlen, char **owned)
{
    *owned = NULL;
    *dlen = 0;
    if (kind == CHAT_MSG_TEXT) {
        *dlen = len;
        return len ? text : NULL;
    }
    if (kind != CHAT_MSG_MEDIA || !json)
        return NULL;
    cJSON *o = cJSON_Parse(json);
    const cJSON *media = cJSON_GetObjectItemCaseSensitive(o, "media");
    char *m = media ? cJSON_PrintUnformatted(media) : NULL;
    cJSON_Delete(o);
    if (!m)
        return NULL;
    const char *doc = chat__fts_doc(CHAT_MSG_MEDIA, m, strlen(m), dlen, owned);
    cJSON_free(m);
    return doc;
}

static int fts_write(chat__cache *c, int del, int64_t rowid, int kind, const char *text,
                     size_t len, const char *json)
{
    size_t dlen;
    char *owned;
    const char *doc = row_doc(kind, text, len, json, &dlen, &owned);
    if (!doc)
        return CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(
        c, del ? "INSERT INTO msg_fts(msg_fts, rowid, t) VALUES('delete', ?, ?)"
               : "INSERT INTO msg_fts(rowid, t) VALUES(?, ?)");
    int r = st ? CHAT_OK : CHAT_EIO;
    if (st) {
        sqlite3_bind_int64(st, 1, rowid);
        sqlite3_bind_text(st, 2, doc, (int)dlen, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "search index");
    }
    chat__cache_done(c, st);
    chat__free(owned);
    return r;
}

int chat__cache_index(chat__cache *c, int64_t rowid, int kind, const char *text, size_t len,
                      const char *json)
{
    return fts_write(c, 0, rowid, kind, text, len, json);
}

int chat__cache_unindex(chat__cache *c, int64_t rowid, int kind, const char *text, size_t len,
                        const char *json)
{
    return fts_write(c, 1, rowid, kind, text, len, json);
}

static int load_key(chat__cache *c)
{
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT value FROM meta WHERE key='fts_key'");
    int r = CHAT_EIO;
    unsigned char key[CHAT__FTS_KEY_BYTES];
    if (st && sqlite3_step(st) == SQLITE_ROW) {
        const char *hex = (const char *)sqlite3_column_text(st, 0);
        size_t got = 0;
        if (hex && sodium_hex2bin(key, sizeof key, hex, strlen(hex), NULL, &got, NULL) == 0 &&
            got == sizeof key) {
            chat__fts_set_key(c->fts, key);
            r = CHAT_OK;
        }
    }
    chat__cache_done(c, st);
    sodium_memzero(key, sizeof key);
    return r == CHAT_OK ? r : chat__error_set(CHAT_EIO, 0, "cache: no search key");
}

/* Index the messages cached before the index existed. */
static int index_all(chat__cache *c)
{
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT rowid, kind, text, json FROM messages"
                                           " WHERE kind IN (1, 2)");
    int r = st ? CHAT_OK : CHAT_EIO;
    while (r == CHAT_OK && sqlite3_step(st) == SQLITE_ROW)
        r = chat__cache_index(c, sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1),
                              (const char *)sqlite3_column_text(st, 2),
                              (size_t)sqlite3_column_bytes(st, 2),
                              (const char *)sqlite3_column_text(st, 3));
    chat__cache_done(c, st);
    return r;
}

int chat__cache_life_open(chat__cache *c, int version)
{
    int r = CHAT_OK;
    if (version < 4)
        r = chat__cache_exec(c, schema_v4);
    if (r == CHAT_OK)
        r = load_key(c);
    if (r == CHAT_OK && version < 4)
        r = index_all(c);
    return r;
}

/* ---- applying changes ---- */

int chat__cache_counts(const cJSON *msg, int kind)
{
    int deleted = 0, expired = 0;
    chat__json_bool(msg, "deleted", &deleted);
    chat__json_bool(msg, "expired", &expired);
    return kind <= CHAT_MSG_EVENT && chat__cache_ju(msg, "thread") == 0 && !deleted && !expired;
}

typedef struct cached {
    int64_t rowid;
    int kind;
    char *text;
    size_t len;
    char *json;
    int64_t edited;
    int flags;
} cached;

static void cached_free(cached *m)
{
    chat__free(m->text);
    chat__free(m->json);
    memset(m, 0, sizeof *m);
}

/* The cached message (conv, seq): CHAT_OK, CHAT_ENOTFOUND. */
static int get_cached(chat__cache *c, chat_conv_id conv, uint64_t seq, cached *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT rowid, kind, text, json, edited, flags"
                                           " FROM messages WHERE conv=? AND seq=?");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    int r = CHAT_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->rowid = sqlite3_column_int64(st, 0);
        out->kind = sqlite3_column_int(st, 1);
        out->text = chat__cache_col_dup(st, 2);
        out->len = (size_t)sqlite3_column_bytes(st, 2);
        out->json = chat__cache_col_dup(st, 3);
        out->edited = sqlite3_column_int64(st, 4);
        out->flags = sqlite3_column_int(st, 5);
        r = out->text && out->json ? CHAT_OK : CHAT_ENOMEM;
    }
    chat__cache_done(c, st);
    if (r != CHAT_OK)
        cached_free(out);
    return r;
}

/* The frame json of a message, rewritten: its text replaced (text not NULL, with edited), or
 * made a tombstone (flag). From cJSON's allocator; NULL on failure. */
static char *rewrite_json(const char *json, const char *text, size_t len, int64_t edited,
                          int flag)
{
    cJSON *o = cJSON_Parse(json);
    if (!o)
        return NULL;
    if (flag) {
        cJSON_DeleteItemFromObjectCaseSensitive(o, "text");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "media");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "reactions");
        cJSON_DeleteItemFromObjectCaseSensitive(o, flag == CHAT__CACHE_DELETED ? "deleted"
                                                                             : "expired");
        cJSON_AddBoolToObject(o, flag == CHAT__CACHE_DELETED ? "deleted" : "expired", 1);
    } else {
        char *t = chat__strndup(text, len);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "text");
        cJSON_DeleteItemFromObjectCaseSensitive(o, "edited");
        cJSON_AddStringToObject(o, "text", t ? t : "");
        cJSON_AddNumberToObject(o, "edited", (double)edited);
        chat__free(t);
    }
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

static int update_row(chat__cache *c, int64_t rowid, const char *text, size_t len,
                      const char *json, int64_t edited, int flags)
{
    sqlite3_stmt *st = chat__cache_prep(c, "UPDATE messages SET text=?, json=?, edited=?,"
                                           " flags=? WHERE rowid=?");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, edited);
    sqlite3_bind_int(st, 4, flags);
    sqlite3_bind_int64(st, 5, rowid);
    int r = sqlite3_step(st) == SQLITE_DONE ? CHAT_OK : chat__cache_err(c, "message update");
    chat__cache_done(c, st);
    return r;
}

static int clear_reactions(chat__cache *c, chat_conv_id conv, uint64_t seq)
{
    sqlite3_stmt *st = chat__cache_prep(c, "DELETE FROM reactions WHERE conv=? AND seq=?");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    int r = sqlite3_step(st) == SQLITE_DONE ? CHAT_OK : chat__cache_err(c, "reactions");
    chat__cache_done(c, st);
    return r;
}

/* Whether the cached message (conv, seq), not erased yet, counts in my unread now. */
static int unread_now(chat__cache *c, chat_conv_id conv, uint64_t seq)
{
    sqlite3_stmt *st = chat__cache_prep(
        c, "SELECT count(*) FROM messages m JOIN convs v ON v.conv = m.conv"
           " WHERE m.conv=?1 AND m.seq=?2 AND m.seq > v.read AND m.thread=0 AND m.kind<=3"
           " AND m.flags=0 AND m.sender <> coalesce((SELECT value FROM meta"
           " WHERE key='user'), '')");
    int n = 0;
    if (st) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int(st, 0);
    }
    chat__cache_done(c, st);
    return n;
}

/* Erase a cached message's text, media and reactions, keeping its row (its seq). 1 when it
 * was cached and not erased yet, 0 when not, negative on failure. */
static int tombstone(chat__cache *c, chat_conv_id conv, uint64_t seq, int flag)
{
    cached m;
    int r = get_cached(c, conv, seq, &m);
    if (r == CHAT_ENOTFOUND)
        return 0;
    if (r != CHAT_OK)
        return r;
    int did = 0;
    if (!m.flags) {
        char *js = rewrite_json(m.json, NULL, 0, 0, flag);
        r = js ? chat__cache_unindex(c, m.rowid, m.kind, m.text, m.len, m.json) : CHAT_ENOMEM;
        if (r == CHAT_OK)
            r = update_row(c, m.rowid, "", 0, js, m.edited, flag);
        if (r == CHAT_OK)
            r = clear_reactions(c, conv, seq);
        cJSON_free(js);
        did = r == CHAT_OK;
    }
    cached_free(&m);
    return r == CHAT_OK ? did : r;
}

/* A message expires now: tombstoned, and no longer counted unread. */
static int expire_now(chat__cache *c, chat_conv_id conv, uint64_t seq)
{
    int n = unread_now(c, conv, seq);
    int t = tombstone(c, conv, seq, CHAT__CACHE_EXPIRED);
    if (t == 1 && n) {
        sqlite3_stmt *st = chat__cache_prep(c, "UPDATE convs SET unread = max(unread - 1, 0)"
                                               " WHERE conv = ?");
        if (!st)
            return CHAT_EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
        if (sqlite3_step(st) != SQLITE_DONE)
            t = chat__cache_err(c, "unread");
        chat__cache_done(c, st);
    }
    return t;
}

/* A cached text message's text becomes text (an edit), unless the cache already holds a
 * newer one. */
static int edit_cached(chat__cache *c, chat_conv_id conv, uint64_t seq, const char *text, size_t len,
                       int64_t edited)
{
    cached m;
    int r = get_cached(c, conv, seq, &m);
    if (r == CHAT_ENOTFOUND)
        return CHAT_OK;
    if (r != CHAT_OK)
        return r;
    if (m.kind == CHAT_MSG_TEXT && !m.flags && edited >= m.edited) {
        char *js = rewrite_json(m.json, text, len, edited, 0);
        r = js ? chat__cache_unindex(c, m.rowid, m.kind, m.text, m.len, m.json) : CHAT_ENOMEM;
        if (r == CHAT_OK)
            r = update_row(c, m.rowid, text, len, js, edited, 0);
        if (r == CHAT_OK)
            r = chat__cache_index(c, m.rowid, m.kind, text, len, js);
        cJSON_free(js);
    }
    cached_free(&m);
    return r;
}

static int react_cached(chat__cache *c, chat_conv_id conv, uint64_t seq, const char *emoji,
                        const char *user, int64_t ts, int on)
{
    sqlite3_stmt *st = chat__cache_prep(
        c, on ? "INSERT OR IGNORE INTO reactions(conv, seq, emoji, user, ts)"
                " VALUES(?1, ?2, ?3, ?4, ?5)"
              : "DELETE FROM reactions WHERE conv=?1 AND seq=?2 AND emoji=?3 AND user=?4");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_text(st, 3, emoji, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, user, -1, SQLITE_STATIC);
    if (on)
        sqlite3_bind_int64(st, 5, ts);
    int r = sqlite3_step(st) == SQLITE_DONE ? CHAT_OK : chat__cache_err(c, "reaction");
    chat__cache_done(c, st);
    return r;
}

/* A page's message carries its reactions as they are now: the cache takes them whole. */
static int set_reactions(chat__cache *c, chat_conv_id conv, uint64_t seq, int64_t ts,
                         const cJSON *reactions)
{
    int r = clear_reactions(c, conv, seq);
    const cJSON *g, *u;
    cJSON_ArrayForEach(g, reactions)
    {
        const char *emoji = chat__json_str(g, "emoji", NULL);
        int64_t order = 0; /* keeps the users' order within an emoji */
        cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(g, "users"))
        {
            if (r == CHAT_OK && emoji && cJSON_IsString(u))
                r = react_cached(c, conv, seq, emoji, u->valuestring, ts + order++, 1);
        }
    }
    return r;
}

/* Every cached message user sent in conv is erased (the account was deleted). */
static int erase_sender(chat__cache *c, chat_conv_id conv, const char *user, int *uncounted)
{
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT seq FROM messages WHERE conv=? AND sender=?"
                                           " AND kind IN (1, 2) AND flags=0");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
    uint64_t *seqs = NULL;
    size_t n = 0, cap = 0;
    int r = CHAT_OK;
    while (r == CHAT_OK && sqlite3_step(st) == SQLITE_ROW) {
        uint64_t *v = chat__array_reserve(seqs, n, &cap, sizeof *v);
        if (!v)
            r = CHAT_ENOMEM;
        else {
            seqs = v;
            seqs[n++] = (uint64_t)sqlite3_column_int64(st, 0);
        }
    }
    chat__cache_done(c, st);
    for (size_t i = 0; r == CHAT_OK && i < n; i++) {
        *uncounted += unread_now(c, conv, seqs[i]);
        int t = tombstone(c, conv, seqs[i], CHAT__CACHE_DELETED);
        r = t < 0 ? t : CHAT_OK;
    }
    chat__free(seqs);
    return r;
}

int chat__cache_apply(chat__cache *c, const cJSON *msg, int kind, int inserted,
                      chat__change *chg)
{
    chat_conv_id conv = chat__cache_ju(msg, "conv"), seq = chat__cache_ju(msg, "seq");
    uint64_t target = chat__cache_ju(msg, "target");
    const char *from = chat__json_str(msg, "from", NULL);
    memset(chg, 0, sizeof *chg);
    chg->conv = conv;
    chg->target = target;
    snprintf(chg->user, sizeof chg->user, "%s", from ? from : "");
    int r = CHAT_OK;
    switch (kind) {
    case CHAT_MSG_EDIT: {
        size_t len = 0;
        const char *text = chat__json_str(msg, "text", &len);
        chg->kind = CHAT_MSG_EDIT;
        if (text && target)
            r = edit_cached(c, conv, target, text, len, chat__cache_ji(msg, "edited"));
        break;
    }
    case CHAT_MSG_DELETE: {
        chg->kind = CHAT_MSG_DELETE;
        chg->uncounted = target ? unread_now(c, conv, target) : 0;
        int t = target ? tombstone(c, conv, target, CHAT__CACHE_DELETED) : 0;
        r = t < 0 ? t : CHAT_OK;
        break;
    }
    case CHAT_MSG_REACT: {
        const char *emoji = chat__json_str(msg, "emoji", NULL);
        chat__json_bool(msg, "on", &chg->on);
        chg->kind = CHAT_MSG_REACT;
        snprintf(chg->emoji, sizeof chg->emoji, "%s", emoji ? emoji : "");
        /* reactions live with their message: one erased takes none */
        cached t;
        if (emoji && from && target && get_cached(c, conv, target, &t) == CHAT_OK) {
            if (!t.flags)
                r = react_cached(c, conv, target, emoji, from, chat__cache_ji(msg, "ts"),
                                 chg->on);
            cached_free(&t);
        }
        break;
    }
    case CHAT_MSG_EVENT: {
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(msg, "event");
        const char *type = chat__json_str(ev, "type", NULL), *by = chat__json_str(ev, "by", NULL);
        if (type && by && strcmp(type, "account_deleted") == 0) {
            chg->kind = CHAT_MSG_EVENT;
            chg->target = 0;
            snprintf(chg->user, sizeof chg->user, "%s", by);
            r = erase_sender(c, conv, by, &chg->uncounted);
        }
        break;
    }
    default: {
        /* A text or media message as the server shows it now. */
        int deleted = 0, expired = 0;
        chat__json_bool(msg, "deleted", &deleted);
        chat__json_bool(msg, "expired", &expired);
        if (deleted || expired) {
            int t = tombstone(c, conv, seq, deleted ? CHAT__CACHE_DELETED : CHAT__CACHE_EXPIRED);
            r = t < 0 ? t : CHAT_OK;
            break;
        }
        size_t len = 0;
        const char *text = chat__json_str(msg, "text", &len);
        int64_t edited = chat__cache_ji(msg, "edited");
        if (!inserted && text && edited)
            r = edit_cached(c, conv, seq, text, len, edited);
        const cJSON *reactions = cJSON_GetObjectItemCaseSensitive(msg, "reactions");
        if (r == CHAT_OK && (!inserted || reactions))
            r = set_reactions(c, conv, seq, chat__cache_ji(msg, "ts"), reactions);
    }
    }
    return r;
}

int chat__cache_recount(chat__cache *c, chat_conv_id conv, const char *me)
{
    sqlite3_stmt *st = chat__cache_prep(
        c, "UPDATE convs SET unread = CASE WHEN role = 0 THEN 0 ELSE (SELECT count(*)"
           " FROM messages m WHERE m.conv = convs.conv AND m.seq > convs.read AND m.thread = 0"
           " AND m.kind <= 3 AND m.flags = 0 AND m.sender <>"
           " coalesce(?2, (SELECT value FROM meta WHERE key = 'user'), ''))"
           /* seqs after the watermark that the cache has not fetched count as unread, as the
            * server counted them: a first sync caches only the newest page */
           " + max(0, convs.head - convs.read - (SELECT count(*) FROM messages m"
           " WHERE m.conv = convs.conv AND m.seq > convs.read AND m.seq <= convs.head)) END"
           " WHERE conv = ?1");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    if (me)
        sqlite3_bind_text(st, 2, me, -1, SQLITE_STATIC);
    int r = sqlite3_step(st) == SQLITE_DONE ? CHAT_OK : chat__cache_err(c, "unread");
    chat__cache_done(c, st);
    return r;
}

/* ---- expiry ---- */

int chat__cache_expired(chat__cache *c, chat_conv_id conv, const uint64_t *seqs, size_t n,
                        chat__expired_cb cb, void *ud)
{
    chat__cache_lock(c);
    int r = chat__cache_exec(c, "BEGIN IMMEDIATE");
    uint64_t *dropped = r == CHAT_OK && n ? chat__malloc(n * sizeof *dropped) : NULL;
    size_t k = 0;
    for (size_t i = 0; r == CHAT_OK && i < n; i++) {
        int t = expire_now(c, conv, seqs[i]);
        if (t < 0)
            r = t;
        else if (t && dropped)
            dropped[k++] = seqs[i];
    }
    if (r == CHAT_OK)
        r = chat__cache_exec(c, "COMMIT");
    else
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    chat__cache_unlock(c);
    for (size_t i = 0; r == CHAT_OK && cb && i < k; i++)
        cb(conv, dropped[i], ud);
    chat__free(dropped);
    return r;
}

int chat__cache_expire_due(chat__cache *c, int64_t now_ms, chat__expired_cb cb, void *ud)
{
    chat__cache_lock(c);
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT conv, seq FROM messages"
                                           " WHERE expires > 0 AND flags = 0 AND expires <= ?"
                                           " LIMIT 256");
    struct due {
        chat_conv_id conv, seq;
    } *due = NULL;
    size_t n = 0, cap = 0;
    int r = st ? CHAT_OK : CHAT_EIO;
    if (st)
        sqlite3_bind_int64(st, 1, now_ms);
    while (r == CHAT_OK && sqlite3_step(st) == SQLITE_ROW) {
        struct due *v = chat__array_reserve(due, n, &cap, sizeof *v);
        if (!v)
            r = CHAT_ENOMEM;
        else {
            due = v;
            due[n].conv = (uint64_t)sqlite3_column_int64(st, 0);
            due[n++].seq = (uint64_t)sqlite3_column_int64(st, 1);
        }
    }
    chat__cache_done(c, st);
    if (r == CHAT_OK && n)
        r = chat__cache_exec(c, "BEGIN IMMEDIATE");
    for (size_t i = 0; r == CHAT_OK && i < n; i++) {
        int t = expire_now(c, due[i].conv, due[i].seq);
        r = t < 0 ? t : CHAT_OK;
    }
    if (n && r == CHAT_OK)
        r = chat__cache_exec(c, "COMMIT");
    else if (n)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    chat__cache_unlock(c);
    for (size_t i = 0; r == CHAT_OK && cb && i < n; i++)
        cb(due[i].conv, due[i].seq, ud);
    chat__free(due);
    return r;
}

/* ---- reading ---- */

int chat__cache_reactions_json(chat__cache *c, chat_conv_id conv, uint64_t seq, char **out)
{
    *out = NULL;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT emoji, user FROM reactions"
                                           " WHERE conv=? AND seq=? ORDER BY emoji, ts, user");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    cJSON *a = cJSON_CreateArray(), *users = NULL;
    char last[64] = "";
    int r = a ? CHAT_OK : CHAT_ENOMEM;
    while (r == CHAT_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *emoji = (const char *)sqlite3_column_text(st, 0);
        const char *user = (const char *)sqlite3_column_text(st, 1);
        if (!users || strcmp(last, emoji) != 0) {
            cJSON *g = cJSON_CreateObject();
            if (!g) {
                r = CHAT_ENOMEM;
                break;
            }
            cJSON_AddStringToObject(g, "emoji", emoji);
            users = cJSON_AddArrayToObject(g, "users");
            cJSON_AddItemToArray(a, g);
            snprintf(last, sizeof last, "%s", emoji);
        }
        cJSON_AddItemToArray(users, cJSON_CreateString(user));
    }
    chat__cache_done(c, st);
    if (r == CHAT_OK && cJSON_GetArraySize(a) > 0) {
        char *js = cJSON_PrintUnformatted(a);
        *out = js ? chat__strdup(js) : NULL;
        cJSON_free(js);
        if (!*out)
            r = CHAT_ENOMEM;
    }
    cJSON_Delete(a);
    return r;
}

int chat__cache_search(chat__cache *c, const char *query, chat_conv_id conv, int limit,
                       struct chat_msg_list **out)
{
    char *match = NULL;
    chat__cache_lock(c);
    int r = chat__fts_match(c->fts, query, NULL, 0, &match);
    struct chat_msg_list *l = chat__calloc(1, sizeof *l);
    if (r == CHAT_OK && !l)
        r = CHAT_ENOMEM;
    if (r == CHAT_OK && match) {
        sqlite3_stmt *st = chat__cache_prep(
            c, "SELECT m.conv, m.seq, m.ts, m.sender, m.cmid, m.kind, m.text, m.json, m.target,"
               " m.thread, m.edited, m.expires, m.flags FROM msg_fts f"
               " JOIN messages m ON m.rowid = f.rowid"
               " WHERE msg_fts MATCH ?1 AND (?2 = 0 OR m.conv = ?2)"
               " ORDER BY f.rowid DESC LIMIT ?3");
        if (!st)
            r = CHAT_EIO;
        else {
            sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)conv);
            sqlite3_bind_int(st, 3, limit);
            while (r == CHAT_OK && sqlite3_step(st) == SQLITE_ROW)
                r = chat__cache_list_add(c, l, st);
        }
        chat__cache_done(c, st);
    }
    chat__cache_unlock(c);
    chat__free(match);
    if (r != CHAT_OK) {
        chat_msg_list_free(l);
        return r == CHAT_ENOMEM ? chat__error_set(r, 0, "out of memory") : r;
    }
    l->complete = 1;
    *out = l;
    return CHAT_OK;
}
