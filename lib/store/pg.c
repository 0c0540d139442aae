/* PostgreSQL store: the connection and its reconnection, the pipeline, transactions, error
 * mapping and the vtable.
 *
 * Several servers may share one database; what keeps them consistent lives in the SQL:
 * - conv_get and conv_find_direct inside a transaction lock the conversation's row (FOR NO KEY
 *   UPDATE) until the transaction ends, so the head_seq they answer is the latest committed
 *   and no other server appends to that conversation meanwhile: seqs stay gap-free and unique
 *   across servers, and a rolled-back transaction leaves no gap (nothing was taken from a
 *   sequence). The primary key (conv, seq) refuses what a caller that skipped the read would
 *   write.
 * - meta_get inside a transaction takes a transaction-scoped lock on its key before reading,
 *   so a counter read, increased and written back in one transaction never loses an update
 *   to another server.
 * - Except the engine's inbox change counter (CHAT_STORE_CHANGE_KEY), whose lock is taken
 *   only when it is written back, just before the commit (pg_change.c): servers write their
 *   batches at once and only the end of each, a statement and the COMMIT, is serialised.
 *
 * The connection runs in libpq's pipeline mode: statements whose result only says whether they
 * failed (member_put, meta_set, conv_update, ...) are sent at once in a transaction and their
 * results read with the next statement that returns rows, so they cost no round trip of their
 * own. Any failure aborts a PostgreSQL transaction, so the store keeps the first failure and
 * answers it to every later call until rollback(); the expected refusals (a taken client id,
 * a taken dm_key) are not failures in SQL (ON CONFLICT DO NOTHING) and leave the transaction
 * usable, as the vtable requires.
 *
 * When the server cannot be reached or goes away, calls answer CHAT_EAGAIN. The next begin()
 * (or call outside a transaction) reconnects, no sooner than a backoff that doubles from 50 ms
 * to 2 s while attempts fail, so an unreachable server costs a failed batch a quick answer,
 * not a connection timeout each time.
 *
 * As with the other stores, arguments and the call order are checked by the layer every caller
 * goes through (store/checked.h). */
#include "store/pg_internal.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/monowait.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 2000

#define CONV_COLS "id, kind, title, dm_key, head_seq, change, created_ms, member_count, " \
                  "msg_ttl_ms"
#define MEMBER_COLS "conv, user_id, role, delivered_seq, read_seq, delivered_ms, read_ms, " \
                    "joined_seq, change"
#define M_MEMBER_COLS "m.conv, m.user_id, m.role, m.delivered_seq, m.read_seq, " \
                      "m.delivered_ms, m.read_ms, m.joined_seq, m.change"
#define MSG_COLS "conv, seq, ts_ms, sender, device, cmid, kind, body, target, thread, " \
                 "edited_ms, expires_ms, flags"
#define M_MSG_COLS "m.conv, m.seq, m.ts_ms, m.sender, m.device, m.cmid, m.kind, m.body, " \
                   "m.target, m.thread, m.edited_ms, m.expires_ms, m.flags"
/* A message's reactions (of row alias t) in store/check.h's text form, NULL when none: read
 * with the rows in the same query, an index range of the reactions' primary key per row. */
#define REACTS_OF(t)                                                                         \
    "(SELECT string_agg(octet_length(x.user_id) || ':' || x.user_id || "                   \
    "octet_length(x.emoji) || ':' || x.emoji || x.ts_ms || ';', '' "                         \
    "ORDER BY x.emoji, x.ts_ms, x.user_id) FROM reactions x "                                \
    "WHERE x.conv = " t ".conv AND x.seq = " t ".seq)"
#define MSG_READ MSG_COLS ", " REACTS_OF("messages")
/* Not erased (CHAT_STORE_MSG_ERASED; the partial index messages_expiry has the same words). */
#define LIVE "flags & 3 = 0"
#define PUSH_REG_COLS "user_id, device, platform, sandbox, token, topic, updated_ms"
#define INBOX_CHANGE "(CASE WHEN m.role = 0 THEN m.change ELSE greatest(m.change, c.change) END)"
/* The advisory lock class of meta keys ('chat'); the hash of the schema and key is the
 * object, so stores in two schemas of one database do not wait for each other. */
#define META_LOCK_CLASS "1667785076"

