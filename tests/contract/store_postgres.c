/* What only the PostgreSQL store has: a database that outlives the store and is shared by
 * several of them (servers of a cluster), a schema others may have migrated, and a server that
 * may restart or go away. Run by `test_store postgres` on the server of tests/lib/pgtemp.py:
 * CHAT_TEST_PG is its conninfo, CHAT_TEST_PG_CTL a command that restarts, stops or starts it.
 * Each test gets a database of its own (pg_fx_create). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "chat/errors.h"
#include "chat/sys/store.h"
#include "store/checked.h"
#include "store_fx.h"

/* ---- the server and its databases ---- */

static PGconn *admin(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", conninfo, PQerrorMessage(c));
    return c;
}

static void sql(const char *conninfo, const char *q)
{
    PGconn *c = admin(conninfo);
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* The first column of the first row as text ("" when none). */
static const char *sql_value(const char *conninfo, const char *q, char *buf, size_t size)
{
    PGconn *c = admin(conninfo);
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQresultErrorMessage(r));
    snprintf(buf, size, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return buf;
}

static void make_db(fx *f, const char *name)
{
    char q[128];
    snprintf(f->db, sizeof f->db, "%s", name);
    snprintf(q, sizeof q, "CREATE DATABASE %s", f->db);
    sql(getenv("CHAT_TEST_PG"), q);
    /* A keyword given twice: the last one counts. */
    snprintf(f->conninfo, sizeof f->conninfo, "%s dbname=%s", getenv("CHAT_TEST_PG"), f->db);
}

void pg_fx_create(fx *f)
{
    static int n;
    char name[64];
    snprintf(name, sizeof name, "chat_store_%d_%d", (int)getpid(), ++n);
    make_db(f, name);
}

void pg_fx_drop(fx *f)
{
    char q[128];
    snprintf(q, sizeof q, "DROP DATABASE IF EXISTS %s WITH (FORCE)", f->db);
    sql(getenv("CHAT_TEST_PG"), q);
}

static void pg_ctl(const char *action)
{
    const char *ctl = getenv("CHAT_TEST_PG_CTL");
    assert_non_null(ctl);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s", ctl, action);
    assert_int_equal(system(cmd), 0);
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- helpers ---- */

static int64_t new_conv(const chat_store_ops *ops, void *st)
{
    chat_store_conv c = {0};
    c.kind = CHAT_CONV_GROUP;
    strcpy(c.title, "g");
    assert_int_equal(ops->conv_insert(st, &c), CHAT_OK);
    return c.id;
}

static chat_store_msg text_msg(int64_t conv, uint64_t seq, const char *sender, const char *cmid)
{
    chat_store_msg m = {0};
    m.conv = conv;
    m.seq = seq;
    m.ts_ms = 1000 + (int64_t)seq;
    m.sender = sender;
    m.device = "d";
    m.cmid = cmid;
    m.kind = CHAT_MSG_TEXT;
    m.body = cmid;
    m.body_len = strlen(cmid);
    return m;
}

/* Append one message in a transaction of its own, as the engine does: the conversation read
 * (and locked) inside it, the message at head + 1, the head moved. Returns the first failure,
 * after rollback. */
static int append_tx(const chat_store_ops *ops, void *st, int64_t conv, const char *cmid)
{
    chat_store_conv c;
    int rc = ops->begin(st);
    if (rc != CHAT_OK)
        return rc;
    chat_store_msg m;
    if ((rc = ops->conv_get(st, conv, &c)) == CHAT_OK) {
        m = text_msg(conv, c.head_seq + 1, "ann", cmid);
        rc = ops->msg_insert(st, &m);
    }
    if (rc == CHAT_OK) {
        c.head_seq++;
        rc = ops->conv_update(st, &c);
    }
    if (rc == CHAT_OK && (rc = ops->commit(st)) == CHAT_OK)
        return CHAT_OK;
    assert_int_equal(ops->rollback(st), CHAT_OK);
    return rc;
}

/* Retry append_tx while it answers CHAT_EAGAIN (the server coming back), for up to 30 s. */
static void append_until_ok(fx *f, int64_t conv, const char *cmid)
{
    int rc = CHAT_EAGAIN;
    for (int i = 0; i < 600 && rc == CHAT_EAGAIN; i++) {
        if (i)
            nap_ms(50);
        rc = append_tx(f->ops, f->st, conv, cmid);
    }
    assert_int_equal(rc, CHAT_OK);
}

typedef struct seen {
    char buf[4096];
    int n;
} seen;

static int see_msg(const chat_store_msg *m, void *ud)
{
    seen *s = ud;
    size_t len = strlen(s->buf);
    snprintf(s->buf + len, sizeof s->buf - len, "%llu:%s,", (unsigned long long)m->seq, m->cmid);
    s->n++;
    return 0;
}

static int search_hit(const chat_store_msg *m, uint64_t cursor, void *ud)
{
    (void)cursor;
    seen *s = ud;
    size_t len = strlen(s->buf);
    snprintf(s->buf + len, sizeof s->buf - len, "%llu,", (unsigned long long)m->seq);
    return 0;
}

static const char *history(fx *f, int64_t conv, seen *s)
{
    memset(s, 0, sizeof *s);
    assert_int_equal(f->ops->msg_range(f->st, conv, 0, 0, 1000, 0, see_msg, s), CHAT_OK);
    return s->buf;
}

/* ---- lifecycle and schema ---- */

void test_store_postgres_reopen_persists(void **state)
{
    fx *f = *state;
    int64_t conv = new_conv(f->ops, f->st);
    assert_int_equal(append_tx(f->ops, f->st, conv, "c1"), CHAT_OK);
    assert_int_equal(f->ops->meta_set(f->st, "k", 7), CHAT_OK);
    /* An open transaction at close is lost. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->meta_set(f->st, "lost", 1), CHAT_OK);
    close_store(f);
    assert_int_equal(open_store(f), CHAT_OK);
    seen s;
    assert_string_equal(history(f, conv, &s), "1:c1,");
    int64_t v;
    assert_int_equal(f->ops->meta_get(f->st, "k", &v), CHAT_OK);
    assert_int_equal(v, 7);
    assert_int_equal(f->ops->meta_get(f->st, "lost", &v), CHAT_ENOTFOUND);
}

static void *open_in_thread(void *arg)
{
    fx *f = arg;
    void *st = NULL;
    intptr_t rc = chat_store_postgres_open(&st, f->conninfo, 0);
    if (st)
        chat_store_postgres_ops()->destroy(st);
    return (void *)rc;
}

void test_store_postgres_schema(void **state)
{
    fx *f = *state;
    char v[256];
    assert_string_equal(sql_value(f->conninfo, "SELECT version FROM schema_version", v, sizeof v),
                        "4");
    /* Messages: hash-partitioned by conversation, 16 ways; the seq unique per conversation,
     * the client id unique per sender's device. */
    assert_string_equal(sql_value(f->conninfo,
                                  "SELECT partstrat::text || ':' || (SELECT count(*) "
                                  "FROM pg_inherits WHERE inhparent = 'messages'::regclass) || "
                                  "':' || "
                                  "pg_get_partkeydef('messages'::regclass) "
                                  "FROM pg_partitioned_table "
                                  "WHERE partrelid = 'messages'::regclass",
                                  v, sizeof v),
                        "h:16:HASH (conv)");
    assert_string_equal(
        sql_value(f->conninfo,
                  "SELECT string_agg(pg_get_constraintdef(oid), ' | ' ORDER BY contype) "
                  "FROM pg_constraint WHERE conrelid = 'messages'::regclass",
                  v, sizeof v),
        "PRIMARY KEY (conv, seq) | UNIQUE (conv, sender, device, cmid)");
    /* Push registrations: one per (user, device), found by token for push_reg_del_token. */
    assert_string_equal(
        sql_value(f->conninfo,
                  "SELECT string_agg(pg_get_indexdef(indexrelid), ' | ' ORDER BY indisprimary) "
                  "FROM pg_index WHERE indrelid = 'push_regs'::regclass",
                  v, sizeof v),
        "CREATE INDEX push_regs_token ON public.push_regs USING btree (token, platform) | "
        "CREATE UNIQUE INDEX push_regs_pkey ON public.push_regs USING btree (user_id, device)");

    /* Two servers starting at once on an empty database: one migrates, the other waits for
     * it and finds the schema made. */
    fx g = *f;
    make_db(&g, "chat_store_race");
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, open_in_thread, &g), 0);
    for (int i = 0; i < 2; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_int_equal((int)(intptr_t)rc, CHAT_OK);
    }
    assert_string_equal(sql_value(g.conninfo, "SELECT string_agg(version::text, ',') "
                                              "FROM schema_version", v, sizeof v),
                        "4");
    pg_fx_drop(&g);
}

