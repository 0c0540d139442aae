/* The client engine's loop thread: connection state machine with backoff and heartbeat, the
 * protocol (auth, sync, history, acks, receipts, groups, presence, typing), and the outbox
 * flush. Everything here runs on the loop thread; host threads reach it through
 * chat__client_post() (a mutex-protected command list + the transport's wake()). */
#define _GNU_SOURCE
#include "client/internal.h"

#include "core/alloc.h"
#include "core/array.h"
#include "core/decode.h"
#include "core/error.h"
#include "core/json.h"
#include "core/thread.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SYNC_PAGE 200
#define FIRST_FETCH 50 /* a conversation new to the cache: only its latest messages */
#define SEND_OOM_RETRY_MS 1000 /* an outbox message that could not be encoded waits this long */

int64_t chat__mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void chat__client_log(chat_client *c, int level, const char *fmt, ...)
{
    if (!c->log_cb || level > c->log_level)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->log_cb(level, buf, c->log_ud);
}

int chat__client_post(chat_client *c, chat__cmd *cmd)
{
    cmd->next = NULL;
    pthread_mutex_lock(&c->cmd_mu);
    if (c->cmd_tail)
        c->cmd_tail->next = cmd;
    else
        c->cmd_head = cmd;
    c->cmd_tail = cmd;
    pthread_mutex_unlock(&c->cmd_mu);
    c->tops->wake(c->tstate);
    return CHAT_OK;
}

char *chat__client_me(chat_client *c)
{
    pthread_mutex_lock(&c->cmd_mu);
    char *me = c->me ? chat__strdup(c->me) : NULL;
    pthread_mutex_unlock(&c->cmd_mu);
    return me;
}

/* ---- events -------------------------------------------------------------------------------- */

static void emit_simple(chat_client *c, int type, int code, const char *message)
{
    chat_event *ev = chat__event_new(type);
    if (!ev)
        return;
    ev->code = code;
    chat__event_set_str(&ev->message, message);
    chat__event_emit(c, ev);
}

static void emit_result(chat_client *c, int type, uint64_t request, int code, const char *msg,
                        chat_conv_id conv, uint64_t seq)
{
    chat_event *ev = chat__event_new(type);
    if (!ev)
        return;
    ev->request = request;
    ev->code = code;
    ev->conv = conv;
    ev->seq = seq;
    chat__event_set_str(&ev->message, msg);
    chat__event_emit(c, ev);
}

static void emit_conv(chat_client *c, chat_conv_id conv)
{
    chat_event *ev = chat__event_new(CHAT_EVENT_CONV);
    if (ev) {
        ev->conv = conv;
        chat__event_emit(c, ev);
    }
}

static void set_state(chat_client *c, int s) { atomic_store(&c->state, s); }

/* ---- frames and pending requests --------------------------------------------------------- */

static void pend_free(chat__pend *p)
{
    chat__free(p->cmid);
    chat__free(p);
}

static chat__pend *pend_take(chat_client *c, uint64_t id)
{
    for (chat__pend **pp = &c->pend; *pp; pp = &(*pp)->next)
        if ((*pp)->id == id) {
            chat__pend *p = *pp;
            *pp = p->next;
            return p;
        }
    return NULL;
}

/* Send o (taken) with a fresh id when kind != 0, remembering what answers it. */
static int send_frame(chat_client *c, cJSON *o, int kind, uint64_t request, chat_conv_id conv,
                      uint64_t after, const char *cmid)
{
    int rc = CHAT_ENOMEM;
    chat__pend *p = NULL;
    if (kind) {
        p = chat__calloc(1, sizeof *p);
        if (!p || (cmid && !(p->cmid = chat__strdup(cmid))))
            goto out;
        p->id = ++c->next_id;
        p->kind = kind;
        p->request = request;
        p->conv = conv;
        p->after = after;
        char id[24];
        snprintf(id, sizeof id, "%" PRIu64, p->id);
        cJSON_DeleteItemFromObjectCaseSensitive(o, "id");
        if (!cJSON_AddStringToObject(o, "id", id))
            goto out;
    }
    char *text = cJSON_PrintUnformatted(o);
    if (!text)
        goto out;
    rc = c->tops->send_text(c->tstate, text, strlen(text));
    cJSON_free(text);
    if (rc == CHAT_OK && p) {
        p->next = c->pend;
        c->pend = p;
        p = NULL;
    }
out:
    if (p)
        pend_free(p);
    cJSON_Delete(o);
    return rc;
}

/* o when every add into it succeeded (ok), else NULL with o deleted: a frame goes out whole
 * or not at all, and send_frame(NULL) fails with CHAT_ENOMEM. */
static cJSON *built(cJSON *o, int ok)
{
    if (ok)
        return o;
    cJSON_Delete(o);
    return NULL;
}

static void send_receipt(chat_client *c, chat_conv_id conv, uint64_t delivered, uint64_t read)
{
    cJSON *o = cJSON_CreateObject();
    o = built(o, o && cJSON_AddStringToObject(o, "type", "receipt") &&
                     chat__json_add_int(o, "conv", conv) &&
                     (!delivered || chat__json_add_int(o, "delivered", (int64_t)delivered)) &&
                     (!read || chat__json_add_int(o, "read", (int64_t)read)));
    send_frame(c, o, PEND_RECEIPT, 0, conv, 0, NULL);
}

/* ---- connection state machine ------------------------------------------------------------ */

static void on_open(void *ud);
static void on_text(const char *data, size_t len, void *ud);
static void on_close(int code, const char *reason, void *ud);
static const chat_client_transport_sink sink = {on_open, on_text, on_close};

/* Complete every pending request with code (exactly one completion each). */
static void fail_pending(chat_client *c, int code, const char *why)
{
    while (c->pend) {
        chat__pend *p = c->pend;
        c->pend = p->next;
        if (p->kind == PEND_GROUP || p->kind == PEND_PRESENCE || p->kind == PEND_MEDIA_URL ||
            p->kind == PEND_CHANGE || p->kind == PEND_JSON || p->kind == PEND_MUTE ||
            (p->kind == PEND_PUSH && p->request))
            emit_result(c, CHAT_EVENT_RESULT, p->request, code, why, p->conv, 0);
        else if (p->kind == PEND_HISTORY_USER)
            emit_result(c, CHAT_EVENT_HISTORY, p->request, code, why, p->conv, 0);
        pend_free(p);
    }
}

