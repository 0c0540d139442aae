/* Schema of the SQLite store: versioned by PRAGMA user_version, upgraded by an append-only list
 * of migrations applied in one transaction at open. Never edit a published migration; add one. */
#include "store/sqlite_internal.h"

#include "store/sqlite_fts.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

static const char *const migrations[] = {
    /* 1: initial schema. messages and members are WITHOUT ROWID so rows are clustered by their
     * key: a history page is one b-tree range instead of an index walk plus row lookups
     * (5-18x cheaper at 10M rows). Only two secondary indexes: every index taxes the append. */
    "CREATE TABLE conversations ("
    "  id INTEGER PRIMARY KEY,"
    "  kind INTEGER NOT NULL,"
    "  title TEXT NOT NULL DEFAULT '',"
    "  dm_key TEXT UNIQUE," /* NULL for groups: UNIQUE allows many NULLs */
    "  head_seq INTEGER NOT NULL DEFAULT 0,"
    "  change INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL DEFAULT 0,"
    "  member_count INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE members ("
    "  conv INTEGER NOT NULL,"
    "  user TEXT NOT NULL,"
    "  role INTEGER NOT NULL,"
    "  delivered_seq INTEGER NOT NULL DEFAULT 0,"
    "  read_seq INTEGER NOT NULL DEFAULT 0,"
    "  delivered_ms INTEGER NOT NULL DEFAULT 0,"
    "  read_ms INTEGER NOT NULL DEFAULT 0,"
    "  joined_seq INTEGER NOT NULL DEFAULT 0,"
    "  change INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conv, user)) WITHOUT ROWID;"
    "CREATE INDEX members_user ON members (user);" /* user_convs, contacts */
    "CREATE TABLE messages ("
    "  conv INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  sender TEXT NOT NULL,"
    "  device TEXT NOT NULL,"
    "  cmid TEXT," /* NULL: no client id, never deduplicated */
    "  kind INTEGER NOT NULL,"
    "  body BLOB NOT NULL,"
    "  PRIMARY KEY (conv, seq)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX messages_cmid ON messages (conv, sender, device, cmid);"
    "CREATE TABLE users ("
    "  name TEXT PRIMARY KEY,"
    "  pwhash TEXT NOT NULL DEFAULT '',"
    "  hide_last_seen INTEGER NOT NULL DEFAULT 0,"
    "  last_seen_ms INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE revoked ("
    "  session_id TEXT PRIMARY KEY,"
    "  exp_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE meta ("
    "  key TEXT PRIMARY KEY,"
    "  value INTEGER NOT NULL) WITHOUT ROWID;",
    /* 2: media metadata (content-addressed) and who may obtain its URLs. */
    "CREATE TABLE media ("
    "  id TEXT PRIMARY KEY,"
    "  uploader TEXT NOT NULL,"
    "  mime TEXT NOT NULL,"
    "  name TEXT NOT NULL DEFAULT '',"
    "  size INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE media_grants ("
    "  id TEXT NOT NULL,"
    "  conv INTEGER NOT NULL," /* 0: user is an uploader */
    "  user TEXT NOT NULL,"    /* '': everyone in conv */
    "  PRIMARY KEY (id, conv, user)) WITHOUT ROWID;",
    /* 3: the dedupe index leads with cmid. Keyed by conversation first, each stored message
     * dirtied its conversation's own index page (a WAL frame per message: close to half of
     * the WAL and of the checkpoint's copying); clients that start their ids with the time
     * (the client core does) now append at the index's right edge, a page or two per commit.
     * The lookup is by all four columns either way. */
    "DROP INDEX messages_cmid;"
    "CREATE UNIQUE INDEX messages_cmid ON messages (cmid, conv, sender, device);",
    /* 4: push registrations, one per (user, device), found by token when a provider reports
     * it invalid; and conversations a user muted. */
    "CREATE TABLE push_regs ("
    "  user TEXT NOT NULL,"
    "  device TEXT NOT NULL,"
    "  platform INTEGER NOT NULL,"
    "  sandbox INTEGER NOT NULL DEFAULT 0,"
    "  token TEXT NOT NULL,"
    "  topic TEXT NOT NULL DEFAULT '',"
    "  updated_ms INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (user, device)) WITHOUT ROWID;"
    "CREATE INDEX push_regs_token ON push_regs (token, platform);"
    "CREATE TABLE push_mutes ("
    "  user TEXT NOT NULL,"
    "  conv INTEGER NOT NULL,"
    "  until_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (user, conv)) WITHOUT ROWID;",
    /* 5: the message lifecycle (store version 5). A message's current state lives in its own
     * row (edited, erased, expiring, in a thread, replying to or acting on another), so a
     * history page stays one range read. The partial indexes cost only the messages they
     * cover: the expiring ones, the thread replies, those with a target. Reactions, one row
     * per (message, emoji, user). Search: a contentless FTS5 table of hashed words
     * (sqlite_fts.h) whose document ids (sid) map back to messages through search_docs; the
     * message's indexed text is its body, so the index needs no copy of it. media.refs counts
     * the messages that refer to a media object, so the last one erased removes it. */
    "ALTER TABLE messages ADD COLUMN target INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN thread INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN edited_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE messages ADD COLUMN sid INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX messages_expiry ON messages (expires_ms, conv, seq) "
    "  WHERE expires_ms > 0 AND flags & 3 = 0;"
    "CREATE INDEX messages_thread ON messages (conv, thread, seq) WHERE thread > 0;"
    "CREATE INDEX messages_target ON messages (conv, target, kind, seq) WHERE target > 0;"
    "ALTER TABLE conversations ADD COLUMN msg_ttl_ms INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE reactions ("
    "  conv INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL,"
    "  emoji TEXT NOT NULL,"
    "  user TEXT NOT NULL,"
    "  ts_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (conv, seq, emoji, user)) WITHOUT ROWID;"
    "CREATE TABLE deleted_users ("
    "  name TEXT PRIMARY KEY,"
    "  deleted_ms INTEGER NOT NULL) WITHOUT ROWID;"
    "ALTER TABLE media ADD COLUMN refs INTEGER NOT NULL DEFAULT 0;"
    "WITH r (id, n) AS MATERIALIZED ("
    "  SELECT CASE WHEN json_valid(CAST(body AS TEXT)) "
    "         THEN json_extract(CAST(body AS TEXT), '$.id') END, count(*) "
    "  FROM messages WHERE kind = 2 GROUP BY 1) "
    "UPDATE media SET refs = coalesce((SELECT n FROM r WHERE r.id = media.id), 0);"
    "CREATE TABLE search_key (k BLOB NOT NULL);"
    "INSERT INTO search_key VALUES (randomblob(16));"
    "CREATE TABLE search_docs ("
    "  sid INTEGER PRIMARY KEY,"
    "  conv INTEGER NOT NULL,"
    "  seq INTEGER NOT NULL);"
    "CREATE VIRTUAL TABLE search_fts USING fts5 (t, c, content='', tokenize='chat');",
    /* 6: a message's reactions in its own row as well (store version 6), in store/check.h's
     * text form, NULL when none: a history page reads them with the messages instead of in
     * a second statement (a page of 50 with 25 reactions: 0.024 ms, against 0.028 ms with
     * the second statement and 0.079 ms with the reactions table read in the page's query).
     * reaction_set and reaction_clear rewrite it from the reactions table, which stays the
     * source of truth (reaction_list, the rewrite itself). */
    "ALTER TABLE messages ADD COLUMN reactions TEXT;"
    "UPDATE messages SET reactions = (SELECT group_concat(length(CAST(user AS BLOB)) || ':' "
    "  || user || length(CAST(emoji AS BLOB)) || ':' || emoji || ts_ms || ';', '') FROM "
    "  (SELECT user, emoji, ts_ms FROM reactions r WHERE r.conv = messages.conv "
    "   AND r.seq = messages.seq ORDER BY emoji, ts_ms, user)) "
    "WHERE (conv, seq) IN (SELECT conv, seq FROM reactions);",
};

