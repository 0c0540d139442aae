/* The checking layer (see checked.h): validate, track transaction and callback state, forward.
 * Every method runs the checks its backend used to run itself, in the same order, so a bad
 * call fails with the same code and message whatever the backend. */
#include "store/checked.h"

#include "store/check.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stddef.h>
#include <string.h>

typedef struct checked {
    const chat_store_ops *ops; /* the wrapped backend */
    void *st;
    int in_cb; /* listing callbacks running: only single-row lookups may re-enter */
    int in_tx; /* begin() succeeded; commit() has not succeeded nor rollback() run since */
    int transient; /* the backend answered CHAT_EAGAIN since the last begin() */
} checked;

typedef int (*revoked_cb)(const char *session_id, int64_t exp_ms, void *user_data);

/* Iterators and writers would reset a backend's cursor that is still stepping (SQLite) or
 * reuse its one sort buffer (memory), or change rows under the walk. */
static int refuse_in_cb(const checked *w, const char *what)
{
    if (w->in_cb)
        return chat__error_set(CHAT_EMISUSE, 0, "store: %s inside a row callback", what);
    return CHAT_OK;
}

static int need(int present, const char *method, const char *what)
{
    return present ? CHAT_OK
                   : chat__error_set(CHAT_EINVAL, 0, "store: %s: NULL %s", method, what);
}

static int need_limit(int limit, const char *method)
{
    return limit >= 0 ? CHAT_OK
                      : chat__error_set(CHAT_EINVAL, 0, "store: %s: negative limit", method);
}

static int check_id(const char *s, int allow_empty, const char *what)
{
    return chat__store_check_str(s, CHAT_ID_MAX, allow_empty, what);
}

static int check_key(const char *s, const char *what)
{
    return chat__store_check_str(s, CHAT__STORE_KEY_MAX, 0, what);
}

/* Note a backend's answer on its way back: CHAT_EAGAIN says the transaction failed for a
 * reason that may pass (see chat__store_checked_transient). */
static int seen(checked *w, int rc)
{
    if (rc == CHAT_EAGAIN)
        w->transient = 1;
    return rc;
}

/* ---- callback trampolines: count the depth around the caller's callback ---- */

struct hop {
    checked *w;
    union {
        chat_store_msg_cb msg;
        chat_store_member_cb member;
        chat_store_name_cb name;
        revoked_cb revoked;
        chat_store_grant_cb grant;
        chat_store_reaction_cb reaction;
        chat_store_hit_cb hit;
        chat_store_deleted_cb deleted;
        chat_store_push_reg_cb reg;
    } cb;
    void *user_data;
};

/* A backend older than version 5 (6) hands over rows without the version-5 (6) fields, which
 * are not even in its struct: its caller reads them as zeros. */
static const chat_store_msg *full_msg(const checked *w, const chat_store_msg *msg,
                                      chat_store_msg *buf)
{
    if (w->ops->version >= 6)
        return msg;
    memset(buf, 0, sizeof *buf);
    memcpy(buf, msg, w->ops->version >= 5 ? offsetof(chat_store_msg, reactions)
                                          : offsetof(chat_store_msg, target_seq));
    return buf;
}

static int hop_msg(const chat_store_msg *msg, void *ud)
{
    struct hop *h = ud;
    chat_store_msg buf;
    msg = full_msg(h->w, msg, &buf);
    h->w->in_cb++;
    int r = h->cb.msg(msg, h->user_data);
    h->w->in_cb--;
    return r;
}

static int hop_member(const chat_store_member *member, void *ud)
{
    struct hop *h = ud;
    h->w->in_cb++;
    int r = h->cb.member(member, h->user_data);
    h->w->in_cb--;
    return r;
}

static int hop_name(const char *name, void *ud)
{
    struct hop *h = ud;
    h->w->in_cb++;
    int r = h->cb.name(name, h->user_data);
    h->w->in_cb--;
    return r;
}

