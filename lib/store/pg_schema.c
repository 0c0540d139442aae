/* Schema of the PostgreSQL store: versioned by the one row of schema_version, upgraded by an
 * append-only list of migrations applied in one transaction, under an advisory lock, by the
 * first server that connects. Never edit a published migration; add one.
 *
 * Every string column collates as "C" (byte order), whatever the database's default: listings
 * ordered by user id then agree with the other stores, and compare as the engine does. */
#include "store/pg_internal.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The advisory lock of migrations: class 'chau' (meta keys use 'chat'), the schema's hash. */
#define MIGRATION_LOCK "SELECT pg_advisory_xact_lock(1667785077, hashtext(current_schema()))"

#define PART(n) "CREATE TABLE messages_" #n " PARTITION OF messages " \
                "FOR VALUES WITH (MODULUS 16, REMAINDER " #n ");"

static const char *const migrations[] = {
    /* 1: the tables of store version 1. Messages are hash-partitioned by conversation: a
     * conversation's history sits in one partition, each partition's indexes stay a sixteenth
     * of the whole, and partitions can be moved or vacuumed one at a time. The key (conv, seq)
     * makes a seq unique per conversation whoever writes it; the unique client id makes a
     * resend a no-op. No foreign keys, as in the other stores: the engine owns the rules. */
    "CREATE TABLE conversations ("
    "  id bigint PRIMARY KEY,"
    "  kind integer NOT NULL,"
    "  title text COLLATE \"C\" NOT NULL DEFAULT '',"
    "  dm_key text COLLATE \"C\" UNIQUE," /* NULL for groups: UNIQUE allows many NULLs */
    "  head_seq bigint NOT NULL DEFAULT 0,"
    "  change bigint NOT NULL DEFAULT 0,"
    "  created_ms bigint NOT NULL DEFAULT 0,"
    "  member_count integer NOT NULL DEFAULT 0);"
    "CREATE TABLE members ("
    "  conv bigint NOT NULL,"
    "  user_id text COLLATE \"C\" NOT NULL,"
    "  role integer NOT NULL,"
    "  delivered_seq bigint NOT NULL DEFAULT 0,"
    "  read_seq bigint NOT NULL DEFAULT 0,"
    "  delivered_ms bigint NOT NULL DEFAULT 0,"
    "  read_ms bigint NOT NULL DEFAULT 0,"
    "  joined_seq bigint NOT NULL DEFAULT 0,"
    "  change bigint NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (conv, user_id));"
    "CREATE INDEX members_user ON members (user_id);" /* user_convs, contacts */
    "CREATE TABLE messages ("
    "  conv bigint NOT NULL,"
    "  seq bigint NOT NULL,"
    "  ts_ms bigint NOT NULL,"
    "  sender text COLLATE \"C\" NOT NULL,"
    "  device text COLLATE \"C\" NOT NULL,"
    "  cmid text COLLATE \"C\"," /* NULL: no client id, never deduplicated */
    "  kind integer NOT NULL,"
    "  body bytea NOT NULL,"
    "  PRIMARY KEY (conv, seq),"
    "  UNIQUE (conv, sender, device, cmid)"
    ") PARTITION BY HASH (conv);"
    PART(0) PART(1) PART(2) PART(3) PART(4) PART(5) PART(6) PART(7)
    PART(8) PART(9) PART(10) PART(11) PART(12) PART(13) PART(14) PART(15)
    "CREATE TABLE users ("
    "  name text COLLATE \"C\" PRIMARY KEY,"
    "  pwhash text COLLATE \"C\" NOT NULL DEFAULT '',"
    "  hide_last_seen integer NOT NULL DEFAULT 0,"
    "  last_seen_ms bigint NOT NULL DEFAULT 0,"
    "  created_ms bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE revoked ("
    "  session_id text COLLATE \"C\" PRIMARY KEY,"
    "  exp_ms bigint NOT NULL);"
    "CREATE TABLE meta ("
    "  key text COLLATE \"C\" PRIMARY KEY,"
    "  value bigint NOT NULL);",
    /* 2: media metadata (store version 2; content-addressed) and who may obtain its URLs. */
    "CREATE TABLE media ("
    "  id text COLLATE \"C\" PRIMARY KEY,"
    "  uploader text COLLATE \"C\" NOT NULL,"
    "  mime text COLLATE \"C\" NOT NULL,"
    "  name text COLLATE \"C\" NOT NULL DEFAULT '',"
    "  size bigint NOT NULL,"
    "  created_ms bigint NOT NULL);"
    "CREATE TABLE media_grants ("
    "  id text COLLATE \"C\" NOT NULL,"
    "  conv bigint NOT NULL,"                 /* 0: user is an uploader */
    "  user_id text COLLATE \"C\" NOT NULL," /* '': everyone in conv */
    "  PRIMARY KEY (id, conv, user_id));",
    /* 3: push registrations (store version 3), one per (user, device), found by token when a
     * provider reports it invalid; and the conversations a user muted. A row or two per
     * device or mute: no partitions. */
    "CREATE TABLE push_regs ("
    "  user_id text COLLATE \"C\" NOT NULL,"
    "  device text COLLATE \"C\" NOT NULL,"
    "  platform integer NOT NULL,"
    "  sandbox integer NOT NULL DEFAULT 0,"
    "  token text COLLATE \"C\" NOT NULL,"
    "  topic text COLLATE \"C\" NOT NULL DEFAULT '',"
    "  updated_ms bigint NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (user_id, device));"
    "CREATE INDEX push_regs_token ON push_regs (token, platform);" /* push_reg_del_token */
    "CREATE TABLE push_mutes ("
    "  user_id text COLLATE \"C\" NOT NULL,"
    "  conv bigint NOT NULL,"
    "  until_ms bigint NOT NULL,"
    "  PRIMARY KEY (user_id, conv));",
    /* 4: the message lifecycle (store version 5), as in the SQLite store: a message's current
     * state in its row, partial indexes that cost only the rows they cover, reactions, deleted
     * accounts, media references. Search: the row's words as a tsvector of the 'simple'
     * configuration (no stemming, any language) under a GIN index, and sid, from a sequence,
     * the order of the search cursor. The messages stored before are indexed here, their
     * ASCII punctuation made spaces as chat__pg_words does. */
    "ALTER TABLE messages ADD COLUMN target bigint NOT NULL DEFAULT 0,"
    "  ADD COLUMN thread bigint NOT NULL DEFAULT 0,"
    "  ADD COLUMN edited_ms bigint NOT NULL DEFAULT 0,"
    "  ADD COLUMN expires_ms bigint NOT NULL DEFAULT 0,"
    "  ADD COLUMN flags integer NOT NULL DEFAULT 0,"
    "  ADD COLUMN sid bigint NOT NULL DEFAULT 0,"
    "  ADD COLUMN search tsvector;"
    "CREATE SEQUENCE messages_sid;"
    "CREATE INDEX messages_expiry ON messages (expires_ms, conv, seq) "
    "  WHERE expires_ms > 0 AND flags & 3 = 0;"
    "CREATE INDEX messages_thread ON messages (conv, thread, seq) WHERE thread > 0;"
    "CREATE INDEX messages_target ON messages (conv, target, kind, seq) WHERE target > 0;"
    "CREATE INDEX messages_search ON messages USING gin (search) WHERE search IS NOT NULL;"
    "ALTER TABLE conversations ADD COLUMN msg_ttl_ms bigint NOT NULL DEFAULT 0;"
    "CREATE TABLE reactions ("
    "  conv bigint NOT NULL,"
    "  seq bigint NOT NULL,"
    "  emoji text COLLATE \"C\" NOT NULL,"
    "  user_id text COLLATE \"C\" NOT NULL,"
    "  ts_ms bigint NOT NULL,"
    "  PRIMARY KEY (conv, seq, emoji, user_id));"
    "CREATE TABLE deleted_users ("
    "  name text COLLATE \"C\" PRIMARY KEY,"
    "  deleted_ms bigint NOT NULL);"
    "ALTER TABLE media ADD COLUMN refs bigint NOT NULL DEFAULT 0;"
    "UPDATE media SET refs = r.n FROM ("
    "  SELECT convert_from(body, 'UTF8')::json->>'id' AS id, count(*) AS n "
    "  FROM messages WHERE kind = 2 GROUP BY 1) r WHERE r.id = media.id;"
    "UPDATE messages SET sid = nextval('messages_sid'), search = to_tsvector('simple', "
    "  regexp_replace(CASE WHEN kind = 1 THEN convert_from(body, 'UTF8') "
    "    ELSE coalesce(convert_from(body, 'UTF8')::json->>'name', '') END, "
    "    '[!-/:-@[-`{-~]', ' ', 'g')) "
    "  WHERE kind IN (1, 2);",
};

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))

