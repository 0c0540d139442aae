/* Internals of the memory store, shared by memory.c (lifecycle, transactions, undo log) and
 * memory_tables.c (row methods).
 *
 * Layout: conversations live in a hash by id, and each owns its members (sorted by user) and
 * its messages (sorted by seq, so a range is a binary search plus a walk). People are hashed
 * by name and list their memberships, for user_convs and contacts. Messages with a client id
 * are also hashed by (conv, sender, device, cmid). Conversation and person records are never
 * freed before destroy, so other records may point at them. */
#ifndef CHAT_STORE_MEMORY_INTERNAL_H
#define CHAT_STORE_MEMORY_INTERNAL_H

#include "chat/sys/store.h"
#include "store/check.h"
#include "store/hmap.h"

struct chat__mmember;
struct chat__mmsg;
struct chat__mreg;

struct chat__mreact;

typedef struct chat__mconv {
    uint64_t saved_gen; /* transaction whose undo log already holds the old row */
    int present;        /* the conversation row exists: members and messages may come first */
    chat_store_conv row; /* row.id is the key even while absent */
    struct chat__mmember **members; /* sorted by user */
    size_t n_members, cap_members;
    struct chat__mmsg **msgs; /* sorted by seq */
    size_t n_msgs, cap_msgs;
    struct chat__mreact **reacts; /* sorted by seq, emoji, ts_ms, user */
    size_t n_reacts, cap_reacts;
} chat__mconv;

typedef struct chat__mperson {
    uint64_t saved_gen;
    int has_user;         /* user_put stored a row; else only memberships name this person */
    chat_store_user user; /* user.name is the key even without a row */
    struct chat__mmember **convs; /* memberships, unordered */
    size_t n_convs, cap_convs;
    struct chat__mreg **regs; /* push registrations, sorted by device, deleted ones included */
    size_t n_regs, cap_regs;
} chat__mperson;

/* A push registration. A deleted one stays in its person's list, absent, so that undoing the
 * deletion only flips the flag back. */
typedef struct chat__mreg {
    uint64_t saved_gen;
    chat__mperson *person;
    struct chat__mreg_val {
        int present;
        chat_store_push_reg row;
    } v;
} chat__mreg;

typedef struct chat__mmember {
    uint64_t saved_gen;
    chat__mconv *conv;
    chat__mperson *person;
    chat_store_member row;
} chat__mmember;

/* One allocation per message: the header, then "sender\0device\0cmid\0" and the body. An
 * update replaces the allocation (the old one is wiped when it is freed). */
typedef struct chat__mmsg {
    int64_t conv;
    uint64_t seq;
    int64_t ts_ms;
    uint64_t hash; /* of the dedupe key */
    size_t body_len;
    int kind;
    int has_cmid;
    unsigned char sender_len, device_len, cmid_len;
    uint64_t target_seq, thread_seq;
    int64_t edited_ms, expires_ms;
    unsigned int flags;
    uint64_t sid; /* order of storing, store-wide: the search cursor */
    char data[];
} chat__mmsg;

/* One user's reaction to one message. */
typedef struct chat__mreact {
    chat_store_reaction row;
} chat__mreact;

/* A string key with an integer value: meta rows and revoked sessions. */
typedef struct chat__mkv {
    uint64_t saved_gen;
    uint64_t hash;
    int64_t value;
    char key[];
} chat__mkv;

/* Media metadata, hashed by id. */
typedef struct chat__mmedia {
    uint64_t hash;
    int64_t refs; /* messages that refer to it */
    chat_store_media row;
} chat__mmedia;

enum chat__undo_op {
    CHAT__U_CONV_INSERT,   /* obj: mconv; i: previous max_conv_id */
    CHAT__U_CONV_UPDATE,   /* obj: mconv; old: chat_store_conv */
    CHAT__U_MEMBER_INSERT, /* obj: mmember */
    CHAT__U_MEMBER_UPDATE, /* obj: mmember; old: chat_store_member */
    CHAT__U_MSG_INSERT,    /* obj: mmsg */
    CHAT__U_USER_INSERT,   /* obj: mperson */
    CHAT__U_USER_UPDATE,   /* obj: mperson; old: chat_store_user */
    CHAT__U_REVOKED_INSERT, /* obj: mkv */
    CHAT__U_META_INSERT,   /* obj: mkv */
    CHAT__U_KV_UPDATE,     /* obj: mkv; i: old value */
    CHAT__U_MEDIA_INSERT,  /* obj: mmedia */
    CHAT__U_GRANT_INSERT,  /* obj: mkv */
    CHAT__U_REG_INSERT,    /* obj: mreg */
    CHAT__U_REG_UPDATE,    /* obj: mreg; old: struct chat__mreg_val */
    CHAT__U_MUTE_INSERT,   /* obj: mkv */
    CHAT__U_MSG_UPDATE,    /* obj: mmsg (the new one); old: mmsg (the replaced one, wiped when
                            * the log lets go of it) */
    CHAT__U_REACT_INSERT,  /* obj: mreact */
    CHAT__U_REACT_DELETE,  /* obj: mreact (out of its conversation); i: conv */
    CHAT__U_USER_DELETE,   /* obj: mperson; old: chat_store_user */
    CHAT__U_DELETED_INSERT, /* obj: mkv */
    CHAT__U_MEDIA_REFS,    /* obj: mmedia; i: old refs */
    CHAT__U_MEDIA_DELETE,  /* obj: mmedia (out of the map) */
    CHAT__U_GRANT_DELETE   /* obj: mkv (out of the map) */
};

