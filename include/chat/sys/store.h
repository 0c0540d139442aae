/**
 * @file sys/store.h
 * @brief Storage backend vtable (backend-author API, stable per minor release).
 *
 * A store is a plain table store: the engine owns the rules (sequence assignment, dedupe,
 * authorization, watermarks) and drives the store inside transactions it opens with begin()
 * and closes with commit() or rollback(). Several operations from different clients share
 * one transaction (group commit), so a method failing inside a transaction must leave the
 * transaction usable for rollback(). A method answers CHAT_EAGAIN for a failure that may pass
 * (the backend's database out of reach or restarting, a transaction lost to a concurrent one):
 * the server then answers that transaction's requests EAGAIN/busy, retryable, not EIO/storage.
 *
 * Threading: every method of a host's store is called on the server's writer thread, never
 * concurrently. (The built-in memory store, which never blocks, is also called on the loop
 * thread while the writer is idle; still one call at a time.)
 * Strings passed in are borrowed for the call; strings reached through callbacks are
 * borrowed for the callback. A callback returning non-zero stops the iteration and the
 * method returns that value.
 */
#ifndef CHAT_SYS_STORE_H
#define CHAT_SYS_STORE_H

#include "../common.h"
#include "../types.h"

CHAT_BEGIN_DECLS

/** Longest group title, in bytes, without the NUL. */
#define CHAT_TITLE_MAX 256
/** Size of a stored password hash string (crypto_pwhash_STRBYTES), with the NUL. */
#define CHAT_PWHASH_MAX 128

/** chat_store_msg::flags: the body was erased because the message was deleted for everyone
 *  (or its author's account was deleted). @since 0.2 */
#define CHAT_STORE_MSG_DELETED 0x1u
/** chat_store_msg::flags: the body was erased because the message expired. @since 0.2 */
#define CHAT_STORE_MSG_EXPIRED 0x2u
/** Either of the two: the message is a tombstone (empty body, seq kept). @since 0.2 */
#define CHAT_STORE_MSG_ERASED (CHAT_STORE_MSG_DELETED | CHAT_STORE_MSG_EXPIRED)
/** chat_store_msg::flags: an edit (CHAT_MSG_EDIT) whose body is its target's current text and
 *  whose edited_ms is the target's last edit time; the engine rewrites every such edit of a
 *  target when it edits the target again, and empties them when it erases the target. An
 *  edit without it holds no text, or the text it replaced (CHAT_SERVER_KEEP_EDITS). A store
 *  keeps the flag as given, like the others. @since 0.2 */
#define CHAT_STORE_MSG_CURRENT 0x4u

typedef struct chat_store_conv {
    chat_conv_id id;       /**< assigned by conv_insert, > 0 */
    int kind;              /**< ::chat_conv_kind */
    uint64_t head_seq;     /**< last assigned message seq, 0 when empty */
    uint64_t change;       /**< inbox change counter at the last change */
    int64_t created_ms;
    int member_count;      /**< members whose role is not CHAT_ROLE_NONE */
    char title[CHAT_TITLE_MAX + 1];
    char dm_key[2 * CHAT_ID_MAX + 2]; /**< direct: the two user ids sorted, joined by '\n'; else "" */
    /* ---- version 5: only with a backend of version 5 or later (see the version-5 methods) */
    /** Disappearing messages: a message expires this long after it is stored; 0: never.
     *  Written by conv_insert and conv_update. @since 0.2 */
    int64_t msg_ttl_ms;
} chat_store_conv;

typedef struct chat_store_member {
    chat_conv_id conv;
    char user[CHAT_ID_MAX + 1];
    int role;               /**< ::chat_role */
    uint64_t delivered_seq; /**< watermark: delivered to a device of the user up to here */
    uint64_t read_seq;      /**< watermark: read up to here; never above delivered_seq */
    int64_t delivered_ms;   /**< when delivered_seq last moved */
    int64_t read_ms;        /**< when read_seq last moved */
    uint64_t joined_seq;    /**< conv head at join: the member sees seqs above it */
    uint64_t change;        /**< inbox change counter at the last change of this row */
} chat_store_member;

/** Longest reaction (an emoji: one or a few code points), in bytes, without the NUL. */
#define CHAT_REACTION_MAX 32