const char *const chat__pg_sql[CHAT__PG_COUNT] = {
    [CHAT__PG_BEGIN] = "BEGIN",
    [CHAT__PG_COMMIT] = "COMMIT",
    [CHAT__PG_ROLLBACK] = "ROLLBACK",
    [CHAT__PG_LOCK_KEY] = "SELECT pg_advisory_xact_lock(" META_LOCK_CLASS ", "
                          "hashtext(current_schema() || '.' || $1))",
    /* Ids are the next after the largest, as SQLite's rowids: a rolled-back insert's id is
     * used again. A concurrent insert of the same id (another server) waits for that one to
     * end, then conflicts: the caller tries again with a new maximum. */
    [CHAT__PG_CONV_INSERT] =
        "INSERT INTO conversations (" CONV_COLS ") VALUES ("
        "(SELECT coalesce(max(id), 0) + 1 FROM conversations), $1, $2, $3, $4, $5, $6, $7, $8) "
        "ON CONFLICT DO NOTHING RETURNING id",
    [CHAT__PG_CONV_DM_TAKEN] = "SELECT 1 FROM conversations WHERE dm_key = $1",
    [CHAT__PG_CONV_GET] = "SELECT " CONV_COLS " FROM conversations WHERE id = $1",
    [CHAT__PG_CONV_GET_LOCK] =
        "SELECT " CONV_COLS " FROM conversations WHERE id = $1 FOR NO KEY UPDATE",
    [CHAT__PG_CONV_FIND] = "SELECT " CONV_COLS " FROM conversations WHERE dm_key = $1",
    [CHAT__PG_CONV_FIND_LOCK] =
        "SELECT " CONV_COLS " FROM conversations WHERE dm_key = $1 FOR NO KEY UPDATE",
    [CHAT__PG_CONV_UPDATE] = "UPDATE conversations SET title = $2, head_seq = $3, change = $4, "
                             "member_count = $5, msg_ttl_ms = $6 WHERE id = $1",
    /* In id order: servers locking the conversations they share in the same order never
     * wait for each other in a cycle. The lock is taken on the sorted rows. */
    [CHAT__PG_CONV_LOCK] = "SELECT id FROM conversations WHERE id = ANY ($1::bigint[]) "
                           "ORDER BY id FOR NO KEY UPDATE",
    [CHAT__PG_MEMBER_GET] =
        "SELECT " MEMBER_COLS " FROM members WHERE conv = $1 AND user_id = $2",
    [CHAT__PG_MEMBER_PUT] =
        "INSERT INTO members (" MEMBER_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (conv, user_id) DO UPDATE SET role = excluded.role, "
        "delivered_seq = excluded.delivered_seq, read_seq = excluded.read_seq, "
        "delivered_ms = excluded.delivered_ms, read_ms = excluded.read_ms, "
        "joined_seq = excluded.joined_seq, change = excluded.change",
    [CHAT__PG_MEMBER_LIST] =
        "SELECT " MEMBER_COLS " FROM members WHERE conv = $1 ORDER BY user_id",
    [CHAT__PG_MEMBER_LIST_ACTIVE] =
        "SELECT " MEMBER_COLS " FROM members WHERE conv = $1 AND role > 0 ORDER BY user_id",
    /* $14: the words to index, or NULL: a message with words takes a search id. */
    [CHAT__PG_MSG_INSERT] = "INSERT INTO messages (" MSG_COLS ", sid, search) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
                            "CASE WHEN $14::text IS NULL THEN 0 ELSE nextval('messages_sid') END, "
                            "to_tsvector('simple', $14)) ON CONFLICT DO NOTHING",
    [CHAT__PG_MSG_CMID] = "SELECT " MSG_READ " FROM messages "
                          "WHERE conv = $1 AND sender = $2 AND device = $3 AND cmid = $4",
    [CHAT__PG_MSG_RANGE_ASC] = "SELECT " MSG_READ " FROM messages "
                               "WHERE conv = $1 AND seq > $2 AND seq <= $3 "
                               "ORDER BY seq LIMIT $4",
    [CHAT__PG_MSG_RANGE_DESC] = "SELECT " MSG_READ " FROM messages "
                                "WHERE conv = $1 AND seq > $2 AND seq <= $3 "
                                "ORDER BY seq DESC LIMIT $4",
    /* As the SQLite store's: ties ordered by conversation; a member who left sees only its own
     * row's changes. */
    [CHAT__PG_USER_CONVS] = "SELECT " M_MEMBER_COLS " FROM members m "
                            "JOIN conversations c ON c.id = m.conv "
                            "WHERE m.user_id = $1 AND " INBOX_CHANGE " > $2 "
                            "ORDER BY " INBOX_CHANGE ", m.conv LIMIT $3",
    [CHAT__PG_CONTACTS] =
        "SELECT DISTINCT o.user_id FROM members me JOIN members o ON o.conv = me.conv "
        "WHERE me.user_id = $1 AND me.role > 0 AND o.role > 0 AND o.user_id <> $1 "
        "ORDER BY o.user_id",
    [CHAT__PG_USER_GET] = "SELECT name, pwhash, hide_last_seen, last_seen_ms, created_ms "
                          "FROM users WHERE name = $1",
    [CHAT__PG_USER_PUT] =
        "INSERT INTO users (name, pwhash, hide_last_seen, last_seen_ms, created_ms) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET "
        "pwhash = excluded.pwhash, hide_last_seen = excluded.hide_last_seen, "
        "last_seen_ms = excluded.last_seen_ms, created_ms = excluded.created_ms",
    [CHAT__PG_REVOKED_PUT] = "INSERT INTO revoked (session_id, exp_ms) VALUES ($1, $2) "
                             "ON CONFLICT (session_id) DO UPDATE SET exp_ms = excluded.exp_ms",
    [CHAT__PG_REVOKED_LIST] = "SELECT session_id, exp_ms FROM revoked WHERE exp_ms > $1 "
                              "ORDER BY session_id",
    [CHAT__PG_META_GET] = "SELECT value FROM meta WHERE key = $1",
    [CHAT__PG_META_SET] = "INSERT INTO meta (key, value) VALUES ($1, $2) "
                          "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    /* The end of a transaction that counted changes from $3 up to $2 (pg_change.c), after
     * the key's lock: add them to the counter as committed now, C, and move the rows this
     * transaction gave changes above $3 (conversations $4, members ($5, $6)) up by C - $3,
     * past every change committed since it read $3. Its result is that difference. */
    [CHAT__PG_CHANGE_ADD] =
        "WITH c AS (INSERT INTO meta (key, value) VALUES ($1, $2::bigint - $3::bigint) "
        "  ON CONFLICT (key) DO UPDATE SET value = meta.value + excluded.value "
        "  RETURNING value - $2::bigint AS delta), "
        "cv AS (UPDATE conversations SET change = change + (SELECT delta FROM c) "
        "  WHERE (SELECT delta FROM c) <> 0 AND id = ANY ($4::bigint[]) "
        "  AND change > $3::bigint), "
        "mb AS (UPDATE members m SET change = m.change + (SELECT delta FROM c) "
        "  FROM unnest($5::bigint[], $6::text[]) AS t (conv, user_id) "
        "  WHERE (SELECT delta FROM c) <> 0 AND m.conv = t.conv "
        "  AND m.user_id = t.user_id COLLATE \"C\" AND m.change > $3::bigint) "
        "SELECT delta FROM c",
    [CHAT__PG_MEDIA_PUT] = "INSERT INTO media (id, uploader, mime, name, size, created_ms) "
                           "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    [CHAT__PG_MEDIA_GET] = "SELECT id, uploader, mime, name, size, created_ms FROM media "
                           "WHERE id = $1",
    [CHAT__PG_MEDIA_GRANT] = "INSERT INTO media_grants (id, conv, user_id) VALUES ($1, $2, $3) "
                             "ON CONFLICT DO NOTHING",
    [CHAT__PG_MEDIA_GRANTS] = "SELECT conv, user_id FROM media_grants WHERE id = $1 "
                              "ORDER BY conv, user_id",
    [CHAT__PG_PUSH_REG_PUT] =
        "INSERT INTO push_regs (" PUSH_REG_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (user_id, device) DO UPDATE SET platform = excluded.platform, "
        "sandbox = excluded.sandbox, token = excluded.token, topic = excluded.topic, "
        "updated_ms = excluded.updated_ms",
    [CHAT__PG_PUSH_REG_DEL] = "DELETE FROM push_regs WHERE user_id = $1 AND device = $2",
    [CHAT__PG_PUSH_REG_DEL_TOKEN] = "DELETE FROM push_regs WHERE token = $1 AND platform = $2",
    [CHAT__PG_PUSH_REG_LIST] = "SELECT " PUSH_REG_COLS " FROM push_regs WHERE user_id = $1 "
                               "ORDER BY device",
    [CHAT__PG_PUSH_MUTE_PUT] =
        "INSERT INTO push_mutes (user_id, conv, until_ms) VALUES ($1, $2, $3) "
        "ON CONFLICT (user_id, conv) DO UPDATE SET until_ms = excluded.until_ms",
    [CHAT__PG_PUSH_MUTE_DEL] = "DELETE FROM push_mutes WHERE user_id = $1 AND conv = $2",
    [CHAT__PG_PUSH_MUTE_GET] =
        "SELECT until_ms FROM push_mutes WHERE user_id = $1 AND conv = $2",
    [CHAT__PG_MSG_GET] = "SELECT " MSG_READ " FROM messages WHERE conv = $1 AND seq = $2",
    /* $8: the new words, or NULL; a message keeps its search id while it has words. */
    [CHAT__PG_MSG_UPDATE] = "UPDATE messages SET kind = $3, body = $4, flags = $5, "
                            "edited_ms = $6, expires_ms = $7, search = to_tsvector('simple', $8), "
                            "sid = CASE WHEN $8::text IS NULL THEN 0 WHEN sid = 0 "
                            "THEN nextval('messages_sid') ELSE sid END "
                            "WHERE conv = $1 AND seq = $2",
    [CHAT__PG_MSG_RELATED] = "SELECT " MSG_READ " FROM messages WHERE conv = $1 AND target > 0 "
                             "AND target = $2 AND kind = $3 ORDER BY seq",
    [CHAT__PG_MSG_THREAD_ASC] = "SELECT " MSG_READ " FROM messages WHERE conv = $1 "
                                "AND thread > 0 AND thread = $2 AND seq > $3 AND seq <= $4 "
                                "ORDER BY seq LIMIT $5",
    [CHAT__PG_MSG_THREAD_DESC] = "SELECT " MSG_READ " FROM messages WHERE conv = $1 "
                                 "AND thread > 0 AND thread = $2 AND seq > $3 AND seq <= $4 "
                                 "ORDER BY seq DESC LIMIT $5",
    [CHAT__PG_MSG_COUNT] = "SELECT count(*) FROM messages WHERE conv = $1 AND seq > $3 "
                           "AND seq <= $4 AND thread = $2 AND kind <= 3 AND " LIVE,
    [CHAT__PG_MSG_EXPIRED] = "SELECT " MSG_READ " FROM messages WHERE expires_ms > 0 AND " LIVE
                             " AND expires_ms <= $1 ORDER BY expires_ms, conv, seq LIMIT $2",
    [CHAT__PG_MSG_BY_SENDER] = "SELECT " MSG_READ " FROM messages WHERE conv = $1 AND seq > $3 "
                               "AND sender = $2 AND " LIVE " ORDER BY seq LIMIT $4",
    /* $1, $2: the conversations and the seq each is searched after, as arrays. */
    [CHAT__PG_SEARCH] = "SELECT " M_MSG_COLS ", " REACTS_OF("m") ", m.sid FROM messages m "
                        "JOIN unnest($1::bigint[], $2::bigint[]) AS c (conv, after) "
                        "ON m.conv = c.conv "
                        "WHERE m.search @@ plainto_tsquery('simple', $3) AND m.seq > c.after "
                        "AND m." LIVE " AND m.sid < $4 ORDER BY m.sid DESC LIMIT $5",
    [CHAT__PG_REACT_PUT] = "INSERT INTO reactions (conv, seq, emoji, user_id, ts_ms) "
                           "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    [CHAT__PG_REACT_DEL] = "DELETE FROM reactions WHERE conv = $1 AND seq = $2 AND emoji = $3 "
                           "AND user_id = $4",
    [CHAT__PG_REACT_LIST] = "SELECT conv, seq, user_id, emoji, ts_ms FROM reactions "
                            "WHERE conv = $1 AND seq > $2 AND seq <= $3 "
                            "ORDER BY seq, emoji, ts_ms, user_id",
    [CHAT__PG_REACT_CLEAR] = "DELETE FROM reactions WHERE conv = $1 AND ($2 = 0 OR seq = $2) "
                             "AND ($3 = '' OR user_id = $3)",
    [CHAT__PG_USER_DEL] = "DELETE FROM users WHERE name = $1",
    [CHAT__PG_DELETED_PUT] = "INSERT INTO deleted_users (name, deleted_ms) VALUES ($1, $2) "
                             "ON CONFLICT (name) DO UPDATE SET deleted_ms = excluded.deleted_ms",
    [CHAT__PG_DELETED_LIST] = "SELECT name, deleted_ms FROM deleted_users ORDER BY name",
    [CHAT__PG_MEDIA_REFS] = "UPDATE media SET refs = refs + $2 WHERE id = $1 RETURNING refs",
    [CHAT__PG_MEDIA_DEL] = "DELETE FROM media WHERE id = $1",
    [CHAT__PG_GRANTS_DEL] = "DELETE FROM media_grants WHERE id = $1",
};