void test_store_postgres_newer_schema_refused(void **state)
{
    fx *f = *state;
    close_store(f);
    sql(f->conninfo, "UPDATE schema_version SET version = 99");
    void *st = NULL;
    assert_int_equal(chat_store_postgres_open(&st, f->conninfo, 0), CHAT_EVERSION);
    assert_null(st);
    assert_non_null(strstr(chat_error_last()->message, "schema version 99 is newer"));
    /* Refused before anything was touched. */
    char v[32];
    assert_string_equal(sql_value(f->conninfo, "SELECT version FROM schema_version", v, sizeof v),
                        "99");
    sql(f->conninfo, "UPDATE schema_version SET version = 4");
    assert_int_equal(open_store(f), CHAT_OK);
}

/* What schema 4 added (the message lifecycle), taken away again: a database of schema 3. */
#define DROP_LIFECYCLE                                                                          \
    "DROP TABLE reactions, deleted_users; DROP SEQUENCE messages_sid;"                          \
    "ALTER TABLE messages DROP COLUMN target, DROP COLUMN thread, DROP COLUMN edited_ms,"     \
    "  DROP COLUMN expires_ms, DROP COLUMN flags, DROP COLUMN sid, DROP COLUMN search;"        \
    "ALTER TABLE conversations DROP COLUMN msg_ttl_ms;"

void test_store_postgres_older_schema_migrated(void **state)
{
    fx *f = *state;
    int64_t conv = new_conv(f->ops, f->st);
    assert_int_equal(append_tx(f->ops, f->st, conv, "c1"), CHAT_OK);
    close_store(f);
    /* A database as the first version of the schema left it: no media or push tables, none
     * of the message lifecycle. */
    sql(f->conninfo, "DROP TABLE media, media_grants, push_regs, push_mutes;" DROP_LIFECYCLE
                     "UPDATE schema_version SET version = 1");
    assert_int_equal(open_store(f), CHAT_OK);
    char v[32];
    assert_string_equal(sql_value(f->conninfo, "SELECT version FROM schema_version", v, sizeof v),
                        "4");
    /* The message stored before search existed is found (ASCII punctuation splits words). */
    int64_t convs[1] = {conv};
    uint64_t after[1] = {0};
    chat_store_search q = {"C1", convs, after, 1, 0, 10};
    seen hit;
    memset(&hit, 0, sizeof hit);
    assert_int_equal(f->ops->msg_search(f->st, &q, search_hit, &hit), CHAT_OK);
    assert_string_equal(hit.buf, "1,");
    chat_store_media m = {0}, out;
    strcpy(m.id, "ab01");
    strcpy(m.uploader, "ann");
    strcpy(m.mime, "image/png");
    m.size = 3;
    assert_int_equal(f->ops->media_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->media_get(f->st, "ab01", &out), CHAT_OK);
    seen s;
    assert_string_equal(history(f, conv, &s), "1:c1,");
}

static int count_reg(const chat_store_push_reg *reg, void *user_data)
{
    (void)reg;
    ++*(int *)user_data;
    return 0;
}

