/* The request machinery shared by every frame type; see req.h. */
#include "server/lifecycle.h"
#include "server/req.h"

#include "bus/check.h"
#include "server/push.h"
#include "core/alloc.h"
#include "core/array.h"
#include "core/error.h"
#include "core/json.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int is_inline_name(const chat__userlist *l, const char *u)
{
    uintptr_t lo = (uintptr_t)l->inline_names, p = (uintptr_t)u;
    return p >= lo && p < lo + sizeof l->inline_names;
}

int chat__userlist_add(chat__userlist *l, const char *user, uint64_t read_seq)
{
    size_t len = strlen(user);
    if (l->n < CHAT__USERLIST_INLINE && (!l->users || l->users == l->inline_users) &&
        len <= CHAT_ID_MAX) {
        l->users = l->inline_users;
        l->read_seq = l->inline_seq;
        l->cap = CHAT__USERLIST_INLINE;
        memcpy(l->inline_names[l->n], user, len + 1);
        l->users[l->n] = l->inline_names[l->n];
        l->read_seq[l->n] = read_seq;
        l->n++;
        return CHAT_OK;
    }
    if (l->users == l->inline_users) {
        /* Move to the heap: the arrays only; the names stay where they are. */
        size_t cap = 4 * CHAT__USERLIST_INLINE;
        char **nu = chat__malloc(cap * sizeof *nu);
        uint64_t *nr = chat__malloc(cap * sizeof *nr);
        if (!nu || !nr) {
            chat__free(nu);
            chat__free(nr);
            return CHAT_ENOMEM;
        }
        memcpy(nu, l->users, l->n * sizeof *nu);
        memcpy(nr, l->read_seq, l->n * sizeof *nr);
        l->users = nu;
        l->read_seq = nr;
        l->cap = cap;
    }
    /* Both arrays grow together: the second one reserves with a copy of the old capacity. */
    size_t cap = l->cap;
    uint64_t *nr = chat__array_reserve(l->read_seq, l->n, &cap, sizeof *nr);
    if (!nr)
        return CHAT_ENOMEM;
    l->read_seq = nr;
    char **nu = chat__array_reserve(l->users, l->n, &l->cap, sizeof *nu);
    if (!nu)
        return CHAT_ENOMEM;
    l->users = nu;
    char *u = chat__strdup(user);
    if (!u)
        return CHAT_ENOMEM;
    l->users[l->n] = u;
    l->read_seq[l->n] = read_seq;
    l->n++;
    return CHAT_OK;
}

int chat__userlist_has(const chat__userlist *l, const char *user)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->users[i], user) == 0)
            return 1;
    return 0;
}

void chat__userlist_free(chat__userlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (!is_inline_name(l, l->users[i]))
            chat__free(l->users[i]);
    if (l->users != l->inline_users) {
        chat__free(l->users);
        chat__free(l->read_seq);
    }
    l->users = NULL;
    l->read_seq = NULL;
    l->n = l->cap = 0;
}

static void req_discard(chat__job *job)
{
    chat__req *r = (chat__req *)job;
    chat__frame_unref(r->reply);
    chat__frame_unref(r->fanout);
    chat__frame_unref(r->fanout2);
    r->reply = r->fanout = r->fanout2 = NULL;
    chat__userlist_free(&r->to);
    r->push = 0;
    chat__free(r->pev_title);
    chat__free(r->pev_preview);
    r->pev_title = r->pev_preview = NULL;
}

static void req_free(chat__req *r)
{
    if (r->counted && r->conn)
        r->conn->srv->writer_backlog--;
    req_discard(&r->job);
    cJSON_Delete(r->re);
    cJSON_Delete(r->args);
    if (r->extra_free)
        r->extra_free(r->extra);
    if (r->conn)
        chat__conn_unref(r->conn);
    chat__free(r);
}

