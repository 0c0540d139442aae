/* The built-in auth backend: libchat's own tokens (auth/token.h) verified under a keyring, as
 * one implementation of chat_auth_ops, so the server has one code path for every backend. */
#ifndef CHAT_AUTH_BUILTIN_H
#define CHAT_AUTH_BUILTIN_H

#include "chat/sys/auth.h"

/* The vtable, static. Its state is a const chat__keyring * borrowed from the server (it lives
 * in the server's copy of the config), so destroy does nothing. */
const chat_auth_ops *chat__auth_builtin_ops(void);

#endif
