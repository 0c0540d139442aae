/* The client's SQLite cache. A separate schema from the server store's, versioned with
 * PRAGMA user_version. One connection, one mutex: the loop thread writes what the server says,
 * host threads write the outbox and read lists. WAL + synchronous=NORMAL: an outbox row written
 * by chat_client_send_text survives a crash of the host process. */
#define _GNU_SOURCE
#include "client/cache.h"
#include "client/cache_internal.h"
#include "client/lists.h"

#include "chat/client.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/error.h"
#include "core/json.h"
#include "store/sqlite_fts.h"

#include <inttypes.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>


static const char *const schema_v1 =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS convs(conv INTEGER PRIMARY KEY, kind INTEGER NOT NULL DEFAULT 1,"
    " title TEXT NOT NULL DEFAULT '', role INTEGER NOT NULL DEFAULT 1,"
    " head INTEGER NOT NULL DEFAULT 0, delivered INTEGER NOT NULL DEFAULT 0,"
    " read INTEGER NOT NULL DEFAULT 0, joined INTEGER NOT NULL DEFAULT 0,"
    " last_ts INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS members(conv INTEGER NOT NULL, user TEXT NOT NULL,"
    " role INTEGER NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,"
    " read INTEGER NOT NULL DEFAULT 0, delivered_ts INTEGER NOT NULL DEFAULT 0,"
    " read_ts INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(conv, user));"
    "CREATE TABLE IF NOT EXISTS messages(conv INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " ts INTEGER NOT NULL, sender TEXT NOT NULL, device TEXT NOT NULL, cmid TEXT NOT NULL,"
    " kind INTEGER NOT NULL, text TEXT NOT NULL, json TEXT NOT NULL, PRIMARY KEY(conv, seq));"
    "CREATE INDEX IF NOT EXISTS messages_cmid ON messages(cmid) WHERE cmid <> '';"
    "CREATE TABLE IF NOT EXISTS outbox(id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " cmid TEXT NOT NULL UNIQUE, conv INTEGER NOT NULL, to_user TEXT, text TEXT NOT NULL,"
    " created_ms INTEGER NOT NULL, failed INTEGER NOT NULL DEFAULT 0,"
    " error TEXT NOT NULL DEFAULT '');";

int chat__cache_err(chat__cache *c, const char *what)
{
    return chat__error_set(CHAT_EIO, sqlite3_extended_errcode(c->db), "cache %s: %s", what,
                           sqlite3_errmsg(c->db));
}

int chat__cache_exec(chat__cache *c, const char *sql)
{
    if (!strchr(sql, ';')) { /* one statement (BEGIN, COMMIT): the prepared one */
        sqlite3_stmt *st = chat__cache_prep(c, sql);
        if (!st)
            return CHAT_EIO;
        int rc = sqlite3_step(st);
        int r = rc == SQLITE_DONE || rc == SQLITE_ROW ? CHAT_OK : chat__cache_err(c, sql);
        chat__cache_done(c, st);
        return r;
    }
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        int r = chat__error_set(CHAT_EIO, rc, "cache: %s", msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return r;
    }
    return CHAT_OK;
}

sqlite3_stmt *chat__cache_prep(chat__cache *c, const char *sql)
{
    int i = 0;
    while (i < c->nstmts && c->stmts[i].sql != sql)
        i++;
    if (i < c->nstmts && !c->stmts[i].busy) {
        c->stmts[i].busy = 1;
        return c->stmts[i].st;
    }
    /* kept when new and there is room; else (in use further up the stack) a one-off */
    int keep = i == c->nstmts && i < CHAT__CACHE_STMTS;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v3(c->db, sql, -1, keep ? SQLITE_PREPARE_PERSISTENT : 0, &st, NULL) !=
        SQLITE_OK) {
        chat__cache_err(c, "prepare");
        sqlite3_finalize(st);
        return NULL;
    }
    if (keep) {
        c->stmts[i].sql = sql;
        c->stmts[i].st = st;
        c->stmts[i].busy = 1;
        c->nstmts++;
    }
    return st;
}

void chat__cache_done(chat__cache *c, sqlite3_stmt *st)
{
    if (!st)
        return;
    for (int i = 0; i < c->nstmts; i++)
        if (c->stmts[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            c->stmts[i].busy = 0;
            return;
        }
    sqlite3_finalize(st);
}

void chat__cache_lock(chat__cache *c) { pthread_mutex_lock(&c->mu); }
void chat__cache_unlock(chat__cache *c) { pthread_mutex_unlock(&c->mu); }

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *chat__cache_col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return chat__strdup(t ? (const char *)t : "");
}

int chat__cache_open(chat__cache **out, const char *path)
{
    chat__cache *c = chat__calloc(1, sizeof *c);
    if (!c)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    pthread_mutex_init(&c->mu, NULL);
    int rc = sqlite3_open_v2(path ? path : ":memory:", &c->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        int r = chat__error_set(CHAT_EIO, rc, "cache %s: %s", path ? path : ":memory:",
                                c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        chat__cache_close(c);
        return r;
    }
    sqlite3_busy_timeout(c->db, 5000);
    int r = chat__cache_exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
    sqlite3_stmt *st = r == CHAT_OK ? chat__cache_prep(c, "PRAGMA user_version") : NULL;
    int version = -1;
    if (st && sqlite3_step(st) == SQLITE_ROW)
        version = sqlite3_column_int(st, 0);
    chat__cache_done(c, st);
    if (r == CHAT_OK && version < 0)
        r = chat__cache_err(c, "user_version");
    if (r == CHAT_OK && version > CHAT__CACHE_SCHEMA)
        r = chat__error_set(CHAT_EVERSION, 0, "cache schema %d is newer than this library's %d",
                            version, CHAT__CACHE_SCHEMA);
    /* Erased text is zeroed where it lay in the file, not only unlinked from the tree. */
    if (r == CHAT_OK)
        r = chat__cache_exec(c, "PRAGMA secure_delete=ON;");
    if (r == CHAT_OK)
        r = chat__fts_register(c->db, &c->fts);
    if (r == CHAT_OK && version < CHAT__CACHE_SCHEMA) {
        r = chat__cache_exec(c, "BEGIN IMMEDIATE");
        if (r == CHAT_OK && version < 1)
            r = chat__cache_exec(c, schema_v1);
        if (r == CHAT_OK && version < 2)
            r = chat__cache_exec(c, "ALTER TABLE outbox ADD COLUMN media TEXT;");
        if (r == CHAT_OK && version < 3)
            r = chat__cache_exec(c, "ALTER TABLE convs ADD COLUMN muted_until INTEGER NOT NULL"
                                    " DEFAULT 0;");
        if (r == CHAT_OK)
            r = chat__cache_life_open(c, version);
        if (r == CHAT_OK)
            r = chat__cache_exec(c, "PRAGMA user_version=4; COMMIT");
        if (r != CHAT_OK)
            sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    } else if (r == CHAT_OK) {
        r = chat__cache_life_open(c, version);
    }
    if (r != CHAT_OK) {
        chat__cache_close(c);
        return r;
    }
    *out = c;
    return CHAT_OK;
}

void chat__cache_close(chat__cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nstmts; i++)
        sqlite3_finalize(c->stmts[i].st);
    if (c->db)
        sqlite3_close_v2(c->db);
    pthread_mutex_destroy(&c->mu);
    chat__free(c);
}