/* ---- parameters and columns ----------------------------------------------------------------- */

void chat__pg_text(chat__pg_params *p, const char *v)
{
    p->values[p->n] = v;
    p->lengths[p->n] = 0;
    p->formats[p->n] = 0;
    p->n++;
}

void chat__pg_i64(chat__pg_params *p, int64_t v)
{
    snprintf(p->nums[p->n], sizeof p->nums[p->n], "%" PRId64, v);
    chat__pg_text(p, p->nums[p->n]);
}

void chat__pg_u64(chat__pg_params *p, uint64_t v)
{
    chat__pg_i64(p, (int64_t)v);
}

void chat__pg_bytes(chat__pg_params *p, const char *v, size_t len)
{
    p->values[p->n] = len ? v : "";
    p->lengths[p->n] = (int)len; /* at most INT32_MAX (the checking layer) */
    p->formats[p->n] = 1;
    p->n++;
}

int64_t chat__pg_col_i64(const PGresult *r, int row, int col)
{
    const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col);
    uint64_t u = 0;
    for (int i = 0; i < len && i < 8; i++)
        u = (u << 8) | v[i];
    /* Network order, sign-extended from the column's width (int2, int4 or int8). */
    if (len > 0 && len < 8 && (v[0] & 0x80))
        u |= ~(uint64_t)0 << (8 * len);
    return (int64_t)u;
}

