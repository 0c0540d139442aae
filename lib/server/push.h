/* Push on the engine's side (push.c): device registrations and mutes through the store, the
 * resolution of offline recipients into devices, and tokens reported invalid. */
#ifndef CHAT_SERVER_PUSH_H
#define CHAT_SERVER_PUSH_H

#include "server/req.h"

/* Attach the notifier (version 2) and make the state below. [chat_server_new] */
int chat__push_init(chat_server *srv);
/* Delete the tokens reported during the notifier's final flush, then free. After the notifier
 * is destroyed and the writer stopped. */
void chat__push_release(chat_server *srv);
/* With a store of push registrations: queue the writer job that reads the mutes and devices
 * of r's offline recipients and then notifies them; returns 1. 0: the store has none (or
 * memory ran out), so the caller notifies the users at once. [loop thread] */
int chat__push_resolve(chat_server *srv, chat__req *r);

/* The mute state of user in conv for a conversation entry: -1 until unmuted, 0 not muted, else
 * the end in ms. [writer thread] */
int64_t chat__push_muted_until(chat__txn *tx, const char *user, int64_t conv);

/* A device logged out: delete its registration, if the store keeps them. CHAT_OK or CHAT_EIO.
 * [writer thread] */
int chat__push_forget_device(chat__txn *tx, const char *user, const char *device);
/* An account was deleted: delete every registration of user (its devices' tokens), if the
 * store keeps them. CHAT_OK, CHAT_ENOMEM or CHAT_EIO. [writer thread] */
int chat__push_forget_user(chat__txn *tx, const char *user);

/* Frame handlers. [loop thread] */
void chat__handle_push_register(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_push_unregister(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_mute(chat__conn *c, cJSON *f, cJSON *re);

#endif