int chat__cache_meta_get(chat__cache *c, const char *key, char **out)
{
    chat__cache_lock(c);
    int r = CHAT_ENOTFOUND;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT value FROM meta WHERE key=?");
    if (!st) {
        chat__cache_unlock(c);
        return CHAT_EIO;
    }
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *out = chat__cache_col_dup(st, 0);
        r = *out ? CHAT_OK : CHAT_ENOMEM;
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return r;
}

int chat__cache_meta_set(chat__cache *c, const char *key, const char *value)
{
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "meta");
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return r;
}

int chat__cache_meta_del(chat__cache *c, const char *key)
{
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "DELETE FROM meta WHERE key=?");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "meta");
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return r;
}

int chat__cache_wipe(chat__cache *c)
{
    chat__cache_lock(c);
    /* The search key stays: the index is emptied with the messages it was keyed for. */
    int r = chat__cache_exec(c, "BEGIN; DELETE FROM meta WHERE key <> 'fts_key';"
                                " DELETE FROM convs; DELETE FROM members; DELETE FROM messages;"
                                " DELETE FROM reactions; DELETE FROM outbox;"
                                " INSERT INTO msg_fts(msg_fts) VALUES('delete-all'); COMMIT;");
    if (r != CHAT_OK)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    chat__cache_unlock(c);
    return r;
}

/* ---- outbox ------------------------------------------------------------------------------ */

static int outbox_insert(chat__cache *c, chat_conv_id conv, const char *to_user, const char *text,
                         size_t len, const char *media, uint64_t reply, uint64_t thread,
                         char cmid_out[CHAT__CMID_SIZE]);

int chat__cache_outbox_add(chat__cache *c, chat_conv_id conv, const char *to_user, const char *text,
                           size_t len, char cmid_out[CHAT__CMID_SIZE])
{
    return outbox_insert(c, conv, to_user, text, len, NULL, 0, 0, cmid_out);
}

int chat__cache_outbox_add_reply(chat__cache *c, chat_conv_id conv, uint64_t reply, uint64_t thread,
                                 const char *text, size_t len, char cmid_out[CHAT__CMID_SIZE])
{
    return outbox_insert(c, conv, NULL, text, len, NULL, reply, thread, cmid_out);
}

int chat__cache_outbox_add_media(chat__cache *c, chat_conv_id conv, const char *to_user,
                                 const char *name, const char *media,
                                 char cmid_out[CHAT__CMID_SIZE])
{
    return outbox_insert(c, conv, to_user, name, strlen(name), media, 0, 0, cmid_out);
}

static int outbox_insert(chat__cache *c, chat_conv_id conv, const char *to_user, const char *text,
                         size_t len, const char *media, uint64_t reply, uint64_t thread,
                         char cmid_out[CHAT__CMID_SIZE])
{
    unsigned char rnd[8];
    randombytes_buf(rnd, sizeof rnd);
    snprintf(cmid_out, 12, "%011" PRIx64, (uint64_t)now_ms());
    sodium_bin2hex(cmid_out + 11, CHAT__CMID_SIZE - 11, rnd, sizeof rnd);
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "INSERT INTO outbox(cmid, conv, to_user, text,"
                                           " created_ms, media, reply, thread)"
                                           " VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_text(st, 1, cmid_out, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)conv);
        if (to_user)
            sqlite3_bind_text(st, 3, to_user, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4, text, (int)len, SQLITE_STATIC);
        sqlite3_bind_int64(st, 5, now_ms());
        if (media)
            sqlite3_bind_text(st, 6, media, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)reply);
        sqlite3_bind_int64(st, 8, (sqlite3_int64)thread);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "outbox insert");
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return r;
}

void chat__cache_outbox_row_free(chat__outbox_row *row)
{
    chat__free(row->to_user);
    chat__free(row->text);
    chat__free(row->media);
    row->to_user = row->text = row->media = NULL;
}

int chat__cache_outbox_first(chat__cache *c, chat__outbox_row *row)
{
    memset(row, 0, sizeof *row);
    chat__cache_lock(c);
    int r = CHAT_ENOTFOUND;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT id, cmid, conv, to_user, text, media, reply,"
                                           " thread FROM outbox"
                               " WHERE failed=0"
                               " ORDER BY id LIMIT 1");
    if (!st)
        r = CHAT_EIO;
    else if (sqlite3_step(st) == SQLITE_ROW) {
        row->id = sqlite3_column_int64(st, 0);
        snprintf(row->cmid, sizeof row->cmid, "%s", (const char *)sqlite3_column_text(st, 1));
        row->conv = sqlite3_column_int64(st, 2);
        if (sqlite3_column_type(st, 3) != SQLITE_NULL)
            row->to_user = chat__cache_col_dup(st, 3);
        row->text = chat__cache_col_dup(st, 4);
        row->text_len = (size_t)sqlite3_column_bytes(st, 4);
        if (sqlite3_column_type(st, 5) != SQLITE_NULL)
            row->media = chat__cache_col_dup(st, 5);
        row->reply = (uint64_t)sqlite3_column_int64(st, 6);
        row->thread = (uint64_t)sqlite3_column_int64(st, 7);
        r = row->text && (row->media || sqlite3_column_type(st, 5) == SQLITE_NULL) ? CHAT_OK
                                                                                  : CHAT_ENOMEM;
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    if (r != CHAT_OK)
        chat__cache_outbox_row_free(row);
    return r;
}

