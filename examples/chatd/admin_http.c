/* chatd's admin listener: a small HTTP/1.1 server on a thread of its own, on an address apart
 * from the public port (127.0.0.1 unless told otherwise).
 *
 *   GET  /metrics                                   Prometheus text format (no auth)
 *   GET  /healthz                                   200 while the loop thread answers
 *   GET  /readyz                                    200 while ready (not draining, store, bus)
 *   GET  /admin/stats                               the metrics, admin token required
 *   GET  /admin/users/USER                          devices and connections (JSON)
 *   GET  /admin/convs/ID                            head and members (JSON)
 *   POST /admin/connections/ID/disconnect
 *   POST /admin/users/USER/devices/DEVICE/revoke
 *
 * /admin/ wants "Authorization: Bearer <the admin token>" (DIR/admin.token). One request per
 * connection, answered with Connection: close, one connection at a time with a 2 s budget for
 * the request: a scraper, a load balancer's probe and an operator's command are all it serves,
 * and a thread with blocking calls is the simplest server that cannot stall the chat loop.
 * The library gives the content (chat_server_metrics_text, chat_server_ready, the admin
 * calls); any host can serve it from its own HTTP stack instead. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, pipe2 */
#endif
#include "chatd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MAX 8192
#define REQUEST_BUDGET_MS 2000
#define PROBE_TIMEOUT_MS 2000

struct chatd_admin {
    chat_server *srv;
    int fd, wake[2];
    char token[CHATD_ADMIN_TOKEN_LEN + 1];
    pthread_t thread;
};

int chatd_same_secret(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char d = na != nb;
    for (size_t i = 0; i < na && i < nb; i++)
        d |= (unsigned char)(a[i] ^ b[i]);
    return d == 0;
}

int chatd_admin_token(const char *data_dir, int create, char out[CHATD_ADMIN_TOKEN_LEN + 1])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.token", data_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        unsigned char raw[CHATD_ADMIN_TOKEN_LEN / 2];
        if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
            fprintf(stderr, "chatd: no randomness for the admin token: %s\n", strerror(errno));
            return -1;
        }
        for (size_t i = 0; i < sizeof raw; i++)
            snprintf(out + 2 * i, 3, "%02x", raw[i]);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
            char line[CHATD_ADMIN_TOKEN_LEN + 2];
            snprintf(line, sizeof line, "%s\n", out);
            ssize_t w = write(fd, line, CHATD_ADMIN_TOKEN_LEN + 1);
            close(fd);
            if (w == CHATD_ADMIN_TOKEN_LEN + 1)
                return 0;
            unlink(path);
        }
        if (errno != EEXIST) {
            fprintf(stderr, "chatd: cannot write %s: %s\n", path, strerror(errno));
            return -1;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC); /* another chatd made it first */
    }
    if (fd < 0) {
        fprintf(stderr, "chatd: cannot read %s: %s\n", path, strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, out, CHATD_ADMIN_TOKEN_LEN);
    close(fd);
    out[n > 0 ? n : 0] = '\0';
    if (n != CHATD_ADMIN_TOKEN_LEN || strspn(out, "0123456789abcdef") != CHATD_ADMIN_TOKEN_LEN) {
        fprintf(stderr, "chatd: %s does not hold a token of %d hex digits\n", path,
                CHATD_ADMIN_TOKEN_LEN);
        return -1;
    }
    return 0;
}

/* ---- one request ---- */

