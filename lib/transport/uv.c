/* The native transport: the loop, listening, accepting, reading, output and its flush,
 * closing, deadlines and timers (see uv_internal.h for the files around it).
 *
 * Output is corked: what the engine writes to a connection during one loop iteration goes into
 * the connection's buffer and leaves in one write at the iteration's end (the prepare and check
 * phases, right after the engine hands its batch to the writer), so a burst of acks and
 * deliveries to one client costs one system call instead of one each. A connection whose
 * buffer grows past CHAT__UV_CORK_BYTES is written at once. When the kernel takes only part,
 * the rest goes to a libuv write request and the connection is blocked (busy) until it
 * completes; the engine then queues frames itself, under its limits. */
#include "transport/uv_internal.h"

#include "chat/common.h"
#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"
#include "transport/uvtimer.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

void chat__uv_log(const utp *tp, int level, const char *fmt, ...)
{
    if (!tp->cfg.log || level > tp->cfg.log_level)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    tp->cfg.log(level, line, tp->cfg.log_ud);
}

/* ---- deadline FIFOs ---- */

static void fifo_fire(uv_timer_t *h);

static void fifo_arm(ufifo *f)
{
    if (!f->head) {
        uv_timer_stop(&f->timer);
        f->armed_for = 0;
        return;
    }
    if (f->armed_for == f->head->deadline)
        return;
    int64_t wait = f->head->deadline - (int64_t)uv_now(f->timer.loop);
    uv_timer_start(&f->timer, fifo_fire, (uint64_t)(wait > 0 ? wait : 0), 0);
    f->armed_for = f->head->deadline;
}

void chat__uv_fifo_leave(uconn *c)
{
    ufifo *f = c->fifo;
    if (!f)
        return;
    if (c->fifo_prev)
        c->fifo_prev->fifo_next = c->fifo_next;
    else
        f->head = c->fifo_next;
    if (c->fifo_next)
        c->fifo_next->fifo_prev = c->fifo_prev;
    else
        f->tail = c->fifo_prev;
    c->fifo_prev = c->fifo_next = NULL;
    c->fifo = NULL;
    /* Leaving at the head leaves the timer armed for it: it fires early, finds nothing due and
     * re-arms for the new head. */
}

void chat__uv_fifo_join(ufifo *f, uconn *c, int64_t timeout_ms)
{
    chat__uv_fifo_leave(c);
    c->deadline = (int64_t)uv_now(f->timer.loop) + timeout_ms;
    c->fifo = f;
    c->fifo_prev = f->tail;
    c->fifo_next = NULL;
    if (f->tail)
        f->tail->fifo_next = c;
    else
        f->head = c;
    f->tail = c;
    if (f->head == c)
        fifo_arm(f);
}

static void fifo_fire(uv_timer_t *h)
{
    ufifo *f = h->data;
    int64_t now = (int64_t)uv_now(h->loop);
    f->armed_for = 0;
    uconn *c;
    while ((c = f->head) && c->deadline <= now) {
        chat__uv_fifo_leave(c);
        chat__uv_close(c, 0); /* a head, a transaction or a linger that took too long */
    }
    fifo_arm(f);
}

/* ---- output ---- */

void chat__uv_mark(uconn *c)
{
    if (c->dirty || c->phase == UC_DEAD)
        return;
    c->dirty = 1;
    c->dirty_next = c->tp->dirty;
    c->tp->dirty = c;
}

typedef struct wreq {
    uv_write_t req;
    unsigned char *buf; /* owned */
} wreq;

static void do_flush(uconn *c);

static void after_write(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    uconn *c = req->data;
    chat__free(w->buf);
    chat__free(w);
    c->wreq = NULL;
    c->blocked = 0;
    if (c->phase == UC_DEAD)
        return;
    if (status < 0) {
        chat__uv_close(c, 0);
        return;
    }
    chat__uv_mark(c);
}

static void after_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    chat__free(req);
}

/* Our side is done: FIN once everything went out (lingering connections). */
static void maybe_shutdown(uconn *c)
{
    if (c->phase != UC_LINGER || c->shut || c->blocked || c->out_len)
        return;
    c->shut = 1;
    uv_shutdown_t *req = chat__malloc(sizeof *req);
    if (!req || uv_shutdown(req, (uv_stream_t *)&c->tcp, after_shutdown) != 0) {
        chat__free(req);
        chat__uv_close(c, 0);
    }
}

