/* Shared, reference-counted byte buffers; see core/buf.h. The count is atomic because a bus
 * may keep a reference on its own thread while the loop thread writes the same bytes. */
#include "core/buf.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdint.h>
#include <string.h>

chat_buf *chat__buf_alloc(size_t len)
{
    if (len > SIZE_MAX - sizeof(chat_buf) - CHAT__BUF_PRE - 1)
        return NULL;
    chat_buf *b = chat__malloc(sizeof *b + CHAT__BUF_PRE + len + 1);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->stamp = 0;
    b->len = len;
    chat__buf_data(b)[len] = '\0';
    return b;
}

int chat_buf_new(chat_buf **out, const void *data, size_t len)
{
    if (!out || (len && !data))
        return chat__error_set(CHAT_EINVAL, 0, "chat_buf_new: out and data are required");
    chat_buf *b = chat__buf_alloc(len);
    if (!b)
        return chat__error_set(CHAT_ENOMEM, 0, "chat_buf_new: out of memory");
    if (len)
        memcpy(chat__buf_data(b), data, len);
    *out = b;
    return CHAT_OK;
}

const void *chat_buf_data(const chat_buf *b)
{
    return b ? b->buf + CHAT__BUF_PRE : NULL;
}

size_t chat_buf_len(const chat_buf *b)
{
    return b ? b->len : 0;
}

chat_buf *chat_buf_ref(chat_buf *b)
{
    if (b)
        atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void chat_buf_unref(chat_buf *b)
{
    if (b && atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1)
        chat__free(b);
}
