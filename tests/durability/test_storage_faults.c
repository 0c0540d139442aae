/* Storage faults (reliability plan T2, T3): the real server engine, embedded through the public
 * API, on the SQLite store opened through the test-only fault VFS (faultvfs.h), driven by a real
 * WebSocket client over 127.0.0.1.
 *
 *  - I/O error sweeps: the k-th write or sync of a small scenario fails (SQLITE_IOERR_WRITE,
 *    SQLITE_FULL once or for good, SQLITE_IOERR_FSYNC) for every k the scenario reaches. Pass:
 *    a failed request answers EIO/storage, never an ack; the server keeps serving; a resend
 *    with the same cmid is acked; after a power loss (unsynced writes dropped) every acked
 *    message is there exactly once, seqs are 1..N, integrity_check is ok. Repeated with a
 *    checkpoint after every request, so the database file's writes and fsyncs are swept too.
 *  - fsync failure then process crash: what an EIO'd commit left in the page cache may be
 *    recovered on restart; a resend with the same cmid must then be acked dup with the
 *    original seq, never stored twice.
 *  - Power loss at a random point of a pipelined load, synchronous FULL and NORMAL, unsynced
 *    writes dropped or torn (a random subset kept). Pass: integrity_check ok and seqs 1..N;
 *    FULL loses no acked message; NORMAL loses only a suffix of the acked ones; resending
 *    everything afterwards stores every message exactly once.
 *
 * CHAT_POWER_TRIALS sets the power-loss trials per (mode, tear) (default 6). */
#define _GNU_SOURCE
#include <chat/chat.h>
#include <chat/sys/store.h>

#include "../integration/wsclient.h"
#include "faultvfs.h"

#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 8000
#define TOKEN_TTL_MS (3600LL * 1000)
#define MAX_MSGS 512

/* ---- harness ----------------------------------------------------------------------------- */

static void log_quiet(int level, const char *msg, void *user_data)
{
    (void)user_data;
    if (getenv("CHAT_TEST_LOG"))
        fprintf(stderr, "[libchat %d] %s\n", level, msg);
}

typedef struct env {
    char dir[64];
    char db[96];
    chat_server *srv;
    int port;
    char *tok;      /* alice/d1 */
    ws_client *c;
} env;

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void env_dir(env *e)
{
    memset(e, 0, sizeof *e);
    strcpy(e->dir, "/tmp/libchat-faults-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->db, sizeof e->db, "%s/chat.db", e->dir);
}

/* Start a server on e->db through the fault VFS; returns chat_server_new's status. The store
 * checkpoints inline (no checkpoint thread), so every write and fsync is made by the server's
 * writer in the order its requests dictate: the k-th one of a sweep is the same call each run. */
static int server_up(env *e, unsigned int flags)
{
    void *st = NULL;
    int rc = chat_store_sqlite_open(&st, e->db, flags | CHAT_STORE_SQLITE_INLINE_CHECKPOINT,
                                    FAULTVFS_NAME);
    if (rc != CHAT_OK)
        return rc;
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 5 + 1);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, log_quiet, CHAT_LOG_DEBUG, NULL), CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_SEND_RATE, 1000000), CHAT_OK);
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_SEND_BURST, 1000000), CHAT_OK);
    assert_int_equal(chat_server_config_set_store(cfg, chat_store_sqlite_ops(), st), CHAT_OK);
    rc = chat_server_new(&e->srv, cfg);
    chat_server_config_free(cfg);
    if (rc != CHAT_OK)
        return rc;
    assert_int_equal(chat_server_start(e->srv), CHAT_OK);
    e->port = chat_server_port(e->srv);
    free(e->tok);
    e->tok = NULL;
    assert_int_equal(chat_server_issue_token(e->srv, "alice", "d1", TOKEN_TTL_MS, &e->tok),
                     CHAT_OK);
    assert_int_equal(ws_connect(&e->c, e->port, WAIT_MS), 0);
    assert_int_equal(ws_sendf(e->c, "{\"type\":\"auth\",\"id\":\"a\",\"v\":1,\"token\":\"%s\"}",
                              e->tok),
                     0);
    for (;;) {
        cJSON *o = ws_recv_json(e->c, WAIT_MS);
        assert_non_null(o);
        const char *re = ws_json_str(o, "re");
        int done = re && strcmp(re, "a") == 0;
        if (done)
            assert_string_equal(ws_json_str(o, "type"), "auth_ok");
        cJSON_Delete(o);
        if (done)
            break;
    }
    return CHAT_OK;
}