static int hop_revoked(const char *session_id, int64_t exp_ms, void *ud)
{
    struct hop *h = ud;
    h->w->in_cb++;
    int r = h->cb.revoked(session_id, exp_ms, h->user_data);
    h->w->in_cb--;
    return r;
}

static int hop_grant(int64_t conv, const char *user, void *ud)
{
    struct hop *h = ud;
    h->w->in_cb++;
    int r = h->cb.grant(conv, user, h->user_data);
    h->w->in_cb--;
    return r;
}

static int hop_reaction(const chat_store_reaction *r, void *ud)
{
    struct hop *h = ud;
    h->w->in_cb++;
    int rc = h->cb.reaction(r, h->user_data);
    h->w->in_cb--;
    return rc;
}

static int hop_hit(const chat_store_msg *msg, uint64_t cursor, void *ud)
{
    struct hop *h = ud;
    chat_store_msg buf;
    msg = full_msg(h->w, msg, &buf);
    h->w->in_cb++;
    int rc = h->cb.hit(msg, cursor, h->user_data);
    h->w->in_cb--;
    return rc;
}

static int hop_deleted(const char *name, int64_t deleted_ms, void *ud)
{
    struct hop *h = ud;
    h->w->in_cb++;
    int rc = h->cb.deleted(name, deleted_ms, h->user_data);
    h->w->in_cb--;
    return rc;
}

static int hop_reg(const chat_store_push_reg *reg, void *ud)
{
    struct hop *h = ud;
    h->w->in_cb++;
    int r = h->cb.reg(reg, h->user_data);
    h->w->in_cb--;
    return r;
}

/* ---- transactions ---- */

static int misuse(const char *what)
{
    return chat__error_set(CHAT_EMISUSE, 0, "store: %s", what);
}

static int c_begin(void *state)
{
    checked *w = state;
    int rc = refuse_in_cb(w, "begin()");
    if (rc)
        return rc;
    if (w->in_tx)
        return misuse("begin() inside a transaction");
    w->transient = 0;
    if ((rc = seen(w, w->ops->begin(w->st))) == CHAT_OK)
        w->in_tx = 1;
    return rc;
}

static int c_commit(void *state)
{
    checked *w = state;
    int rc = refuse_in_cb(w, "commit()");
    if (rc)
        return rc;
    if (!w->in_tx)
        return misuse("commit() without begin()");
    if ((rc = seen(w, w->ops->commit(w->st))) == CHAT_OK)
        w->in_tx = 0;
    return rc;
}

static int c_rollback(void *state)
{
    checked *w = state;
    int rc = refuse_in_cb(w, "rollback()");
    if (rc)
        return rc;
    if (!w->in_tx)
        return misuse("rollback() without begin()");
    w->in_tx = 0;
    return seen(w, w->ops->rollback(w->st));
}

/* ---- conversations ---- */

static int c_conv_insert(void *state, chat_store_conv *conv)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "conv_insert")) || (rc = chat__store_check_conv(conv, 1)))
        return rc;
    return seen(w, w->ops->conv_insert(w->st, conv));
}

static int c_conv_get(void *state, int64_t id, chat_store_conv *out)
{
    checked *w = state;
    int rc = need(out != NULL, "conv_get", "out");
    if (rc)
        return rc;
    memset(out, 0, sizeof *out); /* an older backend writes less than the whole row */
    return seen(w, w->ops->conv_get(w->st, id, out));
}

static int c_conv_find_direct(void *state, const char *dm_key, chat_store_conv *out)
{
    checked *w = state;
    int rc;
    if ((rc = chat__store_check_str(dm_key, sizeof out->dm_key - 1, 1, "dm_key")) ||
        (rc = need(out != NULL, "conv_find_direct", "out")))
        return rc;
    memset(out, 0, sizeof *out);
    return seen(w, w->ops->conv_find_direct(w->st, dm_key, out));
}

static int c_conv_update(void *state, const chat_store_conv *conv)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "conv_update")) || (rc = chat__store_check_conv(conv, 0)))
        return rc;
    return seen(w, w->ops->conv_update(w->st, conv));
}

/* ---- members ---- */

