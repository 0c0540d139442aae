/* Media transfers of the client engine (doc/media.md): a small blocking HTTP/1.1 client, over
 * plain TCP for ws:// and http:// and over TLS for wss:// and https:// (tls.c: the same
 * verification and CA file as the WebSocket transport), run on the caller's thread, never on
 * the loop thread. Uploads use the offset protocol and remember their upload URL in
 * the cache, so an interrupted upload resumes; downloads go through a .part file continued
 * with Range requests and are checked against the media id (BLAKE2b-256) before they appear. */
#include "client/httpresp.h"
#include "client/internal.h"
#include "client/tls.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/err.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define IO_CHUNK (64 * 1024)
#define IO_TIMEOUT_S 30
#define RESUMES 3

typedef struct hconn {
    int fd;
    SSL *ssl; /* https: over fd */
    char buf[IO_CHUNK];
    size_t len, pos; /* unread bytes are buf[pos..len) */
} hconn;

/* host and port of a ws://, wss://, http:// or https:// URL; *tls tells the secure ones; path
 * (may be NULL) receives what follows. */
static int split_url(const char *url, char *host, size_t hsize, char *port, size_t psize,
                     int *tls, const char **path)
{
    const char *h;
    *tls = 0;
    if (strncmp(url, "ws://", 5) == 0)
        h = url + 5;
    else if (strncmp(url, "http://", 7) == 0)
        h = url + 7;
    else if (strncmp(url, "wss://", 6) == 0)
        h = url + 6, *tls = 1;
    else if (strncmp(url, "https://", 8) == 0)
        h = url + 8, *tls = 1;
    else
        return chat__error_set(CHAT_EINVAL, 0, "url: expected ws://, wss://, http:// or https://");
    const char *end, *p;
    if (*h == '[') {
        end = strchr(h, ']');
        if (!end)
            return chat__error_set(CHAT_EINVAL, 0, "url: unterminated [");
        snprintf(host, hsize, "%.*s", (int)(end - h - 1), h + 1);
        p = end + 1;
    } else {
        end = h + strcspn(h, ":/");
        snprintf(host, hsize, "%.*s", (int)(end - h), h);
        p = end;
    }
    if (!*host)
        return chat__error_set(CHAT_EINVAL, 0, "url: no host");
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");
        snprintf(port, psize, "%.*s", (int)n, p + 1);
        p += 1 + n;
    } else {
        snprintf(port, psize, *tls ? "443" : "80");
    }
    if (path)
        *path = *p ? p : "/";
    return CHAT_OK;
}

/* Connect to host:port; with ctx, then the TLS handshake, verified (tls.c). */
static int h_connect(hconn *h, const char *host, const char *port, SSL_CTX *ctx)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0)
        return chat__error_set(CHAT_EIO, g, "resolve %s: %s", host, gai_strerror(g));
    h->fd = -1;
    h->ssl = NULL;
    h->len = h->pos = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        struct timeval tv = {IO_TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
            h->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(res);
    if (h->fd < 0)
        return chat__error_set(CHAT_EIO, errno, "connect %s:%s: %s", host, port,
                               strerror(errno));
    if (!ctx)
        return CHAT_OK;
    int rc = chat__tls_ssl_new(&h->ssl, ctx, h->fd, host);
    if (rc != CHAT_OK) {
        close(h->fd);
        h->fd = -1;
        return rc;
    }
    ERR_clear_error();
    int r = SSL_connect(h->ssl); /* blocking, bounded by the socket's timeouts */
    if (r == 1)
        return CHAT_OK;
    char why[160];
    int e = SSL_get_error(h->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        snprintf(why, sizeof why, "TLS handshake failed: timed out");
    } else {
        chat__tls_failure(h->ssl, why, sizeof why);
    }
    SSL_free(h->ssl);
    h->ssl = NULL;
    close(h->fd);
    h->fd = -1;
    return chat__error_set(CHAT_EIO, 0, "%s (%s:%s)", why, host, port);
}