static void server_down(env *e)
{
    ws_drop(e->c);
    e->c = NULL;
    chat_server_free(e->srv);
    e->srv = NULL;
}

static void env_free(env *e)
{
    if (e->srv)
        server_down(e);
    free(e->tok);
    e->tok = NULL;
    rm_rf(e->dir);
}

/* The answer to request id. */
static cJSON *answer(env *e, const char *id)
{
    long long dl = ws_now_ms() + WAIT_MS;
    for (;;) {
        long long left = dl - ws_now_ms();
        cJSON *o = ws_recv_json(e->c, left > 0 ? (int)left : 0);
        if (!o)
            fail_msg("no answer to %s within %d ms (closed %d)", id, WAIT_MS, ws_is_closed(e->c));
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(re, id) == 0)
            return o;
        cJSON_Delete(o);
    }
}

/* A failed request must say so with the documented retryable code, and nothing else. */
static void assert_storage_error(const cJSON *o)
{
    const char *t = ws_json_str(o, "type");
    const char *code = ws_json_str(o, "code"), *reason = ws_json_str(o, "reason");
    if (!t || strcmp(t, "error") != 0 || !code || strcmp(code, "EIO") != 0 || !reason ||
        strcmp(reason, "storage") != 0) {
        char *txt = cJSON_PrintUnformatted(o);
        fail_msg("expected ack or EIO/storage, got %s", txt ? txt : "?");
    }
}

/* What the client learnt: one entry per message it sent. */
typedef struct sent {
    char cmid[16];
    long long conv, seq;    /* seq 0: never acked */
    int dup;                /* the ack said dup:true */
} sent;

/* Send one text (to a user or a conversation); returns 1 with *s filled on ack, 0 on
 * EIO/storage (asserted). */
static int send_once(env *e, sent *s, const char *to, long long conv, int n)
{
    char id[32];
    snprintf(id, sizeof id, "%s.%d", s->cmid, n);
    if (to)
        assert_int_equal(ws_sendf(e->c, "{\"type\":\"send\",\"id\":\"%s\",\"to\":\"%s\","
                                        "\"cmid\":\"%s\",\"text\":\"t %s\"}",
                                  id, to, s->cmid, s->cmid),
                         0);
    else
        assert_int_equal(ws_sendf(e->c, "{\"type\":\"send\",\"id\":\"%s\",\"conv\":%lld,"
                                        "\"cmid\":\"%s\",\"text\":\"t %s\"}",
                                  id, conv, s->cmid, s->cmid),
                         0);
    cJSON *o = answer(e, id);
    int ok = strcmp(ws_json_str(o, "type"), "ack") == 0;
    if (ok) {
        assert_string_equal(ws_json_str(o, "cmid"), s->cmid);
        long long seq = ws_json_int(o, "seq");
        assert_true(seq >= 1);
        if (s->seq)
            assert_int_equal(seq, s->seq); /* an ack never changes its mind */
        s->conv = ws_json_int(o, "conv");
        s->seq = seq;
        s->dup = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "dup"));
    } else {
        assert_storage_error(o);
    }
    cJSON_Delete(o);
    return ok;
}

/* Retry policy of the sweeps: resend at once; after two failures the disk is "freed" (a sticky
 * fault is cleared). Counts every error answer in *errors. */
static void send_retry(env *e, sent *s, const char *to, long long conv, long *errors)
{
    for (int n = 0;; n++) {
        if (send_once(e, s, to, conv, n))
            return;
        (*errors)++;
        if (n >= 2)
            faultvfs_clear_fault();
        assert_true(n < 6);
    }
}

static long long group_create_retry(env *e, long *errors)
{
    for (int n = 0;; n++) {
        char id[16];
        snprintf(id, sizeof id, "g.%d", n);
        assert_int_equal(ws_sendf(e->c, "{\"type\":\"group_create\",\"id\":\"%s\","
                                        "\"title\":\"F\",\"members\":[\"bob\"]}",
                                  id),
                         0);
        cJSON *o = answer(e, id);
        if (strcmp(ws_json_str(o, "type"), "conv") == 0) {
            long long conv = ws_json_int(cJSON_GetObjectItemCaseSensitive(o, "conv"), "conv");
            cJSON_Delete(o);
            assert_true(conv > 0);
            return conv;
        }
        assert_storage_error(o);
        cJSON_Delete(o);
        (*errors)++;
        if (n >= 2)
            faultvfs_clear_fault();
        assert_true(n < 6);
    }
}

