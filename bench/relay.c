/* relay: the ceiling chatd is measured against. A minimal WebSocket relay on libwebsockets
 * (4.1.6) and a libuv event loop, as chatd ran before its native transport, with a 4096-byte rx
 * buffer (--rx 256 was chatd's), chatd's 1 MiB cap on one send() and chatd's write path then:
 * shared, refcounted frames written at once when nothing is queued, else queued and written up
 * to 64 per WRITEABLE. It parses no JSON and stores nothing: each message in is
 * forwarded, bytes unchanged, to its target. The protocol subset it speaks is relay_proto.h's;
 * --no-ack forwards only (the raw limit of libwebsockets on this loop).
 *
 *   relay [--listen 127.0.0.1] [--port 0] [--rx 4096] [--no-ack] [--queued-writes]
 * prints "relay listening on ADDR:PORT".
 */
#define _GNU_SOURCE
#include "relay_proto.h"

#include <libwebsockets.h>
#include <uv.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define QMAX 1024 /* chatd's default outbound queue, in frames */

/* chatd's write path (the default): a frame goes out at once when nothing is queued, and a
 * WRITEABLE callback writes up to 64 frames. --queued-writes restores one frame per
 * WRITEABLE, always through the queue (chatd's earlier write path, for comparison). */
static int direct_writes = 1;

typedef struct rframe {
    int refs;
    size_t len;
    unsigned char data[]; /* LWS_PRE headroom, then the payload */
} rframe;

typedef struct rconn {
    rp_conn rp; /* first: an rp_conn* is an rconn* */
    struct lws *wsi;
    rframe **q; /* ring, grown on demand up to QMAX (idle connections hold none) */
    int q_head, q_count, q_cap;
    char *rx;
    size_t rx_len, rx_cap;
} rconn;

struct pss {
    rconn *c;
};

static unsigned long long dropped, forwarded;

static rframe *frame_new(const char *p, size_t n)
{
    rframe *f = malloc(sizeof *f + LWS_PRE + n);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = n;
    memcpy(f->data + LWS_PRE, p, n);
    return f;
}

static void frame_unref(rframe *f)
{
    if (f && --f->refs == 0)
        free(f);
}

static void enqueue(rconn *c, rframe *f)
{
    if (!c || !c->wsi)
        return;
    if (c->q_count >= QMAX) {
        dropped++;
        return;
    }
    /* chatd's write path: nothing queued and nothing buffered in lws, so write at once. */
    if (direct_writes && c->q_count == 0 && !lws_partial_buffered(c->wsi)) {
        forwarded++;
        if (lws_write(c->wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT) < 0)
            dropped++;
        return;
    }
    if (c->q_count == c->q_cap) {
        int ncap = c->q_cap ? c->q_cap * 2 : 8;
        rframe **nq = malloc(sizeof *nq * (size_t)ncap);
        if (!nq) {
            dropped++;
            return;
        }
        for (int i = 0; i < c->q_count; i++)
            nq[i] = c->q[(c->q_head + i) % c->q_cap];
        free(c->q);
        c->q = nq;
        c->q_head = 0;
        c->q_cap = ncap;
    }
    f->refs++;
    c->q[(c->q_head + c->q_count) % c->q_cap] = f;
    c->q_count++;
    forwarded++;
    lws_callback_on_writable(c->wsi);
}

static void reply(rp_conn *c, const char *text, size_t n)
{
    rframe *f = frame_new(text, n);
    if (!f)
        return;
    enqueue((rconn *)c, f);
    frame_unref(f);
}

/* One frame shared by every target's queue. */
static void forward(rp_conn *const *to, int n, const char *data, size_t len)
{
    rframe *f = frame_new(data, len);
    if (!f)
        return;
    for (int i = 0; i < n; i++)
        enqueue((rconn *)to[i], f);
    frame_unref(f);
}

