/* Media: signed download URLs, access checks, the media_url request, and the HTTP side
 * (uploads with resumable sessions, downloads with ranges) through the transport's HTTP side. */
#ifndef CHAT_SERVER_MEDIA_H
#define CHAT_SERVER_MEDIA_H

#include "server/media_parse.h" /* media ids, signing and verifying URLs, HTTP values */
#include "server/req.h"
#include "chat/sys/blob.h"

/* Open the default blob store (data_dir/media) unless the host set one; no data dir and no
 * blob store leaves media off. [chat_server_new] */
int chat__media_init(chat_server *srv);
/* Drop upload sessions and the blob store. [after the loop ended] */
void chat__media_free(chat_server *srv);
/* Media works: a blob store and a store with the version-2 media methods. */
int chat__media_enabled(const chat_server *srv);

/* May user obtain URLs of media id? CHAT_OK (out filled), CHAT_ENOTFOUND (no such media),
 * CHAT_EPERM, CHAT_ENOTSUP (the store keeps no media), CHAT_EIO. [writer thread] */
int chat__txn_media_access(chat__txn *tx, const char *id, const char *user,
                           chat_store_media *out);

/* The media_url request. [loop thread] */
void chat__handle_media_url(chat__conn *c, cJSON *f, cJSON *re);

/* One HTTP event of the transport (CHAT__HTTP_*, media_http.c). *slot is the connection's
 * pointer to the transaction in progress. Non-zero closes the connection. [loop thread] */
int chat__media_http_event(chat_server *srv, chat__thttp *hx, int event, void **slot,
                           const void *in, size_t len);

#endif
