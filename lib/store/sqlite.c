/* SQLite store: lifecycle, transactions, error mapping, the checkpoint thread and the vtable.
 * The engine calls one instance from one thread at a time (possibly not the opening thread), so
 * the connection is opened NOMUTEX and every statement is prepared once here and reused.
 *
 * The store assumes valid arguments and a legal call order (no begin() inside a transaction,
 * no commit() or rollback() outside one, no re-entry from a row callback but the point reads):
 * the checking layer (store/checked.h) that every caller goes through refuses the rest. */
#include "store/sqlite_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/thread.h"
#include "store/sqlite_fts.h"

#include <time.h>
#include <unistd.h>

/* Writers in other processes (a backup, the CLI) get this long before we report EIO. */
#define BUSY_TIMEOUT_MS 5000

/* The checkpoint thread is woken each time the WAL has grown by this many frames (pages):
 * SQLite's own auto-checkpoint threshold, so the power-loss window of synchronous=NORMAL
 * (commits since the last checkpoint's WAL fsync) stays what it was. */
#define CKPT_WAKE_FRAMES 1000
/* A PASSIVE checkpoint never blocks, so under a steady load it may never find the WAL fully
 * copied at the moment the writer starts a transaction, which is when SQLite restarts the WAL
 * from its beginning. Past this size (~64 MiB at 4 KiB pages) the committing call checkpoints
 * the rest itself, with no transaction open: the next transaction then restarts the WAL. By
 * then the thread has copied nearly everything, so this costs the writer the two fsyncs and
 * little copying, once per CKPT_HARD_FRAMES instead of a full checkpoint per 1000 frames. If a
 * reader in another process pins the WAL, it repeats every CKPT_WAKE_FRAMES, like SQLite's. */
#define CKPT_HARD_FRAMES 16000

#define CONV_COLS "id, kind, title, dm_key, head_seq, change, created_ms, member_count, " \
                  "msg_ttl_ms"
#define MEMBER_COLS "conv, user, role, delivered_seq, read_seq, delivered_ms, read_ms, " \
                    "joined_seq, change"
#define MSG_COLS "conv, seq, ts_ms, sender, device, cmid, kind, body, target, thread, " \
                 "edited_ms, expires_ms, flags"
/* A message's reactions in store/check.h's text form, built from the reactions table (NULL
 * when none): what reaction_set and reaction_clear write into messages.reactions, which the
 * message reads return with the row (built in the read itself, a page cost 3x as much). The
 * inner ORDER BY holds: SQLite does not flatten an ordered subquery into an aggregate. */
#define REACTS_OF(conv, seq)                                                                 \
    "(SELECT group_concat(length(CAST(user AS BLOB)) || ':' || user || "                   \
    "length(CAST(emoji AS BLOB)) || ':' || emoji || ts_ms || ';', '') FROM "                \
    "(SELECT user, emoji, ts_ms FROM reactions WHERE conv = " conv " AND seq = " seq       \
    " ORDER BY emoji, ts_ms, user))"
#define MSG_READ MSG_COLS ", reactions"
#define PUSH_REG_COLS "user, device, platform, sandbox, token, topic, updated_ms"
/* Not erased: neither CHAT_STORE_MSG_DELETED nor CHAT_STORE_MSG_EXPIRED (the partial index
 * messages_expiry is defined with the same words). */
#define LIVE "flags & 3 = 0"
#define INBOX_CHANGE "(CASE WHEN m.role = 0 THEN m.change ELSE max(m.change, c.change) END)"

