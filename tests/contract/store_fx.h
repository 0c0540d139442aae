/* The store contract's fixture, shared by test_store.c (the contract, every backend) and
 * store_postgres.c (what only the PostgreSQL store has). */
#ifndef CHAT_TEST_STORE_FX_H
#define CHAT_TEST_STORE_FX_H

#include "chat/sys/store.h"

enum { BE_MEMORY, BE_SQLITE, BE_POSTGRES };

typedef struct backend {
    const char *name;
    int kind;
} backend;

typedef struct fx {
    const backend *be;
    const chat_store_ops *ops;
    void *st;
    char dir[64];
    char path[128];     /* SQLite: the database file */
    char db[64];        /* PostgreSQL: this test's database, */
    char conninfo[512]; /* and its conninfo */
} fx;

/* Wrap the raw backend in f->ops/f->st into the checking layer, as the server does. */
int wrap_store(fx *f, int rc);
/* Open f's backend (a new instance on the same file or database) into f->ops/f->st. */
int open_store(fx *f);
void close_store(fx *f);
/* user's emoji on message seq of conv at ts: set (on) or cleared, through reaction_set. */
int react(fx *f, int64_t conv, uint64_t seq, const char *user, const char *emoji, int64_t ts,
          int on);

/* The version-5 contract (store_life.c), run on every backend. */
#define LIFE_TESTS(X)                                 \
    X(test_store_life_fields_roundtrip)               \
    X(test_store_life_update)                         \
    X(test_store_life_related_and_thread)             \
    X(test_store_life_count)                          \
    X(test_store_life_expired)                        \
    X(test_store_life_by_sender)                      \
    X(test_store_life_search)                         \
    X(test_store_life_reactions)                      \
    X(test_store_life_reactions_in_row)               \
    X(test_store_life_user_delete)                    \
    X(test_store_life_media_refs)                     \
    X(test_store_life_callback_reentry)

#define DECLARE_LIFE_TEST(fn) void fn(void **state);
LIFE_TESTS(DECLARE_LIFE_TEST)
#undef DECLARE_LIFE_TEST

#ifdef CHAT_TEST_POSTGRES
/* A fresh database on the server of CHAT_TEST_PG into f->db and f->conninfo; dropped after. */
void pg_fx_create(fx *f);
void pg_fx_drop(fx *f);

#define POSTGRES_TESTS(X)                             \
    X(test_store_postgres_reopen_persists)            \
    X(test_store_postgres_schema)                     \
    X(test_store_postgres_newer_schema_refused)       \
    X(test_store_postgres_older_schema_migrated)      \
    X(test_store_postgres_v3_schema_gains_lifecycle)  \
    X(test_store_postgres_v2_schema_gains_push)       \
    X(test_store_postgres_bad_open)                   \
    X(test_store_postgres_deferred_failure)           \
    X(test_store_postgres_restart)                    \
    X(test_store_postgres_two_nodes_one_conv)         \
    X(test_store_postgres_two_nodes_counter)          \
    X(test_store_postgres_deadlock_is_eagain)         \
    X(test_store_postgres_batches_overlap)            \
    X(test_store_postgres_out_of_order_commits_skip_nothing) \
    X(test_store_postgres_counter_rolls_back_with_its_batch) \
    X(test_store_postgres_concurrent_batches_and_a_syncing_client) \
    X(test_store_postgres_lock_convs)

#define DECLARE_TEST(fn) void fn(void **state);
POSTGRES_TESTS(DECLARE_TEST)
#undef DECLARE_TEST
#endif

#endif
