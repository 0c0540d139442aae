/* HTTP/1.1 request heads; see http1.h. */
#include "transport/http1.h"

#include "transport/transport.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2 tchar. */
static int tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int method_of(const char *m)
{
    static const struct {
        const char *name;
        int method;
    } map[] = {
        {"GET", CHAT__HTTP_GET},       {"HEAD", CHAT__HTTP_HEAD},
        {"POST", CHAT__HTTP_POST},     {"PUT", CHAT__HTTP_PUT},
        {"PATCH", CHAT__HTTP_PATCH},   {"DELETE", CHAT__HTTP_DELETE},
        {"OPTIONS", CHAT__HTTP_OPTIONS},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, m) == 0)
            return map[i].method;
    return CHAT__HTTP_OTHER;
}

/* The request line in line (NUL-terminated, without CRLF). */
static int request_line(char *line, chat__http1_req *req)
{
    char *sp1 = strchr(line, ' ');
    if (!sp1 || sp1 == line)
        return CHAT__HTTP1_BAD;
    *sp1 = '\0';
    for (char *p = line; *p; p++)
        if (!tchar((unsigned char)*p))
            return CHAT__HTTP1_BAD;
    req->method = method_of(line);
    char *target = sp1 + 1;
    char *sp2 = strchr(target, ' ');
    if (!sp2 || target[0] != '/')
        return CHAT__HTTP1_BAD; /* origin-form only */
    *sp2 = '\0';
    for (char *p = target; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7F)
            return CHAT__HTTP1_BAD;
    const char *ver = sp2 + 1;
    if (strncmp(ver, "HTTP/1.", 7) != 0 || (ver[7] != '0' && ver[7] != '1') || ver[8])
        return CHAT__HTTP1_BAD;
    req->minor = ver[7] - '0';
    char *q = strchr(target, '?');
    if (q) {
        *q = '\0';
        req->query = q + 1;
    } else {
        req->query = "";
    }
    req->path = target;
    return CHAT__HTTP1_OK;
}

static int field_line(char *line, chat__http1_req *req)
{
    if (line[0] == ' ' || line[0] == '\t')
        return CHAT__HTTP1_BAD; /* obsolete line folding */
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return CHAT__HTTP1_BAD;
    *colon = '\0';
    for (char *p = line; *p; p++) {
        if (!tchar((unsigned char)*p))
            return CHAT__HTTP1_BAD; /* also whitespace before the colon */
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char *end = v + strlen(v);
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    for (char *p = v; *p; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7F)
            return CHAT__HTTP1_BAD;
    if (req->nfields == CHAT__HTTP1_MAX_FIELDS)
        return CHAT__HTTP1_BAD;
    req->field[req->nfields].name = line;
    req->field[req->nfields].value = v;
    req->nfields++;
    return CHAT__HTTP1_OK;
}

/* Content-Length and Transfer-Encoding: how the body is framed. */
static int framing(chat__http1_req *req)
{
    int n = 0;
    if (chat__http1_field_get(req, "transfer-encoding", &n) || n)
        return CHAT__HTTP1_BAD;
    const char *cl = chat__http1_field_get(req, "content-length", &n);
    req->content_length = -1;
    if (!cl)
        return CHAT__HTTP1_OK;
    if (n > 1 || !cl[0] || strlen(cl) > 15)
        return CHAT__HTTP1_BAD;
    int64_t v = 0;
    for (const char *p = cl; *p; p++) {
        if (*p < '0' || *p > '9')
            return CHAT__HTTP1_BAD;
        v = v * 10 + (*p - '0');
    }
    req->content_length = v;
    return CHAT__HTTP1_OK;
}

int chat__http1_parse(char *buf, size_t len, chat__http1_req *req)
{
    memset(req, 0, sizeof *req);
    size_t start = 0;
    while (start + 1 < len && buf[start] == '\r' && buf[start + 1] == '\n')
        start += 2;
    size_t scan = len < CHAT__HTTP1_MAX_HEAD ? len : CHAT__HTTP1_MAX_HEAD;
    char *end = NULL;
    for (size_t i = start; i + 3 < scan; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i;
            break;
        }
    if (!end)
        return len >= CHAT__HTTP1_MAX_HEAD ? CHAT__HTTP1_TOO_LONG : CHAT__HTTP1_PARTIAL;
    req->head_len = (size_t)(end - buf) + 4;
    if (memchr(buf + start, '\0', (size_t)(end - buf) - start))
        return CHAT__HTTP1_BAD;
    end[0] = '\0';
    char *line = buf + start;
    int first = 1;
    while (line) {
        char *crlf = strstr(line, "\r\n");
        if (crlf)
            *crlf = '\0';
        if (strchr(line, '\r') || strchr(line, '\n'))
            return CHAT__HTTP1_BAD; /* a bare CR or LF */
        int rc = first ? request_line(line, req) : field_line(line, req);
        if (rc != CHAT__HTTP1_OK)
            return rc;
        first = 0;
        line = crlf ? crlf + 2 : NULL;
    }
    return framing(req);
}

const char *chat__http1_field_get(const chat__http1_req *req, const char *name, int *count)
{
    const char *found = NULL;
    int n = 0;
    for (int i = 0; i < req->nfields; i++)
        if (strcmp(req->field[i].name, name) == 0) {
            if (!found)
                found = req->field[i].value;
            n++;
        }
    if (count)
        *count = n;
    return found;
}

int chat__http1_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p = e;
    }
    return 0;
}