static int64_t backoff_ms(chat_client *c)
{
    int64_t d = c->backoff_base_ms;
    for (int i = 1; i < c->failures && d < c->backoff_max_ms; i++)
        d *= 2;
    if (d > c->backoff_max_ms)
        d = c->backoff_max_ms;
    int64_t half = d / 2;
    return half + (int64_t)randombytes_uniform((uint32_t)(d - half + 1));
}

/* The connection is gone (or must go): forget it and schedule the next attempt. */
static void lost(chat_client *c, int code, const char *why, int close_transport)
{
    if (close_transport)
        c->tops->close(c->tstate);
    int was = c->connected;
    c->connected = c->online = 0;
    c->syncing = 0;
    c->n_fetch = 0;
    c->fetch_inflight = 0;
    c->send_inflight = 0;
    c->ping_sent_ms = 0;
    fail_pending(c, CHAT_ECLOSED, "connection lost");
    if (c->auth_failed) {
        set_state(c, CHAT_CONN_AUTH_FAILED);
        c->next_attempt_ms = INT64_MAX;
        return;
    }
    c->failures++;
    int64_t wait = backoff_ms(c);
    c->next_attempt_ms = chat__mono_ms() + wait;
    set_state(c, CHAT_CONN_OFFLINE);
    chat__client_log(c, CHAT_LOG_INFO, "offline (%s): %s; retry in %lld ms",
                     chat_error_name(code), why, (long long)wait);
    chat_event *ev = chat__event_new(CHAT_EVENT_OFFLINE);
    if (ev) {
        ev->code = code;
        ev->retry_ms = wait;
        chat__event_set_str(&ev->message, why);
        chat__event_emit(c, ev);
    }
    (void)was;
}

static void start_connect(chat_client *c)
{
    set_state(c, CHAT_CONN_CONNECTING);
    emit_simple(c, CHAT_EVENT_CONNECTING, CHAT_OK, c->url);
    c->attempt_deadline_ms = chat__mono_ms() + c->hb_timeout_ms;
    c->connected = 1; /* a transport connection exists (maybe not open yet) */
    int rc = c->tops->connect(c->tstate, c->url, &sink, c);
    if (rc != CHAT_OK) {
        c->connected = 0;
        lost(c, rc, chat_error_last()->message, 0);
    }
}

static void on_open(void *ud)
{
    chat_client *c = ud;
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        lost(c, CHAT_ENOMEM, "out of memory", 1);
        return;
    }
    char *stored = NULL;
    pthread_mutex_lock(&c->cmd_mu);
    char *tok = c->token ? chat__strdup(c->token) : NULL;
    pthread_mutex_unlock(&c->cmd_mu);
    if (!tok && chat__cache_meta_get(c->cache, "token", &stored) == CHAT_OK)
        tok = stored;
    int ok;
    if (tok) {
        ok = cJSON_AddStringToObject(o, "type", "auth") && cJSON_AddNumberToObject(o, "v", 1) &&
             cJSON_AddStringToObject(o, "token", tok);
        sodium_memzero(tok, strlen(tok));
        chat__free(tok);
    } else {
        ok = cJSON_AddStringToObject(o, "type", "login") && cJSON_AddNumberToObject(o, "v", 1) &&
             cJSON_AddStringToObject(o, "user", c->login_user ? c->login_user : "") &&
             cJSON_AddStringToObject(o, "password", c->password ? c->password : "") &&
             cJSON_AddStringToObject(o, "device", c->device ? c->device : "");
    }
    c->last_rx_ms = chat__mono_ms();
    int rc = send_frame(c, built(o, ok), PEND_AUTH, 0, 0, 0, NULL);
    if (rc == CHAT_ENOMEM)
        lost(c, CHAT_ENOMEM, "out of memory", 1);
    else if (rc != CHAT_OK)
        lost(c, CHAT_EIO, "cannot send auth", 1);
}

static void on_close(int code, const char *reason, void *ud)
{
    chat_client *c = ud;
    char why[200];
    snprintf(why, sizeof why, "closed (%d)%s%s", code, *reason ? ": " : "", reason);
    lost(c, code == 1008 && c->auth_failed ? CHAT_EAUTH : CHAT_ECLOSED, why, 0);
}

/* ---- sync -------------------------------------------------------------------------------- */

static void flush_outbox(chat_client *c);

static void request_convs(chat_client *c)
{
    char *cur = NULL;
    uint64_t since = 0;
    if (chat__cache_meta_get(c->cache, "cursor", &cur) == CHAT_OK)
        since = strtoull(cur, NULL, 10);
    chat__free(cur);
    cJSON *o = cJSON_CreateObject();
    o = built(o, o && cJSON_AddStringToObject(o, "type", "convs") &&
                     chat__json_add_int(o, "since", (int64_t)since) &&
                     cJSON_AddNumberToObject(o, "limit", SYNC_PAGE));
    if (send_frame(c, o, PEND_CONVS, 0, 0, 0, NULL) == CHAT_OK)
        c->syncing = 1;
}

static void start_sync(chat_client *c)
{
    if (c->online && !c->syncing)
        request_convs(c);
}

static void send_history(chat_client *c, int kind, uint64_t request, chat_conv_id conv,
                         uint64_t after, uint64_t before, int limit)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "history") &&
             chat__json_add_int(o, "conv", conv);
    if (ok && kind == PEND_HISTORY_SYNC)
        ok = chat__json_add_int(o, "after", (int64_t)after) != NULL;
    else if (ok && before)
        ok = chat__json_add_int(o, "before", (int64_t)before) != NULL;
    ok = ok && cJSON_AddNumberToObject(o, "limit", limit);
    int rc = send_frame(c, built(o, ok), kind, request, conv, after, NULL);
    if (rc != CHAT_OK && kind == PEND_HISTORY_USER)
        emit_result(c, CHAT_EVENT_HISTORY, request, rc == CHAT_ENOMEM ? rc : CHAT_ECLOSED,
                    rc == CHAT_ENOMEM ? "out of memory" : "not connected", conv, 0);
}

