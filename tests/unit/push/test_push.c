/* Push: the persistent queue (coalescing, dedupe, bounds, restart), JWT signing checked by
 * OpenSSL's verifier, the webhook signature against OpenSSL's HMAC, and the push service with a
 * webhook against a tiny HTTP listener running in a thread of the test on 127.0.0.1 (retries,
 * Retry-After, failures, a restart with notifications queued). APNs and FCM are driven end to
 * end against their fakes in tests/wire/test_push_native.py. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <pthread.h>
#include <sodium.h>
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
#include "core/alloc.h"
#include "push/jwt.h"
#include "push/provider.h"
#include "push/queue.h"

static char tmp_dir[64];

static int setup_dir(void **state)
{
    (void)state;
    strcpy(tmp_dir, "/tmp/chat-push-XXXXXX");
    assert_non_null(mkdtemp(tmp_dir));
    return 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the queue ---- */

static const chat__pq_limits limits = {.max = 100, .coalesce_ms = 1000, .dedupe_ms = 60000};

static chat__pq *queue_at(const char *path, const chat__pq_limits *lim)
{
    chat__pq *q = NULL;
    assert_int_equal(chat__pq_open(&q, path, lim), CHAT_OK);
    return q;
}

static size_t take(chat__pq *q, int64_t until, chat__pq_item *items, size_t max)
{
    size_t n = 99;
    assert_int_equal(chat__pq_take(q, until, items, max, &n), CHAT_OK);
    return n;
}

static void test_push_queue_coalesces_a_burst(void **state)
{
    (void)state;
    chat__pq *q = queue_at(NULL, &limits);
    chat__pq_item it[4];
    assert_int_equal(chat__pq_add(q, "tok\n7", "tok", "{\"seq\":1}", 1, 0), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_add(q, "tok\n7", "tok", "{\"seq\":2}", 2, 5), CHAT__PQ_COALESCED);
    assert_int_equal(chat__pq_add(q, "tok\n8", "tok", "{\"seq\":9}", 9, 5), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_count(q), 2);
    assert_int_equal(take(q, 5, it, 4), 2);
    assert_string_equal(it[0].key, "tok\n7"); /* the latest event, with the burst counted */
    assert_string_equal(it[0].ev, "{\"seq\":2}");
    assert_int_equal(it[0].seq, 2);
    assert_int_equal(it[0].count, 2);
    assert_int_equal(it[0].created_ms, 0);
    assert_string_equal(it[1].key, "tok\n8");
    assert_int_equal(chat__pq_done(q, &it[0], 10), CHAT_OK);
    /* The next push of that key waits out the coalescing window after the last one. */
    assert_int_equal(chat__pq_add(q, "tok\n7", "tok", "{\"seq\":3}", 3, 20), CHAT__PQ_QUEUED);
    chat__pq_item more[4];
    assert_int_equal(take(q, 20, more, 4), 1); /* only tok\n8, not yet pushed */
    assert_string_equal(more[0].key, "tok\n8");
    chat__pq_item_clear(&more[0]);
    assert_int_equal(chat__pq_next_due(q), 5);
    assert_int_equal(chat__pq_done(q, &it[1], 10), CHAT_OK);
    assert_int_equal(chat__pq_next_due(q), 1010);
    assert_int_equal(take(q, 1009, more, 4), 0);
    assert_int_equal(take(q, 1010, more, 4), 1);
    assert_int_equal(more[0].seq, 3);
    assert_int_equal(more[0].count, 1);
    chat__pq_item_clear(&more[0]);
    for (int i = 0; i < 2; i++)
        chat__pq_item_clear(&it[i]);
    chat__pq_close(q);
}

static void test_push_queue_dedupes_within_the_window(void **state)
{
    (void)state;
    chat__pq *q = queue_at(NULL, &limits);
    chat__pq_item it[2];
    assert_int_equal(chat__pq_add(q, "u\n1", "u", "{}", 5, 0), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_add(q, "u\n1", "u", "{}", 5, 0), CHAT__PQ_DEDUPED); /* waiting */
    assert_int_equal(take(q, 0, it, 2), 1);
    assert_int_equal(chat__pq_done(q, &it[0], 100), CHAT_OK);
    chat__pq_item_clear(&it[0]);
    /* Pushed: the same seq (or an older one) again is a duplicate, within the window. */
    assert_int_equal(chat__pq_add(q, "u\n1", "u", "{}", 5, 200), CHAT__PQ_DEDUPED);
    assert_int_equal(chat__pq_add(q, "u\n1", "u", "{}", 4, 200), CHAT__PQ_DEDUPED);
    assert_int_equal(chat__pq_count(q), 0);
    assert_int_equal(chat__pq_add(q, "u\n1", "u", "{}", 5, 100 + 60000), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_prune(q, 100 + 60000), CHAT_OK);
    chat__pq_close(q);
}

