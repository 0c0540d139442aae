/* Media: signed download URLs, access checks, the media_url request, and the HTTP side
 * (uploads with resumable sessions, downloads with ranges) on the server's lws vhost. */
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

/* lws's HTTP timeout (the context's timeout_secs): a transaction that makes no progress for
 * this long is dropped. lws arms it when a request arrives and re-arms it as an upload's body
 * comes in; downloads re-arm it in every writeable callback that writes (media_http.c). */
#define CHAT__HTTP_TIMEOUT_SECS 5

/* Every HTTP callback of the vhost (media_http.c). *state is the connection's slot for the
 * transaction in progress. Returns what the lws callback must return. [loop thread] */
int chat__http_callback(chat_server *srv, struct lws *wsi, int reason, void **state, void *in,
                        size_t len);

#endif
