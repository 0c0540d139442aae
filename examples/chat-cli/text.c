/* Growable strings, and other people's text made safe to print on a terminal.
 *
 * Everything a peer chooses (message text, user names, group titles, file names) reaches the
 * terminal through sb_add_safe: a raw ESC would let a peer move the cursor, recolour or clear
 * the screen, retitle the window or fake a line from someone else; a direction override would
 * show text in an order other than the one it is sent in. */
#define _GNU_SOURCE
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

void sb_free(struct strbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}

void sb_reset(struct strbuf *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
}

static int grow(struct strbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s)
        return -1; /* the text is cut short; printing goes on */
    b->s = s;
    b->cap = cap;
    return 0;
}

void sb_add(struct strbuf *b, const char *s, size_t n)
{
    if (grow(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void sb_adds(struct strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

void sb_addf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* One UTF-8 sequence at s (n bytes left): its code point and length, or -1 when it is not
 * well-formed (overlong, surrogate, above U+10FFFF, cut short). */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp)
{
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    int len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 ? 2 : 0;
    if (len == 0 || s[0] > 0xF4 || (size_t)len > n)
        return -1;
    uint32_t v = s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return -1;
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return -1;
    *cp = v;
    return len;
}

/* Code points that reorder or hide what follows them: shown as \u escapes. */
static int is_format_control(uint32_t cp)
{
    return cp == 0x061C || cp == 0x200E || cp == 0x200F || (cp >= 0x202A && cp <= 0x202E) ||
           (cp >= 0x2066 && cp <= 0x2069) || cp == 0x2028 || cp == 0x2029;
}

void sb_add_safe(struct strbuf *b, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        uint32_t cp = 0;
        int n = utf8_next(s + i, len - i, &cp);
        if (n < 0) {
            sb_addf(b, "\\x%02x", s[i]);
            i++;
            continue;
        }
        if (cp == '\n' || cp == '\r' || cp == '\t') {
            sb_add(b, " ", 1);
        } else if (cp < 0x20 || cp == 0x7F) {
            char caret[2] = {'^', (char)(cp == 0x7F ? '?' : cp + 0x40)};
            sb_add(b, caret, 2);
        } else if ((cp >= 0x80 && cp < 0xA0) || is_format_control(cp)) {
            sb_addf(b, "\\u%04x", (unsigned)cp);
        } else {
            sb_add(b, (const char *)s + i, (size_t)n);
        }
        i += (size_t)n;
    }
}

void sb_adds_safe(struct strbuf *b, const char *s) { sb_add_safe(b, s, s ? strlen(s) : 0); }

size_t text_width(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t w = 0, i = 0;
    while (i < len) {
        uint32_t cp = 0;
        int n = utf8_next(s + i, len - i, &cp);
        if (n < 0) {
            w += 1;
            i++;
            continue;
        }
        i += (size_t)n;
        if (cp < 0x20 || cp == 0x7F) {
            w += 2; /* an editor shows it as ^X */
            continue;
        }
        int cw = wcwidth((wchar_t)cp);
        w += cw < 0 ? 1 : (size_t)cw;
    }
    return w;
}

void sb_add_size(struct strbuf *b, double bytes)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        sb_addf(b, "%.0f byte%s", bytes, bytes == 1 ? "" : "s");
        return;
    }
    int u = 0;
    bytes /= 1024;
    while (bytes >= 1024 && u < 3) {
        bytes /= 1024;
        u++;
    }
    sb_addf(b, "%.1f %s", bytes, unit[u]);
}
