/* The client engine over wss://: a real server with TLS (a certificate from a throwaway test
 * PKI made with the openssl command, tests/tls/make_pki.sh) and real clients, through the
 * public API only. The client trusts the test CA through chat_client_config_set_ca_file; a
 * server whose certificate another CA signed, or a CA the client does not trust, is refused
 * with a clear event, and the client never authenticates there. Media transfers (upload with
 * resume, signed download with Range resume) go over https with the same verification. */
#define _GNU_SOURCE
#include <chat/chat.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 8000

static char pki[256];

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The name "localhost" resolves to 127.0.0.1 here. Not on every machine: a bare container
 * may have no /etc/hosts. The tests of a host name in the certificate need it; they say so and
 * skip, and the others use 127.0.0.1. */
static int localhost_resolves(void)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int ok = getaddrinfo("localhost", NULL, &hints, &res) == 0;
    if (res)
        freeaddrinfo(res);
    return ok;
}

static const char *name_or_ip(void)
{
    if (localhost_resolves())
        return "localhost";
    printf("note: the name localhost does not resolve on this machine (no /etc/hosts?); "
           "127.0.0.1 is used instead\n");
    return "127.0.0.1";
}

static int make_pki(void **state)
{
    (void)state;
    const char *script = getenv("MAKE_PKI");
    assert_non_null(script);
    snprintf(pki, sizeof pki, "/tmp/libchat-tls-XXXXXX");
    assert_non_null(mkdtemp(pki));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s' '%s'", script, pki);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int remove_pki(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *pki_file(const char *name)
{
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 512, "%s/%s", pki, name);
    return p;
}

/* A server on 127.0.0.1:0 serving TLS with cert/key from the test PKI: memory store, or with
 * data_dir (not NULL) its SQLite store and media. */
static chat_server *tls_server_in(const char *cert, const char *key, const char *data_dir)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_server_config_set_listen(cfg, "127.0.0.1", 0), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 7 + 3);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    assert_int_equal(chat_server_config_set_tls(cfg, pki_file(cert), pki_file(key)), CHAT_OK);
    if (data_dir) {
        mkdir(data_dir, 0700);
        assert_int_equal(chat_server_config_set_data_dir(cfg, data_dir), CHAT_OK);
    }
    chat_server *srv = NULL;
    assert_int_equal(chat_server_new(&srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(srv), CHAT_OK);
    return srv;
}

static chat_server *tls_server(const char *cert, const char *key)
{
    return tls_server_in(cert, key, NULL);
}

/* A client of srv at wss://host:port/, trusting ca (a PKI file name, or NULL: system store). */
static chat_client *tls_client(chat_server *srv, const char *host, const char *user,
                               const char *ca)
{
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, user, "d1", 3600000, &tok), CHAT_OK);
    chat_client_config *cfg = NULL;
    char url[128];
    snprintf(url, sizeof url, "wss://%s:%d/", host, chat_server_port(srv));
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    assert_int_equal(chat_client_config_set_backoff(cfg, 50, 200), CHAT_OK);
    if (ca)
        assert_int_equal(chat_client_config_set_ca_file(cfg, pki_file(ca)), CHAT_OK);
    chat_client *c = NULL;
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    chat_string_free(tok);
    assert_int_equal(chat_client_start(c), CHAT_OK);
    return c;
}

/* Pop events until one of type (and, if text, whose text equals it). */
static chat_event *wait_for(chat_client *c, int type, const char *text)
{
    long long dl = now_ms() + WAIT_MS;
    char offline[256] = "";
    for (;;) {
        long long left = dl - now_ms();
        chat_event *ev = NULL;
        if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
            fail_msg("no %s event within %d ms; the client is %s%s%s",
                     chat_event_type_name(type), WAIT_MS,
                     chat_client_state(c) == CHAT_CONN_ONLINE ? "online" : "not online",
                     offline[0] ? "; it went offline: " : "", offline);
        if (chat_event_type(ev) == CHAT_EVENT_OFFLINE)
            snprintf(offline, sizeof offline, "%s (%s)", chat_event_message(ev),
                     chat_error_name(chat_event_code(ev)));
        if (chat_event_type(ev) == type &&
            (!text || strcmp(chat_event_text(ev, NULL), text) == 0))
            return ev;
        chat_event_free(ev);
    }
}

