/**
 * @file types.h
 * @brief Forward declarations of every opaque handle, and the id types shared by the server,
 * the client and the backend vtables.
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

/**
 * A conversation id: assigned by the server's store, > 0; 0 means "none" (a message sent to a
 * user before the server named the conversation). Signed 64-bit so that every store and every
 * binding (Java's long, SQLite's and PostgreSQL's integers) holds it unchanged. @since 0.2
 */
typedef int64_t chat_conv_id;

CHAT_END_DECLS

#endif /* CHAT_TYPES_H */