/* The first schema version with the search index. */
#define SEARCH_VERSION 5

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int chat__sqlite_schema_version(void)
{
    return N_MIGRATIONS;
}

const char *chat__sqlite_migration(int version)
{
    return version >= 1 && version <= N_MIGRATIONS ? migrations[version - 1] : NULL;
}

static int read_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *version = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? CHAT_OK : chat__sqlite_fail(db, rc, "read user_version");
}

static int too_new(int version)
{
    return chat__error_set(CHAT_EVERSION, 0,
                           "sqlite store: schema version %d is newer than this library's %d",
                           version, N_MIGRATIONS);
}

static int exec(sqlite3 *db, const char *sql, const char *what)
{
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? CHAT_OK : chat__sqlite_fail(db, sqlite3_extended_errcode(db), what);
}

static int set_journal(sqlite3 *db)
{
    /* The pragma answers the mode in effect; an in-memory database stays "memory", which is
     * fine: there is no file to journal. */
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? CHAT_OK : chat__sqlite_fail(db, rc, "set WAL mode");
}

/* Load the search key into fts. */
static int load_key(sqlite3 *db, chat__fts *fts)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT k FROM search_key", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW &&
        sqlite3_column_bytes(st, 0) == CHAT__FTS_KEY_BYTES) {
        chat__fts_set_key(fts, sqlite3_column_blob(st, 0));
        rc = SQLITE_OK;
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        rc = SQLITE_CORRUPT;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_OK ? CHAT_OK : chat__sqlite_fail(db, rc, "read the search key");
}