/* The next two connection attempts fail at TLS, with a message naming why; the client never
 * gets online meanwhile. */
static void assert_refused_at_tls(chat_client *c, const char *why)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        long long dl = now_ms() + WAIT_MS;
        for (;;) {
            long long left = dl - now_ms();
            chat_event *ev = NULL;
            if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
                fail_msg("no OFFLINE event within %d ms", WAIT_MS);
            int type = chat_event_type(ev);
            assert_int_not_equal(type, CHAT_EVENT_ONLINE);
            assert_int_not_equal(type, CHAT_EVENT_SYNCED);
            if (type == CHAT_EVENT_OFFLINE) {
                const char *m = chat_event_message(ev);
                if (!m || !strstr(m, "closed (1015): TLS") || !strstr(m, why))
                    fail_msg("OFFLINE message '%s' does not name the TLS failure '%s'",
                             m ? m : "(null)", why);
                assert_int_equal(chat_event_code(ev), CHAT_ECLOSED);
                chat_event_free(ev);
                break;
            }
            chat_event_free(ev);
        }
    }
    assert_int_not_equal(chat_client_state(c), CHAT_CONN_ONLINE);
}

static void exchange(chat_server *srv, const char *host)
{
    chat_client *a = tls_client(srv, host, "alice", "ca.pem");
    chat_client *b = tls_client(srv, host, "bob", "ca.pem");
    chat_event_free(wait_for(a, CHAT_EVENT_SYNCED, NULL));
    chat_event_free(wait_for(b, CHAT_EVENT_SYNCED, NULL));
    char *cmid = NULL;
    assert_int_equal(chat_client_send_text_to(&cmid, a, "bob", "over wss", 8), CHAT_OK);
    chat_event_free(wait_for(a, CHAT_EVENT_SENT, NULL));
    chat_event *m = wait_for(b, CHAT_EVENT_MESSAGE, "over wss");
    assert_string_equal(chat_event_user(m), "alice");
    chat_event_free(m);
    chat_string_free(cmid);
    chat_client_free(a);
    chat_client_free(b);
}

static void test_client_wss_with_custom_ca_by_ip(void **state)
{
    (void)state;
    chat_server *srv = tls_server("server.pem", "server.key");
    exchange(srv, "127.0.0.1");
    chat_server_free(srv);
}

static void test_client_wss_with_custom_ca_by_name(void **state)
{
    (void)state;
    if (!localhost_resolves()) {
        printf("skipped: the name localhost does not resolve on this machine (no /etc/hosts?); "
               "this test connects to it by name to check the certificate's DNS name\n");
        skip();
    }
    chat_server *srv = tls_server("server.pem", "server.key");
    exchange(srv, "localhost");
    chat_server_free(srv);
}

static void test_client_refuses_cert_of_another_ca(void **state)
{
    (void)state;
    chat_server *srv = tls_server("rogue.pem", "rogue.key");
    chat_client *c = tls_client(srv, "127.0.0.1", "alice", "ca.pem");
    assert_refused_at_tls(c, "not trusted");
    chat_client_free(c);
    chat_server_free(srv);
}

static void test_client_refuses_test_ca_without_custom_ca(void **state)
{
    (void)state;
    /* the system trust store does not know the test CA */
    chat_server *srv = tls_server("server.pem", "server.key");
    chat_client *c = tls_client(srv, "127.0.0.1", "alice", NULL);
    assert_refused_at_tls(c, "not trusted");
    chat_client_free(c);
    chat_server_free(srv);
}

