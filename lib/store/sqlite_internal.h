/* Internals of the SQLite store, shared by sqlite.c (lifecycle, transactions), sqlite_tables.c
 * (row methods) and sqlite_schema.c (migrations). */
#ifndef CHAT_STORE_SQLITE_INTERNAL_H
#define CHAT_STORE_SQLITE_INTERNAL_H

#include "chat/sys/store.h"

#include <pthread.h>
#include <sqlite3.h>

/* Every statement the store runs, prepared once at open. */
enum chat__sqlite_stmt {
    CHAT__ST_BEGIN,
    CHAT__ST_COMMIT,
    CHAT__ST_ROLLBACK,
    CHAT__ST_CONV_INSERT,
    CHAT__ST_CONV_GET,
    CHAT__ST_CONV_FIND,
    CHAT__ST_CONV_UPDATE,
    CHAT__ST_MEMBER_GET,
    CHAT__ST_MEMBER_PUT,
    CHAT__ST_MEMBER_SET,
    CHAT__ST_MEMBER_LIST,
    CHAT__ST_MEMBER_LIST_ACTIVE,
    CHAT__ST_MSG_INSERT,
    CHAT__ST_MSG_CMID,
    CHAT__ST_MSG_RANGE_ASC,
    CHAT__ST_MSG_RANGE_DESC,
    CHAT__ST_USER_CONVS,
    CHAT__ST_CONTACTS,
    CHAT__ST_USER_GET,
    CHAT__ST_USER_PUT,
    CHAT__ST_REVOKED_PUT,
    CHAT__ST_REVOKED_LIST,
    CHAT__ST_META_GET,
    CHAT__ST_META_SET,
    CHAT__ST_MEDIA_PUT,
    CHAT__ST_MEDIA_GET,
    CHAT__ST_MEDIA_GRANT,
    CHAT__ST_MEDIA_GRANTS,
    CHAT__ST_PUSH_REG_PUT,
    CHAT__ST_PUSH_REG_DEL,
    CHAT__ST_PUSH_REG_DEL_TOKEN,
    CHAT__ST_PUSH_REG_LIST,
    CHAT__ST_PUSH_MUTE_PUT,
    CHAT__ST_PUSH_MUTE_DEL,
    CHAT__ST_PUSH_MUTE_GET,
    /* version 5 */
    CHAT__ST_MSG_GET,
    CHAT__ST_MSG_OLD,
    CHAT__ST_MSG_UPDATE,
    CHAT__ST_MSG_RELATED,
    CHAT__ST_MSG_THREAD_ASC,
    CHAT__ST_MSG_THREAD_DESC,
    CHAT__ST_MSG_COUNT,
    CHAT__ST_MSG_EXPIRED,
    CHAT__ST_MSG_BY_SENDER,
    CHAT__ST_SEARCH,
    CHAT__ST_SID_MAX,
    CHAT__ST_CONV_MAX,
    CHAT__ST_DOC_INSERT,
    CHAT__ST_DOC_DELETE,
    CHAT__ST_FTS_INSERT,
    CHAT__ST_FTS_DELETE,
    CHAT__ST_REACT_PUT,
    CHAT__ST_REACT_DEL,
    CHAT__ST_REACT_LIST,
    CHAT__ST_REACT_CLEAR_MSG,
    CHAT__ST_REACT_CLEAR_CONV,
    CHAT__ST_REACT_SYNC_MSG,
    CHAT__ST_REACT_SYNC_CONV,
    CHAT__ST_USER_DEL,
    CHAT__ST_DELETED_PUT,
    CHAT__ST_DELETED_LIST,
    CHAT__ST_MEDIA_REFS,
    CHAT__ST_MEDIA_DEL,
    CHAT__ST_GRANTS_DEL,
    CHAT__ST_COUNT
};

/* The checkpoint thread (sqlite.c): its own connection to the same file, woken by the writer's
 * WAL hook. lock/cond guard wake and stop; ckpt is held around every checkpoint call, so the
 * writer's fallback checkpoint waits for a running one instead of failing with SQLITE_BUSY. */