static void pump_sync(chat_client *c)
{
    if (!c->syncing || c->fetch_inflight || !c->online)
        return;
    if (c->n_fetch) {
        chat__fetch f = c->fetch[0];
        memmove(c->fetch, c->fetch + 1, (c->n_fetch - 1) * sizeof *c->fetch);
        c->n_fetch--;
        c->fetch_inflight = 1;
        send_history(c, PEND_HISTORY_SYNC, 0, f.conv, f.after, 0, SYNC_PAGE);
        return;
    }
    /* every conversation of this page is stored: the cursor may move */
    char cur[32];
    snprintf(cur, sizeof cur, "%" PRIu64, c->sync_cursor);
    chat__cache_meta_set(c->cache, "cursor", cur);
    c->syncing = 0;
    if (c->sync_more) {
        request_convs(c);
        return;
    }
    if (c->sync_first) {
        chat__cache_meta_set(c->cache, "synced", "1");
        c->sync_first = 0;
    }
    emit_simple(c, CHAT_EVENT_SYNCED, CHAT_OK, NULL);
    flush_outbox(c);
}

static int add_fetch(chat_client *c, chat_conv_id conv, uint64_t after, int front)
{
    for (size_t i = 0; i < c->n_fetch; i++)
        if (c->fetch[i].conv == conv)
            return CHAT_OK;
    chat__fetch *nv = chat__array_reserve(c->fetch, c->n_fetch, &c->cap_fetch, sizeof *nv);
    if (!nv)
        return CHAT_ENOMEM;
    c->fetch = nv;
    if (front) {
        memmove(c->fetch + 1, c->fetch, c->n_fetch * sizeof *c->fetch);
        c->fetch[0] = (chat__fetch){conv, after};
    } else {
        c->fetch[c->n_fetch] = (chat__fetch){conv, after};
    }
    c->n_fetch++;
    return CHAT_OK;
}

static void on_convs(chat_client *c, const cJSON *o)
{
    const cJSON *convs = cJSON_GetObjectItemCaseSensitive(o, "convs");
    const cJSON *it;
    char *me = chat__client_me(c);
    char *synced = NULL;
    c->sync_first = chat__cache_meta_get(c->cache, "synced", &synced) != CHAT_OK;
    chat__free(synced);
    cJSON_ArrayForEach(it, convs)
    {
        uint64_t local_read = 0, srv_read = 0, srv_delivered = 0, head = 0;
        if (chat__cache_conv_upsert(c->cache, it, me, &local_read) != CHAT_OK) {
            chat__client_log(c, CHAT_LOG_WARN, "cache: %s", chat_error_last()->message);
            continue;
        }
        chat__json_u64(it, "read", &srv_read);
        chat__json_u64(it, "delivered", &srv_delivered);
        chat__json_u64(it, "head", &head);
        chat__conv_row row;
        if (chat__cache_conv_get(c->cache, (chat_conv_id)cJSON_GetNumberValue(
                                               cJSON_GetObjectItemCaseSensitive(it, "conv")),
                                 &row) != CHAT_OK)
            continue;
        emit_conv(c, row.conv);
        /* read marks made offline reach the server now */
        if (local_read > srv_read)
            send_receipt(c, row.conv, 0, local_read);
        else if (c->auto_delivered && row.max_seq > srv_delivered && row.role != CHAT_ROLE_NONE)
            send_receipt(c, row.conv, row.max_seq, 0);
        /* Fetch from the first gap, not from the newest cached message: a live message that
         * arrived past a gap must not hide the gap from the sync. Only a brand-new cache
         * starts a conversation at its newest page: after the first sync, a conversation new
         * to the cache began while this device was away, and all of it is news to it. */
        uint64_t contig = head > row.joined ? chat__cache_conv_contig(c->cache, row.conv) : 0;
        if (head > contig) {
            uint64_t after = contig;
            if (after == 0 && head > FIRST_FETCH && c->sync_first)
                after = head - FIRST_FETCH;
            if (after < row.joined)
                after = row.joined;
            if (after < head)
                add_fetch(c, row.conv, after, 0);
        }
    }
    chat__free(me);
    uint64_t cursor = 0;
    int more = 0;
    chat__json_u64(o, "cursor", &cursor);
    chat__json_bool(o, "more", &more);
    c->sync_cursor = cursor;
    c->sync_more = more;
    pump_sync(c);
}

/* What a change did to a cached message, as a CHAT_EVENT_UPDATED. */
static void emit_updated(chat_client *c, const chat__change *chg, const cJSON *m)
{
    chat_event *ev = chat__event_new(CHAT_EVENT_UPDATED);
    if (!ev)
        return;
    ev->conv = chg->conv;
    ev->seq = chg->target;
    ev->kind = chg->kind;
    ev->active = chg->on;
    chat__event_set_str(&ev->user, chg->user);
    size_t tl = 0;
    const char *text = chg->kind == CHAT_MSG_REACT ? chg->emoji
                       : chg->kind == CHAT_MSG_EDIT ? chat__json_str(m, "text", &tl)
                                                    : NULL;
    if (text && (ev->text = chat__strdup(text)))
        ev->text_len = strlen(text);
    chat__event_emit(c, ev);
}

/* Store one message; emit it when new (a change to another message: what it changed).
 * Returns 1 new, 0 known, <0 error; *known_conv. */
static int store_msg(chat_client *c, const cJSON *m, const char *me, int emit, int *known_conv)
{
    chat__change chg;
    int r = chat__cache_msg_insert(c->cache, m, me, known_conv, &chg);
    if (r < 0) {
        chat__client_log(c, CHAT_LOG_WARN, "cache: %s", chat_error_last()->message);
        return r;
    }
    if (r == 1 && chg.kind)
        emit_updated(c, &chg, m);
    const char *k = chat__json_str(m, "kind", NULL);
    int change = k && (strcmp(k, "edit") == 0 || strcmp(k, "delete") == 0 ||
                       strcmp(k, "react") == 0);
    if (r == 1 && emit && !change) {
        chat_event *ev = chat__event_new(CHAT_EVENT_MESSAGE);
        if (!ev)
            return r;
        chat__json_conv(m, "conv", &ev->conv);
        chat__json_u64(m, "seq", &ev->seq);
        chat__json_i64(m, "ts", &ev->ts);
        size_t tl = 0;
        const char *kind = chat__json_str(m, "kind", NULL);
        ev->kind = kind && strcmp(kind, "media") == 0   ? CHAT_MSG_MEDIA
                   : kind && strcmp(kind, "event") == 0 ? CHAT_MSG_EVENT
                                                        : CHAT_MSG_TEXT;
        const char *text = chat__json_str(m, "text", &tl);
        chat__event_set_str(&ev->user, chat__json_str(m, "from", NULL));
        chat__event_set_str(&ev->device, chat__json_str(m, "device", NULL));
        chat__event_set_str(&ev->cmid, chat__json_str(m, "cmid", NULL));
        if (text && (ev->text = chat__malloc(tl + 1))) {
            memcpy(ev->text, text, tl);
            ev->text[tl] = 0;
            ev->text_len = tl;
        }
        char *js = cJSON_PrintUnformatted(m);
        if (js) {
            chat__event_set_str(&ev->json, js);
            cJSON_free(js);
        }
        chat__event_emit(c, ev);
    }
    return r;
}

