/* Outbound frames: encoded once, shared by reference across every recipient (fan-out never
 * re-encodes). Headroom before the payload lets the transport prepend its framing in place.
 * Reference counts are touched on the loop thread only (a frame built on the writer thread is
 * handed over whole). */
#ifndef CHAT_SERVER_FRAME_H
#define CHAT_SERVER_FRAME_H

#include <stddef.h>

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
void chat__frame_unref(chat__frame *f);

#endif