typedef struct chat__sqlite_ckpt {
    sqlite3 *db;
    pthread_t thread;
    pthread_mutex_t lock, ckpt;
    pthread_cond_t cond;
    int wake, stop, started;
    int wipe;       /* an erasure committed: truncate the WAL once it is checkpointed */
    int next_wake;  /* writer thread only: WAL size (frames) at which to wake the thread next */
    int last_frames; /* writer thread only: WAL size at the last commit (a drop: restarted) */
} chat__sqlite_ckpt;

typedef struct chat__sqlite {
    sqlite3 *db;
    sqlite3_stmt *st[CHAT__ST_COUNT];
    chat__sqlite_ckpt *ck; /* NULL: SQLite's auto-checkpoint on the writer (inline) */
    struct chat__fts *fts; /* the search tokenizer (owned by db) */
    int64_t next_sid;      /* the next search document id: above every one taken */
    int erased;            /* this transaction erased a body: wipe the WAL after it commits */
} chat__sqlite;

/* SQL text of each statement, indexed by enum chat__sqlite_stmt. */
extern const char *const chat__sqlite_sql[CHAT__ST_COUNT];

/* Create or migrate the schema and set the connection's pragmas; load the search key into
 * fts (registered on db), indexing the messages stored before search existed. */
int chat__sqlite_migrate(sqlite3 *db, unsigned int flags, struct chat__fts *fts);
/* The schema version this library writes. */
int chat__sqlite_schema_version(void);
/* The SQL that migrates a database from version - 1 to version (1-based), or NULL: tests
 * build databases of older versions with it. */
const char *chat__sqlite_migration(int version);

/* The name of a VFS that is base_name's (NULL: the default VFS) with the WAL appends of each
 * commit gathered into one write (sqlite_walbuf.c); registered on first use. NULL when
 * base_name is unknown or no more shims can be registered. [any thread] */
const char *chat__sqlite_walbuf_vfs(const char *base_name);

/* Record a failed SQLite call (rc: extended code) and return its chat_status. */
int chat__sqlite_fail(sqlite3 *db, int rc, const char *what);
/* Step a statement that returns no rows, then reset it. */
int chat__sqlite_exec(chat__sqlite *s, sqlite3_stmt *st, const char *what);
/* Reset a statement after use, so it holds no read snapshot and no bound strings. */
void chat__sqlite_reset(sqlite3_stmt *st);

/* Row methods (sqlite_tables.c). */
int chat__sqlite_conv_insert(void *state, chat_store_conv *conv);
int chat__sqlite_conv_get(void *state, int64_t id, chat_store_conv *out);
int chat__sqlite_conv_find_direct(void *state, const char *dm_key, chat_store_conv *out);
int chat__sqlite_conv_update(void *state, const chat_store_conv *conv);
int chat__sqlite_member_get(void *state, int64_t conv, const char *user, chat_store_member *out);
int chat__sqlite_member_put(void *state, const chat_store_member *member);
int chat__sqlite_member_list(void *state, int64_t conv, int only_active, chat_store_member_cb cb,
                             void *user_data);
int chat__sqlite_msg_insert(void *state, const chat_store_msg *msg);
int chat__sqlite_msg_find_cmid(void *state, int64_t conv, const char *sender, const char *device,
                               const char *cmid, chat_store_msg_cb cb, void *user_data);
int chat__sqlite_msg_range(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                           int limit, int descending, chat_store_msg_cb cb, void *user_data);
int chat__sqlite_user_convs(void *state, const char *user, uint64_t since_change, int limit,
                            chat_store_member_cb cb, void *user_data);
int chat__sqlite_contacts(void *state, const char *user, chat_store_name_cb cb, void *user_data);
int chat__sqlite_user_get(void *state, const char *name, chat_store_user *out);
int chat__sqlite_user_put(void *state, const chat_store_user *user);
int chat__sqlite_revoked_put(void *state, const char *session_id, int64_t exp_ms);
int chat__sqlite_revoked_list(void *state, int64_t now_ms,
                              int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                              void *user_data);
