/* send and history: storing messages in order, once, and reading them back. */
#include "server/affinity.h"
#include "server/lifecycle.h"
#include "server/media.h"
#include "server/req.h"

#include "core/alloc.h"
#include "core/flat.h"
#include "core/ids.h"
#include "core/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* retry_after_ms of a send refused because the writer's queue is full. */
#define CHAT__BUSY_RETRY_MS 100

typedef chat__send_args send_args;

static void free_send_args(void *p)
{
    send_args *a = p;
    if (a && a->kind == CHAT_MSG_MEDIA)
        cJSON_free((void *)a->body);
    chat__free(a);
}

/* The direct conversation of a and b, created on first use. */
static int direct_conv(chat__txn *tx, chat__req *r, const char *a, const char *b,
                       chat_store_conv *out)
{
    /* "lo\nhi": ids are at most CHAT_ID_MAX bytes, so it fits (no snprintf on every send). */
    char key[sizeof out->dm_key];
    _Static_assert(sizeof key >= 2 * CHAT_ID_MAX + 2, "a direct key holds two ids");
    int lt = strcmp(a, b) < 0;
    const char *lo = lt ? a : b, *hi = lt ? b : a;
    size_t nlo = strnlen(lo, CHAT_ID_MAX), nhi = strnlen(hi, CHAT_ID_MAX);
    memcpy(key, lo, nlo);
    key[nlo] = '\n';
    memcpy(key + nlo + 1, hi, nhi);
    key[nlo + 1 + nhi] = '\0';
    int rc = tx->ops->conv_find_direct(tx->st, key, out);
    if (rc == CHAT_OK)
        return CHAT_OK;
    if (rc != CHAT_ENOTFOUND)
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    memset(out, 0, sizeof *out);
    out->kind = CHAT_CONV_DIRECT;
    out->created_ms = tx->now_ms;
    out->member_count = 2;
    out->change = chat__txn_bump(tx);
    strcpy(out->dm_key, key);
    if (tx->ops->conv_insert(tx->st, out) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot create the conversation");
    const char *users[2] = {a, b};
    for (int i = 0; i < 2; i++) {
        chat_store_member m = {0};
        m.conv = out->id;
        strcpy(m.user, users[i]);
        m.role = CHAT_ROLE_MEMBER;
        m.change = out->change;
        if (tx->ops->member_put(tx->st, &m) != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "cannot add the members");
    }
    return CHAT_OK;
}

/* {"type":"ack","re":…,"conv":…,"cmid":…,"seq":…,"ts":…,"dup":…}, encoded directly. */
static chat__frame *ack_frame(chat__req *r, const chat_store_msg *m, int dup)
{
#define LIT(s) chat__fb_raw(&b, s, sizeof s - 1)
    chat__fb b = {NULL, 0};
    chat__frame *f = NULL;
    for (int pass = 0; pass < 2; pass++) {
        LIT("{\"type\":\"ack\"");
        if (r->re) {
            LIT(",\"re\":");
            chat__fb_id(&b, r->re);
        }
        LIT(",\"conv\":");
        chat__fb_i64(&b, m->conv);
        LIT(",\"cmid\":");
        chat__fb_str(&b, m->cmid, strlen(m->cmid));
        LIT(",\"seq\":");
        chat__fb_u64(&b, m->seq);
        LIT(",\"ts\":");
        chat__fb_i64(&b, m->ts_ms);
        if (dup)
            LIT(",\"dup\":true}");
        else
            LIT(",\"dup\":false}");
        if (pass == 0 && !(f = chat__fb_alloc(&b)))
            return NULL;
    }
    return f;
#undef LIT
}

typedef struct found_msg {
    uint64_t seq;
    int64_t ts;
} found_msg;

static int keep_found(const chat_store_msg *m, void *ud)
{
    found_msg *f = ud;
    f->seq = m->seq;
    f->ts = m->ts_ms;
    return 0;
}

/* A resend of a stored message is acked with the original seq and stores nothing. */
static int ack_resend(chat__txn *tx, chat__req *r, int64_t conv, const char *cmid)
{
    found_msg found = {0, 0};
    int rc = tx->ops->msg_find_cmid(tx->st, conv, r->user, r->device, cmid, keep_found, &found);
    if (rc != CHAT_OK) /* EEXISTS for a cmid that is not there: the store is inconsistent */
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    chat__job_clear(&r->job); /* the refused insert's failure */
    chat_store_msg m = {.conv = conv, .seq = found.seq, .ts_ms = found.ts, .cmid = cmid};
    r->reply = ack_frame(r, &m, 1);
    r->ack = 1;
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

/* When a message stored now expires: its conversation's timer, the server's retention,
 * whichever comes first; 0: never. */
static int64_t expiry_of(const chat__txn *tx, const chat_store_conv *conv)
{
    if (!tx->srv->lifecycle)
        return 0;
    int64_t ttl = conv->msg_ttl_ms, keep = chat__limit(tx->srv, CHAT_LIMIT_RETENTION_MS);
    if (keep && (!ttl || keep < ttl))
        ttl = keep;
    return ttl ? tx->now_ms + ttl : 0;
}

/* A reply's target and a thread's root must be messages the sender sees: text or media, not
 * erased; a root is no thread reply itself, and a reply in a thread answers a message of that
 * thread. *target gets a copy of the reply's target (to show it in the frame). */
static int send_relations(chat__txn *tx, chat__req *r, const send_args *a,
                          const chat_store_member *me, chat_store_msg *target, int *have)
{
    int64_t conv = me->conv;
    if (a->thread) {
        chat_store_msg root;
        int rc = chat__txn_visible(tx, r, conv, a->thread, me, &root);
        if (rc != CHAT_OK)
            return rc;
        int ok = (root.kind == CHAT_MSG_TEXT || root.kind == CHAT_MSG_MEDIA) &&
                 !(root.flags & CHAT_STORE_MSG_ERASED) && root.thread_seq == 0;
        chat__msg_free(&root);
        if (!ok)
            return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                                  "message %" PRIu64 " cannot start a thread", a->thread);
    }
    if (a->reply) {
        int rc = chat__txn_visible(tx, r, conv, a->reply, me, target);
        if (rc != CHAT_OK)
            return rc;
        *have = 1;
        if ((target->kind != CHAT_MSG_TEXT && target->kind != CHAT_MSG_MEDIA) ||
            (target->flags & CHAT_STORE_MSG_ERASED))
            return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                                  "message %" PRIu64 " cannot be replied to", a->reply);
        if (a->thread && target->seq != a->thread && target->thread_seq != a->thread)
            return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                                  "a reply in thread %" PRIu64 " answers a message of it",
                                  a->thread);
    }
    return CHAT_OK;
}

