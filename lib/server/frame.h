/* Outbound frames: encoded once, shared by reference across every recipient (fan-out never
 * re-encodes). A frame is a chat_buf (core/buf.h), so the same bytes also cross the bus to
 * every local connection without a copy. Headroom before the payload lets the transport
 * prepend its framing in place. */
#ifndef CHAT_SERVER_FRAME_H
#define CHAT_SERVER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/buf.h"

#define CHAT__FRAME_PRE CHAT__BUF_PRE

typedef chat_buf chat__frame;

static inline unsigned char *chat__frame_data(chat__frame *f)
{
    return chat__buf_data(f);
}

/* A frame holding a copy of len bytes of text (refs = 1), or NULL. */
chat__frame *chat__frame_new(const char *text, size_t len);
/* Encode obj (not consumed) into a new frame, or NULL. */
chat__frame *chat__frame_json(const cJSON *obj);
/* Encode obj and delete it; NULL on failure (obj deleted anyway). */
chat__frame *chat__frame_take_json(cJSON *obj);
static inline chat__frame *chat__frame_ref(chat__frame *f)
{
    return chat_buf_ref(f);
}

/* Direct encoding of the hot frames, without a cJSON tree or its number printer: the bytes
 * are the JSON cJSON would print (same keys, order, types and values), built with one
 * allocation. A builder sizes the frame first (chat__fb_* with out == NULL), then fills it. */
typedef struct chat__fb {
    unsigned char *out; /* NULL while sizing */
    size_t len;
} chat__fb;

void chat__fb_raw(chat__fb *b, const char *s, size_t n);
/* A JSON string: quotes and the escapes cJSON uses. */
void chat__fb_str(chat__fb *b, const char *s, size_t n);
void chat__fb_i64(chat__fb *b, int64_t v);
void chat__fb_u64(chat__fb *b, uint64_t v);
/* A request id as an answer carries it: a string, or an integer in exact decimal (the text
 * chat__json_id_copy gives cJSON, which would print it with 15 significant digits). */
void chat__fb_id(chat__fb *b, const cJSON *id);
/* A frame of b->len bytes to fill (refs = 1), or NULL; the builder then writes into it. */
chat__frame *chat__fb_alloc(chat__fb *b);
static inline void chat__frame_unref(chat__frame *f)
{
    chat_buf_unref(f);
}

#endif
