/* Edits, deletes for everyone, reactions, the disappearing-messages timer and a thread's read
 * watermark: each change is appended to the conversation as a message of its own (its seq,
 * its target's seq) in the transaction that changes the target's row, so history, sync and
 * live delivery carry it like any message, and the row shows the current state. Erasure
 * overwrites bodies and drops what they refer to. */
#include "server/lifecycle.h"
#include "server/media.h"

#include "core/alloc.h"
#include "core/array.h"
#include "core/ids.h"
#include "core/json.h"
#include "core/rules.h"
#include "core/utf8.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum life_op { OP_EDIT, OP_DELETE, OP_REACT, OP_TIMER, OP_THREAD_READ };

typedef struct life_args {
    int op;
    int64_t conv;
    uint64_t seq;           /* the target; a thread's root for OP_THREAD_READ */
    uint64_t read;          /* OP_THREAD_READ */
    const char *text;       /* OP_EDIT, into args */
    size_t text_len;
    const char *cmid;       /* optional client id, into args */
    char emoji[CHAT_REACTION_MAX + 1];
    int on;
    int64_t ttl_ms;
    chat__blobs blobs;      /* media whose last reference an erasure took */
} life_args;

int chat__req_no_lifecycle(chat__req *r)
{
    return chat__req_fail(r, CHAT_ENOTSUP, "no_lifecycle",
                          "this server's store keeps no message lifecycle");
}

void chat__thread_read_key(char *buf, size_t size, int64_t conv, uint64_t root,
                           const char *user)
{
    snprintf(buf, size, "tr/%" PRId64 "/%" PRIu64 "/%s", conv, root, user);
}

static int keep_copy(const chat_store_msg *m, void *ud)
{
    return chat__msg_copy(ud, m) == CHAT_OK ? 0 : CHAT_ENOMEM;
}

int chat__txn_visible(chat__txn *tx, chat__req *r, int64_t conv, uint64_t seq,
                      const chat_store_member *me, chat_store_msg *out)
{
    int rc = seq > me->joined_seq ? tx->ops->msg_get(tx->st, conv, seq, keep_copy, out)
                                  : CHAT_ENOTFOUND;
    if (rc == CHAT_ENOTFOUND)
        return chat__req_fail(r, CHAT_ENOTFOUND, "not_found", "no message %" PRIu64
                              " in conversation %" PRId64, seq, conv);
    if (rc != CHAT_OK)
        return chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                              "the store failed");
    return CHAT_OK;
}

/* ---- erasure ---- */

void chat__blobs_free(chat__blobs *b)
{
    chat__free(b->ids);
    memset(b, 0, sizeof *b);
}

/* The media id a media message refers to when it is this server's, else "". */
static void media_id_of(const chat_store_msg *m, char out[CHAT_MEDIA_ID_MAX + 1])
{
    out[0] = '\0';
    cJSON *j = cJSON_ParseWithLength(m->body, m->body_len);
    const char *id = chat__json_str(j, "id", NULL);
    if (id && chat__media_id_valid(id, strlen(id)))
        snprintf(out, CHAT_MEDIA_ID_MAX + 1, "%s", id);
    cJSON_Delete(j);
}

static int erased(const chat_store_msg *m)
{
    return (m->flags & CHAT_STORE_MSG_ERASED) != 0;
}

/* Put body in the rows of t's edits that hold a text, but skip's: every such edit
 * (current 0: an erasure empties them, edited_ms kept), or those that carry t's current text
 * (current 1: an edit gives them the new text and edited_ms). */