int chat__send_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    send_args *a = r->extra;
    chat_store_conv conv;
    chat_store_member me;
    /* A reference to this server's media must be to media the sender may see (uploaded, or
     * shared in one of their conversations); sending it shares it with this conversation.
     * Other ids are opaque references to media elsewhere and grant nothing. */
    chat_store_media media;
    int shares = a->media_id[0] && tx->ops->version >= 2 && tx->ops->media_get;
    if (shares) {
        int rc0 = chat__txn_media_access(tx, a->media_id, r->user, &media);
        if (rc0 == CHAT_ENOTSUP) /* the store keeps no media: an opaque reference */
            shares = 0;
        else if (rc0 == CHAT_ENOTFOUND)
            return chat__req_fail(r, CHAT_ENOTFOUND, "not_found", "no media %s", a->media_id);
        else if (rc0 == CHAT_EPERM)
            return chat__req_fail(r, CHAT_EPERM, "forbidden", "that media is not yours to share");
        else if (rc0 != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    }
    int rc;

    if (a->to) {
        rc = direct_conv(tx, r, r->user, a->to, &conv);
        if (rc != CHAT_OK)
            return rc;
    } else {
        rc = chat__txn_conv(tx, r, a->conv, &conv);
        if (rc != CHAT_OK)
            return rc;
    }
    rc = chat__txn_member_fanout(tx, r, &conv, r->user, &me);
    if (rc != CHAT_OK)
        return rc;

    chat_store_msg m = {0}, target = {0};
    int have_target = 0;
    if (a->reply || a->thread) {
        rc = send_relations(tx, r, a, &me, &target, &have_target);
        if (rc != CHAT_OK) {
            chat__msg_free(have_target ? &target : NULL);
            return rc;
        }
    }
    m.sender = r->user;
    m.device = r->device;
    m.cmid = a->cmid;
    m.kind = a->kind;
    m.body = a->body;
    m.body_len = a->body_len;
    m.target_seq = a->reply;
    m.thread_seq = a->thread;
    m.expires_ms = expiry_of(tx, &conv);
    /* The insert is the duplicate check (the store refuses a taken cmid with CHAT_EEXISTS
     * and changes nothing): a first send costs no separate lookup, only a resend does. */
    rc = chat__txn_append_as(tx, r, &conv, &m, &me);
    if (rc == CHAT_EEXISTS) {
        chat__msg_free(have_target ? &target : NULL);
        return ack_resend(tx, r, conv.id, a->cmid);
    }
    if (rc == CHAT_OK && shares &&
        (tx->ops->media_grant(tx->st, a->media_id, conv.id, "") != CHAT_OK ||
         (tx->srv->lifecycle && tx->ops->media_refs(tx->st, a->media_id, 1, NULL) != CHAT_OK)))
        rc = chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    if (rc == CHAT_OK && a->thread) {
        /* My own reply is read by me: the thread's unread count starts after it. */
        char key[CHAT__THREAD_KEY_MAX];
        chat__thread_read_key(key, sizeof key, conv.id, a->thread, r->user);
        if (tx->ops->meta_set(tx->st, key, (int64_t)m.seq) != CHAT_OK)
            rc = chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    }
    if (rc != CHAT_OK) {
        chat__msg_free(have_target ? &target : NULL);
        return rc;
    }
    r->reply = ack_frame(r, &m, 0);
    r->ack = 1;
    chat__msg_view view = {have_target ? &target : NULL, 0, NULL, 0};
    r->fanout = chat__msg_frame(&m, &view);
    chat__msg_free(have_target ? &target : NULL);
    if (!r->reply || !r->fanout)
        return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");

    r->push = 1;
    r->head = m.seq;
    r->pev.conv = conv.id;
    r->pev.conv_kind = conv.kind;
    r->pev.seq = m.seq;
    r->pev.sender = r->user;
    r->pev.msg_kind = m.kind;
    r->pev.ts_ms = m.ts_ms;
    /* A push's title and preview are made only where pushes go out (no allocation per send
     * otherwise); on ENOMEM the push goes without them. */
    const chat_server *srv = tx->srv;
    if (srv->push && conv.title[0])
        r->pev_title = chat__strdup(conv.title);
    if (srv->push && (srv->cfg.flags & CHAT_SERVER_PUSH_PREVIEWS) && m.kind == CHAT_MSG_TEXT) {
        /* Previews are short: at most 120 bytes, cut at a UTF-8 boundary. */
        size_t n = m.body_len < 120 ? m.body_len : 120;
        while (n > 0 && n < m.body_len && ((unsigned char)m.body[n] & 0xC0) == 0x80)
            n--;
        r->pev_preview = chat__strndup(m.body, n);
    }
    return CHAT_OK;
}