/* Move a conversation's head and my watermarks (own message at seq). A new message of someone
 * else's that counts (counts: 1) past the head is one more unread (the server's count, taken
 * at the last sync, covers the head it gave). Caller holds the lock. */
static int bump_conv(chat__cache *c, chat_conv_id conv, uint64_t seq, int64_t ts, int mine,
                     int counts)
{
    sqlite3_stmt *st = chat__cache_prep(
        c, "INSERT INTO convs(conv, head, last_ts, unread) VALUES(?1, ?2, ?3, ?4)"
           " ON CONFLICT(conv) DO UPDATE SET head=max(head, ?2), last_ts=max(last_ts, ?3),"
           " unread=unread + (CASE WHEN ?2 > head AND ?2 > read THEN ?4 ELSE 0 END)");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 3, ts);
    sqlite3_bind_int(st, 4, counts && !mine);
    int r = sqlite3_step(st) == SQLITE_DONE ? CHAT_OK : chat__cache_err(c, "conv head");
    chat__cache_done(c, st);
    if (r == CHAT_OK && mine) {
        st = chat__cache_prep(c, "UPDATE convs SET read=max(read, ?2), delivered=max(delivered, ?2)"
                     " WHERE conv=?1");
        if (!st)
            return CHAT_EIO;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
        r = sqlite3_step(st) == SQLITE_DONE ? CHAT_OK : chat__cache_err(c, "conv read");
        chat__cache_done(c, st);
    }
    return r;
}

/* Store msg (a "msg" frame, printed as json) unless its seq is cached; 1 new (and indexed for
 * search), 0 cached already, negative on error. */
static int insert_msg(chat__cache *c, const cJSON *msg, int kind, const char *text,
                      size_t text_len, const char *json)
{
    sqlite3_stmt *st = chat__cache_prep(
        c, "INSERT OR IGNORE INTO messages(conv, seq, ts, sender, device, cmid, kind, text,"
           " json, target, thread, edited, expires, flags)"
           " VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st)
        return CHAT_EIO;
    const char *sender = chat__json_str(msg, "from", NULL);
    const char *device = chat__json_str(msg, "device", NULL);
    const char *cmid = chat__json_str(msg, "cmid", NULL);
    /* the message it acts on (edit, delete, react) or answers (a reply) */
    uint64_t target = kind >= CHAT_MSG_EDIT
                          ? chat__cache_ju(msg, "target")
                          : chat__cache_ju(cJSON_GetObjectItemCaseSensitive(msg, "reply"), "seq");
    int deleted = 0, expired = 0;
    chat__json_bool(msg, "deleted", &deleted);
    chat__json_bool(msg, "expired", &expired);
    int flags = deleted ? CHAT__CACHE_DELETED : expired ? CHAT__CACHE_EXPIRED : 0;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)chat__cache_ju(msg, "conv"));
    sqlite3_bind_int64(st, 2, (sqlite3_int64)chat__cache_ju(msg, "seq"));
    sqlite3_bind_int64(st, 3, chat__cache_ji(msg, "ts"));
    sqlite3_bind_text(st, 4, sender ? sender : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, device ? device : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, cmid ? cmid : "", -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 7, kind);
    /* a reaction's text column holds nothing: its emoji is in the frame */
    int keep_text = text && kind <= CHAT_MSG_EVENT && !flags;
    sqlite3_bind_text(st, 8, keep_text ? text : "", keep_text ? (int)text_len : 0,
                      SQLITE_STATIC);
    sqlite3_bind_text(st, 9, json ? json : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 10, (sqlite3_int64)target);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)chat__cache_ju(msg, "thread"));
    sqlite3_bind_int64(st, 12, chat__cache_ji(msg, "edited"));
    sqlite3_bind_int64(st, 13, chat__cache_ji(msg, "expires"));
    sqlite3_bind_int(st, 14, flags);
    int r = sqlite3_step(st) == SQLITE_DONE ? (sqlite3_changes(c->db) > 0)
                                            : chat__cache_err(c, "msg");
    chat__cache_done(c, st);
    if (r == 1 && !flags && (kind == CHAT_MSG_TEXT || kind == CHAT_MSG_MEDIA)) {
        int ir = chat__cache_index(c, sqlite3_last_insert_rowid(c->db), kind,
                                   keep_text ? text : "", keep_text ? text_len : 0, json);
        if (ir != CHAT_OK)
            r = ir;
    }
    return r;
}

