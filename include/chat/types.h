/**
 * @file types.h
 * @brief Forward declarations of every opaque handle and backend vtable, and the ids, limits
 * and enumerations shared by the server, the client and the backend headers in sys/.
 *
 * The backend vtables are only named here; their members are in the sys/ headers, which a
 * host includes when it registers or writes a backend.
 */
#ifndef CHAT_TYPES_H
#define CHAT_TYPES_H

#include "common.h"

CHAT_BEGIN_DECLS

typedef struct chat_server chat_server;
typedef struct chat_server_config chat_server_config;
typedef struct chat_client chat_client;
typedef struct chat_client_config chat_client_config;
typedef struct chat_event chat_event;
typedef struct chat_conv_list chat_conv_list;
typedef struct chat_msg_list chat_msg_list;
typedef struct chat_stats chat_stats;

/* Backend vtables, defined in sys/store.h, sys/bus.h, sys/push.h, sys/blob.h, sys/auth.h and
 * sys/client_transport.h. */
typedef struct chat_store_ops chat_store_ops;
typedef struct chat_bus_ops chat_bus_ops;
typedef struct chat_push_ops chat_push_ops;
typedef struct chat_blob_ops chat_blob_ops;
typedef struct chat_auth_ops chat_auth_ops;
typedef struct chat_client_transport_ops chat_client_transport_ops;

/**
 * A conversation id: assigned by the server's store, > 0; 0 means "none" (a message sent to a
 * user before the server named the conversation). Signed 64-bit so that every store and every
 * binding (Java's long, SQLite's and PostgreSQL's integers) holds it unchanged. @since 0.2
 */
typedef int64_t chat_conv_id;

/** Longest user id, device id, session id or client message id, in bytes, without the NUL. */
#define CHAT_ID_MAX 64

/**
 * Wall-clock milliseconds since the Unix epoch; see chat_server_config_set_clock() and
 * chat_clock_real_ms() in sys/clock.h. [any thread]
 */
typedef int64_t (*chat_clock_fn)(void *user_data);

/** Kinds of conversation; chat_conv_list_kind(). */
typedef enum chat_conv_kind {
    CHAT_CONV_DIRECT = 1, /**< exactly two users, one conversation per pair */
    CHAT_CONV_GROUP = 2
} chat_conv_kind;

/** A member's role in a conversation; chat_conv_list_role(), chat_client_group_set_role(). */
typedef enum chat_role {
    CHAT_ROLE_NONE = 0,   /**< left or removed: the row stays for sync */
    CHAT_ROLE_MEMBER = 1,
    CHAT_ROLE_ADMIN = 2,
    CHAT_ROLE_OWNER = 3
} chat_role;

/** Kinds of message; chat_event_kind(), chat_msg_list_kind(). */
typedef enum chat_msg_kind {
    CHAT_MSG_TEXT = 1,  /**< body is UTF-8 text */
    CHAT_MSG_MEDIA = 2, /**< body is a JSON object: the media reference */
    CHAT_MSG_EVENT = 3, /**< body is a JSON object: a membership or title change */
    /** An edit of the message target_seq: body empty, or, when the server keeps edit history,
     *  the text the edit replaced. @since 0.2 */
    CHAT_MSG_EDIT = 4,
    /** A delete for everyone of the message target_seq: body empty. @since 0.2 */
    CHAT_MSG_DELETE = 5,
    /** A reaction toggled on the message target_seq: body a JSON object {"emoji","on"}.
     *  @since 0.2 */
    CHAT_MSG_REACT = 6
} chat_msg_kind;

CHAT_END_DECLS

#endif /* CHAT_TYPES_H */
