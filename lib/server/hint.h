/* What keeps clients whole over a bus that may drop live frames (a network bus delivers at
 * most once): position hints for conversations that went quiet, and a catch-up prompt to every
 * client when the bus says frames may have been lost. Neither is needed, nor sent, on a bus
 * that answers CHAT_BUS_CTL_RELIABLE (the in-process ones). */
#ifndef CHAT_SERVER_HINT_H
#define CHAT_SERVER_HINT_H

#include "core/strmap.h"
#include "core/timeheap.h"
#include "transport/transport.h"

#include <stdint.h>

typedef struct chat__hints {
    int on;              /* the bus may lose frames and hints are configured */
    chat__strmap convs;  /* conv id (decimal) -> its pending hint */
    chat__timeheap due;
    chat__timer timer;
    int timer_ready;
} chat__hints;

struct chat_server;
struct chat__userlist;

/* After the bus is attached: decide whether hints are needed. [loop thread or before start] */
void chat__hints_init(struct chat_server *srv);
void chat__hints_free(struct chat_server *srv);
/* The loop's timer, with the transport's other timers. CHAT_OK or CHAT_ENOMEM. */
int chat__hints_start(struct chat_server *srv);
void chat__hints_stop(struct chat_server *srv);
/* Message seq of conv was published to users: hint its position to them once the
 * conversation has been quiet for a while. [loop thread] */
void chat__hint_note(struct chat_server *srv, int64_t conv, uint64_t seq,
                     const struct chat__userlist *users);
/* The bus lost frames: every authenticated connection is asked to catch up. [loop thread] */
void chat__hint_lost(struct chat_server *srv);

#endif