static int c_member_get(void *state, int64_t conv, const char *user, chat_store_member *out)
{
    checked *w = state;
    int rc;
    if ((rc = check_id(user, 0, "member user")) || (rc = need(out != NULL, "member_get", "out")))
        return rc;
    return seen(w, w->ops->member_get(w->st, conv, user, out));
}

static int c_member_put(void *state, const chat_store_member *member)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "member_put")) || (rc = chat__store_check_member(member)))
        return rc;
    return seen(w, w->ops->member_put(w->st, member));
}

static int c_member_list(void *state, int64_t conv, int only_active, chat_store_member_cb cb,
                         void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "member_list")) || (rc = need(cb != NULL, "member_list", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.member = cb, .user_data = user_data};
    return seen(w, w->ops->member_list(w->st, conv, only_active, hop_member, &h));
}

/* ---- messages ---- */

static int c_msg_insert(void *state, const chat_store_msg *msg)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_insert")) || (rc = chat__store_check_msg(msg)))
        return rc;
    return seen(w, w->ops->msg_insert(w->st, msg));
}

static int c_msg_find_cmid(void *state, int64_t conv, const char *sender, const char *device,
                           const char *cmid, chat_store_msg_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_find_cmid")) || (rc = check_id(sender, 1, "sender")) ||
        (rc = check_id(device, 1, "device")) || (rc = check_id(cmid, 1, "cmid")) ||
        (rc = need(cb != NULL, "msg_find_cmid", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.msg = cb, .user_data = user_data};
    return seen(w, w->ops->msg_find_cmid(w->st, conv, sender, device, cmid, hop_msg, &h));
}

static int c_msg_range(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                       int limit, int descending, chat_store_msg_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_range")) || (rc = need(cb != NULL, "msg_range", "callback")) ||
        (rc = need_limit(limit, "msg_range")))
        return rc;
    struct hop h = {.w = w, .cb.msg = cb, .user_data = user_data};
    return seen(w, w->ops->msg_range(w->st, conv, after_seq, before_seq, limit, descending,
                                     hop_msg, &h));
}

/* ---- inbox and contacts ---- */

static int c_user_convs(void *state, const char *user, uint64_t since_change, int limit,
                        chat_store_member_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "user_convs")) || (rc = check_id(user, 0, "user")) ||
        (rc = need(cb != NULL, "user_convs", "callback")) ||
        (rc = need_limit(limit, "user_convs")))
        return rc;
    struct hop h = {.w = w, .cb.member = cb, .user_data = user_data};
    return seen(w, w->ops->user_convs(w->st, user, since_change, limit, hop_member, &h));
}

static int c_contacts(void *state, const char *user, chat_store_name_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "contacts")) || (rc = check_id(user, 0, "user")) ||
        (rc = need(cb != NULL, "contacts", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.name = cb, .user_data = user_data};
    return seen(w, w->ops->contacts(w->st, user, hop_name, &h));
}

/* ---- users, revoked sessions, meta ---- */

static int c_user_get(void *state, const char *name, chat_store_user *out)
{
    checked *w = state;
    int rc;
    if ((rc = check_id(name, 0, "user name")) || (rc = need(out != NULL, "user_get", "out")))
        return rc;
    return seen(w, w->ops->user_get(w->st, name, out));
}

static int c_user_put(void *state, const chat_store_user *user)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "user_put")) || (rc = chat__store_check_user(user)))
        return rc;
    return seen(w, w->ops->user_put(w->st, user));
}

static int c_revoked_put(void *state, const char *session_id, int64_t exp_ms)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "revoked_put")) || (rc = check_key(session_id, "session id")))
        return rc;
    return seen(w, w->ops->revoked_put(w->st, session_id, exp_ms));
}

static int c_revoked_list(void *state, int64_t now_ms, revoked_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "revoked_list")) ||
        (rc = need(cb != NULL, "revoked_list", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.revoked = cb, .user_data = user_data};
    return seen(w, w->ops->revoked_list(w->st, now_ms, hop_revoked, &h));
}

