/**
 * @file chat.h
 * @brief Umbrella header: the whole public API except the backend-author headers in sys/.
 */
#ifndef CHAT_CHAT_H
#define CHAT_CHAT_H

#include "common.h"
#include "chat/version.h"
#include "errors.h"
#include "types.h"
#include "server.h"
#include "client.h"

#endif /* CHAT_CHAT_H */
