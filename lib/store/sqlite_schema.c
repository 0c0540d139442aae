/* Schema of the SQLite store: versioned by PRAGMA user_version, upgraded by an append-only list
 * of migrations applied in one transaction at open. Never edit a published migration; add one. */
#include "store/sqlite_internal.h"

#include "core/error.h"

#include <stdio.h>

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
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int chat__sqlite_schema_version(void)
{
    return N_MIGRATIONS;
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

static int upgrade(sqlite3 *db)
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
    char sql[48];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", N_MIGRATIONS);
    if ((rc = exec(db, sql, "write user_version")) || (rc = exec(db, "COMMIT", "commit migration")))
        goto fail;
    return CHAT_OK;
fail:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

int chat__sqlite_migrate(sqlite3 *db, unsigned int flags)
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
    return version < N_MIGRATIONS ? upgrade(db) : CHAT_OK;
}
