/* Argument checks shared by the store backends. */
#include "store/check.h"

#include "core/alloc.h"
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

/* The decimal number at s[*i], ended by end; moves *i past end. */
static int reacts_num(const char *s, size_t len, size_t *i, char end, int64_t *out)
{
    int neg = *i < len && s[*i] == '-';
    size_t j = *i + (size_t)neg;
    int64_t v = 0;
    size_t start = j;
    for (; j < len && s[j] >= '0' && s[j] <= '9'; j++) {
        if (v > (INT64_MAX - (s[j] - '0')) / 10)
            return -1;
        v = 10 * v + (s[j] - '0');
    }
    if (j == start || j >= len || s[j] != end)
        return -1;
    *i = j + 1;
    *out = neg ? -v : v;
    return 0;
}

/* A string of the form "<bytes>:<bytes of text>" at s[*i] into dst[size]. */
static int reacts_str(const char *s, size_t len, size_t *i, char *dst, size_t size)
{
    int64_t n;
    if (reacts_num(s, len, i, ':', &n) || n < 0 || (uint64_t)n >= size || (size_t)n > len - *i)
        return -1;
    memcpy(dst, s + *i, (size_t)n);
    dst[n] = '\0';
    *i += (size_t)n;
    return 0;
}

int chat__store_reacts_decode(chat__store_reacts *r, chat_store_msg *m, const char *s,
                              size_t len)
{
    size_t cap = CHAT__STORE_REACTS_LOCAL, i = 0;
    r->v = r->local;
    r->n = 0;
    while (s && i < len) {
        if (r->n == cap) {
            chat_store_reaction *v = chat__malloc(2 * cap * sizeof *v);
            if (!v) {
                chat__store_reacts_free(r);
                return chat__error_set(CHAT_ENOMEM, 0, "store: out of memory");
            }
            memcpy(v, r->v, r->n * sizeof *v);
            if (r->v != r->local)
                chat__free(r->v);
            r->v = v;
            cap *= 2;
        }
        chat_store_reaction *x = &r->v[r->n];
        x->conv = m->conv;
        x->seq = m->seq;
        if (reacts_str(s, len, &i, x->user, sizeof x->user) ||
            reacts_str(s, len, &i, x->emoji, sizeof x->emoji) ||
            reacts_num(s, len, &i, ';', &x->ts_ms)) {
            chat__store_reacts_free(r);
            return chat__error_set(CHAT_EIO, 0, "store: message %lld/%llu: corrupt reactions",
                                   (long long)m->conv, (unsigned long long)m->seq);
        }
        r->n++;
    }
    m->reactions = r->n ? r->v : NULL;
    m->n_reactions = r->n;
    return CHAT_OK;
}

void chat__store_reacts_free(chat__store_reacts *r)
{
    if (r->v != r->local)
        chat__free(r->v);
    r->v = r->local;
    r->n = 0;
}
