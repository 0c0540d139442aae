/* The engine's timers (chat__timer) on a libuv loop, for the transports that run one. */
#ifndef CHAT_TRANSPORT_UVTIMER_H
#define CHAT_TRANSPORT_UVTIMER_H

#include "transport/transport.h"

#include <uv.h>

int chat__uvtimer_init(uv_loop_t *loop, chat__timer *t, void (*cb)(chat__timer *t));
void chat__uvtimer_start(chat__timer *t, int64_t delay_ms);
void chat__uvtimer_stop(chat__timer *t);
void chat__uvtimer_close(chat__timer *t);

#endif