static int rewrite_edits(chat__txn *tx, const chat_store_msg *t, uint64_t skip, int current,
                         const char *body, size_t len, int64_t edited_ms)
{
    chat__page edits = {0};
    int rc = tx->ops->msg_related(tx->st, t->conv, t->seq, CHAT_MSG_EDIT, chat__page_add,
                                  &edits);
    for (size_t i = 0; rc == CHAT_OK && i < edits.n; i++) {
        chat_store_msg e = edits.v[i];
        int holds = current ? (e.flags & CHAT_STORE_MSG_CURRENT) && !erased(&e) : e.body_len > 0;
        if (e.seq == skip || !holds)
            continue;
        e.body = body;
        e.body_len = len;
        if (current)
            e.edited_ms = edited_ms;
        rc = tx->ops->msg_update(tx->st, &e);
    }
    chat__page_free(&edits);
    return rc;
}

int chat__txn_erase(chat__txn *tx, const chat_store_msg *m, unsigned int flag,
                    chat__blobs *blobs)
{
    int rc;
    if (m->kind == CHAT_MSG_MEDIA) {
        char id[CHAT_MEDIA_ID_MAX + 1];
        media_id_of(m, id);
        int64_t left = 1;
        rc = id[0] ? tx->ops->media_refs(tx->st, id, -1, &left) : CHAT_ENOTFOUND;
        if (rc == CHAT_OK && left <= 0) {
            if ((rc = tx->ops->media_delete(tx->st, id)) != CHAT_OK)
                return rc;
            char(*ids)[CHAT_MEDIA_ID_MAX + 1] =
                chat__array_reserve(blobs->ids, blobs->n, &blobs->cap, sizeof *blobs->ids);
            if (!ids)
                return CHAT_ENOMEM;
            blobs->ids = ids;
            memcpy(blobs->ids[blobs->n++], id, sizeof *ids);
        } else if (rc != CHAT_OK && rc != CHAT_ENOTFOUND && rc != CHAT_ENOTSUP) {
            return rc;
        }
    }
    /* The texts its edits hold go with it: its current one (CHAT_STORE_MSG_CURRENT), or the
     * ones it replaced (CHAT_SERVER_KEEP_EDITS). */
    rc = rewrite_edits(tx, m, 0, 0, "", 0, 0);
    if (rc == CHAT_OK)
        rc = tx->ops->reaction_clear(tx->st, m->conv, m->seq, "");
    if (rc != CHAT_OK)
        return rc;
    chat_store_msg t = *m;
    t.body = "";
    t.body_len = 0;
    t.flags |= flag;
    return tx->ops->msg_update(tx->st, &t);
}

typedef struct blob_job {
    chat__job job;
    chat_server *srv;
    chat__blobs blobs;
} blob_job;

static int blob_run(chat__job *job, chat__txn *tx)
{
    (void)tx;
    blob_job *j = (blob_job *)job;
    for (size_t i = 0; i < j->blobs.n; i++) {
        int rc = j->srv->blob->remove(j->srv->blob_st, j->blobs.ids[i]);
        if (rc != CHAT_OK && rc != CHAT_ENOTFOUND)
            chat__log(j->srv, CHAT_LOG_WARN, "cannot remove media %s from the blob store: %s",
                      j->blobs.ids[i], chat_error_name(rc));
    }
    return CHAT_OK;
}

static void blob_done(chat_server *srv, chat__job *job)
{
    (void)srv;
    blob_job *j = (blob_job *)job;
    chat__blobs_free(&j->blobs);
    chat__free(j);
}

void chat__blobs_remove(chat_server *srv, chat__blobs *blobs)
{
    if (!blobs->n)
        return;
    if (!srv->blob || srv->blob->version < 2 || !srv->blob->remove) {
        chat__log(srv, CHAT_LOG_INFO, "%zu media objects left in a blob store that cannot "
                  "remove them", blobs->n);
        chat__blobs_free(blobs);
        return;
    }
    blob_job *j = chat__calloc(1, sizeof *j);
    if (!j) {
        chat__blobs_free(blobs);
        return;
    }
    j->srv = srv;
    j->blobs = *blobs;
    memset(blobs, 0, sizeof *blobs);
    j->job.run = blob_run;
    j->job.done = blob_done;
    chat__worker_submit(&srv->hasher, &j->job); /* file I/O: off the loop thread */
}