const char *chat__pg_col_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col);
}

void chat__pg_col_copy(const PGresult *r, int row, int col, char *dst, size_t size)
{
    size_t len = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
    if (len >= size)
        len = size - 1;
    memcpy(dst, PQgetvalue(r, row, col), len);
    dst[len] = '\0';
}

/* ---- errors --------------------------------------------------------------------------------- */

/* A SQLSTATE as one int (six bits a character, as PostgreSQL's MAKE_SQLSTATE). */
static int sqlstate_code(const char *s)
{
    int code = 0;
    for (int i = 0; s && i < 5 && s[i]; i++)
        code |= ((s[i] - '0') & 0x3f) << (6 * i);
    return code;
}

/* Failures that say "try again later": the server is going away or not there, or this
 * transaction lost a race it may win when run again. */
static int is_transient(const char *state)
{
    return strncmp(state, "08", 2) == 0 ||      /* connection exception */
           strncmp(state, "57P0", 4) == 0 ||    /* admin or crash shutdown, cannot connect now */
           strcmp(state, "53300") == 0 ||       /* too many connections */
           strcmp(state, "40001") == 0 ||       /* serialization failure */
           strcmp(state, "40P01") == 0 ||       /* deadlock detected */
           strcmp(state, "55P03") == 0;         /* lock not available */
}

