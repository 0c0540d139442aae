/* Internals of the PostgreSQL store, shared by pg.c (connection, pipeline, transactions),
 * pg_tables.c (row methods), pg_push.c (push registrations) and pg_schema.c (migrations). */
#ifndef CHAT_STORE_PG_INTERNAL_H
#define CHAT_STORE_PG_INTERNAL_H

#include "chat/sys/store.h"
#include "store/check.h"

#include <libpq-fe.h>

/* Every statement the store runs, prepared on each new connection. */
enum chat__pg_stmt {
    CHAT__PG_BEGIN,
    CHAT__PG_COMMIT,
    CHAT__PG_ROLLBACK,
    CHAT__PG_LOCK_KEY,
    CHAT__PG_CONV_INSERT,
    CHAT__PG_CONV_DM_TAKEN,
    CHAT__PG_CONV_GET,
    CHAT__PG_CONV_GET_LOCK,
    CHAT__PG_CONV_FIND,
    CHAT__PG_CONV_FIND_LOCK,
    CHAT__PG_CONV_UPDATE,
    CHAT__PG_CONV_LOCK,
    CHAT__PG_MEMBER_GET,
    CHAT__PG_MEMBER_PUT,
    CHAT__PG_MEMBER_LIST,
    CHAT__PG_MEMBER_LIST_ACTIVE,
    CHAT__PG_MSG_INSERT,
    CHAT__PG_MSG_CMID,
    CHAT__PG_MSG_RANGE_ASC,
    CHAT__PG_MSG_RANGE_DESC,
    CHAT__PG_USER_CONVS,
    CHAT__PG_CONTACTS,
    CHAT__PG_USER_GET,
    CHAT__PG_USER_PUT,
    CHAT__PG_REVOKED_PUT,
    CHAT__PG_REVOKED_LIST,
    CHAT__PG_META_GET,
    CHAT__PG_META_SET,
    CHAT__PG_CHANGE_ADD,
    CHAT__PG_MEDIA_PUT,
    CHAT__PG_MEDIA_GET,
    CHAT__PG_MEDIA_GRANT,
    CHAT__PG_MEDIA_GRANTS,
    CHAT__PG_PUSH_REG_PUT,
    CHAT__PG_PUSH_REG_DEL,
    CHAT__PG_PUSH_REG_DEL_TOKEN,
    CHAT__PG_PUSH_REG_LIST,
    CHAT__PG_PUSH_MUTE_PUT,
    CHAT__PG_PUSH_MUTE_DEL,
    CHAT__PG_PUSH_MUTE_GET,
    /* version 5 */
    CHAT__PG_MSG_GET,
    CHAT__PG_MSG_UPDATE,
    CHAT__PG_MSG_RELATED,
    CHAT__PG_MSG_THREAD_ASC,
    CHAT__PG_MSG_THREAD_DESC,
    CHAT__PG_MSG_COUNT,
    CHAT__PG_MSG_EXPIRED,
    CHAT__PG_MSG_BY_SENDER,
    CHAT__PG_SEARCH,
    CHAT__PG_REACT_PUT,
    CHAT__PG_REACT_DEL,
    CHAT__PG_REACT_LIST,
    CHAT__PG_REACT_CLEAR,
    CHAT__PG_USER_DEL,
    CHAT__PG_DELETED_PUT,
    CHAT__PG_DELETED_LIST,
    CHAT__PG_MEDIA_REFS,
    CHAT__PG_MEDIA_DEL,
    CHAT__PG_GRANTS_DEL,
    CHAT__PG_COUNT
};

/* SQL text of each statement, indexed by enum chat__pg_stmt. */
extern const char *const chat__pg_sql[CHAT__PG_COUNT];

#define CHAT__PG_MAX_PARAMS 14

/* The parameters of one statement: text, except a message body (binary bytea). */
typedef struct chat__pg_params {
    int n;
    const char *values[CHAT__PG_MAX_PARAMS];
    int lengths[CHAT__PG_MAX_PARAMS];
    int formats[CHAT__PG_MAX_PARAMS];
    char nums[CHAT__PG_MAX_PARAMS][24];
} chat__pg_params;

void chat__pg_text(chat__pg_params *p, const char *v); /* NULL: SQL NULL */
void chat__pg_i64(chat__pg_params *p, int64_t v);
void chat__pg_u64(chat__pg_params *p, uint64_t v); /* at most INT64_MAX (the checking layer) */
void chat__pg_bytes(chat__pg_params *p, const char *v, size_t len);

/* Statements sent in a transaction whose results are read at the next round trip: at most this
 * many queue up before the store reads them (the server's replies must not fill the socket
 * while the store is still writing). */
#define CHAT__PG_MAX_DEFERRED 256

/* A member row this transaction gave a change of its own (pg_change.c). */
typedef struct chat__pg_member_key {
    int64_t conv;
    char user[CHAT_ID_MAX + 1];
} chat__pg_member_key;

/* The inbox change counter (CHAT_STORE_CHANGE_KEY) in one transaction: read without a lock at
 * the start, its rows renumbered and the counter advanced under the lock at the end. */