typedef struct request {
    char buf[REQUEST_MAX + 1];
    size_t len;
    char method[8];
    char path[1024];
    char auth[256];
} request;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read the request head (up to the blank line) within the budget: 0, or -1. */
static int read_head(int fd, request *r)
{
    int64_t deadline = now_ms() + REQUEST_BUDGET_MS;
    for (;;) {
        r->buf[r->len] = '\0';
        if (strstr(r->buf, "\r\n\r\n") || strstr(r->buf, "\n\n"))
            return 0;
        if (r->len == REQUEST_MAX)
            return -1;
        int64_t left = deadline - now_ms();
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return -1;
        ssize_t n = recv(fd, r->buf + r->len, REQUEST_MAX - r->len, 0);
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
}

static int parse(request *r)
{
    char version[16];
    if (sscanf(r->buf, "%7s %1023s %15s", r->method, r->path, version) != 3 ||
        strncmp(version, "HTTP/1.", 7) != 0)
        return -1;
    r->auth[0] = '\0';
    for (char *p = strchr(r->buf, '\n'); p && p[1]; p = strchr(p + 1, '\n')) {
        if (strncasecmp(p + 1, "authorization:", 14) != 0)
            continue;
        const char *v = p + 15;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t n = strcspn(v, "\r\n");
        if (n >= sizeof r->auth)
            n = 0;
        memcpy(r->auth, v, n);
        r->auth[n] = '\0';
        break;
    }
    return 0;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void respond(int fd, int status, const char *ctype, const char *body)
{
    const char *text = status == 200   ? "OK"
                       : status == 400 ? "Bad Request"
                       : status == 401 ? "Unauthorized"
                       : status == 404 ? "Not Found"
                       : status == 405 ? "Method Not Allowed"
                       : status == 503 ? "Service Unavailable"
                                       : "Internal Server Error";
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, text, ctype, strlen(body),
                     status == 401 ? "WWW-Authenticate: Bearer\r\n" : "");
    send_all(fd, head, (size_t)n);
    send_all(fd, body, strlen(body));
}

/* A library failure as {"error": NAME, "message": ...} with the status it maps to. */
static void respond_error(int fd, int rc)
{
    const char *msg = chat_error_last()->message ? chat_error_last()->message : "";
    char body[512], esc[300];
    size_t k = 0;
    for (const char *p = msg; *p && k + 2 < sizeof esc; p++)
        if ((unsigned char)*p >= 0x20 && *p != '"' && *p != '\\')
            esc[k++] = *p;
    esc[k] = '\0';
    snprintf(body, sizeof body, "{\"error\":\"%s\",\"message\":\"%s\"}\n", chat_error_name(rc),
             esc);
    int status = rc == CHAT_ENOTFOUND ? 404 : rc == CHAT_EINVAL ? 400 : rc == CHAT_EBUSY ||
                 rc == CHAT_ECLOSED || rc == CHAT_ETIMEDOUT ? 503 : 500;
    respond(fd, status, "application/json", body);
}

static void respond_owned(int fd, int rc, const char *ctype, char *body)
{
    if (rc != CHAT_OK) {
        respond_error(fd, rc);
        return;
    }
    respond(fd, 200, ctype, body);
    chat_string_free(body);
}

/* The path's segments after the prefix, split at '/', into seg (at most max). */
static int segments(char *path, char **seg, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *s = strtok_r(path, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return -1;
        seg[n++] = s;
    }
    return n;
}

static void serve_admin(chatd_admin *a, int fd, request *r)
{
    const char *bearer = strncasecmp(r->auth, "Bearer ", 7) == 0 ? r->auth + 7 : "";
    if (!chatd_same_secret(bearer, a->token)) {
        respond(fd, 401, "application/json",
                "{\"error\":\"EAUTH\",\"message\":\"the admin token is required\"}\n");
        return;
    }
    int get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    char *seg[8];
    int n = segments(r->path + strlen("/admin/"), seg, 8);
    char *out = NULL;
    int rc;
    if (n == 1 && strcmp(seg[0], "stats") == 0 && get) {
        rc = chat_server_metrics_text(&out, a->srv);
        respond_owned(fd, rc, "text/plain; version=0.0.4; charset=utf-8", out);
    } else if (n == 2 && strcmp(seg[0], "users") == 0 && get) {
        rc = chat_server_admin_user(&out, a->srv, seg[1]);
        respond_owned(fd, rc, "application/json", out);
    } else if (n == 2 && strcmp(seg[0], "convs") == 0 && get) {
        char *end;
        long long id = strtoll(seg[1], &end, 10);
        rc = *end || id <= 0 ? CHAT_EINVAL : chat_server_admin_conv(&out, a->srv, id);
        respond_owned(fd, rc, "application/json", out);
    } else if (n == 3 && strcmp(seg[0], "connections") == 0 &&
               strcmp(seg[2], "disconnect") == 0 && post) {
        char *end;
        unsigned long long id = strtoull(seg[1], &end, 10);
        rc = *end || id == 0 ? CHAT_EINVAL : chat_server_admin_disconnect(a->srv, id);
        if (rc == CHAT_OK)
            respond(fd, 200, "application/json", "{\"ok\":true}\n");
        else
            respond_error(fd, rc);
    } else if (n == 5 && strcmp(seg[0], "users") == 0 && strcmp(seg[2], "devices") == 0 &&
               strcmp(seg[4], "revoke") == 0 && post) {
        rc = chat_server_admin_revoke_device(a->srv, seg[1], seg[3]);
        if (rc == CHAT_OK)
            respond(fd, 200, "application/json", "{\"ok\":true}\n");
        else
            respond_error(fd, rc);
    } else if (n > 0 && (get || post)) {
        respond(fd, 404, "application/json", "{\"error\":\"ENOTFOUND\",\"message\":\"no such "
                                             "admin command\"}\n");
    } else {
        respond(fd, 405, "application/json", "{\"error\":\"EINVAL\",\"message\":\"GET or POST\"}\n");
    }
}

static void serve(chatd_admin *a, int fd)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return;
    if (read_head(fd, r) != 0 || parse(r) != 0) {
        respond(fd, 400, "text/plain", "bad request\n");
        free(r);
        return;
    }
    int get = strcmp(r->method, "GET") == 0;
    if (strcmp(r->path, "/metrics") == 0 && get) {
        char *text = NULL;
        int rc = chat_server_metrics_text(&text, a->srv);
        respond_owned(fd, rc, "text/plain; version=0.0.4; charset=utf-8", text);
    } else if (strcmp(r->path, "/healthz") == 0 && get) {
        if (chat_server_alive(a->srv, PROBE_TIMEOUT_MS) == CHAT_OK)
            respond(fd, 200, "text/plain", "ok\n");
        else
            respond(fd, 503, "text/plain", "not alive\n");
    } else if (strcmp(r->path, "/readyz") == 0 && get) {
        int rc = chat_server_ready(a->srv, PROBE_TIMEOUT_MS);
        char body[300];
        snprintf(body, sizeof body, rc == CHAT_OK ? "ready\n" : "not ready: %s\n",
                 chat_error_last()->message ? chat_error_last()->message : "");
        respond(fd, rc == CHAT_OK ? 200 : 503, "text/plain", body);
    } else if (strncmp(r->path, "/admin/", 7) == 0) {
        serve_admin(a, fd, r);
    } else if (!get) {
        respond(fd, 405, "text/plain", "GET only\n");
    } else {
        respond(fd, 404, "text/plain", "not found\n");
    }
    free(r);
}