/* ---- the requests ---- */

static int reply_ok(chat__req *r, int64_t conv, const chat_store_msg *ev, int dup)
{
    cJSON *o = chat__req_reply(r, "ok");
    if (o) {
        cJSON_AddNumberToObject(o, "conv", (double)conv);
        if (ev) {
            cJSON_AddNumberToObject(o, "seq", (double)ev->seq);
            cJSON_AddNumberToObject(o, "ts", (double)ev->ts_ms);
        }
        if (dup)
            cJSON_AddBoolToObject(o, "dup", 1);
        if (!ev && !dup)
            cJSON_AddBoolToObject(o, "changed", 0);
    }
    r->reply = chat__frame_take_json(o);
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

/* A change retried with the client id it was stored under: answered as the first time. */
static int answer_dup(chat__txn *tx, chat__req *r, int64_t conv, const char *cmid)
{
    chat_store_msg ev;
    int rc = tx->ops->msg_find_cmid(tx->st, conv, r->user, r->device, cmid, keep_copy, &ev);
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    chat__job_clear(&r->job); /* the refused insert's failure */
    chat__userlist_free(&r->to); /* nothing new to tell anyone */
    rc = reply_ok(r, conv, &ev, 1);
    chat__msg_free(&ev);
    return rc;
}

/* The message of this change, appended at the conversation's head as the requester's. */
static int append_change(chat__txn *tx, chat__req *r, chat_store_conv *conv,
                         const chat_store_member *me, const life_args *a, int kind,
                         const chat_store_msg *target, const char *body, size_t len,
                         unsigned int flags, chat_store_msg *ev)
{
    memset(ev, 0, sizeof *ev);
    ev->sender = r->user;
    ev->device = r->device;
    ev->cmid = a->cmid; /* none: NULL, never deduplicated */
    ev->kind = kind;
    ev->body = body;
    ev->body_len = len;
    ev->target_seq = target->seq;
    ev->expires_ms = target->expires_ms; /* a change lives as long as what it changed */
    ev->flags = flags;
    if (flags & CHAT_STORE_MSG_CURRENT)
        ev->edited_ms = tx->now_ms;
    return chat__txn_append_as(tx, r, conv, ev, me);
}

static int refuse(chat__req *r, int verdict, const char *what)
{
    if (verdict == CHAT__LIFE_FORBIDDEN)
        return chat__req_fail(r, CHAT_EPERM, "forbidden", "not allowed to %s this message",
                              what);
    return chat__req_fail(r, CHAT_EPERM, "too_late", "too late to %s this message", what);
}

static int edit_run(chat__txn *tx, chat__req *r, life_args *a, chat_store_conv *conv,
                    const chat_store_member *me, chat_store_msg *t, chat_store_msg *ev)
{
    if (t->kind != CHAT_MSG_TEXT || erased(t))
        return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                              "only a text message that is not deleted can be edited");
    int v = chat__may_edit(strcmp(t->sender, r->user) == 0, tx->now_ms - t->ts_ms,
                           chat__limit(tx->srv, CHAT_LIMIT_EDIT_WINDOW_MS));
    if (v != CHAT__LIFE_OK)
        return refuse(r, v, "edit");
    /* The edit's row carries the new text, so that a history page shows it without reading
     * the target; the host may ask to keep the text replaced there instead (then a page reads
     * the target). */
    int keep = (tx->srv->cfg.flags & CHAT_SERVER_KEEP_EDITS) != 0;
    int rc = append_change(tx, r, conv, me, a, CHAT_MSG_EDIT, t, keep ? t->body : a->text,
                           keep ? t->body_len : a->text_len, keep ? 0 : CHAT_STORE_MSG_CURRENT,
                           ev);
    if (rc != CHAT_OK)
        return rc;
    chat_store_msg now = *t;
    now.body = a->text;
    now.body_len = a->text_len;
    now.edited_ms = tx->now_ms;
    if (tx->ops->msg_update(tx->st, &now) != CHAT_OK ||
        (rc = rewrite_edits(tx, t, ev->seq, 1, now.body, now.body_len, now.edited_ms)) !=
            CHAT_OK)
        return chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                              "cannot store the edit");
    chat__msg_view view = {&now, 0, NULL, 0};
    r->fanout = chat__msg_frame(ev, &view);
    return CHAT_OK;
}