int chat__pg_fail(PGconn *conn, const PGresult *res, const char *what)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : NULL;
    if (!msg || !*msg)
        msg = conn ? PQerrorMessage(conn) : "no connection";
    int code = CHAT_EIO;
    if (!conn || PQstatus(conn) != CONNECTION_OK || (state && is_transient(state)))
        code = CHAT_EAGAIN;
    else if (state && strcmp(state, "23505") == 0)
        code = CHAT_EEXISTS;
    else if (state && strncmp(state, "22", 2) == 0) /* data exception: bad encoding, range */
        code = CHAT_EINVAL;
    int len = (int)strcspn(msg, "\n"); /* libpq's messages end in a newline, some have more */
    return chat__error_set(code, sqlstate_code(state), "postgres store: %s: %.*s%s%s%s", what,
                           len, msg, state ? " (SQLSTATE " : "", state ? state : "",
                           state ? ")" : "");
}

/* Keep the transaction's first failure, which every later call answers until rollback(). */
static int tx_fail(chat__pg *s, int rc)
{
    if (s->in_tx && !s->tx_rc) {
        s->tx_rc = rc;
        s->tx_backend = chat_error_last()->backend_code;
        snprintf(s->tx_msg, sizeof s->tx_msg, "%s", chat_error_last()->message);
    }
    return rc;
}

int chat__pg_tx_fail(chat__pg *s, int rc)
{
    return tx_fail(s, rc);
}

static int tx_failed(chat__pg *s)
{
    return chat__error_set(s->tx_rc, s->tx_backend, "%s", s->tx_msg);
}

/* ---- the connection ------------------------------------------------------------------------- */

static void drop_conn(chat__pg *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    s->n_deferred = 0;
}

/* The connection failed: whatever was in flight is lost, and a transaction with it. */
static int conn_lost(chat__pg *s, const PGresult *res, const char *what)
{
    int rc = chat__pg_fail(s->conn, res, what);
    if (rc != CHAT_EAGAIN) /* e.g. a send that failed on a connection libpq still trusts */
        rc = chat__error_set(CHAT_EAGAIN, chat_error_last()->backend_code, "%s",
                             chat_error_last()->message);
    drop_conn(s);
    return tx_fail(s, rc);
}

/* Without a round trip: has the server closed the connection (a restart or an administrator
 * ends every session, and says so before closing)? Reads what is waiting, if anything. */
static int conn_alive(chat__pg *s)
{
    for (int i = 0; s->conn && i < 4; i++) {
        struct pollfd p = {PQsocket(s->conn), POLLIN, 0};
        if (p.fd < 0 || poll(&p, 1, 0) <= 0)
            break;
        if (!PQconsumeInput(s->conn))
            break;
    }
    return s->conn && PQstatus(s->conn) == CONNECTION_OK;
}

/* Read the result of one statement in the pipeline: its PGresult, then the NULL after it. */
static PGresult *take_result(chat__pg *s)
{
    PGresult *res = PQgetResult(s->conn);
    if (res) {
        PGresult *extra;
        while ((extra = PQgetResult(s->conn)) != NULL) /* none expected; never loops long */
            PQclear(extra);
    }
    return res;
}

/* Read a sync point's result; 0 when the connection is gone. */
static int take_sync(chat__pg *s)
{
    PGresult *res = PQgetResult(s->conn);
    int ok = res && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
    PQclear(res);
    return ok;
}

static int prepare_all(chat__pg *s)
{
    char name[16];
    for (int i = 0; i < CHAT__PG_COUNT; i++) {
        snprintf(name, sizeof name, "chat%d", i);
        if (!PQsendPrepare(s->conn, name, chat__pg_sql[i], 0, NULL))
            return chat__pg_fail(s->conn, NULL, "prepare");
    }
    if (!PQpipelineSync(s->conn))
        return chat__pg_fail(s->conn, NULL, "prepare");
    int rc = CHAT_OK;
    for (int i = 0; i < CHAT__PG_COUNT; i++) {
        PGresult *res = take_result(s);
        if (rc == CHAT_OK && (!res || PQresultStatus(res) != PGRES_COMMAND_OK))
            rc = chat__pg_fail(s->conn, res, "prepare");
        PQclear(res);
    }
    if (!take_sync(s) && rc == CHAT_OK)
        rc = chat__pg_fail(s->conn, NULL, "prepare");
    return rc;
}

/* The library prints nothing: notices (e.g. "relation exists, skipping") are dropped. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Bounds for this session where nobody configured any (server, database, role, conninfo): a
 * transaction waits at most LOCK_TIMEOUT for a lock, then fails as transient (CHAT_EAGAIN),
 * and a session of a server that stopped in the middle of a transaction (frozen, partitioned)
 * is ended after IDLE_TX_TIMEOUT, releasing its locks: no stuck server stalls the others for
 * good. */
