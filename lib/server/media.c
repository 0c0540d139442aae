/* Media outside HTTP: signed download URLs, who may obtain one, and the media_url request.
 *
 * URL scheme (doc/media.md): /media/<id>?e=<exp seconds>&s=<scope>&t=<mime, base64url>
 * &k=<key id>&sig=<hex HMAC-SHA-512-256>. The MAC key is derived from the token key k (keyed
 * BLAKE2b of a fixed label), so rotating token keys rotates URL keys; the MAC covers a version
 * label, the id, the expiry, the scope and the mime type, each length-delimited. */
#include "server/media.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/json.h"
#include "store/checked.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define URL_LABEL "libchat media url v1"

int chat__media_id_valid(const char *s, size_t n)
{
    if (!s || n != CHAT__MEDIA_ID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

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

static int url_key(const chat_server *srv, unsigned kid, unsigned char out[crypto_auth_KEYBYTES])
{
    const unsigned char *k = chat__keyring_find(&srv->cfg.keys, kid);
    if (!k)
        return CHAT_EAUTH;
    crypto_generichash(out, crypto_auth_KEYBYTES, (const unsigned char *)URL_LABEL,
                       sizeof URL_LABEL - 1, k, CHAT__KEY_BYTES);
    return CHAT_OK;
}

static void mac_field(crypto_auth_hmacsha512256_state *st, const char *s)
{
    unsigned char len[2] = {(unsigned char)(strlen(s) >> 8), (unsigned char)strlen(s)};
    crypto_auth_hmacsha512256_update(st, len, 2);
    crypto_auth_hmacsha512256_update(st, (const unsigned char *)s, strlen(s));
}

static void url_mac(const unsigned char *key, const char *id, const char *exp, const char *scope,
                    const char *mime, unsigned char tag[crypto_auth_BYTES])
{
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, key, crypto_auth_KEYBYTES);
    mac_field(&st, URL_LABEL);
    mac_field(&st, id);
    mac_field(&st, exp);
    mac_field(&st, scope);
    mac_field(&st, mime);
    crypto_auth_hmacsha512256_final(&st, tag);
    sodium_memzero(&st, sizeof st);
}

int chat__media_sign(const chat_server *srv, const char *id, const char *scope,
                     const char *mime, int64_t exp_s, char *out, size_t size)
{
    const chat__keyring *kr = &srv->cfg.keys;
    if (kr->n == 0)
        return CHAT_EAUTH;
    unsigned kid = kr->keys[kr->current].id;
    unsigned char key[crypto_auth_KEYBYTES], tag[crypto_auth_BYTES];
    if (url_key(srv, kid, key) != CHAT_OK)
        return CHAT_EAUTH;
    char exp[24], hex[2 * crypto_auth_BYTES + 1];
    char t[sodium_base64_ENCODED_LEN(CHAT_MEDIA_STR_MAX, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    snprintf(exp, sizeof exp, "%" PRId64, exp_s);
    url_mac(key, id, exp, scope, mime, tag);
    sodium_memzero(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, tag, sizeof tag);
    sodium_bin2base64(t, sizeof t, (const unsigned char *)mime, strlen(mime),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    int n = snprintf(out, size, CHAT__MEDIA_PREFIX "%s?e=%s&s=%s&t=%s&k=%u&sig=%s", id, exp,
                     scope, t, kid, hex);
    return n > 0 && (size_t)n < size ? CHAT_OK : CHAT_EINVAL;
}

static int all_digits(const char *s, size_t max)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (s[n] < '0' || s[n] > '9')
            return 0;
    return n > 0 && n <= max;
}

int chat__media_verify(const chat_server *srv, const char *id, const char *exp,
                       const char *scope, const char *mime_b64, const char *kid,
                       const char *sig, char *mime_out, size_t mime_size)
{
    unsigned char key[crypto_auth_KEYBYTES], want[crypto_auth_BYTES], got[crypto_auth_BYTES];
    size_t mlen = 0;
    if (!exp || !scope || !mime_b64 || !kid || !sig || !all_digits(exp, 18) ||
        !all_digits(kid, 3) || strlen(sig) != 2 * crypto_auth_BYTES ||
        sodium_hex2bin(got, sizeof got, sig, strlen(sig), NULL, NULL, NULL) != 0 ||
        sodium_base642bin((unsigned char *)mime_out, mime_size - 1, mime_b64, strlen(mime_b64),
                          NULL, &mlen, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return CHAT_EAUTH;
    mime_out[mlen] = 0;
    if (strlen(mime_out) != mlen || url_key(srv, (unsigned)atoi(kid), key) != CHAT_OK)
        return CHAT_EAUTH;
    url_mac(key, id, exp, scope, mime_out, want);
    sodium_memzero(key, sizeof key);
    if (crypto_verify_32(want, got) != 0)
        return CHAT_EAUTH;
    if ((int64_t)strtoll(exp, NULL, 10) * 1000 <= chat__now_ms(srv))
        return CHAT_ETIMEDOUT;
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
        return chat__req_fail(r, CHAT_ENOTSUP, "unknown_type", "this server keeps no media");
    default:
        return chat__req_fail(r, CHAT_ERROR, "storage", "the store failed");
    }
    int64_t ttl_s = chat__limit(tx->srv, CHAT_LIMIT_MEDIA_URL_TTL_MS) / 1000;
    /* Expiry rounded up to a whole minute: URLs handed out within the same minute are equal,
     * so a CDN in front caches one copy per user instead of one per request. */
    int64_t exp_s = (tx->now_ms / 1000 + ttl_s + 59) / 60 * 60;
    char path[1024], url[1600];
    const char *base = tx->srv->cfg.media_base_url;
    if (chat__media_sign(tx->srv, a->id, r->user, m.mime, exp_s, path, sizeof path) != CHAT_OK)
        return chat__req_fail(r, CHAT_ERROR, "internal", "cannot sign the URL");
    snprintf(url, sizeof url, "%s%s", base ? base : "", path);
    cJSON *o = chat__req_reply(r, "media_url");
    if (!o)
        return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    cJSON_AddStringToObject(o, "media", m.id);
    cJSON_AddStringToObject(o, "url", url);
    cJSON_AddNumberToObject(o, "expires", (double)(exp_s * 1000));
    cJSON_AddStringToObject(o, "mime", m.mime);
    cJSON_AddNumberToObject(o, "size", (double)m.size);
    cJSON_AddStringToObject(o, "name", m.name);
    r->reply = chat__frame_take_json(o);
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
    memcpy(a.id, id, n + 1);
    chat__req_start(c, f, re, media_url_run, &a, sizeof a, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