static void *admin_main(void *arg)
{
    chatd_admin *a = arg;
    for (;;) {
        struct pollfd p[2] = {{a->fd, POLLIN, 0}, {a->wake[0], POLLIN, 0}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        int c = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0)
            continue;
        serve(a, c);
        close(c);
    }
    return NULL;
}

int chatd_parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(spec, ':');
    const char *port = spec;
    if (colon) {
        size_t n = (size_t)(colon - spec);
        if (n == 0 || n >= sizeof host)
            return -1;
        memcpy(host, spec, n);
        host[n] = '\0';
        if (host[0] == '[' && host[n - 1] == ']') { /* [::1]:port */
            memmove(host, host + 1, n - 2);
            host[n - 2] = '\0';
        }
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end || p < 0 || p > 65535)
        return -1;
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)p);
        *len = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)p);
        *len = sizeof *in6;
    } else {
        return -1;
    }
    return 0;
}

int chatd_admin_start(chatd_admin **out, chat_server *srv, const char *spec, const char *token,
                      char *bound, size_t bound_size)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (chatd_parse_addr(spec, &ss, &len) != 0) {
        fprintf(stderr, "chatd: --admin-listen wants [ADDR:]PORT with a numeric address, got "
                        "'%s'\n", spec);
        return -1;
    }
    chatd_admin *a = calloc(1, sizeof *a);
    if (!a)
        return -1;
    a->srv = srv;
    snprintf(a->token, sizeof a->token, "%s", token);
    a->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (a->fd >= 0)
        setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->fd < 0 || bind(a->fd, (struct sockaddr *)&ss, len) != 0 || listen(a->fd, 16) != 0 ||
        getsockname(a->fd, (struct sockaddr *)&ss, &len) != 0 || pipe2(a->wake, O_CLOEXEC) != 0) {
        fprintf(stderr, "chatd: cannot listen for admin on %s: %s\n", spec, strerror(errno));
        if (a->fd >= 0)
            close(a->fd);
        free(a);
        return -1;
    }
    char host[INET6_ADDRSTRLEN];
    int port;
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        snprintf(bound, bound_size, "%s:%d", host, port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
        port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        snprintf(bound, bound_size, "[%s]:%d", host, port);
    }
    if (pthread_create(&a->thread, NULL, admin_main, a) != 0) {
        fprintf(stderr, "chatd: cannot start the admin thread\n");
        close(a->fd);
        close(a->wake[0]);
        close(a->wake[1]);
        free(a);
        return -1;
    }
    *out = a;
    return 0;
}

void chatd_admin_stop(chatd_admin *a)
{
    if (!a)
        return;
    ssize_t w = write(a->wake[1], "x", 1);
    (void)w;
    pthread_join(a->thread, NULL);
    close(a->fd);
    close(a->wake[0]);
    close(a->wake[1]);
    explicit_bzero(a->token, sizeof a->token);
    free(a);
}
