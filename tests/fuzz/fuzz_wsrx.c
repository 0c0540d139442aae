/* Fuzz target: the RFC 6455 receiver (lib/transport/wsrx.c), fed the way the native transport
 * feeds it: wire bytes in reads of any size.
 *
 * Input: byte 0 picks the message cap (0-4699 bytes, or no cap at 0xFF), byte 1 the fragment
 * cap (1-8, bits 0-2) and how the wire is cut into reads (bits 3-7: whole, a byte at a time, or
 * pieces of up to 3*k bytes drawn from byte 2). Then frames, each described by
 *   [first header byte, raw: FIN, RSV, opcode] [form] [n] [n bytes of payload],
 * form's bit 0 set meaning unmasked, bits 1-2 the length encoding (shortest, 16-bit, 64-bit,
 * or 64-bit announcing far more than follows, with bits 4-7 as its top bits), bit 3 the
 * payload repeated (form >> 4) + 1 times. A frame whose payload runs past the input is cut
 * short, and so is the stream after it. The harness encodes them (masked with varying keys),
 * cuts the wire into reads and feeds each from a buffer of its own.
 *
 * Invariants, against a model of RFC 6455 server receive that reads one frame at a time:
 *  - exactly the model's messages (bytes, binary flag) and control frames (op, payload), in
 *    order, each message NUL-terminated;
 *  - the first refusal is the model's (PROTOCOL, UTF8, TOO_BIG, TOO_MANY), returned by the read
 *    holding the byte that decides it: a frame's last header byte for what its header shows
 *    (so an announced length over the cap is refused with no payload byte), the first byte
 *    after which the text can no longer become UTF-8, or the last byte of a frame whose end is
 *    wrong (a close frame's payload, text ending inside a character);
 *  - after a read, its bytes are the wire's with every payload unmasked in place, and the byte
 *    after it is untouched. */
#include "fuzz.h"

#include "transport/wsrx.h"

#include <string.h>

#define MAX_FRAMES 48

typedef struct frame {
    int fin, rsv, op, masked, top_bit;
    uint64_t announced;
    size_t hdr_start, hdr_end, end; /* wire offsets; end: after the payload present */
} frame;

typedef struct evlog {
    unsigned char *p;
    size_t n, cap;
} evlog;

/* An event as bytes: kind, flag (binary or opcode), 8 bytes of length, the payload. */
static void log_add(evlog *l, int kind, int flag, const void *p, size_t len)
{
    if (l->n + 10 + len > l->cap) {
        size_t cap = (l->n + 10 + len) * 2;
        unsigned char *np = realloc(l->p, cap);
        FUZZ_CHECK(np != NULL);
        l->p = np;
        l->cap = cap;
    }
    l->p[l->n++] = (unsigned char)kind;
    l->p[l->n++] = (unsigned char)flag;
    for (int i = 0; i < 8; i++)
        l->p[l->n++] = (unsigned char)((uint64_t)len >> (8 * i));
    if (len)
        memcpy(l->p + l->n, p, len);
    l->n += len;
}

/* ---- the wire ------------------------------------------------------------------------------ */

typedef struct wire {
    unsigned char *w;     /* as sent */
    unsigned char *plain; /* the same with payloads unmasked */
    size_t n, cap;
    frame f[MAX_FRAMES];
    int nf;
} wire;

static void put(wire *w, unsigned char sent, unsigned char plain)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->w = realloc(w->w, w->cap);
        w->plain = realloc(w->plain, w->cap);
        FUZZ_CHECK(w->w && w->plain);
    }
    w->w[w->n] = sent;
    w->plain[w->n++] = plain;
}