/* The media reference, normalized to the fields the protocol defines; NULL after answering
 * the error. */
static char *media_body(chat__conn *c, const cJSON *f, const cJSON *re)
{
    const cJSON *media = chat__json_get(f, "media");
    if (!media) {
        chat__conn_error(c, re, CHAT_EINVAL, "missing_field", "field 'media' is required", 0);
        return NULL;
    }
    if (!cJSON_IsObject(media)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "field 'media' must be an object", 0);
        return NULL;
    }
    static const struct {
        const char *key;
        size_t max;
    } strs[] = {{"id", 128}, {"mime", 255}, {"name", 255}};
    cJSON *out = cJSON_CreateObject();
    int ok = out != NULL;
    for (size_t i = 0; ok && i < 3; i++) {
        const cJSON *s = chat__json_get(media, strs[i].key);
        size_t n = cJSON_IsString(s) ? strlen(s->valuestring) : 0;
        if (!cJSON_IsString(s) || n == 0 || n > strs[i].max) {
            char msg[96];
            snprintf(msg, sizeof msg, "media.%s must be a string of 1-%zu bytes", strs[i].key,
                     strs[i].max);
            chat__conn_error(c, re, CHAT_EINVAL, s ? "bad_field" : "missing_field", msg, 0);
            cJSON_Delete(out);
            return NULL;
        }
        ok = cJSON_AddStringToObject(out, strs[i].key, s->valuestring) != NULL;
    }
    static const char *nums[] = {"size", "width", "height", "duration_ms"};
    for (size_t i = 0; ok && i < 4; i++) {
        uint64_t v;
        int rc = chat__json_u64(media, nums[i], &v);
        if (rc == CHAT_ENOTFOUND && i > 0)
            continue;
        if (rc != CHAT_OK) {
            char msg[96];
            snprintf(msg, sizeof msg, "media.%s must be a non-negative integer", nums[i]);
            chat__conn_error(c, re, CHAT_EINVAL,
                             rc == CHAT_ENOTFOUND ? "missing_field" : "bad_field", msg, 0);
            cJSON_Delete(out);
            return NULL;
        }
        ok = cJSON_AddNumberToObject(out, nums[i], (double)v) != NULL;
    }
    char *s = ok ? cJSON_PrintUnformatted(out) : NULL;
    cJSON_Delete(out);
    if (!s)
        chat__conn_decline(c, re, CHAT_ENOMEM, "internal", "out of memory", 0);
    return s;
}

