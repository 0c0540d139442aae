/* Argument checks, used by the checking layer (store/checked.c) for every backend, and
 * bounded copies shared by the backends. The checks run once, in the checking layer: the
 * backends never call them and may assume arguments that pass them. */
#ifndef CHAT_STORE_CHECK_H
#define CHAT_STORE_CHECK_H

#include "chat/sys/store.h"

#include <stddef.h>
#include <stdint.h>

/* Longest meta key or revoked session id, in bytes: neither lands in a fixed array, the bound
 * only stops a caller bug from filling the store with megabyte keys. */
#define CHAT__STORE_KEY_MAX 255

/* s is non-NULL, at most max bytes, and non-empty unless allow_empty. CHAT_EINVAL otherwise. */
int chat__store_check_str(const char *s, size_t max, int allow_empty, const char *what);
/* The fixed array field (size bytes) holds a NUL, and is non-empty unless allow_empty. */
int chat__store_check_field(const char *field, size_t size, int allow_empty, const char *what);
/* Unsigned counters are stored as SQLite integers, so both backends cap them at INT64_MAX. */
int chat__store_check_u64(uint64_t v, const char *what);

int chat__store_check_conv(const chat_store_conv *c, int with_dm_key);
int chat__store_check_member(const chat_store_member *m);
int chat__store_check_msg(const chat_store_msg *m);
int chat__store_check_user(const chat_store_user *u);

/* One listing callback of any of the store's shapes, with its user_data: the backends pass
 * their rows to it through one loop each. */
typedef struct chat__store_sink {
    union {
        chat_store_msg_cb msg;
        chat_store_member_cb member;
        chat_store_name_cb name;
        int (*revoked)(const char *session_id, int64_t exp_ms, void *user_data);
        chat_store_grant_cb grant;
        chat_store_push_reg_cb reg;
        chat_store_reaction_cb reaction;
        chat_store_deleted_cb deleted;
    } cb;
    void *user_data;
} chat__store_sink;

/* Copy len bytes of src into dst[size], truncating and always NUL-terminating. */
void chat__store_copy(char *dst, size_t size, const char *src, size_t len);

/* A message's client id, or NULL when it has none (NULL and "" both mean none). */
static inline const char *chat__store_cmid(const chat_store_msg *m)
{
    return m->cmid && m->cmid[0] ? m->cmid : NULL;
}

/* A message's reactions in the text form the SQL stores keep with its row (or build in the
 * query that reads it): per reaction "<bytes of user>:<user><bytes of emoji>:<emoji><ts_ms>;",
 * in the order of chat_store_msg::reactions. Decoded into local when they fit, else onto the
 * heap (chat__store_reacts_free). */
#define CHAT__STORE_REACTS_LOCAL 8
typedef struct chat__store_reacts {
    chat_store_reaction *v;
    size_t n;
    chat_store_reaction local[CHAT__STORE_REACTS_LOCAL];
} chat__store_reacts;

/* Decode len bytes of s (NULL or len 0: none) as the reactions of message (conv, seq) into r,
 * and point m's reactions at them. CHAT_OK, CHAT_ENOMEM, CHAT_EIO (not that form). */
int chat__store_reacts_decode(chat__store_reacts *r, chat_store_msg *m, const char *s,
                              size_t len);
void chat__store_reacts_free(chat__store_reacts *r);

#endif