void test_store_postgres_v2_schema_gains_push(void **state)
{
    fx *f = *state;
    int64_t conv = new_conv(f->ops, f->st);
    assert_int_equal(append_tx(f->ops, f->st, conv, "c1"), CHAT_OK);
    close_store(f);
    /* A database as version 2 of the schema left it: media, no push tables. */
    sql(f->conninfo, "DROP TABLE push_regs, push_mutes;" DROP_LIFECYCLE
                     "ALTER TABLE media DROP COLUMN refs; UPDATE schema_version SET version = 2");
    assert_int_equal(open_store(f), CHAT_OK);
    char v[32];
    assert_string_equal(sql_value(f->conninfo, "SELECT version FROM schema_version", v, sizeof v),
                        "4");
    chat_store_push_reg reg = {0};
    strcpy(reg.user, "ann");
    strcpy(reg.device, "phone");
    reg.platform = CHAT_PUSH_APNS;
    strcpy(reg.token, "aa01");
    assert_int_equal(f->ops->push_reg_put(f->st, &reg), CHAT_OK);
    assert_int_equal(f->ops->push_mute_put(f->st, "ann", conv, 50), CHAT_OK);
    /* Kept by the database: another store on it (a server restarted) finds them. */
    close_store(f);
    assert_int_equal(open_store(f), CHAT_OK);
    int n = 0;
    assert_int_equal(f->ops->push_reg_list(f->st, "ann", count_reg, &n), CHAT_OK);
    assert_int_equal(n, 1);
    int64_t until = 0;
    assert_int_equal(f->ops->push_mute_get(f->st, "ann", conv, &until), CHAT_OK);
    assert_true(until == 50);
    seen s;
    assert_string_equal(history(f, conv, &s), "1:c1,");
}

/* A database of schema 3 (push registrations, before the message lifecycle) gains the
 * lifecycle: its messages are found by search, its registrations stay. */
void test_store_postgres_v3_schema_gains_lifecycle(void **state)
{
    fx *f = *state;
    int64_t conv = new_conv(f->ops, f->st);
    assert_int_equal(append_tx(f->ops, f->st, conv, "c1"), CHAT_OK);
    chat_store_push_reg reg = {0};
    strcpy(reg.user, "ann");
    strcpy(reg.device, "phone");
    reg.platform = CHAT_PUSH_FCM;
    strcpy(reg.token, "tok-1");
    assert_int_equal(f->ops->push_reg_put(f->st, &reg), CHAT_OK);
    close_store(f);
    sql(f->conninfo, DROP_LIFECYCLE "ALTER TABLE media DROP COLUMN refs;"
                     "UPDATE schema_version SET version = 3");
    assert_int_equal(open_store(f), CHAT_OK);
    char v[32];
    assert_string_equal(sql_value(f->conninfo, "SELECT version FROM schema_version", v, sizeof v),
                        "4");
    int64_t convs[1] = {conv};
    uint64_t after[1] = {0};
    chat_store_search q = {"C1", convs, after, 1, 0, 10};
    seen hit;
    memset(&hit, 0, sizeof hit);
    assert_int_equal(f->ops->msg_search(f->st, &q, search_hit, &hit), CHAT_OK);
    assert_string_equal(hit.buf, "1,");
    int n = 0;
    assert_int_equal(f->ops->push_reg_list(f->st, "ann", count_reg, &n), CHAT_OK);
    assert_int_equal(n, 1);
    seen s;
    assert_string_equal(history(f, conv, &s), "1:c1,");
}

void test_store_postgres_bad_open(void **state)
{
    fx *f = *state;
    void *st = NULL;
    assert_int_equal(chat_store_postgres_open(&st, "host=/nonexistent-dir port=1 dbname=x", 0),
                     CHAT_EAGAIN);
    assert_null(st);
    assert_non_null(strstr(chat_error_last()->message, "cannot connect"));
    assert_int_equal(chat_store_postgres_open(&st, "no_such_keyword=1", 0), CHAT_EINVAL);
    assert_int_equal(chat_store_postgres_open(&st, f->conninfo, 0x10), CHAT_EINVAL);
    assert_int_equal(chat_store_postgres_open(&st, NULL, 0), CHAT_EINVAL);
    assert_int_equal(chat_store_postgres_open(NULL, f->conninfo, 0), CHAT_EINVAL);
    assert_null(st);
    /* A database that does not exist. */
    char conninfo[600];
    snprintf(conninfo, sizeof conninfo, "%s dbname=chat_no_such_db", getenv("CHAT_TEST_PG"));
    assert_int_equal(chat_store_postgres_open(&st, conninfo, 0), CHAT_EAGAIN);
    assert_non_null(strstr(chat_error_last()->message, "chat_no_such_db"));
}

/* ---- the pipeline ---- */

void test_store_postgres_deferred_failure(void **state)
{
    fx *f = *state;
    int64_t conv = new_conv(f->ops, f->st);
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, conv, &c), CHAT_OK);
    /* In a transaction, an update of a missing conversation travels with the next read, which
     * answers for it and so does everything after, until rollback. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    chat_store_conv missing = c;
    missing.id = conv + 100;
    assert_int_equal(f->ops->conv_update(f->st, &missing), CHAT_OK);
    assert_int_equal(f->ops->conv_get(f->st, conv, &c), CHAT_ENOTFOUND);
    assert_non_null(strstr(chat_error_last()->message, "conv_update: no conv"));
    assert_int_equal(f->ops->meta_set(f->st, "k", 1), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->commit(f->st), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    /* A write PostgreSQL refuses (not UTF-8): the same, and the connection stays usable. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    chat_store_member m = {0};
    m.conv = conv;
    strcpy(m.user, "\xff\xfe");
    m.role = CHAT_ROLE_MEMBER;
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
    strcpy(m.user, "ann");
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
    int64_t v;
    assert_int_equal(f->ops->meta_get(f->st, "k", &v), CHAT_EINVAL);
    if (!strstr(chat_error_last()->message, "SQLSTATE 22021"))
        fail_msg("unexpected: %s", chat_error_last()->message);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    chat_store_member out;
    assert_int_equal(f->ops->member_get(f->st, conv, "ann", &out), CHAT_ENOTFOUND);
    assert_int_equal(append_tx(f->ops, f->st, conv, "c1"), CHAT_OK);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_int_equal(f->ops->member_get(f->st, conv, "ann", &out), CHAT_OK);
    seen s;
    assert_string_equal(history(f, conv, &s), "1:c1,");
    /* Outside a transaction the update runs at once and says so itself. */
    assert_int_equal(f->ops->conv_update(f->st, &missing), CHAT_ENOTFOUND);
}

/* ---- a server that restarts or goes away ---- */

