/*
 * The NATS bus: engine instances (nodes) sharing a NATS core server route live frames and
 * presence to each other. Wire format (doc/backends.md, "The NATS bus"), prefix P:
 *
 *   P.node.<node>  what one node receives (a subscription of its own):
 *     F <from> <epoch> <lseq> <except_user|-> <except_device|-> <n>\n<user> <user> ...\n<frame>
 *        one live frame for the n users of that node: a frame crosses the bus once per
 *        receiving node, whatever the number of recipients there. lseq counts the frames
 *        <from> sent to this node (per epoch of <from>): a skipped one is a frame lost.
 *     R <from>     <from> asks for this node's snapshot (it missed announcements)
 *     K <from> <epoch> <aseq>  <from> applied this node's announcements up to aseq (of the
 *                  incarnation epoch): what settle() waits for
 *     M <from> <epoch>\n<bytes>  a message of <from>'s engine to this node's (send())
 *     Q <from>\n<bytes>          a request of <from>'s engine (request()), with a NATS reply
 *                  subject <inbox>.<id> in <from>'s inbox, which the answer goes to as is;
 *                  NATS itself answers "no responders" when no node of that name listens
 *   P.pres.<node>  one node's presence stream; every node subscribes to P.pres.*
 *     H <epoch> <aseq>                    heartbeat, with the last announcement's number
 *     A <epoch> <aseq>\n+user -user ...  the users whose first device came to this node (+)
 *                                         or whose last device left it (-), in order
 *     S <epoch> <aseq> <part> <last>\nuser user ...  a snapshot of this node's users as of
 *                                         announcement aseq, in parts of at most 32 KiB
 *     B <epoch>                           the node stops (its users leave at once)
 *     M <epoch> <aseq>\n<bytes>           a message of the node's engine to every other one,
 *                                         numbered with the announcements
 *
 * Each node keeps a directory user -> the other nodes where the user has a device, learnt
 * from the presence streams, which answers online() and routes publish2: one NATS message
 * per node that holds a recipient. A node whose stream stays silent past the lease is dropped
 * with its users (offline); a new epoch (the node restarted) drops what the old one had; a
 * gap in the announcement numbers asks for a snapshot.
 *
 * settle(): a device that connects here is announced; the engine holds its connection's output
 * until every live node acknowledged that announcement (K), or SETTLE_MAX_MS passed, so that
 * once the client has its auth_ok, any node routes what it publishes for the user here.
 *
 * Threads: libnats receives on its own threads. Message handlers only queue the message and
 * wake the engine; everything else (directory, registry, publishing) happens on the loop
 * thread in the methods and in poll(). A ticker thread wakes the loop every heartbeat.
 * Delivery is at most once: the engine's position hints and sink->lost, which the bus calls
 * after a reconnect, a slow-consumer drop, a gap in a link's frame numbers or a node's lease
 * running out, let clients fill what was lost from the store.
 */
#include "chat/sys/bus.h"

#include "bus/check.h"
#include "bus/registry.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/monowait.h"
#include "core/strmap.h"
#include "core/thread.h"

#include <nats/nats.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NODE_MAX 64
#define PREFIX_MAX 64
#define SUBJECT_MAX (PREFIX_MAX + NODE_MAX + 16)
#define CHUNK_MAX (32 * 1024)   /* announcements and snapshot parts */
#define ID_MAX 64               /* user and device ids on the wire */
#define LOSS_SPACING_MS 5000    /* sink->lost at most this often; a later loss waits */
#define RECONNECT_MIN_MS 50
#define RECONNECT_MAX_MS 2000
#define SETTLE_MAX_MS 250       /* settle() waits for the others at most this long */
#define SETTLE_TICK_MS 25       /* the ticker's period while something waits */
#define SETTLE_FIFO_MAX 1024    /* announcements awaiting acknowledgement, at most */
#define INBOX_MAX 128

/* A remote node, known from its presence stream (or only from its frames). */
typedef struct rnode {
    char id[NODE_MAX + 1];
    char subject[SUBJECT_MAX];  /* P.node.<id> */
    uint64_t epoch;             /* 0: not heard on its stream yet */
    uint64_t aseq;              /* announcements applied */
    int synced;                 /* the users below are its users as of aseq */
    int64_t heard_ms, asked_ms;
    uint64_t in_epoch, in_seq;  /* frames it sent here: its epoch then, last link number */
    uint64_t out_seq;           /* frames sent to it */
    uint64_t acked;             /* our announcements it applied (K) */
    /* a snapshot arriving in parts */
    chat__strmap snap;
    int snap_on;
    uint64_t snap_aseq;
    unsigned long snap_next;
    /* publish2: the users of the frame being routed to it */
    char *ubuf;
    size_t ulen, ucap, un;
    struct rnode *batch_next;
    int batched;
} rnode;

/* Directory entry: the remote nodes where user has a device. */
typedef struct dentry {
    size_t n;
    rnode *nodes[];
} dentry;

typedef struct growbuf {
    char *p;
    size_t len, cap;
} growbuf;

/* An announcement published and not yet known to be applied everywhere. */
typedef struct pending {
    uint64_t aseq;
    int64_t sent_ms;
} pending;

struct nats_bus {
    chat_bus_sink sink;
    int attached;
    char url[1024];
    char node[NODE_MAX + 1];
    char prefix[PREFIX_MAX + 1];
    char my_frames[SUBJECT_MAX], my_pres[SUBJECT_MAX], all_pres[SUBJECT_MAX];
    int64_t heartbeat_ms, lease_ms;
    uint64_t epoch;

    natsConnection *nc;
    natsSubscription *sub_frames, *sub_pres, *sub_inbox;
    char inbox[INBOX_MAX];      /* <inbox>.* receives the answers to our requests */

    /* What the libnats threads hand over. */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    natsMsg **q;
    size_t qn, qcap;
    int subs_done;              /* subscriptions whose last handler returned */
    int closed;                 /* the connection's closed callback ran */
    atomic_int tick, reconnected, disconnected, slow, q_dropped;
    atomic_int closing;         /* destroy() runs: a disconnection is ours */
    atomic_int settling;        /* announcements await acknowledgement: tick faster */
    atomic_int requesting;      /* requests await answers: tick faster */

    /* Ticker. */
    pthread_t ticker;
    int ticker_on, ticker_stop;

    /* Loop-thread state. */
    chat__bus_registry *local; /* devices connected here */
    chat__strmap nodes;        /* node id -> rnode */
    chat__strmap dir;          /* user -> dentry */
    uint64_t aseq;             /* announcements published */
    growbuf edges;             /* announcement being collected: "+u -v ..." */
    growbuf scratch;
    int snapshot_wanted;
    int64_t snapshot_ms;
    int64_t loss_due_ms, loss_last_ms; /* loss_due_ms 0: none pending */
    /* settle(): announcements awaiting acknowledgement, oldest first (a ring) */
    pending *fifo;
    size_t fifo_head, fifo_n;
    uint64_t settled_aseq;  /* every announcement up to here is settled */
    uint64_t settle_want;   /* the highest ticket handed out */
    uint64_t twin_epoch;    /* another process with our node id, last reported */
    /* request(): ours awaiting an answer, id -> deadline (int64_t *, ms) */
    chat__strmap out_req;
    size_t out_n;
    int64_t out_next;           /* no deadline passes before this (ms); may be early */
    /* sink->request: theirs awaiting respond(), token -> reply subject */
    chat__strmap in_req;
    uint64_t in_token;
};

static int64_t now_ms(void)
{
    return (int64_t)(chat__mono_ns() / 1000000u);
}

/* ---- small helpers ---- */