static int c_meta_get(void *state, const char *key, int64_t *value)
{
    checked *w = state;
    int rc;
    if ((rc = check_key(key, "meta key")) || (rc = need(value != NULL, "meta_get", "value")))
        return rc;
    return seen(w, w->ops->meta_get(w->st, key, value));
}

static int c_meta_set(void *state, const char *key, int64_t value)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "meta_set")) || (rc = check_key(key, "meta key")))
        return rc;
    return seen(w, w->ops->meta_set(w->st, key, value));
}

/* ---- media (version 2, optional) ---- */

/* The backend has the version-2 media methods; else CHAT_ENOTSUP. */
static int has_media(const checked *w)
{
    if (w->ops->version >= 2 && w->ops->media_put && w->ops->media_get && w->ops->media_grant &&
        w->ops->media_grants)
        return CHAT_OK;
    return chat__error_set(CHAT_ENOTSUP, 0, "store: this backend keeps no media metadata");
}

static int check_media_id(const char *id)
{
    int rc = chat__store_check_str(id, CHAT_MEDIA_ID_MAX, 0, "media id");
    if (rc)
        return rc;
    for (const char *p = id; *p; p++)
        if (*p == '\n')
            return chat__error_set(CHAT_EINVAL, 0, "store: media id holds a newline");
    return CHAT_OK;
}

static int c_media_put(void *state, const chat_store_media *m)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "media_put")) || (rc = has_media(w)) ||
        (rc = need(m != NULL, "media_put", "media")) ||
        (rc = chat__store_check_field(m->id, sizeof m->id, 0, "media id")) ||
        (rc = check_media_id(m->id)) ||
        (rc = chat__store_check_field(m->uploader, sizeof m->uploader, 0, "uploader")) ||
        (rc = chat__store_check_field(m->mime, sizeof m->mime, 0, "mime")) ||
        (rc = chat__store_check_field(m->name, sizeof m->name, 1, "name")) ||
        (rc = chat__store_check_u64(m->size, "size")))
        return rc;
    return seen(w, w->ops->media_put(w->st, m));
}

static int c_media_get(void *state, const char *id, chat_store_media *out)
{
    checked *w = state;
    int rc;
    if ((rc = has_media(w)) || (rc = check_media_id(id)) ||
        (rc = need(out != NULL, "media_get", "out")))
        return rc;
    return seen(w, w->ops->media_get(w->st, id, out));
}

static int c_media_grant(void *state, const char *id, int64_t conv, const char *user)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "media_grant")) || (rc = has_media(w)) ||
        (rc = check_media_id(id)) || (rc = check_id(user, 1, "user")))
        return rc;
    if (conv < 0 || (conv == 0) != (user[0] != 0))
        return chat__error_set(CHAT_EINVAL, 0,
                               "store: media_grant needs conv > 0 and no user, or a user alone");
    return seen(w, w->ops->media_grant(w->st, id, conv, user));
}

static int c_media_grants(void *state, const char *id, chat_store_grant_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "media_grants")) || (rc = has_media(w)) ||
        (rc = check_media_id(id)) || (rc = need(cb != NULL, "media_grants", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.grant = cb, .user_data = user_data};
    return seen(w, w->ops->media_grants(w->st, id, hop_grant, &h));
}

/* ---- push registrations and mutes (version 3, optional) ---- */

/* The backend has the version-3 push methods; else CHAT_ENOTSUP. */
static int has_push(const checked *w)
{
    const chat_store_ops *o = w->ops;
    if (o->version >= 3 && o->push_reg_put && o->push_reg_del && o->push_reg_del_token &&
        o->push_reg_list && o->push_mute_put && o->push_mute_get)
        return CHAT_OK;
    return chat__error_set(CHAT_ENOTSUP, 0, "store: this backend keeps no push registrations");
}

static int check_platform(int platform)
{
    if (platform == CHAT_PUSH_APNS || platform == CHAT_PUSH_FCM)
        return CHAT_OK;
    return chat__error_set(CHAT_EINVAL, 0, "store: unknown push platform %d", platform);
}