/* ---- checking the file after the fact ------------------------------------------------------ */

typedef struct stored {
    long long conv, seq;
    char cmid[16];
    int kind;
} stored;

/* integrity_check, then every message row (conv, seq order). Returns the row count. */
static int read_db(const char *path, stored *rows, int max)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *ok = (const char *)sqlite3_column_text(st, 0);
    if (!ok || strcmp(ok, "ok") != 0)
        fail_msg("integrity_check: %s", ok ? ok : "(null)");
    sqlite3_finalize(st);
    int n = 0;
    /* NORMAL: a power loss before the first checkpoint takes the schema with it. */
    if (sqlite3_prepare_v2(db, "SELECT conv, seq, coalesce(cmid, ''), kind "
                               "FROM messages ORDER BY conv, seq",
                           -1, &st, NULL) != SQLITE_OK) {
        assert_non_null(strstr(sqlite3_errmsg(db), "no such table"));
        sqlite3_close(db);
        return 0;
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        assert_true(n < max);
        rows[n].conv = sqlite3_column_int64(st, 0);
        rows[n].seq = sqlite3_column_int64(st, 1);
        snprintf(rows[n].cmid, sizeof rows[n].cmid, "%s", sqlite3_column_text(st, 2));
        rows[n].kind = sqlite3_column_int(st, 3);
        n++;
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return n;
}

/* Seqs 1..N in every conversation; no cmid twice in one conversation (one sender here). */
static void assert_rows_sane(const stored *rows, int n)
{
    for (int i = 0; i < n; i++) {
        long long want = (i > 0 && rows[i - 1].conv == rows[i].conv) ? rows[i - 1].seq + 1 : 1;
        if (rows[i].seq != want)
            fail_msg("conv %lld: seq %lld where %lld was due (a gap)", rows[i].conv,
                     rows[i].seq, want);
        for (int j = i + 1; j < n && rows[j].conv == rows[i].conv; j++)
            if (rows[i].kind != 3 && strcmp(rows[i].cmid, rows[j].cmid) == 0)
                fail_msg("cmid %s stored twice (seqs %lld and %lld)", rows[i].cmid,
                         rows[i].seq, rows[j].seq);
    }
}

static const stored *find_row(const stored *rows, int n, const char *cmid)
{
    for (int i = 0; i < n; i++)
        if (rows[i].kind != 3 && strcmp(rows[i].cmid, cmid) == 0)
            return &rows[i];
    return NULL;
}

/* ---- I/O error sweeps -------------------------------------------------------------------- */

#define SCEN_MSGS 6

typedef struct sweep_stats {
    long runs, faults, errors, open_failures;
} sweep_stats;

/* With checkpoints on: after every request a second connection (through the fault VFS too)
 * checkpoints the WAL into the database, so the sweep also reaches the database file's writes
 * and fsyncs, and the WAL restarts of the server's next commits. Its own errors are ignored:
 * it only makes the I/O happen. */
static int with_checkpoints;
static sqlite3 *checkpointer;