int chat__cache_outbox_ack(chat__cache *c, const char *cmid, chat_conv_id conv, uint64_t seq,
                           int64_t ts, const char *me, const char *device)
{
    chat__cache_lock(c);
    int r = chat__cache_exec(c, "BEGIN IMMEDIATE");
    if (r != CHAT_OK) {
        chat__cache_unlock(c);
        return r;
    }
    char *text = NULL, *media = NULL;
    size_t tlen = 0;
    int found = 0;
    uint64_t reply = 0, thread = 0;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT text, media, reply, thread FROM outbox"
                                           " WHERE cmid=?");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_text(st, 1, cmid, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            found = 1;
            text = chat__cache_col_dup(st, 0);
            tlen = (size_t)sqlite3_column_bytes(st, 0);
            if (sqlite3_column_type(st, 1) != SQLITE_NULL)
                media = chat__cache_col_dup(st, 1);
            reply = (uint64_t)sqlite3_column_int64(st, 2);
            thread = (uint64_t)sqlite3_column_int64(st, 3);
            if (!text)
                r = CHAT_ENOMEM;
        }
    }
    chat__cache_done(c, st);
    if (r == CHAT_OK && found) {
        /* The message as the server would send it. The outbox holds only media JSON this
         * engine wrote, so a parse that fails ran out of memory: the ack is then not taken
         * (the outbox keeps the message, and its resend is acked again). */
        cJSON *j = cJSON_CreateObject();
        int ok = j && cJSON_AddStringToObject(j, "type", "msg") &&
                 chat__json_add_int(j, "conv", conv) &&
                 chat__json_add_int(j, "seq", (int64_t)seq) && chat__json_add_int(j, "ts", ts) &&
                 cJSON_AddStringToObject(j, "from", me) &&
                 cJSON_AddStringToObject(j, "device", device ? device : "") &&
                 cJSON_AddStringToObject(j, "cmid", cmid);
        if (ok && media)
            ok = cJSON_AddStringToObject(j, "kind", "media") &&
                 chat__json_add(j, "media", cJSON_Parse(media));
        else if (ok)
            ok = cJSON_AddStringToObject(j, "kind", "text") &&
                 cJSON_AddStringToObject(j, "text", text);
        if (ok && reply) {
            cJSON *rp = cJSON_AddObjectToObject(j, "reply");
            ok = rp && chat__json_add_int(rp, "seq", (int64_t)reply);
        }
        if (ok && thread)
            ok = chat__json_add_int(j, "thread", (int64_t)thread) != NULL;
        char *js = ok ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        /* read back as the server's frame would be: the exact integers are raw items until
         * printed */
        cJSON *back = js ? cJSON_Parse(js) : NULL;
        int ins = back ? insert_msg(c, back, media ? CHAT_MSG_MEDIA : CHAT_MSG_TEXT,
                                    media ? "" : text, media ? 0 : tlen, js)
                       : chat__error_set(CHAT_ENOMEM, 0, "out of memory");
        cJSON_Delete(back);
        cJSON_free(js);
        if (ins < 0)
            r = ins;
        if (r == CHAT_OK)
            r = bump_conv(c, conv, seq, ts, 1, 0);
        if (r == CHAT_OK) {
            st = chat__cache_prep(c, "DELETE FROM outbox WHERE cmid=?");
            if (!st)
                r = CHAT_EIO;
            else {
                sqlite3_bind_text(st, 1, cmid, -1, SQLITE_STATIC);
                if (sqlite3_step(st) != SQLITE_DONE)
                    r = chat__cache_err(c, "outbox delete");
            }
            chat__cache_done(c, st);
        }
    }
    chat__free(text);
    chat__free(media);
    if (r == CHAT_OK)
        r = chat__cache_exec(c, "COMMIT");
    if (r != CHAT_OK)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    chat__cache_unlock(c);
    return r == CHAT_OK ? found : r;
}

int chat__cache_outbox_fail(chat__cache *c, const char *cmid, int code, const char *message)
{
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "UPDATE outbox SET failed=?, error=? WHERE cmid=?");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_int(st, 1, code ? code : CHAT_ERROR);
        sqlite3_bind_text(st, 2, message ? message : "", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, cmid, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "outbox fail");
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return r;
}

int chat__cache_outbox_count(chat__cache *c, size_t *out)
{
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT count(*) FROM outbox WHERE failed=0");
    if (!st)
        r = CHAT_EIO;
    else if (sqlite3_step(st) == SQLITE_ROW)
        *out = (size_t)sqlite3_column_int64(st, 0);
    else
        r = chat__cache_err(c, "outbox count");
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return r;
}

/* ---- conversations, messages, receipts ---------------------------------------------------- */

static int role_of(const char *s)
{
    if (!s)
        return CHAT_ROLE_MEMBER;
    if (strcmp(s, "owner") == 0)
        return CHAT_ROLE_OWNER;
    if (strcmp(s, "admin") == 0)
        return CHAT_ROLE_ADMIN;
    if (strcmp(s, "none") == 0)
        return CHAT_ROLE_NONE;
    return CHAT_ROLE_MEMBER;
}

uint64_t chat__cache_ju(const cJSON *o, const char *k)
{
    uint64_t v = 0;
    (void)chat__json_u64(o, k, &v);
    return v;
}

int64_t chat__cache_ji(const cJSON *o, const char *k)
{
    int64_t v = 0;
    (void)chat__json_i64(o, k, &v);
    return v;
}

int chat__cache_conv_locked(chat__cache *c, chat_conv_id conv, chat__conv_row *out)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT head, delivered, read, joined, role, kind,"
                               " (SELECT max(seq) FROM messages WHERE conv=?1)"
                               " FROM convs WHERE conv=?1");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    int r = CHAT_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        out->conv = conv;
        out->head = (uint64_t)sqlite3_column_int64(st, 0);
        out->delivered = (uint64_t)sqlite3_column_int64(st, 1);
        out->read = (uint64_t)sqlite3_column_int64(st, 2);
        out->joined = (uint64_t)sqlite3_column_int64(st, 3);
        out->role = sqlite3_column_int(st, 4);
        out->kind = sqlite3_column_int(st, 5);
        out->max_seq = (uint64_t)sqlite3_column_int64(st, 6);
        r = CHAT_OK;
    }
    chat__cache_done(c, st);
    return r;
}

uint64_t chat__cache_conv_contig(chat__cache *c, chat_conv_id conv)
{
    /* A walk from the lowest cached seq to the first gap, one index lookup per message: kept
     * out of chat__cache_conv_get, which every live message and ack reads, so that storing a
     * message does not cost the length of the conversation. */
    chat__cache_lock(c);
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT min(m.seq) FROM messages m WHERE m.conv=?1 AND"
                               " NOT EXISTS (SELECT 1 FROM messages n WHERE n.conv=?1 AND"
                               " n.seq=m.seq+1)");
    uint64_t seq = 0;
    if (st) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
        if (sqlite3_step(st) == SQLITE_ROW)
            seq = (uint64_t)sqlite3_column_int64(st, 0);
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return seq;
}

int chat__cache_conv_get(chat__cache *c, chat_conv_id conv, chat__conv_row *out)
{
    chat__cache_lock(c);
    int r = chat__cache_conv_locked(c, conv, out);
    chat__cache_unlock(c);
    return r;
}