static void push_offline(chat_server *srv, chat__req *r)
{
    if (!srv->push)
        return;
    r->pev.title = r->pev_title ? r->pev_title : "";
    r->pev.preview = (srv->cfg.flags & CHAT_SERVER_PUSH_PREVIEWS) ? r->pev_preview : NULL;
    if (chat__push_resolve(srv, r))
        return;
    for (size_t i = 0; i < r->to.n; i++) {
        if (strcmp(r->to.users[i], r->user) == 0)
            continue;
        if (srv->bus->online(srv->bus_st, r->to.users[i]))
            continue;
        r->pev.user = r->to.users[i];
        r->pev.unread = r->head > r->to.read_seq[i] ? r->head - r->to.read_seq[i] : 0;
        int rc = srv->push->notify(srv->push_st, &r->pev);
        if (rc != CHAT_OK) {
            chat__count(&srv->stats.push_errors, 1);
            chat__log(srv, CHAT_LOG_WARN, "push notifier failed: %s", chat_error_name(rc));
        }
    }
}

void chat__publish(chat_server *srv, const chat__userlist *to, const char *except_user,
                   const char *except_device, chat__frame *f)
{
    const char *const *users = (const char *const *)to->users;
    int rc = chat__bus_has_publish2(srv->bus)
                 ? srv->bus->publish2(srv->bus_st, users, to->n, except_user, except_device, f, 0)
                 : srv->bus->publish(srv->bus_st, users, to->n, except_user, except_device,
                                     chat__frame_data(f), f->len);
    if (rc != CHAT_OK) {
        chat__count(&srv->stats.bus_errors, 1);
        chat__log(srv, CHAT_LOG_WARN, "bus publish failed: %s", chat_error_name(rc));
    }
}

/* 1 if a request failed for the server's own reasons (the store, memory, shutdown, a feature
 * it lacks), which do not count towards the abuse limit; 0 if it was refused (bad or forbidden:
 * EINVAL, EPERM, ENOTFOUND, ELIMIT, ...). */
int chat__req_failed_on_our_side(int status)
{
    switch (status) {
    case CHAT_ERROR:
    case CHAT_ENOMEM:
    case CHAT_EIO:
    case CHAT_ECLOSED:
    case CHAT_EAGAIN:
    case CHAT_EBUSY:
    case CHAT_ETIMEDOUT:
    case CHAT_ENOTSUP:
        return 1;
    default:
        return 0;
    }
}

void chat__req_answer_error(chat__conn *c, const cJSON *re, int status, const char *reason,
                            const char *message, int64_t retry_after_ms)
{
    (chat__req_failed_on_our_side(status) ? chat__conn_decline : chat__conn_error)(
        c, re, status, reason && reason[0] ? reason : "internal",
        message && message[0] ? message : chat_strerror(status), retry_after_ms);
}

/* The loop-thread half of every request. */
static void req_done(chat_server *srv, chat__job *job)
{
    chat__req *r = (chat__req *)job;
    chat__conn *c = r->conn;
    if (job->status != CHAT_OK) {
        if (c && c->tc && !r->own_errors)
            chat__req_answer_error(c, r->re, job->status, job->reason, job->message,
                                   job->retry_after_ms);
        if (r->after)
            r->after(srv, r);
        req_free(r);
        return;
    }
    /* Latency stamps (stats.h): an ack from the send's arrival, a message from its commit. */
    if (r->ack && r->recv_us && r->reply)
        r->reply->stamp = chat__stamp(r->recv_us, CHAT__STAMP_ACK);
    if (r->fanout && job->commit_us)
        r->fanout->stamp = chat__stamp(job->commit_us, CHAT__STAMP_FANOUT);
    srv->stats.tx_state = 1; /* one clock read for the ack and the fan-out below */
    if (c && c->tc && r->reply)
        chat__conn_send(c, r->reply);
    chat__frame *frames[2] = {r->fanout, r->fanout2};
    for (int i = 0; i < 2; i++) {
        if (!frames[i] || !r->to.n)
            continue;
        if (r->fanout_local) {
            for (size_t k = 0; k < r->to.n; k++)
                chat__deliver_local(srv, r->to.users[k], NULL, frames[i]);
            continue;
        }
        chat__publish(srv, &r->to, r->fanout_all_devices ? NULL : r->user,
                      r->fanout_all_devices ? NULL : r->device, frames[i]);
    }
    if (r->hint_seq && r->fanout)
        chat__hint_note(srv, r->hint_conv, r->hint_seq, &r->to);
    srv->stats.tx_state = 0;
    if (r->push)
        push_offline(srv, r);
    if (r->after)
        r->after(srv, r);
    req_free(r);
}