static void maybe_checkpoint(env *e)
{
    if (!with_checkpoints)
        return;
    if (!checkpointer)
        assert_int_equal(sqlite3_open_v2(e->db, &checkpointer, SQLITE_OPEN_READWRITE,
                                         FAULTVFS_NAME),
                         SQLITE_OK);
    /* Read first: a connection learns that the file is in WAL mode when it opens it. */
    sqlite3_exec(checkpointer, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
    sqlite3_wal_checkpoint_v2(checkpointer, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
}

static void checkpointer_close(void)
{
    if (checkpointer)
        sqlite3_close(checkpointer);
    checkpointer = NULL;
}

/* The scenario: three texts to bob (the first creates the 1:1), a group, three texts into it.
 * Every message ends up acked (resends on EIO). Then the power fails; every acked message
 * must be on the disk. */
static void scenario(env *e, sent *s, long *errors)
{
    for (int i = 0; i < SCEN_MSGS; i++) {
        memset(&s[i], 0, sizeof s[i]);
        snprintf(s[i].cmid, sizeof s[i].cmid, "m%d", i);
    }
    for (int i = 0; i < 3; i++) {
        send_retry(e, &s[i], "bob", 0, errors);
        maybe_checkpoint(e);
    }
    long long g = group_create_retry(e, errors);
    maybe_checkpoint(e);
    for (int i = 3; i < SCEN_MSGS; i++) {
        send_retry(e, &s[i], NULL, g, errors);
        maybe_checkpoint(e);
    }
}

static void check_after_power_loss(env *e, const sent *s, int n_sent)
{
    static stored rows[MAX_MSGS];
    int n = read_db(e->db, rows, MAX_MSGS);
    assert_rows_sane(rows, n);
    for (int i = 0; i < n_sent; i++) {
        if (!s[i].seq)
            continue;
        const stored *r = find_row(rows, n, s[i].cmid);
        if (!r)
            fail_msg("acked %s (seq %lld) lost by a power loss under synchronous=FULL",
                     s[i].cmid, s[i].seq);
        assert_int_equal(r->seq, s[i].seq);
        assert_int_equal(r->conv, s[i].conv);
    }
}

/* Count the calls of a clean scenario. */
static void dry_run(long *writes, long *syncs)
{
    env e;
    env_dir(&e);
    faultvfs_set_buffering(1);
    assert_int_equal(server_up(&e, CHAT_STORE_SQLITE_SYNC_FULL), CHAT_OK);
    faultvfs_reset_counters();
    sent s[SCEN_MSGS];
    long errors = 0;
    scenario(&e, s, &errors);
    assert_int_equal(errors, 0);
    *writes = faultvfs_count(FV_WRITE);
    *syncs = faultvfs_count(FV_SYNC);
    checkpointer_close();
    faultvfs_crash(1, 1);
    server_down(&e);
    faultvfs_restore();
    check_after_power_loss(&e, s, SCEN_MSGS);
    env_free(&e);
}

static void sweep(int kind, int rc, int sticky, const char *label)
{
    long writes = 0, syncs = 0;
    dry_run(&writes, &syncs);
    long kmax = (kind == FV_WRITE ? writes : syncs) + 2;
    assert_true(kmax > 3);
    sweep_stats st = {0};
    for (long k = 1; k <= kmax; k++) {
        env e;
        env_dir(&e);
        faultvfs_set_buffering(1);
        assert_int_equal(server_up(&e, CHAT_STORE_SQLITE_SYNC_FULL), CHAT_OK);
        faultvfs_reset_counters();
        faultvfs_fail_at(kind, k, rc, sticky);
        sent s[SCEN_MSGS];
        scenario(&e, s, &st.errors);
        st.faults += faultvfs_faults();
        faultvfs_clear_fault();
        /* Still serving: one more message after the fault. */
        sent extra = {.cmid = "after"};
        assert_int_equal(send_once(&e, &extra, "bob", 0, 0), 1);
        checkpointer_close();
        faultvfs_crash(1, (unsigned)k);
        server_down(&e);
        faultvfs_restore();
        check_after_power_loss(&e, s, SCEN_MSGS);
        env_free(&e);
        st.runs++;
    }
    printf("[faults %s] calls in scenario: %ld writes, %ld syncs; k swept 1..%ld: runs=%ld "
           "faults fired=%ld EIO answers=%ld false acks=0 acked lost after power loss=0\n",
           label, writes, syncs, kmax, st.runs, st.faults, st.errors);
    assert_true(st.faults > 0);
    assert_true(st.errors > 0);
}

static void test_faults_write_ioerr(void **state)
{
    (void)state;
    sweep(FV_WRITE, SQLITE_IOERR_WRITE, 0, "write IOERR once");
}

static void test_faults_write_full_once(void **state)
{
    (void)state;
    sweep(FV_WRITE, SQLITE_FULL, 0, "write FULL once");
}

static void test_faults_write_full_sticky(void **state)
{
    (void)state;
    sweep(FV_WRITE, SQLITE_FULL, 1, "write FULL until freed");
}

static void test_faults_sync_ioerr(void **state)
{
    (void)state;
    sweep(FV_SYNC, SQLITE_IOERR_FSYNC, 0, "fsync IOERR once");
}

static void test_faults_with_checkpoints(void **state)
{
    (void)state;
    with_checkpoints = 1;
    sweep(FV_WRITE, SQLITE_IOERR_WRITE, 0, "write IOERR once, checkpoint after each request");
    sweep(FV_SYNC, SQLITE_IOERR_FSYNC, 0, "fsync IOERR once, checkpoint after each request");
    sweep(FV_WRITE, SQLITE_FULL, 1, "write FULL until freed, checkpoint after each request");
    with_checkpoints = 0;
}

/* A failed open (migration writes) reports EIO and leaves a file that opens later. */
static void test_faults_at_open(void **state)
{
    (void)state;
    int failed = 0, k;
    for (k = 1; k <= 64; k++) {
        env e;
        env_dir(&e);
        faultvfs_set_buffering(0);
        faultvfs_reset_counters();
        faultvfs_fail_at(FV_WRITE, k, SQLITE_IOERR_WRITE, 0);
        int rc = server_up(&e, CHAT_STORE_SQLITE_SYNC_FULL);
        long fired = faultvfs_faults();
        faultvfs_clear_fault();
        if (rc != CHAT_OK) {
            assert_int_equal(rc, CHAT_EIO);
            failed++;
            assert_int_equal(server_up(&e, CHAT_STORE_SQLITE_SYNC_FULL), CHAT_OK);
        }
        sent s = {.cmid = "x"};
        assert_int_equal(send_once(&e, &s, "bob", 0, 0), 1);
        server_down(&e);
        static stored rows[8];
        assert_int_equal(read_db(e.db, rows, 8), 1);
        env_free(&e);
        if (!fired)
            break;
    }
    printf("[faults open] write k=1..%d during store open: %d opens failed with EIO, "
           "all reopened clean\n", k, failed);
    assert_true(failed > 0);
}

/* A full disk for longer than 50 requests: every one answers EIO/storage, and none of them
 * counts towards the abuse limit (50 error frames in 10 s close the connection with 1008): the
 * failures are the server's, not the client's. Once the disk has room, the same connection is
 * acked again. */
static void test_faults_storage_errors_keep_the_connection(void **state)
{
    (void)state;
    env e;
    env_dir(&e);
    faultvfs_set_buffering(0);
    assert_int_equal(server_up(&e, CHAT_STORE_SQLITE_SYNC_FULL), CHAT_OK);
    sent first = {.cmid = "first"};
    assert_int_equal(send_once(&e, &first, "bob", 0, 0), 1);
    faultvfs_reset_counters();
    faultvfs_fail_at(FV_WRITE, 1, SQLITE_FULL, 1);
    for (int i = 0; i < 60; i++) {
        sent s;
        memset(&s, 0, sizeof s);
        snprintf(s.cmid, sizeof s.cmid, "full%d", i);
        assert_int_equal(send_once(&e, &s, NULL, first.conv, 0), 0);
    }
    assert_true(faultvfs_faults() >= 60);
    assert_false(ws_is_closed(e.c));
    faultvfs_clear_fault();
    sent after = {.cmid = "after"};
    assert_int_equal(send_once(&e, &after, NULL, first.conv, 0), 1);
    assert_int_equal(after.seq, first.seq + 1);
    env_free(&e);
}

/* Teardown of a test that arms a lasting fault: a failed assertion must not leave it armed for
 * the tests after it. */
static int disarm(void **state)
{
    (void)state;
    faultvfs_clear_fault();
    faultvfs_reset_counters();
    return 0;
}

/* An fsync fails at a commit (the client gets EIO) and the process dies right after, before
 * anything overwrites the WAL frames the failed commit left in the page cache: the restart may
 * recover that commit. The resend with the same cmid must then be acked with the recovered seq
 * (dup), never stored twice. */
static void test_faults_fsync_then_crash(void **state)
{
    (void)state;
    long writes = 0, syncs = 0;
    dry_run(&writes, &syncs);
    int recovered = 0, failed_sends = 0;
    for (long k = 1; k <= syncs; k++) {
        env e;
        env_dir(&e);
        faultvfs_set_buffering(1);
        assert_int_equal(server_up(&e, CHAT_STORE_SQLITE_SYNC_FULL), CHAT_OK);
        faultvfs_reset_counters();
        faultvfs_fail_at(FV_SYNC, k, SQLITE_IOERR_FSYNC, 0);
        sent s[SCEN_MSGS];
        memset(s, 0, sizeof s);
        for (int i = 0; i < SCEN_MSGS; i++)
            snprintf(s[i].cmid, sizeof s[i].cmid, "m%d", i);
        int failed = -1;
        for (int i = 0; i < SCEN_MSGS; i++) {
            if (!send_once(&e, &s[i], "bob", 0, 0)) {
                failed = i;
                break;
            }
        }
        faultvfs_clear_fault();
        faultvfs_crash(0, 0); /* the process dies; the page cache survives */
        server_down(&e);
        faultvfs_restore();
        assert_int_equal(server_up(&e, CHAT_STORE_SQLITE_SYNC_FULL), CHAT_OK);
        for (int i = 0; i < SCEN_MSGS; i++) {
            long long before = s[i].seq;
            long errors = 0;
            send_retry(&e, &s[i], "bob", 0, &errors);
            assert_int_equal(errors, 0);
            if (i < failed)
                assert_int_equal(s[i].seq, before);
            if (i == failed) {
                failed_sends++;
                recovered += s[i].dup;
            }
        }
        faultvfs_crash(1, 7);
        server_down(&e);
        faultvfs_restore();
        check_after_power_loss(&e, s, SCEN_MSGS);
        env_free(&e);
    }
    printf("[faults fsync+crash] k=1..%ld: sends answered EIO=%d, of which recovered by the "
           "restart and acked dup on resend=%d, stored twice=0\n",
           syncs, failed_sends, recovered);
    assert_true(failed_sends > 0);
}

/* ---- power loss under load --------------------------------------------------------------- */

static unsigned int rng_state;

static unsigned int rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) & 0xffffff;
}

