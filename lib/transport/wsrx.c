/* RFC 6455 receive side; see wsrx.h. */
#include "transport/wsrx.h"

#include "core/alloc.h"
#include "core/utf8.h"

#include <string.h>

static void unmask(unsigned char *p, size_t n, const unsigned char mask[4], unsigned *pos)
{
    unsigned m = *pos;
    size_t i = 0;
    if (m == 0 && n >= 8) {
        /* Eight bytes at a time from a mask-aligned start. */
        uint64_t k;
        unsigned char k8[8];
        memcpy(k8, mask, 4);
        memcpy(k8 + 4, mask, 4);
        memcpy(&k, k8, 8);
        for (; i + 8 <= n; i += 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            w ^= k;
            memcpy(p + i, &w, 8);
        }
    }
    for (; i < n; i++, m++)
        p[i] ^= mask[m & 3];
    *pos = m & 3;
}

void chat__wsrx_reset(chat__wsrx *r)
{
    chat__free(r->buf);
    chat__free(r->ctl);
    memset(r, 0, sizeof *r);
}

/* The message was handed over: start the next one. */
static void message_done(chat__wsrx *r)
{
    r->msg_open = 0;
    r->frags = 0;
    r->len = 0;
    r->msg_len = 0;
    r->utf8 = 0;
    if (r->cap > CHAT__WSRX_KEEP_BYTES) {
        chat__free(r->buf);
        r->buf = NULL;
        r->cap = 0;
    } else if (r->buf) {
        r->buf[0] = '\0'; /* an empty message next gets "", not this one's bytes */
    }
}