int chat__cache_conv_upsert(chat__cache *c, const cJSON *conv, const char *me,
                            uint64_t *local_read)
{
    chat_conv_id id = (chat_conv_id)chat__cache_ju(conv, "conv");
    if (!id)
        return chat__error_set(CHAT_EPROTO, 0, "conv without an id");
    const char *kind = chat__json_str(conv, "kind", NULL);
    const char *title = chat__json_str(conv, "title", NULL);
    int role = role_of(chat__json_str(conv, "role", NULL));
    chat__cache_lock(c);
    chat__conv_row old;
    int had = chat__cache_conv_locked(c, id, &old) == CHAT_OK;
    if (local_read)
        *local_read = had ? old.read : 0;
    int r = chat__cache_exec(c, "BEGIN IMMEDIATE");
    if (r != CHAT_OK) {
        chat__cache_unlock(c);
        return r;
    }
    /* unread: the server's count (it knows every message); recounted below from the cache
     * when my read watermark here is ahead of the server's (read offline) */
    sqlite3_stmt *st = chat__cache_prep(
        c, "INSERT INTO convs(conv, kind, title, role, head, delivered, read, joined, last_ts,"
           " unread, muted_until) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
           " ON CONFLICT(conv) DO UPDATE SET"
           " kind=?2, title=?3, role=?4, head=max(head, ?5), delivered=max(delivered, ?6),"
           " read=max(read, ?7), joined=?8, last_ts=max(last_ts, ?9), unread=?10,"
           " muted_until=?11");
    if (!st)
        r = CHAT_EIO;
    else {
        const cJSON *last = cJSON_GetObjectItemCaseSensitive(conv, "last");
        sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
        sqlite3_bind_int(st, 2, kind && strcmp(kind, "group") == 0 ? CHAT_CONV_GROUP
                                                                  : CHAT_CONV_DIRECT);
        sqlite3_bind_text(st, 3, title ? title : "", -1, SQLITE_STATIC);
        sqlite3_bind_int(st, 4, role);
        sqlite3_bind_int64(st, 5, (sqlite3_int64)chat__cache_ju(conv, "head"));
        sqlite3_bind_int64(st, 6, (sqlite3_int64)chat__cache_ju(conv, "delivered"));
        sqlite3_bind_int64(st, 7, (sqlite3_int64)chat__cache_ju(conv, "read"));
        sqlite3_bind_int64(st, 8, (sqlite3_int64)chat__cache_ju(conv, "joined"));
        sqlite3_bind_int64(st, 9, last ? chat__cache_ji(last, "ts") : 0);
        uint64_t head = chat__cache_ju(conv, "head"), read = chat__cache_ju(conv, "read");
        /* an older server's unread (no "unread"): head - read */
        const cJSON *un = cJSON_GetObjectItemCaseSensitive(conv, "unread");
        uint64_t unread = un ? chat__cache_ju(conv, "unread") : head > read ? head - read : 0;
        sqlite3_bind_int64(st, 10, (sqlite3_int64)unread);
        sqlite3_bind_int64(st, 11, chat__cache_ji(conv, "muted_until"));
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "conv upsert");
    }
    chat__cache_done(c, st);
    if (r == CHAT_OK && had && old.read > chat__cache_ju(conv, "read"))
        r = chat__cache_recount(c, id, me);
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(conv, "members");
    if (r == CHAT_OK && cJSON_IsArray(members)) {
        /* the member list is authoritative: replace it, keeping watermarks monotonic */
        st = chat__cache_prep(c, "UPDATE members SET role=0 WHERE conv=?");
        if (!st)
            r = CHAT_EIO;
        else {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
            if (sqlite3_step(st) != SQLITE_DONE)
                r = chat__cache_err(c, "members reset");
        }
        chat__cache_done(c, st);
        const cJSON *m;
        cJSON_ArrayForEach(m, members)
        {
            if (r != CHAT_OK)
                break;
            const char *user = chat__json_str(m, "user", NULL);
            if (!user)
                continue;
            st = chat__cache_prep(c, "INSERT INTO members(conv, user, role, delivered, read, delivered_ts,"
                         " read_ts) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT(conv, user)"
                         " DO UPDATE SET role=?3, delivered=max(delivered, ?4),"
                         " read=max(read, ?5), delivered_ts=max(delivered_ts, ?6),"
                         " read_ts=max(read_ts, ?7)");
            if (!st) {
                r = CHAT_EIO;
                break;
            }
            sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
            sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 3, role_of(chat__json_str(m, "role", NULL)));
            sqlite3_bind_int64(st, 4, (sqlite3_int64)chat__cache_ju(m, "delivered"));
            sqlite3_bind_int64(st, 5, (sqlite3_int64)chat__cache_ju(m, "read"));
            sqlite3_bind_int64(st, 6, chat__cache_ji(m, "delivered_ts"));
            sqlite3_bind_int64(st, 7, chat__cache_ji(m, "read_ts"));
            if (sqlite3_step(st) != SQLITE_DONE)
                r = chat__cache_err(c, "member upsert");
            chat__cache_done(c, st);
        }
    }
    if (r == CHAT_OK)
        r = chat__cache_exec(c, "COMMIT");
    if (r != CHAT_OK)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    chat__cache_unlock(c);
    return r;
}

int chat__cache_kind_of(const char *k)
{
    if (k && strcmp(k, "media") == 0)
        return CHAT_MSG_MEDIA;
    if (k && strcmp(k, "event") == 0)
        return CHAT_MSG_EVENT;
    if (k && strcmp(k, "edit") == 0)
        return CHAT_MSG_EDIT;
    if (k && strcmp(k, "delete") == 0)
        return CHAT_MSG_DELETE;
    if (k && strcmp(k, "react") == 0)
        return CHAT_MSG_REACT;
    return CHAT_MSG_TEXT;
}

static int uncount(chat__cache *c, chat_conv_id conv, int n)
{
    sqlite3_stmt *st = chat__cache_prep(c, "UPDATE convs SET unread = max(unread - ?2, 0)"
                                           " WHERE conv = ?1");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_int(st, 2, n);
    int r = sqlite3_step(st) == SQLITE_DONE ? CHAT_OK : chat__cache_err(c, "unread");
    chat__cache_done(c, st);
    return r;
}

/* Whether conv is cached, and its head: what storing a message needs of it. Not
 * chat__cache_conv_locked, whose contig_seq walks the conversation's cached messages (a
 * cost per message that grew with the cache: a 1M-message fill did not finish in minutes). */
