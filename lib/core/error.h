/* Internal error helpers: set the thread-local record and return the code in one step. */
#ifndef CHAT_CORE_ERROR_H
#define CHAT_CORE_ERROR_H

#include "chat/errors.h"

/* Record (code, backend_code, printf-style message) for chat_error_last(); returns code. */
int chat__error_set(int code, int backend_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clear the record (code CHAT_OK, empty message). */
void chat__error_clear(void);

#endif