chat__req *chat__req_new(chat__conn *conn, cJSON *args, int (*run)(chat__job *job, chat__txn *tx))
{
    chat__req *r = chat__calloc(1, sizeof *r);
    if (!r) {
        cJSON_Delete(args);
        return NULL;
    }
    r->job.run = run;
    r->job.done = req_done;
    r->job.discard = req_discard;
    r->args = args;
    /* The conversation the request names, locked first by its batch (worker.h). */
    chat_conv_id conv;
    if (args && chat__json_conv(args, "conv", &conv) == CHAT_OK)
        r->job.lock_conv = conv;
    if (conn) {
        r->conn = chat__conn_ref(conn);
        strcpy(r->user, conn->user);
        strcpy(r->device, conn->device);
        r->recv_us = chat__rx_us(conn->srv);
    }
    return r;
}

chat__req *chat__req_make(chat__conn *c, cJSON *f, cJSON *re,
                          int (*run)(chat__job *job, chat__txn *tx), void *extra,
                          void (*extra_free)(void *extra))
{
    chat__req *r = chat__req_new(c, f, run);
    if (!r) {
        chat__conn_decline(c, re, CHAT_ENOMEM, "internal", "out of memory", 0);
        cJSON_Delete(re);
        return NULL;
    }
    r->re = re;
    r->extra = extra;
    r->extra_free = extra_free ? extra_free : chat__free;
    return r;
}

int chat__req_start(chat__conn *c, cJSON *f, cJSON *re, int (*run)(chat__job *job, chat__txn *tx),
                    const void *args, size_t size, void (*extra_free)(void *extra))
{
    void *copy = chat__malloc(size);
    if (!copy) {
        chat__conn_decline(c, re, CHAT_ENOMEM, "internal", "out of memory", 0);
        cJSON_Delete(f);
        cJSON_Delete(re);
        return CHAT_ENOMEM;
    }
    memcpy(copy, args, size);
    chat__req *r = chat__req_make(c, f, re, run, copy, extra_free);
    if (!r) {
        chat__free(copy);
        return CHAT_ENOMEM;
    }
    chat__req_submit(c->srv, r);
    return CHAT_OK;
}

void chat__req_submit(chat_server *srv, chat__req *r)
{
    if (r->conn) {
        r->counted = 1;
        srv->writer_backlog++;
    }
    chat__server_submit(srv, &r->job);
}

cJSON *chat__req_reply(const chat__req *r, const char *type)
{
    cJSON *o = cJSON_CreateObject();
    if (o && cJSON_AddStringToObject(o, "type", type) &&
        (!r->re || chat__json_add(o, "re", chat__json_id_copy(r->re))))
        return o;
    cJSON_Delete(o);
    return NULL;
}

int chat__txn_conv(chat__txn *tx, chat__req *r, int64_t conv, chat_store_conv *out)
{
    int rc = tx->ops->conv_get(tx->st, conv, out);
    if (rc == CHAT_ENOTFOUND)
        return chat__req_fail(r, CHAT_ENOTFOUND, "not_found", "no conversation %" PRId64, conv);
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    return CHAT_OK;
}

static int not_member(chat__req *r, int64_t conv)
{
    return chat__req_fail(r, CHAT_EPERM, "not_member", "not a member of conversation %" PRId64,
                          conv);
}

