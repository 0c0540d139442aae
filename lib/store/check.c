/* Argument checks shared by the store backends. */
#include "store/check.h"

#include "core/error.h"

#include <string.h>

int chat__store_check_str(const char *s, size_t max, int allow_empty, const char *what)
{
    if (!s)
        return chat__error_set(CHAT_EINVAL, 0, "store: %s is NULL", what);
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return chat__error_set(CHAT_EINVAL, 0, "store: %s longer than %zu bytes", what, max);
    if (n == 0 && !allow_empty)
        return chat__error_set(CHAT_EINVAL, 0, "store: %s is empty", what);
    return CHAT_OK;
}

int chat__store_check_field(const char *field, size_t size, int allow_empty, const char *what)
{
    if (!memchr(field, '\0', size))
        return chat__error_set(CHAT_EINVAL, 0, "store: %s is not NUL-terminated", what);
    if (!field[0] && !allow_empty)
        return chat__error_set(CHAT_EINVAL, 0, "store: %s is empty", what);
    return CHAT_OK;
}

int chat__store_check_u64(uint64_t v, const char *what)
{
    if (v > (uint64_t)INT64_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "store: %s above INT64_MAX", what);
    return CHAT_OK;
}

int chat__store_check_conv(const chat_store_conv *c, int with_dm_key)
{
    int rc;
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "store: conv is NULL");
    if ((rc = chat__store_check_field(c->title, sizeof c->title, 1, "conv title")) ||
        (with_dm_key && (rc = chat__store_check_field(c->dm_key, sizeof c->dm_key, 1, "dm_key"))) ||
        (rc = chat__store_check_u64(c->head_seq, "conv head_seq")) ||
        (rc = chat__store_check_u64(c->change, "conv change")))
        return rc;
    return CHAT_OK;
}

int chat__store_check_member(const chat_store_member *m)
{
    int rc;
    if (!m)
        return chat__error_set(CHAT_EINVAL, 0, "store: member is NULL");
    if (m->role < 0)
        return chat__error_set(CHAT_EINVAL, 0, "store: negative member role");
    if ((rc = chat__store_check_field(m->user, sizeof m->user, 0, "member user")) ||
        (rc = chat__store_check_u64(m->delivered_seq, "delivered_seq")) ||
        (rc = chat__store_check_u64(m->read_seq, "read_seq")) ||
        (rc = chat__store_check_u64(m->joined_seq, "joined_seq")) ||
        (rc = chat__store_check_u64(m->change, "member change")))
        return rc;
    return CHAT_OK;
}

int chat__store_check_msg(const chat_store_msg *m)
{
    int rc;
    if (!m)
        return chat__error_set(CHAT_EINVAL, 0, "store: msg is NULL");
    if ((rc = chat__store_check_str(m->sender, CHAT_ID_MAX, 1, "msg sender")) ||
        (rc = chat__store_check_str(m->device, CHAT_ID_MAX, 1, "msg device")) ||
        (m->cmid && (rc = chat__store_check_str(m->cmid, CHAT_ID_MAX, 1, "msg cmid"))) ||
        (rc = chat__store_check_u64(m->seq, "msg seq")) ||
        (rc = chat__store_check_u64(m->target_seq, "msg target_seq")) ||
        (rc = chat__store_check_u64(m->thread_seq, "msg thread_seq")))
        return rc;
    if (m->flags & ~(CHAT_STORE_MSG_ERASED | CHAT_STORE_MSG_CURRENT))
        return chat__error_set(CHAT_EINVAL, 0, "store: unknown msg flags 0x%x", m->flags);
    if (!m->body && m->body_len)
        return chat__error_set(CHAT_EINVAL, 0, "store: msg body is NULL");
    if (m->body_len > (size_t)INT32_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "store: msg body too long");
    return CHAT_OK;
}

int chat__store_check_user(const chat_store_user *u)
{
    int rc;
    if (!u)
        return chat__error_set(CHAT_EINVAL, 0, "store: user is NULL");
    if ((rc = chat__store_check_field(u->name, sizeof u->name, 0, "user name")) ||
        (rc = chat__store_check_field(u->pwhash, sizeof u->pwhash, 1, "user pwhash")))
        return rc;
    return CHAT_OK;
}

void chat__store_copy(char *dst, size_t size, const char *src, size_t len)
{
    if (!size)
        return;
    if (!src)
        len = 0;
    if (len >= size)
        len = size - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}