static void h_close(hconn *h)
{
    if (h->ssl) {
        ERR_clear_error();
        (void)SSL_shutdown(h->ssl); /* close_notify, without waiting for the server's */
        ERR_clear_error();
        SSL_free(h->ssl);
        h->ssl = NULL;
    }
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
}

static int h_send(hconn *h, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        if (h->ssl) {
            ssize_t w = chat__tls_write(h->ssl, b, n);
            if (w <= 0)
                return chat__error_set(CHAT_EIO, 0, "send: %s",
                                       w == -EAGAIN ? "timed out" : "TLS error");
            b += w;
            n -= (size_t)w;
            continue;
        }
        ssize_t w = send(h->fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return chat__error_set(CHAT_EIO, errno, "send: %s", strerror(errno));
        b += w;
        n -= (size_t)w;
    }
    return CHAT_OK;
}

static int h_fill(hconn *h)
{
    if (h->pos == h->len)
        h->pos = h->len = 0;
    if (h->ssl) {
        ssize_t r = chat__tls_read(h->ssl, h->buf + h->len, sizeof h->buf - h->len);
        if (r == 0)
            return chat__error_set(CHAT_EIO, 0, "connection closed by the server");
        if (r < 0)
            return chat__error_set(CHAT_EIO, 0, "recv: %s",
                                   r == -EAGAIN ? "timed out" : "TLS error");
        h->len += (size_t)r;
        return CHAT_OK;
    }
    for (;;) {
        ssize_t r = recv(h->fd, h->buf + h->len, sizeof h->buf - h->len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return chat__error_set(CHAT_EIO, errno, "recv: %s", strerror(errno));
        if (r == 0)
            return chat__error_set(CHAT_EIO, 0, "connection closed by the server");
        h->len += (size_t)r;
        return CHAT_OK;
    }
}

/* Status line and headers (httpresp.c); the bytes after them stay in h->buf. */
static int h_read_head(hconn *h, chat__http_head *r)
{
    chat__http_head_init(r);
    for (;;) {
        size_t used;
        int rc = chat__http_head_feed(r, h->buf + h->pos, h->len - h->pos, &used);
        h->pos += used;
        if (rc != CHAT_EAGAIN)
            return rc;
        rc = h_fill(h);
        if (rc != CHAT_OK)
            return rc;
    }
}

/* Read a body of len bytes into mem (up to size-1, NUL-terminated) or to fd. */
static int h_read_body(hconn *h, uint64_t len, char *mem, size_t size, int fd, uint64_t base,
                       uint64_t total, chat_progress_cb cb, void *ud)
{
    size_t kept = 0;
    uint64_t got = 0;
    while (got < len) {
        if (h->pos == h->len) {
            int rc = h_fill(h);
            if (rc != CHAT_OK)
                return rc;
        }
        size_t n = h->len - h->pos;
        if (n > len - got)
            n = (size_t)(len - got);
        if (mem) {
            size_t k = kept + n < size ? n : size - 1 - kept;
            memcpy(mem + kept, h->buf + h->pos, k);
            kept += k;
        }
        if (fd >= 0) {
            const char *p = h->buf + h->pos;
            size_t left = n;
            while (left) {
                ssize_t w = write(fd, p, left);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0)
                    return chat__error_set(CHAT_EIO, errno, "write: %s", strerror(errno));
                p += w;
                left -= (size_t)w;
            }
        }
        h->pos += n;
        got += n;
        if (cb && fd >= 0 && cb(base + got, total, ud))
            return chat__error_set(CHAT_EUSER, 0, "aborted by the progress callback");
    }
    if (mem)
        mem[kept] = 0;
    return CHAT_OK;
}

static int status_error(int status, const char *what, const char *body)
{
    int code = status == 401 || status == 403 ? CHAT_EAUTH
               : status == 404                ? CHAT_ENOTFOUND
               : status == 413                ? CHAT_ELIMIT
               : status == 503                ? CHAT_ENOTSUP
               : status == 409                ? CHAT_EBUSY
                                              : CHAT_EIO;
    return chat__error_set(code, status, "%s: HTTP %d %s", what, status, body ? body : "");
}