/* Hand c's output to the kernel: what it takes now, and the rest through a write request. */
static void do_flush(uconn *c)
{
    if (c->blocked || c->phase == UC_DEAD)
        return;
    unsigned char *raw = NULL;
    size_t raw_len = 0, raw_cap = 0;
    if (c->tls) {
        if ((c->out_len &&
             chat__uv_tls_encrypt(c, c->out, c->out_len, &raw, &raw_len, &raw_cap) != 0) ||
            chat__uv_tls_pending(c, &raw, &raw_len, &raw_cap) != 0) {
            chat__free(raw);
            chat__uv_close(c, 0);
            return;
        }
        c->out_len = 0;
    } else {
        raw = c->out;
        raw_len = c->out_len;
        raw_cap = c->out_cap;
        c->out = NULL;
        c->out_len = c->out_cap = 0;
    }
    if (raw_len) {
        uv_buf_t b = uv_buf_init((char *)raw, (unsigned)raw_len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == UV_EAGAIN || n == UV_ENOSYS)
            n = 0;
        if (n < 0) {
            chat__free(raw);
            chat__uv_close(c, 0);
            return;
        }
        if ((size_t)n < raw_len) {
            wreq *w = chat__malloc(sizeof *w);
            if (!w) {
                chat__free(raw);
                chat__uv_close(c, 0);
                return;
            }
            memmove(raw, raw + n, raw_len - (size_t)n);
            w->buf = raw;
            w->req.data = c;
            b = uv_buf_init((char *)raw, (unsigned)(raw_len - (size_t)n));
            if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, after_write) != 0) {
                chat__free(raw);
                chat__free(w);
                chat__uv_close(c, 0);
                return;
            }
            c->wreq = &w->req;
            c->blocked = 1;
            return;
        }
    }
    /* Everything went: an idle connection holds no output buffer (malloc's per-thread cache
     * makes the next one cheap; keeping 1 KiB per connection cost more than the engine's whole
     * state of an idle one). */
    chat__free(raw);
    (void)raw_cap;
    maybe_shutdown(c);
}

int chat__uv_out(uconn *c, const void *data, size_t len)
{
    if (c->phase == UC_DEAD)
        return -1;
    if (c->out_len + len > c->out_cap) {
        size_t ncap = c->out_cap ? c->out_cap : 1024;
        while (ncap < c->out_len + len)
            ncap *= 2;
        unsigned char *nb = chat__realloc(c->out, ncap);
        if (!nb)
            return -1;
        c->out = nb;
        c->out_cap = ncap;
    }
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
    if (c->out_len >= CHAT__UV_CORK_BYTES)
        do_flush(c);
    else
        chat__uv_mark(c);
    return 0;
}

/* An active idle handle makes the loop poll without sleeping; it has nothing to do itself
 * (libuv refuses to start one without a callback). */
static void on_idle(uv_idle_t *h)
{
    (void)h;
}

/* The end of a loop iteration's I/O: flush every connection that has output, serve pending
 * writables, and resume input held while a response was due. One pass over the connections
 * marked so far: a connection marked during the pass (a writable that asks again, output a
 * callback made) waits for the next pass, so one that always has more to write cannot hold
 * the loop, and the idle handle keeps the loop from sleeping meanwhile. */
static void flush_all(utp *tp)
{
    uconn *list = tp->dirty;
    tp->dirty = NULL;
    while (list) {
        uconn *c = list;
        list = c->dirty_next;
        c->dirty = 0;
        if (c->phase == UC_DEAD)
            continue;
        if (c->kill) {
            chat__uv_close(c, 0);
            continue;
        }
        if (c->out_len || c->tls || c->phase == UC_LINGER)
            do_flush(c);
        if (c->phase == UC_DEAD)
            continue;
        if (c->want_write && !c->blocked) {
            c->want_write = 0;
            if (c->phase == UC_WS)
                chat__uv_ws_writable(c);
            else if (c->phase == UC_HTTP || c->phase == UC_BODY)
                chat__uv_http_event(c, CHAT__HTTP_WRITABLE, NULL, 0);
            if (c->phase != UC_DEAD && c->out_len)
                do_flush(c); /* what the callback wrote leaves now */
        }
        if (c->phase == UC_HEAD && c->in_len && !c->dirty)
            chat__uv_consume_input(c);
    }
    if (tp->dirty && !tp->idle_on && tp->handles_open) {
        uv_idle_start(&tp->idle, on_idle);
        tp->idle_on = 1;
    } else if (!tp->dirty && tp->idle_on) {
        uv_idle_stop(&tp->idle);
        tp->idle_on = 0;
    }
}

