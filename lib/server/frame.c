/* Shared outbound frames; see frame.h. */
#include "server/frame.h"

#include "core/alloc.h"

#include <string.h>

chat__frame *chat__frame_new(const char *text, size_t len)
{
    chat__frame *f = chat__malloc(sizeof *f + CHAT__FRAME_PRE + len + 1);
    if (!f)
        return NULL;
    f->refs = 1;
    f->len = len;
    memcpy(chat__frame_data(f), text, len);
    chat__frame_data(f)[len] = '\0';
    return f;
}

chat__frame *chat__frame_json(const cJSON *obj)
{
    /* Print straight into the frame: size from a first guess, grown once if too small. */
    size_t cap = 256;
    for (int attempt = 0; attempt < 8; attempt++) {
        chat__frame *f = chat__malloc(sizeof *f + CHAT__FRAME_PRE + cap);
        if (!f)
            return NULL;
        char *out = (char *)chat__frame_data(f);
        if (cJSON_PrintPreallocated((cJSON *)obj, out, (int)cap, 0)) {
            f->refs = 1;
            f->len = strlen(out);
            return f;
        }
        chat__free(f);
        cap *= 4;
    }
    return NULL;
}

chat__frame *chat__frame_take_json(cJSON *obj)
{
    if (!obj)
        return NULL;
    chat__frame *f = chat__frame_json(obj);
    cJSON_Delete(obj);
    return f;
}

chat__frame *chat__frame_ref(chat__frame *f)
{
    if (f)
        f->refs++;
    return f;
}

void chat__frame_unref(chat__frame *f)
{
    if (f && --f->refs == 0)
        chat__free(f);
}
