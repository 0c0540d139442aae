/*
 * Write affinity between nodes (affinity.h).
 *
 * Nodes sharing a store serialise the writes of one conversation on its row: two nodes
 * writing it at once each wait for the other's commit, batch after batch. With affinity on,
 * the node that takes a client's send computes the conversation's owner, the live node with
 * the highest hash of (node, conversation) (rendezvous hashing: a node joining or leaving
 * moves only the conversations it wins or held), and when that is another node, hands the
 * send over as a bus request. The owner writes it in its own writer batch exactly as a local
 * send (the same job, the same fan-out from there, except the sending device) and answers with
 * the ack frame, which the origin writes to its client unchanged, or with the failure.
 *
 * Correctness never depends on it. The live set is the bus's (presence heartbeats and their
 * lease), so two nodes may briefly disagree on an owner: both then write, as without affinity.
 * A request that gets no answer in time, finds no node of that name, or meets an owner that
 * drains, is overloaded or failed on its own side, is written here instead. The same message
 * is never stored twice: the store refuses a second (conversation, sender, device, cmid), and
 * a send that timed out but was written by the owner is acked here as the resend it then is.
 *
 * Requests (origin -> owner), one header line and the bytes it counts:
 *   S <conv> <kind> <reply> <thread> <user> <device> <cmid> <media_id|-> <re_len> <body_len>\n
 *   <re: the request id's JSON, re_len bytes><body: body_len bytes>
 * Answers:
 *   A<ack frame>                                  written; the frame for the client
 *   E <code> <retry_after_ms> <reason>\n<message> refused or failed
 *   N                                             not taken: write it yourself
 * Only sends by conversation id go: a send by "to" names no conversation until the writer
 * finds or creates it.
 */
#include "server/affinity.h"

#include "server/req.h"

#include "core/alloc.h"
#include "core/ids.h"
#include "store/hmap.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The owner's answer is awaited this long; then the send is written here. */
#define AFFINITY_TIMEOUT_MS 2000

/* ---- the owner of a conversation ---- */

/* Rendezvous weight of node for conv: the same on every node (no seed, no pointer). */
static uint64_t weight(const char *node, int64_t conv)
{
    uint64_t h = chat__hash_bytes(CHAT__HASH_SEED, node, strlen(node));
    return chat__hash_u64(h ^ chat__hash_u64((uint64_t)conv));
}

typedef struct best {
    int64_t conv;
    const char *node;
    uint64_t w;
} best;

static void consider(const char *node, void *value, void *ud)
{
    (void)value;
    best *b = ud;
    uint64_t w = weight(node, b->conv);
    if (w > b->w || (w == b->w && strcmp(node, b->node) > 0)) {
        b->node = node;
        b->w = w;
    }
}

/* conv's owner among this node and the live ones; NULL when it is this node. */
static const char *owner_of(chat__affinity *af, int64_t conv)
{
    best b = {conv, af->self, weight(af->self, conv)};
    chat__strmap_each(&af->live, consider, &b);
    return b.node == af->self ? NULL : b.node;
}

/* ---- setup ---- */

void chat__affinity_init(chat_server *srv)
{
    chat__affinity *af = &srv->affinity;
    chat__strmap_init(&af->live);
    chat__strmap_init(&af->out);
    if (!(srv->cfg.flags & CHAT_SERVER_AFFINITY))
        return;
    const chat_bus_ops *bus = srv->bus;
    if (bus->version < 4 || !bus->request || !bus->respond || !bus->ctl ||
        bus->ctl(srv->bus_st, CHAT_BUS_CTL_NODE_ID, af->self) != CHAT_OK || !af->self[0]) {
        chat__log(srv, CHAT_LOG_INFO, "write affinity needs a bus between nodes with requests "
                                      "(bus version 4): every send is written here");
        return;
    }
    af->on = 1;
}

typedef struct fwd_out {
    chat__conn *conn; /* a reference */
    cJSON *f, *re;
    chat__send_args a; /* its text points into f; a media body is owned */
    uint64_t recv_us;  /* when the send arrived: its ack's latency counts the trip */
} fwd_out;

static void fwd_out_free(fwd_out *w, int keep_args)
{
    if (!keep_args) {
        cJSON_Delete(w->f);
        cJSON_Delete(w->re);
        if (w->a.kind == CHAT_MSG_MEDIA)
            cJSON_free((void *)w->a.body);
    }
    chat__conn_unref(w->conn);
    chat__free(w);
}

static void drop_out(const char *key, void *value, void *ud)
{
    (void)key;
    (void)ud;
    fwd_out_free(value, 0);
}

void chat__affinity_free(chat_server *srv)
{
    chat__affinity *af = &srv->affinity;
    chat__strmap_each(&af->out, drop_out, NULL);
    chat__strmap_clear(&af->out);
    chat__strmap_clear(&af->live);
}

void chat__affinity_node(chat_server *srv, const char *node, int up)
{
    chat__affinity *af = &srv->affinity;
    if (up) {
        /* Without memory the node is left out: its conversations are written elsewhere. */
        (void)chat__strmap_put(&af->live, node, srv);
    } else {
        chat__strmap_del(&af->live, node);
    }
}