int chat__send_admit(chat__conn *c, const cJSON *re)
{
    chat_server *srv = c->srv;
    int64_t retry = 0;
    if (!chat__bucket_take(&c->send_bucket, (double)chat__limit(srv, CHAT_LIMIT_SEND_RATE),
                           (double)chat__limit(srv, CHAT_LIMIT_SEND_BURST), chat__now_ms(srv),
                           &retry)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited", "sending too fast", retry);
        return 0;
    }
    if (!chat__user_send_take(srv, c->user, &retry)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited",
                           "sending too fast (all of this user's connections)", retry);
        return 0;
    }
    /* The writer's queue is bounded: under overload a send is refused (retryable) rather than
     * queued without end. Memory stays bounded and the sender backs off. */
    if (srv->writer_backlog >= (size_t)chat__limit(srv, CHAT_LIMIT_WRITER_QUEUE)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "busy", "the server is overloaded; retry later",
                           CHAT__BUSY_RETRY_MS);
        return 0;
    }
    return 1;
}

void chat__handle_send(chat__conn *c, cJSON *f, cJSON *re)
{
    chat_server *srv = c->srv;
    send_args a = {0};
    const char *kind = NULL;
    char *media = NULL;

    int has_conv = chat__json_get(f, "conv") != NULL;
    int has_to = chat__json_get(f, "to") != NULL;
    if (has_conv == has_to) {
        chat__conn_error(c, re, CHAT_EINVAL, has_conv ? "bad_field" : "missing_field",
                         "exactly one of 'conv' and 'to' is required", 0);
        goto fail;
    }
    if (has_conv && !chat__arg_conv(c, f, re, &a.conv))
        goto fail;
    size_t n = 0;
    if (has_to) {
        if (!chat__arg_str(c, f, re, "to", 1, &a.to, &n))
            goto fail;
        if (!chat__id_valid(a.to, n) || strcmp(a.to, c->user) == 0) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                             "'to' must be another user's id", 0);
            goto fail;
        }
    }
    if (!chat__arg_str(c, f, re, "cmid", 1, &a.cmid, &n))
        goto fail;
    if (!chat__cmid_valid(a.cmid, n)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                         "'cmid' must be 1-64 printable ASCII characters, no space", 0);
        goto fail;
    }
    if (!chat__arg_str(c, f, re, "kind", 0, &kind, NULL))
        goto fail;
    if (!kind || strcmp(kind, "text") == 0) {
        a.kind = CHAT_MSG_TEXT;
        if (!chat__arg_str(c, f, re, "text", 1, &a.body, &a.body_len))
            goto fail;
        if (a.body_len == 0) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'text' must not be empty", 0);
            goto fail;
        }
        if ((int64_t)a.body_len > chat__limit(srv, CHAT_LIMIT_BODY_BYTES)) {
            chat__conn_error(c, re, CHAT_ELIMIT, "body_too_large", "text is over the body limit",
                             0);
            goto fail;
        }
    } else if (strcmp(kind, "media") == 0) {
        a.kind = CHAT_MSG_MEDIA;
        media = media_body(c, f, re);
        if (!media)
            goto fail;
        a.body = media;
        a.body_len = strlen(media);
        const cJSON *mid =
            chat__json_get(chat__json_get(f, "media"), "id");
        if (chat__media_id_valid(mid->valuestring, strlen(mid->valuestring)))
            strcpy(a.media_id, mid->valuestring);
    } else {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'kind' must be 'text' or 'media'", 0);
        goto fail;
    }

    uint64_t rel[2] = {0, 0};
    static const char *const rel_keys[2] = {"reply", "thread"};
    for (int i = 0; i < 2; i++) {
        if (!chat__json_get(f, rel_keys[i]))
            continue; /* absent: no error record to format */
        int rr = chat__json_u64(f, rel_keys[i], &rel[i]);
        if (rr != CHAT_OK || rel[i] == 0) {
            char msg[64];
            snprintf(msg, sizeof msg, "'%s' must be a message's seq", rel_keys[i]);
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field", msg, 0);
            goto fail;
        }
        if (!srv->lifecycle) {
            chat__conn_decline(c, re, CHAT_ENOTSUP, "no_lifecycle",
                               "this server's store keeps no replies or threads", 0);
            goto fail;
        }
    }
    a.reply = rel[0];
    a.thread = rel[1];

    if (!chat__send_admit(c, re))
        goto fail;
    if (!chat__affinity_send(c, f, re, &a)) /* else another node writes it */
        chat__send_start(c, f, re, &a);
    return;