const char *const chat__sqlite_sql[CHAT__ST_COUNT] = {
    [CHAT__ST_BEGIN] = "BEGIN IMMEDIATE",
    [CHAT__ST_COMMIT] = "COMMIT",
    [CHAT__ST_ROLLBACK] = "ROLLBACK",
    [CHAT__ST_CONV_INSERT] =
        "INSERT INTO conversations (kind, title, dm_key, head_seq, change, created_ms, "
        "member_count, msg_ttl_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [CHAT__ST_CONV_GET] = "SELECT " CONV_COLS " FROM conversations WHERE id = ?1",
    [CHAT__ST_CONV_FIND] = "SELECT " CONV_COLS " FROM conversations WHERE dm_key = ?1",
    [CHAT__ST_CONV_UPDATE] = "UPDATE conversations SET title = ?2, head_seq = ?3, change = ?4, "
                             "member_count = ?5, msg_ttl_ms = ?6 WHERE id = ?1",
    [CHAT__ST_MEMBER_GET] = "SELECT " MEMBER_COLS " FROM members WHERE conv = ?1 AND user = ?2",
    [CHAT__ST_MEMBER_PUT] =
        "INSERT INTO members (" MEMBER_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT (conv, user) DO UPDATE SET role = excluded.role, "
        "delivered_seq = excluded.delivered_seq, read_seq = excluded.read_seq, "
        "delivered_ms = excluded.delivered_ms, read_ms = excluded.read_ms, "
        "joined_seq = excluded.joined_seq, change = excluded.change",
    [CHAT__ST_MEMBER_SET] = "UPDATE members SET role = ?3, delivered_seq = ?4, read_seq = ?5, "
                            "delivered_ms = ?6, read_ms = ?7, joined_seq = ?8, change = ?9 "
                            "WHERE conv = ?1 AND user = ?2",
    [CHAT__ST_MEMBER_LIST] =
        "SELECT " MEMBER_COLS " FROM members WHERE conv = ?1 ORDER BY user",
    [CHAT__ST_MEMBER_LIST_ACTIVE] =
        "SELECT " MEMBER_COLS " FROM members WHERE conv = ?1 AND role > 0 ORDER BY user",
    [CHAT__ST_MSG_INSERT] =
        "INSERT INTO messages (" MSG_COLS ", sid) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
    [CHAT__ST_MSG_CMID] = "SELECT " MSG_READ " FROM messages "
                          "WHERE conv = ?1 AND sender = ?2 AND device = ?3 AND cmid = ?4",
    [CHAT__ST_MSG_RANGE_ASC] = "SELECT " MSG_READ " FROM messages "
                               "WHERE conv = ?1 AND seq > ?2 AND seq <= ?3 "
                               "ORDER BY seq LIMIT ?4",
    [CHAT__ST_MSG_RANGE_DESC] = "SELECT " MSG_READ " FROM messages "
                                "WHERE conv = ?1 AND seq > ?2 AND seq <= ?3 "
                                "ORDER BY seq DESC LIMIT ?4",
    /* Ties on the change counter are ordered by conversation so both backends agree. A member
     * who left sees no change of the conversation after leaving: only its own row counts. */
    [CHAT__ST_USER_CONVS] =
        "SELECT m.conv, m.user, m.role, m.delivered_seq, m.read_seq, m.delivered_ms, "
        "m.read_ms, m.joined_seq, m.change FROM members m "
        "JOIN conversations c ON c.id = m.conv "
        "WHERE m.user = ?1 AND " INBOX_CHANGE " > ?2 "
        "ORDER BY " INBOX_CHANGE ", m.conv LIMIT ?3",
    [CHAT__ST_CONTACTS] =
        "SELECT DISTINCT o.user FROM members me JOIN members o ON o.conv = me.conv "
        "WHERE me.user = ?1 AND me.role > 0 AND o.role > 0 AND o.user <> ?1 ORDER BY o.user",
    [CHAT__ST_USER_GET] = "SELECT name, pwhash, hide_last_seen, last_seen_ms, created_ms "
                          "FROM users WHERE name = ?1",
    [CHAT__ST_USER_PUT] =
        "INSERT INTO users (name, pwhash, hide_last_seen, last_seen_ms, created_ms) "
        "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (name) DO UPDATE SET "
        "pwhash = excluded.pwhash, hide_last_seen = excluded.hide_last_seen, "
        "last_seen_ms = excluded.last_seen_ms, created_ms = excluded.created_ms",
    [CHAT__ST_REVOKED_PUT] = "INSERT INTO revoked (session_id, exp_ms) VALUES (?1, ?2) "
                             "ON CONFLICT (session_id) DO UPDATE SET exp_ms = excluded.exp_ms",
    [CHAT__ST_REVOKED_LIST] = "SELECT session_id, exp_ms FROM revoked WHERE exp_ms > ?1 "
                              "ORDER BY session_id",
    [CHAT__ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [CHAT__ST_META_SET] = "INSERT INTO meta (key, value) VALUES (?1, ?2) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    [CHAT__ST_MEDIA_PUT] = "INSERT INTO media (id, uploader, mime, name, size, created_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [CHAT__ST_MEDIA_GET] = "SELECT id, uploader, mime, name, size, created_ms FROM media "
                           "WHERE id = ?1",
    [CHAT__ST_MEDIA_GRANT] = "INSERT INTO media_grants (id, conv, user) VALUES (?1, ?2, ?3) "
                             "ON CONFLICT DO NOTHING",
    [CHAT__ST_MEDIA_GRANTS] = "SELECT conv, user FROM media_grants WHERE id = ?1 "
                              "ORDER BY conv, user",
    [CHAT__ST_MSG_GET] = "SELECT " MSG_READ " FROM messages WHERE conv = ?1 AND seq = ?2",
    [CHAT__ST_MSG_OLD] = "SELECT kind, body, sid FROM messages WHERE conv = ?1 AND seq = ?2",
    [CHAT__ST_MSG_UPDATE] = "UPDATE messages SET kind = ?3, body = ?4, flags = ?5, "
                            "edited_ms = ?6, expires_ms = ?7, sid = ?8 "
                            "WHERE conv = ?1 AND seq = ?2",
    /* "target > 0" lets the planner use the partial index messages_target. */
    [CHAT__ST_MSG_RELATED] = "SELECT " MSG_READ " FROM messages WHERE conv = ?1 AND target > 0 "
                             "AND target = ?2 AND kind = ?3 ORDER BY seq",
    [CHAT__ST_MSG_THREAD_ASC] = "SELECT " MSG_READ " FROM messages WHERE conv = ?1 "
                                "AND thread > 0 AND thread = ?2 AND seq > ?3 AND seq <= ?4 "
                                "ORDER BY seq LIMIT ?5",
    [CHAT__ST_MSG_THREAD_DESC] = "SELECT " MSG_READ " FROM messages WHERE conv = ?1 "
                                 "AND thread > 0 AND thread = ?2 AND seq > ?3 AND seq <= ?4 "
                                 "ORDER BY seq DESC LIMIT ?5",
    [CHAT__ST_MSG_COUNT] = "SELECT count(*) FROM messages WHERE conv = ?1 AND seq > ?3 "
                           "AND seq <= ?4 AND thread = ?2 AND kind <= 3 AND " LIVE,
    [CHAT__ST_MSG_EXPIRED] = "SELECT " MSG_READ " FROM messages WHERE expires_ms > 0 AND " LIVE
                             " AND expires_ms <= ?1 ORDER BY expires_ms, conv, seq LIMIT ?2",
    [CHAT__ST_MSG_BY_SENDER] = "SELECT " MSG_READ " FROM messages WHERE conv = ?1 AND seq > ?3 "
                               "AND sender = ?2 AND " LIVE " ORDER BY seq LIMIT ?4",
    [CHAT__ST_SEARCH] = "SELECT d.conv, d.seq, f.rowid FROM search_fts f "
                        "JOIN search_docs d ON d.sid = f.rowid "
                        "WHERE search_fts MATCH ?1 AND f.rowid < ?2 ORDER BY f.rowid DESC",
    [CHAT__ST_SID_MAX] = "SELECT coalesce(max(sid), 0) FROM search_docs",
    [CHAT__ST_CONV_MAX] = "SELECT coalesce(max(id), 0) FROM conversations",
    [CHAT__ST_DOC_INSERT] = "INSERT INTO search_docs (sid, conv, seq) VALUES (?1, ?2, ?3)",
    [CHAT__ST_DOC_DELETE] = "DELETE FROM search_docs WHERE sid = ?1",
    [CHAT__ST_FTS_INSERT] = "INSERT INTO search_fts (rowid, t, c) VALUES (?1, ?2, ?3)",
    /* A contentless table forgets a document given the very values it indexed. */
    [CHAT__ST_FTS_DELETE] = "INSERT INTO search_fts (search_fts, rowid, t, c) "
                            "VALUES ('delete', ?1, ?2, ?3)",
    [CHAT__ST_REACT_PUT] = "INSERT INTO reactions (conv, seq, emoji, user, ts_ms) "
                           "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    [CHAT__ST_REACT_DEL] = "DELETE FROM reactions WHERE conv = ?1 AND seq = ?2 AND emoji = ?3 "
                           "AND user = ?4",
    [CHAT__ST_REACT_LIST] = "SELECT conv, seq, user, emoji, ts_ms FROM reactions "
                            "WHERE conv = ?1 AND seq > ?2 AND seq <= ?3 "
                            "ORDER BY seq, emoji, user",
    [CHAT__ST_REACT_CLEAR_MSG] = "DELETE FROM reactions WHERE conv = ?1 AND seq = ?2 "
                                 "AND (?3 = '' OR user = ?3)",
    [CHAT__ST_REACT_CLEAR_CONV] = "DELETE FROM reactions WHERE conv = ?1 "
                                  "AND (?2 = '' OR user = ?2)",
    [CHAT__ST_REACT_SYNC_MSG] = "UPDATE messages SET reactions = " REACTS_OF("?1", "?2")
                                " WHERE conv = ?1 AND seq = ?2",
    [CHAT__ST_REACT_SYNC_CONV] = "UPDATE messages SET reactions = "
                                 REACTS_OF("messages.conv", "messages.seq")
                                 " WHERE conv = ?1 AND reactions IS NOT NULL",
    [CHAT__ST_USER_DEL] = "DELETE FROM users WHERE name = ?1",
    [CHAT__ST_DELETED_PUT] = "INSERT INTO deleted_users (name, deleted_ms) VALUES (?1, ?2) "
                             "ON CONFLICT (name) DO UPDATE SET deleted_ms = excluded.deleted_ms",
    [CHAT__ST_DELETED_LIST] = "SELECT name, deleted_ms FROM deleted_users ORDER BY name",
    [CHAT__ST_MEDIA_REFS] = "UPDATE media SET refs = refs + ?2 WHERE id = ?1 RETURNING refs",
    [CHAT__ST_MEDIA_DEL] = "DELETE FROM media WHERE id = ?1",
    [CHAT__ST_GRANTS_DEL] = "DELETE FROM media_grants WHERE id = ?1",
    [CHAT__ST_PUSH_REG_PUT] =
        "INSERT INTO push_regs (" PUSH_REG_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
        "ON CONFLICT (user, device) DO UPDATE SET platform = excluded.platform, "
        "sandbox = excluded.sandbox, token = excluded.token, topic = excluded.topic, "
        "updated_ms = excluded.updated_ms",
    [CHAT__ST_PUSH_REG_DEL] = "DELETE FROM push_regs WHERE user = ?1 AND device = ?2",
    [CHAT__ST_PUSH_REG_DEL_TOKEN] = "DELETE FROM push_regs WHERE token = ?1 AND platform = ?2",
    [CHAT__ST_PUSH_REG_LIST] = "SELECT " PUSH_REG_COLS " FROM push_regs WHERE user = ?1 "
                               "ORDER BY device",
    [CHAT__ST_PUSH_MUTE_PUT] = "INSERT INTO push_mutes (user, conv, until_ms) VALUES (?1, ?2, ?3) "
                               "ON CONFLICT (user, conv) DO UPDATE SET until_ms = excluded.until_ms",
    [CHAT__ST_PUSH_MUTE_DEL] = "DELETE FROM push_mutes WHERE user = ?1 AND conv = ?2",
    [CHAT__ST_PUSH_MUTE_GET] = "SELECT until_ms FROM push_mutes WHERE user = ?1 AND conv = ?2",
};

int chat__sqlite_fail(sqlite3 *db, int rc, const char *what)
{
    int code = (rc & 0xff) == SQLITE_NOMEM ? CHAT_ENOMEM : CHAT_EIO;
    return chat__error_set(code, rc, "sqlite store: %s: %s", what,
                           db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

void chat__sqlite_reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

int chat__sqlite_exec(chat__sqlite *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    int ret = CHAT_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = (rc & 0xff) == SQLITE_CONSTRAINT
                  ? chat__error_set(CHAT_EEXISTS, rc, "sqlite store: %s: %s", what,
                                    sqlite3_errmsg(s->db))
                  : chat__sqlite_fail(s->db, rc, what);
    chat__sqlite_reset(st);
    return ret;
}

/* ---- checkpoint thread ------------------------------------------------------------------- */

static void checkpoint(chat__sqlite_ckpt *ck, sqlite3 *db)
{
    /* Failures are not the commit's: the next checkpoint, or the one at close, retries. */
    pthread_mutex_lock(&ck->ckpt);
    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    pthread_mutex_unlock(&ck->ckpt);
}

/* After an erasure: once the WAL is checkpointed whole, truncate it, so the page images it
 * held from before the erasure are gone from the file too. The truncation needs a moment when
 * the writer holds no transaction: it is tried (never waiting for a lock: this connection has
 * no busy handler) every WIPE_RETRY_MS, at most WIPE_TRIES times; failing that, the WAL is
 * truncated anyway when it next restarts (journal_size_limit=0). Called with ck->lock held. */
#define WIPE_RETRY_MS 20
#define WIPE_TRIES 100

static void wipe_wal(chat__sqlite_ckpt *ck)
{
    for (int i = 0; i < WIPE_TRIES && !ck->stop; i++) {
        pthread_mutex_unlock(&ck->lock);
        pthread_mutex_lock(&ck->ckpt);
        int rc = sqlite3_wal_checkpoint_v2(ck->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        pthread_mutex_unlock(&ck->ckpt);
        pthread_mutex_lock(&ck->lock);
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
            return;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += WIPE_RETRY_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (!ck->stop)
            pthread_cond_timedwait(&ck->cond, &ck->lock, &ts);
    }
}

static void *ckpt_main(void *arg)
{
    chat__sqlite_ckpt *ck = arg;
    chat__thread_name("chat-checkpoint");
    pthread_mutex_lock(&ck->lock);
    for (;;) {
        while (!ck->wake && !ck->wipe && !ck->stop)
            pthread_cond_wait(&ck->cond, &ck->lock);
        if (ck->stop)
            break;
        int wipe = ck->wipe;
        ck->wake = ck->wipe = 0;
        pthread_mutex_unlock(&ck->lock);
        checkpoint(ck, ck->db);
        pthread_mutex_lock(&ck->lock);
        if (wipe)
            wipe_wal(ck);
    }
    pthread_mutex_unlock(&ck->lock);
    return NULL;
}

/* The writer connection's WAL hook: runs inside every COMMIT, after it succeeded, with the WAL's
 * size in frames. It replaces SQLite's auto-checkpoint on this connection. Returns SQLITE_OK
 * always: an error here would fail a COMMIT that happened. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    chat__sqlite_ckpt *ck = arg;
    (void)name;
    if (frames < ck->last_frames)
        ck->next_wake = CKPT_WAKE_FRAMES; /* the WAL restarted from its beginning */
    ck->last_frames = frames;
    if (frames >= CKPT_HARD_FRAMES && frames >= ck->next_wake) {
        checkpoint(ck, db);
        ck->next_wake = frames + CKPT_WAKE_FRAMES;
    } else if (frames >= ck->next_wake) {
        ck->next_wake = frames + CKPT_WAKE_FRAMES;
        pthread_mutex_lock(&ck->lock);
        ck->wake = 1;
        pthread_cond_signal(&ck->cond);
        pthread_mutex_unlock(&ck->lock);
    }
    return SQLITE_OK;
}

static void ckpt_stop(chat__sqlite *s)
{
    chat__sqlite_ckpt *ck = s->ck;
    if (!ck)
        return;
    sqlite3_wal_hook(s->db, NULL, NULL);
    if (ck->started) {
        pthread_mutex_lock(&ck->lock);
        ck->stop = 1;
        pthread_cond_signal(&ck->cond);
        pthread_mutex_unlock(&ck->lock);
        pthread_join(ck->thread, NULL);
    }
    /* Not the last connection: closing it neither checkpoints nor removes the WAL. */
    sqlite3_close_v2(ck->db);
    pthread_cond_destroy(&ck->cond);
    pthread_mutex_destroy(&ck->ckpt);
    pthread_mutex_destroy(&ck->lock);
    chat__free(ck);
    s->ck = NULL;
}

static int is_wal_file(sqlite3 *db)
{
    const char *file = sqlite3_db_filename(db, "main");
    if (!file || !*file)
        return 0; /* in memory or temporary: nothing to checkpoint, no second connection */
    sqlite3_stmt *st = NULL;
    int wal = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        wal = mode && sqlite3_stricmp(mode, "wal") == 0;
    }
    sqlite3_finalize(st);
    return wal;
}

/* Open the checkpoint connection and start the thread, then take over the writer's WAL hook. */
static int ckpt_start(chat__sqlite *s, const char *vfs, unsigned int flags)
{
    if (!is_wal_file(s->db))
        return CHAT_OK;
    chat__sqlite_ckpt *ck = chat__calloc(1, sizeof *ck);
    if (!ck)
        return chat__error_set(CHAT_ENOMEM, 0, "sqlite store: out of memory");
    pthread_mutex_init(&ck->lock, NULL);
    pthread_mutex_init(&ck->ckpt, NULL);
    pthread_cond_init(&ck->cond, NULL);
    ck->next_wake = CKPT_WAKE_FRAMES;
    s->ck = ck;
    int rc = sqlite3_open_v2(sqlite3_db_filename(s->db, "main"), &ck->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, vfs);
    if (rc != SQLITE_OK)
        return chat__sqlite_fail(ck->db, ck->db ? sqlite3_extended_errcode(ck->db) : rc,
                                 "open the checkpoint connection");
    sqlite3_extended_result_codes(ck->db, 1);
    /* The checkpoint's fsyncs follow the connection's setting; a first read makes the
     * connection open the WAL, without which its checkpoint does nothing. */
    rc = sqlite3_exec(ck->db,
                      (flags & CHAT_STORE_SQLITE_SYNC_FULL)
                          ? "PRAGMA synchronous=FULL; SELECT count(*) FROM sqlite_master"
                          : "PRAGMA synchronous=NORMAL; SELECT count(*) FROM sqlite_master",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return chat__sqlite_fail(ck->db, sqlite3_extended_errcode(ck->db),
                                 "prepare the checkpoint connection");
    if (chat__thread_start(&ck->thread, ckpt_main, ck) != 0)
        return chat__error_set(CHAT_ERROR, 0, "sqlite store: cannot start the checkpoint thread");
    ck->started = 1;
    sqlite3_wal_hook(s->db, wal_hook, ck); /* replaces (turns off) the auto-checkpoint */
    return CHAT_OK;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void destroy(void *state)
{
    chat__sqlite *s = state;
    if (!s)
        return;
    /* The thread and its connection go first, so the writer's close below is the last
     * connection's and checkpoints the WAL as before. */
    ckpt_stop(s);
    for (int i = 0; i < CHAT__ST_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    /* Closing with a transaction open rolls it back. */
    sqlite3_close_v2(s->db);
    chat__free(s);
}

int chat_store_sqlite_vacuum(const char *path)
{
    if (!path)
        return chat__error_set(CHAT_EINVAL, 0, "sqlite store: NULL path");
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int missing = rc == SQLITE_CANTOPEN && access(path, F_OK) != 0;
        rc = chat__error_set(missing ? CHAT_ENOTFOUND : CHAT_EIO, rc,
                             "sqlite store: cannot open %s: %s", path,
                             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return rc;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    /* VACUUM writes every page anew (through the WAL), so nothing of a page's unused space
     * survives; the checkpoint then puts them in the file, truncates it to the pages in use
     * and empties the WAL. secure_delete as the store runs, for the pages VACUUM frees. */
    char *err = NULL;
    rc = sqlite3_exec(db,
                      "PRAGMA secure_delete=ON; VACUUM; PRAGMA wal_checkpoint(TRUNCATE);",
                      NULL, NULL, &err);
    if (rc != SQLITE_OK)
        rc = chat__error_set(CHAT_EIO, sqlite3_extended_errcode(db),
                             "sqlite store: cannot vacuum %s: %s", path,
                             err ? err : sqlite3_errmsg(db));
    sqlite3_free(err);
    sqlite3_close(db);
    return rc;
}

int chat_store_sqlite_open(void **state_out, const char *path, unsigned int flags,
                           const char *vfs)
{
    if (!state_out || !path)
        return chat__error_set(CHAT_EINVAL, 0, "sqlite store: NULL state_out or path");
    if (flags & ~(CHAT_STORE_SQLITE_SYNC_FULL | CHAT_STORE_SQLITE_INLINE_CHECKPOINT))
        return chat__error_set(CHAT_EINVAL, 0, "sqlite store: unknown flags 0x%x", flags);
    chat__sqlite *s = chat__calloc(1, sizeof *s);
    if (!s)
        return chat__error_set(CHAT_ENOMEM, 0, "sqlite store: out of memory");

    /* The WAL write gatherer over the chosen VFS; without it (an unknown vfs name, which
     * then fails in the open below as before, or no room for another shim), the VFS as is. */
    const char *shim = chat__sqlite_walbuf_vfs(vfs);
    if (shim)
        vfs = shim;
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             vfs);
    if (rc != SQLITE_OK) {
        rc = chat__error_set(CHAT_EIO, s->db ? sqlite3_extended_errcode(s->db) : rc,
                             "sqlite store: cannot open %s: %s", path,
                             s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        destroy(s);
        return rc;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    if ((rc = chat__fts_register(s->db, &s->fts)) ||
        (rc = chat__sqlite_migrate(s->db, flags, s->fts))) {
        destroy(s);
        return rc;
    }
    /* A WAL left by a crash may hold page images from before erasures it also holds:
     * checkpoint it into the database and drop it before anything else. */
    sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    for (int i = 0; i < CHAT__ST_COUNT; i++) {
        int prc = sqlite3_prepare_v3(s->db, chat__sqlite_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                     &s->st[i], NULL);
        if (prc != SQLITE_OK) {
            rc = chat__sqlite_fail(s->db, sqlite3_extended_errcode(s->db), "prepare");
            destroy(s);
            return rc;
        }
    }
    sqlite3_stmt *st = s->st[CHAT__ST_SID_MAX];
    if (sqlite3_step(st) == SQLITE_ROW)
        s->next_sid = sqlite3_column_int64(st, 0) + 1;
    chat__sqlite_reset(st);
    if (!s->next_sid) {
        rc = chat__sqlite_fail(s->db, sqlite3_extended_errcode(s->db),
                               "read the search documents");
        destroy(s);
        return rc;
    }
    if (!(flags & CHAT_STORE_SQLITE_INLINE_CHECKPOINT) && (rc = ckpt_start(s, vfs, flags))) {
        destroy(s);
        return rc;
    }
    *state_out = s;
    return CHAT_OK;
}

static int begin(void *state)
{
    chat__sqlite *s = state;
    return chat__sqlite_exec(s, s->st[CHAT__ST_BEGIN], "begin");
}

/* A committed erasure: the old page images must leave the WAL too (see wipe_wal). With the
 * checkpoint thread, it does that; inline, the writer itself checkpoints and truncates. */
static void wipe_after_erasure(chat__sqlite *s)
{
    if (s->ck) {
        pthread_mutex_lock(&s->ck->lock);
        s->ck->wipe = 1;
        pthread_cond_signal(&s->ck->cond);
        pthread_mutex_unlock(&s->ck->lock);
    } else {
        sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    }
}

static int commit(void *state)
{
    chat__sqlite *s = state;
    if (sqlite3_get_autocommit(s->db)) {
        /* An I/O error or a full disk already rolled the transaction back; the caller's
         * rollback() then has nothing to do. */
        return chat__error_set(CHAT_EIO, SQLITE_ABORT,
                               "sqlite store: commit: transaction was rolled back by an error");
    }
    /* A failed COMMIT (SQLITE_BUSY) may leave the transaction open for rollback(). */
    int rc = chat__sqlite_exec(s, s->st[CHAT__ST_COMMIT], "commit");
    if (rc == CHAT_OK && s->erased) {
        s->erased = 0;
        wipe_after_erasure(s);
    }
    return rc;
}

static int rollback(void *state)
{
    chat__sqlite *s = state;
    s->erased = 0;
    /* Nothing to undo when an error already rolled the transaction back. */
    if (sqlite3_get_autocommit(s->db))
        return CHAT_OK;
    return chat__sqlite_exec(s, s->st[CHAT__ST_ROLLBACK], "rollback");
}

static int ctl(void *state, int op, void *arg)
{
    (void)state;
    (void)arg;
    return chat__error_set(CHAT_ENOTSUP, 0, "sqlite store: unknown ctl op %d", op);
}

static const chat_store_ops sqlite_ops = {
    .version = CHAT_STORE_OPS_VERSION,
    .destroy = destroy,
    .begin = begin,
    .commit = commit,
    .rollback = rollback,
    .conv_insert = chat__sqlite_conv_insert,
    .conv_get = chat__sqlite_conv_get,
    .conv_find_direct = chat__sqlite_conv_find_direct,
    .conv_update = chat__sqlite_conv_update,
    .member_get = chat__sqlite_member_get,
    .member_put = chat__sqlite_member_put,
    .member_list = chat__sqlite_member_list,
    .msg_insert = chat__sqlite_msg_insert,
    .msg_find_cmid = chat__sqlite_msg_find_cmid,
    .msg_range = chat__sqlite_msg_range,
    .user_convs = chat__sqlite_user_convs,
    .contacts = chat__sqlite_contacts,
    .user_get = chat__sqlite_user_get,
    .user_put = chat__sqlite_user_put,
    .revoked_put = chat__sqlite_revoked_put,
    .revoked_list = chat__sqlite_revoked_list,
    .meta_get = chat__sqlite_meta_get,
    .meta_set = chat__sqlite_meta_set,
    .ctl = ctl,
    .media_put = chat__sqlite_media_put,
    .media_get = chat__sqlite_media_get,
    .media_grant = chat__sqlite_media_grant,
    .media_grants = chat__sqlite_media_grants,
    .msg_get = chat__sqlite_msg_get,
    .msg_update = chat__sqlite_msg_update,
    .msg_related = chat__sqlite_msg_related,
    .msg_thread = chat__sqlite_msg_thread,
    .msg_count = chat__sqlite_msg_count,
    .msg_expired = chat__sqlite_msg_expired,
    .msg_by_sender = chat__sqlite_msg_by_sender,
    .msg_search = chat__sqlite_msg_search,
    .reaction_set = chat__sqlite_reaction_set,
    .reaction_list = chat__sqlite_reaction_list,
    .reaction_clear = chat__sqlite_reaction_clear,
    .user_delete = chat__sqlite_user_delete,
    .user_deleted = chat__sqlite_user_deleted,
    .media_refs = chat__sqlite_media_refs,
    .media_delete = chat__sqlite_media_delete,
    .push_reg_put = chat__sqlite_push_reg_put,
    .push_reg_del = chat__sqlite_push_reg_del,
    .push_reg_del_token = chat__sqlite_push_reg_del_token,
    .push_reg_list = chat__sqlite_push_reg_list,
    .push_mute_put = chat__sqlite_push_mute_put,
    .push_mute_get = chat__sqlite_push_mute_get,
};

const chat_store_ops *chat_store_sqlite_ops(void)
{
    return &sqlite_ops;
}