static void on_history(chat_client *c, chat__pend *p, const cJSON *o)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages"), *m;
    char *me = chat__client_me(c);
    size_t n = 0;
    uint64_t last = 0;
    int more = 0;
    chat__json_bool(o, "more", &more);
    cJSON_ArrayForEach(m, msgs)
    {
        int known = 0;
        if (store_msg(c, m, me, p->kind == PEND_HISTORY_SYNC, &known) == 1)
            n++;
        uint64_t s = 0;
        chat__json_u64(m, "seq", &s);
        if (s > last)
            last = s;
    }
    chat__free(me);
    chat__conv_row row;
    if (c->auto_delivered && chat__cache_conv_get(c->cache, p->conv, &row) == CHAT_OK &&
        row.max_seq > row.delivered && row.role != CHAT_ROLE_NONE)
        send_receipt(c, p->conv, row.max_seq, 0);
    if (p->kind == PEND_HISTORY_USER) {
        chat_event *ev = chat__event_new(CHAT_EVENT_HISTORY);
        if (ev) {
            ev->request = p->request;
            ev->conv = p->conv;
            ev->count = n;
            ev->more = more;
            chat__event_emit(c, ev);
        }
        return;
    }
    c->fetch_inflight = 0;
    if (more && last > p->after)
        add_fetch(c, p->conv, last, 1);
    pump_sync(c);
}

/* ---- outbox ------------------------------------------------------------------------------ */

static void flush_outbox(chat_client *c)
{
    if (!c->online || c->syncing || c->send_inflight || chat__mono_ms() < c->send_retry_at_ms)
        return;
    chat__outbox_row row;
    if (chat__cache_outbox_first(c->cache, &row) != CHAT_OK)
        return;
    /* A media row holds JSON this engine wrote, so a parse that fails ran out of memory: the
     * message is sent whole or not yet (never as an empty text the server would refuse). */
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "send") &&
             (row.to_user ? cJSON_AddStringToObject(o, "to", row.to_user) != NULL
                          : chat__json_add_int(o, "conv", row.conv) != NULL) &&
             cJSON_AddStringToObject(o, "cmid", row.cmid);
    if (ok && row.media)
        ok = cJSON_AddStringToObject(o, "kind", "media") &&
             chat__json_add(o, "media", cJSON_Parse(row.media));
    else if (ok)
        ok = cJSON_AddStringToObject(o, "text", row.text) != NULL;
    if (ok && row.reply)
        ok = chat__json_add_int(o, "reply", (int64_t)row.reply) != NULL;
    if (ok && row.thread)
        ok = chat__json_add_int(o, "thread", (int64_t)row.thread) != NULL;
    if (send_frame(c, built(o, ok), PEND_SEND, 0, row.conv, 0, row.cmid) == CHAT_OK)
        c->send_inflight = 1;
    else if (!ok) /* out of memory: the heartbeat tick tries again */
        c->send_retry_at_ms = chat__mono_ms() + SEND_OOM_RETRY_MS;
    chat__cache_outbox_row_free(&row);
}

static void on_ack(chat_client *c, chat__pend *p, const cJSON *o)
{
    chat_conv_id conv = 0;
    uint64_t seq = 0;
    int64_t ts = 0;
    chat__json_conv(o, "conv", &conv);
    chat__json_u64(o, "seq", &seq);
    chat__json_i64(o, "ts", &ts);
    chat__conv_row row;
    int known = chat__cache_conv_get(c->cache, conv, &row) == CHAT_OK;
    char *me = chat__client_me(c);
    char *dev = NULL;
    chat__cache_meta_get(c->cache, "device", &dev);
    int r = chat__cache_outbox_ack(c->cache, p->cmid, conv, seq, ts, me ? me : "", dev);
    chat__free(me);
    chat__free(dev);
    c->send_inflight = 0;
    if (r < 0)
        chat__client_log(c, CHAT_LOG_WARN, "cache: %s", chat_error_last()->message);
    if (r == 1) {
        chat_event *ev = chat__event_new(CHAT_EVENT_SENT);
        if (ev) {
            ev->conv = conv;
            ev->seq = seq;
            ev->ts = ts;
            chat__event_set_str(&ev->cmid, p->cmid);
            chat__event_emit(c, ev);
        }
    }
    if (!known)
        start_sync(c); /* a conversation the first send created: learn its members */
    flush_outbox(c);
}

static void on_send_error(chat_client *c, chat__pend *p, int code, const char *reason,
                          const cJSON *o)
{
    c->send_inflight = 0;
    if (code == CHAT_EAGAIN || code == CHAT_EIO || code == CHAT_ECLOSED || code == CHAT_ERROR) {
        int64_t after = 1000;
        chat__json_i64(o, "retry_after_ms", &after);
        c->send_retry_at_ms = chat__mono_ms() + (after > 0 ? after : 1);
        return;
    }
    chat__cache_outbox_fail(c->cache, p->cmid, code, reason);
    chat_event *ev = chat__event_new(CHAT_EVENT_SEND_FAILED);
    if (ev) {
        ev->code = code;
        ev->conv = p->conv;
        chat__event_set_str(&ev->cmid, p->cmid);
        chat__event_set_str(&ev->message, reason);
        chat__event_emit(c, ev);
    }
    flush_outbox(c);
}

/* ---- incoming frames --------------------------------------------------------------------- */

/* Send the push registration (or the unregistration) the host asked for. [loop, online] */
static void push_send(chat_client *c)
{
    cJSON *o = NULL;
    if (c->push_frame)
        o = cJSON_Duplicate(c->push_frame, 1);
    else if (c->push_unreg && (o = cJSON_CreateObject()))
        cJSON_AddStringToObject(o, "type", "push_unregister");
    if (!o) {
        if (c->push_frame || c->push_unreg)
            chat__client_log(c, CHAT_LOG_WARN, "push registration not sent: out of memory");
        return;
    }
    uint64_t request = c->push_request;
    c->push_request = 0;
    if (send_frame(c, o, PEND_PUSH, request, 0, c->push_frame ? 0 : 1, NULL) != CHAT_OK &&
        request)
        emit_result(c, CHAT_EVENT_RESULT, request, CHAT_ECLOSED, "send failed", 0, 0);
}