typedef struct server_addr {
    char host[256], port[16];
    char *token;
    SSL_CTX *ctx; /* https: made for this transfer, with the client's CA file */
} server_addr;

/* The TLS context for a secure URL (tls), else none. */
static int server_tls(chat_client *c, server_addr *s, int tls)
{
    s->ctx = NULL;
    return tls ? chat__tls_ctx_new(&s->ctx, c->ca_file) : CHAT_OK;
}

static void server_done(server_addr *s)
{
    chat__free(s->token);
    s->token = NULL;
    if (s->ctx)
        SSL_CTX_free(s->ctx);
    s->ctx = NULL;
}

static int server_of(chat_client *c, server_addr *s)
{
    int tls;
    s->token = NULL;
    s->ctx = NULL;
    int rc = split_url(c->url, s->host, sizeof s->host, s->port, sizeof s->port, &tls, NULL);
    if (rc == CHAT_OK)
        rc = server_tls(c, s, tls);
    if (rc != CHAT_OK)
        return rc;
    rc = chat_client_token(&s->token, c);
    return rc == CHAT_ENOTFOUND ? chat__error_set(CHAT_EAUTH, 0, "no token yet: connect first")
                                : rc;
}

/* One request without a body (or with body bytes in mem) and a small answer. */
static int simple_request(const server_addr *s, const char *method, const char *path,
                          const char *extra, chat__http_head *r, char *body, size_t bsize)
{
    hconn *h = chat__malloc(sizeof *h);
    if (!h)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    int rc = h_connect(h, s->host, s->port, s->ctx);
    if (rc != CHAT_OK) {
        chat__free(h);
        return rc;
    }
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n%s"
                     "Connection: close\r\n\r\n",
                     method, path, s->host, s->token, extra ? extra : "");
    rc = n > 0 && (size_t)n < sizeof req ? h_send(h, req, (size_t)n)
                                          : chat__error_set(CHAT_EINVAL, 0, "request too long");
    if (rc == CHAT_OK)
        rc = h_read_head(h, r);
    body[0] = 0;
    int found;
    uint64_t len = rc == CHAT_OK ? chat__http_header_u64(r, "content-length", &found) : 0;
    if (rc == CHAT_OK && strcmp(method, "HEAD") != 0 && len)
        rc = h_read_body(h, len, body, bsize, -1, 0, 0, NULL, NULL);
    h_close(h);
    chat__free(h);
    return rc;
}

static int meta_key(char *out, size_t size, const char *path, const struct stat *st)
{
    char buf[4200];
    int n = snprintf(buf, sizeof buf, "%s|%lld|%lld", path, (long long)st->st_size,
                     (long long)st->st_mtime);
    if (n < 0 || (size_t)n >= sizeof buf)
        return CHAT_EINVAL;
    unsigned char d[16];
    crypto_generichash(d, sizeof d, (const unsigned char *)buf, (size_t)n, NULL, 0);
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, d, sizeof d);
    snprintf(out, size, "upload:%s", hex);
    return CHAT_OK;
}

static char *media_id_of(const char *json)
{
    cJSON *o = cJSON_Parse(json);
    const char *id = o ? chat__json_str(o, "media", NULL) : NULL;
    char *copy = id ? chat__strdup(id) : NULL;
    cJSON_Delete(o);
    return copy;
}