static void encode(wire *w, const uint8_t *d, size_t size)
{
    size_t i = 0;
    while (i + 3 <= size && w->nf < MAX_FRAMES) {
        unsigned b0 = d[i], form = d[i + 1], n = d[i + 2];
        i += 3;
        size_t have = n <= size - i ? n : size - i;
        const uint8_t *pat = d + i;
        i += have;
        size_t rep = have == n && (form & 8) ? (form >> 4) + 1 : 1;
        uint64_t len = (uint64_t)have * rep; /* what follows */
        uint64_t announced = have == n ? len : n;
        int enc = (form >> 1) & 3;
        if (enc == 3 && have == n)
            announced = (uint64_t)(form & 0xF0) << 56 | (uint64_t)n << 24 | len;
        int last = announced != len;
        frame *f = &w->f[w->nf++];
        f->fin = b0 >> 7;
        f->rsv = (b0 >> 4) & 7;
        f->op = b0 & 15;
        f->masked = !(form & 1);
        f->announced = announced;
        f->top_bit = (int)(announced >> 63);
        f->hdr_start = w->n;
        uint32_t key = 0x9E3779B9u * (uint32_t)w->nf ^ (uint32_t)form << 8 ^ n;
        unsigned char mask[4] = {(unsigned char)(key >> 24), (unsigned char)(key >> 16),
                                 (unsigned char)(key >> 8), (unsigned char)key};
        unsigned char m = f->masked ? 0x80 : 0;
        put(w, (unsigned char)b0, (unsigned char)b0);
        if (enc == 0 && announced > 0xFFFF)
            enc = 2;
        if (enc == 0 && announced < 126) {
            put(w, m | (unsigned char)announced, m | (unsigned char)announced);
        } else if (enc <= 1 && announced <= 0xFFFF) {
            put(w, m | 126, m | 126);
            put(w, (unsigned char)(announced >> 8), (unsigned char)(announced >> 8));
            put(w, (unsigned char)announced, (unsigned char)announced);
        } else {
            put(w, m | 127, m | 127);
            for (int k = 0; k < 8; k++) {
                unsigned char c = (unsigned char)(announced >> (56 - 8 * k));
                put(w, c, c);
            }
        }
        if (f->masked)
            for (int k = 0; k < 4; k++)
                put(w, mask[k], mask[k]);
        f->hdr_end = w->n;
        for (size_t k = 0; k < len; k++) {
            unsigned char c = pat[k % have];
            put(w, f->masked ? c ^ mask[k & 3] : c, c);
        }
        f->end = w->n;
        if (last)
            break;
    }
}

/* ---- the model ----------------------------------------------------------------------------- */

typedef struct outcome {
    evlog events;
    int err;        /* CHAT__WSRX_OK or the first refusal */
    size_t err_at;  /* the wire byte that decides it */
} outcome;

static int close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static void model(const wire *w, size_t max_bytes, int64_t max_frags, outcome *o)
{
    unsigned char *msg = NULL; /* the open message's bytes so far */
    size_t msg_len = 0;
    int open = 0, binary = 0;
    int64_t frags = 0;
    o->err = CHAT__WSRX_OK;
    for (int i = 0; i < w->nf; i++) {
        const frame *f = &w->f[i];
        const unsigned char *pl = w->plain + f->hdr_end;
        size_t present = f->end - f->hdr_end;
        int complete = present == f->announced;
        int control = f->op >= 8;
        int err = CHAT__WSRX_OK;
        o->err_at = f->hdr_end - 1;
        /* what the header shows */
        if (f->rsv || !f->masked || f->top_bit)
            err = CHAT__WSRX_PROTOCOL;
        else if (control && (f->op > 10 || !f->fin || f->announced > 125))
            err = CHAT__WSRX_PROTOCOL;
        else if (!control && (f->op > 2 || (f->op == 0) != open))
            err = CHAT__WSRX_PROTOCOL;
        if (!err && !control) {
            if (f->op != 0) {
                open = 1;
                binary = f->op == 2;
                msg_len = 0;
                frags = 0;
            }
            if (f->announced > max_bytes - msg_len)
                err = CHAT__WSRX_TOO_BIG;
            else if (!f->fin && ++frags >= max_frags)
                err = CHAT__WSRX_TOO_MANY;
        }
        if (err) {
            o->err = err;
            break;
        }
        if (control) {
            if (!complete)
                break;
            o->err_at = present ? f->end - 1 : f->hdr_end - 1;
            if (f->op == 8 && present == 1)
                err = CHAT__WSRX_PROTOCOL;
            else if (f->op == 8 && present >= 2 && !close_code_ok((unsigned)pl[0] << 8 | pl[1]))
                err = CHAT__WSRX_PROTOCOL;
            else if (f->op == 8 && present > 2 && !fuzz_utf8_valid(pl + 2, present - 2))
                err = CHAT__WSRX_UTF8;
            if (err) {
                o->err = err;
                break;
            }
            log_add(&o->events, 'c', f->op, pl, present);
            continue;
        }
        unsigned char *nm = realloc(msg, msg_len + present + 1);
        FUZZ_CHECK(nm != NULL);
        msg = nm;
        memcpy(msg + msg_len, pl, present);
        size_t before = msg_len;
        msg_len += present;
        if (!binary && !fuzz_utf8_completable(msg, msg_len)) {
            /* the first payload byte after which the text cannot become UTF-8 */
            size_t lo = before, hi = msg_len; /* completable at lo, not at hi */
            while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (fuzz_utf8_completable(msg, mid))
                    lo = mid;
                else
                    hi = mid;
            }
            o->err = CHAT__WSRX_UTF8;
            o->err_at = f->hdr_end + (hi - 1 - before);
            break;
        }
        if (!complete)
            break;
        if (!f->fin)
            continue;
        if (!binary && !fuzz_utf8_valid(msg, msg_len)) {
            o->err = CHAT__WSRX_UTF8;
            o->err_at = present ? f->end - 1 : f->hdr_end - 1;
            break;
        }
        log_add(&o->events, 'm', binary, msg, msg_len);
        open = 0;
    }
    free(msg);
}