fail:
    cJSON_free(media);
    cJSON_Delete(re);
    cJSON_Delete(f);
}

/* A flat send's arguments and the strings they point to, in one allocation. */
typedef struct flat_send {
    send_args a; /* first: the job reads r->extra as a send_args */
    char strs[];
} flat_send;

/* A string member of a flat frame sent without escapes, as identifiers are: 1 with its bytes. */
static int flat_plain(const chat__flat_val *v, const char **s, size_t *n)
{
    if (!v || !v->raw || v->raw_len != v->len)
        return 0;
    *s = v->raw;
    *n = v->len;
    return 1;
}

int chat__send_flat(chat__conn *c, const chat__flat *fl)
{
    chat_server *srv = c->srv;
    static const char *const keys[] = {"type", "id",   "conv",  "to",    "cmid",
                                       "kind", "text", "reply", "thread"};
    const chat__flat_val *v[sizeof keys / sizeof keys[0]];
    chat__flat_pick(fl, keys, sizeof keys / sizeof keys[0], v);
    if (!chat__flat_is(v[0], "send"))
        return 0;
    /* A send that may go to another node keeps its cJSON frame (affinity.c holds it). */
    if (srv->affinity.on)
        return 0;
    /* Every condition below is one under which chat__handle_send takes the frame as it is;
     * anything else goes there to be answered. */
    const chat__flat_val *id = v[1], *conv = v[2], *to = v[3], *cmid = v[4], *kind = v[5],
                         *text = v[6];
    const char *id_s = NULL, *to_s = NULL, *cmid_s;
    size_t id_n = 0, to_n = 0, cmid_n;
    if (id && id->raw && (!flat_plain(id, &id_s, &id_n) || !chat__cmid_valid(id_s, id_n)))
        return 0; /* a number id is always valid: the scan reads only those below 2^53 */
    if (!conv == !to || (conv && (conv->raw || conv->num == 0)))
        return 0;
    if (to && (!flat_plain(to, &to_s, &to_n) || !chat__id_valid(to_s, to_n) ||
               (strlen(c->user) == to_n && memcmp(c->user, to_s, to_n) == 0)))
        return 0;
    if (!flat_plain(cmid, &cmid_s, &cmid_n) || !chat__cmid_valid(cmid_s, cmid_n))
        return 0;
    if ((kind && !chat__flat_is(kind, "text")) || !text || !text->raw || text->len == 0 ||
        (int64_t)text->len > chat__limit(srv, CHAT_LIMIT_BODY_BYTES))
        return 0;
    uint64_t rel[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        const chat__flat_val *r = v[7 + i]; /* reply, thread */
        if (r && (r->raw || r->num == 0 || !srv->lifecycle))
            return 0;
        rel[i] = r ? r->num : 0;
    }

    cJSON *re = NULL;
    if (id && id_s) {
        char idbuf[65]; /* an id is at most 64 bytes (chat__cmid_valid) */
        memcpy(idbuf, id_s, id_n);
        idbuf[id_n] = '\0';
        re = cJSON_CreateString(idbuf);
    } else if (id) {
        re = cJSON_CreateNumber((double)id->num);
    }
    flat_send *fs = id && !re ? NULL
                              : chat__malloc(sizeof *fs + to_n + 1 + cmid_n + 1 + text->len + 1);
    if (!fs) { /* the full path meets the shortage again, and answers it */
        cJSON_Delete(re);
        return 0;
    }
    memset(&fs->a, 0, sizeof fs->a);
    char *p = fs->strs;
    fs->a.conv = conv ? (int64_t)conv->num : 0;
    if (to) {
        memcpy(p, to_s, to_n);
        p[to_n] = '\0';
        fs->a.to = p;
        p += to_n + 1;
    }
    memcpy(p, cmid_s, cmid_n);
    p[cmid_n] = '\0';
    fs->a.cmid = p;
    p += cmid_n + 1;
    chat__flat_copy(text, p);
    fs->a.kind = CHAT_MSG_TEXT;
    fs->a.body = p;
    fs->a.body_len = text->len;
    fs->a.reply = rel[0];
    fs->a.thread = rel[1];

    if (!chat__send_admit(c, re)) {
        chat__free(fs);
        cJSON_Delete(re);
        return 1;
    }
    chat__req *r = chat__req_make(c, NULL, re, chat__send_run, fs, free_send_args);
    if (!r) {
        chat__free(fs);
        return 1;
    }
    r->job.lock_conv = fs->a.conv; /* chat__req_new reads it from the frame, which has none */
    chat__req_submit(srv, r);
    return 1;
}