static void test_client_refuses_name_not_in_cert(void **state)
{
    (void)state;
    /* the certificate is for 127.0.0.1 and localhost; "127.1" is the same address under a
     * name the certificate does not hold */
    chat_server_config *cfg = NULL;
    chat_server *srv = tls_server("server.pem", "server.key");
    (void)cfg;
    chat_client *c = tls_client(srv, "127.1", "alice", "ca.pem");
    assert_refused_at_tls(c, "not trusted");
    chat_client_free(c);
    chat_server_free(srv);
}

static void test_client_plain_ws_to_tls_server_never_online(void **state)
{
    (void)state;
    chat_server *srv = tls_server("server.pem", "server.key");
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, "alice", "d1", 3600000, &tok), CHAT_OK);
    chat_client_config *cfg = NULL;
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", chat_server_port(srv));
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    assert_int_equal(chat_client_config_set_backoff(cfg, 50, 200), CHAT_OK);
    assert_int_equal(chat_client_config_set_heartbeat(cfg, 500, 1000), CHAT_OK);
    chat_client *c = NULL;
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    assert_int_equal(chat_client_start(c), CHAT_OK);
    chat_event_free(wait_for(c, CHAT_EVENT_OFFLINE, NULL));
    assert_int_not_equal(chat_client_state(c), CHAT_CONN_ONLINE);
    chat_client_free(c);
    chat_string_free(tok);
    chat_server_free(srv);
}

static void test_client_ca_file_argument_checks(void **state)
{
    (void)state;
    chat_client_config *cfg = NULL;
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_ca_file(cfg, ""), CHAT_EINVAL);
    assert_int_equal(chat_client_config_set_ca_file(NULL, "x"), CHAT_EINVAL);
    assert_int_equal(chat_client_config_set_ca_file(cfg, "/nonexistent/ca.pem"), CHAT_OK);
    assert_int_equal(chat_client_config_set_ca_file(cfg, NULL), CHAT_OK);
    chat_client_config_free(cfg);
}

static void test_client_missing_ca_file_is_a_tls_failure(void **state)
{
    (void)state;
    chat_server *srv = tls_server("server.pem", "server.key");
    chat_client *c = tls_client(srv, "127.0.0.1", "alice", "no-such-ca.pem");
    assert_refused_at_tls(c, "cannot load the CA file");
    chat_client_free(c);
    chat_server_free(srv);
}

/* ---- media over https ------------------------------------------------------------------- */

static void write_random_file(const char *path, size_t size)
{
    unsigned char *b = malloc(size);
    assert_non_null(b);
    randombytes_buf(b, size);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
    free(b);
}

static unsigned char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return b;
}