#define LOAD 200

typedef struct power_stats {
    int trials, acked, lost, max_lost, resent, late;
    long dropped;
} power_stats;

static void send_load(env *e, const sent *s, int i)
{
    assert_int_equal(ws_sendf(e->c, "{\"type\":\"send\",\"id\":\"%d\",\"to\":\"bob\","
                                    "\"cmid\":\"%s\",\"text\":\"p\"}",
                              i, s[i].cmid),
                     0);
}

static void power_trial(unsigned int flags, int tear, unsigned int seed, power_stats *ps)
{
    env e;
    env_dir(&e);
    faultvfs_set_buffering(1);
    assert_int_equal(server_up(&e, flags), CHAT_OK);
    static sent s[LOAD];
    memset(s, 0, sizeof s);
    /* 16 sends in flight, one more per ack, until the power fails at a random write or sync
     * of the WAL or the database: in the middle of a group commit. */
    for (int i = 0; i < LOAD; i++)
        snprintf(s[i].cmid, sizeof s[i].cmid, "p%d", i);
    int at_sync = (int)(rnd() % 2);
    long k = 1 + (long)(rnd() % (at_sync ? 25 : 250));
    faultvfs_reset_counters();
    faultvfs_crash_at(at_sync ? FV_SYNC : FV_WRITE, k, tear ? 2 : 1, seed);
    int acked = 0, next = 0;
    for (; next < 16; next++)
        send_load(&e, s, next);
    while (acked < LOAD) {
        cJSON *o = ws_recv_json(e.c, WAIT_MS);
        assert_non_null(o);
        /* An ack read after the cut may be for a commit the dead disk never saw: ignore it. */
        if (faultvfs_crashed()) {
            cJSON_Delete(o);
            break;
        }
        const char *re = ws_json_str(o, "re");
        if (re && strcmp(ws_json_str(o, "type"), "ack") == 0) {
            int i = atoi(re);
            s[i].seq = ws_json_int(o, "seq");
            s[i].conv = ws_json_int(o, "conv");
            acked++;
            if (next < LOAD)
                send_load(&e, s, next++);
        } else if (re) {
            fail_msg("send %s answered %s", re, ws_json_str(o, "type"));
        }
        cJSON_Delete(o);
    }
    if (faultvfs_crash(tear ? 2 : 1, seed) == 0 && acked == LOAD)
        ps->late++;  /* the load finished before the armed call: cut at the end */
    ps->dropped += faultvfs_dropped();
    server_down(&e);
    faultvfs_restore();

    static stored rows[MAX_MSGS];
    int n = read_db(e.db, rows, MAX_MSGS);
    assert_rows_sane(rows, n);
    int lost = 0;
    long long max_kept = 0, min_lost = 0;
    for (int i = 0; i < LOAD; i++) {
        if (!s[i].seq)
            continue;
        const stored *r = find_row(rows, n, s[i].cmid);
        if (r) {
            assert_int_equal(r->seq, s[i].seq);
            if (s[i].seq > max_kept)
                max_kept = s[i].seq;
        } else {
            lost++;
            if (!min_lost || s[i].seq < min_lost)
                min_lost = s[i].seq;
        }
    }
    if (flags & CHAT_STORE_SQLITE_SYNC_FULL)
        assert_int_equal(lost, 0);
    /* NORMAL: what is lost is the tail of the commits, never a hole. */
    if (lost && max_kept > min_lost)
        fail_msg("acked seq %lld lost but later seq %lld kept", min_lost, max_kept);
    ps->trials++;
    ps->acked += acked;
    ps->lost += lost;
    if (lost > ps->max_lost)
        ps->max_lost = lost;

    /* Recovery: a client resends everything it has no ack for, and what was lost. */
    assert_int_equal(server_up(&e, flags), CHAT_OK);
    for (int i = 0; i < LOAD; i++) {
        if (s[i].seq && find_row(rows, n, s[i].cmid))
            continue;
        s[i].seq = 0;
        long errors = 0;
        send_retry(&e, &s[i], "bob", 0, &errors);
        ps->resent++;
    }
    server_down(&e);
    n = read_db(e.db, rows, MAX_MSGS);
    assert_int_equal(n, LOAD);
    assert_rows_sane(rows, n);
    for (int i = 0; i < LOAD; i++)
        assert_non_null(find_row(rows, n, s[i].cmid));
    env_free(&e);
}

