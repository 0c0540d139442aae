/* Fuzz target: the HTTP/1.1 request head parser (lib/transport/http1.c).
 *
 * Input: the bytes a client sent, parsed as they are and again repeated to around the 8 KiB
 * head limit (so TOO_LONG is reached without long inputs).
 *
 * Invariants, against a model that reads the head line by line:
 *  - PARTIAL exactly when there is no CRLFCRLF (after the leading empty lines) within the first
 *    CHAT__HTTP1_MAX_HEAD bytes and fewer bytes than that came, TOO_LONG when as many came;
 *  - otherwise OK exactly when the model accepts the head, else BAD; head_len ends at the
 *    blank line;
 *  - on OK: method, HTTP minor version, path and query are the model's reading of the request
 *    line; the fields are the model's, in order, each name lower-case tchar and each value
 *    without control bytes or surrounding blanks; there is no transfer-encoding field;
 *    content_length is the single decimal Content-Length, or -1;
 *  - the outcome is the same for the head alone as with bytes after it. */
#include "fuzz.h"

#include "transport/http1.h"
#include "transport/transport.h"

#include <string.h>

#define MAX_LINES 64

typedef struct model {
    int rc;
    size_t head_len;
    int method, minor;
    const unsigned char *path, *query;
    size_t path_len, query_len;
    int nfields;
    struct {
        const unsigned char *name, *value;
        size_t name_len, value_len;
    } field[MAX_LINES];
    int64_t content_length;
} model;

/* RFC 9110 5.6.2: "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`"
 * / "|" / "~" / DIGIT / ALPHA */
static int is_tchar(unsigned c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return 1;
    if (c >= '0' && c <= '9')
        return 1;
    for (const char *e = extra; *e; e++)
        if ((unsigned char)*e == c)
            return 1;
    return 0;
}

static int eq_lower(const unsigned char *s, size_t n, const char *lower)
{
    if (strlen(lower) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (c >= 'A' && c <= 'Z')
            c += 32;
        if (c != (unsigned char)lower[i])
            return 0;
    }
    return 1;
}

static int eq(const unsigned char *s, size_t n, const char *t)
{
    return strlen(t) == n && memcmp(s, t, n) == 0;
}

static int request_line(model *m, const unsigned char *l, size_t n)
{
    /* exactly METHOD SP TARGET SP VERSION */
    size_t sp[2], nsp = 0;
    for (size_t i = 0; i < n; i++)
        if (l[i] == ' ') {
            if (nsp == 2)
                return 0;
            sp[nsp++] = i;
        }
    if (nsp != 2 || sp[0] == 0)
        return 0;
    for (size_t i = 0; i < sp[0]; i++)
        if (!is_tchar(l[i]))
            return 0;
    static const char *methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    static const int codes[] = {CHAT__HTTP_GET,   CHAT__HTTP_HEAD,   CHAT__HTTP_POST,
                                CHAT__HTTP_PUT,   CHAT__HTTP_PATCH,  CHAT__HTTP_DELETE,
                                CHAT__HTTP_OPTIONS};
    m->method = CHAT__HTTP_OTHER;
    for (size_t i = 0; i < 7; i++)
        if (eq(l, sp[0], methods[i]))
            m->method = codes[i];
    const unsigned char *t = l + sp[0] + 1;
    size_t tn = sp[1] - sp[0] - 1;
    if (tn == 0 || t[0] != '/')
        return 0;
    for (size_t i = 0; i < tn; i++)
        if (t[i] < 0x21 || t[i] > 0x7E)
            return 0;
    const unsigned char *v = l + sp[1] + 1;
    size_t vn = n - sp[1] - 1;
    if (eq(v, vn, "HTTP/1.0"))
        m->minor = 0;
    else if (eq(v, vn, "HTTP/1.1"))
        m->minor = 1;
    else
        return 0;
    const unsigned char *q = memchr(t, '?', tn);
    m->path = t;
    m->path_len = q ? (size_t)(q - t) : tn;
    m->query = q ? q + 1 : t + tn;
    m->query_len = q ? tn - m->path_len - 1 : 0;
    return 1;
}

static int field_line(model *m, const unsigned char *l, size_t n)
{
    const unsigned char *colon = memchr(l, ':', n);
    if (!colon || colon == l)
        return 0; /* also obsolete folding: a line starting with a blank has no token before */
    size_t nn = (size_t)(colon - l);
    for (size_t i = 0; i < nn; i++)
        if (!is_tchar(l[i]))
            return 0;
    const unsigned char *v = colon + 1, *e = l + n;
    while (v < e && (*v == ' ' || *v == '\t'))
        v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    for (const unsigned char *p = v; p < e; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7F)
            return 0;
    if (m->nfields == CHAT__HTTP1_MAX_FIELDS)
        return 0;
    m->field[m->nfields].name = l;
    m->field[m->nfields].name_len = nn;
    m->field[m->nfields].value = v;
    m->field[m->nfields].value_len = (size_t)(e - v);
    m->nfields++;
    return 1;
}