/* BLAKE2b-256 in hex: the media id of a file's bytes (doc/media.md). */
static void media_id_of_file(const char *path, char hex[65])
{
    size_t n;
    unsigned char *b = read_file(path, &n), d[32];
    crypto_generichash(d, sizeof d, b, n, NULL, 0);
    sodium_bin2hex(hex, 65, d, sizeof d);
    free(b);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static long long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Progress: remembers the first and last done, aborts (non-zero) once done >= stop_at. */
struct progress {
    uint64_t stop_at, first, last, total;
    int calls;
};

static int on_progress(uint64_t done, uint64_t total, void *ud)
{
    struct progress *p = ud;
    if (p->calls++ == 0)
        p->first = done;
    p->last = done;
    p->total = total;
    if (p->stop_at && done >= p->stop_at && done < total) {
        struct timespec ts = {0, 300 * 1000 * 1000};
        nanosleep(&ts, NULL); /* let the server take in what was sent */
        return 1;
    }
    return 0;
}

/* The "url" of alice's media_url answer for id. */
static char *media_url_of(chat_client *c, const char *id)
{
    uint64_t req = 0;
    assert_int_equal(chat_client_media_url(&req, c, id), CHAT_OK);
    long long dl = now_ms() + WAIT_MS;
    for (;;) {
        long long left = dl - now_ms();
        chat_event *ev = NULL;
        if (left <= 0 || chat_client_wait_event(&ev, c, (int)left) != CHAT_OK)
            fail_msg("no media_url RESULT within %d ms", WAIT_MS);
        if (chat_event_type(ev) == CHAT_EVENT_RESULT && chat_event_request(ev) == req) {
            assert_int_equal(chat_event_code(ev), CHAT_OK);
            const char *j = strstr(chat_event_json(ev), "\"url\":\"");
            assert_non_null(j);
            j += 7;
            size_t n = strcspn(j, "\"");
            char *url = malloc(n + 1);
            assert_non_null(url);
            memcpy(url, j, n);
            url[n] = 0;
            chat_event_free(ev);
            return url;
        }
        chat_event_free(ev);
    }
}

static void test_client_media_over_https_round_trip_with_resume(void **state)
{
    (void)state;
    char data[300], src[320], dst[320], part[330], abs_url[2048];
    snprintf(data, sizeof data, "%s", pki_file("media-data"));
    snprintf(src, sizeof src, "%s", pki_file("clip.bin"));
    snprintf(dst, sizeof dst, "%s", pki_file("got.bin"));
    snprintf(part, sizeof part, "%s.part", dst);
    chat_server *srv = tls_server_in("server.pem", "server.key", data);
    const char *host = name_or_ip();
    chat_client *a = tls_client(srv, host, "alice", "ca.pem");
    chat_event_free(wait_for(a, CHAT_EVENT_SYNCED, NULL));
    const size_t size = 2 * 1024 * 1024 + 11;
    write_random_file(src, size);
    char want[65];
    media_id_of_file(src, want);

    /* an upload aborted after ~600 kB, then resumed from the server's offset, over https */
    struct progress p1 = {.stop_at = 600000};
    char *id = NULL;
    assert_int_equal(chat_client_upload_file(&id, a, src, "video/mp4", on_progress, &p1),
                     CHAT_EUSER);
    assert_null(id);
    assert_int_equal(p1.total, size);
    struct progress p2 = {0};
    assert_int_equal(chat_client_upload_file(&id, a, src, "video/mp4", on_progress, &p2),
                     CHAT_OK);
    assert_string_equal(id, want);
    assert_true(p2.first > 0 && p2.first <= p1.last); /* resumed, not restarted */
    assert_int_equal(p2.last, size);

    /* a signed URL, a download aborted after ~900 kB: no file, a .part */
    char *url = media_url_of(a, id);
    assert_true(url[0] == '/');
    struct progress p3 = {.stop_at = 900000};
    assert_int_equal(chat_client_download(a, url, id, dst, on_progress, &p3), CHAT_EUSER);
    assert_false(file_exists(dst));
    assert_true(file_size(part) >= 900000);

    /* resumed with a Range request, through the absolute https:// form of the URL; the
     * content hash is checked against the id */
    snprintf(abs_url, sizeof abs_url, "https://%s:%d%s", host, chat_server_port(srv), url);
    struct progress p4 = {0};
    assert_int_equal(chat_client_download(a, abs_url, id, dst, on_progress, &p4), CHAT_OK);
    assert_true(p4.first >= 900000);
    assert_int_equal(p4.last, size);
    assert_false(file_exists(part));
    size_t n1, n2;
    unsigned char *b1 = read_file(src, &n1), *b2 = read_file(dst, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(b1, b2, n1);
    free(b1);
    free(b2);
    char got[65];
    media_id_of_file(dst, got);
    assert_string_equal(got, want);

    free(url);
    chat_string_free(id);
    chat_client_free(a);
    chat_server_free(srv);
}

static void test_client_media_refuses_cert_of_another_ca(void **state)
{
    (void)state;
    char data[300], src[320], dst[320], part[330], url[400];
    snprintf(data, sizeof data, "%s", pki_file("media-rogue"));
    snprintf(src, sizeof src, "%s", pki_file("small.bin"));
    snprintf(dst, sizeof dst, "%s", pki_file("rogue-got.bin"));
    snprintf(part, sizeof part, "%s.part", dst);
    write_random_file(src, 100000);
    chat_server *srv = tls_server_in("rogue.pem", "rogue.key", data);
    /* not started: transfers need only the token, and the rogue server must get no bytes */
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, "alice", "d1", 3600000, &tok), CHAT_OK);
    chat_client_config *cfg = NULL;
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", chat_server_port(srv));
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    assert_int_equal(chat_client_config_set_ca_file(cfg, pki_file("ca.pem")), CHAT_OK);
    chat_client *c = NULL;
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);

    struct progress p = {0};
    char *id = NULL;
    assert_int_equal(chat_client_upload_file(&id, c, src, NULL, on_progress, &p), CHAT_EIO);
    assert_null(id);
    assert_int_equal(p.calls, 0);
    const char *m = chat_error_last()->message;
    if (!strstr(m, "TLS: server certificate not trusted"))
        fail_msg("upload error '%s' does not name the TLS failure", m);

    /* a download: refused before any byte, no file and no .part left */
    char want[65];
    media_id_of_file(src, want);
    snprintf(url, sizeof url, "/media/%s?e=9999999999&s=alice&t=eA&k=1&sig=00", want);
    assert_int_equal(chat_client_download(c, url, want, dst, on_progress, &p), CHAT_EIO);
    m = chat_error_last()->message;
    if (!strstr(m, "TLS: server certificate not trusted"))
        fail_msg("download error '%s' does not name the TLS failure", m);
    assert_int_equal(p.calls, 0);
    assert_false(file_exists(dst));
    assert_false(file_exists(part));

    /* the same with the system trust store, which does not know the test CA either */
    chat_client_free(c);
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", chat_server_port(srv));
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    assert_int_equal(chat_client_upload_file(&id, c, src, NULL, NULL, NULL), CHAT_EIO);
    assert_non_null(strstr(chat_error_last()->message, "not trusted"));

    chat_client_free(c);
    chat_string_free(tok);
    chat_server_free(srv);
}