static void power_loss(unsigned int flags, const char *label)
{
    const char *t = getenv("CHAT_POWER_TRIALS");
    int trials = t ? atoi(t) : 6;
    const char *sd = getenv("CHAT_FAULT_SEED");
    rng_state = sd ? (unsigned)strtoul(sd, NULL, 10) : (unsigned)time(NULL);
    printf("[power %s] seed %u (CHAT_FAULT_SEED replays)\n", label, rng_state);
    for (int tear = 0; tear <= 1; tear++) {
        power_stats ps = {0};
        for (int i = 0; i < trials; i++)
            power_trial(flags, tear, rnd(), &ps);
        printf("[power %s, unsynced writes %s] trials=%d acked before the cut=%d lost=%d "
               "(max %d in one trial) unsynced writes dropped=%ld cut after the load ended=%d "
               "resent after=%d, all stored exactly once, integrity ok\n",
               label, tear ? "torn (random subset kept)" : "dropped", ps.trials, ps.acked,
               ps.lost, ps.max_lost, ps.dropped, ps.late, ps.resent);
    }
}

static void test_power_loss_sync_full(void **state)
{
    (void)state;
    power_loss(CHAT_STORE_SQLITE_SYNC_FULL, "synchronous=FULL");
}

static void test_power_loss_sync_normal(void **state)
{
    (void)state;
    power_loss(0, "synchronous=NORMAL");
}

