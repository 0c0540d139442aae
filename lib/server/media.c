/* Media outside HTTP: who may obtain a signed download URL, and the media_url request. The
 * URL scheme itself (signing, verifying) is in media_parse.c. */
#include "server/media.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/json.h"
#include "store/checked.h"

#include <stdio.h>
#include <string.h>

int chat__media_enabled(const chat_server *srv)
{
    return srv->blob && chat__store_checked_has_media(srv->store, srv->store_st);
}

int chat__media_init(chat_server *srv)
{
    if (!srv->blob && srv->cfg.data_dir) {
        char path[4096];
        if ((size_t)snprintf(path, sizeof path, "%s/media", srv->cfg.data_dir) >= sizeof path)
            return chat__error_set(CHAT_EINVAL, 0, "data dir path too long");
        int rc = chat_blob_fs_new(&srv->blob_st, path);
        if (rc != CHAT_OK)
            return rc;
        srv->blob = chat_blob_fs_ops();
    }
    /* Unfinished uploads live in memory: what an earlier run staged is unreachable. */
    if (srv->blob && srv->blob->ctl &&
        srv->blob->ctl(srv->blob_st, CHAT_BLOB_CTL_CLEAR_STAGING, NULL) != CHAT_OK)
        chat__log(srv, CHAT_LOG_WARN, "blob store: staged uploads of an earlier run kept");
    return CHAT_OK;
}

/* ---- access ---- */

typedef struct access_walk {
    chat__txn *tx;
    const char *user;
    int allowed;
    int failed;
} access_walk;

static int grant_allows(int64_t conv, const char *user, void *ud)
{
    access_walk *w = ud;
    if (conv == 0) {
        if (strcmp(user, w->user) == 0)
            w->allowed = 1;
    } else {
        chat_store_member m;
        int rc = w->tx->ops->member_get(w->tx->st, conv, w->user, &m);
        if (rc == CHAT_OK && m.role != CHAT_ROLE_NONE)
            w->allowed = 1;
        else if (rc != CHAT_OK && rc != CHAT_ENOTFOUND)
            w->failed = 1;
    }
    return w->allowed || w->failed;
}

int chat__txn_media_access(chat__txn *tx, const char *id, const char *user,
                           chat_store_media *out)
{
    if (tx->ops->version < 2 || !tx->ops->media_get)
        return CHAT_ENOTSUP;
    int rc = tx->ops->media_get(tx->st, id, out);
    if (rc != CHAT_OK)
        return rc == CHAT_ENOTFOUND || rc == CHAT_ENOTSUP ? rc : CHAT_EIO;
    access_walk w = {tx, user, 0, 0};
    rc = tx->ops->media_grants(tx->st, id, grant_allows, &w);
    if (w.failed || (rc != CHAT_OK && !w.allowed))
        return CHAT_EIO;
    return w.allowed ? CHAT_OK : CHAT_EPERM;
}

/* ---- media_url ---- */

typedef struct url_args {
    char id[CHAT__MEDIA_ID_LEN + 1];
} url_args;

static int media_url_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    url_args *a = r->extra;
    chat_store_media m;
    int rc = chat__txn_media_access(tx, a->id, r->user, &m);
    switch (rc) {
    case CHAT_OK:
        break;
    case CHAT_ENOTFOUND:
        return chat__req_fail(r, CHAT_ENOTFOUND, "not_found", "no media %s", a->id);
    case CHAT_EPERM:
        return chat__req_fail(r, CHAT_EPERM, "forbidden",
                              "media not shared in a conversation of yours");
    case CHAT_ENOTSUP:
        return chat__req_fail(r, CHAT_ENOTSUP, "no_media", "this server keeps no media");
    default:
        return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    }
    int64_t ttl_s = chat__limit(tx->srv, CHAT_LIMIT_MEDIA_URL_TTL_MS) / 1000;
    /* Expiry rounded up to a whole minute: URLs handed out within the same minute are equal,
     * so a CDN in front caches one copy per user instead of one per request. */
    int64_t exp_s = (tx->now_ms / 1000 + ttl_s + 59) / 60 * 60;
    char path[1024], url[1600];
    const char *base = tx->srv->cfg.media_base_url;
    if (chat__media_sign(&tx->srv->cfg.keys, a->id, r->user, m.mime, exp_s, path, sizeof path) != CHAT_OK)
        return chat__req_fail(r, CHAT_ERROR, "internal", "cannot sign the URL");
    snprintf(url, sizeof url, "%s%s", base ? base : "", path);
    cJSON *o = chat__req_reply(r, "media_url");
    int ok = o && cJSON_AddStringToObject(o, "media", m.id) &&
             cJSON_AddStringToObject(o, "url", url) &&
             cJSON_AddNumberToObject(o, "expires", (double)(exp_s * 1000)) &&
             cJSON_AddStringToObject(o, "mime", m.mime) &&
             cJSON_AddNumberToObject(o, "size", (double)m.size) &&
             cJSON_AddStringToObject(o, "name", m.name);
    r->reply = ok ? chat__frame_json(o) : NULL;
    cJSON_Delete(o);
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

void chat__handle_media_url(chat__conn *c, cJSON *f, cJSON *re)
{
    url_args a;
    const char *id = NULL;
    size_t n = 0;
    if (!chat__arg_str(c, f, re, "media", 1, &id, &n))
        goto fail;
    if (!chat__media_id_valid(id, n)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                         "'media' must be a media id (64 lower-case hex digits)", 0);
        goto fail;
    }
    if (!chat__media_enabled(c->srv)) {
        /* No blob store: no media of this server exists, whatever the store knows. */
        chat__conn_decline(c, re, CHAT_ENOTSUP, "no_media", "this server keeps no media", 0);
        goto fail;
    }
    memcpy(a.id, id, n + 1);
    chat__req_start(c, f, re, media_url_run, &a, sizeof a, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