/* Take c off the list of connections to flush (it is being freed). */
static void unmark(uconn *c)
{
    for (uconn **p = &c->tp->dirty; *p; p = &(*p)->dirty_next)
        if (*p == c) {
            *p = c->dirty_next;
            break;
        }
    c->dirty = 0;
}

/* ---- input ---- */

static void read_more(uconn *c)
{
    if (c->stopped_reading && c->phase != UC_DEAD) {
        c->stopped_reading = 0;
        uv_read_start((uv_stream_t *)&c->tcp, NULL, NULL);
    }
}

/* Keep n unconsumed bytes of p for later. */
static int keep(uconn *c, const unsigned char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (c->in_len + n + 1 > c->in_cap) {
        size_t ncap = c->in_cap ? c->in_cap : 512;
        while (ncap < c->in_len + n + 1)
            ncap *= 2;
        char *nb = chat__realloc(c->in, ncap);
        if (!nb)
            return -1;
        c->in = nb;
        c->in_cap = ncap;
    }
    if ((const char *)p != c->in + c->in_len)
        memmove(c->in + c->in_len, p, n);
    c->in_len += n;
    return 0;
}

/* Run bytes through the current phase until they are used up or it can take no more. Returns
 * what was taken, or -1 when the connection closed. */
static long run_input(uconn *c, unsigned char *p, size_t n)
{
    size_t used = 0;
    while (used < n) {
        long r;
        switch (c->phase) {
        case UC_HEAD:
        case UC_BODY:
            r = chat__uv_http_input(c, p + used, n - used);
            break;
        case UC_WS:
            r = chat__uv_ws_input(c, p + used, n - used);
            break;
        case UC_LINGER:
            return (long)n; /* discarded */
        default:
            return (long)used; /* a response is due: the next request waits */
        }
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        used += (size_t)r;
    }
    return (long)used;
}