void test_store_postgres_restart(void **state)
{
    fx *f = *state;
    int64_t conv = new_conv(f->ops, f->st);
    assert_int_equal(append_tx(f->ops, f->st, conv, "m1"), CHAT_OK);

    /* Restarted between transactions: the next one notices the closed connection before it
     * starts and reconnects; nothing fails. */
    pg_ctl("restart");
    assert_int_equal(append_tx(f->ops, f->st, conv, "m2"), CHAT_OK);

    /* Restarted inside a transaction: it fails with CHAT_EAGAIN, and goes through once the
     * server is back. */
    chat_store_conv c;
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->conv_get(f->st, conv, &c), CHAT_OK);
    chat_store_msg m = text_msg(conv, c.head_seq + 1, "ann", "m3");
    assert_int_equal(f->ops->msg_insert(f->st, &m), CHAT_OK);
    pg_ctl("restart");
    c.head_seq++;
    int rc = f->ops->conv_update(f->st, &c); /* deferred: may not notice yet */
    if (rc == CHAT_OK)
        rc = f->ops->commit(f->st);
    assert_int_equal(rc, CHAT_EAGAIN);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    append_until_ok(f, conv, "m3");

    /* Stopped: transactions and reads answer CHAT_EAGAIN at once, then work again. */
    pg_ctl("stop");
    assert_int_equal(f->ops->begin(f->st), CHAT_EAGAIN);
    assert_int_equal(f->ops->conv_get(f->st, conv, &c), CHAT_EAGAIN);
    assert_int_equal(append_tx(f->ops, f->st, conv, "m4"), CHAT_EAGAIN);
    chat_store_push_reg reg = {0};
    strcpy(reg.user, "ann");
    strcpy(reg.device, "phone");
    reg.platform = CHAT_PUSH_APNS;
    strcpy(reg.token, "aa01");
    int64_t until;
    assert_int_equal(f->ops->push_reg_put(f->st, &reg), CHAT_EAGAIN);
    assert_int_equal(f->ops->push_reg_del(f->st, "ann", "phone"), CHAT_EAGAIN);
    assert_int_equal(f->ops->push_mute_get(f->st, "ann", conv, &until), CHAT_EAGAIN);
    pg_ctl("start");
    append_until_ok(f, conv, "m4");

    /* What was committed is there once, what failed is not. */
    seen s;
    assert_string_equal(history(f, conv, &s), "1:m1,2:m2,3:m3,4:m4,");
    assert_int_equal(f->ops->conv_get(f->st, conv, &c), CHAT_OK);
    assert_int_equal(c.head_seq, 4);
}

/* ---- two servers on one database ---- */

#define NODE_TXS 150

typedef struct node {
    const char *conninfo;
    int id;
    int64_t conv;
    int with_counter;           /* also count transactions in meta "txs" */
    pthread_barrier_t *start;
    int committed_txs, committed_msgs;
    char committed[NODE_TXS * 3][24]; /* cmids of committed messages */
    int fail_rc, fail_step;
    char fail_msg[256];
} node;

static int node_fail(node *n, int rc, int step)
{
    if (!n->fail_rc) {
        n->fail_rc = rc;
        n->fail_step = step;
        snprintf(n->fail_msg, sizeof n->fail_msg, "%s", chat_error_last()->message);
    }
    return rc;
}

/* One server's writer: transactions of one to three messages each, every fifth rolled back;
 * the head read inside the transaction decides the seqs. */
static void *node_main(void *arg)
{
    node *n = arg;
    const chat_store_ops *ops = chat_store_postgres_ops();
    void *st = NULL;
    int rc = chat_store_postgres_open(&st, n->conninfo, 0);
    if (rc == CHAT_OK)
        rc = chat__store_checked_new(&ops, &st);
    if (rc != CHAT_OK) {
        node_fail(n, rc, 0);
        return NULL;
    }
    pthread_barrier_wait(n->start);
    for (int t = 0; t < NODE_TXS && !n->fail_rc; t++) {
        int k = 1 + t % 3, roll_back = t % 5 == 4;
        char cmids[3][24];
        int64_t txs = 0;
        chat_store_conv c;
        if ((rc = ops->begin(st)) != CHAT_OK) {
            node_fail(n, rc, 1);
            break;
        }
        if (n->with_counter && (rc = ops->meta_get(st, "txs", &txs)) != CHAT_OK &&
            rc != CHAT_ENOTFOUND)
            node_fail(n, rc, 2);
        if (!n->fail_rc && (rc = ops->conv_get(st, n->conv, &c)) != CHAT_OK)
            node_fail(n, rc, 3);
        for (int i = 0; i < k && !n->fail_rc; i++) {
            snprintf(cmids[i], sizeof cmids[i], "n%d-t%d-%d", n->id, t, i);
            chat_store_msg m = text_msg(n->conv, ++c.head_seq, "ann", cmids[i]);
            if ((rc = ops->msg_insert(st, &m)) != CHAT_OK)
                node_fail(n, rc, 4);
        }
        if (!n->fail_rc && (rc = ops->conv_update(st, &c)) != CHAT_OK)
            node_fail(n, rc, 5);
        if (!n->fail_rc && n->with_counter && (rc = ops->meta_set(st, "txs", txs + 1)))
            node_fail(n, rc, 6);
        if (n->fail_rc || roll_back) {
            if ((rc = ops->rollback(st)) != CHAT_OK)
                node_fail(n, rc, 7);
            continue;
        }
        if ((rc = ops->commit(st)) != CHAT_OK) {
            node_fail(n, rc, 8);
            ops->rollback(st);
            break;
        }
        n->committed_txs++;
        for (int i = 0; i < k; i++)
            memcpy(n->committed[n->committed_msgs++], cmids[i], sizeof cmids[i]);
    }
    ops->destroy(st);
    return NULL;
}

typedef struct cmids {
    char (*v)[24];
    int n, cap;
} cmids;

static int collect_cmid(const chat_store_msg *m, void *ud)
{
    cmids *l = ud;
    assert_true(l->n < l->cap);
    assert_int_equal(m->seq, (uint64_t)l->n + 1); /* gap-free: the n-th row is seq n */
    snprintf(l->v[l->n++], 24, "%s", m->cmid);
    return 0;
}