#define LOCK_TIMEOUT "15s"
#define IDLE_TX_TIMEOUT "60s"

static int session_defaults(PGconn *conn)
{
    PGresult *res = PQexec(conn, "SELECT set_config(name, v, false) FROM (VALUES "
                                 "('lock_timeout', '" LOCK_TIMEOUT "'), "
                                 "('idle_in_transaction_session_timeout', '" IDLE_TX_TIMEOUT "')"
                                 ") AS d (name, v) JOIN pg_settings USING (name) "
                                 "WHERE source = 'default'");
    int rc = res && PQresultStatus(res) == PGRES_TUPLES_OK
                 ? CHAT_OK
                 : chat__pg_fail(conn, res, "set session defaults");
    PQclear(res);
    return rc;
}

/* Connect, check (and migrate) the schema, enter pipeline mode and prepare every statement. */
static int connect_now(chat__pg *s)
{
    /* Defaults first: what the caller's conninfo says overrides them. Bytes pass untranslated
     * (UTF-8), and a server that stops answering over TCP is given up after about 30 s
     * instead of the system's two hours of keepalive. */
    static const char *const keys[] = {"connect_timeout", "application_name", "client_encoding",
                                       "keepalives_idle", "keepalives_interval",
                                       "keepalives_count", "tcp_user_timeout", "dbname", NULL};
    const char *values[] = {"10", "libchat", "UTF8", "10", "5", "3", "30000", s->conninfo, NULL};
    s->conn = PQconnectdbParams(keys, values, 1);
    if (!s->conn)
        return chat__error_set(CHAT_ENOMEM, 0, "postgres store: out of memory");
    PQsetNoticeProcessor(s->conn, ignore_notice, NULL);
    int rc;
    if (PQstatus(s->conn) != CONNECTION_OK) {
        rc = chat__error_set(CHAT_EAGAIN, 0, "postgres store: cannot connect: %.*s",
                             (int)strcspn(PQerrorMessage(s->conn), "\n"),
                             PQerrorMessage(s->conn));
    } else if ((rc = session_defaults(s->conn)) == CHAT_OK &&
               (rc = chat__pg_migrate(s->conn)) == CHAT_OK) {
        if (!PQenterPipelineMode(s->conn))
            rc = chat__pg_fail(s->conn, NULL, "enter pipeline mode");
        else
            rc = prepare_all(s);
    }
    if (rc != CHAT_OK)
        drop_conn(s);
    return rc;
}

/* A live connection, made now if there is none (not sooner than the backoff allows). */
static int ensure_conn(chat__pg *s)
{
    if (s->conn && conn_alive(s))
        return CHAT_OK;
    drop_conn(s);
    uint64_t now = chat__mono_ns();
    if (now < s->retry_at_ns)
        return chat__error_set(CHAT_EAGAIN, 0,
                               "postgres store: not connected; next attempt in %" PRIu64 " ms",
                               (s->retry_at_ns - now) / 1000000u + 1);
    int rc = connect_now(s);
    if (rc == CHAT_OK) {
        s->backoff_ms = 0;
        s->retry_at_ns = 0;
        return CHAT_OK;
    }
    if (rc == CHAT_EAGAIN || rc == CHAT_EIO) {
        s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : RECONNECT_MIN_MS;
        if (s->backoff_ms > RECONNECT_MAX_MS)
            s->backoff_ms = RECONNECT_MAX_MS;
        s->retry_at_ns = chat__mono_ns() + (uint64_t)s->backoff_ms * 1000000u;
    }
    return rc;
}

/* ---- the pipeline --------------------------------------------------------------------------- */

static int send_stmt(chat__pg *s, int st, const chat__pg_params *p)
{
    char name[16];
    snprintf(name, sizeof name, "chat%d", st);
    return PQsendQueryPrepared(s->conn, name, p ? p->n : 0, p ? p->values : NULL,
                               p ? p->lengths : NULL, p ? p->formats : NULL, 1);
}

/* Check the result of a deferred statement; the first failure becomes the transaction's. */
static int check_deferred(chat__pg *s, int i, PGresult *res)
{
    const struct chat__pg_deferred *d = &s->deferred[i];
    ExecStatusType t = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    if (t == PGRES_PIPELINE_ABORTED)
        return CHAT_OK; /* after a failure already recorded */
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK)
        return tx_fail(s, chat__pg_fail(s->conn, res, d->what));
    if (d->st == CHAT__PG_CONV_UPDATE && strcmp(PQcmdTuples(res), "0") == 0)
        return tx_fail(s, chat__error_set(CHAT_ENOTFOUND, 0,
                                          "postgres store: conv_update: no conv %" PRId64,
                                          d->conv));
    return CHAT_OK;
}

/* Send a sync point and read the results of the deferred statements, then (when want is set)
 * the next statement's into *out, then the sync's. */