/* Index every message stored before the search index existed, in the migration's
 * transaction. */
static int index_existing(sqlite3 *db)
{
    sqlite3_stmt *sel = NULL, *doc = NULL, *fts = NULL, *upd = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT conv, seq, kind, body FROM messages "
                                    "WHERE kind IN (1, 2) ORDER BY conv, seq", -1, &sel, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO search_docs (conv, seq) VALUES (?1, ?2)", -1,
                                &doc, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO search_fts (rowid, t, c) VALUES (?1, ?2, ?3)",
                                -1, &fts, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "UPDATE messages SET sid = ?3 WHERE conv = ?1 AND seq = ?2",
                                -1, &upd, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
        rc = SQLITE_OK;
        size_t len;
        char *owned;
        const char *text = chat__fts_doc(sqlite3_column_int(sel, 2), sqlite3_column_blob(sel, 3),
                                         (size_t)sqlite3_column_bytes(sel, 3), &len, &owned);
        if (!text)
            continue;
        sqlite3_int64 conv = sqlite3_column_int64(sel, 0), seq = sqlite3_column_int64(sel, 1);
        char cs[24];
        snprintf(cs, sizeof cs, "%lld", (long long)conv);
        sqlite3_bind_int64(doc, 1, conv);
        sqlite3_bind_int64(doc, 2, seq);
        if ((rc = sqlite3_step(doc)) == SQLITE_DONE) {
            sqlite3_int64 sid = sqlite3_last_insert_rowid(db);
            sqlite3_bind_int64(fts, 1, sid);
            sqlite3_bind_text(fts, 2, text, (int)len, SQLITE_STATIC);
            sqlite3_bind_text(fts, 3, cs, -1, SQLITE_STATIC);
            if ((rc = sqlite3_step(fts)) == SQLITE_DONE) {
                sqlite3_bind_int64(upd, 1, conv);
                sqlite3_bind_int64(upd, 2, seq);
                sqlite3_bind_int64(upd, 3, sid);
                rc = sqlite3_step(upd);
            }
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_reset(doc);
        sqlite3_reset(fts);
        sqlite3_reset(upd);
        chat__free(owned);
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    int ret = rc == SQLITE_OK ? CHAT_OK : chat__sqlite_fail(db, rc, "index the stored messages");
    sqlite3_finalize(sel);
    sqlite3_finalize(doc);
    sqlite3_finalize(fts);
    sqlite3_finalize(upd);
    return ret;
}

static int upgrade(sqlite3 *db, chat__fts *fts)
{
    int version = 0, rc;
    if ((rc = exec(db, "BEGIN IMMEDIATE", "begin migration")))
        return rc;
    /* Re-read under the write lock: another process may have migrated meanwhile. */
    if ((rc = read_version(db, &version)))
        goto fail;
    if (version > N_MIGRATIONS) {
        rc = too_new(version);
        goto fail;
    }
    for (int v = version; v < N_MIGRATIONS; v++)
        if ((rc = exec(db, migrations[v], "migrate schema")))
            goto fail;
    if ((rc = load_key(db, fts)) || (version < SEARCH_VERSION && (rc = index_existing(db))))
        goto fail;
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", N_MIGRATIONS);
    if ((rc = exec(db, sql, "write user_version")) || (rc = exec(db, "COMMIT", "commit migration")))
        goto fail;
    return CHAT_OK;
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int chat__sqlite_migrate(sqlite3 *db, unsigned int flags, chat__fts *fts)
{
    int version = 0, rc;
    /* Check first: a newer database is refused before anything (journal mode included) is
     * changed in it. */
    if ((rc = read_version(db, &version)))
        return rc;
    if (version > N_MIGRATIONS)
        return too_new(version);
    if ((rc = set_journal(db)))
        return rc;
    if ((rc = exec(db, (flags & CHAT_STORE_SQLITE_SYNC_FULL) ? "PRAGMA synchronous=FULL"
                                                             : "PRAGMA synchronous=NORMAL",
                   "set synchronous")))
        return rc;
    /* Erased bodies: the bytes a write replaces or frees are zeroed in the pages, and the WAL
     * shrinks to nothing whenever it restarts, so old page images do not outlive it. */
    if ((rc = exec(db, "PRAGMA secure_delete=ON; PRAGMA journal_size_limit=0",
                   "set secure_delete")))
        return rc;
    return version < N_MIGRATIONS ? upgrade(db, fts) : load_key(db, fts);
}
