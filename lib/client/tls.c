/* TLS setup and verification shared by the client's WebSocket transport and media transfers
 * (tls.h). The socket BIO is libchat's own, a few lines over send/recv, only to pass
 * MSG_NOSIGNAL: OpenSSL's socket BIO writes with write(), which raises SIGPIPE when the server
 * has closed, and a library must not make its host ignore that signal. */
#define _GNU_SOURCE
#include "client/tls.h"

#include "chat/errors.h"
#include "core/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* ---- the socket BIO ---------------------------------------------------------------------- */

static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int nosig_write(BIO *b, const char *p, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t w;
    do
        w = send(fd, p, (size_t)n, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)w;
}

static int nosig_read(BIO *b, char *p, int n)
{
    int fd = (int)(intptr_t)BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t r;
    do
        r = recv(fd, p, (size_t)n, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    return (int)r;
}

static int nosig_puts(BIO *b, const char *s) { return nosig_write(b, s, (int)strlen(s)); }

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    int fd = (int)(intptr_t)BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_C_GET_FD: /* BIO_get_fd, SSL_get_fd */
        if (ptr)
            *(int *)ptr = fd;
        return fd;
    default:
        return 0;
    }
}

static int nosig_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void nosig_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "libchat socket");
    if (!m)
        return;
    if (BIO_meth_set_write(m, nosig_write) != 1 || BIO_meth_set_read(m, nosig_read) != 1 ||
        BIO_meth_set_puts(m, nosig_puts) != 1 || BIO_meth_set_ctrl(m, nosig_ctrl) != 1 ||
        BIO_meth_set_create(m, nosig_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    nosig_method = m; /* kept for the process's life, like OpenSSL's own methods */
}

/* ---- contexts and connections ------------------------------------------------------------ */

int chat__tls_ctx_new(SSL_CTX **out, const char *ca_file)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return chat__error_set(CHAT_ENOMEM, 0, "TLS: cannot create a context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1);
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    ERR_clear_error();
    if (ok != 1) {
        SSL_CTX_free(ctx);
        return chat__error_set(CHAT_EIO, 0, "TLS: cannot load the CA file %s",
                               ca_file ? ca_file : "(system default)");
    }
    *out = ctx;
    return CHAT_OK;
}

int chat__tls_ssl_new(SSL **out, SSL_CTX *ctx, int fd, const char *host)
{
    pthread_once(&nosig_once, nosig_init);
    SSL *ssl = nosig_method ? SSL_new(ctx) : NULL;
    BIO *bio = ssl ? BIO_new(nosig_method) : NULL;
    if (!bio) {
        SSL_free(ssl);
        return chat__error_set(CHAT_ENOMEM, 0, "TLS: cannot create a connection");
    }
    BIO_set_data(bio, (void *)(intptr_t)fd);
    SSL_set_bio(ssl, bio, bio); /* ssl owns bio */
    unsigned char ip[16];
    int is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                   : SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return chat__error_set(CHAT_EIO, 0, "TLS: cannot set the name to verify");
    }
    *out = ssl;
    return CHAT_OK;
}

void chat__tls_failure(const SSL *ssl, char *buf, size_t size)
{
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long e = ERR_peek_last_error();
    if (v != X509_V_OK) {
        snprintf(buf, size, "TLS: server certificate not trusted: %s",
                 X509_verify_cert_error_string(v));
    } else if (e) {
        char err[120];
        ERR_error_string_n(e, err, sizeof err);
        snprintf(buf, size, "TLS handshake failed: %s", err);
    } else {
        snprintf(buf, size, "TLS handshake failed: connection closed");
    }
    ERR_clear_error();
}

ssize_t chat__tls_read(SSL *ssl, void *p, size_t n)
{
    ERR_clear_error();
    int r = SSL_read(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return -EAGAIN;
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0))
        return 0; /* close_notify, or EOF without one: the connection ended */
    ERR_clear_error();
    return -EIO;
}

ssize_t chat__tls_write(SSL *ssl, const void *p, size_t n)
{
    ERR_clear_error();
    int r = SSL_write(ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(ssl, r);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? -EAGAIN : -EIO;
}