static int conv_head(chat__cache *c, chat_conv_id conv, uint64_t *head)
{
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT head FROM convs WHERE conv=?1");
    if (!st)
        return CHAT_EIO;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    int r = CHAT_ENOTFOUND;
    if (sqlite3_step(st) == SQLITE_ROW) {
        *head = (uint64_t)sqlite3_column_int64(st, 0);
        r = CHAT_OK;
    }
    chat__cache_done(c, st);
    return r;
}

int chat__cache_msg_insert(chat__cache *c, const cJSON *msg, const char *me, int *known,
                           chat__change *chg)
{
    chat__change none;
    if (!chg)
        chg = &none;
    memset(chg, 0, sizeof *chg);
    chat_conv_id conv = (chat_conv_id)chat__cache_ju(msg, "conv");
    uint64_t seq = chat__cache_ju(msg, "seq");
    if (!conv || !seq)
        return chat__error_set(CHAT_EPROTO, 0, "msg without conv or seq");
    const char *from = chat__json_str(msg, "from", NULL);
    size_t tlen = 0;
    const char *text = chat__json_str(msg, "text", &tlen);
    char *js = cJSON_PrintUnformatted(msg);
    if (!js)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    int mine = me && from && strcmp(from, me) == 0;
    chat__cache_lock(c);
    uint64_t head;
    if (known)
        *known = conv_head(c, conv, &head) == CHAT_OK;
    int r = chat__cache_exec(c, c->bulk ? "SAVEPOINT msg_insert" : "BEGIN IMMEDIATE");
    int ins = 0;
    if (r == CHAT_OK) {
        /* The unread count the last sync gave covers everything up to the head it gave: only
         * what lies beyond changes it. */
        int news = conv_head(c, conv, &head) != CHAT_OK || seq > head;
        int kind = chat__cache_kind_of(chat__json_str(msg, "kind", NULL));
        ins = insert_msg(c, msg, kind, text, tlen, js);
        if (ins < 0)
            r = ins;
        /* what it changes (an edit, delete, reaction), and a message met again as it is now */
        if (r == CHAT_OK && (ins == 1 || kind <= CHAT_MSG_MEDIA))
            r = chat__cache_apply(c, msg, kind, ins, chg);
        if (r == CHAT_OK)
            r = bump_conv(c, conv, seq, chat__cache_ji(msg, "ts"), mine,
                          ins == 1 && chat__cache_counts(msg, kind));
        if (r == CHAT_OK && news && chg->uncounted)
            r = uncount(c, conv, chg->uncounted); /* unread messages erased */
        if (r == CHAT_OK)
            r = chat__cache_exec(c, c->bulk ? "RELEASE msg_insert" : "COMMIT");
        if (r != CHAT_OK)
            sqlite3_exec(c->db,
                         c->bulk ? "ROLLBACK TO msg_insert; RELEASE msg_insert" : "ROLLBACK",
                         NULL, NULL, NULL);
    }
    chat__cache_unlock(c);
    cJSON_free(js);
    return r == CHAT_OK ? ins : r;
}

int chat__cache_bulk(chat__cache *c, int on)
{
    chat__cache_lock(c);
    int r = CHAT_OK;
    if (on && !c->bulk)
        r = chat__cache_exec(c, "BEGIN IMMEDIATE");
    else if (!on && c->bulk && (r = chat__cache_exec(c, "COMMIT")) != CHAT_OK)
        sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    if (r == CHAT_OK || !on)
        c->bulk = on;
    chat__cache_unlock(c);
    return r;
}

int chat__cache_watermark(chat__cache *c, chat_conv_id conv, const char *user, uint64_t delivered,
                          uint64_t read, int64_t delivered_ts, int64_t read_ts, const char *me)
{
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "INSERT INTO members(conv, user, role, delivered, read,"
                               " delivered_ts, read_ts) VALUES(?1, ?2, 1, ?3, ?4, ?5, ?6)"
                               " ON CONFLICT(conv, user) DO UPDATE SET"
                               " delivered=max(delivered, ?3), read=max(read, ?4),"
                               " delivered_ts=max(delivered_ts, ?5), read_ts=max(read_ts, ?6)");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
        sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)delivered);
        sqlite3_bind_int64(st, 4, (sqlite3_int64)read);
        sqlite3_bind_int64(st, 5, delivered_ts);
        sqlite3_bind_int64(st, 6, read_ts);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "watermark");
    }
    chat__cache_done(c, st);
    if (r == CHAT_OK && me && strcmp(user, me) == 0) {
        chat__conv_row before;
        int had = chat__cache_conv_locked(c, conv, &before) == CHAT_OK;
        st = chat__cache_prep(c, "UPDATE convs SET delivered=max(delivered, ?2), read=max(read, ?3)"
                     " WHERE conv=?1");
        if (!st)
            r = CHAT_EIO;
        else {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)delivered);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)read);
            if (sqlite3_step(st) != SQLITE_DONE)
                r = chat__cache_err(c, "my watermark");
        }
        chat__cache_done(c, st);
        /* The unread count is what lies past my read mark, so only a read mark that moves
         * changes it: the recount costs a row per unread message, and my delivered mark comes
         * back for every message this device takes. */
        if (r == CHAT_OK && had && read > before.read)
            r = chat__cache_recount(c, conv, me);
    }
    chat__cache_unlock(c);
    return r;
}

int chat__cache_conv_muted(chat__cache *c, chat_conv_id conv, int64_t until_ms)
{
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "UPDATE convs SET muted_until=?2 WHERE conv=?1");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
        sqlite3_bind_int64(st, 2, until_ms);
        if (sqlite3_step(st) != SQLITE_DONE)
            r = chat__cache_err(c, "mute");
        else if (sqlite3_changes(c->db) == 0)
            r = CHAT_ENOTFOUND;
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    return r;
}

int chat__cache_mark_read(chat__cache *c, chat_conv_id conv, uint64_t seq)
{
    chat__cache_lock(c);
    chat__conv_row row;
    int r = chat__cache_conv_locked(c, conv, &row);
    if (r == CHAT_OK) {
        if (seq > row.head)
            seq = row.head;
        sqlite3_stmt *st = chat__cache_prep(c, "UPDATE convs SET read=max(read, ?2),"
                                   " delivered=max(delivered, ?2) WHERE conv=?1");
        if (!st)
            r = CHAT_EIO;
        else {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
            if (sqlite3_step(st) != SQLITE_DONE)
                r = chat__cache_err(c, "mark read");
        }
        chat__cache_done(c, st);
        if (r == CHAT_OK)
            r = chat__cache_recount(c, conv, NULL);
    } else if (r == CHAT_ENOTFOUND) {
        chat__error_set(r, 0, "conversation %llu is not in the cache", (unsigned long long)conv);
    }
    chat__cache_unlock(c);
    return r;
}