/** One user's reaction to one message. @since 0.2 */
typedef struct chat_store_reaction {
    chat_conv_id conv;
    uint64_t seq;
    char user[CHAT_ID_MAX + 1];
    char emoji[CHAT_REACTION_MAX + 1];
    int64_t ts_ms; /**< when it was put on */
} chat_store_reaction;

typedef struct chat_store_msg {
    chat_conv_id conv;
    uint64_t seq;
    int64_t ts_ms;          /**< server time of the append */
    const char *sender;     /**< user id */
    const char *device;     /**< sender's device id */
    const char *cmid;       /**< client message id, unique per (conv, sender, device) */
    int kind;               /**< ::chat_msg_kind */
    const char *body;       /**< not NUL-terminated */
    size_t body_len;
    /* ---- version 5: only with a backend of version 5 or later (see the version-5 methods) */
    /** Edit, delete, react: the message acted on; text and media: the message replied to;
     *  0: none. @since 0.2 */
    uint64_t target_seq;
    /** The root of the thread the message belongs to; 0: the main conversation. @since 0.2 */
    uint64_t thread_seq;
    int64_t edited_ms;      /**< when the body was last edited; 0: never. @since 0.2 */
    int64_t expires_ms;     /**< when the message expires (is erased); 0: never. @since 0.2 */
    /** CHAT_STORE_MSG_DELETED, CHAT_STORE_MSG_EXPIRED, CHAT_STORE_MSG_CURRENT. @since 0.2 */
    unsigned int flags;
    /* ---- version 6: only with a backend of version 6 or later (see version 6 below) */
    /** The message's reactions, as reaction_list() gives them (by emoji, then ts_ms, then
     *  user), filled by every method that hands over messages; valid during the callback.
     *  NULL when n_reactions is 0. msg_insert() and msg_update() ignore them: reactions are
     *  written through reaction_set() and reaction_clear() only. @since 0.2 */
    const chat_store_reaction *reactions;
    size_t n_reactions;     /**< how many; 0: none. @since 0.2 */
} chat_store_msg;

typedef struct chat_store_user {
    char name[CHAT_ID_MAX + 1];
    char pwhash[CHAT_PWHASH_MAX]; /**< crypto_pwhash_str output, or "" when none */
    int hide_last_seen;
    int64_t last_seen_ms;         /**< 0 when never seen */
    int64_t created_ms;
} chat_store_user;

/** Longest media id (lower-case hex of a 32-byte BLAKE2b hash), without the NUL. */
#define CHAT_MEDIA_ID_MAX 64
/** Longest media mime type or original file name, in bytes, without the NUL. */
#define CHAT_MEDIA_STR_MAX 255

/** Metadata of one stored media object (content-addressed: identical bytes, one row). */
typedef struct chat_store_media {
    char id[CHAT_MEDIA_ID_MAX + 1];       /**< content hash, lower-case hex */
    char uploader[CHAT_ID_MAX + 1];       /**< the first user who uploaded these bytes */
    char mime[CHAT_MEDIA_STR_MAX + 1];
    char name[CHAT_MEDIA_STR_MAX + 1];    /**< original file name, may be "" */
    uint64_t size;
    int64_t created_ms;
} chat_store_media;

/** Push platform of a device registration. */
typedef enum chat_push_platform {
    CHAT_PUSH_APNS = 1, /**< Apple Push Notification service: token in lower-case hex */
    CHAT_PUSH_FCM = 2   /**< Firebase Cloud Messaging: a registration token */
} chat_push_platform;

/** Longest push token, in bytes, without the NUL. */
#define CHAT_PUSH_TOKEN_MAX 512
/** Longest APNs topic (the app's bundle id), in bytes, without the NUL. */
#define CHAT_PUSH_TOPIC_MAX 255

/** One device's push registration: where a push for (user, device) goes. */
typedef struct chat_store_push_reg {
    char user[CHAT_ID_MAX + 1];
    char device[CHAT_ID_MAX + 1];
    int platform;                         /**< ::chat_push_platform */
    int sandbox;                          /**< APNs: 1 development environment, 0 production */
    char token[CHAT_PUSH_TOKEN_MAX + 1];  /**< a secret: never log it */
    char topic[CHAT_PUSH_TOPIC_MAX + 1];  /**< APNs topic, "" for the provider's default */
    int64_t updated_ms;                   /**< when the device last registered */
} chat_store_push_reg;