static int buf_add(chat__wsrx *r, const unsigned char *p, size_t n, size_t max_bytes)
{
    if (r->len + n + 1 > r->cap) {
        size_t ncap = r->cap ? r->cap : 512;
        while (ncap < r->len + n + 1)
            ncap *= 2;
        if (ncap - 1 > max_bytes) /* not ncap > max_bytes + 1: that is 0 for SIZE_MAX */
            ncap = max_bytes + 1;
        char *nb = chat__realloc(r->buf, ncap);
        if (!nb)
            return CHAT__WSRX_NOMEM;
        r->buf = nb;
        r->cap = ncap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return CHAT__WSRX_OK;
}

/* A close frame's payload: empty, or a code a peer may send and a UTF-8 reason. */
static int close_payload_ok(const unsigned char *p, size_t n)
{
    if (n == 0)
        return 1;
    if (n == 1)
        return 0;
    unsigned code = (unsigned)p[0] << 8 | p[1];
    /* 1004-1006 and 1015 are never sent; 1012-1014 are registered with IANA (a client may
     * echo the server's 1013). */
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* The header in r->h is complete (r->hn bytes): check it against the state. */
static int header_done(chat__wsrx *r, size_t max_bytes, int64_t max_frags)
{
    const unsigned char *h = r->h;
    if (h[0] & 0x70)
        return CHAT__WSRX_PROTOCOL; /* RSV bits: no extension was negotiated */
    if (!(h[1] & 0x80))
        return CHAT__WSRX_PROTOCOL; /* RFC 6455 5.1: a client masks every frame */
    r->fin = (h[0] & 0x80) != 0;
    r->op = h[0] & 0x0F;
    uint64_t len = h[1] & 0x7F;
    unsigned at = 2;
    if (len == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        if (len >> 63)
            return CHAT__WSRX_PROTOCOL; /* the most significant bit must be 0 */
        at = 10;
    }
    memcpy(r->mask, h + at, 4);
    r->mpos = 0;
    r->left = len;
    switch (r->op) {
    case CHAT__WS_OP_CLOSE:
    case CHAT__WS_OP_PING:
    case CHAT__WS_OP_PONG:
        if (!r->fin || len > 125)
            return CHAT__WSRX_PROTOCOL;
        r->ctl_len = 0;
        /* Idle connections hold no buffer for control frames: one lives as long as its frame. */
        if (len && !(r->ctl = chat__malloc((size_t)len)))
            return CHAT__WSRX_NOMEM;
        return CHAT__WSRX_OK;
    case CHAT__WS_OP_TEXT:
    case CHAT__WS_OP_BINARY:
        if (r->msg_open)
            return CHAT__WSRX_PROTOCOL; /* a new message inside an unfinished one */
        r->msg_open = 1;
        r->msg_binary = r->op == CHAT__WS_OP_BINARY;
        r->frags = 0;
        r->msg_len = 0;
        r->len = 0;
        r->utf8 = 0;
        break;
    case CHAT__WS_OP_CONT:
        if (!r->msg_open)
            return CHAT__WSRX_PROTOCOL; /* a continuation of nothing */
        break;
    default:
        return CHAT__WSRX_PROTOCOL; /* reserved opcodes */
    }
    if (len > max_bytes - r->msg_len)
        return CHAT__WSRX_TOO_BIG;
    if (!r->fin && ++r->frags >= max_frags) /* a frame more is to come: one too many */
        return CHAT__WSRX_TOO_MANY;
    return CHAT__WSRX_OK;
}

/* Payload bytes p[0..n) of the current frame, already unmasked. */
static int payload(chat__wsrx *r, unsigned char *p, size_t n, size_t max_bytes)
{
    if (r->op >= CHAT__WS_OP_CLOSE) {
        memcpy(r->ctl + r->ctl_len, p, n);
        r->ctl_len += n;
        return CHAT__WSRX_OK;
    }
    if (!r->msg_binary && chat__utf8_feed(&r->utf8, p, n) != 0)
        return CHAT__WSRX_UTF8;
    r->msg_len += n;
    return buf_add(r, p, n, max_bytes);
}

/* The current frame's payload is complete. */
static int frame_done(chat__wsrx *r, const chat__wsrx_cb *cb, void *ud)
{
    if (r->op >= CHAT__WS_OP_CLOSE) {
        int rc = CHAT__WSRX_OK;
        if (r->op == CHAT__WS_OP_CLOSE && !close_payload_ok(r->ctl, r->ctl_len))
            rc = CHAT__WSRX_PROTOCOL;
        else if (r->op == CHAT__WS_OP_CLOSE && r->ctl_len > 2 &&
                 !chat__utf8_valid(r->ctl + 2, r->ctl_len - 2))
            rc = CHAT__WSRX_UTF8;
        else if (cb->control(ud, r->op, r->ctl ? r->ctl : (const unsigned char *)"", r->ctl_len))
            rc = CHAT__WSRX_STOP;
        chat__free(r->ctl);
        r->ctl = NULL;
        return rc;
    }
    if (!r->fin)
        return CHAT__WSRX_OK;
    if (!r->msg_binary && !chat__utf8_complete(r->utf8))
        return CHAT__WSRX_UTF8;
    if (!r->buf && buf_add(r, (const unsigned char *)"", 0, 0) != CHAT__WSRX_OK)
        return CHAT__WSRX_NOMEM; /* an empty message still gets a buffer to point at */
    int stop = cb->message(ud, r->buf, r->len, r->msg_binary);
    message_done(r);
    return stop ? CHAT__WSRX_STOP : CHAT__WSRX_OK;
}

/* The length of the header that starts h, once its first two bytes are known. */
static unsigned header_len(const unsigned char *h)
{
    unsigned l = h[1] & 0x7F;
    return 2 + (l == 126 ? 2 : l == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
}

/* The usual case: no message open and a whole single-frame text message in in[0..len).
 * Returns the bytes it took (0: not this case), or a negative result. */
static long fast_message(chat__wsrx *r, unsigned char *in, size_t len, size_t max_bytes,
                         const chat__wsrx_cb *cb, void *ud)
{
    if (r->msg_open || len < 6 || in[0] != (0x80 | CHAT__WS_OP_TEXT) || !(in[1] & 0x80))
        return 0;
    unsigned hl = header_len(in);
    if (len < hl)
        return 0;
    uint64_t plen = in[1] & 0x7F;
    if (plen == 126)
        plen = (uint64_t)in[2] << 8 | in[3];
    else if (plen == 127)
        return 0; /* rare: the general path handles 64-bit lengths */
    if (plen > max_bytes)
        return CHAT__WSRX_TOO_BIG;
    if (len - hl < plen)
        return 0;
    unsigned char *p = in + hl;
    unsigned pos = 0;
    unmask(p, (size_t)plen, in + hl - 4, &pos);
    if (!chat__utf8_valid(p, (size_t)plen))
        return CHAT__WSRX_UTF8;
    /* NUL-terminate in place for the call, then give the byte back: it may be the start of the
     * next frame. */
    unsigned char saved = p[plen];
    p[plen] = '\0';
    int stop = cb->message(ud, (const char *)p, (size_t)plen, 0);
    p[plen] = saved;
    return stop ? CHAT__WSRX_STOP : (long)(hl + plen);
}

int chat__wsrx_feed(chat__wsrx *r, unsigned char *in, size_t len, size_t max_bytes,
                    int64_t max_frags, const chat__wsrx_cb *cb, void *ud)
{
    size_t i = 0;
    while (i < len) {
        if (!r->in_payload && r->hn == 0) {
            long took = fast_message(r, in + i, len - i, max_bytes, cb, ud);
            if (took < 0)
                return (int)took;
            if (took > 0) {
                i += (size_t)took;
                continue;
            }
        }
        if (!r->in_payload) {
            /* Header bytes: the first two tell how many more. */
            r->h[r->hn++] = in[i++];
            if (r->hn < 2 || r->hn < header_len(r->h))
                continue;
            int rc = header_done(r, max_bytes, max_frags);
            if (rc != CHAT__WSRX_OK)
                return rc;
            r->hn = 0;
            r->in_payload = 1;
        }
        size_t n = len - i < r->left ? len - i : (size_t)r->left;
        if (n) {
            unmask(in + i, n, r->mask, &r->mpos);
            int rc = payload(r, in + i, n, max_bytes);
            if (rc != CHAT__WSRX_OK)
                return rc;
            i += n;
            r->left -= n;
        }
        if (r->left == 0) {
            r->in_payload = 0;
            int rc = frame_done(r, cb, ud);
            if (rc != CHAT__WSRX_OK)
                return rc;
        }
    }
    return CHAT__WSRX_OK;
}

unsigned char *chat__ws_header(unsigned char *data, int op, size_t len)
{
    unsigned char *h;
    if (len < 126) {
        h = data - 2;
        h[1] = (unsigned char)len;
    } else if (len <= 0xFFFF) {
        h = data - 4;
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
    } else {
        h = data - 10;
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    h[0] = (unsigned char)(0x80 | op);
    return h;
}