static int round_trip(chat__pg *s, int want, PGresult **out, const char *what)
{
    if (!PQpipelineSync(s->conn))
        return conn_lost(s, NULL, what);
    int n = s->n_deferred;
    s->n_deferred = 0;
    for (int i = 0; i < n; i++) {
        PGresult *res = take_result(s);
        if (!res || PQstatus(s->conn) != CONNECTION_OK) {
            PQclear(res);
            return conn_lost(s, NULL, what);
        }
        check_deferred(s, i, res);
        PQclear(res);
    }
    PGresult *res = NULL;
    if (want && (!(res = take_result(s)) || PQstatus(s->conn) != CONNECTION_OK)) {
        int rc = conn_lost(s, res, what);
        PQclear(res);
        return rc;
    }
    if (!take_sync(s)) {
        PQclear(res);
        return conn_lost(s, NULL, what);
    }
    if (s->in_tx && s->tx_rc) { /* a deferred statement failed: this one did not run */
        PQclear(res);
        return tx_failed(s);
    }
    ExecStatusType t = res ? PQresultStatus(res) : PGRES_COMMAND_OK;
    if (t != PGRES_COMMAND_OK && t != PGRES_TUPLES_OK) {
        int rc = tx_fail(s, chat__pg_fail(s->conn, res, what));
        PQclear(res);
        return rc;
    }
    *out = res;
    return CHAT_OK;
}

/* Before a statement: in a transaction, its earlier failure or a lost connection; outside,
 * a connection (made now if need be). */
static int ready(chat__pg *s)
{
    if (!s->in_tx)
        return ensure_conn(s);
    if (s->tx_rc)
        return tx_failed(s);
    if (!s->conn)
        return tx_fail(s, chat__error_set(CHAT_EAGAIN, 0, "postgres store: connection lost"));
    return CHAT_OK;
}

int chat__pg_query(chat__pg *s, int st, const chat__pg_params *p, PGresult **out,
                   const char *what)
{
    *out = NULL;
    int rc = ready(s);
    if (rc != CHAT_OK)
        return rc;
    if (!send_stmt(s, st, p))
        return conn_lost(s, NULL, what);
    return round_trip(s, 1, out, what);
}

static int defer(chat__pg *s, int st, const chat__pg_params *p, int64_t conv, const char *what)
{
    if (!s->in_tx) { /* autocommit: at once, checked like a deferred one */
        PGresult *res;
        int rc = chat__pg_query(s, st, p, &res, what);
        if (rc == CHAT_OK && st == CHAT__PG_CONV_UPDATE && strcmp(PQcmdTuples(res), "0") == 0)
            rc = chat__error_set(CHAT_ENOTFOUND, 0,
                                 "postgres store: conv_update: no conv %" PRId64, conv);
        PQclear(res);
        return rc;
    }
    int rc = ready(s);
    if (rc != CHAT_OK)
        return rc;
    if (s->n_deferred == CHAT__PG_MAX_DEFERRED) {
        PGresult *none = NULL;
        if ((rc = round_trip(s, 0, &none, what)) != CHAT_OK)
            return rc;
    }
    if (!send_stmt(s, st, p))
        return conn_lost(s, NULL, what);
    s->deferred[s->n_deferred++] = (struct chat__pg_deferred){what, conv, st};
    return CHAT_OK;
}

int chat__pg_exec(chat__pg *s, int st, const chat__pg_params *p, const char *what)
{
    return defer(s, st, p, 0, what);
}

int chat__pg_exec_update(chat__pg *s, int st, const chat__pg_params *p, int64_t conv,
                         const char *what)
{
    return defer(s, st, p, conv, what);
}

/* ---- transactions --------------------------------------------------------------------------- */

static int begin(void *state)
{
    chat__pg *s = state;
    int rc = ensure_conn(s);
    if (rc != CHAT_OK)
        return rc;
    s->in_tx = 1;
    s->tx_rc = 0;
    chat__pg_change_reset(s);
    /* Sent with the transaction's first statement that returns rows. */
    if ((rc = defer(s, CHAT__PG_BEGIN, NULL, 0, "begin")) != CHAT_OK)
        s->in_tx = 0;
    return rc;
}

static int commit(void *state)
{
    chat__pg *s = state;
    PGresult *res = NULL;
    int rc = chat__pg_query(s, CHAT__PG_COMMIT, NULL, &res, "commit");
    if (rc == CHAT_OK) {
        /* COMMIT of a transaction that failed unnoticed answers ROLLBACK, not an error. */
        if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
            rc = chat__error_set(CHAT_EIO, 0, "postgres store: commit: the server rolled back");
        else {
            s->in_tx = 0;
            chat__pg_change_reset(s);
        }
    } else if (rc == CHAT_EAGAIN && !s->conn) {
        /* The connection went away during COMMIT: it may or may not have happened. Callers
         * answer "retry", which a client's resend (deduplicated by its client id) makes safe. */
        chat__error_set(CHAT_EAGAIN, chat_error_last()->backend_code,
                        "postgres store: commit: connection lost; the outcome is unknown");
    }
    PQclear(res);
    return rc;
}