typedef int (*chat_store_msg_cb)(const chat_store_msg *msg, void *user_data);

typedef int (*chat_store_reaction_cb)(const chat_store_reaction *reaction, void *user_data);

/** A full-text search over some conversations (msg_search). @since 0.2 */
typedef struct chat_store_search {
    const char *text;       /**< the words to find, UTF-8; every word must occur */
    const chat_conv_id *convs;  /**< search these conversations only, */
    const uint64_t *after;  /**< and in convs[i] only messages with seq > after[i] */
    size_t n_convs;
    uint64_t before;        /**< only hits whose cursor is below this; 0: from the newest */
    int limit;              /**< at most this many hits */
} chat_store_search;

/** One search hit: the message as it is now, and the cursor that orders hits (newest stored
 *  first; a next page passes the last cursor as chat_store_search::before). @since 0.2 */
typedef int (*chat_store_hit_cb)(const chat_store_msg *msg, uint64_t cursor, void *user_data);
/** A deleted account: its name and when it was deleted. @since 0.2 */
typedef int (*chat_store_deleted_cb)(const char *name, int64_t deleted_ms, void *user_data);
/** One access grant of a media object: conv > 0 and user "" (shared in that conversation), or
 *  conv 0 and a user (an uploader). */
typedef int (*chat_store_grant_cb)(chat_conv_id conv, const char *user, void *user_data);
typedef int (*chat_store_member_cb)(const chat_store_member *member, void *user_data);
typedef int (*chat_store_name_cb)(const char *name, void *user_data);
typedef int (*chat_store_push_reg_cb)(const chat_store_push_reg *reg, void *user_data);

/**
 * The meta key of the engine's inbox change counter. The engine reads it (meta_get) first in
 * every write transaction, gives each conversation and member row it changes the next value
 * (a change above the value read), and writes the last value back (meta_set) just before
 * commit(). Clients are handed the value read at the start as their inbox cursor. A store
 * shared by several servers may renumber those rows when the counter is written back, so
 * that transactions commit in counter order (the PostgreSQL store does; see
 * chat_store_postgres_open()). @since 0.2
 */
#define CHAT_STORE_CHANGE_KEY "inbox_change"

#define CHAT_STORE_OPS_VERSION 6

struct chat_store_ops {
    unsigned int version; /**< CHAT_STORE_OPS_VERSION */
    void (*destroy)(void *state);

    /** Transactions. commit() returns only once the data is as durable as the backend promises. */
    int (*begin)(void *state);
    int (*commit)(void *state);
    int (*rollback)(void *state);

    /** Insert a conversation; sets conv->id. CHAT_EEXISTS when dm_key is taken. */
    int (*conv_insert)(void *state, chat_store_conv *conv);
    /** CHAT_ENOTFOUND when absent. */
    int (*conv_get)(void *state, chat_conv_id id, chat_store_conv *out);
    /** Find a direct conversation by dm_key; CHAT_ENOTFOUND when absent. */
    int (*conv_find_direct)(void *state, const char *dm_key, chat_store_conv *out);
    /** Overwrite title, head_seq, change and member_count of conv->id. */
    int (*conv_update)(void *state, const chat_store_conv *conv);

    /** CHAT_ENOTFOUND when the user never was a member. */
    int (*member_get)(void *state, chat_conv_id conv, const char *user, chat_store_member *out);
    /** Insert or overwrite the row (conv, user). */
    int (*member_put)(void *state, const chat_store_member *member);
    /** Members of conv ordered by user id; only_active skips CHAT_ROLE_NONE rows. */
    int (*member_list)(void *state, chat_conv_id conv, int only_active,
                       chat_store_member_cb cb, void *user_data);