static int cmp_cmid(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void two_nodes(fx *f, int with_counter)
{
    int64_t conv = new_conv(f->ops, f->st);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    node *nodes = calloc(2, sizeof *nodes);
    assert_non_null(nodes);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        nodes[i].conninfo = f->conninfo;
        nodes[i].id = i;
        nodes[i].conv = conv;
        nodes[i].with_counter = with_counter;
        nodes[i].start = &start;
        assert_int_equal(pthread_create(&t[i], NULL, node_main, &nodes[i]), 0);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < 2; i++)
        if (nodes[i].fail_rc)
            fail_msg("node %d failed at step %d: %s (%s)", i, nodes[i].fail_step,
                     chat_error_name(nodes[i].fail_rc), nodes[i].fail_msg);

    /* Every committed message once, at seqs 1..total with no gap; nothing rolled back. */
    int total = nodes[0].committed_msgs + nodes[1].committed_msgs;
    cmids want = {calloc((size_t)total, 24), 0, total};
    cmids got = {calloc((size_t)total + 1, 24), 0, total + 1};
    assert_true(want.v && got.v);
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < nodes[i].committed_msgs; j++)
            memcpy(want.v[want.n++], nodes[i].committed[j], 24);
    assert_int_equal(f->ops->msg_range(f->st, conv, 0, 0, total + 1, 0, collect_cmid, &got),
                     CHAT_OK);
    assert_int_equal(got.n, total);
    qsort(want.v, (size_t)want.n, 24, cmp_cmid);
    qsort(got.v, (size_t)got.n, 24, cmp_cmid);
    for (int i = 0; i < total; i++)
        assert_string_equal(got.v[i], want.v[i]);
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, conv, &c), CHAT_OK);
    assert_int_equal(c.head_seq, (uint64_t)total);
    if (with_counter) { /* no lost update of the counter either */
        int64_t txs = 0;
        assert_int_equal(f->ops->meta_get(f->st, "txs", &txs), CHAT_OK);
        assert_int_equal(txs, nodes[0].committed_txs + nodes[1].committed_txs);
    }
    free(want.v);
    free(got.v);
    free(nodes);
}

void test_store_postgres_two_nodes_one_conv(void **state)
{
    two_nodes(*state, 0);
}

void test_store_postgres_two_nodes_counter(void **state)
{
    two_nodes(*state, 1);
}

/* Two servers locking two conversations in opposite orders: PostgreSQL ends one transaction
 * as a deadlock victim, which the store answers CHAT_EAGAIN (retry); the other goes on. */
typedef struct locker {
    const char *conninfo;
    int64_t first, second;
    pthread_barrier_t *both_hold;
    int rc;
    char msg[256];
} locker;

static void *locker_main(void *arg)
{
    locker *l = arg;
    const chat_store_ops *ops = chat_store_postgres_ops();
    void *st = NULL;
    chat_store_conv c;
    l->rc = chat_store_postgres_open(&st, l->conninfo, 0);
    if (l->rc == CHAT_OK && (l->rc = ops->begin(st)) == CHAT_OK)
        l->rc = ops->conv_get(st, l->first, &c);
    pthread_barrier_wait(l->both_hold);
    if (l->rc == CHAT_OK)
        l->rc = ops->conv_get(st, l->second, &c);
    if (l->rc == CHAT_OK)
        l->rc = ops->commit(st);
    snprintf(l->msg, sizeof l->msg, "%s", chat_error_last()->message);
    if (l->rc != CHAT_OK && st)
        ops->rollback(st);
    if (st)
        ops->destroy(st);
    return NULL;
}

void test_store_postgres_deadlock_is_eagain(void **state)
{
    fx *f = *state;
    int64_t a = new_conv(f->ops, f->st), b = new_conv(f->ops, f->st);
    pthread_barrier_t both;
    pthread_barrier_init(&both, NULL, 2);
    locker l[2] = {{f->conninfo, a, b, &both, 0, ""}, {f->conninfo, b, a, &both, 0, ""}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, locker_main, &l[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&both);
    int victim = l[0].rc == CHAT_OK ? 1 : 0;
    assert_int_equal(l[1 - victim].rc, CHAT_OK);
    assert_int_equal(l[victim].rc, CHAT_EAGAIN);
    assert_non_null(strstr(l[victim].msg, "40P01"));
}

/* ---- the inbox change counter with several servers ---- */

/* Another server on f's database (through the checking layer, as a server uses it). extra is
 * appended to the conninfo (e.g. "options='-c lock_timeout=2s'"), or NULL. */
typedef struct server {
    const chat_store_ops *ops;
    void *st;
} server;

static server server_open(fx *f, const char *extra)
{
    char conninfo[700];
    snprintf(conninfo, sizeof conninfo, "%s %s", f->conninfo, extra ? extra : "");
    server s = {chat_store_postgres_ops(), NULL};
    assert_int_equal(chat_store_postgres_open(&s.st, conninfo, 0), CHAT_OK);
    assert_int_equal(chat__store_checked_new(&s.ops, &s.st), CHAT_OK);
    return s;
}

static void server_close(server *s)
{
    s->ops->destroy(s->st);
    s->st = NULL;
}

/* A conversation with user u as a member (change 0), committed. */
static int64_t conv_of(fx *f, const char *u)
{
    int64_t conv = new_conv(f->ops, f->st);
    chat_store_member m = {0};
    m.conv = conv;
    snprintf(m.user, sizeof m.user, "%s", u);
    m.role = CHAT_ROLE_MEMBER;
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
    return conv;
}

/* A batch as the engine runs it: begin, the counter read first (the horizon), then per
 * message the conversation locked and read, the message at head + 1, the conversation and
 * u's row given the next change; batch_end writes the counter back and commits. */
typedef struct batch {
    server *s;
    uint64_t horizon, change;
} batch;

static int batch_begin(server *s, batch *b)
{
    int64_t v = 0;
    b->s = s;
    int rc = s->ops->begin(s->st);
    if (rc != CHAT_OK)
        return rc;
    rc = s->ops->meta_get(s->st, CHAT_STORE_CHANGE_KEY, &v);
    if (rc == CHAT_ENOTFOUND)
        rc = CHAT_OK;
    b->horizon = b->change = (uint64_t)v;
    return rc;
}

static int batch_send(batch *b, int64_t conv, const char *u, const char *cmid)
{
    const chat_store_ops *ops = b->s->ops;
    void *st = b->s->st;
    chat_store_conv c;
    chat_store_member m;
    int rc = ops->conv_get(st, conv, &c);
    if (rc != CHAT_OK)
        return rc;
    chat_store_msg msg = text_msg(conv, c.head_seq + 1, u, cmid);
    if ((rc = ops->msg_insert(st, &msg)) != CHAT_OK)
        return rc;
    c.head_seq++;
    c.change = ++b->change;
    if ((rc = ops->conv_update(st, &c)) != CHAT_OK ||
        (rc = ops->member_get(st, conv, u, &m)) != CHAT_OK)
        return rc;
    m.read_seq = m.delivered_seq = c.head_seq;
    m.change = c.change;
    return ops->member_put(st, &m);
}

static int batch_end(batch *b)
{
    int rc = CHAT_OK;
    if (b->change != b->horizon)
        rc = b->s->ops->meta_set(b->s->st, CHAT_STORE_CHANGE_KEY, (int64_t)b->change);
    if (rc == CHAT_OK)
        rc = b->s->ops->commit(b->s->st);
    if (rc != CHAT_OK)
        b->s->ops->rollback(b->s->st);
    return rc;
}

static uint64_t counter(fx *f)
{
    int64_t v = 0;
    int rc = f->ops->meta_get(f->st, CHAT_STORE_CHANGE_KEY, &v);
    assert_true(rc == CHAT_OK || rc == CHAT_ENOTFOUND);
    return (uint64_t)v;
}

static uint64_t conv_change(fx *f, int64_t conv)
{
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, conv, &c), CHAT_OK);
    return c.change;
}

