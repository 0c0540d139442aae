/* Push notifiers: the callback notifier, and the webhook against a tiny HTTP listener running
 * in a thread of the test on 127.0.0.1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chat/errors.h"
#include "chat/sys/push.h"
#include "chat/sys/store.h"
#include "push/webhook.h"

/* ---- listener ---- */

#define MAX_BODIES 16

struct listener {
    int fd;
    int port;
    int status; /* answered to every request */
    atomic_int stop;
    pthread_t thread;
    pthread_mutex_t mu;
    char *heads[MAX_BODIES];
    char *bodies[MAX_BODIES];
    int n;
};

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Reads one request (headers, then Content-Length bytes of body) and answers it. */
static void serve_one(struct listener *l, int c)
{
    char buf[8192];
    size_t have = 0;
    char *end = NULL;
    while (!end && have < sizeof(buf) - 1) {
        ssize_t r = recv(c, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0)
            return;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return;
    size_t head_len = (size_t)(end - buf) + 4;
    size_t body_len = 0;
    for (char *h = buf; h < end; h = strstr(h, "\r\n") + 2)
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            body_len = strtoul(h + 15, NULL, 10);
    while (have < head_len + body_len && have < sizeof(buf) - 1) {
        ssize_t r = recv(c, buf + have, sizeof(buf) - 1 - have, 0);
        if (r <= 0)
            return;
        have += (size_t)r;
    }
    pthread_mutex_lock(&l->mu);
    if (l->n < MAX_BODIES) {
        l->heads[l->n] = strndup(buf, head_len);
        l->bodies[l->n] = strndup(buf + head_len, body_len);
        l->n++;
    }
    pthread_mutex_unlock(&l->mu);
    char reply[128];
    int n = snprintf(reply, sizeof(reply),
                     "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", l->status);
    send(c, reply, (size_t)n, MSG_NOSIGNAL);
}

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    while (!atomic_load(&l->stop)) {
        struct pollfd p = {.fd = l->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(l->fd, NULL, NULL);
        if (c < 0)
            continue;
        serve_one(l, c);
        close(c);
    }
    return NULL;
}

static struct listener *listener_start(int status)
{
    struct listener *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->status = status;
    l->fd = listen_any(&l->port);
    pthread_mutex_init(&l->mu, NULL);
    assert_int_equal(pthread_create(&l->thread, NULL, listener_main, l), 0);
    return l;
}

static void listener_stop(struct listener *l)
{
    atomic_store(&l->stop, 1);
    pthread_join(l->thread, NULL);
    close(l->fd);
    for (int i = 0; i < l->n; i++) {
        free(l->heads[i]);
        free(l->bodies[i]);
    }
    pthread_mutex_destroy(&l->mu);
    free(l);
}

/* ---- helpers ---- */

static void *webhook_at(int port)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", port);
    void *state = NULL;
    assert_int_equal(chat_push_webhook_new(&state, url), CHAT_OK);
    return state;
}

static chat__push_webhook_stats stats_of(void *state)
{
    chat__push_webhook_stats s;
    assert_int_equal(chat_push_webhook_ops()->ctl(state, CHAT__PUSH_CTL_STATS, &s), CHAT_OK);
    return s;
}