    /** Insert a message; CHAT_EEXISTS when (conv, seq) or (conv, sender, device, cmid) exists. */
    int (*msg_insert)(void *state, const chat_store_msg *msg);
    /** Call cb once with the message of that client id; CHAT_ENOTFOUND when absent. */
    int (*msg_find_cmid)(void *state, chat_conv_id conv, const char *sender, const char *device,
                         const char *cmid, chat_store_msg_cb cb, void *user_data);
    /**
     * Messages with after_seq < seq < before_seq (before_seq 0: no upper bound), at most limit,
     * ascending, or descending from the upper end when descending is 1.
     */
    int (*msg_range)(void *state, chat_conv_id conv, uint64_t after_seq, uint64_t before_seq,
                     int limit, int descending, chat_store_msg_cb cb, void *user_data);

    /**
     * The user's membership rows (any role) whose inbox change is above since_change, ascending
     * by it (ties by conversation id), at most limit. The inbox change of a row is
     * max(row.change, conv.change), or row.change alone for a CHAT_ROLE_NONE row: a member who
     * left sees no change of the conversation after leaving.
     */
    int (*user_convs)(void *state, const char *user, uint64_t since_change, int limit,
                      chat_store_member_cb cb, void *user_data);
    /** Distinct users sharing an active conversation with user, the user excluded. */
    int (*contacts)(void *state, const char *user, chat_store_name_cb cb, void *user_data);

    /** CHAT_ENOTFOUND when absent. */
    int (*user_get)(void *state, const char *name, chat_store_user *out);
    /** Insert or overwrite. */
    int (*user_put)(void *state, const chat_store_user *user);

    /** Remember a revoked token session until exp_ms. */
    int (*revoked_put)(void *state, const char *session_id, int64_t exp_ms);
    /** Every remembered revoked session with exp_ms > now_ms. */
    int (*revoked_list)(void *state, int64_t now_ms,
                        int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                        void *user_data);

    /** Integer metadata by key; CHAT_ENOTFOUND when unset. */
    int (*meta_get)(void *state, const char *key, int64_t *value);
    int (*meta_set)(void *state, const char *key, int64_t value);

    /** Optional escape hatch; ops below 1000 are libchat's. Unknown ops: CHAT_ENOTSUP. */
    int (*ctl)(void *state, int op, void *arg);

    /* ---- version 2: media metadata (all optional together; without them the server
     *      refuses media uploads and URLs with CHAT_ENOTSUP) ---- */

    /** Insert media metadata; CHAT_EEXISTS (and no change) when the id exists. @since 0.2 */
    int (*media_put)(void *state, const chat_store_media *media);
    /** CHAT_ENOTFOUND when absent. @since 0.2 */
    int (*media_get)(void *state, const char *id, chat_store_media *out);
    /** Record a grant (see ::chat_store_grant_cb); an existing grant is kept. @since 0.2 */
    int (*media_grant)(void *state, const char *id, chat_conv_id conv, const char *user);
    /** Every grant of id, ordered by conv then user. @since 0.2 */
    int (*media_grants)(void *state, const char *id, chat_store_grant_cb cb, void *user_data);

    /* ---- version 3: push registrations and mutes (all optional together; without them the
     *      server refuses push_register, push_unregister and mute with CHAT_ENOTSUP, and a push
     *      notifier gets user events only, as with version 1) ---- */

    /** Insert or overwrite the registration (reg->user, reg->device). @since 0.2 */
    int (*push_reg_put)(void *state, const chat_store_push_reg *reg);
    /** Delete the registration (user, device); CHAT_ENOTFOUND when absent. @since 0.2 */
    int (*push_reg_del)(void *state, const char *user, const char *device);
    /** Delete every registration holding (platform, token); CHAT_OK when there was none.
     *  @since 0.2 */
    int (*push_reg_del_token)(void *state, int platform, const char *token);
    /** The user's registrations, ordered by device. @since 0.2 */
    int (*push_reg_list)(void *state, const char *user, chat_store_push_reg_cb cb,
                         void *user_data);
    /** Mute conv for user until until_ms (INT64_MAX: until unmuted); until_ms 0 unmutes.
     *  @since 0.2 */
    int (*push_mute_put)(void *state, const char *user, chat_conv_id conv, int64_t until_ms);
    /** The mute's until_ms; CHAT_ENOTFOUND when user never muted conv or unmuted it.
     *  @since 0.2 */
    int (*push_mute_get)(void *state, const char *user, chat_conv_id conv, int64_t *until_ms);

    /* ---- version 4: lock order, for stores several servers write at once (optional) ---- */