/* A client's inbox as the engine syncs it: the rows of user u that changed after the cursor,
 * listed in a transaction whose horizon becomes the next cursor. */
#define INBOX_CONVS 8

typedef struct inbox {
    const char *user;
    uint64_t cursor;
    int64_t conv[INBOX_CONVS];
    uint64_t change[INBOX_CONVS]; /* the latest change seen of each */
    int n;
} inbox;

static int inbox_row(const chat_store_member *m, void *ud)
{
    inbox *in = ud;
    int i = 0;
    while (i < in->n && in->conv[i] != m->conv)
        i++;
    assert_true(i < INBOX_CONVS);
    if (i == in->n)
        in->conv[in->n++] = m->conv;
    in->change[i] = m->change; /* the writers give u's row the conversation's change */
    return 0;
}

static int inbox_sync(server *s, inbox *in)
{
    batch b;
    int rc = batch_begin(s, &b);
    if (rc == CHAT_OK)
        rc = s->ops->user_convs(s->st, in->user, in->cursor, 1000, inbox_row, in);
    if (rc == CHAT_OK)
        rc = batch_end(&b);
    else
        s->ops->rollback(s->st);
    if (rc == CHAT_OK)
        in->cursor = b.horizon;
    return rc;
}

static uint64_t inbox_change_of(const inbox *in, int64_t conv)
{
    for (int i = 0; i < in->n; i++)
        if (in->conv[i] == conv)
            return in->change[i];
    return 0;
}

/* Two servers' batches overlap: while one holds a batch open (an append not committed), the
 * other commits a batch on another conversation at once, and the counter stays exact. */
void test_store_postgres_batches_overlap(void **state)
{
    fx *f = *state;
    int64_t c1 = conv_of(f, "u"), c2 = conv_of(f, "u");
    /* With the counter locked for a whole batch, b would wait for a's commit; its lock
     * timeout turns that wait into a failure here. */
    server a = server_open(f, NULL), b = server_open(f, "options='-c lock_timeout=2s'");
    batch ba, bb;
    assert_int_equal(batch_begin(&a, &ba), CHAT_OK);
    assert_int_equal(batch_send(&ba, c1, "u", "a1"), CHAT_OK);
    assert_int_equal(batch_send(&ba, c1, "u", "a2"), CHAT_OK);
    assert_int_equal(batch_begin(&b, &bb), CHAT_OK);
    assert_int_equal(bb.horizon, 0);
    assert_int_equal(batch_send(&bb, c2, "u", "b1"), CHAT_OK);
    assert_int_equal(batch_end(&bb), CHAT_OK);
    assert_int_equal(counter(f), 1);
    assert_int_equal(conv_change(f, c2), 1);
    /* a commits after b: its changes (1 and 2 when it began) come after b's. */
    assert_int_equal(batch_end(&ba), CHAT_OK);
    assert_int_equal(counter(f), 3);
    assert_int_equal(conv_change(f, c1), 3);
    chat_store_member m;
    assert_int_equal(f->ops->member_get(f->st, c1, "u", &m), CHAT_OK);
    assert_int_equal(m.change, 3);
    assert_int_equal(m.read_seq, 2);
    assert_int_equal(f->ops->member_get(f->st, c2, "u", &m), CHAT_OK);
    assert_int_equal(m.change, 1);
    seen s;
    assert_string_equal(history(f, c1, &s), "1:a1,2:a2,");
    server_close(&a);
    server_close(&b);
}

/* Out of order on purpose: a begins first and commits last, b begins later and commits
 * first, and a client syncing in between and after misses neither. */