/* The answer to a push frame. A registration the server refused as invalid or unsupported
 * would be refused at every connect: it is dropped. */
static void push_answered(chat_client *c, const chat__pend *p, int code, const char *why)
{
    int unreg = p->after == 1;
    if (code == CHAT_OK && unreg && !c->push_frame)
        c->push_unreg = 0;
    if (code != CHAT_OK && !unreg && c->push_frame &&
        (code == CHAT_EINVAL || code == CHAT_ENOTSUP)) {
        chat__client_log(c, CHAT_LOG_WARN, "push registration refused: %s", why);
        cJSON_Delete(c->push_frame);
        c->push_frame = NULL;
    }
    if (p->request)
        emit_result(c, CHAT_EVENT_RESULT, p->request, code, code == CHAT_OK ? NULL : why, 0, 0);
}

/* A mute changed on another device of this user (or this one): cache it, tell the host. */
static void on_mute(chat_client *c, const cJSON *o)
{
    chat_conv_id conv = 0;
    int64_t until = 0;
    chat__json_conv(o, "conv", &conv);
    chat__json_i64(o, "muted_until", &until);
    if (conv > 0 && chat__cache_conv_muted(c->cache, conv, until) == CHAT_OK)
        emit_conv(c, conv);
}

static void on_auth_ok(chat_client *c, const cJSON *o)
{
    const char *user = chat__json_str(o, "user", NULL);
    const char *device = chat__json_str(o, "device", NULL);
    const char *token = chat__json_str(o, "token", NULL);
    if (!user) {
        lost(c, CHAT_EPROTO, "auth_ok without user", 1);
        return;
    }
    char *old = NULL;
    if (chat__cache_meta_get(c->cache, "user", &old) == CHAT_OK && strcmp(old, user) != 0) {
        /* the cache belonged to another account: nothing of it may leak into this one */
        chat__client_log(c, CHAT_LOG_WARN, "cache of user %s wiped for user %s", old, user);
        chat__cache_wipe(c->cache);
    }
    chat__free(old);
    chat__cache_meta_set(c->cache, "user", user);
    chat__cache_meta_set(c->cache, "device", device ? device : "");
    if (token)
        chat__cache_meta_set(c->cache, "token", token);
    pthread_mutex_lock(&c->cmd_mu);
    if (!c->me || strcmp(c->me, user) != 0) {
        chat__free(c->me);
        c->me = chat__strdup(user);
    }
    pthread_mutex_unlock(&c->cmd_mu);
    c->online = 1;
    c->failures = 0;
    c->send_retry_at_ms = 0;
    set_state(c, CHAT_CONN_ONLINE);
    chat_event *ev = chat__event_new(CHAT_EVENT_ONLINE);
    if (ev) {
        chat__event_set_str(&ev->user, user);
        chat__event_set_str(&ev->device, device);
        chat__event_emit(c, ev);
    }
    start_sync(c);
    push_send(c);
}

static void on_presence(chat_client *c, const cJSON *o)
{
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(o, "users"), *u;
    cJSON_ArrayForEach(u, users)
    {
        chat_event *ev = chat__event_new(CHAT_EVENT_PRESENCE);
        if (!ev)
            return;
        chat__event_set_str(&ev->user, chat__json_str(u, "user", NULL));
        chat__json_bool(u, "online", &ev->active);
        chat__json_i64(u, "last_seen", &ev->last_seen);
        chat__event_emit(c, ev);
    }
}

static void on_receipt_push(chat_client *c, const cJSON *o)
{
    chat_conv_id conv = 0;
    uint64_t d = 0, r = 0;
    int64_t dts = 0, rts = 0;
    const char *user = chat__json_str(o, "user", NULL);
    chat__json_conv(o, "conv", &conv);
    chat__json_u64(o, "delivered", &d);
    chat__json_u64(o, "read", &r);
    chat__json_i64(o, "delivered_ts", &dts);
    chat__json_i64(o, "read_ts", &rts);
    if (!user || !conv)
        return;
    char *me = chat__client_me(c);
    chat__cache_watermark(c->cache, conv, user, d, r, dts, rts, me);
    chat_event *ev = chat__event_new(CHAT_EVENT_RECEIPT);
    if (ev) {
        ev->conv = conv;
        ev->delivered = d;
        ev->read = r;
        chat__event_set_str(&ev->user, user);
        chat__event_emit(c, ev);
    }
    if (me && strcmp(me, user) == 0)
        emit_conv(c, conv); /* my unread count changed (maybe from another device) */
    chat__free(me);
}

/* Fetch conv from its first gap: within the running sync, or as a sync of its own that leaves
 * the inbox cursor where it is (no conversation list needed: the gap's conversation is known).
 * A conversation the cache does not know takes the full sync. */
static void fetch_gap(chat_client *c, uint64_t conv)
{
    chat__conv_row row;
    if (!c->online || chat__cache_conv_get(c->cache, conv, &row) != CHAT_OK) {
        start_sync(c);
        return;
    }
    if (!c->syncing) {
        char *cur = NULL;
        c->sync_cursor = 0;
        if (chat__cache_meta_get(c->cache, "cursor", &cur) == CHAT_OK)
            c->sync_cursor = strtoull(cur, NULL, 10);
        chat__free(cur);
        c->sync_more = 0;
        c->syncing = 1;
    }
    uint64_t contig = chat__cache_conv_contig(c->cache, conv);
    add_fetch(c, conv, contig > row.joined ? contig : row.joined, 0);
    pump_sync(c);
}

/* A position hint: conv's last seq is at least seq. Behind it, fetch what is missing. */
static void on_head(chat_client *c, const cJSON *o)
{
    uint64_t conv = 0, seq = 0;
    if (chat__json_u64(o, "conv", &conv) != CHAT_OK || chat__json_u64(o, "seq", &seq) != CHAT_OK ||
        !conv)
        return;
    chat__conv_row row;
    int had = chat__cache_conv_get(c->cache, conv, &row) == CHAT_OK;
    /* the walk to the first gap only for a hint within what is cached (it ends at max_seq) */
    if (!had || (seq > row.joined && row.role != CHAT_ROLE_NONE &&
                 (seq > row.max_seq || seq > chat__cache_conv_contig(c->cache, conv))))
        fetch_gap(c, conv);
}

/* The server may have lost live frames for this client: catch up at a random moment within
 * within_ms (so that all its clients do not ask at once). A pending catch-up keeps its time. */
