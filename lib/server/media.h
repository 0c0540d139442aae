/* Media: signed download URLs, access checks, the media_url request, and the HTTP side
 * (uploads with resumable sessions, downloads with ranges) on the server's lws vhost. */
#ifndef CHAT_SERVER_MEDIA_H
#define CHAT_SERVER_MEDIA_H

#include "server/req.h"
#include "chat/sys/blob.h"

/* A media id: the lower-case hex BLAKE2b-256 of the bytes. */
#define CHAT__MEDIA_ID_LEN 64
#define CHAT__MEDIA_PREFIX "/media/"

/* 1 when s[0..n) is a well-formed media id (64 lower-case hex digits). */
int chat__media_id_valid(const char *s, size_t n);

/* Open the default blob store (data_dir/media) unless the host set one; no data dir and no
 * blob store leaves media off. [chat_server_new] */
int chat__media_init(chat_server *srv);
/* Drop upload sessions and the blob store. [after the loop ended] */
void chat__media_free(chat_server *srv);
/* Media works: a blob store and a store with the version-2 media methods. */
int chat__media_enabled(const chat_server *srv);

/* The signed path-and-query of a download URL of id for scope (a user id), valid until
 * exp_s (Unix seconds). CHAT_OK, CHAT_EINVAL (does not fit). [any thread] */
int chat__media_sign(const chat_server *srv, const char *id, const char *scope,
                     const char *mime, int64_t exp_s, char *out, size_t size);
/* Check a download URL's fields; CHAT_OK or CHAT_EAUTH (bad or unknown key, bad MAC) or
 * CHAT_ETIMEDOUT (expired). mime_out receives the signed mime type. */
int chat__media_verify(const chat_server *srv, const char *id, const char *exp,
                       const char *scope, const char *mime_b64, const char *kid,
                       const char *sig, char *mime_out, size_t mime_size);

/* May user obtain URLs of media id? CHAT_OK (out filled), CHAT_ENOTFOUND (no such media),
 * CHAT_EPERM, CHAT_ENOTSUP (the store keeps no media), CHAT_EIO. [writer thread] */
int chat__txn_media_access(chat__txn *tx, const char *id, const char *user,
                           chat_store_media *out);

/* The media_url request. [loop thread] */
void chat__handle_media_url(chat__conn *c, cJSON *f, cJSON *re);

/* Every HTTP callback of the vhost (media_http.c). *state is the connection's slot for the
 * transaction in progress. Returns what the lws callback must return. [loop thread] */
int chat__http_callback(chat_server *srv, struct lws *wsi, int reason, void **state, void *in,
                        size_t len);

#endif