int chat__uv_plain_input(uconn *c, unsigned char *p, size_t n)
{
    if (c->phase == UC_DEAD)
        return -1;
    if (c->in_len) {
        if (keep(c, p, n) != 0) {
            chat__uv_close(c, 0);
            return -1;
        }
        chat__uv_consume_input(c);
        return c->phase == UC_DEAD ? -1 : 0;
    }
    long r = run_input(c, p, n);
    if (r < 0)
        return -1;
    if (keep(c, p + r, n - (size_t)r) != 0) {
        chat__uv_close(c, 0);
        return -1;
    }
    if (c->in_len > CHAT__HTTP1_MAX_HEAD && c->phase == UC_HTTP && !c->stopped_reading) {
        /* A client pipelining while its response is due: stop reading until it is out. */
        c->stopped_reading = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
    return 0;
}

void chat__uv_consume_input(uconn *c)
{
    if (!c->in_len || c->phase == UC_DEAD)
        return;
    /* The buffer is processed in place; what is left moves to its front. */
    char *buf = c->in;
    size_t len = c->in_len;
    c->in_len = 0;
    long r = run_input(c, (unsigned char *)buf, len);
    if (r < 0 || c->phase == UC_DEAD)
        return;
    size_t left = len - (size_t)r;
    if (c->in != buf) { /* the phase kept bytes of its own meanwhile: cannot happen */
        return;
    }
    memmove(c->in, buf + r, left);
    c->in_len = left;
    if (c->phase != UC_HTTP)
        read_more(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    uconn *c = h->data;
    buf->base = (char *)c->tp->rbuf;
    buf->len = CHAT__UV_READ_BYTES;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    uconn *c = s->data;
    if (nread == 0 || c->phase == UC_DEAD)
        return;
    if (nread < 0) {
        c->eof = 1;
        chat__uv_close(c, 0);
        return;
    }
    unsigned char *p = (unsigned char *)buf->base;
    if (c->tls) {
        if (chat__uv_tls_input(c, p, (size_t)nread) != 0)
            chat__uv_close(c, 0);
        else if (c->phase != UC_DEAD)
            chat__uv_mark(c); /* handshake bytes may be due */
        return;
    }
    chat__uv_plain_input(c, p, (size_t)nread);
}

/* ---- closing ---- */

static void on_closed(uv_handle_t *h)
{
    uconn *c = h->data;
    utp *tp = c->tp;
    if (c->dirty)
        unmark(c);
    if (c->all_prev)
        c->all_prev->all_next = c->all_next;
    else
        tp->all = c->all_next;
    if (c->all_next)
        c->all_next->all_prev = c->all_prev;
    tp->n_conns--;
    chat__uv_tls_free(c);
    if (c->rx) {
        chat__wsrx_reset(c->rx);
        chat__free(c->rx);
    }
    chat__free(c->in);
    chat__free(c->out);
    chat__free(c->head);
    chat__free(c->req);
    chat__free(c);
}

void chat__uv_release_engine(uconn *c)
{
    utp *tp = c->tp;
    if (c->closing_engine)
        return;
    c->closing_engine = 1;
    if (c->conn) {
        void *conn = c->conn;
        c->conn = NULL;
        tp->sink.closed(conn);
    } else if (c->req || c->slot) {
        tp->sink.http(tp->sink.ud, (chat__thttp *)c, CHAT__HTTP_CLOSED, &c->slot, NULL, 0);
    }
}

void chat__uv_close(uconn *c, int linger)
{
    if (c->phase == UC_DEAD)
        return;
    chat__uv_release_engine(c);
    if (linger && !c->tp->shutting_down) {
        if (c->phase == UC_LINGER)
            return;
        c->phase = UC_LINGER;
        c->in_len = 0;
        read_more(c);
        chat__uv_fifo_join(&c->tp->linger_fifo, c, CHAT__UV_LINGER_MS);
        chat__uv_mark(c);
        maybe_shutdown(c);
        return;
    }
    if (linger && (c->out_len || c->tls) && !c->blocked) {
        do_flush(c); /* stopping: what the kernel takes now, without waiting */
        if (c->phase == UC_DEAD)
            return;
    }
    chat__uv_fifo_leave(c);
    c->phase = UC_DEAD;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* ---- accepting ---- */

/* A new socket whose descriptor lies in the top of the process's range is refused at once.
 * Descriptors are allocated lowest first, so a high one means the process is nearly out; the
 * reserve this keeps free means accept() itself never fails with EMFILE, which would leave the
 * connection in the backlog and the listening socket readable forever. The reserve also leaves
 * room for the store's files. */
static int fd_in_reserve(int fd)
{
    struct rlimit rl;
    if (fd < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
        return 0;
    rlim_t reserve = rl.rlim_cur / 16;
    reserve = reserve < 16 ? 16 : reserve > 256 ? 256 : reserve;
    return (rlim_t)fd + reserve >= rl.rlim_cur;
}

static void on_connection(uv_stream_t *server, int status)
{
    utp *tp = server->data;
    if (status < 0)
        return;
    uconn *c = chat__calloc(1, sizeof *c);
    if (!c) {
        /* No memory for it: take the connection off the backlog and close it, or the listener
         * stays readable and the loop spins on it. */
        uv_os_fd_t lfd;
        if (uv_fileno((uv_handle_t *)server, &lfd) == 0) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0)
                close(fd);
        }
        return;
    }
    c->tp = tp;
    uv_tcp_init(&tp->loop, &c->tcp);
    c->tcp.data = c;
    c->phase = UC_HEAD;
    c->all_next = tp->all;
    if (tp->all)
        tp->all->all_prev = c;
    tp->all = c;
    tp->n_conns++;
    uv_os_fd_t fd = -1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || fd_in_reserve(fd) ||
        tp->shutting_down || (tp->ssl_ctx && chat__uv_tls_new(c) != CHAT_OK)) {
        c->phase = UC_DEAD;
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    chat__uv_fifo_join(&tp->http_fifo, c, CHAT__UV_HTTP_TIMEOUT_MS);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- the loop ---- */

static void on_async(uv_async_t *h)
{
    utp *tp = h->data;
    tp->sink.wake(tp->sink.ud);
}

static void on_prepare(uv_prepare_t *h)
{
    utp *tp = h->data;
    tp->sink.flush(tp->sink.ud);
    flush_all(tp);
}

static void on_check(uv_check_t *h)
{
    utp *tp = h->data;
    tp->sink.flush(tp->sink.ud);
    flush_all(tp);
}

static int resolve(const char *address, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(address, port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(address, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char ps[16];
    snprintf(ps, sizeof ps, "%d", port);
    if (getaddrinfo(address, ps, &hints, &res) != 0 || !res)
        return -1;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

static int listen_on(utp *tp, const chat__transport_config *cfg)
{
    struct sockaddr_storage ss;
    if (resolve(cfg->address, cfg->port, &ss) != 0)
        return chat__error_set(CHAT_EIO, 0, "cannot listen on %s:%d: unknown address",
                               cfg->address, cfg->port);
    int rc;
    if (cfg->reuse_port) {
        /* libuv 1.44 has no flag for it: the socket is made here and handed over. */
        int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
        socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_in);
        rc = fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
                     setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
                     bind(fd, (struct sockaddr *)&ss, sl) != 0
                 ? uv_translate_sys_error(errno)
                 : uv_tcp_open(&tp->listener, fd);
        if (rc != 0 && fd >= 0)
            close(fd);
    } else {
        rc = uv_tcp_bind(&tp->listener, (struct sockaddr *)&ss, 0);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&tp->listener, 4096, on_connection);
    if (rc != 0)
        return chat__error_set(CHAT_EIO, -rc, "cannot listen on %s:%d: %s", cfg->address,
                               cfg->port, uv_strerror(rc));
    struct sockaddr_storage bound;
    int blen = sizeof bound;
    uv_tcp_getsockname(&tp->listener, (struct sockaddr *)&bound, &blen);
    tp->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                 : ((struct sockaddr_in *)&bound)->sin_port);
    return CHAT_OK;
}

static void fifo_init(utp *tp, ufifo *f)
{
    uv_timer_init(&tp->loop, &f->timer);
    uv_unref((uv_handle_t *)&f->timer);
    f->timer.data = f;
}

static void handles_close(utp *tp)
{
    if (!tp->handles_open)
        return;
    tp->handles_open = 0;
    uv_close((uv_handle_t *)&tp->async, NULL);
    uv_close((uv_handle_t *)&tp->prepare, NULL);
    uv_close((uv_handle_t *)&tp->check, NULL);
    uv_close((uv_handle_t *)&tp->idle, NULL);
    uv_close((uv_handle_t *)&tp->http_fifo.timer, NULL);
    uv_close((uv_handle_t *)&tp->linger_fifo.timer, NULL);
    if (!uv_is_closing((uv_handle_t *)&tp->listener))
        uv_close((uv_handle_t *)&tp->listener, NULL);
}

static void tp_free(utp *tp)
{
    chat__uv_tls_ctx_free(tp);
    chat__free(tp->rbuf);
    chat__free(tp->pbuf);
    chat__free(tp);
}

static void loop_close(utp *tp)
{
    handles_close(tp);
    uv_run(&tp->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&tp->loop) != 0)
        chat__uv_log(tp, CHAT_LOG_WARN, "event loop closed with handles still open");
}

static int tp_open(void **out, void *arg, const chat__transport_config *cfg,
                   const chat__transport_sink *sink)
{
    (void)arg;
    utp *tp = chat__calloc(1, sizeof *tp);
    if (!tp)
        return CHAT_ENOMEM;
    tp->sink = *sink;
    tp->cfg = *cfg;
    tp->cfg.address = NULL; /* borrowed for open only */
    tp->cfg.tls_cert = tp->cfg.tls_key = NULL;
    tp->rbuf = chat__malloc(CHAT__UV_READ_BYTES + 1);
    tp->pbuf = cfg->tls_cert ? chat__malloc(CHAT__UV_READ_BYTES + 1) : NULL;
    if (!tp->rbuf || (cfg->tls_cert && !tp->pbuf)) {
        tp_free(tp);
        return CHAT_ENOMEM;
    }
    if (uv_loop_init(&tp->loop) != 0) {
        tp_free(tp);
        return chat__error_set(CHAT_ERROR, 0, "cannot create the event loop");
    }
    uv_async_init(&tp->loop, &tp->async, on_async);
    uv_prepare_init(&tp->loop, &tp->prepare);
    uv_check_init(&tp->loop, &tp->check);
    uv_idle_init(&tp->loop, &tp->idle);
    tp->async.data = tp->prepare.data = tp->check.data = tp->idle.data = tp;
    uv_prepare_start(&tp->prepare, on_prepare);
    uv_check_start(&tp->check, on_check);
    uv_unref((uv_handle_t *)&tp->prepare);
    uv_unref((uv_handle_t *)&tp->check);
    uv_unref((uv_handle_t *)&tp->idle);
    fifo_init(tp, &tp->http_fifo);
    fifo_init(tp, &tp->linger_fifo);
    uv_tcp_init(&tp->loop, &tp->listener);
    tp->listener.data = tp;
    tp->handles_open = 1;
    int rc = cfg->tls_cert ? chat__uv_tls_ctx(tp, cfg->tls_cert, cfg->tls_key) : CHAT_OK;
    if (rc == CHAT_OK)
        rc = listen_on(tp, cfg);
    if (rc != CHAT_OK) {
        int keep_msg = chat_error_last()->code == rc;
        char msg[256];
        snprintf(msg, sizeof msg, "%s", keep_msg ? chat_error_last()->message : chat_strerror(rc));
        loop_close(tp);
        tp_free(tp);
        return chat__error_set(rc, 0, "%s", msg);
    }
    chat__uv_log(tp, CHAT_LOG_INFO, "listening on %s:%d", cfg->address, tp->port);
    *out = tp;
    return CHAT_OK;
}

static void tp_run(void *st)
{
    utp *tp = st;
    uv_run(&tp->loop, UV_RUN_DEFAULT);
}

static void tp_wake(void *st)
{
    utp *tp = st;
    uv_async_send(&tp->async);
}

static void tp_shutdown(void *st)
{
    utp *tp = st;
    if (tp->shutting_down)
        return;
    tp->shutting_down = 1;
    uv_close((uv_handle_t *)&tp->listener, NULL);
    /* Every connection: a WebSocket is told why (1001), then each is closed once what is
     * buffered for it was offered to the kernel. */
    for (uconn *c = tp->all; c; c = c->all_next) {
        if (c->phase == UC_DEAD)
            continue;
        if (c->phase == UC_WS)
            chat__uv_ws_close(c, 1001, "server shutting down");
        chat__uv_close(c, 1);
    }
    tp->dirty = NULL;
    handles_close(tp);
}

static void tp_close(void *st)
{
    utp *tp = st;
    if (!tp)
        return;
    loop_close(tp);
    tp_free(tp);
}

static int64_t tp_now_ms(void *st)
{
    return (int64_t)uv_now(&((utp *)st)->loop);
}

static int tp_port(void *st)
{
    return ((utp *)st)->port;
}

static int tp_timer_init(void *st, chat__timer *t, void (*cb)(chat__timer *t))
{
    return chat__uvtimer_init(&((utp *)st)->loop, t, cb);
}

static const chat__transport_ops uv_ops = {
    .name = "native",
    .open = tp_open,
    .run = tp_run,
    .wake = tp_wake,
    .shutdown = tp_shutdown,
    .close = tp_close,
    .now_ms = tp_now_ms,
    .port = tp_port,
    .timer_init = tp_timer_init,
    .timer_start = chat__uvtimer_start,
    .timer_stop = chat__uvtimer_stop,
    .timer_close = chat__uvtimer_close,
    .write = chat__uv_ws_write,
    .busy = chat__uv_ws_busy,
    .want_write = chat__uv_ws_want_write,
    .ping = chat__uv_ws_ping,
    .send_close = chat__uv_ws_send_close,
    .kill = chat__uv_ws_kill,
    .http_method = chat__uv_http_method,
    .http_header = chat__uv_http_header,
    .http_query = chat__uv_http_query,
    .http_respond = chat__uv_http_respond,
    .http_write = chat__uv_http_write,
    .http_continue = chat__uv_http_continue,
    .http_choked = chat__uv_http_choked,
    .http_want_write = chat__uv_http_want_write,
    .http_complete = chat__uv_http_complete,
    .http_progress = chat__uv_http_progress,
};

const chat__transport_ops *chat__transport_native(void)
{
    return &uv_ops;
}
