/* `chatd admin`'s side of the admin listener: one HTTP request, its status and body. */
#include "chatd.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ANSWER_MAX (16 << 20)
#define ANSWER_TIMEOUT_MS 30000 /* a revocation waits for a commit */

int chatd_admin_request(const char *addr, const char *token, const char *method,
                        const char *path, int *status, char **body)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (chatd_parse_addr(addr, &ss, &len) != 0) {
        fprintf(stderr, "chatd: not an admin address: '%s'\n", addr);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&ss, len) != 0) {
        int refused = errno == ECONNREFUSED;
        if (!refused)
            fprintf(stderr, "chatd: cannot reach the admin listener at %s: %s\n", addr,
                    strerror(errno));
        if (fd >= 0)
            close(fd);
        return refused ? -2 : -1;
    }
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n",
                     method, path, addr, token);
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        fprintf(stderr, "chatd: cannot send to the admin listener: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    explicit_bzero(req, sizeof req);
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (!buf || poll(&p, 1, ANSWER_TIMEOUT_MS) != 1)
            break;
        if (got == cap) {
            char *nb = cap < ANSWER_MAX ? realloc(buf, 2 * cap + 1) : NULL;
            if (!nb)
                break;
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + got, cap - got, 0);
        if (r <= 0)
            break; /* the end of the answer (Connection: close), or a failure */
        got += (size_t)r;
    }
    close(fd);
    if (buf)
        buf[got] = '\0';
    char *sep = buf ? strstr(buf, "\r\n\r\n") : NULL;
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", status) != 1) {
        fprintf(stderr, "chatd: no answer from the admin listener at %s\n", addr);
        free(buf);
        return -1;
    }
    memmove(buf, sep + 4, strlen(sep + 4) + 1);
    *body = buf;
    return 0;
}