static void bus_log(struct nats_bus *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bus_log(struct nats_bus *b, int level, const char *fmt, ...)
{
    if (!b->sink.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    b->sink.log(level, msg, b->sink.user_data);
}

static int gb_reserve(growbuf *b, size_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more)
        cap *= 2;
    char *p = chat__realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int gb_add(growbuf *b, const void *s, size_t n)
{
    if (gb_reserve(b, n))
        return -1;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

static int gb_printf(growbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int gb_printf(growbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -1;
    return gb_add(b, tmp, (size_t)n);
}

/* Node ids and prefixes become subject tokens: no dots, wildcards or spaces. */
static int name_valid(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* User and device ids travel space-separated: printable ASCII without spaces. */
static int id_wire_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* The next space- or newline-separated token of [*p, end); NULL at the end. */
static const char *token(const char **p, const char *end, size_t *len)
{
    const char *s = *p;
    while (s < end && *s == ' ')
        s++;
    const char *t = s;
    while (t < end && *t != ' ' && *t != '\n')
        t++;
    *p = t;
    *len = (size_t)(t - s);
    return t > s ? s : NULL;
}

/* The next token of [*p, end) into out (size bytes, NUL included): 1, or 0 at the end. A
 * longer token is skipped in a list (skip) and ends the parse in a header (0). */
static int next_word(const char **p, const char *end, char *out, size_t size, int skip)
{
    size_t len;
    const char *t;
    while ((t = token(p, end, &len)) != NULL) {
        if (len < size) {
            memcpy(out, t, len);
            out[len] = 0;
            return 1;
        }
        if (!skip)
            return 0;
    }
    return 0;
}

static int tok_u64(const char **p, const char *end, int base, uint64_t *out)
{
    size_t n;
    const char *t = token(p, end, &n);
    if (!t || n > 20 || *t == '-' || *t == '+' || *t == ' ')
        return -1;
    char tmp[24];
    memcpy(tmp, t, n);
    tmp[n] = 0;
    char *e = NULL;
    unsigned long long v = strtoull(tmp, &e, base);
    if (*e)
        return -1;
    *out = v;
    return 0;
}

/* Skip to the byte after the next newline (the end when there is none). */
static const char *next_line(const char *p, const char *end)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    return nl ? nl + 1 : end;
}

static void publish_raw(struct nats_bus *b, const char *subject, const void *data, size_t len)
{
    /* A failed publish is a frame or an announcement lost; receivers find out by its number. */
    (void)natsConnection_Publish(b->nc, subject, data, (int)len);
}

/* A loss was seen: the engine is told, at most once per LOSS_SPACING_MS (a later loss waits
 * for the end of that spacing, so the clients' catch-up always follows the last loss). */
static void note_loss(struct nats_bus *b, int64_t now)
{
    if (b->loss_due_ms)
        return;
    int64_t at = b->loss_last_ms ? b->loss_last_ms + LOSS_SPACING_MS : now;
    b->loss_due_ms = at > now ? at : now;
}

/* ---- the directory ---- */

static int online_any(struct nats_bus *b, const char *user)
{
    if (chat__bus_registry_devices(b->local, user))
        return 1;
    dentry *d = chat__strmap_get(&b->dir, user);
    return d && d->n;
}

static int dir_add(struct nats_bus *b, const char *user, rnode *n)
{
    dentry *d = chat__strmap_get(&b->dir, user);
    for (size_t i = 0; d && i < d->n; i++)
        if (d->nodes[i] == n)
            return CHAT_OK;
    int was = online_any(b, user);
    size_t count = d ? d->n : 0;
    dentry *nd = chat__realloc(d, sizeof *nd + (count + 1) * sizeof(rnode *));
    if (!nd)
        return CHAT_ENOMEM;
    nd->n = count + 1;
    nd->nodes[count] = n;
    if (nd != d && chat__strmap_put(&b->dir, user, nd) != CHAT_OK) {
        /* the old pointer was freed by realloc: the map must not keep it */
        chat__strmap_del(&b->dir, user);
        chat__free(nd);
        return CHAT_ENOMEM;
    }
    if (!was)
        b->sink.presence(user, 1, b->sink.user_data);
    return CHAT_OK;
}

static void dir_remove(struct nats_bus *b, const char *user, rnode *n)
{
    dentry *d = chat__strmap_get(&b->dir, user);
    size_t i = 0;
    while (d && i < d->n && d->nodes[i] != n)
        i++;
    if (!d || i == d->n)
        return;
    d->nodes[i] = d->nodes[--d->n];
    if (d->n == 0) {
        chat__strmap_del(&b->dir, user);
        chat__free(d);
    }
    if (!online_any(b, user))
        b->sink.presence(user, 0, b->sink.user_data);
}

struct collect {
    rnode *node;
    const chat__strmap *keep; /* users not to collect (NULL: none) */
    growbuf names;            /* NUL-separated */
    int failed;
};

static void collect_cb(const char *user, void *value, void *ud)
{
    struct collect *c = ud;
    dentry *d = value;
    if (c->keep && chat__strmap_get(c->keep, user))
        return;
    for (size_t i = 0; i < d->n; i++)
        if (d->nodes[i] == c->node && gb_add(&c->names, user, strlen(user) + 1))
            c->failed = 1;
}

/* Remove node from every user of the directory except those in keep. */
static void dir_remove_node(struct nats_bus *b, rnode *n, const chat__strmap *keep)
{
    struct collect c = {n, keep, {0}, 0};
    chat__strmap_each(&b->dir, collect_cb, &c);
    for (size_t off = 0; off < c.names.len; off += strlen(c.names.p + off) + 1)
        dir_remove(b, c.names.p + off, n);
    chat__free(c.names.p);
    if (c.failed) /* out of memory while listing: drop what cannot be listed the slow way */
        note_loss(b, now_ms());
}

/* ---- remote nodes ---- */

static void snap_clear(rnode *n)
{
    chat__strmap_clear(&n->snap);
    n->snap_on = 0;
}

static rnode *node_get(struct nats_bus *b, const char *id, int create)
{
    rnode *n = chat__strmap_get(&b->nodes, id);
    if (n || !create)
        return n;
    n = chat__calloc(1, sizeof *n);
    if (!n)
        return NULL;
    snprintf(n->id, sizeof n->id, "%s", id);
    snprintf(n->subject, sizeof n->subject, "%s.node.%s", b->prefix, id);
    chat__strmap_init(&n->snap);
    n->heard_ms = now_ms();
    if (chat__strmap_put(&b->nodes, id, n) != CHAT_OK) {
        chat__free(n);
        return NULL;
    }
    return n;
}

static void node_free(rnode *n)
{
    snap_clear(n);
    chat__free(n->ubuf);
    chat__free(n);
}

/* The node is gone (lease over, bye): its users leave with it. */
static void node_drop(struct nats_bus *b, rnode *n)
{
    int known = n->epoch != 0;
    char id[NODE_MAX + 1];
    memcpy(id, n->id, sizeof id);
    dir_remove_node(b, n, NULL);
    chat__strmap_del(&b->nodes, n->id);
    node_free(n);
    if (known && b->sink.node)
        b->sink.node(id, 0, b->sink.user_data);
}

static void ask_snapshot(struct nats_bus *b, rnode *n, int64_t now)
{
    int64_t spacing = b->heartbeat_ms < 500 ? b->heartbeat_ms : 500;
    if (n->asked_ms && now - n->asked_ms < spacing)
        return;
    n->asked_ms = now;
    char msg[NODE_MAX + 8];
    int len = snprintf(msg, sizeof msg, "R %s", b->node);
    publish_raw(b, n->subject, msg, (size_t)len);
}

/* A message on n's stream with this epoch: a new one means the node restarted, and what
 * the old incarnation had is gone. */
static void node_epoch(struct nats_bus *b, rnode *n, uint64_t epoch, int64_t now)
{
    n->heard_ms = now;
    if (n->epoch == epoch)
        return;
    if (n->epoch)
        dir_remove_node(b, n, NULL);
    n->epoch = epoch;
    n->aseq = 0;
    n->synced = 0;
    n->acked = 0;
    snap_clear(n);
    if (b->sink.node)
        b->sink.node(n->id, 1, b->sink.user_data);
}

/* We applied n's announcements up to n->aseq: tell it (its settle() waits for this). */
static void send_ack(struct nats_bus *b, rnode *n)
{
    char msg[NODE_MAX + 64];
    int len = snprintf(msg, sizeof msg, "K %s %016" PRIx64 " %" PRIu64, b->node, n->epoch,
                       n->aseq);
    publish_raw(b, n->subject, msg, (size_t)len);
}

static void apply_edges(struct nats_bus *b, rnode *n, const char *p, const char *end)
{
    char edge[ID_MAX + 2]; /* the sign, then the user */
    while (next_word(&p, end, edge, sizeof edge, 1)) {
        const char *user = edge + 1;
        if (edge[0] == '+' && *user) {
            if (dir_add(b, user, n) != CHAT_OK)
                n->synced = 0; /* out of memory: fetch the whole set again later */
        } else if (edge[0] == '-' && *user) {
            dir_remove(b, user, n);
        }
    }
}

/* An announcement (edges), or a message of n's engine to all (message 1), which takes a
 * number in the same sequence: its sender's settle() covers it too. A message is handed over
 * even after a gap (delivery is at most once, not in order at any price); a repeat is not. */
static void on_announce(struct nats_bus *b, rnode *n, uint64_t aseq, const char *body,
                        const char *end, int message, int64_t now)
{
    if (aseq <= n->aseq && (n->synced || n->snap_on)) {
        if (n->synced) /* seen already (an acknowledgement may have been lost) */
            send_ack(b, n);
        return;
    }
    if (message && b->sink.message && body < end)
        b->sink.message(n->id, body, (size_t)(end - body), b->sink.user_data);
    if ((n->synced && aseq == n->aseq + 1) || (!n->synced && n->aseq == 0 && aseq == 1)) {
        if (!message)
            apply_edges(b, n, body, end);
        n->aseq = aseq;
        n->synced = 1;
        send_ack(b, n);
        return;
    }
    n->synced = 0; /* missed some: the snapshot will say where it is */
    ask_snapshot(b, n, now);
}

static void on_heartbeat(struct nats_bus *b, rnode *n, uint64_t aseq, int64_t now)
{
    if (n->synced && aseq == n->aseq)
        return;
    if (!n->synced && aseq == 0 && n->aseq == 0) {
        n->synced = 1; /* it never had a user */
        return;
    }
    n->synced = 0; /* its last announcements did not arrive */
    ask_snapshot(b, n, now);
}

static void snap_add(rnode *n, const char *p, const char *end)
{
    char user[ID_MAX + 1];
    while (next_word(&p, end, user, sizeof user, 1)) {
        if (chat__strmap_put(&n->snap, user, n) != CHAT_OK) {
            snap_clear(n); /* incomplete: ask again at the next heartbeat */
            return;
        }
    }
}

struct snap_apply {
    struct nats_bus *b;
    rnode *n;
};

static void snap_apply_cb(const char *user, void *value, void *ud)
{
    struct snap_apply *a = ud;
    if (dir_add(a->b, user, a->n) != CHAT_OK)
        a->n->synced = 0;
}

static void on_snapshot(struct nats_bus *b, rnode *n, uint64_t aseq, uint64_t part, int last,
                        const char *body, const char *end)
{
    if (n->synced && aseq <= n->aseq)
        return; /* another node asked; this one is up to date */
    if (part == 0) {
        snap_clear(n);
        n->snap_on = 1;
        n->snap_aseq = aseq;
        n->snap_next = 0;
    }
    if (!n->snap_on || part != n->snap_next || aseq != n->snap_aseq) {
        snap_clear(n); /* a part was lost: the next heartbeat asks again */
        return;
    }
    n->snap_next++;
    snap_add(n, body, end);
    if (!last || !n->snap_on)
        return;
    /* The node's users are exactly the snapshot's: drop the others, add the new. */
    dir_remove_node(b, n, &n->snap);
    n->synced = 1;
    n->aseq = aseq;
    struct snap_apply a = {b, n};
    chat__strmap_each(&n->snap, snap_apply_cb, &a);
    snap_clear(n);
    send_ack(b, n);
}

/* One message of node id's presence stream. */
static void on_presence_msg(struct nats_bus *b, const char *id, const char *p, const char *end,
                            int64_t now)
{
    if (!name_valid(id, NODE_MAX))
        return;
    size_t kl;
    const char *kind = token(&p, end, &kl);
    uint64_t epoch = 0, aseq = 0;
    if (!kind || kl != 1 || tok_u64(&p, end, 16, &epoch) || !epoch)
        return;
    if (strcmp(id, b->node) == 0) {
        /* Echo is off: this is another process under our name. Both receive each other's
         * frames and the other nodes see one node restarting all the time. */
        if (epoch != b->epoch && epoch != b->twin_epoch) {
            b->twin_epoch = epoch;
            bus_log(b, CHAT_LOG_ERROR, "NATS bus: another process uses node id '%s' (prefix "
                    "'%s'): node ids must be unique; delivery and presence between the nodes "
                    "are wrong until one of them has another id", b->node, b->prefix);
        }
        return;
    }
    if (kind[0] == 'B') {
        rnode *n = node_get(b, id, 0);
        if (n && n->epoch == epoch)
            node_drop(b, n);
        return;
    }
    if (tok_u64(&p, end, 10, &aseq))
        return;
    rnode *n = node_get(b, id, 1);
    if (!n) {
        note_loss(b, now);
        return;
    }
    node_epoch(b, n, epoch, now);
    if (kind[0] == 'M') {
        on_announce(b, n, aseq, next_line(p, end), end, 1, now);
    } else if (kind[0] == 'H') {
        on_heartbeat(b, n, aseq, now);
    } else if (kind[0] == 'A') {
        on_announce(b, n, aseq, next_line(p, end), end, 0, now);
    } else if (kind[0] == 'S') {
        uint64_t part = 0, last = 0;
        if (tok_u64(&p, end, 10, &part) || tok_u64(&p, end, 10, &last))
            return;
        on_snapshot(b, n, aseq, part, last != 0, next_line(p, end), end);
    }
}

/* ---- frames ---- */

/* F <from> <epoch> <lseq> <except_user|-> <except_device|-> <n>\n<users>\n<frame> */
static void on_frame_msg(struct nats_bus *b, const char *p, const char *end, int64_t now)
{
    char from[NODE_MAX + 1], eu[ID_MAX + 1], ed[ID_MAX + 1];
    uint64_t epoch = 0, lseq = 0, count = 0;
    if (!next_word(&p, end, from, sizeof from, 0) || tok_u64(&p, end, 16, &epoch) ||
        tok_u64(&p, end, 10, &lseq) || !next_word(&p, end, eu, sizeof eu, 0) ||
        !next_word(&p, end, ed, sizeof ed, 0) || tok_u64(&p, end, 10, &count))
        return;
    const char *users = next_line(p, end);
    const char *users_end = memchr(users, '\n', (size_t)(end - users));
    if (!users_end)
        return;
    rnode *n = node_get(b, from, 1);
    if (n) {
        if (n->in_epoch != epoch) {
            n->in_epoch = epoch;
            n->in_seq = lseq;
        } else {
            if (lseq != n->in_seq + 1)
                note_loss(b, now); /* a frame between the two was lost (or it forgot us) */
            n->in_seq = lseq;
        }
    }
    chat_buf *frame = NULL;
    if (chat_buf_new(&frame, users_end + 1, (size_t)(end - users_end - 1)) != CHAT_OK) {
        note_loss(b, now);
        return;
    }
    int has_except = strcmp(eu, "-") != 0 && strcmp(ed, "-") != 0;
    const char *q = users;
    char user[ID_MAX + 1];
    while (next_word(&q, users_end, user, sizeof user, 1)) {
        const char *except = has_except ? chat__bus_except(user, eu, ed) : NULL;
        b->sink.deliver2(user, except, frame, b->sink.user_data);
    }
    chat_buf_unref(frame);
}

/* R <from>: publish a snapshot soon (requests from many nodes at once make one). */
static void on_request_msg(struct nats_bus *b)
{
    b->snapshot_wanted = 1;
}

/* K <from> <epoch> <aseq>: <from> applied our announcements up to aseq. */
static void on_ack_msg(struct nats_bus *b, const char *p, const char *end)
{
    char from[NODE_MAX + 1];
    uint64_t epoch = 0, aseq = 0;
    if (!next_word(&p, end, from, sizeof from, 0) || tok_u64(&p, end, 16, &epoch) ||
        tok_u64(&p, end, 10, &aseq) || epoch != b->epoch)
        return;
    rnode *n = node_get(b, from, 0);
    if (n && aseq > n->acked)
        n->acked = aseq;
}

/* M <from> <epoch>\n<bytes>: a message of <from>'s engine to ours. */
static void on_direct_msg(struct nats_bus *b, const char *p, const char *end)
{
    char from[NODE_MAX + 1];
    uint64_t epoch = 0;
    if (!next_word(&p, end, from, sizeof from, 0) || tok_u64(&p, end, 16, &epoch) ||
        !name_valid(from, NODE_MAX))
        return;
    const char *body = next_line(p, end);
    if (b->sink.message && body < end)
        b->sink.message(from, body, (size_t)(end - body), b->sink.user_data);
}

/* ---- request() and respond() ---- */

static int nats_fail(natsStatus s, const char *what);

/* Q <from>\n<bytes>, with a reply subject: a request of <from>'s engine. */
static void on_query_msg(struct nats_bus *b, const char *p, const char *end, const char *reply)
{
    char from[NODE_MAX + 1];
    if (!reply || !b->sink.request || !next_word(&p, end, from, sizeof from, 0) ||
        !name_valid(from, NODE_MAX))
        return;
    const char *body = next_line(p, end);
    char key[24];
    uint64_t token = ++b->in_token;
    snprintf(key, sizeof key, "%" PRIu64, token);
    char *subject = chat__strdup(reply);
    if (!subject || chat__strmap_put(&b->in_req, key, subject) != CHAT_OK) {
        chat__free(subject); /* unanswered: the requester times out and does without */
        return;
    }
    b->sink.request(from, token, body, (size_t)(end - body), b->sink.user_data);
}

/* The answer to one of our requests: on <inbox>.<id>, empty with a 503 status when no node
 * listened. */
static void on_answer_msg(struct nats_bus *b, natsMsg *m, const char *id)
{
    int64_t *deadline = chat__strmap_del(&b->out_req, id);
    if (!deadline)
        return; /* timed out already */
    chat__free(deadline);
    b->out_n--;
    atomic_store(&b->requesting, b->out_n > 0);
    uint64_t n = strtoull(id, NULL, 10);
    if (natsMsg_IsNoResponders(m)) {
        b->sink.reply(n, CHAT_ENOTFOUND, NULL, 0, b->sink.user_data);
        return;
    }
    const char *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    b->sink.reply(n, CHAT_OK, data ? data : "", len > 0 ? (size_t)len : 0, b->sink.user_data);
}

struct expired {
    int64_t now, next;
    growbuf ids; /* uint64_t ids */
};

static void expired_cb(const char *id, void *value, void *ud)
{
    struct expired *e = ud;
    int64_t deadline = *(int64_t *)value;
    uint64_t n = strtoull(id, NULL, 10);
    if (deadline <= e->now)
        gb_add(&e->ids, &n, sizeof n);
    else if (deadline < e->next)
        e->next = deadline;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* Report requests that got no answer in time, or all of them (the link was lost: their
 * answers may be too), in the order they were made (the engine's ids grow). */
static void expire_requests(struct nats_bus *b, int64_t now, int all)
{
    /* Polls come with every message received: the map is walked only once a deadline may
     * have passed, not per poll. */
    if (!b->out_n || (!all && now < b->out_next))
        return;
    struct expired e = {all ? INT64_MAX : now, INT64_MAX, {0}};
    chat__strmap_each(&b->out_req, expired_cb, &e);
    uint64_t *ids = (uint64_t *)(void *)e.ids.p;
    size_t n = e.ids.len / sizeof *ids;
    if (n > 1)
        qsort(ids, n, sizeof *ids, cmp_u64);
    for (size_t i = 0; i < n; i++) {
        char key[24];
        snprintf(key, sizeof key, "%" PRIu64, ids[i]);
        chat__free(chat__strmap_del(&b->out_req, key));
        b->out_n--;
        b->sink.reply(ids[i], all ? CHAT_EIO : CHAT_ETIMEDOUT, NULL, 0, b->sink.user_data);
    }
    b->out_next = e.next;
    atomic_store(&b->requesting, b->out_n > 0);
    chat__free(e.ids.p);
}

static int nats_request(void *state, const char *node, const void *msg, size_t len,
                        int64_t timeout_ms, uint64_t id)
{
    struct nats_bus *b = state;
    if (!b || !b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "NATS bus request: not attached");
    if (!b->sink.reply)
        return chat__error_set(CHAT_ENOTSUP, 0, "NATS bus request: the engine takes no answers");
    if (!node || !msg || len == 0 || len > CHAT_BUS_REQ_MAX || timeout_ms <= 0)
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus request: a node, 1 to %d bytes and "
                               "a positive timeout", CHAT_BUS_REQ_MAX);
    rnode *n = node_get(b, node, 0);
    if (!n || !n->epoch)
        return chat__error_set(CHAT_ENOTFOUND, 0, "NATS bus request: no node '%.64s'", node);
    /* Cut from the server, a request would wait in libnats' buffer until it times out. */
    if (!b->sub_inbox || natsConnection_Status(b->nc) != NATS_CONN_STATUS_CONNECTED)
        return chat__error_set(CHAT_ECLOSED, 0, "NATS bus request: not connected");
    char key[24], reply[INBOX_MAX + 24];
    snprintf(key, sizeof key, "%" PRIu64, id);
    snprintf(reply, sizeof reply, "%s.%s", b->inbox, key);
    if (chat__strmap_get(&b->out_req, key))
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus request: id %s is in use", key);
    growbuf *s = &b->scratch;
    s->len = 0;
    int64_t *deadline = chat__malloc(sizeof *deadline);
    if (!deadline || gb_printf(s, "Q %s\n", b->node) || gb_add(s, msg, len) ||
        chat__strmap_put(&b->out_req, key, deadline) != CHAT_OK) {
        chat__free(deadline);
        return chat__error_set(CHAT_ENOMEM, 0, "NATS bus: out of memory");
    }
    *deadline = now_ms() + timeout_ms;
    if (!b->out_n || *deadline < b->out_next)
        b->out_next = *deadline;
    natsStatus st = natsConnection_PublishRequest(b->nc, n->subject, reply, s->p, (int)s->len);
    if (st != NATS_OK) {
        chat__free(chat__strmap_del(&b->out_req, key));
        return nats_fail(st, "request");
    }
    b->out_n++;
    if (!atomic_exchange(&b->requesting, 1)) { /* the ticker looks at deadlines from now on */
        pthread_mutex_lock(&b->qlock);
        pthread_cond_broadcast(&b->qcond);
        pthread_mutex_unlock(&b->qlock);
    }
    return CHAT_OK;
}

static int nats_respond(void *state, uint64_t token, const void *msg, size_t len)
{
    struct nats_bus *b = state;
    if (!b || !b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "NATS bus respond: not attached");
    if ((len && !msg) || len > CHAT_BUS_REQ_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus respond: 0 to %d bytes",
                               CHAT_BUS_REQ_MAX);
    char key[24];
    snprintf(key, sizeof key, "%" PRIu64, token);
    char *subject = chat__strmap_del(&b->in_req, key);
    if (!subject)
        return chat__error_set(CHAT_ENOTFOUND, 0, "NATS bus respond: no request %s", key);
    natsStatus st = natsConnection_Publish(b->nc, subject, len ? msg : NULL, (int)len);
    chat__free(subject);
    return st == NATS_OK ? CHAT_OK : nats_fail(st, "respond");
}

/* ---- settle(): announcements acknowledged by every live node ---- */

/* A node counts as alive for settle() while heard from within two heartbeats: one that went
 * quiet (dying, stuck) must not hold anyone back until its lease ends. */
static int node_counts(const struct nats_bus *b, const rnode *n, int64_t now)
{
    return n->epoch && now - n->heard_ms <= 2 * b->heartbeat_ms;
}

struct min_acked {
    const struct nats_bus *b;
    int64_t now;
    uint64_t min;
};

static void min_acked_cb(const char *id, void *value, void *ud)
{
    struct min_acked *m = ud;
    rnode *n = value;
    if (node_counts(m->b, n, m->now) && n->acked < m->min)
        m->min = n->acked;
}

static void settle_progress(struct nats_bus *b, int64_t now)
{
    if (!b->fifo_n)
        return;
    struct min_acked m = {b, now, UINT64_MAX};
    chat__strmap_each(&b->nodes, min_acked_cb, &m);
    uint64_t was = b->settled_aseq;
    while (b->fifo_n) {
        pending *e = &b->fifo[b->fifo_head];
        if (e->aseq > m.min && now - e->sent_ms < SETTLE_MAX_MS)
            break;
        b->settled_aseq = e->aseq;
        b->fifo_head = (b->fifo_head + 1) % SETTLE_FIFO_MAX;
        b->fifo_n--;
    }
    if (!b->fifo_n) {
        b->settled_aseq = b->aseq; /* numbers lost to a failed allocation included */
        atomic_store(&b->settling, 0);
    }
    if (b->settled_aseq != was && b->settle_want > was && b->sink.settled)
        b->sink.settled(b->settled_aseq, b->sink.user_data);
}

/* Announcement aseq went out now: it waits for acknowledgements. */
static void settle_sent(struct nats_bus *b, uint64_t aseq, int64_t now)
{
    if (!b->fifo && !(b->fifo = chat__calloc(SETTLE_FIFO_MAX, sizeof *b->fifo))) {
        b->settled_aseq = aseq; /* out of memory: nothing waits */
        return;
    }
    if (b->fifo_n == SETTLE_FIFO_MAX) { /* the oldest has waited long enough */
        b->settled_aseq = b->fifo[b->fifo_head].aseq;
        b->fifo_head = (b->fifo_head + 1) % SETTLE_FIFO_MAX;
        b->fifo_n--;
    }
    b->fifo[(b->fifo_head + b->fifo_n) % SETTLE_FIFO_MAX] = (pending){aseq, now};
    if (b->fifo_n++ == 0 && !atomic_exchange(&b->settling, 1)) {
        pthread_mutex_lock(&b->qlock); /* the ticker sleeps a heartbeat: shorten it */
        pthread_cond_broadcast(&b->qcond);
        pthread_mutex_unlock(&b->qlock);
    }
}

struct any_live {
    const struct nats_bus *b;
    int64_t now;
    int any;
};

static void any_live_cb(const char *id, void *value, void *ud)
{
    struct any_live *a = ud;
    if (node_counts(a->b, value, a->now))
        a->any = 1;
}

static int nats_settle(void *state, uint64_t *ticket)
{
    struct nats_bus *b = state;
    if (!b || !b->attached || !ticket)
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus settle: not attached, or no ticket");
    struct any_live a = {b, now_ms(), 0};
    chat__strmap_each(&b->nodes, any_live_cb, &a);
    uint64_t t = 0;
    if (a.any)
        t = b->edges.len ? b->aseq + 1 : b->aseq > b->settled_aseq ? b->aseq : 0;
    if (t > b->settle_want)
        b->settle_want = t;
    *ticket = t;
    return CHAT_OK;
}

/* ---- publishing our own state ---- */

static void flush_edges(struct nats_bus *b)
{
    if (!b->edges.len)
        return;
    b->aseq++;
    growbuf *s = &b->scratch;
    s->len = 0;
    if (gb_printf(s, "A %016" PRIx64 " %" PRIu64 "\n", b->epoch, b->aseq) ||
        gb_add(s, b->edges.p, b->edges.len)) {
        b->edges.len = 0; /* lost; receivers see the gap in numbers and ask for a snapshot */
        return;
    }
    publish_raw(b, b->my_pres, s->p, s->len);
    b->edges.len = 0;
    settle_sent(b, b->aseq, now_ms());
}

static void add_edge(struct nats_bus *b, char sign, const char *user)
{
    int was_empty = b->edges.len == 0;
    if (gb_printf(&b->edges, "%s%c%s", was_empty ? "" : " ", sign, user)) {
        /* out of memory: count an announcement as lost so receivers resynchronize */
        b->aseq++;
        return;
    }
    if (b->edges.len >= CHUNK_MAX)
        flush_edges(b);
    else if (was_empty)
        b->sink.wake(b->sink.user_data); /* poll() publishes it */
}

static void send_heartbeat(struct nats_bus *b)
{
    char msg[64];
    int len = snprintf(msg, sizeof msg, "H %016" PRIx64 " %" PRIu64, b->epoch, b->aseq);
    publish_raw(b, b->my_pres, msg, (size_t)len);
}

struct snap_out {
    struct nats_bus *b;
    growbuf *s;
    size_t header; /* bytes of the current part's header line */
    unsigned long part;
    int failed;
};

static void snap_part_start(struct snap_out *o)
{
    o->s->len = 0;
    /* the "last" flag is a fixed-width digit, patched when the part is sent */
    if (gb_printf(o->s, "S %016" PRIx64 " %" PRIu64 " %lu 0\n", o->b->epoch, o->b->aseq,
                  o->part))
        o->failed = 1;
    o->header = o->s->len;
}

static void snap_part_send(struct snap_out *o, int last)
{
    o->s->p[o->header - 2] = last ? '1' : '0';
    publish_raw(o->b, o->b->my_pres, o->s->p, o->s->len);
    o->part++;
}

static int snap_user_cb(const char *user, void *ud)
{
    struct snap_out *o = ud;
    size_t n = strlen(user);
    if (o->s->len + n + 1 > CHUNK_MAX && o->s->len > o->header) {
        snap_part_send(o, 0);
        snap_part_start(o);
    }
    if (o->failed || (o->s->len > o->header && gb_add(o->s, " ", 1)) || gb_add(o->s, user, n))
        o->failed = 1;
    return o->failed;
}

static void send_snapshot(struct nats_bus *b)
{
    flush_edges(b); /* the snapshot is as of the last announcement number */
    struct snap_out o = {b, &b->scratch, 0, 0, 0};
    snap_part_start(&o);
    if (!o.failed)
        chat__bus_registry_each(b->local, snap_user_cb, &o);
    if (!o.failed)
        snap_part_send(&o, 1);
    /* On failure the receivers miss the last part and ask again. */
}

/* ---- libnats threads ---- */

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    struct nats_bus *b = closure;
    pthread_mutex_lock(&b->qlock);
    int was_empty = b->qn == 0;
    if (b->qn == b->qcap) {
        size_t cap = b->qcap ? b->qcap * 2 : 256;
        natsMsg **q = chat__realloc(b->q, cap * sizeof *q);
        if (!q) {
            pthread_mutex_unlock(&b->qlock);
            natsMsg_Destroy(msg);
            atomic_store(&b->q_dropped, 1);
            b->sink.wake(b->sink.user_data);
            return;
        }
        b->q = q;
        b->qcap = cap;
    }
    b->q[b->qn++] = msg;
    pthread_mutex_unlock(&b->qlock);
    if (was_empty)
        b->sink.wake(b->sink.user_data);
}

static void on_sub_complete(void *closure)
{
    struct nats_bus *b = closure;
    pthread_mutex_lock(&b->qlock);
    b->subs_done++;
    pthread_cond_broadcast(&b->qcond);
    pthread_mutex_unlock(&b->qlock);
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    struct nats_bus *b = closure;
    atomic_store(&b->reconnected, 1);
    b->sink.wake(b->sink.user_data);
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    struct nats_bus *b = closure;
    if (atomic_load(&b->closing))
        return;
    atomic_store(&b->disconnected, 1);
    b->sink.wake(b->sink.user_data);
}

static void on_closed(natsConnection *nc, void *closure)
{
    struct nats_bus *b = closure;
    pthread_mutex_lock(&b->qlock);
    b->closed = 1;
    pthread_cond_broadcast(&b->qcond);
    pthread_mutex_unlock(&b->qlock);
}

static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
    struct nats_bus *b = closure;
    if (err == NATS_SLOW_CONSUMER) { /* libnats dropped messages it could not queue */
        atomic_store(&b->slow, 1);
        b->sink.wake(b->sink.user_data);
    }
}

/* Exponential backoff with jitter: 50 ms doubling to 2 s, each wait 50-100 % of that. */
static int64_t reconnect_delay(natsConnection *nc, int attempts, void *closure)
{
    int64_t d = RECONNECT_MIN_MS;
    for (int i = 1; i < attempts && d < RECONNECT_MAX_MS; i++)
        d *= 2;
    if (d > RECONNECT_MAX_MS)
        d = RECONNECT_MAX_MS;
    uint64_t r = chat__mono_ns() * 6364136223846793005ULL; /* jitter, not security */
    return d / 2 + (int64_t)((r >> 33) % (uint64_t)(d / 2 + 1));
}

static void *ticker_main(void *arg)
{
    struct nats_bus *b = arg;
    chat__thread_name("chat-nats-tick");
    pthread_mutex_lock(&b->qlock);
    int64_t next_beat = now_ms() + b->heartbeat_ms;
    while (!b->ticker_stop) {
        /* A heartbeat every heartbeat_ms; while announcements await acknowledgement, a wake-up
         * every SETTLE_TICK_MS too, so settle() ends on time when some node never answers. */
        int64_t wait = next_beat - now_ms();
        int busy = atomic_load(&b->settling) || atomic_load(&b->requesting);
        if (busy && wait > SETTLE_TICK_MS)
            wait = SETTLE_TICK_MS;
        struct timespec at = chat__mono_deadline((int)(wait > 0 ? wait : 0));
        pthread_cond_timedwait(&b->qcond, &b->qlock, &at);
        if (b->ticker_stop)
            break;
        int64_t now = now_ms();
        int beat = now >= next_beat;
        if (beat)
            next_beat = now + b->heartbeat_ms;
        else if (!atomic_load(&b->settling) && !atomic_load(&b->requesting))
            continue; /* woken to look at settling or requests, which are over */
        pthread_mutex_unlock(&b->qlock);
        if (beat)
            atomic_store(&b->tick, 1);
        b->sink.wake(b->sink.user_data);
        pthread_mutex_lock(&b->qlock);
    }
    pthread_mutex_unlock(&b->qlock);
    return NULL;
}

/* ---- the table ---- */

static void wait_flag(struct nats_bus *b, int *flag, int want)
{
    struct timespec at = chat__mono_deadline(2000);
    pthread_mutex_lock(&b->qlock);
    while (*flag < want && pthread_cond_timedwait(&b->qcond, &b->qlock, &at) == 0)
        ;
    pthread_mutex_unlock(&b->qlock);
}

static void node_free_cb(const char *key, void *value, void *ud)
{
    node_free(value);
}

static void dentry_free_cb(const char *key, void *value, void *ud)
{
    chat__free(value);
}

static void nats_destroy(void *state)
{
    struct nats_bus *b = state;
    if (!b)
        return;
    atomic_store(&b->closing, 1);
    if (b->ticker_on) {
        pthread_mutex_lock(&b->qlock);
        b->ticker_stop = 1;
        pthread_cond_broadcast(&b->qcond);
        pthread_mutex_unlock(&b->qlock);
        pthread_join(b->ticker, NULL);
    }
    if (b->nc) {
        char bye[32];
        int len = snprintf(bye, sizeof bye, "B %016" PRIx64, b->epoch);
        publish_raw(b, b->my_pres, bye, (size_t)len);
        (void)natsConnection_FlushTimeout(b->nc, 500);
        int subs = 0;
        natsSubscription *subs_v[3] = {b->sub_frames, b->sub_pres, b->sub_inbox};
        for (int i = 0; i < 3; i++)
            if (subs_v[i] && natsSubscription_Unsubscribe(subs_v[i]) == NATS_OK)
                subs++;
        /* No handler runs once both completed; then no connection callback once closed. */
        wait_flag(b, &b->subs_done, subs);
        natsConnection_Close(b->nc);
        wait_flag(b, &b->closed, 1);
        for (int i = 0; i < 3; i++)
            natsSubscription_Destroy(subs_v[i]);
        natsConnection_Destroy(b->nc);
    }
    for (size_t i = 0; i < b->qn; i++)
        natsMsg_Destroy(b->q[i]);
    chat__free(b->q);
    chat__strmap_each(&b->nodes, node_free_cb, NULL);
    chat__strmap_clear(&b->nodes);
    chat__strmap_each(&b->dir, dentry_free_cb, NULL);
    chat__strmap_clear(&b->dir);
    chat__strmap_each(&b->out_req, dentry_free_cb, NULL);
    chat__strmap_clear(&b->out_req);
    chat__strmap_each(&b->in_req, dentry_free_cb, NULL);
    chat__strmap_clear(&b->in_req);
    chat__bus_registry_free(b->local);
    chat__free(b->edges.p);
    chat__free(b->scratch.p);
    chat__free(b->fifo);
    pthread_cond_destroy(&b->qcond);
    pthread_mutex_destroy(&b->qlock);
    chat__free(b);
}

static int nats_fail(natsStatus s, const char *what)
{
    return chat__error_set(s == NATS_NO_MEMORY ? CHAT_ENOMEM : CHAT_EIO, (int)s,
                           "NATS bus: %s: %s", what, natsStatus_GetText(s));
}

/* Split the comma-separated URLs into the options. */
static natsStatus set_servers(natsOptions *opts, char *urls)
{
    const char *list[16];
    int n = 0;
    for (char *save = NULL, *u = strtok_r(urls, ",", &save); u && n < 16;
         u = strtok_r(NULL, ",", &save))
        list[n++] = u;
    return n ? natsOptions_SetServers(opts, list, n) : NATS_INVALID_ARG;
}

static int nats_connect(struct nats_bus *b)
{
    natsOptions *opts = NULL;
    char urls[sizeof b->url];
    snprintf(urls, sizeof urls, "%s", b->url);
    char name[NODE_MAX + 16];
    snprintf(name, sizeof name, "libchat-%s", b->node);
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK)
        s = set_servers(opts, urls);
    if (s == NATS_OK)
        s = natsOptions_SetName(opts, name);
    if (s == NATS_OK)
        s = natsOptions_SetNoEcho(opts, true);
    if (s == NATS_OK)
        s = natsOptions_SetMaxReconnect(opts, -1);
    if (s == NATS_OK)
        s = natsOptions_SetCustomReconnectDelay(opts, reconnect_delay, b);
    if (s == NATS_OK)
        s = natsOptions_SetRetryOnFailedConnect(opts, true, on_reconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetReconnectedCB(opts, on_reconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetDisconnectedCB(opts, on_disconnected, b);
    if (s == NATS_OK)
        s = natsOptions_SetClosedCB(opts, on_closed, b);
    if (s == NATS_OK)
        s = natsOptions_SetErrorHandler(opts, on_error, b);
    if (s == NATS_OK) /* a dead server is found within a few heartbeats */
        s = natsOptions_SetPingInterval(opts, b->lease_ms / 2 > 1000 ? b->lease_ms / 2 : 1000);
    if (s == NATS_OK)
        s = natsOptions_SetMaxPingsOut(opts, 2);
    if (s != NATS_OK) {
        natsOptions_Destroy(opts);
        return nats_fail(s, "options");
    }
    s = natsConnection_Connect(&b->nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK && s != NATS_NOT_YET_CONNECTED) /* down: libnats keeps trying */
        return nats_fail(s, "connect");
    s = natsConnection_Subscribe(&b->sub_frames, b->nc, b->my_frames, on_msg, b);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(b->sub_frames, on_sub_complete, b);
    if (s == NATS_OK)
        s = natsConnection_Subscribe(&b->sub_pres, b->nc, b->all_pres, on_msg, b);
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(b->sub_pres, on_sub_complete, b);
    natsInbox *inbox = NULL;
    if (s == NATS_OK && (s = natsInbox_Create(&inbox)) == NATS_OK) {
        char wild[INBOX_MAX + 4];
        snprintf(b->inbox, sizeof b->inbox, "%s", (const char *)inbox);
        snprintf(wild, sizeof wild, "%s.*", b->inbox);
        natsInbox_Destroy(inbox);
        s = natsConnection_Subscribe(&b->sub_inbox, b->nc, wild, on_msg, b);
    }
    if (s == NATS_OK)
        s = natsSubscription_SetOnCompleteCB(b->sub_inbox, on_sub_complete, b);
    /* The engine's limits bound what can pile up; libnats's defaults (64K messages) hold. */
    if (s != NATS_OK)
        return nats_fail(s, "subscribe");
    /* Connected: make sure the server has the subscriptions before the node says it exists
     * (a round trip, bounded). Not connected: they go out when the connection is made. */
    if (natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED)
        (void)natsConnection_FlushTimeout(b->nc, 1000);
    return CHAT_OK;
}

static int nats_attach(void *state, const chat_bus_sink *sink)
{
    int rc = chat__bus_check_sink(state, sink, 1, 2);
    if (rc)
        return rc;
    struct nats_bus *b = state;
    if (b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "NATS bus: attached already");
    if (!sink->lost)
        return chat__error_set(CHAT_EINVAL, 0, "bus attach: this bus needs sink->lost");
    b->sink = *sink;
    b->attached = 1;
    snprintf(b->my_frames, sizeof b->my_frames, "%s.node.%s", b->prefix, b->node);
    snprintf(b->my_pres, sizeof b->my_pres, "%s.pres.%s", b->prefix, b->node);
    snprintf(b->all_pres, sizeof b->all_pres, "%s.pres.*", b->prefix);
    rc = nats_connect(b);
    if (rc == CHAT_OK) {
        if (chat__thread_start(&b->ticker, ticker_main, b) != 0)
            return chat__error_set(CHAT_ENOMEM, 0, "NATS bus: cannot start its ticker thread");
        b->ticker_on = 1;
        send_heartbeat(b);
    }
    return rc;
}

static int nats_publish2(void *state, const char *const *users, size_t n_users,
                         const char *except_user, const char *except_device, chat_buf *frame,
                         unsigned int flags)
{
    struct nats_bus *b = state;
    int rc = chat__bus_check_publish2(b && b->attached, users, n_users, frame);
    if (rc)
        return rc;
    if (!(flags & CHAT_BUS_REMOTE_ONLY))
        for (size_t i = 0; i < n_users; i++)
            b->sink.deliver2(users[i], chat__bus_except(users[i], except_user, except_device),
                             frame, b->sink.user_data);
    /* Group the recipients by the node they are on: one message per node. */
    rnode *batch = NULL;
    for (size_t i = 0; i < n_users; i++) {
        dentry *d = chat__strmap_get(&b->dir, users[i]);
        if (!d || !id_wire_valid(users[i]))
            continue;
        size_t len = strlen(users[i]);
        for (size_t k = 0; k < d->n; k++) {
            rnode *n = d->nodes[k];
            if (n->ulen + len + 1 > n->ucap) {
                size_t cap = n->ucap ? n->ucap * 2 : 256;
                while (cap < n->ulen + len + 1)
                    cap *= 2;
                char *p = chat__realloc(n->ubuf, cap);
                if (!p) {
                    rc = chat__error_set(CHAT_ENOMEM, 0, "NATS bus: out of memory");
                    continue;
                }
                n->ubuf = p;
                n->ucap = cap;
            }
            if (n->ulen)
                n->ubuf[n->ulen++] = ' ';
            memcpy(n->ubuf + n->ulen, users[i], len);
            n->ulen += len;
            n->un++;
            if (!n->batched) {
                n->batched = 1;
                n->batch_next = batch;
                batch = n;
            }
        }
    }
    int except = except_user && except_device && id_wire_valid(except_user) &&
                 id_wire_valid(except_device);
    for (rnode *n = batch, *next; n; n = next) {
        next = n->batch_next;
        growbuf *s = &b->scratch;
        s->len = 0;
        if (gb_printf(s, "F %s %016" PRIx64 " %" PRIu64 " %s %s %zu\n", b->node, b->epoch,
                      n->out_seq + 1, except ? except_user : "-", except ? except_device : "-",
                      n->un) ||
            gb_add(s, n->ubuf, n->ulen) || gb_add(s, "\n", 1) ||
            gb_add(s, chat_buf_data(frame), chat_buf_len(frame))) {
            rc = chat__error_set(CHAT_ENOMEM, 0, "NATS bus: out of memory");
        } else {
            n->out_seq++;
            natsStatus st = natsConnection_Publish(b->nc, n->subject, s->p, (int)s->len);
            if (st != NATS_OK && !rc)
                rc = nats_fail(st, "publish");
        }
        n->ulen = n->un = 0;
        n->batched = 0;
        n->batch_next = NULL;
    }
    return rc;
}

static int nats_device(void *state, int up, const char *user, const char *device)
{
    struct nats_bus *b = state;
    int rc = chat__bus_check_device(b && b->attached, user, device);
    if (rc)
        return rc;
    if (!id_wire_valid(user) || !id_wire_valid(device))
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus: ids must be 1-64 printable ASCII "
                                               "characters without spaces");
    int was = online_any(b, user);
    rc = up ? chat__bus_registry_up(b->local, user, device)
            : chat__bus_registry_down(b->local, user, device);
    if (rc < 0)
        return rc;
    if (rc == 1) { /* the user's first device here came, or its last one left */
        add_edge(b, up ? '+' : '-', user);
        if (was != online_any(b, user))
            b->sink.presence(user, up, b->sink.user_data);
    }
    return CHAT_OK;
}

static int nats_device_up(void *state, const char *user, const char *device)
{
    return nats_device(state, 1, user, device);
}

static int nats_device_down(void *state, const char *user, const char *device)
{
    return nats_device(state, 0, user, device);
}

static int nats_online(void *state, const char *user)
{
    struct nats_bus *b = state;
    return b && b->attached && user && online_any(b, user);
}

struct expire {
    int64_t now, lease;
    growbuf dead; /* NUL-separated ids of nodes past their lease */
    struct nats_bus *b;
};

static void expire_cb(const char *id, void *value, void *ud)
{
    struct expire *e = ud;
    rnode *n = value;
    if (e->now - n->heard_ms > e->lease) {
        gb_add(&e->dead, id, strlen(id) + 1);
    } else if (n->epoch && !n->synced) {
        ask_snapshot(e->b, n, e->now);
    }
}

static void on_tick(struct nats_bus *b, int64_t now)
{
    send_heartbeat(b);
    struct expire e = {now, b->lease_ms, {0}, b};
    chat__strmap_each(&b->nodes, expire_cb, &e);
    for (size_t off = 0; off < e.dead.len; off += strlen(e.dead.p + off) + 1) {
        rnode *n = node_get(b, e.dead.p + off, 0);
        if (n)
            node_drop(b, n);
        /* It may have acked messages whose frames it never published, and it sends no
         * position hints any more: the clients here catch up from the store. */
        note_loss(b, now);
    }
    chat__free(e.dead.p);
}

static void handle(struct nats_bus *b, natsMsg *m, int64_t now)
{
    const char *subj = natsMsg_GetSubject(m);
    const char *p = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    size_t ilen = strlen(b->inbox);
    if (subj && ilen && strncmp(subj, b->inbox, ilen) == 0 && subj[ilen] == '.') {
        on_answer_msg(b, m, subj + ilen + 1); /* may be empty: no responders */
        return;
    }
    if (!subj || !p || len <= 0)
        return;
    const char *end = p + len;
    if (strcmp(subj, b->my_frames) == 0) {
        if (p[0] == 'F')
            on_frame_msg(b, p + 1, end, now);
        else if (p[0] == 'R')
            on_request_msg(b);
        else if (p[0] == 'K')
            on_ack_msg(b, p + 1, end);
        else if (p[0] == 'M')
            on_direct_msg(b, p + 1, end);
        else if (p[0] == 'Q')
            on_query_msg(b, p + 1, end, natsMsg_GetReply(m));
        return;
    }
    size_t plen = strlen(b->all_pres) - 1; /* "P.pres." */
    if (strncmp(subj, b->all_pres, plen) == 0)
        on_presence_msg(b, subj + plen, p, end, now);
}

static int nats_poll(void *state)
{
    struct nats_bus *b = state;
    if (!b || !b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "NATS bus poll: no sink attached");
    int64_t now = now_ms();
    for (;;) {
        pthread_mutex_lock(&b->qlock);
        natsMsg **q = b->q;
        size_t qn = b->qn;
        b->q = NULL;
        b->qn = b->qcap = 0;
        pthread_mutex_unlock(&b->qlock);
        if (!qn) {
            chat__free(q);
            break;
        }
        for (size_t i = 0; i < qn; i++) {
            handle(b, q[i], now);
            natsMsg_Destroy(q[i]);
        }
        chat__free(q);
    }
    if (atomic_load(&b->disconnected))
        expire_requests(b, now, 1);
    if (atomic_exchange(&b->disconnected, 0))
        bus_log(b, CHAT_LOG_WARN, "NATS bus: lost the NATS server (%s); reconnecting, while "
                "frames to and from the other nodes wait or are lost", b->url);
    if (atomic_exchange(&b->reconnected, 0)) {
        bus_log(b, CHAT_LOG_WARN, "NATS bus: connected to the NATS server (%s); clients here "
                "catch up on what the other nodes sent meanwhile", b->url);
        /* Whatever was sent to this node while it was away is lost; what it announced
         * meanwhile went out from libnats's buffer or shows as a gap to the others. */
        note_loss(b, now);
        send_heartbeat(b);
    }
    if (atomic_exchange(&b->slow, 0) | atomic_exchange(&b->q_dropped, 0))
        note_loss(b, now);
    if (atomic_exchange(&b->tick, 0))
        on_tick(b, now);
    if (b->snapshot_wanted && now - b->snapshot_ms >= (b->heartbeat_ms < 200 ? b->heartbeat_ms : 200)) {
        b->snapshot_wanted = 0;
        b->snapshot_ms = now;
        send_snapshot(b);
    }
    flush_edges(b);
    settle_progress(b, now_ms());
    expire_requests(b, now_ms(), 0);
    if (b->loss_due_ms && now >= b->loss_due_ms) {
        b->loss_due_ms = 0;
        b->loss_last_ms = now;
        b->sink.lost(b->sink.user_data);
    }
    return CHAT_OK;
}

static int nats_send(void *state, const char *node, const void *msg, size_t len)
{
    struct nats_bus *b = state;
    if (!b || !b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "NATS bus send: not attached");
    if (!msg || len == 0 || len > CHAT_BUS_MSG_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus send: 1 to %d bytes",
                               CHAT_BUS_MSG_MAX);
    rnode *n = NULL;
    if (node && (!(n = node_get(b, node, 0)) || !n->epoch))
        return chat__error_set(CHAT_ENOTFOUND, 0, "NATS bus send: no node '%.64s'", node);
    if (!n)
        flush_edges(b); /* a message to all is numbered after the announcements before it */
    growbuf *s = &b->scratch;
    s->len = 0;
    if ((n ? gb_printf(s, "M %s %016" PRIx64 "\n", b->node, b->epoch)
           : gb_printf(s, "M %016" PRIx64 " %" PRIu64 "\n", b->epoch, b->aseq + 1)) ||
        gb_add(s, msg, len))
        return chat__error_set(CHAT_ENOMEM, 0, "NATS bus: out of memory");
    natsStatus st = natsConnection_Publish(b->nc, n ? n->subject : b->my_pres, s->p, (int)s->len);
    if (!n) { /* the number is used even if the publish failed: receivers see the gap */
        b->aseq++;
        settle_sent(b, b->aseq, now_ms());
    }
    return st == NATS_OK ? CHAT_OK : nats_fail(st, "send");
}

static int nats_ctl(void *state, int op, void *arg)
{
    struct nats_bus *b = state;
    /* Readiness: a node cut from NATS serves its own users but no one elsewhere. The status
     * is read under libnats' lock, without a round trip. */
    if (op == CHAT_BUS_CTL_HEALTH)
        return b->nc && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED
                   ? CHAT_OK
                   : CHAT_ECLOSED;
    if (op == CHAT_BUS_CTL_NODE_ID) {
        if (!arg)
            return CHAT_EINVAL;
        memcpy(arg, b->node, strlen(b->node) + 1); /* at most CHAT_BUS_NODE_MAX + 1 */
        return CHAT_OK;
    }
    return CHAT_ENOTSUP; /* not CHAT_BUS_CTL_RELIABLE: frames between nodes may be lost */
}

static const chat_bus_ops nats_ops = {
    .version = CHAT_BUS_OPS_VERSION,
    .destroy = nats_destroy,
    .attach = nats_attach,
    .publish = NULL, /* publish2 only */
    .device_up = nats_device_up,
    .device_down = nats_device_down,
    .online = nats_online,
    .poll = nats_poll,
    .ctl = nats_ctl,
    .publish2 = nats_publish2,
    .settle = nats_settle,
    .send = nats_send,
    .request = nats_request,
    .respond = nats_respond,
};

static uint64_t new_epoch(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t e = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                 ((uint64_t)getpid() << 40) ^ chat__mono_ns();
    return e ? e : 1;
}

int chat_bus_nats_new(void **state_out, const char *url, const char *node_id)
{
    if (!state_out || !url || !node_id)
        return chat__error_set(CHAT_EINVAL, 0, "chat_bus_nats_new: state_out, url and node_id "
                                               "are required");
    if (!name_valid(node_id, NODE_MAX))
        return chat__error_set(CHAT_EINVAL, 0, "chat_bus_nats_new: node id '%s' is not 1-64 "
                                               "of [A-Za-z0-9_-]", node_id);
    size_t ul = strlen(url);
    struct nats_bus *probe = NULL;
    if (ul == 0 || ul >= sizeof probe->url)
        return chat__error_set(CHAT_EINVAL, 0, "chat_bus_nats_new: url must be 1-%zu bytes",
                               sizeof probe->url - 1);
    struct nats_bus *b = chat__calloc(1, sizeof *b);
    if (!b)
        return chat__error_set(CHAT_ENOMEM, 0, "chat_bus_nats_new: out of memory");
    if (pthread_mutex_init(&b->qlock, NULL) != 0) {
        chat__free(b);
        return chat__error_set(CHAT_ENOMEM, 0, "chat_bus_nats_new: out of memory");
    }
    if (chat__cond_init_mono(&b->qcond) != 0) {
        pthread_mutex_destroy(&b->qlock);
        chat__free(b);
        return chat__error_set(CHAT_ENOMEM, 0, "chat_bus_nats_new: out of memory");
    }
    memcpy(b->url, url, ul + 1);
    snprintf(b->node, sizeof b->node, "%s", node_id);
    snprintf(b->prefix, sizeof b->prefix, "chat");
    b->heartbeat_ms = 1000;
    b->lease_ms = 5000;
    b->epoch = new_epoch();
    chat__strmap_init(&b->nodes);
    chat__strmap_init(&b->dir);
    chat__strmap_init(&b->out_req);
    chat__strmap_init(&b->in_req);
    int rc = chat__bus_registry_new(&b->local);
    if (rc) {
        nats_destroy(b);
        return rc;
    }
    *state_out = b;
    return CHAT_OK;
}

const chat_bus_ops *chat_bus_nats_ops(void)
{
    return &nats_ops;
}

int chat_bus_nats_set_prefix(void *state, const char *prefix)
{
    struct nats_bus *b = state;
    if (!b || !name_valid(prefix, PREFIX_MAX))
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus: a prefix is 1-64 of [A-Za-z0-9_-]");
    if (b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "NATS bus: the prefix is set before attach");
    snprintf(b->prefix, sizeof b->prefix, "%s", prefix);
    return CHAT_OK;
}

int chat_bus_nats_set_timing(void *state, int64_t heartbeat_ms, int64_t lease_ms)
{
    struct nats_bus *b = state;
    if (!b || heartbeat_ms < 10 || heartbeat_ms > 600000 || lease_ms < 2 * heartbeat_ms ||
        lease_ms > 3600000)
        return chat__error_set(CHAT_EINVAL, 0, "NATS bus: heartbeat 10 ms to 10 min, lease at "
                                               "least two heartbeats and at most 1 h");
    if (b->attached)
        return chat__error_set(CHAT_EMISUSE, 0, "NATS bus: timing is set before attach");
    b->heartbeat_ms = heartbeat_ms;
    b->lease_ms = lease_ms;
    return CHAT_OK;
}
