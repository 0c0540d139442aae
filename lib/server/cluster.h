/* The engine's side of a bus between nodes (sys/bus.h, version 3): a connection that just
 * authenticated waits until the other nodes route to it, revoked sessions reach every node,
 * and nodes compare their token keys. Every function runs on the loop thread unless noted;
 * over a bus without these methods (the in-process ones) they do nothing. */
#ifndef CHAT_SERVER_CLUSTER_H
#define CHAT_SERVER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat_server chat_server;
typedef struct chat__conn chat__conn;

/* "<id>:<16 hex><*>" per token key, space-separated: 16 keys fit. */
#define CHAT__RING_TEXT_MAX (16 * 24)

typedef struct chat__held {
    chat__conn *conn; /* a reference */
    uint64_t ticket;
} chat__held;

typedef struct chat__cluster {
    char ring[CHAT__RING_TEXT_MAX]; /* this node's token keys, as sent to the others */
    /* Connections whose output waits for a bus ticket, in ticket order (a ring). */
    chat__held *held;
    size_t held_head, held_n, held_cap;
    uint64_t settled; /* the bus's last settled ticket */
} chat__cluster;

/* Describe the token keys (at chat_server_new, any thread). */
void chat__cluster_init(chat_server *srv);
/* Release every held connection (the loop ended). */
void chat__cluster_free(chat_server *srv);
/* c authenticated and its device_up went to the bus, or its logout's revocation was sent:
 * hold its output until the other nodes know. */
void chat__cluster_hold(chat__conn *c);
/* Sink callbacks of bus version 3. */
void chat__cluster_settled(chat_server *srv, uint64_t ticket);
void chat__cluster_node(chat_server *srv, const char *node, int up);
void chat__cluster_message(chat_server *srv, const char *from, const void *msg, size_t len);
/* A session was revoked here: every other node refuses it too. */
void chat__cluster_revoked(chat_server *srv, const char *session, int64_t exp_ms);

#endif