static chat_push_event event(uint64_t seq, const char *preview)
{
    chat_push_event ev = {.user = "bob", .conv = 42, .conv_kind = CHAT_CONV_DIRECT, .title = "",
                          .seq = seq, .sender = "alice", .msg_kind = CHAT_MSG_TEXT,
                          .preview = preview, .unread = seq, .ts_ms = 1700000000123};
    return ev;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* ---- tests ---- */

static void test_push_webhook_posts_each_event_as_json(void **state)
{
    struct listener *l = listener_start(200);
    void *wh = webhook_at(l->port);
    const chat_push_ops *ops = chat_push_webhook_ops();

    chat_push_event e1 = event(1, "hi \"bob\"");
    chat_push_event e2 = event(2, NULL);
    chat_push_event e3 = event(3, NULL);
    e3.conv_kind = CHAT_CONV_GROUP;
    e3.title = "team";
    e3.msg_kind = CHAT_MSG_MEDIA;
    e3.seq = (1ULL << 60) + 1; /* beyond a double's exact range: must not be rounded */
    assert_int_equal(ops->notify(wh, &e1), CHAT_OK);
    assert_int_equal(ops->notify(wh, &e2), CHAT_OK);
    assert_int_equal(ops->notify(wh, &e3), CHAT_OK);
    assert_int_equal(ops->ctl(wh, CHAT__PUSH_CTL_FLUSH, NULL), CHAT_OK);

    chat__push_webhook_stats s = stats_of(wh);
    assert_int_equal(s.queued, 3);
    assert_int_equal(s.sent, 3);
    assert_int_equal(s.failed, 0);
    assert_int_equal(s.dropped, 0);

    pthread_mutex_lock(&l->mu);
    assert_int_equal(l->n, 3);
    char host[64];
    snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", l->port);
    for (int i = 0; i < 3; i++) {
        assert_true(strncmp(l->heads[i], "POST /hook HTTP/1.1\r\n", 21) == 0);
        assert_non_null(strstr(l->heads[i], host));
        assert_non_null(strstr(l->heads[i], "Content-Type: application/json\r\n"));
        assert_non_null(strstr(l->heads[i], "Connection: close\r\n"));
    }
    cJSON *j = cJSON_Parse(l->bodies[0]);
    assert_non_null(j);
    assert_string_equal(json_str(j, "user"), "bob");
    assert_true(json_num(j, "conv") == 42);
    assert_string_equal(json_str(j, "conv_kind"), "direct");
    assert_string_equal(json_str(j, "title"), "");
    assert_true(json_num(j, "seq") == 1);
    assert_string_equal(json_str(j, "sender"), "alice");
    assert_string_equal(json_str(j, "kind"), "text");
    assert_string_equal(json_str(j, "preview"), "hi \"bob\"");
    assert_true(json_num(j, "unread") == 1);
    assert_true(json_num(j, "ts") == 1700000000123.0);
    cJSON_Delete(j);

    j = cJSON_Parse(l->bodies[1]);
    assert_non_null(j);
    assert_true(json_num(j, "seq") == 2);
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "preview"));
    cJSON_Delete(j);

    j = cJSON_Parse(l->bodies[2]);
    assert_non_null(j);
    assert_string_equal(json_str(j, "conv_kind"), "group");
    assert_string_equal(json_str(j, "title"), "team");
    assert_string_equal(json_str(j, "kind"), "media");
    assert_null(cJSON_GetObjectItemCaseSensitive(j, "preview"));
    cJSON_Delete(j);
    assert_non_null(strstr(l->bodies[2], "\"seq\":1152921504606846977"));
    pthread_mutex_unlock(&l->mu);

    ops->destroy(wh);
    listener_stop(l);
}

static void test_push_webhook_counts_non_2xx_as_failed(void **state)
{
    struct listener *l = listener_start(500);
    void *wh = webhook_at(l->port);
    chat_push_event ev = event(1, "x");
    assert_int_equal(chat_push_webhook_ops()->notify(wh, &ev), CHAT_OK);
    assert_int_equal(chat_push_webhook_ops()->notify(wh, &ev), CHAT_OK);
    assert_int_equal(chat_push_webhook_ops()->ctl(wh, CHAT__PUSH_CTL_FLUSH, NULL), CHAT_OK);
    chat__push_webhook_stats s = stats_of(wh);
    assert_int_equal(s.sent, 0);
    assert_int_equal(s.failed, 2);
    pthread_mutex_lock(&l->mu);
    assert_int_equal(l->n, 2); /* an HTTP error is an answer: no retry */
    pthread_mutex_unlock(&l->mu);
    chat_push_webhook_ops()->destroy(wh);
    listener_stop(l);
}

static void test_push_webhook_unreachable_port_fails_without_hanging(void **state)
{
    int port;
    close(listen_any(&port)); /* a port nobody listens on now */
    void *wh = webhook_at(port);
    chat_push_event ev = event(1, NULL);
    int64_t t0 = now_ms();
    assert_int_equal(chat_push_webhook_ops()->notify(wh, &ev), CHAT_OK);
    assert_int_equal(chat_push_webhook_ops()->notify(wh, &ev), CHAT_OK);
    assert_int_equal(chat_push_webhook_ops()->ctl(wh, CHAT__PUSH_CTL_FLUSH, NULL), CHAT_OK);
    chat__push_webhook_stats s = stats_of(wh);
    assert_int_equal(s.sent, 0);
    assert_int_equal(s.failed, 2);
    chat_push_webhook_ops()->destroy(wh);
    assert_true(now_ms() - t0 < 3000);
}

/* A host that accepts connections but never answers: the queue fills and drops, and destroy
 * cuts the stuck request short instead of waiting out its 5 s timeout. */
static void test_push_webhook_full_queue_drops_and_destroy_is_prompt(void **state)
{
    int port;
    int fd = listen_any(&port); /* never accept()ed: the kernel completes handshakes anyway */
    void *wh = webhook_at(port);
    const chat_push_ops *ops = chat_push_webhook_ops();
    chat_push_event ev = event(1, "spam");
    const int total = 4096 + 50;
    int again = 0;
    for (int i = 0; i < total; i++) {
        int rc = ops->notify(wh, &ev);
        assert_true(rc == CHAT_OK || rc == CHAT_EAGAIN);
        again += rc == CHAT_EAGAIN;
    }
    chat__push_webhook_stats s = stats_of(wh);
    assert_true(s.dropped >= 49);
    assert_int_equal(s.dropped, again);
    assert_int_equal(s.queued + s.dropped, total);
    int64_t t0 = now_ms();
    ops->destroy(wh);
    assert_true(now_ms() - t0 < 2000);
    close(fd);
}

