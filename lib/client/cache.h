/* The client's local cache: one SQLite connection (a file, or :memory:) behind a mutex, with its
 * own small schema (PRAGMA user_version = 1): meta, convs, members, messages, outbox.
 * Every function locks for its own duration, so any thread may call them. Internal. */
#ifndef CHAT_CLIENT_CACHE_H
#define CHAT_CLIENT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "chat/types.h"

#include <cjson/cJSON.h>

#define CHAT__CACHE_SCHEMA 4 /* 2: outbox.media; 3: convs.muted_until; 4: the message lifecycle,
                              * local search */

typedef struct chat__cache chat__cache;

typedef struct chat__outbox_row {
    int64_t id;
    char cmid[32];
    chat_conv_id conv; /* 0 when sent to a user */
    char *to_user;  /* NULL when sent to a conv */
    char *text;
    size_t text_len;
    char *media;    /* a media message: the media object as JSON (text is its name); else NULL */
    uint64_t reply, thread; /* the message replied to, the thread's root; 0: none */
} chat__outbox_row;

typedef struct chat__conv_row {
    chat_conv_id conv;
    uint64_t head, delivered, read, joined, max_seq;
    int role;  /* chat_role */
    int kind;  /* chat_conv_kind */
} chat__conv_row;

/* @return CHAT_OK, CHAT_EIO, CHAT_EVERSION (newer schema), CHAT_ENOMEM. */
int chat__cache_open(chat__cache **out, const char *path);
void chat__cache_close(chat__cache *c);

/* meta key/value. get: CHAT_ENOTFOUND when absent; *out from chat__malloc. */
int chat__cache_meta_get(chat__cache *c, const char *key, char **out);
int chat__cache_meta_set(chat__cache *c, const char *key, const char *value);
int chat__cache_meta_del(chat__cache *c, const char *key);
/* Remove everything but the outbox (the cache now belongs to another account: outbox too). */
int chat__cache_wipe(chat__cache *c);

/* A fresh cmid: 11 hex digits of the Unix time in ms, then 16 random ones. Time first keeps a
 * device's ids ascending, which the server's dedupe index is ordered by (doc/protocol.md). */
#define CHAT__CMID_SIZE 28

/* Outbox. add writes a fresh cmid into cmid_out. */
int chat__cache_outbox_add(chat__cache *c, chat_conv_id conv, const char *to_user, const char *text,
                           size_t len, char cmid_out[CHAT__CMID_SIZE]);
/* The same, as a reply (reply: the seq answered) and/or in a thread (thread: its root). */
int chat__cache_outbox_add_reply(chat__cache *c, chat_conv_id conv, uint64_t reply, uint64_t thread,
                                 const char *text, size_t len, char cmid_out[CHAT__CMID_SIZE]);
/* The oldest entry not failed: CHAT_OK, or CHAT_ENOTFOUND when none. Free with _row_free. */
int chat__cache_outbox_first(chat__cache *c, chat__outbox_row *row);
/* Queue a media message: media is the media object as JSON, name what lists show as text. */
int chat__cache_outbox_add_media(chat__cache *c, chat_conv_id conv, const char *to_user,
                                 const char *name, const char *media,
                                 char cmid_out[CHAT__CMID_SIZE]);
void chat__cache_outbox_row_free(chat__outbox_row *row);
/* The ack: remove cmid from the outbox and store the message (one transaction). 1 if the cmid
 * was in the outbox, 0 if not (a stale ack), negative on error. */
int chat__cache_outbox_ack(chat__cache *c, const char *cmid, chat_conv_id conv, uint64_t seq,
                           int64_t ts, const char *me, const char *device);
int chat__cache_outbox_fail(chat__cache *c, const char *cmid, int code, const char *message);
int chat__cache_outbox_count(chat__cache *c, size_t *out);

struct chat_msg_list;
/* Conversations from the wire ("convs" items, "conv" answers): upsert with the members; my
 * watermarks only move forward. *local_read receives my read watermark before the merge (to
 * know whether the server is behind); may be NULL. */
int chat__cache_conv_upsert(chat__cache *c, const cJSON *conv, const char *me,
                            uint64_t *local_read);
