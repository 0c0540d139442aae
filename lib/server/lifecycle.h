/* The message lifecycle in the server engine: how a message looks on the wire as it is now
 * (msgview.c), history pages (msgview.c), edits, deletes for everyone, reactions and the
 * conversation timer (lifecycle.c), erasure (lifecycle.c), search (search.c), the expiry
 * sweep (expiry.c) and account deletion (account.c). Every one of them needs a store of
 * version 5 (srv->lifecycle); without one the requests answer ENOTSUP/no_lifecycle. */
#ifndef CHAT_SERVER_LIFECYCLE_H
#define CHAT_SERVER_LIFECYCLE_H

#include "server/req.h"

/* ---- the wire form of a message (msgview.c) ---- */

/* What a message's frame shows besides its own row, looked up by the engine. */
typedef struct chat__msg_view {
    /* The message m->target_seq names (the one replied to, or edited), as it is now; NULL:
     * not looked up (a reply then shows its seq only). */
    const chat_store_msg *target;
    int target_missing; /* looked up and not there: shown as deleted */
    /* m's reactions, ordered by emoji then time (a run of reaction_list's rows). */
    const chat_store_reaction *reactions;
    size_t n_reactions;
} chat__msg_view;

/* The msg frame of m (view may be NULL), encoded directly. */
chat__frame *chat__msg_frame(const chat_store_msg *m, const chat__msg_view *view);
/* The same object as a raw item for a reply's array (print it only). */
cJSON *chat__msg_item(const chat_store_msg *m, const chat__msg_view *view);

/* Messages read for one answer (a history page, search hits), copied out of the store's
 * callbacks so the page can then look up what their frames show. */
typedef struct chat__page {
    chat_store_msg *v;  /* ascending by seq for chat__page_encode with a conversation */
    size_t n, cap;
    chat_store_reaction *reactions; /* of the rows, by seq (chat__page_encode) */
    size_t n_reactions, cap_reactions;
} chat__page;

/* A store callback adding a copy of m to the page (ud: chat__page *). */
int chat__page_add(const chat_store_msg *m, void *ud);
/* Turn the page into items of array, in page order, each with its reactions and its reply's
 * or edit's target (the reactions the rows carry with a store of version 6, else one
 * reaction_list over the page's seq range; one msg_get per target not in the page, none for
 * an edit that carries its target's text, CHAT_STORE_MSG_CURRENT); with a store older than
 * version 5, the rows alone. conv: the page's conversation (0: a page of several, shown
 * without reactions). CHAT_OK, CHAT_ENOMEM, CHAT_EIO. [writer thread] */
int chat__page_encode(chat__txn *tx, chat__page *p, int64_t conv, cJSON *array);
void chat__page_free(chat__page *p);
/* A copy of m, strings, body and reactions in one allocation (free with chat__msg_free). */
int chat__msg_copy(chat_store_msg *dst, const chat_store_msg *m);
void chat__msg_free(chat_store_msg *m);

/* The messages that count as visible in a conversation's list: text, media, events of the
 * main conversation (not thread replies, not lifecycle events). */
static inline int chat__msg_listed(const chat_store_msg *m)
{
    return m->kind <= CHAT_MSG_EVENT && m->thread_seq == 0;
}

/* ---- lifecycle.c ---- */

/* Refuse a request the store cannot serve. */
int chat__req_no_lifecycle(chat__req *r);
/* Message seq of conv as member me sees it (seq after its join): CHAT_OK with *out (copied),
 * or the request failed (ENOTFOUND not_found). */
int chat__txn_visible(chat__txn *tx, chat__req *r, int64_t conv, uint64_t seq,
                      const chat_store_member *me, chat_store_msg *out);

/* Media ids whose last reference went with an erasure: their blobs go once the transaction
 * committed (chat__blobs_remove). */
typedef struct chat__blobs {
    char (*ids)[CHAT_MEDIA_ID_MAX + 1];
    size_t n, cap;
} chat__blobs;
/* Erase message m (flag CHAT_STORE_MSG_DELETED or _EXPIRED): its body and, for media, its
 * reference; the texts its edits hold; its reactions. m is as read in this transaction.
 * CHAT_OK, else the store's code. [writer thread] */
int chat__txn_erase(chat__txn *tx, const chat_store_msg *m, unsigned int flag,
                    chat__blobs *blobs);
/* Remove the blobs of ids from the blob store off the loop (the hasher thread), then free
 * ids. [loop thread] */
void chat__blobs_remove(chat_server *srv, chat__blobs *blobs);
void chat__blobs_free(chat__blobs *b);

/* The key of a member's read watermark in a thread (store meta), and its longest size. */
#define CHAT__THREAD_KEY_MAX (3 + 21 + 21 + CHAT_ID_MAX + 1)
void chat__thread_read_key(char *buf, size_t size, int64_t conv, uint64_t root,
                           const char *user);

/* Request handlers. [loop thread] */
void chat__handle_edit(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_delete(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_react(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_conv_timer(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_search(chat__conn *c, cJSON *f, cJSON *re);
/* A receipt with "thread": my read watermark in that thread. */
void chat__handle_thread_receipt(chat__conn *c, cJSON *f, cJSON *re);

/* ---- expiry.c: the sweep [loop thread] ---- */
int chat__expiry_start(chat_server *srv);
void chat__expiry_stop(chat_server *srv);

/* ---- account.c ---- */
/* Load the deleted accounts (chat_server_new). */
int chat__deleted_load(chat_server *srv);
void chat__deleted_free(chat_server *srv);
/* CHAT_EAUTH when the identity's account was deleted after tok was issued (a host backend's
 * token: at any time). [any thread] */
int chat__deleted_check(chat_server *srv, const char *tok, size_t len,
                        const chat_auth_identity *id);

#endif
