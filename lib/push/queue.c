/* A push provider's persistent queue on SQLite; see queue.h. */
#include "push/queue.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"

#include <sqlite3.h>
#include <string.h>

enum {
    ST_BEGIN,
    ST_COMMIT,
    ST_SENT_GET,
    ST_PENDING_GET,
    ST_MERGE,
    ST_INSERT,
    ST_COUNT,
    ST_TAKE,
    ST_DELETE,
    ST_SENT_PUT,
    ST_RETRY,
    ST_DROP_TARGET,
    ST_NEXT,
    ST_PRUNE,
    ST_N
};

static const char *const sql[ST_N] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_SENT_GET] = "SELECT seq, ms FROM sent WHERE key = ?1",
    [ST_PENDING_GET] = "SELECT id, seq FROM pending WHERE key = ?1",
    [ST_MERGE] = "UPDATE pending SET ev = ?2, seq = ?3, count = count + 1 WHERE id = ?1",
    [ST_INSERT] = "INSERT INTO pending (key, target, ev, seq, count, created_ms, due_ms) "
                  "VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)",
    [ST_COUNT] = "SELECT count(*) FROM pending",
    [ST_TAKE] = "SELECT id, key, target, ev, seq, count, created_ms, due_ms, attempts "
                "FROM pending WHERE due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2",
    [ST_DELETE] = "DELETE FROM pending WHERE id = ?1",
    [ST_SENT_PUT] = "INSERT INTO sent (key, seq, ms) VALUES (?1, ?2, ?3) "
                    "ON CONFLICT (key) DO UPDATE SET seq = max(seq, excluded.seq), ms = excluded.ms",
    [ST_RETRY] = "UPDATE pending SET due_ms = ?2, attempts = attempts + 1 WHERE id = ?1",
    [ST_DROP_TARGET] = "DELETE FROM pending WHERE target = ?1",
    [ST_NEXT] = "SELECT min(due_ms) FROM pending",
    [ST_PRUNE] = "DELETE FROM sent WHERE ms < ?1",
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS pending ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL UNIQUE,"     /* coalescing key: target and conversation */
    "  target TEXT NOT NULL,"         /* a device token, or a user */
    "  ev TEXT NOT NULL,"             /* the latest event, JSON */
    "  seq INTEGER NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  due_ms INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX IF NOT EXISTS pending_due ON pending (due_ms);"
    "CREATE INDEX IF NOT EXISTS pending_target ON pending (target);"
    "CREATE TABLE IF NOT EXISTS sent ("
    "  key TEXT PRIMARY KEY,"
    "  seq INTEGER NOT NULL,"
    "  ms INTEGER NOT NULL) WITHOUT ROWID;";

struct chat__pq {
    sqlite3 *db;
    sqlite3_stmt *st[ST_N];
    chat__pq_limits lim;
    int64_t n; /* rows of pending: counted once at open, then kept (count(*) scans) */
};

static int fail(chat__pq *q, const char *what)
{
    return chat__error_set(CHAT_EIO, sqlite3_extended_errcode(q->db), "push queue: %s: %s",
                           what, sqlite3_errmsg(q->db));
}

/* Step a statement that returns no row, then reset it. */
static int run(chat__pq *q, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? CHAT_OK : fail(q, what);
}

static int64_t single(chat__pq *q, int which, int64_t if_null);

static void text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC); /* reset before returning */
}

int chat__pq_open(chat__pq **out, const char *path, const chat__pq_limits *lim)
{
    chat__pq *q = chat__calloc(1, sizeof *q);
    if (!q)
        return chat__error_set(CHAT_ENOMEM, 0, "push queue: out of memory");
    q->lim = *lim;
    int rc = sqlite3_open_v2(path ? path : ":memory:", &q->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        rc = chat__error_set(CHAT_EIO, rc, "push queue %s: %s", path ? path : ":memory:",
                             q->db ? sqlite3_errmsg(q->db) : sqlite3_errstr(rc));
        chat__pq_close(q);
        return rc;
    }
    sqlite3_busy_timeout(q->db, 2000);
    /* synchronous=NORMAL in WAL mode: what a commit wrote survives the process dying. */
    if (sqlite3_exec(q->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
                     NULL) != SQLITE_OK ||
        sqlite3_exec(q->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        rc = fail(q, path ? path : ":memory:");
        chat__pq_close(q);
        return rc;
    }
    for (int i = 0; i < ST_N; i++)
        if (sqlite3_prepare_v2(q->db, sql[i], -1, &q->st[i], NULL) != SQLITE_OK) {
            rc = fail(q, "prepare");
            chat__pq_close(q);
            return rc;
        }
    q->n = single(q, ST_COUNT, 0);
    *out = q;
    return CHAT_OK;
}

void chat__pq_close(chat__pq *q)
{
    if (!q)
        return;
    for (int i = 0; i < ST_N; i++)
        sqlite3_finalize(q->st[i]);
    sqlite3_close(q->db);
    chat__free(q);
}

int chat__pq_begin(chat__pq *q)
{
    return run(q, q->st[ST_BEGIN], "begin");
}

int chat__pq_commit(chat__pq *q)
{
    int rc = run(q, q->st[ST_COMMIT], "commit");
    if (rc != CHAT_OK) {
        sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
        q->n = single(q, ST_COUNT, 0); /* what the rollback left */
    }
    return rc;
}

/* One row of a point query into two integers; 1 found, 0 not, negative on error. */
static int point(chat__pq *q, int which, const char *key, int64_t *a, int64_t *b)
{
    sqlite3_stmt *st = q->st[which];
    text(st, 1, key);
    int rc = sqlite3_step(st);
    int found = rc == SQLITE_ROW;
    if (found) {
        *a = sqlite3_column_int64(st, 0);
        *b = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return found || rc == SQLITE_DONE ? found : fail(q, "read");
}

int chat__pq_add(chat__pq *q, const char *key, const char *target, const char *ev, uint64_t seq,
                 int64_t now_ms)
{
    int64_t sent_seq = 0, sent_ms = 0, id = 0, pending_seq = 0;
    int sent = point(q, ST_SENT_GET, key, &sent_seq, &sent_ms);
    if (sent < 0)
        return sent;
    if (sent && (uint64_t)sent_seq >= seq && now_ms - sent_ms < q->lim.dedupe_ms)
        return CHAT__PQ_DEDUPED;
    int pending = point(q, ST_PENDING_GET, key, &id, &pending_seq);
    if (pending < 0)
        return pending;
    if (pending) {
        if ((uint64_t)pending_seq >= seq)
            return CHAT__PQ_DEDUPED;
        sqlite3_stmt *st = q->st[ST_MERGE];
        sqlite3_bind_int64(st, 1, id);
        text(st, 2, ev);
        sqlite3_bind_int64(st, 3, (sqlite3_int64)seq);
        int rc = run(q, st, "merge");
        return rc == CHAT_OK ? CHAT__PQ_COALESCED : rc;
    }
    if (q->n >= q->lim.max)
        return CHAT__PQ_FULL;
    int64_t due = now_ms;
    if (sent && sent_ms + q->lim.coalesce_ms > now_ms)
        due = sent_ms + q->lim.coalesce_ms;
    sqlite3_stmt *st = q->st[ST_INSERT];
    text(st, 1, key);
    text(st, 2, target);
    text(st, 3, ev);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 5, now_ms);
    sqlite3_bind_int64(st, 6, due);
    int rc = run(q, st, "insert");
    if (rc != CHAT_OK)
        return rc;
    q->n++;
    return CHAT__PQ_QUEUED;
}

void chat__pq_item_clear(chat__pq_item *it)
{
    chat__free(it->key);
    chat__free(it->target);
    chat__free(it->ev);
    memset(it, 0, sizeof *it);
}

static char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *v = sqlite3_column_text(st, i);
    return chat__strdup(v ? (const char *)v : "");
}