/* My mute of conv: -1 until unmuted, 0 not muted, else its end in ms. CHAT_OK, or
 * CHAT_ENOTFOUND when conv is not cached. */
int chat__cache_conv_muted(chat__cache *c, chat_conv_id conv, int64_t until_ms);
/* CHAT_OK or CHAT_ENOTFOUND. */
int chat__cache_conv_get(chat__cache *c, chat_conv_id conv, chat__conv_row *out);
/* The end of the contiguous run of cached seqs that starts at the lowest one (0: none). A live
 * message past a gap raises max_seq but not this, so a sync fetches from the gap. */
uint64_t chat__cache_conv_contig(chat__cache *c, chat_conv_id conv);
/* What a stored message changed in the cache beside itself. */
typedef struct chat__change {
    int kind;        /* 0: nothing; CHAT_MSG_EDIT, _DELETE, _REACT: message target of conv;
                      * CHAT_MSG_EVENT: every message of user in conv erased (its account) */
    chat_conv_id conv, target;
    int on;          /* a reaction put on (1) or taken off */
    int uncounted;   /* how many of my unread messages it erased */
    char user[65];
    char emoji[33];
} chat__change;

/* Store one "msg" object. 1 new, 0 already there, negative on error. Moves the conv head, and
 * for my own messages my watermarks. *known receives whether the conv is in the cache. A
 * message met again (a history page) refreshes the cached one to the state it shows; an edit,
 * delete or reaction is applied to its target, as is an account deletion event: *chg says
 * what it changed (may be NULL). */
int chat__cache_msg_insert(chat__cache *c, const cJSON *msg, const char *me, int *known,
                           chat__change *chg);

/* Fill in bulk (benchmarks and tests only: the engine never calls it): on 1 opens one
 * transaction in which each chat__cache_msg_insert is a savepoint instead of a commit of its
 * own; on 0 commits it. Nothing is durable until then. */
int chat__cache_bulk(chat__cache *c, int on);

/* Messages dropped from the cache because they expired. */
typedef void (*chat__expired_cb)(chat_conv_id conv, uint64_t seq, void *ud);
/* The server said these expired: each cached one becomes a tombstone (cb for each). */
int chat__cache_expired(chat__cache *c, chat_conv_id conv, const uint64_t *seqs, size_t n,
                        chat__expired_cb cb, void *ud);
/* Tombstone what is past its "expires" by now_ms, up to 256 at a time (cb for each). */
int chat__cache_expire_due(chat__cache *c, int64_t now_ms, chat__expired_cb cb, void *ud);
/* Cached text and media messages holding every word of query (conv 0: any), most recently
 * cached first, at most limit. */
int chat__cache_search(chat__cache *c, const char *query, chat_conv_id conv, int limit,
                       struct chat_msg_list **out);
/* A receipt (server push or the answer to mine). For user == me it moves my watermarks. */
int chat__cache_watermark(chat__cache *c, chat_conv_id conv, const char *user, uint64_t delivered,
                          uint64_t read, int64_t delivered_ts, int64_t read_ts, const char *me);
/* The host marked read: my read (and delivered) watermark forward, locally. */
int chat__cache_mark_read(chat__cache *c, chat_conv_id conv, uint64_t seq);

/* Serialized reads for the public list API (lib/client/api.c). */
struct chat_conv_list;
struct chat_msg_list;
int chat__cache_convs(chat__cache *c, const char *me, struct chat_conv_list **out);
/* History range from the cache; *missing is set when the range is not fully cached. */
int chat__cache_history(chat__cache *c, const char *me, chat_conv_id conv, uint64_t before,
                        int limit, struct chat_msg_list **out, int *missing, uint64_t *top);
int chat__cache_outbox_list(chat__cache *c, struct chat_msg_list **out);
int chat__cache_status(chat__cache *c, const char *me, const char *cmid, int *status,
                       chat_conv_id *conv, uint64_t *seq);
int chat__cache_receipts(chat__cache *c, const char *me, chat_conv_id conv, uint64_t seq,
                         size_t *delivered, size_t *read, size_t *others);

#endif
