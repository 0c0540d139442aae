/* native-relay: the ceiling of libchat's native transport (lib/transport/uv*.c: libuv with
 * libchat's own HTTP/1.1 and RFC 6455 code, the loop chatd runs on by default). It speaks the
 * relay protocol subset (relay_proto.h) through the same transport seam the server engine uses
 * (transport/transport.h), with no engine behind it: no JSON tree, no store, no queue of its
 * own. A frame written goes into the connection's corked output and leaves with everything
 * else written to it in the same loop iteration, in one send(); what the kernel does not take
 * waits in the transport (unbounded here: a bench, not a server). --no-ack forwards only.
 *
 *   native-relay [--listen 127.0.0.1] [--port 0] [--no-ack]
 * prints "native-relay listening on ADDR:PORT". Built against the internal library: the
 * transport seam is not part of libchat's API.
 */
#include "relay_proto.h"

#include "transport/transport.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define FRAME_MAX 65536 /* as bench/relay's reassembly cap */

typedef struct nconn {
    rp_conn rp; /* first: an rp_conn* is an nconn* */
    chat__tconn *t;
} nconn;

static const chat__transport_ops *ops;
static unsigned long long forwarded, dropped;

/* write() frames the payload in the headroom before it and copies it into the connection's
 * output: one buffer serves every write. */
static void write_to(nconn *c, const char *data, size_t len)
{
    static unsigned char buf[CHAT__TRANSPORT_PRE + FRAME_MAX + 512];
    if (len > FRAME_MAX + 512) {
        dropped++;
        return;
    }
    memcpy(buf + CHAT__TRANSPORT_PRE, data, len);
    if (ops->write(c->t, buf + CHAT__TRANSPORT_PRE, len))
        dropped++;
    else
        forwarded++;
}

static void reply(rp_conn *c, const char *data, size_t len)
{
    write_to((nconn *)c, data, len);
}

static void forward(rp_conn *const *to, int n, const char *data, size_t len)
{
    for (int i = 0; i < n; i++)
        write_to((nconn *)to[i], data, len);
}

/* ---- the sink: what the transport calls ---- */

static void on_nothing(void *ud)
{
    (void)ud;
}

static int on_upgrade(void *ud, chat__thttp *h, const char *path)
{
    (void)ud;
    (void)h;
    (void)path;
    return 0;
}

static void *on_open(void *ud, chat__tconn *t)
{
    (void)ud;
    nconn *c = calloc(1, sizeof *c);
    if (c)
        c->t = t;
    return c;
}

static void on_message(void *conn, const char *buf, size_t len)
{
    rp_message(conn, buf, len);
}

static void on_refused(void *conn, int why)
{
    (void)why; /* binary, too big: the relay does not answer them */
    ops->kill(((nconn *)conn)->t);
}

static int on_writable(void *conn)
{
    (void)conn;
    return 0;
}

static void on_closed(void *conn)
{
    rp_closed(conn);
    free(conn);
}

static int on_http(void *ud, chat__thttp *h, int event, void **slot, const void *in, size_t len)
{
    (void)ud;
    (void)h;
    (void)slot;
    (void)in;
    (void)len;
    return event != CHAT__HTTP_CLOSED; /* plain HTTP: closed */
}

static void on_sigterm(int sig)
{
    (void)sig;
    char buf[128];
    int n = snprintf(buf, sizeof buf, "native-relay: forwarded %llu frames, dropped %llu\n",
                     forwarded, dropped);
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
        else if (!strcmp(argv[i], "--no-ack"))
            ack = 0;
        else {
            fprintf(stderr, "usage: native-relay [--listen ADDR] [--port N] [--no-ack]\n");
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
    rp_setup(&(rp_io){reply, forward}, ack);

    chat__transport_config cfg = {.address = listen, .port = port, .frame_max = FRAME_MAX,
                                  .frags_max = 64};
    chat__transport_sink sink = {
        .wake = on_nothing, .flush = on_nothing, .upgrade = on_upgrade, .open = on_open,
        .message = on_message, .refused = on_refused, .heard = on_nothing,
        .writable = on_writable, .closed = on_closed, .http = on_http,
    };
    void *st;
    ops = chat__transport_native();
    if (ops->open(&st, NULL, &cfg, &sink) != 0) {
        fprintf(stderr, "native-relay: cannot listen on %s:%d\n", listen, port);
        return 1;
    }
    printf("native-relay listening on %s:%d\n", listen, ops->port(st));
    fflush(stdout);
    ops->run(st);
    ops->close(st);
    return 0;
}