static void on_sync_prompt(chat_client *c, const cJSON *o)
{
    int64_t within = 0;
    if (chat__json_i64(o, "within_ms", &within) != CHAT_OK || within < 0)
        within = 0;
    if (within > 600000)
        within = 600000;
    int64_t at = chat__mono_ms() + (within ? (int64_t)randombytes_uniform((uint32_t)within) : 0);
    if (!c->resync_at_ms || at < c->resync_at_ms)
        c->resync_at_ms = at;
}

static void on_live_msg(chat_client *c, const cJSON *o)
{
    char *me = chat__client_me(c);
    chat_conv_id conv = 0;
    uint64_t seq = 0;
    chat__json_conv(o, "conv", &conv);
    chat__json_u64(o, "seq", &seq);
    chat__conv_row before;
    int had = chat__cache_conv_get(c->cache, conv, &before) == CHAT_OK;
    int known = 0;
    int r = store_msg(c, o, me, 1, &known);
    const char *from = chat__json_str(o, "from", NULL);
    const char *kind = chat__json_str(o, "kind", NULL);
    if (r >= 0 && c->auto_delivered && from && me && strcmp(from, me) != 0 &&
        (!had || seq > before.delivered))
        send_receipt(c, conv, seq, 0);
    /* An unknown conversation or a membership change: resync from the cursor. A gap (a live
     * frame lost on its way, or sent while this device was connecting): fetch it. */
    if (!had || (kind && strcmp(kind, "event") == 0))
        start_sync(c);
    else if (seq > before.max_seq + 1 && seq - 1 > before.joined)
        fetch_gap(c, conv);
    chat__free(me);
}

/* A search, a thread's page or a thread receipt answered: messages of a page go to the cache
 * (not as new-message events: the host asked for them), the answer to the host. */
static void on_json_answer(chat_client *c, chat__pend *p, const cJSON *o)
{
    const char *type = chat__json_str(o, "type", NULL);
    if (type && strcmp(type, "history") == 0) {
        char *me = chat__client_me(c);
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(o, "messages"))
        {
            int known;
            store_msg(c, m, me, 0, &known);
        }
        chat__free(me);
    }
    chat_event *ev = chat__event_new(CHAT_EVENT_RESULT);
    if (!ev)
        return;
    char *js = cJSON_PrintUnformatted(o);
    ev->request = p->request;
    ev->conv = p->conv;
    ev->code = CHAT_OK;
    chat__event_set_str(&ev->json, js);
    cJSON_free(js);
    chat__event_emit(c, ev);
}

static void emit_expired(chat_conv_id conv, uint64_t seq, void *ud)
{
    chat_event *ev = chat__event_new(CHAT_EVENT_EXPIRED);
    if (ev) {
        ev->conv = conv;
        ev->seq = seq;
        chat__event_emit(ud, ev);
    }
}

/* The server erased expired messages: the cache drops them too. */
static void on_expired(chat_client *c, const cJSON *o)
{
    chat_conv_id conv = 0;
    chat__json_conv(o, "conv", &conv);
    const cJSON *seqs = cJSON_GetObjectItemCaseSensitive(o, "seqs"), *s;
    int n = cJSON_GetArraySize(seqs), k = 0;
    uint64_t *v = n > 0 ? chat__malloc((size_t)n * sizeof *v) : NULL;
    if (!conv || !v) {
        chat__free(v);
        return;
    }
    cJSON_ArrayForEach(s, seqs)
    {
        if (cJSON_IsNumber(s) && s->valuedouble >= 1 && s->valuedouble < 9007199254740992.0)
            v[k++] = (uint64_t)s->valuedouble;
    }
    if (chat__cache_expired(c->cache, conv, v, (size_t)k, emit_expired, c) != CHAT_OK)
        chat__client_log(c, CHAT_LOG_WARN, "cache: %s", chat_error_last()->message);
    chat__free(v);
    emit_conv(c, conv); /* its unread count may have changed */
}

/* Messages past their "expires" go from the cache by themselves, server or not. */
static void expire_due(chat_client *c)
{
    int64_t now = chat__mono_ms();
    if (now < c->expire_check_ms)
        return;
    c->expire_check_ms = now + 1000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (chat__cache_expire_due(c->cache, wall, emit_expired, c) != CHAT_OK)
        chat__client_log(c, CHAT_LOG_WARN, "cache: %s", chat_error_last()->message);
}