/* ---- lists ------------------------------------------------------------------------------- */

int chat__cache_convs(chat__cache *c, const char *me, struct chat_conv_list **out)
{
    struct chat_conv_list *l = chat__calloc(1, sizeof *l);
    if (!l)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    int64_t now = now_ms();
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(
        c, "SELECT c.conv, c.kind, c.title, c.role, c.head, c.read,"
           " (SELECT count(*) FROM members m WHERE m.conv=c.conv AND m.role<>0),"
           " (SELECT min(user) FROM members m WHERE m.conv=c.conv AND m.user<>?1), c.unread,"
           " c.muted_until"
           " FROM convs c ORDER BY c.last_ts DESC, c.conv DESC");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_text(st, 1, me ? me : "", -1, SQLITE_STATIC);
        int s;
        while (r == CHAT_OK && (s = sqlite3_step(st)) == SQLITE_ROW) {
            chat__conv_item *nv = chat__array_reserve(l->v, l->n, &l->cap, sizeof *l->v);
            if (!nv) {
                r = CHAT_ENOMEM;
                break;
            }
            l->v = nv;
            chat__conv_item *it = &l->v[l->n];
            memset(it, 0, sizeof *it);
            it->conv = sqlite3_column_int64(st, 0);
            it->kind = sqlite3_column_int(st, 1);
            it->role = sqlite3_column_int(st, 3);
            it->head = (uint64_t)sqlite3_column_int64(st, 4);
            it->read = (uint64_t)sqlite3_column_int64(st, 5);
            it->unread = it->role != CHAT_ROLE_NONE ? (uint64_t)sqlite3_column_int64(st, 8) : 0;
            it->members = (size_t)sqlite3_column_int64(st, 6);
            it->title = chat__cache_col_dup(st, 2);
            it->peer = it->kind == CHAT_CONV_DIRECT ? chat__cache_col_dup(st, 7) : chat__strdup("");
            it->muted_until = sqlite3_column_int64(st, 9);
            if (it->muted_until > 0 && it->muted_until <= now)
                it->muted_until = 0; /* the mute has ended */
            l->n++;
            if (!it->title || !it->peer)
                r = CHAT_ENOMEM;
        }
    }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    if (r != CHAT_OK) {
        chat_conv_list_free(l);
        return r == CHAT_ENOMEM ? chat__error_set(r, 0, "out of memory") : r;
    }
    *out = l;
    return CHAT_OK;
}

/* Receipt counts of my message (conv, seq). Caller holds the lock. */
static void counts_locked(chat__cache *c, const char *me, chat_conv_id conv, uint64_t seq,
                          size_t *d, size_t *rd, size_t *others)
{
    *d = *rd = *others = 0;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT count(*), sum(delivered>=?3), sum(read>=?3) FROM members"
                               " WHERE conv=?1 AND user<>?2 AND role<>0");
    if (!st)
        return;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
    sqlite3_bind_text(st, 2, me ? me : "", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
    if (sqlite3_step(st) == SQLITE_ROW) {
        *others = (size_t)sqlite3_column_int64(st, 0);
        *d = (size_t)sqlite3_column_int64(st, 1);
        *rd = (size_t)sqlite3_column_int64(st, 2);
    }
    chat__cache_done(c, st);
}

static int status_of(size_t d, size_t rd, size_t others)
{
    if (others && rd >= others)
        return CHAT_MSG_STATUS_READ;
    if (others && d >= others)
        return CHAT_MSG_STATUS_DELIVERED;
    return CHAT_MSG_STATUS_SENT;
}

/* One row of a list: columns conv, seq, ts, sender, cmid, kind, text, json, and for cached
 * messages (ncols 13) target, thread, edited, expires, flags. */
static int msg_list_add(struct chat_msg_list *l, sqlite3_stmt *st)
{
    chat__msg_item *nv = chat__array_reserve(l->v, l->n, &l->cap, sizeof *l->v);
    if (!nv)
        return CHAT_ENOMEM;
    l->v = nv;
    chat__msg_item *it = &l->v[l->n++];
    memset(it, 0, sizeof *it);
    it->conv = sqlite3_column_int64(st, 0);
    it->seq = (uint64_t)sqlite3_column_int64(st, 1);
    it->ts = sqlite3_column_int64(st, 2);
    it->from = chat__cache_col_dup(st, 3);
    it->cmid = chat__cache_col_dup(st, 4);
    it->kind = sqlite3_column_int(st, 5);
    it->text = chat__cache_col_dup(st, 6);
    it->text_len = (size_t)sqlite3_column_bytes(st, 6);
    it->json = chat__cache_col_dup(st, 7);
    if (sqlite3_column_count(st) >= 13) {
        if (it->kind == CHAT_MSG_TEXT || it->kind == CHAT_MSG_MEDIA)
            it->reply = (uint64_t)sqlite3_column_int64(st, 8);
        it->thread = (uint64_t)sqlite3_column_int64(st, 9);
        it->edited = sqlite3_column_int64(st, 10);
        it->expires = sqlite3_column_int64(st, 11);
        it->flags = sqlite3_column_int(st, 12);
    }
    return it->from && it->cmid && it->text && it->json ? CHAT_OK : CHAT_ENOMEM;
}

int chat__cache_list_add(chat__cache *c, struct chat_msg_list *l, sqlite3_stmt *st)
{
    int r = msg_list_add(l, st);
    chat__msg_item *it = &l->v[l->n - 1];
    if (r == CHAT_OK && (it->kind == CHAT_MSG_TEXT || it->kind == CHAT_MSG_MEDIA) && !it->flags)
        r = chat__cache_reactions_json(c, it->conv, it->seq, &it->reactions);
    return r;
}

