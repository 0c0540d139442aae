/* WebSocket message reassembly; see reasm.h. */
#include "transport/reasm.h"

#include "core/alloc.h"

#include <string.h>

static void reset(chat__reasm *r)
{
    r->len = 0;
    r->frags = 0;
    r->open = 0;
}

int chat__reasm_feed(chat__reasm *r, const void *in, size_t len, unsigned int flags,
                     uint64_t remaining, size_t max_bytes, int64_t max_frags)
{
    if (flags & CHAT__REASM_FIRST) {
        /* lws refuses both of these itself; checked again so that no transport can splice
         * two messages into one. */
        if (r->open) {
            reset(r);
            return CHAT__REASM_PROTOCOL;
        }
        r->open = 1;
        r->len = 0;
        r->frags = 0;
        r->binary = (flags & CHAT__REASM_BINARY) != 0;
    } else if (!r->open) {
        return CHAT__REASM_PROTOCOL;
    }
    if (len > max_bytes || r->len > max_bytes - len ||
        remaining > (uint64_t)(max_bytes - len - r->len)) {
        reset(r);
        return CHAT__REASM_TOO_BIG;
    }
    /* One byte more than the payload for the terminating NUL, so even an empty message has a
     * buffer (the dispatcher never sees a NULL pointer). */
    if (r->len + len + 1 > r->cap) {
        size_t need = r->len + len + 1;
        size_t ncap = r->cap ? r->cap : 512;
        while (ncap < need)
            ncap *= 2;
        if (ncap > max_bytes + 1)
            ncap = max_bytes + 1;
        char *nbuf = chat__realloc(r->buf, ncap);
        if (!nbuf) {
            reset(r);
            return CHAT__REASM_NOMEM;
        }
        r->buf = nbuf;
        r->cap = ncap;
    }
    if (len)
        memcpy(r->buf + r->len, in, len);
    r->len += len;
    r->buf[r->len] = '\0';
    if (flags & CHAT__REASM_MORE)
        return CHAT__REASM_PARTIAL;
    if (!(flags & CHAT__REASM_FINAL)) {
        if (++r->frags >= max_frags) {
            reset(r);
            return CHAT__REASM_TOO_MANY;
        }
        return CHAT__REASM_PARTIAL;
    }
    r->open = 0;
    return CHAT__REASM_COMPLETE;
}

void chat__reasm_consumed(chat__reasm *r)
{
    reset(r);
    /* Idle connections keep no large buffer. */
    if (r->cap > CHAT__REASM_KEEP_BYTES)
        chat__reasm_free(r);
}

void chat__reasm_free(chat__reasm *r)
{
    chat__free(r->buf);
    r->buf = NULL;
    r->cap = 0;
    reset(r);
}