    /**
     * Lock the conversations ids[0..n) (n > 0, ascending, distinct) until the transaction
     * ends, as conv_get in a transaction does in a store that locks what it reads; an id with
     * no conversation is skipped. The engine calls it first in a batch with the conversations
     * its requests name, so that two servers' batches take the conversations they share in
     * the same order and never wait for each other in a cycle (a deadlock, which such a store
     * answers CHAT_EAGAIN). Only in a transaction. Without it, conversations are locked as
     * they are read. @since 0.2
     */
    int (*lock_convs)(void *state, const chat_conv_id *ids, size_t n);

    /* ---- version 5: message lifecycle (edits, deletes, reactions, replies, threads,
     *      expiry), full-text search and account deletion. All optional together: without
     *      them the server answers those requests with CHAT_ENOTSUP. The fields of version 5
     *      in chat_store_conv and chat_store_msg are written and read only through a backend
     *      of version 5 or later; for an older one libchat zeroes them in what it reads.
     *
     *      Erasure: msg_update() and media_delete() must not leave the bytes they replace
     *      readable in the store (free pages, journals, search indexes); doc/security.md says
     *      what the built-in stores guarantee. ---- */

    /** Call cb once with message (conv, seq); CHAT_ENOTFOUND when absent. @since 0.2 */
    int (*msg_get)(void *state, chat_conv_id conv, uint64_t seq, chat_store_msg_cb cb,
                   void *user_data);
    /**
     * Overwrite the kind, body, flags, edited_ms and expires_ms of message (msg->conv,
     * msg->seq); its sender, device, cmid, ts, target_seq and thread_seq stay. The search
     * index follows: an erased message (CHAT_STORE_MSG_ERASED) is found no more, an edited
     * one by its new text only. CHAT_ENOTFOUND when absent. @since 0.2
     */
    int (*msg_update)(void *state, const chat_store_msg *msg);
    /** Messages of this kind whose target_seq is target_seq, ascending by seq. @since 0.2 */
    int (*msg_related)(void *state, chat_conv_id conv, uint64_t target_seq, int kind,
                       chat_store_msg_cb cb, void *user_data);
    /** As msg_range, over the messages of thread thread_seq (its replies; not the root). @since 0.2 */
    int (*msg_thread)(void *state, chat_conv_id conv, uint64_t thread_seq, uint64_t after_seq,
                      uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                      void *user_data);
    /**
     * Into *out, how many messages with after_seq < seq <= upto_seq count as unread: kind
     * text, media or event, not erased, in thread thread_seq (0: the main conversation, the
     * messages whose thread_seq is 0). @since 0.2
     */
    int (*msg_count)(void *state, chat_conv_id conv, uint64_t thread_seq, uint64_t after_seq,
                     uint64_t upto_seq, uint64_t *out);
    /** Messages not erased with 0 < expires_ms <= now_ms, by expires_ms then conv and seq,
     *  at most limit. @since 0.2 */
    int (*msg_expired)(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                       void *user_data);
    /** Messages of sender in conv, not erased, with seq > after_seq, ascending, at most
     *  limit. @since 0.2 */
    int (*msg_by_sender)(void *state, chat_conv_id conv, const char *sender, uint64_t after_seq,
                         int limit, chat_store_msg_cb cb, void *user_data);
    /**
     * Full-text search (see ::chat_store_search): the text messages whose text, and the media
     * messages whose file name, hold every word of q->text, not erased, newest stored first.
     * What a word is (case, accents) is the backend's; a query without words finds nothing.
     * @since 0.2
     */
    int (*msg_search)(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                      void *user_data);
    /** Put user's reaction emoji on message (conv, seq) (on 1; CHAT_EEXISTS and no change
     *  when it is there) or take it off (on 0; CHAT_ENOTFOUND when it is not). @since 0.2 */
    int (*reaction_set)(void *state, const chat_store_reaction *reaction, int on);
    /** Reactions to the messages after_seq < seq < before_seq (before_seq 0: no upper bound),
     *  ordered by seq, emoji, ts_ms, user. @since 0.2 */
    int (*reaction_list)(void *state, chat_conv_id conv, uint64_t after_seq, uint64_t before_seq,
                         chat_store_reaction_cb cb, void *user_data);
    /** Remove the reactions to message seq of conv (0: to every message) by user ("": by
     *  everyone). @since 0.2 */
    int (*reaction_clear)(void *state, chat_conv_id conv, uint64_t seq, const char *user);
    /** Remove name's account row, if any, and remember that the account was deleted at
     *  deleted_ms (a later deletion overwrites the time). @since 0.2 */
    int (*user_delete)(void *state, const char *name, int64_t deleted_ms);
    /** Every remembered account deletion, by name. @since 0.2 */
    int (*user_deleted)(void *state, chat_store_deleted_cb cb, void *user_data);
    /** Add delta (+1, -1) to the count of messages that refer to media id and put the new
     *  count in *refs_out (may be NULL). CHAT_ENOTFOUND when the media is unknown. @since 0.2 */
    int (*media_refs)(void *state, const char *id, int delta, int64_t *refs_out);
    /** Forget media id: its metadata and grants. CHAT_ENOTFOUND when unknown. @since 0.2 */
    int (*media_delete)(void *state, const char *id);