static void on_text(const char *data, size_t len, void *ud)
{
    chat_client *c = ud;
    c->last_rx_ms = chat__mono_ms();
    c->ping_sent_ms = 0;
    chat__reply rep;
    int rc = chat__decode_reply(data, len, &rep);
    if (rc == CHAT_ENOMEM) {
        /* A frame that could not be read may be the answer something waits for: start
         * over, the sync after reconnecting fetches what was missed. */
        lost(c, CHAT_ENOMEM, "out of memory reading a frame", 1);
        return;
    }
    if (rc != CHAT_OK) {
        chat__client_log(c, CHAT_LOG_WARN, "frame from the server refused (%s): %s",
                         rep.reason, rep.message);
        return;
    }
    cJSON *o = rep.frame;
    const char *type = rep.type;
    int re = rep.has_re;
    chat__pend *p = rep.re ? pend_take(c, rep.re) : NULL;
    if (strcmp(type, "error") == 0) {
        const char *code_name = chat__json_str(o, "code", NULL);
        const char *reason = chat__json_str(o, "reason", NULL);
        const char *message = chat__json_str(o, "message", NULL);
        int code = code_name ? chat_error_from_name(code_name) : CHAT_ERROR;
        char why[256];
        snprintf(why, sizeof why, "%s: %s", reason ? reason : "", message ? message : "");
        int kind = p ? p->kind : 0;
        if (kind == PEND_AUTH) {
            if (code == CHAT_EAUTH || code == CHAT_EVERSION) {
                char *stored = NULL;
                int had_stored = chat__cache_meta_get(c->cache, "token", &stored) == CHAT_OK;
                chat__free(stored);
                pthread_mutex_lock(&c->cmd_mu);
                int cfg_token = c->token != NULL;
                pthread_mutex_unlock(&c->cmd_mu);
                if (!cfg_token && had_stored && c->password && code == CHAT_EAUTH) {
                    /* the token a login gave expired or was revoked: log in again */
                    chat__cache_meta_del(c->cache, "token");
                    c->failures = 0;
                    lost(c, code, why, 1);
                } else {
                    /* state first, so a host reading chat_client_state() from the event
                     * sees AUTH_FAILED, not the connection it just lost */
                    c->auth_failed = 1;
                    lost(c, code, why, 1);
                    emit_simple(c, CHAT_EVENT_AUTH_FAILED, code, why);
                }
            } else {
                lost(c, code, why, 1);
            }
        } else if (kind == PEND_SEND) {
            on_send_error(c, p, code, reason, o);
        } else if (kind == PEND_GROUP || kind == PEND_PRESENCE || kind == PEND_MEDIA_URL ||
                   kind == PEND_CHANGE || kind == PEND_JSON) {
            emit_result(c, CHAT_EVENT_RESULT, p->request, code, why, p->conv, 0);
        } else if (kind == PEND_HISTORY_USER) {
            emit_result(c, CHAT_EVENT_HISTORY, p->request, code, why, p->conv, 0);
        } else if (kind == PEND_PUSH) {
            push_answered(c, p, code, why);
        } else if (kind == PEND_MUTE) {
            emit_result(c, CHAT_EVENT_RESULT, p->request, code, why, p->conv, 0);
        } else if (kind == PEND_HISTORY_SYNC) {
            c->fetch_inflight = 0; /* e.g. removed meanwhile: skip that conversation */
            pump_sync(c);
        } else if (kind == PEND_CONVS) {
            c->syncing = 0;
            chat__client_log(c, CHAT_LOG_WARN, "sync refused: %s", why);
        } else {
            chat__client_log(c, CHAT_LOG_INFO, "server error %s %s", code_name ? code_name : "",
                             why);
        }
    } else if (p && p->kind == PEND_AUTH && strcmp(type, "auth_ok") == 0) {
        on_auth_ok(c, o);
    } else if (p && p->kind == PEND_CONVS && strcmp(type, "convs") == 0) {
        on_convs(c, o);
    } else if (p && (p->kind == PEND_HISTORY_SYNC || p->kind == PEND_HISTORY_USER) &&
               strcmp(type, "history") == 0) {
        on_history(c, p, o);
    } else if (p && p->kind == PEND_SEND && strcmp(type, "ack") == 0) {
        on_ack(c, p, o);
    } else if (p && p->kind == PEND_RECEIPT && strcmp(type, "ok") == 0) {
        uint64_t d = 0, r = 0;
        chat__json_u64(o, "delivered", &d);
        chat__json_u64(o, "read", &r);
        char *me = chat__client_me(c);
        if (me) {
            chat__cache_watermark(c->cache, p->conv, me, d, r, 0, 0, me);
            emit_conv(c, p->conv);
        }
        chat__free(me);
    } else if (p && p->kind == PEND_GROUP) {
        chat_conv_id conv = p->conv;
        uint64_t seq = 0;
        const cJSON *cv = cJSON_GetObjectItemCaseSensitive(o, "conv");
        if (cJSON_IsObject(cv)) { /* group_create */
            char *me = chat__client_me(c);
            chat__cache_conv_upsert(c->cache, cv, me, NULL);
            chat__free(me);
            chat__json_conv(cv, "conv", &conv);
            chat__json_u64(cv, "head", &seq);
            emit_conv(c, conv);
        } else {
            chat__json_u64(o, "seq", &seq);
        }
        emit_result(c, CHAT_EVENT_RESULT, p->request, CHAT_OK, NULL, conv, seq);
        start_sync(c);
    } else if (p && p->kind == PEND_PRESENCE) {
        on_presence(c, o);
        emit_result(c, CHAT_EVENT_RESULT, p->request, CHAT_OK, NULL, 0, 0);
    } else if (p && p->kind == PEND_CHANGE) {
        uint64_t seq = 0;
        chat__json_u64(o, "seq", &seq);
        emit_result(c, CHAT_EVENT_RESULT, p->request, CHAT_OK, NULL, p->conv, seq);
    } else if (p && p->kind == PEND_JSON) {
        on_json_answer(c, p, o);
    } else if (p && p->kind == PEND_MEDIA_URL && strcmp(type, "media_url") == 0) {
        chat_event *ev = chat__event_new(CHAT_EVENT_RESULT);
        if (ev) {
            char *js = cJSON_PrintUnformatted(o);
            ev->request = p->request;
            ev->code = CHAT_OK;
            chat__event_set_str(&ev->json, js);
            cJSON_free(js);
            chat__event_emit(c, ev);
        }
    } else if (p && p->kind == PEND_PUSH && strcmp(type, "ok") == 0) {
        push_answered(c, p, CHAT_OK, NULL);
    } else if (p && p->kind == PEND_MUTE && strcmp(type, "ok") == 0) {
        if (chat__cache_conv_muted(c->cache, p->conv, (int64_t)p->after) == CHAT_OK)
            emit_conv(c, p->conv);
        emit_result(c, CHAT_EVENT_RESULT, p->request, CHAT_OK, NULL, p->conv, 0);
    } else if (p && p->kind == PEND_PING) {
        /* pong: liveness already noted */
    } else if (!re && strcmp(type, "msg") == 0) {
        on_live_msg(c, o);
    } else if (!re && strcmp(type, "head") == 0) {
        on_head(c, o);
    } else if (!re && strcmp(type, "sync") == 0) {
        on_sync_prompt(c, o);
    } else if (!re && strcmp(type, "receipt") == 0) {
        if (!cJSON_GetObjectItemCaseSensitive(o, "thread")) /* a thread's: nothing cached */
            on_receipt_push(c, o);
    } else if (!re && strcmp(type, "expired") == 0) {
        on_expired(c, o);
    } else if (!re && strcmp(type, "presence") == 0) {
        on_presence(c, o);
    } else if (!re && strcmp(type, "mute") == 0) {
        on_mute(c, o);
    } else if (!re && strcmp(type, "typing") == 0) {
        chat_event *ev = chat__event_new(CHAT_EVENT_TYPING);
        if (ev) {
            chat_conv_id conv = 0;
            int64_t ttl = 0;
            const char *state = chat__json_str(o, "state", NULL);
            chat__json_conv(o, "conv", &conv);
            chat__json_i64(o, "ttl_ms", &ttl);
            ev->conv = conv;
            ev->active = state && strcmp(state, "start") == 0;
            ev->retry_ms = ttl;
            chat__event_set_str(&ev->user, chat__json_str(o, "user", NULL));
            chat__event_emit(c, ev);
        }
    }
    if (p)
        pend_free(p);
    cJSON_Delete(o);
}

