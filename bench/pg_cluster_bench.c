/* pg-cluster-bench: what several servers on one PostgreSQL database get from writing their
 * batches at once. Each node (a thread with a store of its own, as a chatd node has) appends
 * messages the way the engine's writer does: a transaction per batch, the inbox change counter
 * read first and written back last, and per message the conversation locked and read, the
 * message, the conversation and the sender's row given the next change. Three ways:
 *
 *   serial      every batch takes a lock for the whole cluster first and holds it to its
 *               commit: as the store did when meta_get of the counter locked it;
 *   concurrent  the store as it is: only the counter's write-back and the commit serialised;
 *   sorted      the same, each batch first locking the conversations it will write in id
 *               order (lock_convs, as the engine does with those its requests name).
 *
 * and two loads: "own", each node writing its own conversations (what affinity routing gives),
 * and "shared", every node writing any of the same conversations (the worst case: lock waits
 * between nodes, and deadlocks when two batches take two conversations in opposite orders,
 * which PostgreSQL breaks after deadlock_timeout by failing one batch: CHAT_EAGAIN, "busy").
 * Figures: messages/s over all nodes, each as a ratio to serial in the same round, and the
 * batches lost to deadlocks. Run it on a throwaway server:
 *
 *   python3 tests/lib/pgtemp.py run [--fsync] -- build/bench/pg-cluster-bench \
 *       [NODES (2)] [SECONDS_PER_CASE (2)] [ROUNDS (3)]
 *
 * (it reads the server's conninfo from CHAT_TEST_PG, or takes CHAT_PG_CONNINFO).
 */
#include <chat/chat.h>
#include <chat/sys/store.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONVS 64        /* conversations per load ("own": per node) */
#define MAX_NODES 8
#define MAX_BATCH 64