static int member_of(chat__txn *tx, chat__req *r, const chat_store_conv *c, const char *user,
                     chat_store_member *m_out)
{
    int rc = tx->ops->member_get(tx->st, c->id, user, m_out);
    if (rc == CHAT_ENOTFOUND || (rc == CHAT_OK && m_out->role == CHAT_ROLE_NONE))
        return not_member(r, c->id);
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    return CHAT_OK;
}

int chat__txn_member(chat__txn *tx, chat__req *r, int64_t conv, const char *user,
                     chat_store_conv *conv_out, chat_store_member *m_out)
{
    int rc = chat__txn_conv(tx, r, conv, conv_out);
    if (rc != CHAT_OK)
        return rc;
    return member_of(tx, r, conv_out, user, m_out);
}

static int collect_member(const chat_store_member *m, void *ud)
{
    chat__userlist *l = ud;
    return chat__userlist_add(l, m->user, m->read_seq) == CHAT_OK ? 0 : CHAT_ENOMEM;
}

static int list_failed(chat__req *r, int rc)
{
    return chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                          "cannot list members");
}

int chat__txn_fanout_members(chat__txn *tx, chat__req *r, int64_t conv)
{
    int rc = tx->ops->member_list(tx->st, conv, 1, collect_member, &r->to);
    return rc == CHAT_OK ? CHAT_OK : list_failed(r, rc);
}

typedef struct member_find {
    chat__userlist *to;
    const char *user;
    chat_store_member *found;
    int n_found;
} member_find;

static int collect_and_find(const chat_store_member *m, void *ud)
{
    member_find *f = ud;
    if (!f->n_found && strcmp(m->user, f->user) == 0) {
        *f->found = *m;
        f->n_found = 1;
    }
    return collect_member(m, f->to);
}

int chat__txn_member_fanout(chat__txn *tx, chat__req *r, const chat_store_conv *c,
                            const char *user, chat_store_member *m_out)
{
    member_find f = {&r->to, user, m_out, 0};
    int rc = tx->ops->member_list(tx->st, c->id, 1, collect_and_find, &f);
    if (rc != CHAT_OK)
        return list_failed(r, rc);
    if (!f.n_found) { /* no row, or a row with role none (left or removed) */
        chat__userlist_free(&r->to);
        return not_member(r, c->id);
    }
    return CHAT_OK;
}

int chat__txn_append(chat__txn *tx, chat__req *r, chat_store_conv *conv, chat_store_msg *msg)
{
    return chat__txn_append_as(tx, r, conv, msg, NULL);
}

int chat__txn_append_as(chat__txn *tx, chat__req *r, chat_store_conv *conv, chat_store_msg *msg,
                        const chat_store_member *sender)
{
    msg->conv = conv->id;
    msg->seq = conv->head_seq + 1;
    msg->ts_ms = tx->now_ms;
    int rc = tx->ops->msg_insert(tx->st, msg);
    if (rc == CHAT_EEXISTS) /* nothing was written; the caller tells a resend apart */
        return chat__req_fail(r, CHAT_EEXISTS, "exists", "the message exists");
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the message");
    conv->head_seq = msg->seq;
    r->hint_conv = conv->id;
    r->hint_seq = msg->seq;
    tx->stored++;
    conv->change = chat__txn_bump(tx);
    rc = tx->ops->conv_update(tx->st, conv);
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot update the conversation");
    /* Sending marks the conversation delivered and read for the sender up to the message:
     * own messages never count as unread. */
    chat_store_member me;
    if (sender) {
        me = *sender;
        rc = CHAT_OK;
    } else {
        rc = tx->ops->member_get(tx->st, conv->id, msg->sender, &me);
    }
    if (rc == CHAT_OK && me.role != CHAT_ROLE_NONE) {
        me.delivered_seq = me.read_seq = msg->seq;
        me.delivered_ms = me.read_ms = tx->now_ms;
        me.change = conv->change;
        rc = tx->ops->member_put(tx->st, &me);
    } else if (rc == CHAT_ENOTFOUND || rc == CHAT_OK) {
        rc = CHAT_OK; /* e.g. the "left" event of a member who just left */
    }
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot update the sender's receipts");
    return CHAT_OK;
}

