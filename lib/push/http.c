/* Blocking HTTP/1.1 POST for the webhook worker. Only the status line of the answer matters,
 * and Connection: close spares us from parsing framing. */
#include "push/http.h"

#include "chat/version.h"
#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* ---- URL ---- */

static int is_host_char(char c, int v6)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return v6 ? (c == ':' || c == '.') : (c == '-' || c == '.' || c == '_');
}

int chat__http_url_parse(chat__http_url *out, const char *url)
{
    memset(out, 0, sizeof(*out));
    if (!url)
        return chat__error_set(CHAT_EINVAL, 0, "webhook URL is NULL");
    if (strncasecmp(url, "https://", 8) == 0)
        return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s': https is not supported, "
                                               "point it at a local http gateway", url);
    if (strncasecmp(url, "http://", 7) != 0)
        return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s' must start with http://", url);
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return chat__error_set(CHAT_EINVAL, 0, "webhook URL has a space or control character");

    const char *auth = url + 7;
    size_t auth_len = strcspn(auth, "/?#");
    const char *rest = auth + auth_len;
    const char *host = auth, *port = NULL;
    size_t host_len;
    int v6 = auth[0] == '[';
    if (v6) {
        const char *close = memchr(auth, ']', auth_len);
        if (!close)
            return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s': unterminated [IPv6]", url);
        host = auth + 1;
        host_len = (size_t)(close - host);
        if (close + 1 < rest) {
            if (close[1] != ':')
                return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s': bad host", url);
            port = close + 2;
        }
    } else {
        const char *colon = memchr(auth, ':', auth_len);
        host_len = colon ? (size_t)(colon - auth) : auth_len;
        port = colon ? colon + 1 : NULL;
    }
    if (host_len == 0 || host_len > 253)
        return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s': missing or bad host", url);
    for (size_t i = 0; i < host_len; i++)
        if (!is_host_char(host[i], v6))
            return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s': bad host (user info and "
                                                   "odd characters are not accepted)", url);

    unsigned long port_num = 80;
    if (port) {
        size_t n = (size_t)(rest - port);
        port_num = 0;
        for (size_t i = 0; i < n; i++) {
            if (port[i] < '0' || port[i] > '9' || i >= 5)
                return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s': bad port", url);
            port_num = port_num * 10 + (unsigned long)(port[i] - '0');
        }
        if (port_num < 1 || port_num > 65535)
            return chat__error_set(CHAT_EINVAL, 0, "webhook URL '%s': bad port", url);
    }
    snprintf(out->port, sizeof(out->port), "%lu", port_num);

    size_t path_len = strcspn(rest, "#"); /* a fragment is never sent */
    out->host = chat__strndup(host, host_len);
    out->authority = chat__strndup(auth, auth_len);
    out->path = chat__malloc(path_len + 2);
    if (!out->host || !out->authority || !out->path) {
        chat__http_url_clear(out);
        return chat__error_set(CHAT_ENOMEM, 0, "webhook URL: out of memory");
    }
    size_t at = 0;
    if (rest[0] != '/')
        out->path[at++] = '/';
    memcpy(out->path + at, rest, path_len);
    out->path[at + path_len] = '\0';
    return CHAT_OK;
}

void chat__http_url_clear(chat__http_url *u)
{
    chat__free(u->host);
    chat__free(u->authority);
    chat__free(u->path);
    u->host = u->authority = u->path = NULL;
}

/* ---- abort ---- */

void chat__http_abort_init(chat__http_abort *a)
{
    pthread_mutex_init(&a->mu, NULL);
    a->fd = -1;
    atomic_init(&a->stop, 0);
}

void chat__http_abort_fire(chat__http_abort *a)
{
    pthread_mutex_lock(&a->mu);
    atomic_store(&a->stop, 1);
    if (a->fd >= 0)
        shutdown(a->fd, SHUT_RDWR);
    pthread_mutex_unlock(&a->mu);
}

void chat__http_abort_destroy(chat__http_abort *a)
{
    pthread_mutex_destroy(&a->mu);
}

/* Publishes fd (or -1) as the socket in use; fails once stop is set. */
static int set_fd(chat__http_abort *a, int fd)
{
    pthread_mutex_lock(&a->mu);
    int stopped = atomic_load(&a->stop);
    a->fd = stopped ? -1 : fd;
    pthread_mutex_unlock(&a->mu);
    return stopped && fd >= 0 ? -1 : 0;
}

static void close_fd(chat__http_abort *a, int fd)
{
    set_fd(a, -1); /* unpublish before close, so abort never hits a reused descriptor */
    close(fd);
}

/* ---- request ---- */

/* Connect-wait in short slices so an abort landing before the socket is visible still counts. */
static int wait_connected(int fd, int timeout_ms, chat__http_abort *a)
{
    for (int waited = 0; waited < timeout_ms; waited += 100) {
        if (atomic_load(&a->stop))
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, 100);
        if (n < 0 && errno != EINTR)
            return -1;
        if (n > 0) {
            int err = 0;
            socklen_t len = sizeof(err);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            return err == 0 && !atomic_load(&a->stop) ? 0 : -1;
        }
    }
    return -1;
}

static int open_conn(const chat__http_url *url, int timeout_ms, chat__http_abort *a)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(url->host, url->port, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0)
            continue;
        if (set_fd(a, fd) != 0) {
            close(fd);
            fd = -1;
            break;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && (errno != EINPROGRESS || wait_connected(fd, timeout_ms, a) != 0)) {
            close_fd(a, fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int io_error(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK ? CHAT_ETIMEDOUT : CHAT_EIO;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL); /* a closed peer must not raise SIGPIPE */
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? io_error() : CHAT_EIO;
        p += w;
        n -= (size_t)w;
    }
    return CHAT_OK;
}

/* Reads up to the end of the status line; the headers and body that follow are ignored. */
static int read_status(int fd)
{
    char buf[256];
    size_t have = 0;
    while (have < sizeof(buf) - 1) {
        ssize_t r = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return io_error();
        if (r == 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        if (strstr(buf, "\r\n"))
            break;
    }
    buf[have] = '\0';
    int minor, status;
    char sp;
    /* The reason phrase is optional in practice ("HTTP/1.1 200\r\n"). */
    if (sscanf(buf, "HTTP/1.%d %3d%c", &minor, &status, &sp) != 3 || (sp != ' ' && sp != '\r') ||
        status < 100 || status > 599)
        return have ? CHAT_EPROTO : CHAT_EIO;
    return status;
}

int chat__http_post(const chat__http_url *url, const char *body, size_t len, int timeout_ms,
                    chat__http_abort *a)
{
    static const char fmt[] = "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: libchat/%s\r\n"
                              "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                              "Connection: close\r\n\r\n";
    size_t cap = sizeof(fmt) + strlen(url->path) + strlen(url->authority) +
                 strlen(CHAT_VERSION_STRING) + 24;
    char *head = chat__malloc(cap);
    if (!head)
        return CHAT_EIO;
    int head_len = snprintf(head, cap, fmt, url->path, url->authority, CHAT_VERSION_STRING, len);

    int fd = open_conn(url, timeout_ms, a);
    if (fd < 0) {
        chat__free(head);
        return CHAT_ECLOSED;
    }
    int rc = send_all(fd, head, (size_t)head_len);
    if (rc == CHAT_OK)
        rc = send_all(fd, body, len);
    if (rc == CHAT_OK)
        rc = read_status(fd);
    close_fd(a, fd);
    chat__free(head);
    return rc;
}