enum { SERIAL, CONCURRENT, SORTED, N_MODES };
static const char *const mode_name[N_MODES] = {"serial", "concurrent", "sorted"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct node {
    const char *conninfo;
    int id, mode, batch, shared, case_id;
    int64_t *convs; /* CONVS * nodes: node i's own are i * CONVS .. */
    double secs;
    pthread_barrier_t *start;
    long msgs, batches, deadlocks, failures;
    char failure[256];
} node;

/* A lock for the whole cluster held to the commit, as the counter's was: an advisory lock
 * taken through a raw connection would not be this transaction's, so it goes through the
 * store as the lock of another meta key. */
#define SERIAL_KEY "bench_serial"

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void *node_main(void *arg)
{
    node *n = arg;
    const chat_store_ops *ops = chat_store_postgres_ops();
    void *st = NULL;
    if (chat_store_postgres_open(&st, n->conninfo, 0) != CHAT_OK) {
        snprintf(n->failure, sizeof n->failure, "%s", chat_error_last()->message);
        n->failures++;
        pthread_barrier_wait(n->start);
        return NULL;
    }
    unsigned seed = 12345u + (unsigned)n->id;
    const char body[] = "a typical short chat message, about sixty bytes of text....";
    char sender[16];
    snprintf(sender, sizeof sender, "n%d", n->id);
    pthread_barrier_wait(n->start);
    double end = now_s() + n->secs;
    while (now_s() < end) {
        int64_t pick[MAX_BATCH], order[MAX_BATCH];
        for (int i = 0; i < n->batch; i++) {
            int c = (int)(rand_r(&seed) % CONVS);
            pick[i] = n->convs[n->shared ? c : n->id * CONVS + c];
        }
        int64_t change = 0, dummy;
        int rc = ops->begin(st);
        if (rc == CHAT_OK && n->mode == SERIAL)
            rc = ops->meta_get(st, SERIAL_KEY, &dummy) == CHAT_ENOTFOUND ? CHAT_OK : CHAT_ERROR;
        if (rc == CHAT_OK) {
            rc = ops->meta_get(st, CHAT_STORE_CHANGE_KEY, &change);
            if (rc == CHAT_ENOTFOUND)
                rc = CHAT_OK;
        }
        if (rc == CHAT_OK && n->mode == SORTED) {
            memcpy(order, pick, sizeof pick[0] * (size_t)n->batch);
            qsort(order, (size_t)n->batch, sizeof order[0], cmp_i64);
            size_t m = 1;
            for (int i = 1; i < n->batch; i++)
                if (order[i] != order[m - 1])
                    order[m++] = order[i];
            if (m > 1) /* as the engine: one conversation has no order to keep */
                rc = ops->lock_convs(st, order, m);
        }
        for (int i = 0; i < n->batch && rc == CHAT_OK; i++) {
            chat_store_conv c;
            char cmid[40];
            snprintf(cmid, sizeof cmid, "%d-%d-%ld-%d", n->case_id, n->id, n->batches, i);
            if ((rc = ops->conv_get(st, pick[i], &c)) != CHAT_OK)
                break;
            chat_store_msg m = {.conv = c.id, .seq = c.head_seq + 1, .sender = sender,
                                .device = "d", .cmid = cmid, .kind = CHAT_MSG_TEXT,
                                .body = body, .body_len = sizeof body - 1};
            if ((rc = ops->msg_insert(st, &m)) != CHAT_OK)
                break;
            c.head_seq = m.seq;
            c.change = (uint64_t)++change;
            if ((rc = ops->conv_update(st, &c)) != CHAT_OK)
                break;
            chat_store_member me = {0};
            me.conv = c.id;
            snprintf(me.user, sizeof me.user, "%s", sender);
            me.role = CHAT_ROLE_MEMBER;
            me.delivered_seq = me.read_seq = m.seq;
            me.change = c.change;
            rc = ops->member_put(st, &me);
        }
        if (rc == CHAT_OK)
            rc = ops->meta_set(st, CHAT_STORE_CHANGE_KEY, change);
        if (rc == CHAT_OK)
            rc = ops->commit(st);
        if (rc == CHAT_OK) {
            n->msgs += n->batch;
            n->batches++;
            continue;
        }
        const char *why = chat_error_last()->message;
        if (rc == CHAT_EAGAIN && strstr(why, "40P01"))
            n->deadlocks++;
        else if (n->failures++ == 0)
            snprintf(n->failure, sizeof n->failure, "%s", why);
        ops->rollback(st);
    }
    ops->destroy(st);
    return NULL;
}

static void sql(const char *conninfo, const char *q)
{
    PGconn *c = PQconnectdb(conninfo);
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "pg-cluster-bench: %s: %s", q, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
}

typedef struct result {
    double rate;
    long deadlocks, failures;
} result;

static result run_case(const char *conninfo, int nodes, int mode, int batch, int shared,
                       int64_t *convs, double secs)
{
    node n[MAX_NODES];
    pthread_t t[MAX_NODES];
    pthread_barrier_t start;
    static int cases;
    cases++;
    pthread_barrier_init(&start, NULL, (unsigned)nodes + 1);
    for (int i = 0; i < nodes; i++) {
        n[i] = (node){.conninfo = conninfo, .id = i, .mode = mode, .batch = batch,
                      .shared = shared, .case_id = cases, .convs = convs, .secs = secs, .start = &start};
        pthread_create(&t[i], NULL, node_main, &n[i]);
    }
    pthread_barrier_wait(&start);
    double t0 = now_s();
    result r = {0, 0, 0};
    long msgs = 0;
    for (int i = 0; i < nodes; i++) {
        pthread_join(t[i], NULL);
        msgs += n[i].msgs;
        r.deadlocks += n[i].deadlocks;
        r.failures += n[i].failures;
        if (n[i].failures)
            fprintf(stderr, "pg-cluster-bench: node %d: %ld failures, the first: %s\n", i,
                    n[i].failures, n[i].failure);
    }
    r.rate = (double)msgs / (now_s() - t0);
    pthread_barrier_destroy(&start);
    return r;
}

int main(int argc, char **argv)
{
    const char *conninfo = getenv("CHAT_PG_CONNINFO");
    if (!conninfo)
        conninfo = getenv("CHAT_TEST_PG");
    if (!conninfo) {
        fprintf(stderr, "pg-cluster-bench: set CHAT_PG_CONNINFO, or run it through "
                        "tests/lib/pgtemp.py run -- ...\n");
        return 2;
    }
    int nodes = argc > 1 ? atoi(argv[1]) : 2;
    double secs = argc > 2 ? atof(argv[2]) : 2.0;
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    if (nodes < 1 || nodes > MAX_NODES || secs <= 0 || rounds < 1) {
        fprintf(stderr, "usage: pg-cluster-bench [NODES (1..%d)] [SECONDS] [ROUNDS]\n",
                MAX_NODES);
        return 2;
    }
    /* A database of its own, made once: conversations with their senders as members. */
    char db[600];
    sql(conninfo, "DROP DATABASE IF EXISTS chat_cluster_bench WITH (FORCE)");
    sql(conninfo, "CREATE DATABASE chat_cluster_bench");
    snprintf(db, sizeof db, "%s dbname=chat_cluster_bench", conninfo);
    const chat_store_ops *ops = chat_store_postgres_ops();
    void *st;
    if (chat_store_postgres_open(&st, db, 0) != CHAT_OK) {
        fprintf(stderr, "pg-cluster-bench: %s\n", chat_error_last()->message);
        return 1;
    }
    int64_t convs[CONVS * MAX_NODES];
    for (int i = 0; i < CONVS * nodes; i++) {
        chat_store_conv c = {0};
        c.kind = CHAT_CONV_GROUP;
        snprintf(c.title, sizeof c.title, "g%d", i);
        ops->conv_insert(st, &c);
        convs[i] = c.id;
    }
    ops->destroy(st);

    static const int batches[] = {1, 8, 32};
    printf("pg-cluster-bench: %d nodes on one PostgreSQL, %.1f s per case, %d rounds\n"
           "messages/s over all nodes (ratio to serial in the same round) [batches lost to "
           "deadlocks]\n", nodes, secs, rounds);
    for (int round = 1; round <= rounds; round++) {
        for (int shared = 0; shared < 2; shared++) {
            for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
                printf("round %d %-6s batch %-3d", round, shared ? "shared" : "own", batches[b]);
                double serial = 0;
                for (int mode = 0; mode < N_MODES; mode++) {
                    result r = run_case(db, nodes, mode, batches[b], shared, convs, secs);
                    if (mode == SERIAL)
                        serial = r.rate;
                    printf("  %s %7.0f", mode_name[mode], r.rate);
                    if (mode != SERIAL)
                        printf(" (%.2f)", serial > 0 ? r.rate / serial : 0);
                    if (r.deadlocks || shared)
                        printf(" [%ld]", r.deadlocks);
                    fflush(stdout);
                }
                printf("\n");
            }
        }
    }
    sql(conninfo, "DROP DATABASE IF EXISTS chat_cluster_bench WITH (FORCE)");
    return 0;
}