typedef struct chat__pg_change {
    int armed;       /* read in this transaction: what follows is counted from base */
    int found;       /* the counter's row existed when read */
    uint64_t base;   /* the value the transaction counts from; rows above it are its own */
    int64_t *convs;  /* conversations written with a change above base */
    size_t n_convs, cap_convs;
    chat__pg_member_key *members; /* member rows written with a change above base */
    size_t n_members, cap_members;
} chat__pg_change;

typedef struct chat__pg {
    PGconn *conn;      /* NULL when broken or never connected */
    char *conninfo;
    int in_tx;         /* begin() succeeded; no commit() success or rollback() since */
    int tx_rc;         /* the first failure of this transaction; every later call answers it */
    int tx_backend;
    char tx_msg[256];
    int n_deferred;    /* statements sent, results unread (after those: the next query's) */
    struct chat__pg_deferred {
        const char *what; /* the method, for its failure's message */
        int64_t conv;     /* of a conv_update: its row must exist */
        int st;           /* enum chat__pg_stmt */
    } deferred[CHAT__PG_MAX_DEFERRED];
    uint64_t retry_at_ns; /* no reconnection attempt before (CLOCK_MONOTONIC) */
    int backoff_ms;
    chat__pg_change change;
    char *scratch;        /* array parameters (chat__pg_scratch) */
    size_t cap_scratch;
} chat__pg;

/* Run st and return its result in *out (the caller reads it, then PQclear()s it), after the
 * results of every deferred statement: one round trip for all of them. Outside a transaction
 * the statement runs alone (autocommit), on a connection made first if there is none. A
 * failure answers a chat_status and the error record (CHAT_EAGAIN when the server cannot be
 * reached or went away, or for a deadlock or serialization failure), and in a transaction is
 * kept for every later call until rollback(). */
int chat__pg_query(chat__pg *s, int st, const chat__pg_params *p, PGresult **out,
                   const char *what);
/* A statement whose result only says whether it failed: in a transaction it is sent now and
 * checked at the next round trip (a failure then fails that call and the transaction), else
 * run at once. */
int chat__pg_exec(chat__pg *s, int st, const chat__pg_params *p, const char *what);
/* Same, for conv_update: a conversation that has no row fails as CHAT_ENOTFOUND. */
int chat__pg_exec_update(chat__pg *s, int st, const chat__pg_params *p, int64_t conv,
                         const char *what);

/* A buffer of at least size bytes for array parameters, reused; NULL when out of memory. */
char *chat__pg_scratch(chat__pg *s, size_t size);
/* Bytes an array literal of n ids needs, and the literal ({1,2}) of ids[i * stride bytes]
 * written at p: returns the byte after its NUL. */
#define CHAT__PG_IDS_SIZE(n) (3 + (size_t)(n) * 21)
char *chat__pg_put_ids(char *p, const int64_t *ids, size_t n, size_t stride);

/* Record rc as the transaction's failure (the first one is kept) and return it. */
int chat__pg_tx_fail(chat__pg *s, int rc);

/* The inbox change counter (pg_change.c). In a transaction, meta_get and meta_set of
 * CHAT_STORE_CHANGE_KEY come here; the row writers report the changes they write. */
int chat__pg_change_get(chat__pg *s, int64_t *value);
int chat__pg_change_set(chat__pg *s, int64_t value);
int chat__pg_change_conv(chat__pg *s, int64_t conv, uint64_t change);
int chat__pg_change_member(chat__pg *s, int64_t conv, const char *user, uint64_t change);
/* Forget the transaction's counter state (begin, commit, rollback); free frees its memory. */
void chat__pg_change_reset(chat__pg *s);
void chat__pg_change_free(chat__pg *s);

/* Create or migrate the schema on a connection (not in pipeline mode). CHAT_EVERSION when the
 * database's schema is newer than this library's. */
int chat__pg_migrate(PGconn *conn);
/* The schema version this library writes. */
int chat__pg_schema_version(void);
/* Record the failure of a PostgreSQL call: res may be NULL (then the connection's message). */
int chat__pg_fail(PGconn *conn, const PGresult *res, const char *what);

/* Binary-format result columns. */
int64_t chat__pg_col_i64(const PGresult *r, int row, int col);
const char *chat__pg_col_str(const PGresult *r, int row, int col); /* "" for NULL */
void chat__pg_col_copy(const PGresult *r, int row, int col, char *dst, size_t size);

/* Row methods (pg_tables.c). */
int chat__pg_conv_insert(void *state, chat_store_conv *conv);
int chat__pg_conv_get(void *state, int64_t id, chat_store_conv *out);
int chat__pg_conv_find_direct(void *state, const char *dm_key, chat_store_conv *out);
int chat__pg_conv_update(void *state, const chat_store_conv *conv);
int chat__pg_lock_convs(void *state, const chat_conv_id *ids, size_t n);
int chat__pg_member_get(void *state, int64_t conv, const char *user, chat_store_member *out);
int chat__pg_member_put(void *state, const chat_store_member *member);
int chat__pg_member_list(void *state, int64_t conv, int only_active, chat_store_member_cb cb,
                         void *user_data);