/* PATCH the rest of the file from offset; *done_json receives the 201 body. */
static int patch_rest(const server_addr *s, const char *loc, int fd, uint64_t offset,
                      uint64_t size, chat_progress_cb cb, void *ud, char *json, size_t jsize,
                      int *finished)
{
    hconn *h = chat__malloc(sizeof *h);
    char *chunk = chat__malloc(IO_CHUNK);
    int rc = h && chunk ? h_connect(h, s->host, s->port, s->ctx)
                        : chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    if (rc != CHAT_OK)
        goto out;
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/offset+octet-stream\r\nUpload-Offset: %" PRIu64
                     "\r\nContent-Length: %" PRIu64 "\r\nConnection: close\r\n\r\n",
                     loc, s->host, s->token, offset, size - offset);
    rc = h_send(h, req, (size_t)n);
    if (rc == CHAT_OK && cb && cb(offset, size, ud)) /* where this attempt starts */
        rc = chat__error_set(CHAT_EUSER, 0, "aborted by the progress callback");
    uint64_t pos = offset;
    while (rc == CHAT_OK && pos < size) {
        size_t want = size - pos > IO_CHUNK ? IO_CHUNK : (size_t)(size - pos);
        ssize_t r = pread(fd, chunk, want, (off_t)pos);
        if (r <= 0) {
            rc = chat__error_set(CHAT_EIO, errno, "read: %s", r < 0 ? strerror(errno) : "EOF");
            break;
        }
        rc = h_send(h, chunk, (size_t)r);
        pos += (uint64_t)r;
        if (rc == CHAT_OK && cb && cb(pos, size, ud))
            rc = chat__error_set(CHAT_EUSER, 0, "aborted by the progress callback");
    }
    chat__http_head resp;
    if (rc == CHAT_OK)
        rc = h_read_head(h, &resp);
    int found;
    uint64_t len = rc == CHAT_OK ? chat__http_header_u64(&resp, "content-length", &found) : 0;
    json[0] = 0;
    if (rc == CHAT_OK && len)
        rc = h_read_body(h, len, json, jsize, -1, 0, 0, NULL, NULL);
    if (rc == CHAT_OK) {
        if (resp.status == 201)
            *finished = 1;
        else if (resp.status != 204)
            rc = status_error(resp.status, "upload", json);
    }
out:
    if (h)
        h_close(h);
    chat__free(h);
    chat__free(chunk);
    return rc;
}

