/**
 * @file types.h
 * @brief Forward declarations of every opaque handle.
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

CHAT_END_DECLS

#endif /* CHAT_TYPES_H */
