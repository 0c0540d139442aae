/* chat__timer on libuv's timer heap (O(log n) per arm). A timer never keeps the loop alive by
 * itself: the loop ends when the transport has closed its handles, whatever the engine left
 * armed. */
#include "transport/uvtimer.h"

#include "chat/errors.h"
#include "core/alloc.h"

static void fire(uv_timer_t *h)
{
    chat__timer *t = h->data;
    t->cb(t);
}

int chat__uvtimer_init(uv_loop_t *loop, chat__timer *t, void (*cb)(chat__timer *t))
{
    uv_timer_t *h = chat__malloc(sizeof *h);
    if (!h)
        return CHAT_ENOMEM;
    uv_timer_init(loop, h);
    uv_unref((uv_handle_t *)h);
    h->data = t;
    t->cb = cb;
    t->impl = h;
    return CHAT_OK;
}

void chat__uvtimer_start(chat__timer *t, int64_t delay_ms)
{
    if (t->impl)
        uv_timer_start(t->impl, fire, (uint64_t)(delay_ms > 0 ? delay_ms : 0), 0);
}

void chat__uvtimer_stop(chat__timer *t)
{
    if (t->impl)
        uv_timer_stop(t->impl);
}

static void free_handle(uv_handle_t *h)
{
    chat__free(h);
}

void chat__uvtimer_close(chat__timer *t)
{
    if (!t->impl)
        return;
    uv_close((uv_handle_t *)t->impl, free_handle);
    t->impl = NULL;
}
