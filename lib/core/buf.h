/* The layout behind the public chat_buf (sys/bus.h): one allocation holding a reference
 * count, the length, CHAT__BUF_PRE bytes of headroom (a transport writes its framing there, in
 * place) and the bytes, NUL-terminated. The server's outbound frames are these buffers, so a
 * frame goes from the encoder through the bus to every socket without a copy. */
#ifndef CHAT_CORE_BUF_H
#define CHAT_CORE_BUF_H

#include "chat/sys/bus.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define CHAT__BUF_PRE 32

struct chat_buf {
    atomic_int refs;
    uint32_t stamp; /* the server's latency stamp (server/stats.h), 0: none; in what was padding */
    size_t len;
    unsigned char buf[]; /* CHAT__BUF_PRE bytes of headroom, then len bytes, then NUL */
};

static inline unsigned char *chat__buf_data(chat_buf *b)
{
    return b->buf + CHAT__BUF_PRE;
}

/* A buffer of len bytes to fill (refs = 1, the byte after them NUL), or NULL. */
chat_buf *chat__buf_alloc(size_t len);

#endif
