/* Status names, texts and the thread-local last-error record. */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct code_entry {
    int code;
    const char *name;
    const char *text;
};

/* Indexed by -code; the order follows the enum and never changes. */
static const struct code_entry codes[] = {
    {CHAT_OK, "OK", "success"},
    {CHAT_ERROR, "ERROR", "unexpected error"},
    {CHAT_EINVAL, "EINVAL", "invalid argument"},
    {CHAT_ENOMEM, "ENOMEM", "out of memory"},
    {CHAT_ENOTFOUND, "ENOTFOUND", "not found"},
    {CHAT_EEXISTS, "EEXISTS", "already exists"},
    {CHAT_EBUSY, "EBUSY", "busy"},
    {CHAT_EAGAIN, "EAGAIN", "try again later"},
    {CHAT_ECLOSED, "ECLOSED", "closed"},
    {CHAT_EAUTH, "EAUTH", "authentication failed"},
    {CHAT_EPERM, "EPERM", "not permitted"},
    {CHAT_ELIMIT, "ELIMIT", "limit exceeded"},
    {CHAT_EPROTO, "EPROTO", "protocol error"},
    {CHAT_EIO, "EIO", "I/O error"},
    {CHAT_ETIMEDOUT, "ETIMEDOUT", "timed out"},
    {CHAT_ENOTSUP, "ENOTSUP", "not supported"},
    {CHAT_EVERSION, "EVERSION", "version mismatch"},
    {CHAT_EMISUSE, "EMISUSE", "API misuse"},
    {CHAT_EUSER, "EUSER", "aborted by a host callback"},
};

#define N_CODES (sizeof(codes) / sizeof(codes[0]))

static const struct code_entry *lookup(int code)
{
    if (code > 0 || (size_t)-code >= N_CODES)
        return NULL;
    return &codes[-code];
}

const char *chat_strerror(int code)
{
    const struct code_entry *e = lookup(code);
    return e ? e->text : "unknown error";
}

const char *chat_error_name(int code)
{
    const struct code_entry *e = lookup(code);
    return e ? e->name : "ERROR";
}

int chat_error_from_name(const char *name)
{
    if (!name)
        return CHAT_ERROR;
    for (size_t i = 0; i < N_CODES; i++)
        if (strcmp(codes[i].name, name) == 0)
            return codes[i].code;
    return CHAT_ERROR;
}

static _Thread_local char last_message[256];
static _Thread_local chat_error_info last = {CHAT_OK, "", 0};

int chat__error_set(int code, int backend_code, const char *fmt, ...)
{
    if (!strchr(fmt, '%')) { /* most messages are constant: no formatting to pay for */
        size_t n = strnlen(fmt, sizeof last_message - 1);
        memcpy(last_message, fmt, n);
        last_message[n] = '\0';
    } else {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(last_message, sizeof last_message, fmt, ap);
        va_end(ap);
    }
    last.code = code;
    last.message = last_message;
    last.backend_code = backend_code;
    return code;
}

void chat__error_clear(void)
{
    last_message[0] = '\0';
    last.code = CHAT_OK;
    last.message = last_message;
    last.backend_code = 0;
}

const chat_error_info *chat_error_last(void)
{
    if (!last.message)
        last.message = last_message;
    return &last;
}