static int on_receive(rconn *c, struct lws *wsi, const char *in, size_t len)
{
    if (c->rx_len + len > 65536)
        return -1;
    if (c->rx_len + len > c->rx_cap) {
        size_t n = c->rx_cap ? c->rx_cap : 512;
        while (n < c->rx_len + len)
            n *= 2;
        char *p = realloc(c->rx, n);
        if (!p)
            return -1;
        c->rx = p;
        c->rx_cap = n;
    }
    memcpy(c->rx + c->rx_len, in, len);
    c->rx_len += len;
    if (lws_remaining_packet_payload(wsi) || !lws_is_final_fragment(wsi))
        return 0;
    rp_message(&c->rp, c->rx, c->rx_len);
    c->rx_len = 0;
    if (c->rx_cap > 4096) {
        free(c->rx);
        c->rx = NULL;
        c->rx_cap = 0;
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        p->c = calloc(1, sizeof *p->c);
        if (!p->c)
            return -1;
        p->c->wsi = wsi;
        return 0;
    case LWS_CALLBACK_RECEIVE:
        return p->c ? on_receive(p->c, wsi, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        rconn *c = p->c;
        if (!c || !c->q_count)
            return 0;
        /* Like chatd: up to 64 frames per callback while lws buffers nothing. */
        int budget = direct_writes ? 64 : 1;
        do {
            rframe *f = c->q[c->q_head];
            c->q_head = (c->q_head + 1) % c->q_cap;
            c->q_count--;
            int n = lws_write(wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
            frame_unref(f);
            if (n < 0)
                return -1;
        } while (c->q_count && --budget > 0 && !lws_partial_buffered(wsi));
        if (c->q_count)
            lws_callback_on_writable(wsi);
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        if (p->c) {
            rconn *c = p->c;
            rp_closed(&c->rp);
            while (c->q_count) {
                frame_unref(c->q[c->q_head]);
                c->q_head = (c->q_head + 1) % c->q_cap;
                c->q_count--;
            }
            free(c->q);
            free(c->rx);
            free(c);
            p->c = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

static struct lws_protocols protocols[] = {
    /* tx_packet_size as chatd's: 0 would cap each send() at the rx buffer size */
    {"libchat.v1", callback, sizeof(struct pss), 4096, 0, NULL, 1u << 20},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_sigterm(int sig)
{
    (void)sig;
    char buf[128];
    int n = snprintf(buf, sizeof buf, "relay: forwarded %llu frames, dropped %llu\n", forwarded,
                     dropped);
    if (write(2, buf, (size_t)n) < 0)
        _exit(1);
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1";
    int port = 0, ack = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen = argv[++i];
        else if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rx") && i + 1 < argc)
            protocols[0].rx_buffer_size = (size_t)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--queued-writes"))
            direct_writes = 0;
        else if (!strcmp(argv[i], "--no-ack"))
            ack = 0;
        else {
            fprintf(stderr, "usage: relay [--listen ADDR] [--port N] [--rx BYTES] [--no-ack] [--queued-writes]\n");
            return 2;
        }
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_sigterm);
    signal(SIGINT, on_sigterm);
    lws_set_log_level(LLL_ERR, NULL);
    rp_setup(&(rp_io){reply, forward}, ack);

    static uv_loop_t loop;
    uv_loop_init(&loop);
    void *loops[1] = {&loop};
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.iface = listen;
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_LIBUV;
    info.foreign_loops = loops;
    info.vhost_name = "default";
    struct lws_context *ctx = lws_create_context(&info);
    struct lws_vhost *vh = ctx ? lws_get_vhost_by_name(ctx, "default") : NULL;
    int bound = vh ? lws_get_vhost_listen_port(vh) : 0;
    if (bound <= 0) {
        fprintf(stderr, "relay: cannot listen on %s:%d\n", listen, port);
        return 1;
    }
    printf("relay listening on %s:%d\n", listen, bound);
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
    return 0;
}