/* ---- commands and the loop --------------------------------------------------------------- */

static void run_cmd(chat_client *c, chat__cmd *cmd)
{
    switch (cmd->type) {
    case CMD_FLUSH:
        flush_outbox(c);
        break;
    case CMD_FRAME:
        if (!c->online) {
            emit_result(c, cmd->kind == PEND_HISTORY_USER ? CHAT_EVENT_HISTORY : CHAT_EVENT_RESULT,
                        cmd->request, CHAT_ECLOSED, "offline", cmd->conv, 0);
        } else {
            cJSON *b = cmd->body;
            cmd->body = NULL;
            if (send_frame(c, b, cmd->kind, cmd->request, cmd->conv, cmd->seq, NULL) != CHAT_OK)
                emit_result(c,
                            cmd->kind == PEND_HISTORY_USER ? CHAT_EVENT_HISTORY
                                                           : CHAT_EVENT_RESULT,
                            cmd->request, CHAT_ECLOSED, "send failed", cmd->conv, 0);
        }
        break;
    case CMD_PUSH:
        if (c->push_request) /* never sent: this newer call replaces it */
            emit_result(c, CHAT_EVENT_RESULT, c->push_request, CHAT_ECLOSED,
                        "replaced by a later push registration call", 0, 0);
        cJSON_Delete(c->push_frame);
        c->push_frame = cmd->body;
        cmd->body = NULL;
        c->push_unreg = c->push_frame == NULL;
        c->push_request = cmd->request;
        if (c->online)
            push_send(c);
        break;
    case CMD_TYPING:
        if (c->online) {
            cJSON *b = cmd->body;
            cmd->body = NULL;
            send_frame(c, b, 0, 0, 0, 0, NULL);
        }
        break;
    case CMD_READ:
        if (c->online)
            send_receipt(c, cmd->conv, 0, cmd->seq);
        break;
    case CMD_RECONNECT:
        c->auth_failed = 0;
        if (!c->connected) {
            c->failures = 0;
            c->next_attempt_ms = 0;
            set_state(c, CHAT_CONN_OFFLINE);
        }
        break;
    case CMD_DISCONNECT:
        if (c->connected)
            lost(c, CHAT_ECLOSED, "disconnected by the host", 1);
        break;
    default:
        break;
    }
}

static void run_cmds(chat_client *c)
{
    pthread_mutex_lock(&c->cmd_mu);
    chat__cmd *list = c->cmd_head;
    c->cmd_head = c->cmd_tail = NULL;
    pthread_mutex_unlock(&c->cmd_mu);
    while (list) {
        chat__cmd *next = list->next;
        if (!atomic_load(&c->stop))
            run_cmd(c, list);
        else if (list->type == CMD_FRAME || list->type == CMD_PUSH)
            emit_result(c, list->kind == PEND_HISTORY_USER ? CHAT_EVENT_HISTORY : CHAT_EVENT_RESULT,
                        list->request, CHAT_ECLOSED, "stopping", list->conv, 0);
        cJSON_Delete(list->body);
        chat__free(list);
        list = next;
    }
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

void *chat__client_loop(void *arg)
{
    chat_client *c = arg;
    chat__thread_name("chat-client");
    c->loop_tid = pthread_self();
    atomic_store(&c->loop_tid_valid, 1);
    c->next_attempt_ms = 0;
    set_state(c, CHAT_CONN_OFFLINE);
    while (!atomic_load(&c->stop)) {
        run_cmds(c);
        if (atomic_load(&c->stop))
            break;
        expire_due(c);
        int64_t now = chat__mono_ms();
        if (!c->connected && !c->auth_failed && now >= c->next_attempt_ms)
            start_connect(c);
        now = chat__mono_ms();
        if (c->connected && !c->online && now >= c->attempt_deadline_ms)
            lost(c, CHAT_ETIMEDOUT, "connect/auth timed out", 1);
        if (c->online) {
            if (c->ping_sent_ms && now - c->ping_sent_ms >= c->hb_timeout_ms) {
                lost(c, CHAT_ETIMEDOUT, "heartbeat timed out", 1);
            } else if (!c->ping_sent_ms && now - c->last_rx_ms >= c->hb_interval_ms) {
                cJSON *o = cJSON_CreateObject();
                send_frame(c, built(o, o && cJSON_AddStringToObject(o, "type", "ping")), PEND_PING,
                           0, 0, 0, NULL);
                c->ping_sent_ms = now;
            }
            if (c->send_retry_at_ms && now >= c->send_retry_at_ms) {
                c->send_retry_at_ms = 0;
                flush_outbox(c);
            }
            if (c->resync_at_ms && now >= c->resync_at_ms) {
                /* a sync already running may have read before the loss: one more after it */
                c->resync_at_ms = c->syncing ? now + 200 : 0;
                start_sync(c);
            }
        }
        int64_t deadline = now + 1000;
        if (!c->connected && !c->auth_failed)
            deadline = min64(deadline, c->next_attempt_ms);
        if (c->connected && !c->online)
            deadline = min64(deadline, c->attempt_deadline_ms);
        if (c->online) {
            deadline = min64(deadline, c->ping_sent_ms ? c->ping_sent_ms + c->hb_timeout_ms
                                                       : c->last_rx_ms + c->hb_interval_ms);
            if (c->send_retry_at_ms)
                deadline = min64(deadline, c->send_retry_at_ms);
            if (c->resync_at_ms)
                deadline = min64(deadline, c->resync_at_ms);
        }
        int64_t wait = deadline - now;
        if (wait < 0)
            wait = 0;
        int rc = c->tops->poll(c->tstate, (int)wait);
        if (rc != CHAT_OK) {
            chat__client_log(c, CHAT_LOG_ERROR, "transport poll failed: %s",
                             chat_error_last()->message);
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (c->connected)
        c->tops->close(c->tstate);
    c->connected = c->online = 0;
    c->syncing = 0;
    c->n_fetch = 0;
    c->fetch_inflight = c->send_inflight = 0;
    fail_pending(c, CHAT_ECLOSED, "client stopped");
    if (c->push_request) /* a push registration still waiting to be sent */
        emit_result(c, CHAT_EVENT_RESULT, c->push_request, CHAT_ECLOSED, "client stopped", 0, 0);
    c->push_request = 0;
    run_cmds(c); /* complete what was posted meanwhile */
    set_state(c, CHAT_CONN_STOPPED);
    atomic_store(&c->loop_tid_valid, 0);
    return NULL;
}