static int delete_run(chat__txn *tx, chat__req *r, life_args *a, chat_store_conv *conv,
                      const chat_store_member *me, chat_store_msg *t, chat_store_msg *ev)
{
    if ((t->kind != CHAT_MSG_TEXT && t->kind != CHAT_MSG_MEDIA) || erased(t))
        return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                              "only a text or media message that is not deleted can be "
                              "deleted");
    int v = chat__may_delete(strcmp(t->sender, r->user) == 0, conv->kind == CHAT_CONV_GROUP,
                             me->role, tx->now_ms - t->ts_ms,
                             chat__limit(tx->srv, CHAT_LIMIT_DELETE_WINDOW_MS));
    if (v != CHAT__LIFE_OK)
        return refuse(r, v, "delete");
    int rc = append_change(tx, r, conv, me, a, CHAT_MSG_DELETE, t, "", 0, 0, ev);
    if (rc != CHAT_OK)
        return rc;
    rc = chat__txn_erase(tx, t, CHAT_STORE_MSG_DELETED, &a->blobs);
    if (rc != CHAT_OK)
        return chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                              "cannot erase the message");
    r->fanout = chat__msg_frame(ev, NULL);
    return CHAT_OK;
}

static int react_run(chat__txn *tx, chat__req *r, life_args *a, chat_store_conv *conv,
                     const chat_store_member *me, chat_store_msg *t, chat_store_msg *ev,
                     int *unchanged)
{
    if ((t->kind != CHAT_MSG_TEXT && t->kind != CHAT_MSG_MEDIA) || erased(t))
        return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                              "only a text or media message that is not deleted takes "
                              "reactions");
    chat_store_reaction x;
    memset(&x, 0, sizeof x);
    x.conv = conv->id;
    x.seq = t->seq;
    snprintf(x.user, sizeof x.user, "%s", r->user);
    memcpy(x.emoji, a->emoji, sizeof x.emoji);
    x.ts_ms = tx->now_ms;
    int rc = tx->ops->reaction_set(tx->st, &x, a->on);
    if (rc == CHAT_EEXISTS || rc == CHAT_ENOTFOUND) { /* already as asked: nothing to tell */
        *unchanged = 1;
        return CHAT_OK;
    }
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the reaction");
    char body[CHAT_REACTION_MAX + 2];
    int len = snprintf(body, sizeof body, "%c%s", a->on ? '+' : '-', a->emoji);
    rc = append_change(tx, r, conv, me, a, CHAT_MSG_REACT, t, body, (size_t)len, 0, ev);
    if (rc == CHAT_EEXISTS) /* the id was taken meanwhile: the reaction is written already */
        return chat__req_fail(r, CHAT_EIO, "storage", "client id taken");
    if (rc != CHAT_OK)
        return rc;
    r->fanout = chat__msg_frame(ev, NULL);
    return CHAT_OK;
}

static int timer_run(chat__txn *tx, chat__req *r, life_args *a, chat_store_conv *conv,
                     const chat_store_member *me)
{
    if (conv->kind == CHAT_CONV_GROUP && !chat__group_may(me->role, CHAT__GROUP_TIMER, 0))
        return chat__req_fail(r, CHAT_EPERM, "forbidden", "only owners and admins set the timer");
    conv->msg_ttl_ms = a->ttl_ms; /* written with the event's head */
    cJSON *e = cJSON_CreateObject();
    if (e && (!cJSON_AddStringToObject(e, "type", "timer") ||
              !chat__json_add_int(e, "ttl_ms", a->ttl_ms))) {
        cJSON_Delete(e);
        e = NULL;
    }
    chat_store_msg ev;
    int rc = chat__txn_event(tx, r, conv, e, &ev); /* consumes e; fails r when NULL */
    return rc == CHAT_OK ? reply_ok(r, conv->id, &ev, 0) : rc;
}