int chat_client_upload_file(char **out_media_id, chat_client *c, const char *path,
                            const char *mime, chat_progress_cb cb, void *user_data)
{
    if (!out_media_id || !c || !path)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    if (!mime || !*mime)
        mime = "application/octet-stream";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return chat__error_set(CHAT_EIO, e, "%s: %s", path, strerror(e));
    }
    server_addr s;
    char key[64], json[1024], extra[1024];
    char *loc = NULL;
    uint64_t size = (uint64_t)st.st_size, offset = 0;
    int rc = server_of(c, &s);
    if (rc == CHAT_OK)
        rc = meta_key(key, sizeof key, path, &st);
    chat__http_head r;
    /* A remembered upload of this very file: ask the server where it stands. */
    if (rc == CHAT_OK && chat__cache_meta_get(c->cache, key, &loc) == CHAT_OK) {
        rc = simple_request(&s, "HEAD", loc, NULL, &r, json, sizeof json);
        char mid[80];
        if (rc == CHAT_OK && r.status == 200 &&
            chat__http_header(&r, "media-id", mid, sizeof mid)) {
            chat__cache_meta_del(c->cache, key);
            chat__free(loc);
            close(fd);
            server_done(&s);
            if (cb)
                cb(size, size, user_data);
            return (*out_media_id = chat__strdup(mid)) ? CHAT_OK : CHAT_ENOMEM;
        }
        int found;
        if (rc == CHAT_OK && r.status == 200)
            offset = chat__http_header_u64(&r, "upload-offset", &found);
        if (rc == CHAT_OK && r.status != 200) { /* gone: start over */
            chat__cache_meta_del(c->cache, key);
            chat__free(loc);
            loc = NULL;
        }
    }
    if (rc == CHAT_OK && !loc) {
        const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        char b64n[sodium_base64_ENCODED_LEN(255, sodium_base64_VARIANT_ORIGINAL)];
        char b64t[sizeof b64n];
        sodium_bin2base64(b64n, sizeof b64n, (const unsigned char *)base,
                          strlen(base) > 255 ? 255 : strlen(base),
                          sodium_base64_VARIANT_ORIGINAL);
        sodium_bin2base64(b64t, sizeof b64t, (const unsigned char *)mime,
                          strlen(mime) > 255 ? 255 : strlen(mime),
                          sodium_base64_VARIANT_ORIGINAL);
        snprintf(extra, sizeof extra,
                 "Upload-Length: %" PRIu64 "\r\nUpload-Metadata: name %s,type %s\r\n", size,
                 b64n, b64t);
        rc = simple_request(&s, "POST", "/media/uploads", extra, &r, json, sizeof json);
        char l[256];
        if (rc == CHAT_OK && r.status != 201)
            rc = status_error(r.status, "upload", json);
        else if (rc == CHAT_OK && !chat__http_header(&r, "location", l, sizeof l))
            rc = chat__error_set(CHAT_EPROTO, 0, "upload: no Location");
        else if (rc == CHAT_OK && !(loc = chat__strdup(l)))
            rc = CHAT_ENOMEM;
        if (rc == CHAT_OK && size == 0) { /* complete at creation */
            close(fd);
            chat__free(loc);
            server_done(&s);
            char *id = media_id_of(json);
            if (!id)
                return chat__error_set(CHAT_EPROTO, 0, "upload: no media id");
            *out_media_id = id;
            return CHAT_OK;
        }
        if (rc == CHAT_OK)
            chat__cache_meta_set(c->cache, key, loc);
    }
    int finished = 0;
    for (int attempt = 0; rc == CHAT_OK && !finished; attempt++) {
        rc = patch_rest(&s, loc, fd, offset, size, cb, user_data, json, sizeof json, &finished);
        if (rc == CHAT_EUSER || rc == CHAT_EAUTH || rc == CHAT_ELIMIT || finished)
            break;
        if (rc != CHAT_OK && attempt >= RESUMES)
            break;
        /* Dropped, or stopped short: resume from the server's offset. */
        for (int i = 0; i < 50; i++) {
            int r2 = simple_request(&s, "HEAD", loc, NULL, &r, json, sizeof json);
            char busy[8], mid[80];
            if (r2 != CHAT_OK || r.status != 200) {
                rc = r2 != CHAT_OK ? r2 : status_error(r.status, "upload", json);
                break;
            }
            if (chat__http_header(&r, "media-id", mid, sizeof mid)) {
                snprintf(json, sizeof json, "{\"media\":\"%s\"}", mid);
                finished = 1;
                rc = CHAT_OK;
                break;
            }
            if (!chat__http_header(&r, "upload-busy", busy, sizeof busy)) {
                int found;
                offset = chat__http_header_u64(&r, "upload-offset", &found);
                rc = CHAT_OK;
                break;
            }
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    close(fd);
    server_done(&s);
    if (rc == CHAT_OK && finished) {
        chat__cache_meta_del(c->cache, key);
        chat__free(loc);
        char *id = media_id_of(json);
        if (!id)
            return chat__error_set(CHAT_EPROTO, 0, "upload: no media id in %s", json);
        *out_media_id = id;
        return CHAT_OK;
    }
    chat__free(loc);
    return rc == CHAT_OK ? chat__error_set(CHAT_EIO, 0, "upload did not finish") : rc;
}

/* ---- download ---------------------------------------------------------------------------- */

static int hash_file(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return chat__error_set(CHAT_EIO, errno, "%s: %s", path, strerror(errno));
    unsigned char *buf = chat__malloc(IO_CHUNK);
    if (!buf) {
        close(fd);
        return CHAT_ENOMEM;
    }
    crypto_generichash_state *st = sodium_malloc(sizeof *st);
    if (!st) {
        chat__free(buf);
        close(fd);
        return CHAT_ENOMEM;
    }
    crypto_generichash_init(st, NULL, 0, 32);
    ssize_t n;
    while ((n = read(fd, buf, IO_CHUNK)) > 0)
        crypto_generichash_update(st, buf, (size_t)n);
    unsigned char d[32];
    crypto_generichash_final(st, d, sizeof d);
    sodium_free(st);
    chat__free(buf);
    close(fd);
    if (n < 0)
        return chat__error_set(CHAT_EIO, errno, "read %s", path);
    sodium_bin2hex(hex, 65, d, sizeof d);
    return CHAT_OK;
}

int chat_client_download(chat_client *c, const char *url, const char *media_id,
                         const char *path, chat_progress_cb cb, void *user_data)
{
    if (!c || !url || !path)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    server_addr s;
    const char *rel = NULL;
    int rc, tls;
    if (url[0] == '/') {
        rc = split_url(c->url, s.host, sizeof s.host, s.port, sizeof s.port, &tls, NULL);
        rel = url;
    } else {
        rc = split_url(url, s.host, sizeof s.host, s.port, sizeof s.port, &tls, &rel);
    }
    s.token = NULL; /* the signed URL is the credential */
    if (rc == CHAT_OK)
        rc = server_tls(c, &s, tls);
    if (rc != CHAT_OK)
        return rc;
    size_t plen = strlen(path);
    char *part = chat__malloc(plen + 6);
    if (!part) {
        server_done(&s);
        return CHAT_ENOMEM;
    }
    memcpy(part, path, plen);
    memcpy(part + plen, ".part", 6);
    int fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = chat__error_set(CHAT_EIO, errno, "%s: %s", part, strerror(errno));
        if (fd >= 0)
            close(fd);
        chat__free(part);
        server_done(&s);
        return rc;
    }
    uint64_t have = (uint64_t)st.st_size;
    hconn *h = chat__malloc(sizeof *h);
    rc = h ? h_connect(h, s.host, s.port, s.ctx) : CHAT_ENOMEM;
    char req[4096], range[64] = "";
    if (have)
        snprintf(range, sizeof range, "Range: bytes=%" PRIu64 "-\r\n", have);
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n",
                     rel, s.host, range);
    if (rc == CHAT_OK)
        rc = n > 0 && (size_t)n < sizeof req ? h_send(h, req, (size_t)n)
                                              : chat__error_set(CHAT_EINVAL, 0, "URL too long");
    chat__http_head r;
    if (rc == CHAT_OK)
        rc = h_read_head(h, &r);
    int found;
    uint64_t len = rc == CHAT_OK ? chat__http_header_u64(&r, "content-length", &found) : 0;
    int complete = 0;
    if (rc == CHAT_OK) {
        if (r.status == 206) {
            uint64_t total = chat__http_range_total(&r, have + len);
            if (cb && cb(have, total, user_data))
                rc = chat__error_set(CHAT_EUSER, 0, "aborted by the progress callback");
            else
                rc = h_read_body(h, len, NULL, 0, fd, have, total, cb, user_data);
        } else if (r.status == 200) {
            if (ftruncate(fd, 0) != 0)
                rc = chat__error_set(CHAT_EIO, errno, "truncate %s", part);
            else if (cb && cb(0, len, user_data))
                rc = chat__error_set(CHAT_EUSER, 0, "aborted by the progress callback");
            else
                rc = h_read_body(h, len, NULL, 0, fd, 0, len, cb, user_data);
        } else if (r.status == 416 && have) {
            complete = 1; /* the .part already holds everything */
        } else {
            char body[512];
            body[0] = 0;
            if (len)
                h_read_body(h, len, body, sizeof body, -1, 0, 0, NULL, NULL);
            rc = status_error(r.status, "download", body);
        }
    }
    (void)complete;
    if (h)
        h_close(h);
    chat__free(h);
    server_done(&s);
    if (fsync(fd) != 0 && rc == CHAT_OK)
        rc = chat__error_set(CHAT_EIO, errno, "fsync %s", part);
    struct stat now;
    if (rc != CHAT_OK && have == 0 && fstat(fd, &now) == 0 && now.st_size == 0)
        unlink(part); /* failed before any byte (refused, unreachable): leave no empty .part */
    close(fd);
    if (rc == CHAT_OK && media_id) {
        char hex[65];
        rc = hash_file(part, hex);
        if (rc == CHAT_OK && strcmp(hex, media_id) != 0) {
            unlink(part);
            rc = chat__error_set(CHAT_EPROTO, 0, "download: content hash %s is not %s", hex,
                                 media_id);
        }
    }
    if (rc == CHAT_OK && rename(part, path) != 0)
        rc = chat__error_set(CHAT_EIO, errno, "rename %s: %s", part, strerror(errno));
    chat__free(part);
    return rc;
}
