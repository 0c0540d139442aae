/* The native transport's loop over real sockets, with a sink of the test's own. Responses are
 * written one byte per WRITABLE event, every other event asking again without writing:
 * - a writable that asks again is served on the next loop iteration, not when some other
 *   event happens to wake the loop (else the response stalls until the transaction's timeout
 *   closes the connection);
 * - one writable per connection per pass: a connection that always has more to write cannot
 *   hold the loop while another's request waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdio.h>
#include <unistd.h>

#include "chat/errors.h"
#include "transport/transport.h"

#define BODY 200
#define LONG_BODY 20000

typedef struct txn {
    int events, sent, total;
} txn;

typedef struct sink_state {
    const chat__transport_ops *ops;
    void *st;
    txn t[2];         /* /0 and /1 */
    int long_sent_at; /* bytes of /0's response written when /1 came in */
    unsigned char buf[CHAT__TRANSPORT_PRE + 1];
} sink_state;

static void on_wake(void *ud)
{
    sink_state *s = ud;
    s->ops->shutdown(s->st);
}

static void on_flush(void *ud)
{
    (void)ud;
}

static int on_http(void *ud, chat__thttp *h, int event, void **slot, const void *in, size_t len)
{
    sink_state *s = ud;
    (void)len;
    if (event == CHAT__HTTP_REQUEST) {
        txn *t = &s->t[strcmp(in, "/1") == 0];
        *slot = t;
        t->total = t == &s->t[0] ? s->t[0].total : BODY;
        if (t == &s->t[1])
            s->long_sent_at = s->t[0].sent;
        if (s->ops->http_respond(h, 200, "text/plain", t->total, NULL, 0, 0))
            return -1;
        s->ops->http_want_write(h);
        return 0;
    }
    if (event != CHAT__HTTP_WRITABLE)
        return 0;
    txn *t = *slot;
    /* Every other event asks again and writes nothing. */
    if (t->events++ % 2 == 0) {
        s->ops->http_want_write(h);
        return 0;
    }
    s->buf[CHAT__TRANSPORT_PRE] = (unsigned char)('a' + t->sent % 26);
    int final = ++t->sent == t->total;
    if (s->ops->http_write(h, s->buf + CHAT__TRANSPORT_PRE, 1, final))
        return -1;
    if (final)
        return s->ops->http_complete(h);
    s->ops->http_want_write(h);
    return 0;
}

static void *run_loop(void *arg)
{
    sink_state *s = arg;
    s->ops->run(s->st);
    return NULL;
}

static void start(sink_state *s, pthread_t *th, int long_total)
{
    memset(s, 0, sizeof *s);
    s->ops = chat__transport_native();
    s->t[0].total = long_total;
    static chat__transport_sink sink = {.wake = on_wake, .flush = on_flush, .http = on_http};
    sink.ud = s;
    chat__transport_config cfg = {.address = "127.0.0.1", .frame_max = 65536, .frags_max = 16};
    assert_int_equal(s->ops->open(&s->st, NULL, &cfg, &sink), CHAT_OK);
    assert_int_equal(pthread_create(th, NULL, run_loop, s), 0);
}

static void stop(sink_state *s, pthread_t th)
{
    s->ops->wake(s->st);
    assert_int_equal(pthread_join(th, NULL), 0);
    s->ops->close(s->st);
}

static int request(sink_state *s, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    /* Generous: the loop answers in milliseconds; stalled, the transport's own 5 s timeout
     * closes the connection first. */
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->ops->port(s->st))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[64];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    return fd;
}

/* Read a response of `want` body bytes (at most `upto` of them); returns the body bytes read. */
static size_t response(int fd, size_t want, size_t upto, char *first26)
{
    static char got[LONG_BODY + 4096];
    size_t n = 0, body_len = 0;
    const char *body = NULL;
    while (n < sizeof got - 1) {
        ssize_t r = read(fd, got + n, sizeof got - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        got[n] = '\0';
        if (!body && (body = strstr(got, "\r\n\r\n")))
            body += 4;
        body_len = body ? n - (size_t)(body - got) : 0;
        if (body_len >= want || body_len >= upto)
            break;
    }
    assert_non_null(body);
    if (first26 && body_len >= 26)
        memcpy(first26, body, 26);
    return body_len;
}

static void writable_that_asks_again_is_served_without_other_events(void **state)
{
    (void)state;
    sink_state s;
    pthread_t th;
    start(&s, &th, BODY);
    int fd = request(&s, "/0");
    char first[26];
    assert_int_equal(response(fd, BODY, BODY, first), BODY);
    assert_memory_equal(first, "abcdefghijklmnopqrstuvwxyz", 26);
    close(fd);
    assert_int_equal(s.t[0].sent, BODY);
    stop(&s, th);
}

static void a_long_response_does_not_hold_the_loop(void **state)
{
    (void)state;
    sink_state s;
    pthread_t th;
    start(&s, &th, LONG_BODY);
    int a = request(&s, "/0");
    size_t have = response(a, LONG_BODY, 1, NULL); /* it is being written */
    assert_true(have >= 1);
    int b = request(&s, "/1");
    assert_int_equal(response(b, BODY, BODY, NULL), BODY);
    char rest[4096];
    while (have < LONG_BODY) {
        ssize_t r = read(a, rest, sizeof rest);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    assert_int_equal(have, LONG_BODY);
    close(a);
    close(b);
    /* The second request came in while the first response was still being written. */
    assert_true(s.long_sent_at < LONG_BODY);
    assert_int_equal(s.t[1].sent, BODY);
    stop(&s, th);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writable_that_asks_again_is_served_without_other_events),
        cmocka_unit_test(a_long_response_does_not_hold_the_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