static int thread_read_run(chat__txn *tx, chat__req *r, life_args *a, chat_store_conv *conv,
                           const chat_store_member *me)
{
    chat_store_msg root;
    int rc = chat__txn_visible(tx, r, conv->id, a->seq, me, &root);
    if (rc != CHAT_OK)
        return rc;
    int is_root = root.thread_seq == 0 && root.kind <= CHAT_MSG_MEDIA;
    chat__msg_free(&root);
    if (!is_root)
        return chat__req_fail(r, CHAT_EINVAL, "bad_field", "message %" PRIu64
                              " is not a thread's root", a->seq);
    if (a->read > conv->head_seq)
        return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                              "receipt beyond the last message (seq %" PRIu64 ")",
                              conv->head_seq);
    char key[CHAT__THREAD_KEY_MAX];
    chat__thread_read_key(key, sizeof key, conv->id, a->seq, r->user);
    int64_t read = 0;
    rc = tx->ops->meta_get(tx->st, key, &read);
    if (rc != CHAT_OK && rc != CHAT_ENOTFOUND)
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    int moved = a->read > (uint64_t)read;
    if (moved) { /* forward only */
        read = (int64_t)a->read;
        if (tx->ops->meta_set(tx->st, key, read) != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the receipt");
    }
    uint64_t unread = 0;
    uint64_t from = (uint64_t)read > me->joined_seq ? (uint64_t)read : me->joined_seq;
    if (tx->ops->msg_count(tx->st, conv->id, a->seq, from, conv->head_seq, &unread) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot count the thread");
    /* The answer, and for my other devices (when it moved) the same as a receipt. */
    cJSON *o[2] = {chat__req_reply(r, "ok"), moved ? cJSON_CreateObject() : NULL};
    if (o[1])
        cJSON_AddStringToObject(o[1], "type", "receipt");
    for (int i = 0; i < 2; i++) {
        if (!o[i])
            continue;
        cJSON_AddNumberToObject(o[i], "conv", (double)conv->id);
        cJSON_AddNumberToObject(o[i], "thread", (double)a->seq);
        if (i)
            cJSON_AddStringToObject(o[i], "user", r->user);
        cJSON_AddNumberToObject(o[i], "read", (double)read);
        cJSON_AddNumberToObject(o[i], "unread", (double)unread);
    }
    r->reply = chat__frame_take_json(o[0]);
    if (moved) {
        r->fanout = chat__frame_take_json(o[1]);
        if (chat__userlist_add(&r->to, r->user, 0) != CHAT_OK || !r->fanout)
            return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    }
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

static int life_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    life_args *a = r->extra;
    if (!tx->srv->lifecycle)
        return chat__req_no_lifecycle(r);
    chat_store_conv conv;
    chat_store_member me;
    int rc = chat__txn_conv(tx, r, a->conv, &conv);
    if (rc != CHAT_OK)
        return rc;
    if (a->op == OP_THREAD_READ)
        return chat__txn_member(tx, r, a->conv, r->user, &conv, &me) == CHAT_OK
                   ? thread_read_run(tx, r, a, &conv, &me)
                   : r->job.status;
    /* Every member hears of the change: the list, and my row among it. */
    if ((rc = chat__txn_member_fanout(tx, r, &conv, r->user, &me)) != CHAT_OK)
        return rc;
    r->fanout_all_devices = 1;
    /* A retry of a change stored before is answered as the first time, before any check:
     * what it changed (a message now deleted, a reaction now on) would refuse it. */
    if (a->cmid) {
        chat_store_msg dup;
        rc = tx->ops->msg_find_cmid(tx->st, conv.id, r->user, r->device, a->cmid, keep_copy,
                                    &dup);
        if (rc == CHAT_OK) {
            chat__msg_free(&dup);
            return answer_dup(tx, r, conv.id, a->cmid);
        }
        if (rc != CHAT_ENOTFOUND)
            return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    }
    if (a->op == OP_TIMER)
        return timer_run(tx, r, a, &conv, &me);
    chat_store_msg t, ev;
    if ((rc = chat__txn_visible(tx, r, conv.id, a->seq, &me, &t)) != CHAT_OK)
        return rc;
    int unchanged = 0;
    switch (a->op) {
    case OP_EDIT:
        rc = edit_run(tx, r, a, &conv, &me, &t, &ev);
        break;
    case OP_DELETE:
        rc = delete_run(tx, r, a, &conv, &me, &t, &ev);
        break;
    default:
        rc = react_run(tx, r, a, &conv, &me, &t, &ev, &unchanged);
        break;
    }
    chat__msg_free(&t);
    if (rc == CHAT_EEXISTS) /* nothing was written: a retry of a change stored before */
        return answer_dup(tx, r, conv.id, a->cmid);
    if (rc != CHAT_OK)
        return rc;
    if (unchanged) {
        chat__userlist_free(&r->to);
        return reply_ok(r, conv.id, NULL, 0);
    }
    if (!r->fanout)
        return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    return reply_ok(r, conv.id, &ev, 0);
}

/* After the outputs went out: the blobs of media no message refers to any more. */
static void life_after(chat_server *srv, chat__req *r)
{
    life_args *a = r->extra;
    if (r->job.status == CHAT_OK)
        chat__blobs_remove(srv, &a->blobs);
}

static void life_free(void *p)
{
    life_args *a = p;
    if (a)
        chat__blobs_free(&a->blobs);
    chat__free(a);
}

static void life_start(chat__conn *c, cJSON *f, cJSON *re, const life_args *a)
{
    life_args *copy = chat__malloc(sizeof *a);
    chat__req *r = copy ? chat__req_new(c, f, life_run) : NULL; /* takes f */
    if (!r) {
        if (!copy)
            cJSON_Delete(f);
        chat__free(copy);
        cJSON_Delete(re);
        return;
    }
    *copy = *a;
    r->re = re;
    r->extra = copy;
    r->extra_free = life_free;
    r->after = life_after;
    chat__req_submit(c->srv, r);
}

/* ---- parsing [loop thread] ---- */

/* The fields every change has: conv, seq, and an optional cmid. 0 when refused (answered). */
static int common_args(chat__conn *c, cJSON *f, cJSON *re, life_args *a, int with_seq)
{
    if (!c->srv->lifecycle) {
        chat__conn_decline(c, re, CHAT_ENOTSUP, "no_lifecycle",
                           "this server's store keeps no message lifecycle", 0);
        return 0;
    }
    if (!chat__arg_conv(c, f, re, &a->conv))
        return 0;
    if (with_seq) {
        int rc = chat__json_u64(f, "seq", &a->seq);
        if (rc != CHAT_OK || a->seq == 0) {
            chat__conn_error(c, re, CHAT_EINVAL, rc == CHAT_ENOTFOUND ? "missing_field"
                                                                      : "bad_field",
                             "field 'seq' must be a message's seq", 0);
            return 0;
        }
    }
    size_t n = 0;
    if (!chat__arg_str(c, f, re, "cmid", 0, &a->cmid, &n))
        return 0;
    if (a->cmid && !chat__cmid_valid(a->cmid, n)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                         "'cmid' must be 1-64 printable ASCII characters, no space", 0);
        return 0;
    }
    return 1;
}