static int check_conv_id(int64_t conv, const char *method)
{
    return conv > 0 ? CHAT_OK
                    : chat__error_set(CHAT_EINVAL, 0, "store: %s: conv must be > 0", method);
}

static int c_push_reg_put(void *state, const chat_store_push_reg *reg)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "push_reg_put")) || (rc = has_push(w)) ||
        (rc = need(reg != NULL, "push_reg_put", "registration")) ||
        (rc = chat__store_check_field(reg->user, sizeof reg->user, 0, "user")) ||
        (rc = chat__store_check_field(reg->device, sizeof reg->device, 0, "device")) ||
        (rc = check_platform(reg->platform)) ||
        (rc = chat__store_check_field(reg->token, sizeof reg->token, 0, "token")) ||
        (rc = chat__store_check_field(reg->topic, sizeof reg->topic, 1, "topic")))
        return rc;
    if (reg->sandbox != 0 && reg->sandbox != 1)
        return chat__error_set(CHAT_EINVAL, 0, "store: push_reg_put: sandbox is 0 or 1");
    return w->ops->push_reg_put(w->st, reg);
}

static int c_push_reg_del(void *state, const char *user, const char *device)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "push_reg_del")) || (rc = has_push(w)) ||
        (rc = check_id(user, 0, "user")) || (rc = check_id(device, 0, "device")))
        return rc;
    return w->ops->push_reg_del(w->st, user, device);
}

static int c_push_reg_del_token(void *state, int platform, const char *token)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "push_reg_del_token")) || (rc = has_push(w)) ||
        (rc = check_platform(platform)) ||
        (rc = chat__store_check_str(token, CHAT_PUSH_TOKEN_MAX, 0, "token")))
        return rc;
    return w->ops->push_reg_del_token(w->st, platform, token);
}

static int c_push_reg_list(void *state, const char *user, chat_store_push_reg_cb cb,
                           void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "push_reg_list")) || (rc = has_push(w)) ||
        (rc = check_id(user, 0, "user")) || (rc = need(cb != NULL, "push_reg_list", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.reg = cb, .user_data = user_data};
    return w->ops->push_reg_list(w->st, user, hop_reg, &h);
}

static int c_push_mute_put(void *state, const char *user, int64_t conv, int64_t until_ms)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "push_mute_put")) || (rc = has_push(w)) ||
        (rc = check_id(user, 0, "user")) || (rc = check_conv_id(conv, "push_mute_put")))
        return rc;
    if (until_ms < 0)
        return chat__error_set(CHAT_EINVAL, 0, "store: push_mute_put: negative until_ms");
    return w->ops->push_mute_put(w->st, user, conv, until_ms);
}

/* A point read: allowed inside a row callback. */
static int c_push_mute_get(void *state, const char *user, int64_t conv, int64_t *until_ms)
{
    checked *w = state;
    int rc;
    if ((rc = has_push(w)) || (rc = check_id(user, 0, "user")) ||
        (rc = check_conv_id(conv, "push_mute_get")) ||
        (rc = need(until_ms != NULL, "push_mute_get", "until_ms")))
        return rc;
    return w->ops->push_mute_get(w->st, user, conv, until_ms);
}

/* ---- lock order (version 4, optional) ---- */

static int c_lock_convs(void *state, const chat_conv_id *ids, size_t n)
{
    checked *w = state;
    int rc = refuse_in_cb(w, "lock_convs");
    if (rc)
        return rc;
    if (!w->in_tx)
        return misuse("lock_convs() without begin()");
    if ((rc = need(ids != NULL && n > 0, "lock_convs", "or empty ids")))
        return rc;
    for (size_t i = 0; i < n; i++)
        if (ids[i] <= 0 || (i && ids[i] <= ids[i - 1]))
            return chat__error_set(CHAT_EINVAL, 0,
                                   "store: lock_convs: ids not positive, ascending and distinct");
    /* A store without it locks conversations as it reads them, if it locks at all. */
    if (w->ops->version < 4 || !w->ops->lock_convs)
        return CHAT_OK;
    return seen(w, w->ops->lock_convs(w->st, ids, n));
}

