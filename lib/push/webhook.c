/* Webhook provider: each user event POSTed as JSON to a gateway of the host's, over https with
 * certificate verification (plain http for a gateway on the same host). With a secret, every
 * request is signed:
 *
 *   X-Libchat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *
 * t is the time of this attempt, so a retry carries a fresh one: a gateway refuses requests
 * whose t is outside its replay window (doc/push.md) and whose MAC does not match. */
#include "push/provider.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

typedef struct webhook {
    char *url;
    unsigned char *secret; /* NULL: unsigned */
    size_t secret_len;
} webhook;

static void webhook_free(void *p)
{
    webhook *w = p;
    if (!w)
        return;
    if (w->secret) {
        sodium_memzero(w->secret, w->secret_len);
        chat__free(w->secret);
    }
    chat__free(w->url);
    chat__free(w);
}

static int webhook_refresh(void *p, chat__http *http, int64_t now_ms)
{
    (void)p, (void)http, (void)now_ms;
    return CHAT_OK;
}

static void webhook_expire(void *p)
{
    (void)p;
}

int chat__push_webhook_sign(char out[65], const unsigned char *secret, size_t secret_len,
                            int64_t t, const char *body, size_t body_len)
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char ts[24];
    int n = snprintf(ts, sizeof ts, "%" PRId64 ".", t);
    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)n);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(out, 65, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
    return CHAT_OK;
}

/* The body is the stored event's text with the count added: its integers stay exact (a
 * parse and print would take them through doubles). */
static int webhook_prepare(void *p, const cJSON *ev, const char *ev_text, int64_t count,
                           int64_t created_ms, chat__push_out *out, int64_t now_ms)
{
    (void)created_ms, (void)ev;
    webhook *w = p;
    size_t len = strlen(ev_text);
    if (len < 2 || ev_text[len - 1] != '}')
        return chat__error_set(CHAT_EINVAL, 0, "push webhook: the queued event is not an object");
    out->body = chat__push_fmt("%.*s,\"count\":%" PRId64 "}", (int)(len - 1), ev_text, count);
    if (!out->body)
        return chat__error_set(CHAT_ENOMEM, 0, "push webhook: out of memory");
    out->url = chat__strdup(w->url);
    if (!out->body || !out->url)
        return chat__error_set(CHAT_ENOMEM, 0, "push webhook: out of memory");
    if (w->secret) {
        char mac[65];
        int64_t t = now_ms / 1000;
        chat__push_webhook_sign(mac, w->secret, w->secret_len, t, out->body, strlen(out->body));
        out->headers[0] = chat__push_fmt("X-Libchat-Signature: t=%" PRId64 ",v1=%s", t, mac);
        if (!out->headers[0])
            return chat__error_set(CHAT_ENOMEM, 0, "push webhook: out of memory");
    }
    return CHAT_OK;
}

static int webhook_classify(void *p, const chat__http_req *r)
{
    (void)p;
    if (r->error != CHAT_OK || r->status == 429 || r->status >= 500 || r->status == 408)
        return CHAT__PUSH_RETRY;
    return r->status >= 200 && r->status <= 299 ? CHAT__PUSH_SENT : CHAT__PUSH_FAILED;
}

static const chat__push_provider webhook_ops = {
    .name = "webhook",
    .refresh = webhook_refresh,
    .prepare = webhook_prepare,
    .classify = webhook_classify,
    .expire = webhook_expire,
    .free = webhook_free,
};

int chat__push_webhook_new(void **out, const chat__push_provider **ops, const char *url,
                           const unsigned char *secret, size_t secret_len,
                           const chat__push_env *env)
{
    (void)env;
    webhook *w = chat__calloc(1, sizeof *w);
    if (!w || !(w->url = chat__strdup(url)) ||
        (secret && !(w->secret = chat__malloc(secret_len)))) {
        webhook_free(w);
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    }
    if (secret) {
        memcpy(w->secret, secret, secret_len);
        w->secret_len = secret_len;
    }
    *out = w;
    *ops = &webhook_ops;
    return CHAT_OK;
}