int chat__txn_event(chat__txn *tx, chat__req *r, chat_store_conv *conv, cJSON *event,
                    chat_store_msg *out)
{
    char *body = event && cJSON_AddStringToObject(event, "by", r->user)
                     ? cJSON_PrintUnformatted(event)
                     : NULL;
    cJSON_Delete(event);
    if (!body)
        return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    /* Events are stored under an empty device id, which no client has, with the seq as the
     * client id, so they can never collide with a client's own message ids. */
    char cmid[24];
    snprintf(cmid, sizeof cmid, "!%" PRIu64, conv->head_seq + 1);
    chat_store_msg m = {0};
    m.sender = r->user;
    m.device = "";
    m.cmid = cmid;
    m.kind = CHAT_MSG_EVENT;
    m.body = body;
    m.body_len = strlen(body);
    int rc = chat__txn_append(tx, r, conv, &m);
    if (rc == CHAT_OK) {
        r->fanout = chat__msg_frame(&m, NULL);
        if (!r->fanout)
            rc = chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
        r->fanout_all_devices = 1;
        if (out)
            *out = m;
    }
    cJSON_free(body);
    if (out) {
        out->body = NULL;
        out->body_len = 0;
        out->cmid = NULL;
    }
    return rc;
}

static const char *kind_name(int kind)
{
    switch (kind) {
    case CHAT_MSG_MEDIA: return "media";
    case CHAT_MSG_EVENT: return "event";
    default: return "text";
    }
}

cJSON *chat__msg_json(const chat_store_msg *m)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "msg") &&
             cJSON_AddNumberToObject(o, "conv", (double)m->conv) &&
             cJSON_AddNumberToObject(o, "seq", (double)m->seq) &&
             cJSON_AddNumberToObject(o, "ts", (double)m->ts_ms) &&
             cJSON_AddStringToObject(o, "from", m->sender) &&
             cJSON_AddStringToObject(o, "device", m->device) &&
             cJSON_AddStringToObject(o, "cmid", m->kind == CHAT_MSG_EVENT ? "" : m->cmid) &&
             cJSON_AddStringToObject(o, "kind", kind_name(m->kind));
    if (ok && m->kind == CHAT_MSG_TEXT) {
        char *text = chat__strndup(m->body, m->body_len);
        ok = text && cJSON_AddStringToObject(o, "text", text);
        chat__free(text);
    } else if (ok) {
        /* A stored body that is not JSON (a host's store, damaged) reads as null; one that
         * could not be parsed for want of memory fails the message. */
        int oom = 0;
        cJSON *body = chat__json_parse(m->body, m->body_len, &oom);
        ok = !oom && chat__json_add(o, m->kind == CHAT_MSG_MEDIA ? "media" : "event",
                                    body ? body : cJSON_CreateNull());
    }
    if (ok)
        return o;
    cJSON_Delete(o);
    return NULL;
}

const char *chat__role_name(int role)
{
    switch (role) {
    case CHAT_ROLE_OWNER: return "owner";
    case CHAT_ROLE_ADMIN: return "admin";
    case CHAT_ROLE_MEMBER: return "member";
    default: return "none";
    }
}

int chat__role_parse(const char *s)
{
    if (strcmp(s, "owner") == 0)
        return CHAT_ROLE_OWNER;
    if (strcmp(s, "admin") == 0)
        return CHAT_ROLE_ADMIN;
    if (strcmp(s, "member") == 0)
        return CHAT_ROLE_MEMBER;
    return -1;
}