static void test_push_queue_is_bounded_and_drops_by_target(void **state)
{
    (void)state;
    chat__pq_limits two = limits;
    two.max = 2;
    chat__pq *q = queue_at(NULL, &two);
    assert_int_equal(chat__pq_add(q, "t\n1", "t", "{}", 1, 0), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_add(q, "t\n2", "t", "{}", 1, 0), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_add(q, "v\n1", "v", "{}", 1, 0), CHAT__PQ_FULL);
    assert_int_equal(chat__pq_add(q, "t\n2", "t", "{}", 2, 0), CHAT__PQ_COALESCED); /* room */
    int64_t n = -1;
    assert_int_equal(chat__pq_drop_target(q, "t", &n), CHAT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(chat__pq_count(q), 0);
    assert_int_equal(chat__pq_next_due(q), INT64_MAX);
    assert_int_equal(chat__pq_add(q, "v\n1", "v", "{}", 1, 0), CHAT__PQ_QUEUED);
    chat__pq_close(q);
}

static void test_push_queue_survives_a_reopen(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/q.db", tmp_dir);
    chat__pq *q = queue_at(path, &limits);
    assert_int_equal(chat__pq_begin(q), CHAT_OK);
    assert_int_equal(chat__pq_add(q, "a\n1", "a", "{\"x\":1}", 1, 50), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_add(q, "b\n1", "b", "{\"x\":2}", 7, 60), CHAT__PQ_QUEUED);
    assert_int_equal(chat__pq_commit(q), CHAT_OK);
    chat__pq_item it[2];
    assert_int_equal(take(q, 60, it, 2), 2);
    assert_int_equal(chat__pq_retry(q, &it[0], 5000), CHAT_OK);
    chat__pq_item_clear(&it[0]);
    chat__pq_item_clear(&it[1]);
    chat__pq_close(q);

    q = queue_at(path, &limits);
    assert_int_equal(chat__pq_count(q), 2);
    assert_int_equal(chat__pq_next_due(q), 60);
    assert_int_equal(take(q, 4999, it, 2), 1);
    assert_string_equal(it[0].ev, "{\"x\":2}");
    assert_int_equal(it[0].seq, 7);
    chat__pq_item_clear(&it[0]);
    assert_int_equal(take(q, 5000, it, 2), 2);
    assert_string_equal(it[0].target, "b");
    assert_string_equal(it[1].target, "a");
    assert_int_equal(it[1].attempts, 1);
    assert_int_equal(it[1].created_ms, 50);
    chat__pq_item_clear(&it[0]);
    chat__pq_item_clear(&it[1]);
    chat__pq_close(q);
}

/* ---- keys and JWTs ---- */

static void write_key(const char *path, EVP_PKEY *k)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static unsigned char *b64url_decode(const char *s, size_t len, size_t *out_len)
{
    unsigned char *buf = malloc(len + 4);
    assert_non_null(buf);
    assert_int_equal(sodium_base642bin(buf, len + 4, s, len, NULL, out_len, NULL,
                                       sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                     0);
    buf[*out_len] = '\0';
    return buf;
}

/* Verify token's signature with OpenSSL; an ES256 one is converted back from r||s to DER. */
static int verify_jwt(const char *token, EVP_PKEY *key, int es256)
{
    const char *dot2 = strrchr(token, '.');
    assert_non_null(dot2);
    size_t sig_len;
    unsigned char *sig = b64url_decode(dot2 + 1, strlen(dot2 + 1), &sig_len);
    unsigned char der[80], *der_p = der;
    const unsigned char *check = sig;
    size_t check_len = sig_len;
    if (es256) {
        assert_int_equal(sig_len, 64);
        ECDSA_SIG *es = ECDSA_SIG_new();
        assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)),
                         1);
        check_len = (size_t)i2d_ECDSA_SIG(es, &der_p);
        check = der;
        ECDSA_SIG_free(es);
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, check, check_len, (const unsigned char *)token,
                              (size_t)(dot2 - token)) == 1;
    EVP_MD_CTX_free(md);
    free(sig);
    return ok;
}