int chat__cache_history(chat__cache *c, const char *me, chat_conv_id conv, uint64_t before,
                        int limit, struct chat_msg_list **out, int *missing, uint64_t *top_out)
{
    struct chat_msg_list *l = chat__calloc(1, sizeof *l);
    if (!l)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    chat__cache_lock(c);
    chat__conv_row row;
    int r = chat__cache_conv_locked(c, conv, &row);
    uint64_t head = r == CHAT_OK ? (row.head > row.max_seq ? row.head : row.max_seq) : 0;
    uint64_t top = before ? before - 1 : head;
    if (top > head)
        top = head;
    uint64_t lo = top >= (uint64_t)limit ? top - (uint64_t)limit + 1 : 1;
    if (lo <= row.joined)
        lo = row.joined + 1;
    *top_out = top;
    *missing = 0;
    if (r == CHAT_ENOTFOUND) {
        r = CHAT_OK;
        *missing = 1; /* unknown conversation: ask the server */
    } else if (r == CHAT_OK && top >= lo) {
        sqlite3_stmt *st = chat__cache_prep(c, "SELECT conv, seq, ts, sender, cmid, kind, text,"
                                               " json, target, thread, edited, expires, flags"
                                               " FROM messages WHERE conv=? AND seq BETWEEN ?"
                                               " AND ? ORDER BY seq DESC");
        if (!st)
            r = CHAT_EIO;
        else {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)conv);
            sqlite3_bind_int64(st, 2, (sqlite3_int64)lo);
            sqlite3_bind_int64(st, 3, (sqlite3_int64)top);
            uint64_t expect = top;
            while (r == CHAT_OK && sqlite3_step(st) == SQLITE_ROW) {
                if ((uint64_t)sqlite3_column_int64(st, 1) != expect)
                    break; /* a gap: stop at the contiguous tail */
                expect--;
                /* Changes (edits, deletes, reactions) are applied to their targets, and
                 * expired messages were dropped: neither is listed, both keep the range
                 * contiguous. */
                if (sqlite3_column_int(st, 5) >= CHAT_MSG_EDIT ||
                    sqlite3_column_int(st, 12) == CHAT__CACHE_EXPIRED)
                    continue;
                r = chat__cache_list_add(c, l, st);
            }
            if (expect + 1 > lo)
                *missing = 1;
        }
        chat__cache_done(c, st);
        /* ascending order, and statuses of my messages */
        for (size_t i = 0; i < l->n / 2; i++) {
            chat__msg_item t = l->v[i];
            l->v[i] = l->v[l->n - 1 - i];
            l->v[l->n - 1 - i] = t;
        }
        for (size_t i = 0; r == CHAT_OK && i < l->n; i++) {
            chat__msg_item *it = &l->v[i];
            if (me && strcmp(it->from, me) == 0 && it->kind != CHAT_MSG_EVENT) {
                counts_locked(c, me, conv, it->seq, &it->delivered, &it->read, &it->others);
                it->status = status_of(it->delivered, it->read, it->others);
            }
        }
    }
    chat__cache_unlock(c);
    l->complete = !*missing;
    if (r != CHAT_OK) {
        chat_msg_list_free(l);
        return r == CHAT_ENOMEM ? chat__error_set(r, 0, "out of memory") : r;
    }
    *out = l;
    return CHAT_OK;
}

int chat__cache_outbox_list(chat__cache *c, struct chat_msg_list **out)
{
    struct chat_msg_list *l = chat__calloc(1, sizeof *l);
    if (!l)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    l->complete = 1;
    chat__cache_lock(c);
    int r = CHAT_OK;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT conv, 0, created_ms, coalesce((SELECT value FROM meta"
                               " WHERE key='user'), ''), cmid, 1, text, '', failed FROM outbox"
                               " ORDER BY id");
    if (!st)
        r = CHAT_EIO;
    else
        while (r == CHAT_OK && sqlite3_step(st) == SQLITE_ROW) {
            r = msg_list_add(l, st);
            if (r == CHAT_OK)
                l->v[l->n - 1].status = sqlite3_column_int(st, 8) ? CHAT_MSG_STATUS_FAILED
                                                                  : CHAT_MSG_STATUS_SENDING;
        }
    chat__cache_done(c, st);
    chat__cache_unlock(c);
    if (r != CHAT_OK) {
        chat_msg_list_free(l);
        return r;
    }
    *out = l;
    return CHAT_OK;
}

int chat__cache_status(chat__cache *c, const char *me, const char *cmid, int *status,
                       chat_conv_id *conv, uint64_t *seq)
{
    chat__cache_lock(c);
    int r = CHAT_ENOTFOUND;
    *conv = *seq = 0;
    sqlite3_stmt *st = chat__cache_prep(c, "SELECT failed FROM outbox WHERE cmid=?");
    if (!st)
        r = CHAT_EIO;
    else {
        sqlite3_bind_text(st, 1, cmid, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *status = sqlite3_column_int(st, 0) ? CHAT_MSG_STATUS_FAILED : CHAT_MSG_STATUS_SENDING;
            r = CHAT_OK;
        }
    }
    chat__cache_done(c, st);
    if (r == CHAT_ENOTFOUND) {
        st = chat__cache_prep(c, "SELECT conv, seq FROM messages WHERE cmid=? AND sender=? LIMIT 1");
        if (!st)
            r = CHAT_EIO;
        else {
            sqlite3_bind_text(st, 1, cmid, -1, SQLITE_STATIC);
            sqlite3_bind_text(st, 2, me ? me : "", -1, SQLITE_STATIC);
            if (sqlite3_step(st) == SQLITE_ROW) {
                *conv = sqlite3_column_int64(st, 0);
                *seq = (uint64_t)sqlite3_column_int64(st, 1);
                r = CHAT_OK;
            }
        }
        chat__cache_done(c, st);
        if (r == CHAT_OK) {
            size_t d, rd, o;
            counts_locked(c, me, *conv, *seq, &d, &rd, &o);
            *status = status_of(d, rd, o);
        }
    }
    chat__cache_unlock(c);
    return r;
}

int chat__cache_receipts(chat__cache *c, const char *me, chat_conv_id conv, uint64_t seq,
                         size_t *delivered, size_t *read, size_t *others)
{
    chat__cache_lock(c);
    counts_locked(c, me, conv, seq, delivered, read, others);
    chat__cache_unlock(c);
    return CHAT_OK;
}
