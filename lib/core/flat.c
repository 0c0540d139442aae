/* The flat-frame scanner; see flat.h. Every "return 0" means "let the full decoder read it",
 * never "this frame is wrong": the scanner refuses nothing on its own. */
#include "core/flat.h"

#include "core/swar.h"

#include <string.h>

typedef struct scan {
    const unsigned char *p;
    size_t i, n;
} scan;

/* JSON's own whitespace only (cJSON also skips other control bytes; those go the full way). */
static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static void skip_ws(scan *s)
{
    while (s->i < s->n && is_ws(s->p[s->i]))
        s->i++;
}

/* The escapes cJSON decodes to one byte; \u (and anything else) is left to the full decoder,
 * which also refuses "\u0000" and lone surrogates. */
static int simple_escape(unsigned char c)
{
    return c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
           c == 't';
}

/* A string at s->i (its opening quote): its bytes and decoded length; escapes only if allowed. */
static int scan_string(scan *s, int escapes, const char **raw, size_t *raw_len, size_t *len)
{
    if (s->i >= s->n || s->p[s->i] != '"')
        return 0;
    size_t start = ++s->i, decoded = 0;
    for (;;) {
        size_t run = chat__swar_json_plain(s->p + s->i, s->n - s->i);
        s->i += run;
        decoded += run;
        if (s->i >= s->n)
            return 0;
        unsigned char c = s->p[s->i];
        if (c == '"')
            break;
        if (c != '\\' || !escapes || s->i + 1 >= s->n || !simple_escape(s->p[s->i + 1]))
            return 0; /* a control byte, or an escape left to the full decoder */
        s->i += 2;
        decoded++;
    }
    *raw = (const char *)s->p + start;
    *raw_len = s->i - start;
    *len = decoded;
    s->i++; /* the closing quote */
    return 1;
}

static int scan_number(scan *s, uint64_t *out)
{
    size_t start = s->i;
    uint64_t v = 0;
    while (s->i < s->n && s->p[s->i] >= '0' && s->p[s->i] <= '9')
        v = v * 10 + (uint64_t)(s->p[s->i++] - '0');
    size_t digits = s->i - start;
    if (digits == 0 || digits > CHAT__FLAT_NUM_DIGITS || (digits > 1 && s->p[start] == '0'))
        return 0;
    /* A fraction, an exponent or any other byte glued on: the full decoder's to judge. */
    if (s->i < s->n && s->p[s->i] != ',' && s->p[s->i] != '}' && !is_ws(s->p[s->i]))
        return 0;
    *out = v;
    return 1;
}

int chat__flat_scan(const char *buf, size_t len, chat__flat *out)
{
    if (!buf || !out)
        return 0;
    scan s = {(const unsigned char *)buf, 0, len};
    out->n = 0;
    skip_ws(&s);
    if (s.i >= s.n || s.p[s.i++] != '{')
        return 0;
    skip_ws(&s);
    if (s.i < s.n && s.p[s.i] == '}') {
        s.i++;
    } else {
        for (;;) {
            if (out->n == CHAT__FLAT_MAX)
                return 0;
            chat__flat_val *v = &out->v[out->n];
            size_t key_dec;
            if (!scan_string(&s, 0, &v->key, &v->key_len, &key_dec))
                return 0;
            skip_ws(&s);
            if (s.i >= s.n || s.p[s.i++] != ':')
                return 0;
            skip_ws(&s);
            if (s.i < s.n && s.p[s.i] == '"') {
                if (!scan_string(&s, 1, &v->raw, &v->raw_len, &v->len))
                    return 0;
                v->num = 0;
            } else {
                v->raw = NULL;
                v->raw_len = v->len = 0;
                if (!scan_number(&s, &v->num))
                    return 0;
            }
            /* A repeated key is the full decoder's to refuse. */
            for (size_t k = 0; k < out->n; k++)
                if (out->v[k].key_len == v->key_len &&
                    memcmp(out->v[k].key, v->key, v->key_len) == 0)
                    return 0;
            out->n++;
            skip_ws(&s);
            if (s.i >= s.n)
                return 0;
            unsigned char c = s.p[s.i++];
            if (c == '}')
                break;
            if (c != ',')
                return 0;
            skip_ws(&s);
        }
    }
    skip_ws(&s);
    return s.i == s.n;
}

const chat__flat_val *chat__flat_get(const chat__flat *fl, const char *key)
{
    const chat__flat_val *v;
    chat__flat_pick(fl, &key, 1, &v);
    return v;
}

void chat__flat_pick(const chat__flat *fl, const char *const *keys, size_t n,
                     const chat__flat_val **out)
{
    for (size_t k = 0; k < n; k++)
        out[k] = NULL;
    for (size_t i = 0; i < fl->n; i++) {
        const chat__flat_val *v = &fl->v[i];
        for (size_t k = 0; k < n; k++)
            if ((!v->key_len || keys[k][0] == v->key[0]) &&
                strncmp(keys[k], v->key, v->key_len) == 0 && keys[k][v->key_len] == '\0') {
                out[k] = v;
                break;
            }
    }
}

/* The byte of a scanned string at raw[*i], its escape decoded; *i moves past it. */
static char decoded_at(const char *raw, size_t *i)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    char c = raw[(*i)++];
    if (c == '\\')
        c = to[strchr(from, raw[(*i)++]) - from]; /* the scan let only these through */
    return c;
}

int chat__flat_is(const chat__flat_val *v, const char *s)
{
    size_t n = strlen(s);
    if (!v || !v->raw || v->len != n)
        return 0;
    if (v->raw_len == n) /* no escapes: the bytes as sent are the string */
        return memcmp(v->raw, s, n) == 0;
    for (size_t i = 0, o = 0; o < n; o++)
        if (decoded_at(v->raw, &i) != s[o])
            return 0;
    return 1;
}

void chat__flat_copy(const chat__flat_val *v, char *out)
{
    if (v->raw_len == v->len) {
        memcpy(out, v->raw, v->len);
    } else {
        for (size_t i = 0, o = 0; o < v->len; o++)
            out[o] = decoded_at(v->raw, &i);
    }
    out[v->len] = '\0';
}