static void test_push_webhook_rejects_bad_urls(void **state)
{
    static const char *const bad[] = {
        "https://example.com/hook", "ftp://example.com/", "garbage", "", "http://",
        "http:///path", "http://:80/", "http://host:0/", "http://host:70000/", "http://host:8x/",
        "http://user@host/", "http://ho st/", "http://host/a b", "http://[::1/", "http://h/\r\nX: y",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        void *state_out = (void *)&bad; /* must stay untouched */
        assert_int_equal(chat_push_webhook_new(&state_out, bad[i]), CHAT_EINVAL);
        assert_ptr_equal(state_out, (void *)&bad);
        assert_int_equal(chat_error_last()->code, CHAT_EINVAL);
        assert_true(strlen(chat_error_last()->message) > 0);
    }
    assert_int_equal(chat_push_webhook_new(NULL, "http://h/"), CHAT_EINVAL);
    void *wh = NULL;
    assert_int_equal(chat_push_webhook_new(&wh, NULL), CHAT_EINVAL);
    assert_int_equal(chat_push_webhook_new(&wh, "https://x/"), CHAT_EINVAL);
    assert_non_null(strstr(chat_error_last()->message, "https"));

    static const char *const good[] = {"http://localhost:8080", "http://[::1]:9/x?y=1#frag",
                                       "HTTP://push-gw.internal/v1/push"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(chat_push_webhook_new(&wh, good[i]), CHAT_OK);
        chat__push_webhook_stats s;
        assert_int_equal(chat_push_webhook_ops()->ctl(wh, 999, NULL), CHAT_ENOTSUP);
        assert_int_equal(chat_push_webhook_ops()->ctl(wh, CHAT__PUSH_CTL_STATS, NULL),
                         CHAT_EINVAL);
        assert_int_equal(chat_push_webhook_ops()->ctl(wh, CHAT__PUSH_CTL_STATS, &s), CHAT_OK);
        assert_int_equal(chat_push_webhook_ops()->ctl(wh, CHAT__PUSH_CTL_FLUSH, NULL), CHAT_OK);
        chat_push_webhook_ops()->destroy(wh);
    }
}

struct cb_rec {
    int calls;
    int destroys;
    int ret;
    uint64_t last_seq;
    char last_user[16];
};

static int rec_cb(const chat_push_event *ev, void *ud)
{
    struct cb_rec *r = ud;
    r->calls++;
    r->last_seq = ev->seq;
    snprintf(r->last_user, sizeof(r->last_user), "%s", ev->user);
    return r->ret;
}

static void rec_destroy(void *ud)
{
    ((struct cb_rec *)ud)->destroys++;
}

static void test_push_callback_delivers_and_destroys_once(void **state)
{
    struct cb_rec r = {0};
    void *st = NULL;
    const chat_push_ops *ops = chat_push_callback_ops();
    assert_int_equal(ops->version, CHAT_PUSH_OPS_VERSION);
    assert_int_equal(chat_push_callback_new(&st, rec_cb, &r, rec_destroy), CHAT_OK);
    chat_push_event ev = event(7, "hey");
    assert_int_equal(ops->notify(st, &ev), CHAT_OK);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.last_seq, 7);
    assert_string_equal(r.last_user, "bob");
    r.ret = 3;
    assert_int_equal(ops->notify(st, &ev), CHAT_EUSER);
    assert_int_equal(ops->ctl(st, CHAT__PUSH_CTL_STATS, NULL), CHAT_ENOTSUP);
    assert_int_equal(r.destroys, 0);
    ops->destroy(st);
    assert_int_equal(r.destroys, 1);

    /* Refused: no notifier exists, so destroy is not ours to call. */
    st = NULL;
    assert_int_equal(chat_push_callback_new(&st, NULL, &r, rec_destroy), CHAT_EINVAL);
    assert_null(st);
    assert_int_equal(r.destroys, 1);

    assert_int_equal(chat_push_callback_new(&st, rec_cb, NULL, NULL), CHAT_OK);
    ops->destroy(st); /* no destroy callback: fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_webhook_posts_each_event_as_json),
        cmocka_unit_test(test_push_webhook_counts_non_2xx_as_failed),
        cmocka_unit_test(test_push_webhook_unreachable_port_fails_without_hanging),
        cmocka_unit_test(test_push_webhook_full_queue_drops_and_destroy_is_prompt),
        cmocka_unit_test(test_push_webhook_rejects_bad_urls),
        cmocka_unit_test(test_push_callback_delivers_and_destroys_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
