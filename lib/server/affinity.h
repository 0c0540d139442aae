/* Write affinity between nodes (CHAT_SERVER_AFFINITY): a conversation's sends are written by
 * one node, chosen by rendezvous hashing over the live nodes, so that its row lock in a shared
 * store is taken by one writer instead of contended by several. A send for a conversation
 * another node owns goes there as a bus request (sys/bus.h, version 4); whatever goes wrong
 * on the way (no answer in time, no such node, the owner draining or overloaded, a failure of
 * the owner's own) and the send is written here as it would have been without affinity.
 * Every function runs on the loop thread. */
#ifndef CHAT_SERVER_AFFINITY_H
#define CHAT_SERVER_AFFINITY_H

#include "chat/sys/bus.h"
#include "core/strmap.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

typedef struct chat_server chat_server;
typedef struct chat__conn chat__conn;
typedef struct chat__send_args chat__send_args;

typedef struct chat__affinity {
    int on;                           /* configured, and the bus carries requests */
    char self[CHAT_BUS_NODE_MAX + 1]; /* this node's name on the bus */
    chat__strmap live;                /* the other nodes the bus reports up */
    chat__strmap out;                 /* request id -> a send waiting for its owner's answer */
    uint64_t next_id;
} chat__affinity;

/* After the bus is attached: find out whether affinity can work here. */
void chat__affinity_init(chat_server *srv);
/* The loop ended: the sends still waiting are dropped unanswered (not acked: the clients
 * send them again). */
void chat__affinity_free(chat_server *srv);
/* c's send (parsed and admitted) goes to the conversation's owner when that is another node:
 * 1 when it went (f, re and a media body are then taken), 0 to write it here. */
int chat__affinity_send(chat__conn *c, cJSON *f, cJSON *re, const chat__send_args *a);
/* Sink callbacks of bus version 4, and the live node set from sink->node. */
void chat__affinity_node(chat_server *srv, const char *node, int up);
void chat__affinity_reply(chat_server *srv, uint64_t id, int status, const void *msg,
                          size_t len);
void chat__affinity_request(chat_server *srv, const char *from, uint64_t token, const void *msg,
                            size_t len);

#endif