void test_store_postgres_out_of_order_commits_skip_nothing(void **state)
{
    fx *f = *state;
    int64_t c1 = conv_of(f, "u"), c2 = conv_of(f, "u"), c3 = conv_of(f, "u");
    server a = server_open(f, NULL), b = server_open(f, NULL), r = server_open(f, NULL);
    inbox in = {.user = "u"};
    assert_int_equal(inbox_sync(&r, &in), CHAT_OK);
    assert_int_equal(in.n, 0);

    batch ba, bb;
    assert_int_equal(batch_begin(&a, &ba), CHAT_OK);
    assert_int_equal(batch_send(&ba, c1, "u", "a1"), CHAT_OK); /* change 1 when it began */
    assert_int_equal(batch_begin(&b, &bb), CHAT_OK);
    assert_int_equal(batch_send(&bb, c2, "u", "b1"), CHAT_OK); /* change 1 too */
    assert_int_equal(batch_send(&bb, c3, "u", "b2"), CHAT_OK); /* 2 */
    assert_int_equal(batch_end(&bb), CHAT_OK);

    /* In between: b's changes, not a's (not committed). */
    assert_int_equal(inbox_sync(&r, &in), CHAT_OK);
    assert_int_equal(in.cursor, 2);
    assert_int_equal(inbox_change_of(&in, c1), 0);
    assert_int_equal(inbox_change_of(&in, c2), 1);
    assert_int_equal(inbox_change_of(&in, c3), 2);

    /* A client syncing in a batch that also writes (as the engine batches requests), and
     * that commits after a: a commits between its listing and its end. */
    batch br;
    assert_int_equal(batch_begin(&r, &br), CHAT_OK);
    assert_int_equal(br.horizon, 2);
    assert_int_equal(batch_send(&br, c2, "u", "r1"), CHAT_OK); /* 3 when it began */
    assert_int_equal(r.ops->user_convs(r.st, "u", in.cursor, 1000, inbox_row, &in), CHAT_OK);
    assert_int_equal(batch_end(&ba), CHAT_OK);
    assert_int_equal(counter(f), 3);
    assert_int_equal(conv_change(f, c1), 3); /* after b's 1 and 2 */
    assert_int_equal(batch_end(&br), CHAT_OK);
    assert_int_equal(counter(f), 4);
    assert_int_equal(conv_change(f, c2), 4); /* r's own, after a's */
    /* Its cursor is its horizon, 2; its own last change, 3, would skip a's. */
    in.cursor = br.horizon;

    /* After: a's change, which a cursor at a's own first value (1) would skip as well. */
    assert_int_equal(inbox_sync(&r, &in), CHAT_OK);
    assert_int_equal(in.cursor, 4);
    assert_int_equal(inbox_change_of(&in, c1), 3);
    assert_int_equal(inbox_change_of(&in, c2), 4);
    assert_int_equal(inbox_change_of(&in, c3), 2);
    server_close(&a);
    server_close(&b);
    server_close(&r);
}

/* A batch that renumbered its rows and then rolled back, or whose server died before the
 * commit, leaves the counter and the rows as they were, and the lock free. */
void test_store_postgres_counter_rolls_back_with_its_batch(void **state)
{
    fx *f = *state;
    int64_t c1 = conv_of(f, "u"), c2 = conv_of(f, "u");
    server a = server_open(f, NULL), b = server_open(f, "options='-c lock_timeout=2s'");
    for (int crash = 0; crash < 2; crash++) {
        batch ba, bb;
        uint64_t c1_before = conv_change(f, c1);
        assert_int_equal(batch_begin(&a, &ba), CHAT_OK);
        assert_int_equal(batch_send(&ba, c1, "u", crash ? "lost2" : "lost1"), CHAT_OK);
        /* b commits meanwhile, so a's rows move when its counter is written. */
        assert_int_equal(batch_begin(&b, &bb), CHAT_OK);
        assert_int_equal(batch_send(&bb, c2, "u", crash ? "kept2" : "kept1"), CHAT_OK);
        assert_int_equal(batch_end(&bb), CHAT_OK);
        uint64_t before = counter(f);
        assert_int_equal(a.ops->meta_set(a.st, CHAT_STORE_CHANGE_KEY, (int64_t)ba.change),
                         CHAT_OK);
        /* A read sends the renumbering, and waits for it, before the end. */
        chat_store_conv c;
        assert_int_equal(a.ops->conv_get(a.st, c1, &c), CHAT_OK);
        assert_int_equal(c.change, before + 1);
        if (crash) {
            server_close(&a); /* the connection ends; the server rolls back */
            a = server_open(f, NULL);
        } else {
            assert_int_equal(a.ops->rollback(a.st), CHAT_OK);
        }
        assert_int_equal(counter(f), before);
        assert_int_equal(conv_change(f, c1), c1_before);
        /* Not locked: the next batch counts from there and commits at once. */
        assert_int_equal(batch_begin(&b, &bb), CHAT_OK);
        assert_int_equal(bb.horizon, before);
        assert_int_equal(batch_send(&bb, c1, "u", crash ? "next2" : "next1"), CHAT_OK);
        assert_int_equal(batch_end(&bb), CHAT_OK);
        assert_int_equal(counter(f), before + 1);
        assert_int_equal(conv_change(f, c1), before + 1);
    }
    seen s;
    assert_string_equal(history(f, c1, &s), "1:next1,2:next2,");
    /* The counter never goes down; the transaction stays usable. */
    batch ba;
    assert_int_equal(batch_begin(&a, &ba), CHAT_OK);
    assert_int_equal(a.ops->meta_set(a.st, CHAT_STORE_CHANGE_KEY, (int64_t)ba.horizon - 1),
                     CHAT_EINVAL);
    assert_int_equal(batch_send(&ba, c2, "u", "last"), CHAT_OK);
    assert_int_equal(batch_end(&ba), CHAT_OK);
    assert_int_equal(counter(f), ba.horizon + 1);
    server_close(&a);
    server_close(&b);
}

/* Servers writing batches over a few shared conversations at once while a client syncs
 * throughout. The writers stop after each round; the client then syncs once more and must
 * have the last change of every conversation (a change it skipped and that was not changed
 * again would stay stale), and the counter must have lost no update. */
#define MIX_WRITERS 2
#define MIX_ROUNDS 10
#define MIX_BATCHES 12 /* a round, per writer */

typedef struct mix {
    fx *f;
    int64_t convs[INBOX_CONVS];
    pthread_barrier_t round; /* the writers and the client, after each round's check */
    int finished;            /* writer-rounds done */
} mix;

typedef struct mixer {
    mix *x;
    int id;
    uint64_t committed; /* changes committed */
    int fail_rc;
    char fail_msg[256];
} mixer;