static void check_part(const char *token, int index, const char *expect)
{
    const char *p = token;
    for (int i = 0; i < index; i++)
        p = strchr(p, '.') + 1;
    size_t len = strcspn(p, "."), n;
    char *text = (char *)b64url_decode(p, len, &n);
    assert_string_equal(text, expect);
    free(text);
}

static void test_push_jwt_es256_verifies_with_the_public_key(void **state)
{
    (void)state;
    EVP_PKEY *gen = EVP_EC_gen("P-256");
    assert_non_null(gen);
    char path[128];
    snprintf(path, sizeof path, "%s/AuthKey.p8", tmp_dir);
    write_key(path, gen);
    EVP_PKEY *k = NULL;
    assert_int_equal(chat__key_from_file(&k, path), CHAT_OK);
    assert_int_equal(chat__key_kind(k), 1);
    for (int i = 0; i < 20; i++) { /* short r or s are padded: several signatures */
        char *jwt = NULL;
        assert_int_equal(chat__jwt_sign(&jwt, k, "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}",
                                        "{\"iss\":\"DEF123GHIJ\",\"iat\":1700000000}"),
                         CHAT_OK);
        check_part(jwt, 0, "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}");
        check_part(jwt, 1, "{\"iss\":\"DEF123GHIJ\",\"iat\":1700000000}");
        assert_null(strchr(jwt, '='));
        assert_true(verify_jwt(jwt, gen, 1));
        char *c = jwt + strlen(jwt) - 10; /* a changed signature no longer verifies */
        *c = *c == 'A' ? 'B' : 'A';
        assert_false(verify_jwt(jwt, gen, 1));
        chat__free(jwt);
    }
    EVP_PKEY_free(k);
    EVP_PKEY_free(gen);
}

static void test_push_jwt_rs256_verifies_with_the_public_key(void **state)
{
    (void)state;
    EVP_PKEY *gen = EVP_RSA_gen(2048);
    assert_non_null(gen);
    char path[128];
    snprintf(path, sizeof path, "%s/rsa.pem", tmp_dir);
    write_key(path, gen);
    EVP_PKEY *k = NULL;
    assert_int_equal(chat__key_from_file(&k, path), CHAT_OK);
    assert_int_equal(chat__key_kind(k), 2);
    char *jwt = NULL;
    assert_int_equal(chat__jwt_sign(&jwt, k, "{\"alg\":\"RS256\"}", "{\"aud\":\"x\"}"), CHAT_OK);
    assert_true(verify_jwt(jwt, gen, 0));
    chat__free(jwt);
    EVP_PKEY_free(k);
    EVP_PKEY_free(gen);
}

static void test_push_keys_refused_clearly(void **state)
{
    (void)state;
    EVP_PKEY *k = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/none.p8", tmp_dir);
    assert_int_equal(chat__key_from_file(&k, path), CHAT_EIO);
    FILE *f = fopen(path, "w");
    fputs("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n", f);
    fclose(f);
    assert_int_equal(chat__key_from_file(&k, path), CHAT_EINVAL);
    assert_non_null(strstr(chat_error_last()->message, path));
    EVP_PKEY *p384 = EVP_EC_gen("P-384");
    write_key(path, p384);
    assert_int_equal(chat__key_from_file(&k, path), CHAT_OK);
    assert_int_equal(chat__key_kind(k), 0); /* not ES256's curve */
    char *jwt = NULL;
    assert_int_equal(chat__jwt_sign(&jwt, k, "{}", "{}"), CHAT_EINVAL);
    EVP_PKEY_free(k);
    EVP_PKEY_free(p384);
}

static void test_push_webhook_signature_is_hmac_sha256(void **state)
{
    (void)state;
    const unsigned char secret[] = "0123456789abcdef-secret";
    const char *body = "{\"user\":\"bob\"}";
    char mac[65];
    assert_int_equal(chat__push_webhook_sign(mac, secret, sizeof secret - 1, 1700000000, body,
                                             strlen(body)),
                     CHAT_OK);
    /* The receiver's computation, with another library. */
    const char *msg = "1700000000.{\"user\":\"bob\"}";
    unsigned char want[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret, (int)(sizeof secret - 1), (const unsigned char *)msg, strlen(msg),
         want, &len);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, want, len);
    assert_string_equal(mac, hex);
}

/* ---- an HTTP listener ---- */

#define MAX_REQS 64