static void run_model(model *m, const unsigned char *b, size_t len)
{
    memset(m, 0, sizeof *m);
    size_t start = 0;
    while (len - start >= 2 && b[start] == '\r' && b[start + 1] == '\n')
        start += 2;
    size_t end = 0;
    int found = 0;
    for (size_t i = start; i + 4 <= len && i + 4 <= CHAT__HTTP1_MAX_HEAD; i++)
        if (memcmp(b + i, "\r\n\r\n", 4) == 0) {
            end = i;
            found = 1;
            break;
        }
    if (!found) {
        m->rc = len >= CHAT__HTTP1_MAX_HEAD ? CHAT__HTTP1_TOO_LONG : CHAT__HTTP1_PARTIAL;
        return;
    }
    m->head_len = end + 4;
    m->rc = CHAT__HTTP1_BAD;
    /* lines: b[start..end) split at each CRLF */
    size_t at = start;
    int first = 1;
    for (;;) {
        size_t e = at;
        while (e < end && !(b[e] == '\r' && e + 1 < end && b[e + 1] == '\n'))
            e++;
        for (size_t i = at; i < e; i++)
            if (b[i] == '\r' || b[i] == '\n' || b[i] == '\0')
                return;
        if (!(first ? request_line(m, b + at, e - at) : field_line(m, b + at, e - at)))
            return;
        first = 0;
        if (e >= end)
            break;
        at = e + 2;
    }
    m->content_length = -1;
    int cls = 0;
    for (int i = 0; i < m->nfields; i++) {
        const unsigned char *name = m->field[i].name;
        size_t nn = m->field[i].name_len;
        if (eq_lower(name, nn, "transfer-encoding"))
            return;
        if (!eq_lower(name, nn, "content-length"))
            continue;
        if (++cls > 1)
            return;
        const unsigned char *v = m->field[i].value;
        size_t vn = m->field[i].value_len;
        if (vn == 0 || vn > 15)
            return;
        int64_t x = 0;
        for (size_t k = 0; k < vn; k++) {
            if (v[k] < '0' || v[k] > '9')
                return;
            x = x * 10 + (v[k] - '0');
        }
        m->content_length = x;
    }
    m->rc = CHAT__HTTP1_OK;
}

static int cstr_eq(const char *s, const unsigned char *p, size_t n)
{
    return s && strlen(s) == n && memcmp(s, p, n) == 0;
}

/* Parse a private copy of b[0..len) and check it against the model; returns the result. */
static int check(const unsigned char *b, size_t len)
{
    model m;
    run_model(&m, b, len);
    char *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf != NULL);
    if (len)
        memcpy(buf, b, len);
    chat__http1_req req;
    int rc = chat__http1_parse(buf, len, &req);
    FUZZ_CHECK(rc == m.rc);
    if (rc == CHAT__HTTP1_OK || rc == CHAT__HTTP1_BAD)
        FUZZ_CHECK(req.head_len == m.head_len);
    if (rc == CHAT__HTTP1_OK) {
        FUZZ_CHECK(req.method == m.method && req.minor == m.minor);
        FUZZ_CHECK(cstr_eq(req.path, m.path, m.path_len));
        FUZZ_CHECK(cstr_eq(req.query, m.query, m.query_len));
        FUZZ_CHECK(req.nfields == m.nfields);
        FUZZ_CHECK(req.content_length == m.content_length);
        for (int i = 0; i < req.nfields; i++) {
            const char *name = req.field[i].name, *value = req.field[i].value;
            size_t nn = strlen(name), vn = strlen(value);
            FUZZ_CHECK(nn == m.field[i].name_len && eq_lower(m.field[i].name, nn, name));
            FUZZ_CHECK(cstr_eq(value, m.field[i].value, m.field[i].value_len));
            for (size_t k = 0; k < nn; k++)
                FUZZ_CHECK(is_tchar((unsigned char)name[k]) &&
                           !(name[k] >= 'A' && name[k] <= 'Z'));
            for (size_t k = 0; k < vn; k++)
                FUZZ_CHECK(((unsigned char)value[k] >= 0x20 || value[k] == '\t') &&
                           (unsigned char)value[k] != 0x7F);
            FUZZ_CHECK(vn == 0 || (value[0] != ' ' && value[0] != '\t' && value[vn - 1] != ' ' &&
                                   value[vn - 1] != '\t'));
            FUZZ_CHECK(strcmp(name, "transfer-encoding") != 0);
            /* and the lookup finds the first of the name, counting them all */
            int count = 0, want = 0;
            const char *first = NULL;
            for (int j = 0; j < req.nfields; j++)
                if (strcmp(req.field[j].name, name) == 0) {
                    if (!want++)
                        first = req.field[j].value;
                }
            FUZZ_CHECK(chat__http1_field_get(&req, name, &count) == first && count == want);
        }
    }
    free(buf);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int rc = check(data, size);
    if (rc == CHAT__HTTP1_OK || rc == CHAT__HTTP1_BAD) {
        /* the head alone: the same outcome */
        model m;
        run_model(&m, data, size);
        FUZZ_CHECK(check(data, m.head_len) == rc);
    }
    if (size == 0)
        return 0;
    /* the input over and over, to within a few bytes of the limit either side */
    size_t len = CHAT__HTTP1_MAX_HEAD - 8 + data[0] % 17;
    unsigned char *big = malloc(len);
    FUZZ_CHECK(big != NULL);
    for (size_t i = 0; i < len; i++)
        big[i] = data[i % size];
    check(big, len);
    free(big);
    return 0;
}