/* ---- the origin: a client's send goes to its owner ---- */

int chat__affinity_send(chat__conn *c, cJSON *f, cJSON *re, const chat__send_args *a)
{
    chat_server *srv = c->srv;
    chat__affinity *af = &srv->affinity;
    if (!af->on || !a->conv || atomic_load(&srv->draining))
        return 0;
    const char *owner = owner_of(af, a->conv);
    if (!owner)
        return 0;
    char *re_text = re ? cJSON_PrintUnformatted(re) : NULL;
    size_t re_len = re_text ? strlen(re_text) : 0;
    char head[512];
    int hl = snprintf(head, sizeof head,
                      "S %" PRId64 " %d %" PRIu64 " %" PRIu64 " %s %s %s %s %zu %zu\n", a->conv,
                      a->kind, a->reply, a->thread, c->user, c->device, a->cmid,
                      a->media_id[0] ? a->media_id : "-", re_len, a->body_len);
    size_t len = (size_t)hl + re_len + a->body_len;
    char *msg = (!re || re_text) && hl > 0 && (size_t)hl < sizeof head &&
                        len <= CHAT_BUS_REQ_MAX
                    ? chat__malloc(len)
                    : NULL;
    fwd_out *w = msg ? chat__calloc(1, sizeof *w) : NULL;
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, ++af->next_id);
    int rc = w ? chat__strmap_put(&af->out, key, w) : CHAT_ENOMEM;
    if (rc == CHAT_OK) {
        memcpy(msg, head, (size_t)hl);
        if (re_len)
            memcpy(msg + hl, re_text, re_len);
        memcpy(msg + hl + re_len, a->body, a->body_len);
        rc = srv->bus->request(srv->bus_st, owner, msg, len, AFFINITY_TIMEOUT_MS, af->next_id);
        if (rc != CHAT_OK)
            chat__strmap_del(&af->out, key);
    }
    cJSON_free(re_text);
    chat__free(msg);
    if (rc != CHAT_OK) {
        chat__free(w);
        chat__count(&srv->stats.affinity_fallback, 1);
        return 0;
    }
    w->conn = chat__conn_ref(c);
    w->f = f;
    w->re = re;
    w->a = *a;
    w->recv_us = chat__rx_us(srv);
    srv->writer_backlog++; /* within the writer_queue limit, and a drain waits for it */
    return 1;
}

/* The owner's refusal or failure "<code> <retry_after_ms> <reason>\n<message>", answered to
 * the client as a local one would be; 0 when it is one of the owner's own (written here). */
static int answer_error(chat__conn *c, const fwd_out *w, const char *p, size_t len)
{
    char text[512];
    if (len >= sizeof text)
        len = sizeof text - 1;
    memcpy(text, p, len);
    text[len] = '\0';
    int code = 0;
    long long retry = 0;
    char reason[64];
    int used = 0;
    if (sscanf(text, " %d %lld %63s%n", &code, &retry, reason, &used) != 3 || code >= 0 ||
        code < CHAT_EUSER || chat__req_failed_on_our_side(code))
        return 0;
    const char *message = text + used + (text[used] == '\n');
    if (c->tc)
        chat__req_answer_error(c, w->re, code, reason, message, retry);
    return 1;
}

void chat__affinity_reply(chat_server *srv, uint64_t id, int status, const void *msg,
                          size_t len)
{
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, id);
    fwd_out *w = chat__strmap_del(&srv->affinity.out, key);
    if (!w)
        return;
    srv->writer_backlog--;
    chat__conn *c = w->conn;
    const char *p = msg;
    if (status == CHAT_OK && len > 1 && p[0] == 'A') {
        chat__frame *ack = chat__frame_new(p + 1, len - 1);
        if (ack) {
            if (c->tc) {
                ack->stamp = chat__stamp(w->recv_us, CHAT__STAMP_ACK);
                chat__conn_send(c, ack);
            }
            chat__frame_unref(ack);
            chat__count(&srv->stats.affinity_out, 1);
            fwd_out_free(w, 0);
            return;
        }
    } else if (status == CHAT_OK && len > 1 && p[0] == 'E' && answer_error(c, w, p + 1, len - 1)) {
        chat__count(&srv->stats.affinity_out, 1);
        fwd_out_free(w, 0);
        return;
    }
    /* No answer, no such node, not taken there, or a failure there: written here. */
    chat__count(&srv->stats.affinity_fallback, 1);
    chat__send_start(c, w->f, w->re, &w->a);
    fwd_out_free(w, 1);
}

/* ---- the owner: a send from another node's client ---- */

typedef struct fwd_in {
    chat__send_args a; /* first: chat__send_run reads the job's extra as one */
    uint64_t token;
    char cmid[CHAT_ID_MAX + 1];
    char body[]; /* body_len bytes and a NUL */
} fwd_in;