struct listener {
    int fd, port;
    atomic_int stop;
    pthread_t thread;
    pthread_mutex_t mu;
    const int *statuses; /* answered in turn, the last one repeated */
    int n_statuses;
    const char *extra;   /* extra header lines for non-2xx answers */
    char *heads[MAX_REQS], *bodies[MAX_REQS];
    int64_t at_ms[MAX_REQS];
    int n;
};

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* One request (headers, then Content-Length bytes), answered with the next status and
 * "Connection: close". */
static void serve_one(struct listener *l, int c)
{
    char buf[16384];
    size_t have = 0;
    char *end = NULL;
    while (!end && have < sizeof buf - 1) {
        ssize_t r = recv(c, buf + have, sizeof buf - 1 - have, 0);
        if (r <= 0)
            return;
        have += (size_t)r;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return;
    size_t head_len = (size_t)(end - buf) + 4, body_len = 0;
    for (char *h = buf; h < end; h = strstr(h, "\r\n") + 2)
        if (strncasecmp(h, "Content-Length:", 15) == 0)
            body_len = strtoul(h + 15, NULL, 10);
    while (have < head_len + body_len && have < sizeof buf - 1) {
        ssize_t r = recv(c, buf + have, sizeof buf - 1 - have, 0);
        if (r <= 0)
            return;
        have += (size_t)r;
    }
    pthread_mutex_lock(&l->mu);
    int i = l->n;
    int status = l->statuses[i < l->n_statuses ? i : l->n_statuses - 1];
    if (l->n < MAX_REQS) {
        l->heads[l->n] = strndup(buf, head_len);
        l->bodies[l->n] = strndup(buf + head_len, body_len);
        l->at_ms[l->n] = mono_ms();
        l->n++;
    }
    pthread_mutex_unlock(&l->mu);
    char reply[256];
    int n = snprintf(reply, sizeof reply,
                     "HTTP/1.1 %d X\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                     status / 100 != 2 && l->extra ? l->extra : "");
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

static struct listener *listener_start(const int *statuses, int n, const char *extra)
{
    struct listener *l = calloc(1, sizeof *l);
    assert_non_null(l);
    l->statuses = statuses;
    l->n_statuses = n;
    l->extra = extra;
    l->fd = listen_any(&l->port);
    pthread_mutex_init(&l->mu, NULL);
    assert_int_equal(pthread_create(&l->thread, NULL, listener_main, l), 0);
    return l;
}

static int listener_count(struct listener *l)
{
    pthread_mutex_lock(&l->mu);
    int n = l->n;
    pthread_mutex_unlock(&l->mu);
    return n;
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

/* ---- the service with a webhook ---- */

typedef struct sink_rec {
    pthread_mutex_t mu;
    char log[8192];
    int invalid;
} sink_rec;

static void rec_log(int level, const char *msg, void *ud)
{
    sink_rec *r = ud;
    (void)level;
    pthread_mutex_lock(&r->mu);
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s\n", msg);
    pthread_mutex_unlock(&r->mu);
}

static void rec_invalid(int platform, const char *token, void *ud)
{
    (void)platform, (void)token;
    ((sink_rec *)ud)->invalid++;
}

static sink_rec sink_state = {.mu = PTHREAD_MUTEX_INITIALIZER};

static const unsigned char secret[] = "test-secret-of-32-bytes-or-so!!";

/* A service with a webhook at port, and the given limits, attached (its threads run). */
static void *service_at(int port, const char *queue_dir, int flush_ms)
{
    chat_push_config *c = NULL;
    assert_int_equal(chat_push_config_new(&c), CHAT_OK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    assert_int_equal(chat_push_config_set_webhook(c, url, secret, sizeof secret - 1), CHAT_OK);
    assert_int_equal(chat_push_config_set_limit(c, CHAT_PUSH_LIMIT_BACKOFF_MS, 20), CHAT_OK);
    assert_int_equal(chat_push_config_set_limit(c, CHAT_PUSH_LIMIT_BACKOFF_MAX_MS, 100), CHAT_OK);
    assert_int_equal(chat_push_config_set_limit(c, CHAT_PUSH_LIMIT_FLUSH_MS, flush_ms), CHAT_OK);
    assert_int_equal(chat_push_config_set_limit(c, CHAT_PUSH_LIMIT_TIMEOUT_MS, 2000), CHAT_OK);
    if (queue_dir)
        assert_int_equal(chat_push_config_set_queue_dir(c, queue_dir), CHAT_OK);
    void *st = NULL;
    assert_int_equal(chat_push_service_new(&st, c), CHAT_OK);
    chat_push_config_free(c);
    chat_push_sink sink = {rec_invalid, rec_log, &sink_state};
    assert_int_equal(chat_push_service_ops()->attach(st, &sink), CHAT_OK);
    return st;
}

static chat_push_event event(int64_t conv, uint64_t seq, const char *preview)
{
    chat_push_event ev = {.user = "bob", .conv = conv, .conv_kind = CHAT_CONV_DIRECT,
                          .title = "", .seq = seq, .sender = "alice",
                          .msg_kind = CHAT_MSG_TEXT, .preview = preview, .unread = seq,
                          .ts_ms = 1700000000123};
    return ev;
}

/* Queue ev and flush; the flush answers flush_rc. */
static void notify_and_flush(void *st, chat_push_event ev, int flush_rc)
{
    assert_int_equal(chat_push_service_ops()->notify(st, &ev), CHAT_OK);
    assert_int_equal(chat_push_service_ops()->ctl(st, CHAT_PUSH_CTL_FLUSH, NULL), flush_rc);
}

/* One counter of the service's stats JSON for the webhook. */
static long long stat(void *st, const char *name)
{
    char *json = NULL;
    assert_int_equal(chat_push_service_stats(&json, st), CHAT_OK);
    cJSON *o = cJSON_Parse(json);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(o, "webhook"), name);
    assert_true(cJSON_IsNumber(v));
    long long n = (long long)v->valuedouble;
    cJSON_Delete(o);
    chat_string_free(json);
    return n;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* The signature header of head verifies over body with the test's secret. */
static void assert_signed(const char *head, const char *body)
{
    const char *h = strcasestr(head, "X-Libchat-Signature: t=");
    assert_non_null(h);
    long long t = strtoll(h + 23, NULL, 10);
    assert_true(llabs(t - (long long)time(NULL)) < 300);
    const char *v1 = strstr(h, ",v1=");
    assert_non_null(v1);
    char msg[4096];
    snprintf(msg, sizeof msg, "%lld.%s", t, body);
    unsigned char mac[32];
    unsigned int len = 0;
    HMAC(EVP_sha256(), secret, (int)(sizeof secret - 1), (const unsigned char *)msg, strlen(msg),
         mac, &len);
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, mac, len);
    assert_int_equal(strncmp(v1 + 4, hex, 64), 0);
}

static void test_push_webhook_posts_signed_json(void **state)
{
    (void)state;
    static const int ok[] = {200};
    struct listener *l = listener_start(ok, 1, NULL);
    void *st = service_at(l->port, NULL, 5000);
    const chat_push_ops *ops = chat_push_service_ops();
    chat_push_event e1 = event(1, 1, "hi \"bob\"");
    chat_push_event e2 = event(2, 1, NULL);
    e2.conv_kind = CHAT_CONV_GROUP;
    e2.title = "team";
    e2.msg_kind = CHAT_MSG_MEDIA;
    e2.seq = (1ULL << 60) + 1; /* beyond a double's exact range: must not be rounded */
    assert_int_equal(ops->notify(st, &e1), CHAT_OK);
    assert_int_equal(ops->notify(st, &e2), CHAT_OK);
    assert_int_equal(ops->ctl(st, CHAT_PUSH_CTL_FLUSH, NULL), CHAT_OK);
    assert_int_equal(stat(st, "sent"), 2);
    assert_int_equal(stat(st, "queued"), 2);
    assert_int_equal(stat(st, "pending"), 0);
    pthread_mutex_lock(&l->mu);
    assert_int_equal(l->n, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(strncmp(l->heads[i], "POST /hook HTTP/1.1\r\n", 21) == 0);
        assert_non_null(strcasestr(l->heads[i], "Content-Type: application/json\r\n"));
        assert_signed(l->heads[i], l->bodies[i]);
        cJSON *j = cJSON_Parse(l->bodies[i]);
        assert_non_null(j);
        assert_string_equal(json_str(j, "user"), "bob");
        assert_string_equal(json_str(j, "sender"), "alice");
        assert_int_equal(cJSON_GetObjectItem(j, "count")->valueint, 1);
        if (cJSON_GetObjectItem(j, "conv")->valueint == 1) {
            assert_string_equal(json_str(j, "conv_kind"), "direct");
            assert_string_equal(json_str(j, "kind"), "text");
            assert_string_equal(json_str(j, "preview"), "hi \"bob\"");
        } else {
            assert_string_equal(json_str(j, "conv_kind"), "group");
            assert_string_equal(json_str(j, "title"), "team");
            assert_string_equal(json_str(j, "kind"), "media");
            assert_null(cJSON_GetObjectItem(j, "preview"));
            assert_non_null(strstr(l->bodies[i], "\"seq\":1152921504606846977"));
        }
        cJSON_Delete(j);
    }
    pthread_mutex_unlock(&l->mu);
    ops->destroy(st);
    listener_stop(l);
}

/* A burst in one conversation while the gateway is away becomes one notification with the
 * latest seq and unread count; it arrives once the gateway answers, exactly once. */
static void test_push_webhook_retries_and_coalesces(void **state)
{
    (void)state;
    static const int flaky[] = {503, 503, 200};
    struct listener *l = listener_start(flaky, 3, NULL);
    void *st = service_at(l->port, NULL, 8000);
    const chat_push_ops *ops = chat_push_service_ops();
    for (uint64_t seq = 1; seq <= 5; seq++) {
        chat_push_event ev = event(7, seq, NULL);
        assert_int_equal(ops->notify(st, &ev), CHAT_OK);
    }
    assert_int_equal(ops->ctl(st, CHAT_PUSH_CTL_FLUSH, NULL), CHAT_OK);
    assert_int_equal(stat(st, "sent"), 1);
    assert_true(stat(st, "retried") >= 2);
    assert_int_equal(stat(st, "failed"), 0);
    pthread_mutex_lock(&l->mu);
    int delivered = 0;
    for (int i = 0; i < l->n; i++) {
        cJSON *j = cJSON_Parse(l->bodies[i]);
        if (i == l->n - 1) {
            assert_int_equal(cJSON_GetObjectItem(j, "seq")->valueint, 5);
            assert_int_equal(cJSON_GetObjectItem(j, "unread")->valueint, 5);
            delivered++;
        }
        cJSON_Delete(j);
    }
    assert_int_equal(delivered, 1);
    assert_int_equal(l->n, 3); /* the two refusals and the delivery */
    pthread_mutex_unlock(&l->mu);
    /* Delivered: the same seq again is a duplicate. */
    notify_and_flush(st, event(7, 5, NULL), CHAT_OK);
    assert_int_equal(stat(st, "deduped"), 1);
    assert_int_equal(listener_count(l), 3);
    ops->destroy(st);
    listener_stop(l);
}

static void test_push_webhook_honours_retry_after(void **state)
{
    (void)state;
    static const int busy[] = {429, 200};
    struct listener *l = listener_start(busy, 2, "Retry-After: 1\r\n");
    void *st = service_at(l->port, NULL, 8000);
    notify_and_flush(st, event(3, 1, NULL), CHAT_OK);
    assert_int_equal(stat(st, "sent"), 1);
    pthread_mutex_lock(&l->mu);
    assert_int_equal(l->n, 2);
    /* Our backoff here is 20-100 ms: only the gateway's Retry-After makes a second's gap. */
    assert_true(l->at_ms[1] - l->at_ms[0] >= 900);
    pthread_mutex_unlock(&l->mu);
    chat_push_service_ops()->destroy(st);
    listener_stop(l);
}

static void test_push_webhook_refusal_is_not_retried(void **state)
{
    (void)state;
    static const int bad[] = {400};
    struct listener *l = listener_start(bad, 1, NULL);
    void *st = service_at(l->port, NULL, 5000);
    notify_and_flush(st, event(3, 1, NULL), CHAT_OK);
    assert_int_equal(stat(st, "failed"), 1);
    assert_int_equal(stat(st, "retried"), 0);
    assert_int_equal(listener_count(l), 1);
    chat_push_service_ops()->destroy(st);
    listener_stop(l);
}

/* The gateway is down at stop: the flush gives up after its time, and the next service on the
 * same queue directory delivers everything. */
static void test_push_queue_outlives_a_restart(void **state)
{
    (void)state;
    int port;
    close(listen_any(&port)); /* nobody listens there now */
    void *st = service_at(port, tmp_dir, 300);
    for (int64_t conv = 1; conv <= 2; conv++) {
        chat_push_event ev = event(conv, 1, NULL);
        assert_int_equal(chat_push_service_ops()->notify(st, &ev), CHAT_OK);
    }
    notify_and_flush(st, event(3, 1, NULL), CHAT_ETIMEDOUT);
    assert_int_equal(stat(st, "sent"), 0);
    assert_int_equal(stat(st, "pending"), 3);
    int64_t t0 = mono_ms();
    chat_push_service_ops()->destroy(st);
    assert_true(mono_ms() - t0 < 3000); /* a dead gateway does not hold the stop */

    static const int ok[] = {200};
    struct listener *l = listener_start(ok, 1, NULL);
    st = service_at(l->port, tmp_dir, 5000);
    assert_int_equal(chat_push_service_ops()->ctl(st, CHAT_PUSH_CTL_FLUSH, NULL), CHAT_OK);
    assert_int_equal(stat(st, "sent"), 3);
    assert_int_equal(listener_count(l), 3);
    chat_push_service_ops()->destroy(st);
    listener_stop(l);
}

/* A gateway that accepts connections and never answers: the inbox is bounded, and destroy
 * cuts the stuck requests short. */
static void test_push_full_inbox_drops_and_destroy_is_prompt(void **state)
{
    (void)state;
    int port;
    int fd = listen_any(&port); /* never accept()ed: the kernel completes handshakes anyway */
    chat_push_config *c = NULL;
    assert_int_equal(chat_push_config_new(&c), CHAT_OK);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hook", port);
    assert_int_equal(chat_push_config_set_webhook(c, url, NULL, 0), CHAT_OK);
    assert_int_equal(chat_push_config_set_limit(c, CHAT_PUSH_LIMIT_QUEUE, 10), CHAT_OK);
    void *st = NULL;
    assert_int_equal(chat_push_service_new(&st, c), CHAT_OK);
    chat_push_config_free(c);
    const chat_push_ops *ops = chat_push_service_ops();
    chat_push_sink sink = {rec_invalid, rec_log, &sink_state};
    assert_int_equal(ops->attach(st, &sink), CHAT_OK);
    int again = 0;
    for (int64_t conv = 1; conv <= 100; conv++) {
        chat_push_event ev = event(conv, 1, NULL);
        int rc = ops->notify(st, &ev);
        assert_true(rc == CHAT_OK || rc == CHAT_EAGAIN);
        again += rc == CHAT_EAGAIN;
    }
    /* Every notification is waiting (in the queue, or in the inbox while the thread is stuck
     * in a request), or was dropped, or failed, and counted: none lost unaccounted. */
    int64_t t0 = mono_ms();
#define ACCOUNTED() (stat(st, "pending") + stat(st, "dropped") + stat(st, "failed"))
    while (ACCOUNTED() != 100 && mono_ms() - t0 < 5000)
        usleep(10000);
    if (ACCOUNTED() != 100)
        fail_msg("pending %lld, dropped %lld, failed %lld, sent %lld, retried %lld, coalesced %lld",
                 stat(st, "pending"), stat(st, "dropped"), stat(st, "failed"), stat(st, "sent"),
                 stat(st, "retried"), stat(st, "coalesced"));
#undef ACCOUNTED
    assert_true(stat(st, "pending") <= 20); /* the queue's bound, and the inbox's */
    assert_true(stat(st, "dropped") >= again);
    t0 = mono_ms();
    ops->destroy(st);
    assert_true(mono_ms() - t0 < 2000);
    close(fd);
}

static void test_push_config_refuses_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "ftp://example.com/", "garbage", "", "http://", "http:///path", "http://:80/",
        "http://user@host/", "http://ho st/", "http://host/a b", "http://h/\r\nX: y",
    };
    chat_push_config *c = NULL;
    assert_int_equal(chat_push_config_new(&c), CHAT_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(chat_push_config_set_webhook(c, bad[i], NULL, 0), CHAT_EINVAL);
        void *st = (void *)&bad;
        assert_int_equal(chat_push_webhook_new(&st, bad[i]), CHAT_EINVAL);
        assert_ptr_equal(st, (void *)&bad); /* untouched */
    }
    assert_int_equal(chat_push_config_set_webhook(c, "https://gw/x", "short", 5), CHAT_EINVAL);
    void *st = NULL;
    assert_int_equal(chat_push_service_new(&st, c), CHAT_EINVAL); /* nothing configured */
    assert_int_equal(chat_push_config_set_limit(c, CHAT_PUSH_LIMIT_BATCH, 0), CHAT_EINVAL);
    assert_int_equal(chat_push_config_set_limit(c, 99, 1), CHAT_EINVAL);
    assert_int_equal(chat_push_limit_by_name("coalesce_ms"), CHAT_PUSH_LIMIT_COALESCE_MS);
    assert_int_equal(chat_push_limit_by_name("nope"), CHAT_EINVAL);

    char path[128];
    snprintf(path, sizeof path, "%s/missing.p8", tmp_dir);
    assert_int_equal(chat_push_config_set_apns(c, path, "ABC123DEFG", "DEF123GHIJ", "a.b"),
                     CHAT_OK);
    assert_int_equal(chat_push_service_new(&st, c), CHAT_EIO);
    assert_non_null(strstr(chat_error_last()->message, path));
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    write_key(path, rsa);
    assert_int_equal(chat_push_service_new(&st, c), CHAT_EINVAL); /* not an EC key */
    EVP_PKEY_free(rsa);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    write_key(path, ec);
    EVP_PKEY_free(ec);
    assert_int_equal(chat_push_config_set_apns(c, path, "abc", "DEF123GHIJ", NULL), CHAT_OK);
    assert_int_equal(chat_push_service_new(&st, c), CHAT_EINVAL); /* a key id of Apple's form */
    assert_int_equal(chat_push_config_set_apns(c, path, "ABC123DEFG", "DEF123GHIJ", NULL),
                     CHAT_OK);
    assert_int_equal(chat_push_service_new(&st, c), CHAT_OK);
    chat_push_service_ops()->destroy(st); /* never attached: no thread ran */

    snprintf(path, sizeof path, "%s/account.json", tmp_dir);
    FILE *f = fopen(path, "w");
    fputs("{\"type\":\"service_account\"}", f);
    fclose(f);
    assert_int_equal(chat_push_config_set_fcm(c, path), CHAT_OK);
    assert_int_equal(chat_push_service_new(&st, c), CHAT_EINVAL);
    assert_non_null(strstr(chat_error_last()->message, "private_key"));
    chat_push_config_free(c);
}

/* ---- the callback notifier ---- */

struct cb_rec {
    int calls, destroys, ret;
    uint64_t last_seq;
    char last_user[16];
};

static int rec_cb(const chat_push_event *ev, void *ud)
{
    struct cb_rec *r = ud;
    r->calls++;
    r->last_seq = ev->seq;
    snprintf(r->last_user, sizeof r->last_user, "%s", ev->user);
    return r->ret;
}

static void rec_destroy(void *ud)
{
    ((struct cb_rec *)ud)->destroys++;
}

static void test_push_callback_delivers_and_destroys_once(void **state)
{
    (void)state;
    struct cb_rec r = {0};
    void *st = NULL;
    const chat_push_ops *ops = chat_push_callback_ops();
    assert_int_equal(ops->version, CHAT_PUSH_OPS_VERSION);
    assert_int_equal(chat_push_callback_new(&st, rec_cb, &r, rec_destroy), CHAT_OK);
    chat_push_event ev = event(42, 7, "hey");
    assert_int_equal(ops->notify(st, &ev), CHAT_OK);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.last_seq, 7);
    assert_string_equal(r.last_user, "bob");
    r.ret = 3;
    assert_int_equal(ops->notify(st, &ev), CHAT_EUSER);
    assert_int_equal(ops->ctl(st, CHAT_PUSH_CTL_FLUSH, NULL), CHAT_ENOTSUP);
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
        cmocka_unit_test(test_push_queue_coalesces_a_burst),
        cmocka_unit_test(test_push_queue_dedupes_within_the_window),
        cmocka_unit_test(test_push_queue_is_bounded_and_drops_by_target),
        cmocka_unit_test_setup_teardown(test_push_queue_survives_a_reopen, setup_dir,
                                        teardown_dir),
        cmocka_unit_test_setup_teardown(test_push_jwt_es256_verifies_with_the_public_key,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_push_jwt_rs256_verifies_with_the_public_key,
                                        setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_push_keys_refused_clearly, setup_dir, teardown_dir),
        cmocka_unit_test(test_push_webhook_signature_is_hmac_sha256),
        cmocka_unit_test(test_push_webhook_posts_signed_json),
        cmocka_unit_test(test_push_webhook_retries_and_coalesces),
        cmocka_unit_test(test_push_webhook_honours_retry_after),
        cmocka_unit_test(test_push_webhook_refusal_is_not_retried),
        cmocka_unit_test_setup_teardown(test_push_queue_outlives_a_restart, setup_dir,
                                        teardown_dir),
        cmocka_unit_test(test_push_full_inbox_drops_and_destroy_is_prompt),
        cmocka_unit_test_setup_teardown(test_push_config_refuses_bad_input, setup_dir,
                                        teardown_dir),
        cmocka_unit_test(test_push_callback_delivers_and_destroys_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
