/* Outbound frames: encoded once, shared by reference across every recipient (fan-out never
 * re-encodes). Headroom before the payload lets the transport prepend its framing in place.
 * Reference counts are touched on the loop thread only (a frame built on the writer thread is
 * handed over whole). */
#ifndef CHAT_SERVER_FRAME_H
#define CHAT_SERVER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define CHAT__FRAME_PRE 32

typedef struct chat__frame {
    int refs;
    size_t len;
    unsigned char buf[]; /* CHAT__FRAME_PRE bytes of headroom, then len bytes, then NUL */
} chat__frame;

static inline unsigned char *chat__frame_data(chat__frame *f)
{
    return f->buf + CHAT__FRAME_PRE;
}

/* A frame holding a copy of len bytes of text (refs = 1), or NULL. */
chat__frame *chat__frame_new(const char *text, size_t len);
/* Encode obj (not consumed) into a new frame, or NULL. */
chat__frame *chat__frame_json(const cJSON *obj);
/* Encode obj and delete it; NULL on failure (obj deleted anyway). */
chat__frame *chat__frame_take_json(cJSON *obj);
chat__frame *chat__frame_ref(chat__frame *f);

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
void chat__frame_unref(chat__frame *f);

#endif