void chat__send_start(chat__conn *c, cJSON *f, cJSON *re, const chat__send_args *a)
{
    if (chat__req_start(c, f, re, chat__send_run, a, sizeof *a, free_send_args) != CHAT_OK &&
        a->kind == CHAT_MSG_MEDIA)
        cJSON_free((void *)a->body); /* answered by chat__req_start */
}

/* ---- history ---- */

typedef struct history_args {
    int64_t conv;
    uint64_t after, before;
    uint64_t thread; /* a thread's root: the page is of its replies */
    int limit;
    int backwards;
} history_args;

/* A thread's head for history: its root (as an item) and my unread count in it. */
static int thread_head(chat__txn *tx, chat__req *r, const history_args *a,
                       const chat_store_conv *conv, const chat_store_member *me, cJSON *o)
{
    chat_store_msg root;
    int rc = chat__txn_visible(tx, r, conv->id, a->thread, me, &root);
    if (rc != CHAT_OK)
        return rc;
    if (root.thread_seq || root.kind > CHAT_MSG_MEDIA || root.kind == CHAT_MSG_EVENT) {
        chat__msg_free(&root);
        return chat__req_fail(r, CHAT_EINVAL, "bad_field", "message %" PRIu64
                              " is not a thread's root", a->thread);
    }
    char key[CHAT__THREAD_KEY_MAX];
    chat__thread_read_key(key, sizeof key, conv->id, a->thread, r->user);
    int64_t read = 0;
    rc = tx->ops->meta_get(tx->st, key, &read);
    uint64_t unread = 0, from = (uint64_t)read > me->joined_seq ? (uint64_t)read : me->joined_seq;
    if ((rc == CHAT_OK || rc == CHAT_ENOTFOUND) &&
        tx->ops->msg_count(tx->st, conv->id, a->thread, from, conv->head_seq, &unread) == CHAT_OK)
        rc = CHAT_OK;
    else
        rc = chat__req_fail(r, CHAT_EIO, "storage", "cannot count the thread");
    cJSON *item = rc == CHAT_OK ? chat__msg_item(&root, NULL) : NULL;
    chat__msg_free(&root);
    if (rc != CHAT_OK)
        return rc;
    if (!item)
        return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    cJSON_AddNumberToObject(o, "thread", (double)a->thread);
    cJSON_AddItemToObject(o, "root", item);
    cJSON_AddNumberToObject(o, "unread", (double)unread);
    return CHAT_OK;
}

