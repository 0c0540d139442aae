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

CHAT_END_DECLS

#endif /* CHAT_TYPES_H */
