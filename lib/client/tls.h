/* TLS of the client engine's own connections: the WebSocket transport (ws.c, non-blocking)
 * and media transfers (media.c, blocking with timeouts) set up and verify TLS through these,
 * so both trust the same CAs and check the same names. OpenSSL types stay inside lib/client. */
#ifndef CHAT_CLIENT_TLS_H
#define CHAT_CLIENT_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <sys/types.h>

/* A client context: TLS 1.2 or later, ALPN http/1.1, peer verification required against the
 * CAs of the PEM file ca_file (NULL: the system's trust store, as OpenSSL finds it).
 * @return CHAT_OK, CHAT_ENOMEM, CHAT_EIO ("TLS: cannot load the CA file ..."). */
int chat__tls_ctx_new(SSL_CTX **out, const char *ca_file);

/* A connection over the connected socket fd (not taken: the caller closes it after SSL_free),
 * sending SNI and verifying the certificate's name against host, or its IP addresses when
 * host is an IP literal. Writes use MSG_NOSIGNAL: a peer that went away never raises SIGPIPE
 * in the host process. @return CHAT_OK, CHAT_ENOMEM, CHAT_EIO. */
int chat__tls_ssl_new(SSL **out, SSL_CTX *ctx, int fd, const char *host);

/* Why a handshake (SSL_connect) failed, into buf: "TLS: server certificate not trusted: <the
 * verification error>", "TLS handshake failed: <OpenSSL's error>" or "TLS handshake failed:
 * connection closed". Clears OpenSSL's error queue. */
void chat__tls_failure(const SSL *ssl, char *buf, size_t size);

/* SSL_read / SSL_write on ssl: bytes moved (> 0); 0 at the end of the stream (read: close_notify
 * or EOF); -EAGAIN when the socket is not ready (or, blocking, its SO_RCVTIMEO/SO_SNDTIMEO
 * expired); -EIO on a TLS or socket error. */
ssize_t chat__tls_read(SSL *ssl, void *p, size_t n);
ssize_t chat__tls_write(SSL *ssl, const void *p, size_t n);

#endif