    /* ---- version 6: a message's reactions come with its row. No new method: a backend of
     *      version 6 (with the version-5 methods) fills chat_store_msg::reactions and
     *      n_reactions in every message it hands over (msg_find_cmid, msg_range, msg_get,
     *      msg_related, msg_thread, msg_expired, msg_by_sender, msg_search), as
     *      reaction_list() over that one message would give them, so that a history page is
     *      one read; reaction_set() and reaction_clear() keep what the rows show in step.
     *      For an older backend libchat zeroes those fields in what it reads and asks
     *      reaction_list() for a page's reactions. An erased message's reactions are
     *      cleared (reaction_clear()) like its body: no copy of them may stay readable. ---- */
};

/** Flags of chat_store_sqlite_open(). */
#define CHAT_STORE_SQLITE_SYNC_FULL 0x1u /**< fsync the WAL at every commit (power-loss safe) */
/**
 * Checkpoint the WAL inside the committing call (SQLite's auto-checkpoint, every ~1000 pages)
 * instead of from the store's checkpoint thread. Slower under load; every file operation then
 * happens on the caller's thread, in a repeatable order (for fault-injection VFSes). @since 0.2
 */
#define CHAT_STORE_SQLITE_INLINE_CHECKPOINT 0x2u

/**
 * Open (creating or migrating) the SQLite store at path. WAL mode; synchronous=NORMAL unless
 * CHAT_STORE_SQLITE_SYNC_FULL. vfs may be NULL (the default VFS); tests pass a fault shim.
 * The store reaches vfs through a thin shim of its own that gathers the WAL appends of each
 * commit into one write (of at most 124 KiB per call), written before the commit returns:
 * a VFS sees few large WAL writes where SQLite alone makes two per page.
 * Unless CHAT_STORE_SQLITE_INLINE_CHECKPOINT, a file database gets a checkpoint thread with
 * its own connection (through the same vfs): commits wake it once the WAL has grown by ~1000
 * pages, and it runs a PASSIVE checkpoint, so a commit does not wait for the checkpoint's
 * fsyncs. If the WAL still reaches ~16000 pages (checkpoints never catch up with the commits,
 * so it cannot restart), the committing call checkpoints the rest itself. The thread is joined,
 * and the WAL checkpointed, when the store is destroyed.
 * @param state_out receives the state for chat_store_sqlite_ops(); owned by the caller until
 *        registered, then by libchat.
 * @return CHAT_OK, CHAT_EIO (cannot open), CHAT_EVERSION (schema newer than this library).
 * [any thread] @since 0.1
 */
CHAT_API int chat_store_sqlite_open(void **state_out, const char *path, unsigned int flags,
                                    const char *vfs);
/** The SQLite store's vtable, static. @since 0.1 */
CHAT_API const chat_store_ops *chat_store_sqlite_ops(void);
/**
 * Rewrite the SQLite store at path page by page (SQLite's VACUUM) and empty its WAL, so that
 * nothing an erasure removed survives in the unused space of the file's pages (a b-tree
 * rebalance can leave a moved cell's old bytes there; doc/security.md, "Erasure"). Run it with
 * no server on the store: a running server's commits wait for it, and fail after the store's
 * busy timeout. Needs free space about the size of the database while it runs.
 * @return CHAT_OK, CHAT_ENOTFOUND (no file at path), CHAT_EIO (cannot open or rewrite it; the
 * store is unchanged). [any thread] @since 0.2
 */