typedef struct chat__undo {
    int op;
    void *obj;
    void *old; /* heap copy of the row before the first change in this transaction */
    int64_t i;
} chat__undo;

typedef struct chat__mem {
    chat__hmap convs;   /* id -> mconv */
    chat__hmap dm;      /* dm_key -> mconv (present, direct) */
    chat__hmap people;  /* name -> mperson */
    chat__hmap cmids;   /* (conv, sender, device, cmid) -> mmsg */
    chat__hmap revoked; /* session id -> mkv */
    chat__hmap meta;    /* key -> mkv */
    chat__hmap media;   /* id -> mmedia */
    chat__hmap grants;  /* "id\nconv\nuser" -> mkv (value: conv) */
    chat__hmap deleted; /* deleted account name -> mkv (value: when) */
    chat__hmap mutes;   /* "user\nconv" -> mkv (value: until_ms, 0 when unmuted) */
    int64_t max_conv_id; /* conv_insert assigns max + 1, as SQLite's rowid does */
    uint64_t next_sid;   /* the next message's sid */

    int in_tx;
    /* Bumped at each begin(): a record whose saved_gen equals it was already logged (or was
     * created) in this transaction, so later changes need no more undo entries. */
    uint64_t tx_gen;
    chat__undo *log;
    size_t n_log, cap_log;

    /* Sort buffer of the iterators; one is enough as they do not nest (the checking layer
     * refuses an iterator from inside a row callback). */
    void **scratch;
    size_t cap_scratch;
} chat__mem;

/* Make room for one undo entry (CHAT_OK or CHAT_ENOMEM); a no-op outside transactions. */
int chat__mem_undo_reserve(chat__mem *s);
/* Log a change; room was reserved. Outside a transaction, frees old and logs nothing. */
void chat__mem_undo_push(chat__mem *s, int op, void *obj, void *old, int64_t i);
/* Before updating a record stamped saved_gen: when this transaction has not logged it yet,
 * copy its row (size bytes) to *old, reserve the undo entry and stamp the record; else *old is
 * NULL. CHAT_OK or CHAT_ENOMEM (nothing changed). */
int chat__mem_save_old(chat__mem *s, uint64_t *saved_gen, const void *row, size_t size,
                       void **old);

/* Grow an array of elem-sized items to hold at least need; returns the (maybe moved) array,
 * or NULL when out of memory, leaving the old one intact. */
void *chat__mem_grow(void *items, size_t *cap, size_t need, size_t elem);

/* Lookups and removals shared with the undo log. */
chat__mconv *chat__mem_conv(const chat__mem *s, int64_t id);
uint64_t chat__mem_str_hash(const char *str);
size_t chat__mem_member_pos(const chat__mconv *c, const char *user, int *found);
size_t chat__mem_msg_pos(const chat__mconv *c, uint64_t seq, int *found);
/* Where reaction r sits (or would sit) in c->reacts, and whether one with the same seq, emoji
 * and user is there (*found: its index). */
size_t chat__mem_react_pos(const chat__mconv *c, const chat_store_reaction *r, int *found,
                           size_t *at);
/* Free a message, its bytes wiped first (a replaced or erased body leaves no copy). */
void chat__mem_msg_free_wiped(chat__mmsg *m);
/* Put m in the place of old (same conversation and seq) in the conversation and the dedupe
 * map; old is not freed. */
void chat__mem_msg_replace(chat__mem *s, chat__mmsg *old, chat__mmsg *m);

/* Shared by memory_tables.c and memory_life.c. */
void chat__mem_msg_view(const chat__mmsg *m, chat_store_msg *v);
/* Pass m to cb as a row, with its reactions. */
int chat__mem_emit_msg(const chat__mem *s, const chat__mmsg *m, chat_store_msg_cb cb,
                       void *user_data);
/* Point v's reactions at a copy of those of message (v->conv, v->seq), in r (free it with
 * chat__store_reacts_free once v is used). CHAT_OK, CHAT_ENOMEM. */