int chat__pg_msg_insert(void *state, const chat_store_msg *msg);
int chat__pg_msg_find_cmid(void *state, int64_t conv, const char *sender, const char *device,
                           const char *cmid, chat_store_msg_cb cb, void *user_data);
int chat__pg_msg_range(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                       int limit, int descending, chat_store_msg_cb cb, void *user_data);
int chat__pg_user_convs(void *state, const char *user, uint64_t since_change, int limit,
                        chat_store_member_cb cb, void *user_data);
int chat__pg_contacts(void *state, const char *user, chat_store_name_cb cb, void *user_data);
int chat__pg_user_get(void *state, const char *name, chat_store_user *out);
int chat__pg_user_put(void *state, const chat_store_user *user);
int chat__pg_revoked_put(void *state, const char *session_id, int64_t exp_ms);
int chat__pg_revoked_list(void *state, int64_t now_ms,
                          int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                          void *user_data);
int chat__pg_meta_get(void *state, const char *key, int64_t *value);
int chat__pg_meta_set(void *state, const char *key, int64_t value);
int chat__pg_media_put(void *state, const chat_store_media *m);
int chat__pg_media_get(void *state, const char *id, chat_store_media *out);
int chat__pg_media_grant(void *state, const char *id, int64_t conv, const char *user);
int chat__pg_media_grants(void *state, const char *id, chat_store_grant_cb cb, void *user_data);

/* Push registrations and mutes (pg_push.c). */
int chat__pg_push_reg_put(void *state, const chat_store_push_reg *reg);
int chat__pg_push_reg_del(void *state, const char *user, const char *device);
int chat__pg_push_reg_del_token(void *state, int platform, const char *token);
int chat__pg_push_reg_list(void *state, const char *user, chat_store_push_reg_cb cb,
                           void *user_data);
int chat__pg_push_mute_put(void *state, const char *user, int64_t conv, int64_t until_ms);
int chat__pg_push_mute_get(void *state, const char *user, int64_t conv, int64_t *until_ms);

/* Version 5 (pg_life.c). */
int chat__pg_msg_get(void *state, int64_t conv, uint64_t seq, chat_store_msg_cb cb,
                     void *user_data);
int chat__pg_msg_update(void *state, const chat_store_msg *msg);
int chat__pg_msg_related(void *state, int64_t conv, uint64_t target_seq, int kind,
                         chat_store_msg_cb cb, void *user_data);
int chat__pg_msg_thread(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                        uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                        void *user_data);
int chat__pg_msg_count(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                       uint64_t upto_seq, uint64_t *out);
int chat__pg_msg_expired(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                         void *user_data);
int chat__pg_msg_by_sender(void *state, int64_t conv, const char *sender, uint64_t after_seq,
                           int limit, chat_store_msg_cb cb, void *user_data);
int chat__pg_msg_search(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                        void *user_data);
int chat__pg_reaction_set(void *state, const chat_store_reaction *r, int on);
int chat__pg_reaction_list(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                           chat_store_reaction_cb cb, void *user_data);
int chat__pg_reaction_clear(void *state, int64_t conv, uint64_t seq, const char *user);
int chat__pg_user_delete(void *state, const char *name, int64_t deleted_ms);
int chat__pg_user_deleted(void *state, chat_store_deleted_cb cb, void *user_data);
int chat__pg_media_refs(void *state, const char *id, int delta, int64_t *refs_out);
int chat__pg_media_delete(void *state, const char *id);

/* Shared by pg_tables.c and pg_life.c. */
struct chat__store_sink;
typedef int (*chat__pg_emit_fn)(const PGresult *r, int i, const struct chat__store_sink *k);
int chat__pg_emit_msg(const PGresult *r, int i, const struct chat__store_sink *k);
/* Row i of a result whose first columns are the message's (borrowed from r). */
void chat__pg_read_msg(const PGresult *r, int i, chat_store_msg *m);
/* Point m's reactions at those of row i (column 13), decoded into x (free it after). */
int chat__pg_read_reacts(const PGresult *r, int i, chat_store_msg *m, chat__store_reacts *x);
/* Run a query and pass each row to emit; a non-zero callback result stops and is returned. */
int chat__pg_each(chat__pg *s, int st, const chat__pg_params *p, const char *what,
                  chat__pg_emit_fn emit, const struct chat__store_sink *k);
/* Run a point query: CHAT_OK with *out holding one row, CHAT_ENOTFOUND with none. */
int chat__pg_fetch(chat__pg *s, int st, const chat__pg_params *p, PGresult **out,
                   const char *what);
/* The words of a message (chat__fts_doc) or of a query as the index takes them: ASCII
 * punctuation becomes a space, so PostgreSQL's parser splits words where the other stores do
 * ("cat.png" is two words, not a file name). From chat__malloc; NULL when out of memory. */
char *chat__pg_words(const char *text, size_t len);

#endif