CHAT_API int chat_store_sqlite_vacuum(const char *path);

/**
 * Open the PostgreSQL store: a database several servers may share (a cluster of chat nodes).
 * conninfo is a libpq connection string or URI ("host=db port=5432 dbname=chat user=chat",
 * "postgresql://chat@db/chat"); libpq's environment variables (PGHOST, PGPASSWORD, ...) and
 * ~/.pgpass apply as usual. The store creates or migrates its tables on the first connection;
 * give it a database of its own, or a schema of its own through search_path
 * ("options=-csearch_path=chat", the schema created beforehand).
 *
 * What it adds to the vtable's contract, for servers sharing the database:
 * - conv_get and conv_find_direct in a transaction lock the conversation's row until the
 *   transaction ends: the head_seq read is the latest committed and no other server appends
 *   to that conversation meanwhile, so seqs are gap-free and unique across servers, and a
 *   rolled-back transaction takes none;
 * - meta_get in a transaction locks its key until the transaction ends, so a counter read and
 *   written back in one transaction loses no update to another server;
 * - but the inbox change counter (#CHAT_STORE_CHANGE_KEY) is read without a lock, and the
 *   rows given changes above the value read are remembered. meta_set of the counter in that
 *   transaction takes the key's lock, adds the changes counted to the counter as committed by
 *   then, and moves those rows up past every change committed since the read (sent with the
 *   next call, in practice the COMMIT; the lock ends with the transaction). Servers thus
 *   write their transactions at once, commit them in counter order (a reader that sees the
 *   counter at some value sees every change up to it, and none at or below it commits
 *   later), and serialise only the end of each. A value below the one read is refused
 *   (CHAT_EINVAL);
 * - lock_convs locks its conversations in id order in one statement, sent with the next call;
 * - a call answers CHAT_EAGAIN when the database cannot be reached, went away (a restart, a
 *   failover) or chose this transaction as a deadlock victim; the transaction is then lost
 *   (rollback() ends it) and the next one reconnects, with a backoff of 50 ms doubling to 2 s
 *   between failed attempts. A COMMIT cut off by a lost connection answers CHAT_EAGAIN though
 *   it may have committed;
 * - in a transaction, writes that answer nothing but success (conv_update, member_put,
 *   meta_set, ...) travel with the next call that reads, in one round trip (libpq's pipeline
 *   mode); a failure of one of them, or conv_update of a conversation that has no row
 *   (CHAT_ENOTFOUND), is answered by that next call or commit() and fails the transaction.
 * Durability is the server's (synchronous_commit, replication): commit() returns when
 * PostgreSQL reports the COMMIT done.
 * @param state_out receives the state for chat_store_postgres_ops(); owned by the caller until
 *        registered, then by libchat.
 * @param flags 0 (none defined yet).
 * @return CHAT_OK; CHAT_EAGAIN (cannot connect), CHAT_EVERSION (the database's schema is newer
 *         than this library's: a newer libchat migrated it), CHAT_EIO (the schema cannot be
 *         created or migrated), CHAT_ENOTSUP (libchat was built without PostgreSQL support).
 *         chat_error_last() says why, with the SQLSTATE in the message and, packed as
 *         PostgreSQL's MAKE_SQLSTATE does, in backend_code.
 * [any thread] @since 0.2
 */
CHAT_API int chat_store_postgres_open(void **state_out, const char *conninfo, unsigned int flags);
/** The PostgreSQL store's vtable, static; NULL when libchat was built without it. @since 0.2 */
CHAT_API const chat_store_ops *chat_store_postgres_ops(void);

/** A store in memory, for tests and ephemeral servers. @return CHAT_OK, CHAT_ENOMEM. @since 0.1 */
CHAT_API int chat_store_memory_new(void **state_out);
/** The memory store's vtable, static. @since 0.1 */
CHAT_API const chat_store_ops *chat_store_memory_ops(void);

CHAT_END_DECLS

#endif /* CHAT_SYS_STORE_H */