static void test_client_media_plain_http_to_tls_server_fails(void **state)
{
    (void)state;
    /* ws:// against a TLS port: the plain request gets no HTTP answer, never a media id */
    char data[300], src[320], url[128];
    snprintf(data, sizeof data, "%s", pki_file("media-plain"));
    snprintf(src, sizeof src, "%s", pki_file("plain.bin"));
    write_random_file(src, 1000);
    chat_server *srv = tls_server_in("server.pem", "server.key", data);
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(srv, "alice", "d1", 3600000, &tok), CHAT_OK);
    chat_client_config *cfg = NULL;
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", chat_server_port(srv));
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, tok), CHAT_OK);
    chat_client *c = NULL;
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    char *id = NULL;
    int rc = chat_client_upload_file(&id, c, src, NULL, NULL, NULL);
    assert_int_not_equal(rc, CHAT_OK);
    assert_null(id);
    chat_client_free(c);
    chat_string_free(tok);
    chat_server_free(srv);
}

/* A TLS server that answers POST /media/uploads with 201 and a Location, closes PATCH
 * connections right after their head (unread body: the kernel resets the connection while the
 * client is still writing), and answers anything else 404. */
struct rude {
    int lfd, port;
    SSL_CTX *ctx;
    pthread_t thread;
    int patches;
};