/* ---- version 5: the message lifecycle, search, account deletion (optional) ---- */

static int has_lifecycle(const checked *w)
{
    const chat_store_ops *o = w->ops;
    if (o->version >= 5 && o->msg_get && o->msg_update && o->msg_related && o->msg_thread &&
        o->msg_count && o->msg_expired && o->msg_by_sender && o->msg_search &&
        o->reaction_set && o->reaction_list && o->reaction_clear && o->user_delete &&
        o->user_deleted && o->media_refs && o->media_delete)
        return CHAT_OK;
    return chat__error_set(CHAT_ENOTSUP, 0,
                           "store: this backend keeps no message lifecycle (store version 5)");
}

/* A search text longer than this is refused: no one types it, and every word costs. */
#define SEARCH_TEXT_MAX 1024

static int c_msg_get(void *state, int64_t conv, uint64_t seq, chat_store_msg_cb cb,
                     void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = has_lifecycle(w)) || (rc = need(cb != NULL, "msg_get", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.msg = cb, .user_data = user_data};
    return seen(w, w->ops->msg_get(w->st, conv, seq, hop_msg, &h));
}

static int c_msg_update(void *state, const chat_store_msg *msg)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_update")) || (rc = has_lifecycle(w)) ||
        (rc = chat__store_check_msg(msg)))
        return rc;
    return seen(w, w->ops->msg_update(w->st, msg));
}

static int c_msg_related(void *state, int64_t conv, uint64_t target_seq, int kind,
                         chat_store_msg_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_related")) || (rc = has_lifecycle(w)) ||
        (rc = need(cb != NULL, "msg_related", "callback")) ||
        (rc = chat__store_check_u64(target_seq, "target_seq")))
        return rc;
    struct hop h = {.w = w, .cb.msg = cb, .user_data = user_data};
    return seen(w, w->ops->msg_related(w->st, conv, target_seq, kind, hop_msg, &h));
}

static int c_msg_thread(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                        uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                        void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_thread")) || (rc = has_lifecycle(w)) ||
        (rc = need(cb != NULL, "msg_thread", "callback")) ||
        (rc = need_limit(limit, "msg_thread")) ||
        (rc = chat__store_check_u64(thread_seq, "thread_seq")))
        return rc;
    struct hop h = {.w = w, .cb.msg = cb, .user_data = user_data};
    return seen(w, w->ops->msg_thread(w->st, conv, thread_seq, after_seq, before_seq, limit,
                                      descending, hop_msg, &h));
}

static int c_msg_count(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                       uint64_t upto_seq, uint64_t *out)
{
    checked *w = state;
    int rc;
    if ((rc = has_lifecycle(w)) || (rc = need(out != NULL, "msg_count", "out")) ||
        (rc = chat__store_check_u64(thread_seq, "thread_seq")) ||
        (rc = chat__store_check_u64(after_seq, "after_seq")) ||
        (rc = chat__store_check_u64(upto_seq, "upto_seq")))
        return rc;
    return seen(w, w->ops->msg_count(w->st, conv, thread_seq, after_seq, upto_seq, out));
}

static int c_msg_expired(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                         void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_expired")) || (rc = has_lifecycle(w)) ||
        (rc = need(cb != NULL, "msg_expired", "callback")) ||
        (rc = need_limit(limit, "msg_expired")))
        return rc;
    struct hop h = {.w = w, .cb.msg = cb, .user_data = user_data};
    return seen(w, w->ops->msg_expired(w->st, now_ms, limit, hop_msg, &h));
}

static int c_msg_by_sender(void *state, int64_t conv, const char *sender, uint64_t after_seq,
                           int limit, chat_store_msg_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_by_sender")) || (rc = has_lifecycle(w)) ||
        (rc = check_id(sender, 0, "sender")) ||
        (rc = need(cb != NULL, "msg_by_sender", "callback")) ||
        (rc = need_limit(limit, "msg_by_sender")) ||
        (rc = chat__store_check_u64(after_seq, "after_seq")))
        return rc;
    struct hop h = {.w = w, .cb.msg = cb, .user_data = user_data};
    return seen(w, w->ops->msg_by_sender(w->st, conv, sender, after_seq, limit, hop_msg, &h));
}