int chat__sqlite_meta_get(void *state, const char *key, int64_t *value);
int chat__sqlite_meta_set(void *state, const char *key, int64_t value);
int chat__sqlite_media_put(void *state, const chat_store_media *m);
int chat__sqlite_media_get(void *state, const char *id, chat_store_media *out);
int chat__sqlite_media_grant(void *state, const char *id, int64_t conv, const char *user);
int chat__sqlite_media_grants(void *state, const char *id, chat_store_grant_cb cb,
                              void *user_data);
int chat__sqlite_push_reg_put(void *state, const chat_store_push_reg *reg);
int chat__sqlite_push_reg_del(void *state, const char *user, const char *device);
int chat__sqlite_push_reg_del_token(void *state, int platform, const char *token);
int chat__sqlite_push_reg_list(void *state, const char *user, chat_store_push_reg_cb cb,
                               void *user_data);
int chat__sqlite_push_mute_put(void *state, const char *user, int64_t conv, int64_t until_ms);
int chat__sqlite_push_mute_get(void *state, const char *user, int64_t conv, int64_t *until_ms);

/* Version 5 (sqlite_life.c). */
int chat__sqlite_msg_get(void *state, int64_t conv, uint64_t seq, chat_store_msg_cb cb,
                         void *user_data);
int chat__sqlite_msg_update(void *state, const chat_store_msg *msg);
int chat__sqlite_msg_related(void *state, int64_t conv, uint64_t target_seq, int kind,
                             chat_store_msg_cb cb, void *user_data);
int chat__sqlite_msg_thread(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                            uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                            void *user_data);
int chat__sqlite_msg_count(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                           uint64_t upto_seq, uint64_t *out);
int chat__sqlite_msg_expired(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                             void *user_data);
int chat__sqlite_msg_by_sender(void *state, int64_t conv, const char *sender, uint64_t after_seq,
                               int limit, chat_store_msg_cb cb, void *user_data);
int chat__sqlite_msg_search(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                            void *user_data);
int chat__sqlite_reaction_set(void *state, const chat_store_reaction *r, int on);
int chat__sqlite_reaction_list(void *state, int64_t conv, uint64_t after_seq,
                               uint64_t before_seq, chat_store_reaction_cb cb, void *user_data);
int chat__sqlite_reaction_clear(void *state, int64_t conv, uint64_t seq, const char *user);
int chat__sqlite_user_delete(void *state, const char *name, int64_t deleted_ms);
int chat__sqlite_user_deleted(void *state, chat_store_deleted_cb cb, void *user_data);
int chat__sqlite_media_refs(void *state, const char *id, int delta, int64_t *refs_out);
int chat__sqlite_media_delete(void *state, const char *id);

/* Shared by sqlite_tables.c and sqlite_life.c. */
struct chat__store_sink;
void chat__sqlite_read_msg(sqlite3_stmt *st, chat_store_msg *m);
/* Step a point query: CHAT_OK with the row ready (the caller reads, then resets), else the
 * statement is already reset (CHAT_ENOTFOUND when there is no row). */
int chat__sqlite_fetch(chat__sqlite *s, sqlite3_stmt *st, const char *what);
typedef int (*chat__sqlite_emit_fn)(sqlite3_stmt *st, const struct chat__store_sink *k);
int chat__sqlite_emit_msg(sqlite3_stmt *st, const struct chat__store_sink *k);
/* Run a bound query and pass each row to emit; a non-zero callback result stops and is
 * returned as is. The statement is reset either way. */
int chat__sqlite_each(chat__sqlite *s, sqlite3_stmt *st, const char *what,
                      chat__sqlite_emit_fn emit, const struct chat__store_sink *k);
/* Add the words of text[0..len) (a message's chat__fts_doc) to the search index as document
 * sid of message (conv, seq). */
int chat__sqlite_index(chat__sqlite *s, int64_t sid, int64_t conv, uint64_t seq,
                       const char *text, size_t len);

#endif