int chat__member_json_add(const chat_store_member *m, void *ud)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "user", m->user) &&
             cJSON_AddStringToObject(o, "role", chat__role_name(m->role)) &&
             cJSON_AddNumberToObject(o, "delivered", (double)m->delivered_seq) &&
             cJSON_AddNumberToObject(o, "read", (double)m->read_seq) &&
             cJSON_AddNumberToObject(o, "delivered_ts", (double)m->delivered_ms) &&
             cJSON_AddNumberToObject(o, "read_ts", (double)m->read_ms);
    if (!ok) {
        cJSON_Delete(o);
        return CHAT_ENOMEM;
    }
    cJSON_AddItemToArray(ud, o); /* allocates nothing */
    return 0;
}

/* The newest message a conversation's list shows (not a thread reply, not an edit, delete or
 * reaction), among the few read. */
#define LAST_SCAN 16

static int keep_last(const chat_store_msg *m, void *ud)
{
    cJSON **out = ud;
    if (!chat__msg_listed(m))
        return 0;
    *out = chat__msg_item(m, NULL);
    return *out ? 1 : CHAT_ENOMEM; /* found: stop */
}

cJSON *chat__txn_conv_json(chat__txn *tx, const chat_store_member *m)
{
    chat_store_conv conv;
    if (tx->ops->conv_get(tx->st, m->conv, &conv) != CHAT_OK)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    /* A member who left sees the conversation as it was when it left: the head is the event
     * that removed it (its read watermark), and nothing after, not even the title. */
    int left = m->role == CHAT_ROLE_NONE;
    if (left) {
        conv.head_seq = m->read_seq;
        conv.title[0] = '\0';
    }
    /* Unread: what counts in the main conversation after my read watermark (not thread
     * replies, edits, deletes, reactions or erased messages); head - read without a store
     * that can tell. */
    uint64_t unread = 0;
    int ok = 1;
    if (!left && conv.head_seq > m->read_seq) {
        unread = conv.head_seq - m->read_seq;
        if (tx->srv->lifecycle)
            ok = tx->ops->msg_count(tx->st, conv.id, 0, m->read_seq, conv.head_seq, &unread) ==
                 CHAT_OK;
    }
    int64_t muted = left ? 0 : chat__push_muted_until(tx, m->user, conv.id);
    ok = ok && cJSON_AddNumberToObject(o, "conv", (double)conv.id) &&
         cJSON_AddStringToObject(o, "kind", conv.kind == CHAT_CONV_GROUP ? "group" : "direct") &&
         cJSON_AddStringToObject(o, "title", conv.title) &&
         cJSON_AddStringToObject(o, "role", chat__role_name(m->role)) &&
         cJSON_AddNumberToObject(o, "head", (double)conv.head_seq) &&
         cJSON_AddNumberToObject(o, "delivered", (double)m->delivered_seq) &&
         cJSON_AddNumberToObject(o, "read", (double)m->read_seq) &&
         cJSON_AddNumberToObject(o, "unread", (double)unread) &&
         (!muted || cJSON_AddNumberToObject(o, "muted_until", (double)muted)) &&
         cJSON_AddNumberToObject(o, "joined", (double)m->joined_seq) &&
         (!conv.msg_ttl_ms || cJSON_AddNumberToObject(o, "ttl_ms", (double)conv.msg_ttl_ms));
    cJSON *last = NULL;
    if (ok && conv.head_seq > m->joined_seq) {
        /* keep_last answers 1 when it found one; none listed among the few read: null */
        int lr = tx->ops->msg_range(tx->st, conv.id, m->joined_seq, conv.head_seq + 1, LAST_SCAN,
                                    1, keep_last, &last);
        ok = lr == CHAT_OK || lr == 1;
    }
    if (ok)
        ok = chat__json_add(o, "last", last ? last : cJSON_CreateNull());
    else
        cJSON_Delete(last);
    cJSON *members = ok ? cJSON_AddArrayToObject(o, "members") : NULL;
    ok = members && (left || tx->ops->member_list(tx->st, conv.id, 1, chat__member_json_add,
                                                  members) == CHAT_OK);
    if (ok)
        return o;
    cJSON_Delete(o);
    return NULL;
}
