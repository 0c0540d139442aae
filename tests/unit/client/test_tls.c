/* lib/client/tls.c, the TLS setup shared by the client's WebSocket transport and media
 * transfers: verification outcomes and their text, and writes to a peer that went away, which
 * must fail with an error and never raise SIGPIPE in the host (the test runs with SIGPIPE's
 * default action, so a raised one kills it). Over a socketpair, against an OpenSSL server in a
 * thread, with the throwaway PKI of tests/tls/make_pki.sh. */
#define _GNU_SOURCE
#include "client/tls.h"
#include "chat/errors.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static char pki[256];

static const char *pki_file(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, 512, "%s/%s", pki, name);
    return p;
}

static int make_pki(void **state)
{
    (void)state;
    const char *script = getenv("MAKE_PKI");
    if (!script)
        return -1;
    snprintf(pki, sizeof pki, "/tmp/libchat-tls-unit-XXXXXX");
    if (!mkdtemp(pki))
        return -1;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "sh '%s' '%s'", script, pki);
    return system(cmd) == 0 ? 0 : -1;
}

static int remove_pki(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
    return system(cmd) == 0 ? 0 : -1;
}

struct srv {
    int fd;
    const char *cert, *key;
    int ok;
};

static void *serve(void *arg)
{
    struct srv *s = arg;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl = NULL;
    if (ctx && SSL_CTX_use_certificate_chain_file(ctx, s->cert) == 1 &&
        SSL_CTX_use_PrivateKey_file(ctx, s->key, SSL_FILETYPE_PEM) == 1 &&
        (ssl = SSL_new(ctx)) && SSL_set_fd(ssl, s->fd) == 1)
        s->ok = SSL_accept(ssl) == 1;
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(s->fd); /* gone, without close_notify */
    return NULL;
}

/* A client handshake (CA file ca, host name host) against a server thread using cert/key. */
static int handshake(SSL_CTX **ctx, SSL **ssl, int *fd, const char *ca, const char *host,
                     const char *cert, const char *key, struct srv *s, pthread_t *t)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    *s = (struct srv){.fd = sv[1], .cert = pki_file(cert), .key = pki_file(key)};
    assert_int_equal(pthread_create(t, NULL, serve, s), 0);
    *fd = sv[0];
    assert_int_equal(chat__tls_ctx_new(ctx, pki_file(ca)), CHAT_OK);
    assert_int_equal(chat__tls_ssl_new(ssl, *ctx, *fd, host), CHAT_OK);
    return SSL_connect(*ssl);
}

static void test_client_tls_write_to_a_closed_peer_fails_without_sigpipe(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_DFL);
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    struct srv s;
    pthread_t t;
    assert_int_equal(handshake(&ctx, &ssl, &fd, "ca.pem", "127.0.0.1", "server.pem",
                               "server.key", &s, &t), 1);
    pthread_join(t, NULL); /* the server has closed its end */
    assert_true(s.ok);
    char buf[64];
    ssize_t r = chat__tls_read(ssl, buf, sizeof buf);
    assert_true(r == 0 || r == -EIO);
    for (int i = 0; i < 3; i++) /* each would raise SIGPIPE through a plain socket BIO */
        assert_int_equal(chat__tls_write(ssl, "hello", 5), -EIO);
    assert_int_equal(SSL_get_fd(ssl), fd);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
}

static void test_client_tls_rogue_certificate_is_named_not_trusted(void **state)
{
    (void)state;
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    struct srv s;
    pthread_t t;
    assert_int_not_equal(handshake(&ctx, &ssl, &fd, "ca.pem", "127.0.0.1", "rogue.pem",
                                   "rogue.key", &s, &t), 1);
    char why[160];
    chat__tls_failure(ssl, why, sizeof why);
    assert_non_null(strstr(why, "TLS: server certificate not trusted: "));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    pthread_join(t, NULL);
    assert_false(s.ok);
}

static void test_client_tls_name_mismatch_is_refused(void **state)
{
    (void)state;
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    struct srv s;
    pthread_t t;
    assert_int_not_equal(handshake(&ctx, &ssl, &fd, "ca.pem", "chat.example.org", "server.pem",
                                   "server.key", &s, &t), 1);
    char why[160];
    chat__tls_failure(ssl, why, sizeof why);
    assert_non_null(strstr(why, "not trusted"));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    pthread_join(t, NULL);
}

static void test_client_tls_missing_ca_file_is_eio(void **state)
{
    (void)state;
    SSL_CTX *ctx = NULL;
    assert_int_equal(chat__tls_ctx_new(&ctx, "/nonexistent/ca.pem"), CHAT_EIO);
    assert_null(ctx);
    assert_non_null(strstr(chat_error_last()->message, "cannot load the CA file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_tls_write_to_a_closed_peer_fails_without_sigpipe),
        cmocka_unit_test(test_client_tls_rogue_certificate_is_named_not_trusted),
        cmocka_unit_test(test_client_tls_name_mismatch_is_refused),
        cmocka_unit_test(test_client_tls_missing_ca_file_is_eio),
    };
    return cmocka_run_group_tests(tests, make_pki, remove_pki);
}