int chat__pq_take(chat__pq *q, int64_t until_ms, chat__pq_item *items, size_t max, size_t *n)
{
    sqlite3_stmt *st = q->st[ST_TAKE];
    sqlite3_bind_int64(st, 1, until_ms);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    size_t k = 0;
    int rc = SQLITE_DONE;
    while (k < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        chat__pq_item *it = &items[k];
        memset(it, 0, sizeof *it);
        it->id = sqlite3_column_int64(st, 0);
        it->key = col(st, 1);
        it->target = col(st, 2);
        it->ev = col(st, 3);
        it->seq = (uint64_t)sqlite3_column_int64(st, 4);
        it->count = sqlite3_column_int64(st, 5);
        it->created_ms = sqlite3_column_int64(st, 6);
        it->due_ms = sqlite3_column_int64(st, 7);
        it->attempts = sqlite3_column_int(st, 8);
        k++;
        if (!it->key || !it->target || !it->ev) {
            rc = SQLITE_NOMEM;
            break;
        }
    }
    int ok = k == max || rc == SQLITE_DONE;
    int err = ok ? CHAT_OK : rc == SQLITE_NOMEM ? CHAT_ENOMEM : fail(q, "take");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (err != CHAT_OK) {
        for (size_t i = 0; i < k; i++)
            chat__pq_item_clear(&items[i]);
        k = 0;
    }
    *n = k;
    return err;
}

int chat__pq_done(chat__pq *q, const chat__pq_item *it, int64_t now_ms)
{
    int rc = chat__pq_drop(q, it->id);
    if (rc != CHAT_OK)
        return rc;
    sqlite3_stmt *st = q->st[ST_SENT_PUT];
    text(st, 1, it->key);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)it->seq);
    sqlite3_bind_int64(st, 3, now_ms);
    return run(q, st, "sent");
}

int chat__pq_retry(chat__pq *q, const chat__pq_item *it, int64_t due_ms)
{
    sqlite3_stmt *st = q->st[ST_RETRY];
    sqlite3_bind_int64(st, 1, it->id);
    sqlite3_bind_int64(st, 2, due_ms);
    return run(q, st, "retry");
}

int chat__pq_drop(chat__pq *q, int64_t id)
{
    sqlite3_stmt *st = q->st[ST_DELETE];
    sqlite3_bind_int64(st, 1, id);
    int rc = run(q, st, "delete");
    if (rc == CHAT_OK)
        q->n -= sqlite3_changes(q->db);
    return rc;
}

int chat__pq_drop_target(chat__pq *q, const char *target, int64_t *n)
{
    sqlite3_stmt *st = q->st[ST_DROP_TARGET];
    text(st, 1, target);
    int rc = run(q, st, "drop");
    int64_t gone = rc == CHAT_OK ? sqlite3_changes(q->db) : 0;
    q->n -= gone;
    if (n)
        *n = gone;
    return rc;
}

static int64_t single(chat__pq *q, int which, int64_t if_null)
{
    sqlite3_stmt *st = q->st[which];
    int64_t v = if_null;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return v;
}

int64_t chat__pq_next_due(chat__pq *q)
{
    return single(q, ST_NEXT, INT64_MAX);
}

int64_t chat__pq_count(chat__pq *q)
{
    return q->n;
}

int chat__pq_prune(chat__pq *q, int64_t now_ms)
{
    sqlite3_stmt *st = q->st[ST_PRUNE];
    sqlite3_bind_int64(st, 1, now_ms - q->lim.dedupe_ms);
    return run(q, st, "prune");
}