static int rollback(void *state)
{
    chat__pg *s = state;
    s->in_tx = 0;
    s->tx_rc = 0;
    chat__pg_change_reset(s);
    PGresult *res = NULL;
    /* Deferred statements first, on their own: after a failure the server skips everything up
     * to the next sync point, which would include a ROLLBACK sent with them. Their failures
     * are this transaction's, already answered or about to be forgotten. */
    if (s->conn && s->n_deferred)
        round_trip(s, 0, &res, "rollback");
    if (!s->conn) /* the server rolled back when the connection ended */
        return CHAT_OK;
    if (!send_stmt(s, CHAT__PG_ROLLBACK, NULL)) {
        drop_conn(s);
        return CHAT_OK;
    }
    int rc = round_trip(s, 1, &res, "rollback");
    PQclear(res);
    return rc == CHAT_EAGAIN ? CHAT_OK : rc; /* no connection left: no transaction either */
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void destroy(void *state)
{
    chat__pg *s = state;
    if (!s)
        return;
    drop_conn(s); /* an open transaction is rolled back by the server */
    chat__pg_change_free(s);
    chat__free(s->conninfo);
    chat__free(s);
}

int chat_store_postgres_open(void **state_out, const char *conninfo, unsigned int flags)
{
    if (!state_out || !conninfo)
        return chat__error_set(CHAT_EINVAL, 0, "postgres store: NULL state_out or conninfo");
    if (flags)
        return chat__error_set(CHAT_EINVAL, 0, "postgres store: unknown flags 0x%x", flags);
    /* A malformed conninfo is the caller's mistake, not an unreachable server. A plain word
     * is a database name (libpq's rule), which this does not refuse. */
    char *why = NULL;
    PQconninfoOption *opts = strchr(conninfo, '=') || strstr(conninfo, "://")
                                 ? PQconninfoParse(conninfo, &why)
                                 : NULL;
    if (opts)
        PQconninfoFree(opts);
    else if (why || strchr(conninfo, '=') || strstr(conninfo, "://")) {
        int rc = chat__error_set(CHAT_EINVAL, 0, "postgres store: bad conninfo: %.*s",
                                 why ? (int)strcspn(why, "\n") : 12, why ? why : "out of memory");
        PQfreemem(why);
        return rc;
    }
    chat__pg *s = chat__calloc(1, sizeof *s);
    if (!s || !(s->conninfo = chat__strdup(conninfo))) {
        chat__free(s);
        return chat__error_set(CHAT_ENOMEM, 0, "postgres store: out of memory");
    }
    int rc = connect_now(s);
    if (rc != CHAT_OK) {
        destroy(s);
        return rc;
    }
    *state_out = s;
    return CHAT_OK;
}

static int ctl(void *state, int op, void *arg)
{
    (void)state;
    (void)arg;
    return chat__error_set(CHAT_ENOTSUP, 0, "postgres store: unknown ctl op %d", op);
}

static const chat_store_ops pg_ops = {
    .version = CHAT_STORE_OPS_VERSION,
    .destroy = destroy,
    .begin = begin,
    .commit = commit,
    .rollback = rollback,
    .conv_insert = chat__pg_conv_insert,
    .conv_get = chat__pg_conv_get,
    .conv_find_direct = chat__pg_conv_find_direct,
    .conv_update = chat__pg_conv_update,
    .member_get = chat__pg_member_get,
    .member_put = chat__pg_member_put,
    .member_list = chat__pg_member_list,
    .msg_insert = chat__pg_msg_insert,
    .msg_find_cmid = chat__pg_msg_find_cmid,
    .msg_range = chat__pg_msg_range,
    .user_convs = chat__pg_user_convs,
    .contacts = chat__pg_contacts,
    .user_get = chat__pg_user_get,
    .user_put = chat__pg_user_put,
    .revoked_put = chat__pg_revoked_put,
    .revoked_list = chat__pg_revoked_list,
    .meta_get = chat__pg_meta_get,
    .meta_set = chat__pg_meta_set,
    .ctl = ctl,
    .media_put = chat__pg_media_put,
    .media_get = chat__pg_media_get,
    .media_grant = chat__pg_media_grant,
    .media_grants = chat__pg_media_grants,
    .push_reg_put = chat__pg_push_reg_put,
    .push_reg_del = chat__pg_push_reg_del,
    .push_reg_del_token = chat__pg_push_reg_del_token,
    .push_reg_list = chat__pg_push_reg_list,
    .push_mute_put = chat__pg_push_mute_put,
    .push_mute_get = chat__pg_push_mute_get,
    .msg_get = chat__pg_msg_get,
    .msg_update = chat__pg_msg_update,
    .msg_related = chat__pg_msg_related,
    .msg_thread = chat__pg_msg_thread,
    .msg_count = chat__pg_msg_count,
    .msg_expired = chat__pg_msg_expired,
    .msg_by_sender = chat__pg_msg_by_sender,
    .msg_search = chat__pg_msg_search,
    .reaction_set = chat__pg_reaction_set,
    .reaction_list = chat__pg_reaction_list,
    .reaction_clear = chat__pg_reaction_clear,
    .user_delete = chat__pg_user_delete,
    .user_deleted = chat__pg_user_deleted,
    .media_refs = chat__pg_media_refs,
    .media_delete = chat__pg_media_delete,
    .lock_convs = chat__pg_lock_convs,
};

const chat_store_ops *chat_store_postgres_ops(void)
{
    return &pg_ops;
}