/* ---- the WAL write gatherer (lib/store/sqlite_walbuf.c) ----------------------------------- */

#define WB_CONVS 40
#define WB_BODY 3000 /* about a page per message, so each message is a WAL frame of its own */

typedef struct wb_count {
    int n;
    int bad; /* a body that is not what was stored */
} wb_count;

static int wb_check(const chat_store_msg *m, void *ud)
{
    wb_count *c = ud;
    c->n++;
    if (m->body_len != WB_BODY || (unsigned char)m->body[0] != (unsigned char)('a' + m->seq % 26) ||
        (unsigned char)m->body[WB_BODY - 1] != (unsigned char)('a' + m->conv % 26))
        c->bad++;
    return 0;
}

/* Append per_conv messages to each of WB_CONVS conversations in one transaction. */
static void wb_append(const chat_store_ops *ops, void *st, const int64_t *convs, int per_conv,
                      uint64_t first_seq)
{
    static char body[WB_BODY];
    assert_int_equal(ops->begin(st), CHAT_OK);
    for (int k = 0; k < per_conv; k++) {
        for (int i = 0; i < WB_CONVS; i++) {
            chat_store_msg m = {0};
            char cmid[32];
            m.conv = convs[i];
            m.seq = first_seq + (uint64_t)k;
            snprintf(cmid, sizeof cmid, "c-%d-%llu", i, (unsigned long long)m.seq);
            m.sender = "alice";
            m.device = "d1";
            m.cmid = cmid;
            m.kind = CHAT_MSG_TEXT;
            m.ts_ms = 1;
            memset(body, 'x', sizeof body);
            body[0] = (char)('a' + m.seq % 26);
            body[WB_BODY - 1] = (char)('a' + m.conv % 26);
            m.body = body;
            m.body_len = sizeof body;
            assert_int_equal(ops->msg_insert(st, &m), CHAT_OK);
        }
    }
    assert_int_equal(ops->commit(st), CHAT_OK);
}