int chat__mem_msg_reacts(const chat__mem *s, chat_store_msg *v, chat__store_reacts *r);
int chat__mem_grow_scratch(chat__mem *s, size_t need);
const char *chat__mem_msg_body(const chat__mmsg *m);
int chat__mem_kv_put(chat__mem *s, chat__hmap *map, int insert_op, const char *key,
                     int64_t value);
int chat__mem_eq_kv(const void *item, const void *key);
int chat__mem_eq_media(const void *item, const void *key);
chat__mperson *chat__mem_person(const chat__mem *s, const char *name);

/* Row methods (memory_tables.c). */
int chat__mem_conv_insert(void *state, chat_store_conv *conv);
int chat__mem_conv_get(void *state, int64_t id, chat_store_conv *out);
int chat__mem_conv_find_direct(void *state, const char *dm_key, chat_store_conv *out);
int chat__mem_conv_update(void *state, const chat_store_conv *conv);
int chat__mem_member_get(void *state, int64_t conv, const char *user, chat_store_member *out);
int chat__mem_member_put(void *state, const chat_store_member *member);
int chat__mem_member_list(void *state, int64_t conv, int only_active, chat_store_member_cb cb,
                          void *user_data);
int chat__mem_msg_insert(void *state, const chat_store_msg *msg);
int chat__mem_msg_find_cmid(void *state, int64_t conv, const char *sender, const char *device,
                            const char *cmid, chat_store_msg_cb cb, void *user_data);
int chat__mem_msg_range(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                        int limit, int descending, chat_store_msg_cb cb, void *user_data);
int chat__mem_user_convs(void *state, const char *user, uint64_t since_change, int limit,
                         chat_store_member_cb cb, void *user_data);
int chat__mem_contacts(void *state, const char *user, chat_store_name_cb cb, void *user_data);
int chat__mem_user_get(void *state, const char *name, chat_store_user *out);
int chat__mem_user_put(void *state, const chat_store_user *user);
int chat__mem_revoked_put(void *state, const char *session_id, int64_t exp_ms);
int chat__mem_revoked_list(void *state, int64_t now_ms,
                           int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                           void *user_data);
int chat__mem_meta_get(void *state, const char *key, int64_t *value);
int chat__mem_meta_set(void *state, const char *key, int64_t value);
int chat__mem_media_put(void *state, const chat_store_media *m);
int chat__mem_media_get(void *state, const char *id, chat_store_media *out);
int chat__mem_media_grant(void *state, const char *id, int64_t conv, const char *user);
int chat__mem_media_grants(void *state, const char *id, chat_store_grant_cb cb, void *user_data);
int chat__mem_push_reg_put(void *state, const chat_store_push_reg *reg);
int chat__mem_push_reg_del(void *state, const char *user, const char *device);
int chat__mem_push_reg_del_token(void *state, int platform, const char *token);
int chat__mem_push_reg_list(void *state, const char *user, chat_store_push_reg_cb cb,
                            void *user_data);
int chat__mem_push_mute_put(void *state, const char *user, int64_t conv, int64_t until_ms);
int chat__mem_push_mute_get(void *state, const char *user, int64_t conv, int64_t *until_ms);
/* Position of device in p's registrations, or where it would go (*found 0). */
size_t chat__mem_reg_pos(const chat__mperson *p, const char *device, int *found);

/* Version 5 (memory_life.c). */
int chat__mem_msg_get(void *state, int64_t conv, uint64_t seq, chat_store_msg_cb cb,
                      void *user_data);
int chat__mem_msg_update(void *state, const chat_store_msg *msg);
int chat__mem_msg_related(void *state, int64_t conv, uint64_t target_seq, int kind,
                          chat_store_msg_cb cb, void *user_data);
int chat__mem_msg_thread(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                         uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                         void *user_data);
int chat__mem_msg_count(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                        uint64_t upto_seq, uint64_t *out);
int chat__mem_msg_expired(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                          void *user_data);
int chat__mem_msg_by_sender(void *state, int64_t conv, const char *sender, uint64_t after_seq,
                            int limit, chat_store_msg_cb cb, void *user_data);
int chat__mem_msg_search(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                         void *user_data);
int chat__mem_reaction_set(void *state, const chat_store_reaction *r, int on);
int chat__mem_reaction_list(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                            chat_store_reaction_cb cb, void *user_data);
int chat__mem_reaction_clear(void *state, int64_t conv, uint64_t seq, const char *user);
int chat__mem_user_delete(void *state, const char *name, int64_t deleted_ms);
int chat__mem_user_deleted(void *state, chat_store_deleted_cb cb, void *user_data);
int chat__mem_media_refs(void *state, const char *id, int delta, int64_t *refs_out);
int chat__mem_media_delete(void *state, const char *id);

#endif