static void *mixer_main(void *arg)
{
    mixer *m = arg;
    server s = server_open(m->x->f, NULL);
    unsigned seed = (unsigned)m->id * 7919u + 1;
    for (int round = 0; round < MIX_ROUNDS; round++) {
        for (int t = 0; t < MIX_BATCHES && !m->fail_rc; t++) {
            /* One to three conversations, in id order: two batches never wait for each
             * other in a cycle (this is about the counter, not deadlocks). */
            int k = 1 + t % 3, pick[3];
            for (int i = 0; i < k; i++)
                pick[i] = (int)(rand_r(&seed) % INBOX_CONVS);
            for (int i = 1; i < k; i++)
                for (int j = i; j > 0 && pick[j - 1] > pick[j]; j--) {
                    int x = pick[j];
                    pick[j] = pick[j - 1];
                    pick[j - 1] = x;
                }
            batch b;
            int rc = batch_begin(&s, &b);
            for (int i = 0; i < k && rc == CHAT_OK; i++) {
                char cmid[32];
                snprintf(cmid, sizeof cmid, "w%d-%d-%d-%d", m->id, round, t, i);
                rc = batch_send(&b, m->x->convs[pick[i]], "u", cmid);
            }
            if (rc == CHAT_OK)
                rc = batch_end(&b);
            else
                s.ops->rollback(s.st);
            if (rc == CHAT_OK) {
                m->committed += b.change - b.horizon;
            } else {
                m->fail_rc = rc;
                snprintf(m->fail_msg, sizeof m->fail_msg, "%s", chat_error_last()->message);
            }
        }
        __atomic_add_fetch(&m->x->finished, 1, __ATOMIC_RELEASE);
        pthread_barrier_wait(&m->x->round);
    }
    server_close(&s);
    return NULL;
}

void test_store_postgres_concurrent_batches_and_a_syncing_client(void **state)
{
    fx *f = *state;
    mix x = {.f = f};
    for (int i = 0; i < INBOX_CONVS; i++)
        x.convs[i] = conv_of(f, "u");
    pthread_barrier_init(&x.round, NULL, MIX_WRITERS + 1);
    mixer m[MIX_WRITERS];
    pthread_t t[MIX_WRITERS];
    for (int i = 0; i < MIX_WRITERS; i++) {
        m[i] = (mixer){.x = &x, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, mixer_main, &m[i]), 0);
    }
    server r = server_open(f, NULL);
    inbox in = {.user = "u"};
    int syncs = 0;
    for (int round = 1; round <= MIX_ROUNDS; round++) {
        while (__atomic_load_n(&x.finished, __ATOMIC_ACQUIRE) < round * MIX_WRITERS) {
            assert_int_equal(inbox_sync(&r, &in), CHAT_OK);
            syncs++;
        }
        assert_int_equal(inbox_sync(&r, &in), CHAT_OK);
        uint64_t total = 0;
        for (int i = 0; i < MIX_WRITERS; i++) {
            if (m[i].fail_rc)
                fail_msg("writer %d: %s (%s)", i, chat_error_name(m[i].fail_rc),
                         m[i].fail_msg);
            total += m[i].committed;
        }
        assert_int_equal(counter(f), total);
        assert_int_equal(in.cursor, total);
        for (int i = 0; i < INBOX_CONVS; i++) {
            chat_store_member row;
            assert_int_equal(f->ops->member_get(f->st, x.convs[i], "u", &row), CHAT_OK);
            assert_int_equal(row.change, conv_change(f, x.convs[i]));
            if (inbox_change_of(&in, x.convs[i]) != row.change)
                fail_msg("round %d: conv %d changed at %llu, the client has %llu", round, i,
                         (unsigned long long)row.change,
                         (unsigned long long)inbox_change_of(&in, x.convs[i]));
        }
        pthread_barrier_wait(&x.round);
    }
    for (int i = 0; i < MIX_WRITERS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&x.round);
    assert_true(syncs > MIX_ROUNDS); /* the client synced while the writers wrote */
    server_close(&r);
}

/* lock_convs locks every conversation it names, in one go: another server reading one of
 * them waits for the transaction's end, and a batch that locked its conversations first then
 * reads them in any order without a deadlock. */
typedef struct reader {
    fx *f;
    int64_t first, second;
    int rc;
    uint64_t head; /* of first, as read */
} reader;

static void *reader_main(void *arg)
{
    reader *r = arg;
    server s = server_open(r->f, NULL);
    chat_store_conv c;
    r->rc = s.ops->begin(s.st);
    if (r->rc == CHAT_OK && (r->rc = s.ops->conv_get(s.st, r->first, &c)) == CHAT_OK)
        r->head = c.head_seq;
    if (r->rc == CHAT_OK)
        r->rc = s.ops->conv_get(s.st, r->second, &c);
    if (r->rc == CHAT_OK)
        r->rc = s.ops->commit(s.st);
    else
        s.ops->rollback(s.st);
    server_close(&s);
    return NULL;
}

void test_store_postgres_lock_convs(void **state)
{
    fx *f = *state;
    int64_t a = new_conv(f->ops, f->st), b = new_conv(f->ops, f->st);
    server s = server_open(f, NULL);
    chat_store_user u;
    chat_conv_id ids[] = {a, b};
    assert_int_equal(s.ops->begin(s.st), CHAT_OK);
    assert_int_equal(s.ops->lock_convs(s.st, ids, 2), CHAT_OK);
    assert_int_equal(s.ops->user_get(s.st, "nobody", &u), CHAT_ENOTFOUND); /* sent, and done */
    /* Another server reads b, then a: it waits for b. */
    reader r = {f, b, a, -1, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, reader_main, &r), 0);
    char v[32];
    int waiting = 0;
    for (int i = 0; i < 1000 && !waiting; i++) {
        if (i)
            nap_ms(10);
        waiting = strcmp(sql_value(f->conninfo,
                                   "SELECT count(*) FROM pg_stat_activity WHERE "
                                   "wait_event_type = 'Lock' AND datname = current_database()",
                                   v, sizeof v),
                         "1") == 0;
    }
    assert_true(waiting);
    /* This batch reads them in the other order: no cycle, both commit. */
    chat_store_conv c;
    assert_int_equal(s.ops->conv_get(s.st, b, &c), CHAT_OK);
    c.head_seq = 7;
    assert_int_equal(s.ops->conv_update(s.st, &c), CHAT_OK);
    assert_int_equal(s.ops->conv_get(s.st, a, &c), CHAT_OK);
    assert_int_equal(s.ops->commit(s.st), CHAT_OK);
    pthread_join(t, NULL);
    assert_int_equal(r.rc, CHAT_OK);
    assert_int_equal(r.head, 7); /* read after this batch's commit */
    server_close(&s);
}
