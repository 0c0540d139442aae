/* TLS for the native transport: OpenSSL over memory BIOs, so libuv keeps the socket. Ciphertext
 * read from the socket goes into the session's read BIO and comes out of SSL_read as plaintext
 * for the connection's phase; the plaintext output of a loop iteration goes through one
 * SSL_write (so corked frames share records) and its ciphertext, with whatever the handshake
 * produced, leaves through the connection's ordinary flush. TLS 1.2 or later; ALPN http/1.1
 * only (no HTTP/2). */
#include "transport/uv_internal.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>

struct utls {
    SSL *ssl;
    BIO *rbio, *wbio; /* owned by ssl */
};

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static int tls_fail(const char *what, const char *path)
{
    char err[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, err, sizeof err);
    ERR_clear_error();
    return chat__error_set(CHAT_EIO, (int)e, "TLS: cannot use %s %s: %s", what, path, err);
}

int chat__uv_tls_ctx(utp *tp, const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return chat__error_set(CHAT_EIO, 0, "TLS: cannot create a context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    int rc = CHAT_OK;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        rc = tls_fail("the certificate", cert);
    else if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        rc = tls_fail("the private key", key);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = tls_fail("the private key (it does not match the certificate)", key);
    if (rc != CHAT_OK) {
        chat__uv_log(tp, CHAT_LOG_ERROR, "%s", chat_error_last()->message);
        SSL_CTX_free(ctx);
        return rc;
    }
    tp->ssl_ctx = ctx;
    return CHAT_OK;
}

void chat__uv_tls_ctx_free(utp *tp)
{
    SSL_CTX_free(tp->ssl_ctx);
    tp->ssl_ctx = NULL;
}

int chat__uv_tls_new(uconn *c)
{
    utls *t = chat__calloc(1, sizeof *t);
    if (!t)
        return CHAT_ENOMEM;
    t->ssl = SSL_new(c->tp->ssl_ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (!t->ssl || !t->rbio || !t->wbio) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        chat__free(t);
        return CHAT_ENOMEM;
    }
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    SSL_set_accept_state(t->ssl);
    c->tls = t;
    return CHAT_OK;
}

void chat__uv_tls_free(uconn *c)
{
    if (!c->tls)
        return;
    SSL_free(c->tls->ssl);
    chat__free(c->tls);
    c->tls = NULL;
}

int chat__uv_tls_input(uconn *c, const unsigned char *p, size_t n)
{
    utls *t = c->tls;
    if (BIO_write(t->rbio, p, (int)n) != (int)n)
        return -1;
    for (;;) {
        int r = SSL_read(t->ssl, c->tp->pbuf, CHAT__UV_READ_BYTES);
        if (r > 0) {
            if (chat__uv_plain_input(c, c->tp->pbuf, (size_t)r) != 0 || c->phase == UC_DEAD)
                return 0;
            continue;
        }
        int err = SSL_get_error(t->ssl, r);
        ERR_clear_error();
        if (err == SSL_ERROR_WANT_READ)
            return 0;
        return -1; /* close_notify, a failed handshake, a bad record */
    }
}

static int drain(utls *t, unsigned char **raw, size_t *raw_len, size_t *raw_cap)
{
    size_t pending = BIO_ctrl_pending(t->wbio);
    if (!pending)
        return 0;
    if (*raw_len + pending > *raw_cap) {
        size_t ncap = *raw_cap ? *raw_cap : 4096;
        while (ncap < *raw_len + pending)
            ncap *= 2;
        unsigned char *nb = chat__realloc(*raw, ncap);
        if (!nb)
            return -1;
        *raw = nb;
        *raw_cap = ncap;
    }
    int got = BIO_read(t->wbio, *raw + *raw_len, (int)pending);
    if (got < 0)
        return -1;
    *raw_len += (size_t)got;
    return 0;
}

int chat__uv_tls_encrypt(uconn *c, const unsigned char *p, size_t len, unsigned char **raw,
                         size_t *raw_len, size_t *raw_cap)
{
    utls *t = c->tls;
    while (len) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        int r = SSL_write(t->ssl, p, chunk);
        if (r <= 0) {
            ERR_clear_error();
            return -1;
        }
        p += r;
        len -= (size_t)r;
        if (drain(t, raw, raw_len, raw_cap) != 0)
            return -1;
    }
    return 0;
}

int chat__uv_tls_pending(uconn *c, unsigned char **raw, size_t *raw_len, size_t *raw_cap)
{
    return drain(c->tls, raw, raw_len, raw_cap);
}
