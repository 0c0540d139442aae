/* Internals of the client's cache shared by cache.c (schema, outbox, conversations, lists) and
 * cache_life.c (the message lifecycle: changes applied to cached messages, tombstones,
 * reactions, expiry, the local search index). Every function here expects the cache's lock
 * held by its caller (chat__cache_lock). */
#ifndef CHAT_CLIENT_CACHE_INTERNAL_H
#define CHAT_CLIENT_CACHE_INTERNAL_H

#include "client/cache.h"

#include <pthread.h>
#include <sqlite3.h>

struct chat__fts;

/* How many statements a cache keeps prepared (there are fewer distinct ones). */
#define CHAT__CACHE_STMTS 64

struct chat__cache {
    sqlite3 *db;
    pthread_mutex_t mu;
    struct chat__fts *fts; /* the search tokenizer, owned by db */
    /* Prepared statements by their SQL text's address: compiling one costs more than running
     * it, and storing a message runs about ten. busy: handed out, not yet back. */
    struct {
        const char *sql;
        sqlite3_stmt *st;
        int busy;
    } stmts[CHAT__CACHE_STMTS];
    int nstmts;
    int bulk;              /* chat__cache_bulk: one open transaction, a savepoint per insert */
};

/* chat__cache_msg flags: how a cached message was erased. */
#define CHAT__CACHE_DELETED 1
#define CHAT__CACHE_EXPIRED 2

int chat__cache_err(chat__cache *c, const char *what);
int chat__cache_exec(chat__cache *c, const char *sql);
/* A statement for sql (a string that lives as long as the cache: a literal), from the
 * prepared ones when it is there and not in use; give it back with chat__cache_done, never
 * sqlite3_finalize. NULL and the error set when it does not compile. */
sqlite3_stmt *chat__cache_prep(chat__cache *c, const char *sql);
/* Reset a statement of chat__cache_prep for its next use (finalize one it did not keep).
 * NULL is fine. */
void chat__cache_done(chat__cache *c, sqlite3_stmt *st);
void chat__cache_lock(chat__cache *c);
void chat__cache_unlock(chat__cache *c);
char *chat__cache_col_dup(sqlite3_stmt *st, int i);
uint64_t chat__cache_ju(const cJSON *o, const char *k);
int64_t chat__cache_ji(const cJSON *o, const char *k);
int chat__cache_kind_of(const char *k);
int chat__cache_conv_locked(chat__cache *c, chat_conv_id conv, chat__conv_row *out);

/* cache_life.c */

/* Create what the lifecycle needs in a cache of schema version below 3 (in the open's
 * transaction), register the tokenizer and load the search key. */
int chat__cache_life_open(chat__cache *c, int version);
/* Index row rowid of a message (kind, text, frame json) for local search, or forget it. */
int chat__cache_index(chat__cache *c, int64_t rowid, int kind, const char *text, size_t len,
                      const char *json);
int chat__cache_unindex(chat__cache *c, int64_t rowid, int kind, const char *text, size_t len,
                        const char *json);
/* A message just stored (new: inserted 1) or met again in a page (inserted 0): apply what it
 * changes (edit, delete, reaction, account deletion) to the cached messages it names, and a
 * page's current state (text, tombstone, reactions) to its own row. *chg says what changed. */
int chat__cache_apply(chat__cache *c, const cJSON *msg, int kind, int inserted,
                      chat__change *chg);
/* Recount my unread messages in conv from the cached ones after my read watermark (me NULL:
 * the cache's user); seqs up to the head that are not cached count as unread. */
int chat__cache_recount(chat__cache *c, chat_conv_id conv, const char *me);
/* Whether a message counts as unread (text, media or event of the main conversation). */
int chat__cache_counts(const cJSON *msg, int kind);
/* A message's reactions as a JSON array ([{"emoji","users"}]), NULL in *out when none. */
int chat__cache_reactions_json(chat__cache *c, chat_conv_id conv, uint64_t seq, char **out);
/* Add the row of a statement selecting conv, seq, ts, sender, cmid, kind, text, json,
 * target, thread, edited, expires, flags to a list, with its reactions. */
int chat__cache_list_add(chat__cache *c, struct chat_msg_list *l, sqlite3_stmt *st);

#endif