static void respond(chat_server *srv, uint64_t token, const char *msg, size_t len)
{
    int rc = srv->bus->respond(srv->bus_st, token, msg, len);
    if (rc != CHAT_OK) {
        chat__count(&srv->stats.bus_errors, 1);
        chat__log(srv, CHAT_LOG_WARN, "an answer to another node was not sent (%s)",
                  chat_error_name(rc));
    }
}

static void in_after(chat_server *srv, chat__req *r)
{
    fwd_in *in = r->extra;
    srv->writer_backlog--;
    chat__count(&srv->stats.affinity_in, 1);
    if (r->job.status == CHAT_OK && r->reply) {
        char *msg = chat__malloc(r->reply->len + 1);
        if (msg) {
            msg[0] = 'A';
            memcpy(msg + 1, chat__frame_data(r->reply), r->reply->len);
            respond(srv, in->token, msg, r->reply->len + 1);
            chat__free(msg);
            return;
        }
    }
    char msg[512];
    int status = r->job.status != CHAT_OK ? r->job.status : CHAT_ENOMEM;
    int n = snprintf(msg, sizeof msg, "E %d %lld %s\n%s", status,
                     (long long)r->job.retry_after_ms,
                     r->job.reason && r->job.reason[0] ? r->job.reason : "internal",
                     r->job.message);
    respond(srv, in->token, msg, n < 0 ? 0 : (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

/* Parse a request into a new fwd_in, *re_out its request id (or NULL); NULL when malformed. */
static fwd_in *parse_send(const char *msg, size_t len, char *user, char *device,
                          cJSON **re_out)
{
    const char *nl = memchr(msg, '\n', len < 512 ? len : 512);
    if (!nl || msg[0] != 'S')
        return NULL;
    char head[512];
    memcpy(head, msg, (size_t)(nl - msg));
    head[nl - msg] = '\0';
    long long conv;
    int kind;
    unsigned long long reply, thread;
    char cmid[CHAT_ID_MAX + 2], media_id[CHAT__MEDIA_ID_LEN + 2];
    size_t re_len, body_len;
    /* One byte over each limit, so that a longer word is seen (and refused). */
    _Static_assert(CHAT_ID_MAX == 64 && CHAT__MEDIA_ID_LEN == 64, "the widths below");
    if (sscanf(head, "S %lld %d %llu %llu %65s %65s %65s %65s %zu %zu", &conv, &kind, &reply, &thread, user, device, cmid, media_id, &re_len,
               &body_len) != 10)
        return NULL;
    const char *rest = nl + 1;
    size_t left = len - (size_t)(rest - msg);
    if (conv <= 0 || (kind != CHAT_MSG_TEXT && kind != CHAT_MSG_MEDIA) ||
        !chat__id_valid(user, strlen(user)) || !chat__id_valid(device, strlen(device)) ||
        !chat__cmid_valid(cmid, strlen(cmid)) || strlen(media_id) > CHAT__MEDIA_ID_LEN ||
        re_len > left || body_len != left - re_len || body_len == 0)
        return NULL;
    cJSON *re = NULL;
    if (re_len && !(re = cJSON_ParseWithLength(rest, re_len)))
        return NULL;
    fwd_in *in = chat__calloc(1, sizeof *in + body_len + 1);
    if (!in) {
        cJSON_Delete(re);
        return NULL;
    }
    memcpy(in->body, rest + re_len, body_len);
    strcpy(in->cmid, cmid);
    in->a.conv = conv;
    in->a.kind = kind;
    in->a.reply = reply;
    in->a.thread = thread;
    in->a.cmid = in->cmid;
    in->a.body = in->body;
    in->a.body_len = body_len;
    if (strcmp(media_id, "-") != 0)
        strcpy(in->a.media_id, media_id);
    *re_out = re;
    return in;
}

void chat__affinity_request(chat_server *srv, const char *from, uint64_t token, const void *msg,
                            size_t len)
{
    char user[CHAT_ID_MAX + 2], device[CHAT_ID_MAX + 2];
    cJSON *re = NULL;
    /* Not taken while draining (the drain must end) or with the writer's queue full (the
     * origin's queue takes it instead); nor what this node cannot read (a newer node's). */
    fwd_in *in = atomic_load(&srv->draining) ||
                         srv->writer_backlog >= (size_t)chat__limit(srv, CHAT_LIMIT_WRITER_QUEUE)
                     ? NULL
                     : parse_send(msg, len, user, device, &re);
    chat__req *r = in ? chat__req_new(NULL, NULL, chat__send_run) : NULL;
    if (!r) {
        if (in)
            cJSON_Delete(re);
        chat__free(in);
        respond(srv, token, "N", 1);
        return;
    }
    (void)from;
    in->token = token;
    strcpy(r->user, user);
    strcpy(r->device, device);
    r->re = re;
    r->extra = in;
    r->extra_free = chat__free;
    r->job.lock_conv = in->a.conv;
    r->after = in_after;
    r->own_errors = 1;
    srv->writer_backlog++;
    chat__req_submit(srv, r);
}