static int c_msg_search(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                        void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "msg_search")) || (rc = has_lifecycle(w)) ||
        (rc = need(q != NULL, "msg_search", "query")) ||
        (rc = need(cb != NULL, "msg_search", "callback")))
        return rc;
    if ((rc = chat__store_check_str(q->text, SEARCH_TEXT_MAX, 1, "search text")) ||
        (rc = need_limit(q->limit, "msg_search")) ||
        (rc = need(!q->n_convs || (q->convs && q->after), "msg_search", "conversations")))
        return rc;
    struct hop h = {.w = w, .cb.hit = cb, .user_data = user_data};
    return seen(w, w->ops->msg_search(w->st, q, hop_hit, &h));
}

static int check_reaction(const chat_store_reaction *r)
{
    int rc;
    if (!r)
        return chat__error_set(CHAT_EINVAL, 0, "store: reaction is NULL");
    if ((rc = chat__store_check_field(r->user, sizeof r->user, 0, "reaction user")) ||
        (rc = chat__store_check_field(r->emoji, sizeof r->emoji, 0, "reaction emoji")) ||
        (rc = chat__store_check_u64(r->seq, "reaction seq")))
        return rc;
    return CHAT_OK;
}

static int c_reaction_set(void *state, const chat_store_reaction *reaction, int on)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "reaction_set")) || (rc = has_lifecycle(w)) ||
        (rc = check_reaction(reaction)))
        return rc;
    return seen(w, w->ops->reaction_set(w->st, reaction, on != 0));
}

static int c_reaction_list(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                           chat_store_reaction_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "reaction_list")) || (rc = has_lifecycle(w)) ||
        (rc = need(cb != NULL, "reaction_list", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.reaction = cb, .user_data = user_data};
    return seen(w, w->ops->reaction_list(w->st, conv, after_seq, before_seq, hop_reaction, &h));
}

static int c_reaction_clear(void *state, int64_t conv, uint64_t seq, const char *user)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "reaction_clear")) || (rc = has_lifecycle(w)) ||
        (rc = check_id(user, 1, "user")) || (rc = chat__store_check_u64(seq, "seq")))
        return rc;
    return seen(w, w->ops->reaction_clear(w->st, conv, seq, user));
}

static int c_user_delete(void *state, const char *name, int64_t deleted_ms)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "user_delete")) || (rc = has_lifecycle(w)) ||
        (rc = check_id(name, 0, "user name")))
        return rc;
    return seen(w, w->ops->user_delete(w->st, name, deleted_ms));
}

static int c_user_deleted(void *state, chat_store_deleted_cb cb, void *user_data)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "user_deleted")) || (rc = has_lifecycle(w)) ||
        (rc = need(cb != NULL, "user_deleted", "callback")))
        return rc;
    struct hop h = {.w = w, .cb.deleted = cb, .user_data = user_data};
    return seen(w, w->ops->user_deleted(w->st, hop_deleted, &h));
}

static int c_media_refs(void *state, const char *id, int delta, int64_t *refs_out)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "media_refs")) || (rc = has_lifecycle(w)) ||
        (rc = has_media(w)) || (rc = check_media_id(id)))
        return rc;
    return seen(w, w->ops->media_refs(w->st, id, delta, refs_out));
}

static int c_media_delete(void *state, const char *id)
{
    checked *w = state;
    int rc;
    if ((rc = refuse_in_cb(w, "media_delete")) || (rc = has_lifecycle(w)) ||
        (rc = has_media(w)) || (rc = check_media_id(id)))
        return rc;
    return seen(w, w->ops->media_delete(w->st, id));
}

/* ---- lifecycle ---- */