static void start_or_drop(chat__conn *c, cJSON *f, cJSON *re, const life_args *a, int ok)
{
    if (ok) {
        life_start(c, f, re, a);
        return;
    }
    cJSON_Delete(re);
    cJSON_Delete(f);
}

void chat__handle_edit(chat__conn *c, cJSON *f, cJSON *re)
{
    life_args a = {.op = OP_EDIT};
    int ok = common_args(c, f, re, &a, 1) &&
             chat__arg_str(c, f, re, "text", 1, &a.text, &a.text_len);
    if (ok && a.text_len == 0) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'text' must not be empty", 0);
        ok = 0;
    } else if (ok && (int64_t)a.text_len > chat__limit(c->srv, CHAT_LIMIT_BODY_BYTES)) {
        chat__conn_error(c, re, CHAT_ELIMIT, "body_too_large", "text is over the body limit",
                         0);
        ok = 0;
    }
    start_or_drop(c, f, re, &a, ok && chat__send_admit(c, re));
}

void chat__handle_delete(chat__conn *c, cJSON *f, cJSON *re)
{
    life_args a = {.op = OP_DELETE};
    int ok = common_args(c, f, re, &a, 1);
    start_or_drop(c, f, re, &a, ok && chat__send_admit(c, re));
}

void chat__handle_react(chat__conn *c, cJSON *f, cJSON *re)
{
    life_args a = {.op = OP_REACT, .on = 1};
    const char *emoji = NULL;
    int ok = common_args(c, f, re, &a, 1) && chat__arg_str(c, f, re, "emoji", 1, &emoji, NULL);
    if (ok) {
        int rb = chat__json_bool(f, "on", &a.on);
        if (rb != CHAT_OK && rb != CHAT_ENOTFOUND) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'on' must be true or false", 0);
            ok = 0;
        }
    }
    if (ok) {
        const struct chat_server_config *cfg = &c->srv->cfg;
        int known = 0;
        for (int i = 0; i < cfg->n_reactions && !known; i++)
            known = strcmp(cfg->reactions[i], emoji) == 0;
        if (!known) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                             "'emoji' is not one of the server's reactions", 0);
            ok = 0;
        } else {
            snprintf(a.emoji, sizeof a.emoji, "%s", emoji);
        }
    }
    start_or_drop(c, f, re, &a, ok && chat__send_admit(c, re));
}