static int history_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    history_args *a = r->extra;
    chat_store_conv conv;
    chat_store_member me;
    int rc = chat__txn_member(tx, r, a->conv, r->user, &conv, &me);
    if (rc != CHAT_OK)
        return rc;
    /* A member sees what was sent after joining. */
    uint64_t after = a->after > me.joined_seq ? a->after : me.joined_seq;
    cJSON *o = chat__req_reply(r, "history");
    cJSON *msgs = cJSON_CreateArray();
    chat__page p = {0};
    if (!o || !msgs || !cJSON_AddNumberToObject(o, "conv", (double)a->conv)) {
        rc = chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
        goto out;
    }
    if (a->thread && (rc = thread_head(tx, r, a, &conv, &me, o)) != CHAT_OK)
        goto out;
    /* One extra row tells whether there is more in the direction paged. */
    rc = a->thread ? tx->ops->msg_thread(tx->st, a->conv, a->thread, after, a->before,
                                         a->limit + 1, a->backwards, chat__page_add, &p)
                   : tx->ops->msg_range(tx->st, a->conv, after, a->before, a->limit + 1,
                                        a->backwards, chat__page_add, &p);
    if (rc != CHAT_OK) {
        rc = chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                            "cannot read history");
        goto out;
    }
    int more = p.n > (size_t)a->limit;
    if (more)
        chat__msg_free(&p.v[--p.n]); /* the farthest in the direction paged */
    /* Pages always read in ascending order. */
    for (size_t i = 0; a->backwards && i < p.n / 2; i++) {
        chat_store_msg t = p.v[i];
        p.v[i] = p.v[p.n - 1 - i];
        p.v[p.n - 1 - i] = t;
    }
    if ((rc = chat__page_encode(tx, &p, a->conv, msgs)) != CHAT_OK) {
        rc = chat__req_fail(r, rc, rc == CHAT_ENOMEM ? "internal" : "storage",
                            "cannot read history");
        goto out;
    }
    int ok = cJSON_AddBoolToObject(o, "more", more) != NULL;
    ok = chat__json_add(ok ? o : NULL, "messages", msgs) && ok; /* msgs is consumed either way */
    msgs = NULL;
    r->reply = ok ? chat__frame_json(o) : NULL;
    rc = r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
out:
    chat__page_free(&p);
    cJSON_Delete(o);
    cJSON_Delete(msgs);
    return rc;
}

int chat__arg_limit(chat__conn *c, const cJSON *f, const cJSON *re, int def, int *out)
{
    uint64_t v;
    int rc = chat__json_u64(f, "limit", &v);
    if (rc == CHAT_ENOTFOUND) {
        v = (uint64_t)def;
    } else if (rc != CHAT_OK || v == 0) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'limit' must be a positive integer",
                         0);
        return 0;
    }
    uint64_t max = (uint64_t)chat__limit(c->srv, CHAT_LIMIT_PAGE_MAX);
    *out = (int)(v > max ? max : v);
    return 1;
}

void chat__handle_history(chat__conn *c, cJSON *f, cJSON *re)
{
    history_args a = {0};
    if (!chat__arg_conv(c, f, re, &a.conv) || !chat__arg_limit(c, f, re, 50, &a.limit))
        goto fail;
    int rb = chat__json_u64(f, "before", &a.before);
    int ra = chat__json_u64(f, "after", &a.after);
    if ((rb != CHAT_OK && rb != CHAT_ENOTFOUND) || (ra != CHAT_OK && ra != CHAT_ENOTFOUND)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                         "'before' and 'after' must be non-negative integers", 0);
        goto fail;
    }
    if (rb == CHAT_OK && ra == CHAT_OK) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "give 'before' or 'after', not both",
                         0);
        goto fail;
    }
    if (rb == CHAT_OK && a.before == 0)
        a.before = 1; /* nothing is below seq 1 */
    a.backwards = ra != CHAT_OK;
    int rt = chat__json_u64(f, "thread", &a.thread);
    if ((rt != CHAT_OK && rt != CHAT_ENOTFOUND) || (rt == CHAT_OK && a.thread == 0)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'thread' must be a message's seq", 0);
        goto fail;
    }
    if (a.thread && !c->srv->lifecycle) {
        chat__conn_decline(c, re, CHAT_ENOTSUP, "no_lifecycle",
                           "this server's store keeps no threads", 0);
        goto fail;
    }
    chat__req_start(c, f, re, history_run, &a, sizeof a, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