/* ---- the receiver -------------------------------------------------------------------------- */

static int on_message(void *ud, const char *buf, size_t len, int binary)
{
    FUZZ_CHECK(buf != NULL && buf[len] == '\0');
    log_add(ud, 'm', binary, buf, len);
    return 0;
}

static int on_control(void *ud, int op, const unsigned char *p, size_t len)
{
    FUZZ_CHECK(len <= 125 && (op == CHAT__WS_OP_CLOSE || op == CHAT__WS_OP_PING ||
                              op == CHAT__WS_OP_PONG));
    log_add(ud, 'c', op, p, len);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t max_bytes = data[0] == 0xFF ? SIZE_MAX : (size_t)(data[0] & 0x7F) * 37;
    int64_t max_frags = 1 + (data[1] & 7);
    unsigned cut = data[1] >> 3;
    uint32_t x = data[2] * 2654435761u | 1; /* never 0: xorshift would stay there */

    wire w = {0};
    encode(&w, data + 3, size - 3);
    outcome want = {0};
    model(&w, max_bytes, max_frags, &want);

    chat__wsrx r = {0};
    const chat__wsrx_cb cb = {on_message, on_control};
    evlog got = {0};
    int rc = CHAT__WSRX_OK;
    size_t at = 0, to = 0;
    while (at < w.n) {
        size_t k;
        if (cut == 0) {
            k = w.n;
        } else if (cut == 1) {
            k = 1;
        } else {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            k = x % (3 * cut + 1); /* reads of 0 bytes too */
        }
        if (k > w.n - at)
            k = w.n - at;
        to = at + k;
        /* a read buffer of its own, with the one byte after it the receiver may borrow */
        unsigned char *in = malloc(k + 1);
        FUZZ_CHECK(in != NULL);
        memcpy(in, w.w + at, k);
        in[k] = 0xA5;
        rc = chat__wsrx_feed(&r, in, k, max_bytes, max_frags, &cb, &got);
        FUZZ_CHECK(in[k] == 0xA5);
        if (rc == CHAT__WSRX_OK)
            FUZZ_CHECK(memcmp(in, w.plain + at, k) == 0);
        free(in);
        if (rc != CHAT__WSRX_OK)
            break;
        at = to;
    }
    FUZZ_CHECK(rc == want.err);
    if (rc != CHAT__WSRX_OK)
        FUZZ_CHECK(at <= want.err_at && want.err_at < to);
    FUZZ_CHECK(got.n == want.events.n &&
               (got.n == 0 || memcmp(got.p, want.events.p, got.n) == 0));
    chat__wsrx_reset(&r);
    free(got.p);
    free(want.events.p);
    free(w.w);
    free(w.plain);
    return 0;
}