/* Every message as stored, read through a second connection opened after the commits. */
static void wb_verify(const char *db, const int64_t *convs, int per_conv)
{
    const chat_store_ops *ops = chat_store_sqlite_ops();
    void *st = NULL;
    assert_int_equal(chat_store_sqlite_open(&st, db, CHAT_STORE_SQLITE_INLINE_CHECKPOINT, NULL),
                     CHAT_OK);
    for (int i = 0; i < WB_CONVS; i++) {
        wb_count c = {0, 0};
        assert_int_equal(ops->msg_range(st, convs[i], 0, 0, 10000, 0, wb_check, &c), CHAT_OK);
        assert_int_equal(c.n, per_conv);
        assert_int_equal(c.bad, 0);
    }
    ops->destroy(st);
}

static void test_wal_appends_of_a_commit_are_one_write(void **state)
{
    (void)state;
    env e;
    env_dir(&e);
    faultvfs_restore();
    faultvfs_set_buffering(0); /* writes reach the disk: a second connection reads them */
    const chat_store_ops *ops = chat_store_sqlite_ops();
    void *st = NULL;
    assert_int_equal(chat_store_sqlite_open(&st, e.db, CHAT_STORE_SQLITE_INLINE_CHECKPOINT,
                                            FAULTVFS_NAME),
                     CHAT_OK);
    int64_t convs[WB_CONVS];
    assert_int_equal(ops->begin(st), CHAT_OK);
    for (int i = 0; i < WB_CONVS; i++) {
        chat_store_conv c = {0};
        c.kind = CHAT_CONV_GROUP;
        assert_int_equal(ops->conv_insert(st, &c), CHAT_OK);
        convs[i] = c.id;
    }
    assert_int_equal(ops->commit(st), CHAT_OK);

    /* One commit of 40 messages of ~3 KB, at least a frame each (two pwrite()s per frame
     * through SQLite alone): the appends reach the VFS as a few writes of up to 124 KiB. */
    faultvfs_reset_counters();
    wb_append(ops, st, convs, 1, 1);
    long writes = faultvfs_count(FV_WRITE);
    printf("[wal gatherer] a commit of %d page-sized messages: %ld writes\n", WB_CONVS, writes);
    assert_true(writes >= 1 && writes <= 8);

    /* A transaction past the 1 MiB buffer (400 such messages: over 800 pwrite()s without the
     * gatherer) flushes on the way and at its end; both commits are whole in a connection
     * that opens afterwards. */
    faultvfs_reset_counters();
    wb_append(ops, st, convs, 10, 2);
    writes = faultvfs_count(FV_WRITE);
    printf("[wal gatherer] a commit of %d page-sized messages: %ld writes\n", WB_CONVS * 10,
           writes);
    assert_true(writes >= 2 && writes <= 100);
    wb_verify(e.db, convs, 11);
    ops->destroy(st);
    wb_verify(e.db, convs, 11); /* and after the last close checkpointed the WAL */
    rm_rf(e.dir);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (faultvfs_register() != SQLITE_OK) {
        fprintf(stderr, "cannot register the fault VFS\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_write_ioerr),
        cmocka_unit_test(test_faults_write_full_once),
        cmocka_unit_test(test_faults_write_full_sticky),
        cmocka_unit_test(test_faults_sync_ioerr),
        cmocka_unit_test(test_faults_with_checkpoints),
        cmocka_unit_test(test_faults_at_open),
        cmocka_unit_test_teardown(test_faults_storage_errors_keep_the_connection, disarm),
        cmocka_unit_test(test_faults_fsync_then_crash),
        cmocka_unit_test(test_power_loss_sync_full),
        cmocka_unit_test(test_power_loss_sync_normal),
        cmocka_unit_test(test_wal_appends_of_a_commit_are_one_write),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