static int c_ctl(void *state, int op, void *arg)
{
    checked *w = state;
    int rc = refuse_in_cb(w, "ctl");
    if (rc)
        return rc;
    if (!w->ops->ctl)
        return chat__error_set(CHAT_ENOTSUP, 0, "store: unknown ctl op %d", op);
    return seen(w, w->ops->ctl(w->st, op, arg));
}

static void c_destroy(void *state)
{
    checked *w = state;
    if (!w)
        return;
    w->ops->destroy(w->st);
    chat__free(w);
}

static const chat_store_ops checked_ops = {
    .version = CHAT_STORE_OPS_VERSION,
    .destroy = c_destroy,
    .begin = c_begin,
    .commit = c_commit,
    .rollback = c_rollback,
    .conv_insert = c_conv_insert,
    .conv_get = c_conv_get,
    .conv_find_direct = c_conv_find_direct,
    .conv_update = c_conv_update,
    .member_get = c_member_get,
    .member_put = c_member_put,
    .member_list = c_member_list,
    .msg_insert = c_msg_insert,
    .msg_find_cmid = c_msg_find_cmid,
    .msg_range = c_msg_range,
    .user_convs = c_user_convs,
    .contacts = c_contacts,
    .user_get = c_user_get,
    .user_put = c_user_put,
    .revoked_put = c_revoked_put,
    .revoked_list = c_revoked_list,
    .meta_get = c_meta_get,
    .meta_set = c_meta_set,
    .ctl = c_ctl,
    .media_put = c_media_put,
    .media_get = c_media_get,
    .media_grant = c_media_grant,
    .media_grants = c_media_grants,
    .msg_get = c_msg_get,
    .msg_update = c_msg_update,
    .msg_related = c_msg_related,
    .msg_thread = c_msg_thread,
    .msg_count = c_msg_count,
    .msg_expired = c_msg_expired,
    .msg_by_sender = c_msg_by_sender,
    .msg_search = c_msg_search,
    .reaction_set = c_reaction_set,
    .reaction_list = c_reaction_list,
    .reaction_clear = c_reaction_clear,
    .user_delete = c_user_delete,
    .user_deleted = c_user_deleted,
    .media_refs = c_media_refs,
    .media_delete = c_media_delete,
    .push_reg_put = c_push_reg_put,
    .push_reg_del = c_push_reg_del,
    .push_reg_del_token = c_push_reg_del_token,
    .push_reg_list = c_push_reg_list,
    .push_mute_put = c_push_mute_put,
    .push_mute_get = c_push_mute_get,
    .lock_convs = c_lock_convs,
};

int chat__store_checked_new(const chat_store_ops **ops_inout, void **state_inout)
{
    if (!ops_inout || !state_inout || !*ops_inout)
        return chat__error_set(CHAT_EINVAL, 0, "store: nothing to wrap");
    if (*ops_inout == &checked_ops)
        return CHAT_OK;
    checked *w = chat__calloc(1, sizeof *w);
    if (!w) {
        (*ops_inout)->destroy(*state_inout);
        *ops_inout = NULL;
        *state_inout = NULL;
        return chat__error_set(CHAT_ENOMEM, 0, "store: out of memory");
    }
    w->ops = *ops_inout;
    w->st = *state_inout;
    *ops_inout = &checked_ops;
    *state_inout = w;
    return CHAT_OK;
}

int chat__store_checked_transient(const chat_store_ops *ops, void *state)
{
    return ops == &checked_ops && ((const checked *)state)->transient;
}

int chat__store_checked_has_media(const chat_store_ops *ops, void *state)
{
    return ops == &checked_ops && has_media(state) == CHAT_OK;
}

int chat__store_checked_has_push(const chat_store_ops *ops, void *state)
{
    return ops == &checked_ops && has_push(state) == CHAT_OK;
}

int chat__store_checked_has_lifecycle(const chat_store_ops *ops, void *state)
{
    return ops == &checked_ops && has_lifecycle(state) == CHAT_OK;
}

int chat__store_checked_row_reactions(const chat_store_ops *ops, void *state)
{
    return chat__store_checked_has_lifecycle(ops, state) && ((checked *)state)->ops->version >= 6;
}