static void *rude_main(void *arg)
{
    struct rude *r = arg;
    for (;;) {
        int fd = accept(r->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        SSL *ssl = SSL_new(r->ctx);
        SSL_set_fd(ssl, fd);
        char head[4096];
        size_t n = 0;
        if (SSL_accept(ssl) == 1) {
            while (n < sizeof head - 1 && !memmem(head, n, "\r\n\r\n", 4)) {
                int k = SSL_read(ssl, head + n, (int)(sizeof head - 1 - n));
                if (k <= 0)
                    break;
                n += (size_t)k;
            }
            head[n] = 0;
            const char *ans = NULL;
            if (strncmp(head, "POST ", 5) == 0)
                ans = "HTTP/1.1 201 Created\r\nLocation: /media/uploads/0123456789abcdef"
                      "0123456789abcdef\r\nContent-Length: 0\r\n\r\n";
            else if (strncmp(head, "PATCH ", 6) == 0)
                r->patches++;
            else
                ans = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
            if (ans)
                SSL_write(ssl, ans, (int)strlen(ans));
        }
        SSL_free(ssl);
        close(fd);
    }
}

static void test_client_media_https_upload_reset_by_peer_fails(
    void **state)
{
    (void)state;
    /* SIGPIPE's default action: a write that raised it would kill this test (the
     * deterministic check of that is tests/unit/client/test_tls.c) */
    signal(SIGPIPE, SIG_DFL);
    struct rude r = {0};
    r.ctx = SSL_CTX_new(TLS_server_method());
    assert_non_null(r.ctx);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(r.ctx, pki_file("server.pem")), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(r.ctx, pki_file("server.key"), SSL_FILETYPE_PEM),
                     1);
    r.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(r.lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r.lfd, 8), 0);
    assert_int_equal(getsockname(r.lfd, (struct sockaddr *)&a, &al), 0);
    r.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r.thread, NULL, rude_main, &r), 0);

    char src[320], url[128];
    snprintf(src, sizeof src, "%s", pki_file("big.bin"));
    write_random_file(src, 8 * 1024 * 1024);
    chat_client_config *cfg = NULL;
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", r.port);
    assert_int_equal(chat_client_config_new(&cfg), CHAT_OK);
    assert_int_equal(chat_client_config_set_server(cfg, url), CHAT_OK);
    assert_int_equal(chat_client_config_set_token(cfg, "tok"), CHAT_OK);
    assert_int_equal(chat_client_config_set_ca_file(cfg, pki_file("ca.pem")), CHAT_OK);
    chat_client *c = NULL;
    assert_int_equal(chat_client_new(&c, cfg), CHAT_OK);
    chat_client_config_free(cfg);
    char *id = NULL;
    int rc = chat_client_upload_file(&id, c, src, NULL, NULL, NULL);
    assert_int_not_equal(rc, CHAT_OK); /* and this process is still alive */
    assert_null(id);
    assert_true(r.patches >= 1);
    chat_client_free(c);

    shutdown(r.lfd, SHUT_RDWR);
    close(r.lfd);
    pthread_join(r.thread, NULL);
    SSL_CTX_free(r.ctx);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_wss_with_custom_ca_by_ip),
        cmocka_unit_test(test_client_wss_with_custom_ca_by_name),
        cmocka_unit_test(test_client_refuses_cert_of_another_ca),
        cmocka_unit_test(test_client_refuses_test_ca_without_custom_ca),
        cmocka_unit_test(test_client_refuses_name_not_in_cert),
        cmocka_unit_test(test_client_plain_ws_to_tls_server_never_online),
        cmocka_unit_test(test_client_ca_file_argument_checks),
        cmocka_unit_test(test_client_missing_ca_file_is_a_tls_failure),
        cmocka_unit_test(test_client_media_over_https_round_trip_with_resume),
        cmocka_unit_test(test_client_media_refuses_cert_of_another_ca),
        cmocka_unit_test(test_client_media_plain_http_to_tls_server_fails),
        cmocka_unit_test(test_client_media_https_upload_reset_by_peer_fails),
    };
    return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