int chat__pg_schema_version(void)
{
    return N_MIGRATIONS;
}

static int exec(PGconn *conn, const char *sql, const char *what)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType t = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    int rc = t == PGRES_COMMAND_OK || t == PGRES_TUPLES_OK ? CHAT_OK
                                                           : chat__pg_fail(conn, res, what);
    PQclear(res);
    return rc;
}

/* The database's schema version: 0 when it has none (an empty database). */
static int read_version(PGconn *conn, int *version)
{
    *version = 0;
    PGresult *res = PQexec(conn, "SELECT CASE WHEN to_regclass('schema_version') IS NULL "
                                 "THEN NULL ELSE 1 END");
    int rc = CHAT_OK;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = chat__pg_fail(conn, res, "read the schema version");
    else if (!PQgetisnull(res, 0, 0)) {
        PQclear(res);
        res = PQexec(conn, "SELECT max(version) FROM schema_version");
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            rc = chat__pg_fail(conn, res, "read the schema version");
        else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
            *version = atoi(PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return rc;
}

static int too_new(int version)
{
    return chat__error_set(CHAT_EVERSION, 0,
                           "postgres store: the database's schema version %d is newer than "
                           "this library's %d: a newer libchat migrated it; upgrade this one",
                           version, N_MIGRATIONS);
}

static int upgrade(PGconn *conn)
{
    int version = 0, rc;
    if ((rc = exec(conn, "BEGIN", "begin migration")))
        return rc;
    /* Under the lock, again: another server may have migrated meanwhile. */
    if ((rc = exec(conn, MIGRATION_LOCK, "lock for migration")) ||
        (rc = exec(conn, "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
                   "create schema_version")) ||
        (rc = read_version(conn, &version)))
        goto fail;
    if (version > N_MIGRATIONS) {
        rc = too_new(version);
        goto fail;
    }
    for (int v = version; v < N_MIGRATIONS; v++)
        if ((rc = exec(conn, migrations[v], "migrate schema")))
            goto fail;
    char sql[96];
    snprintf(sql, sizeof sql, "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d)",
             N_MIGRATIONS);
    if ((rc = exec(conn, sql, "write the schema version")) ||
        (rc = exec(conn, "COMMIT", "commit migration")))
        goto fail;
    return CHAT_OK;
fail:
    PQclear(PQexec(conn, "ROLLBACK"));
    return rc;
}

int chat__pg_migrate(PGconn *conn)
{
    int version = 0, rc;
    /* A newer database is refused before anything in it is touched. */
    if ((rc = read_version(conn, &version)))
        return rc;
    if (version > N_MIGRATIONS)
        return too_new(version);
    return version < N_MIGRATIONS ? upgrade(conn) : CHAT_OK;
}