/* Shortest disappearing-messages timer; 0 turns it off. */
#define TTL_MIN_MS 1000
#define TTL_MAX_MS (3650LL * 86400000)

void chat__handle_conv_timer(chat__conn *c, cJSON *f, cJSON *re)
{
    life_args a = {.op = OP_TIMER};
    uint64_t ttl = 0;
    int ok = common_args(c, f, re, &a, 0);
    if (ok) {
        int rc = chat__json_u64(f, "ttl_ms", &ttl);
        if (rc != CHAT_OK || (ttl && (ttl < TTL_MIN_MS || ttl > (uint64_t)TTL_MAX_MS))) {
            chat__conn_error(c, re, CHAT_EINVAL, rc == CHAT_ENOTFOUND ? "missing_field"
                                                                      : "bad_field",
                             "'ttl_ms' must be 0 (off) or 1000 ms to 10 years", 0);
            ok = 0;
        }
    }
    a.ttl_ms = (int64_t)ttl;
    start_or_drop(c, f, re, &a, ok);
}

void chat__handle_thread_receipt(chat__conn *c, cJSON *f, cJSON *re)
{
    life_args a = {.op = OP_THREAD_READ};
    int ok = common_args(c, f, re, &a, 0);
    if (ok) {
        int rt = chat__json_u64(f, "thread", &a.seq), rr = chat__json_u64(f, "read", &a.read);
        if (rt != CHAT_OK || a.seq == 0 || rr != CHAT_OK ||
            chat__json_get(f, "delivered")) {
            chat__conn_error(c, re, CHAT_EINVAL, rr == CHAT_ENOTFOUND ? "missing_field"
                                                                      : "bad_field",
                             "a thread's receipt is 'thread' and 'read' (seqs)", 0);
            ok = 0;
        }
    }
    start_or_drop(c, f, re, &a, ok);
}
