/* APNs provider: Apple's HTTP/2 API with token-based authentication. Every request carries a
 * JWT (ES256, signed with the team's .p8 key; "kid" the key id, "iss" the team id, "iat" its
 * time), renewed every 50 minutes: APNs refuses one older than an hour, and one renewed more
 * often than every 20 minutes (TooManyProviderTokenUpdates). The notification is an alert
 * collapsed per conversation (apns-collapse-id), with the conversation as its thread. */
#include "push/jwt.h"
#include "push/provider.h"

#include "chat/errors.h"
#include "chat/sys/store.h"
#include "core/alloc.h"
#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define JWT_RENEW_MS (50 * 60 * 1000)

typedef struct apns {
    EVP_PKEY *key;
    char key_id[32], team_id[32];
    char *topic;
    char *url, *sandbox_url;
    char *jwt;
    int64_t jwt_ms;
    chat__push_env env;
} apns;

static void apns_free(void *p)
{
    apns *a = p;
    if (!a)
        return;
    EVP_PKEY_free(a->key);
    chat__free(a->topic);
    chat__free(a->url);
    chat__free(a->sandbox_url);
    chat__free(a->jwt);
    chat__free(a);
}

static int apns_refresh(void *p, chat__http *http, int64_t now_ms)
{
    (void)http;
    apns *a = p;
    if (a->jwt && now_ms - a->jwt_ms < JWT_RENEW_MS && now_ms >= a->jwt_ms)
        return CHAT_OK;
    char header[96], claims[96];
    snprintf(header, sizeof header, "{\"alg\":\"ES256\",\"kid\":\"%s\"}", a->key_id);
    snprintf(claims, sizeof claims, "{\"iss\":\"%s\",\"iat\":%" PRId64 "}", a->team_id,
             now_ms / 1000);
    char *jwt = NULL;
    int rc = chat__jwt_sign(&jwt, a->key, header, claims);
    if (rc != CHAT_OK) {
        a->env.log(a->env.log_ud, CHAT_LOG_ERROR, "push apns: cannot sign the provider token: %s",
                   chat_error_last()->message);
        return rc;
    }
    chat__free(a->jwt);
    a->jwt = jwt;
    a->jwt_ms = now_ms;
    return CHAT_OK;
}

static void apns_expire(void *p)
{
    apns *a = p;
    chat__free(a->jwt);
    a->jwt = NULL;
}

static int apns_prepare(void *p, const cJSON *ev, const char *ev_text, int64_t count,
                        int64_t created_ms, chat__push_out *out, int64_t now_ms)
{
    (void)ev_text;
    apns *a = p;
    const char *token = chat__push_str(ev, "token");
    const char *topic = chat__push_str(ev, "topic");
    if (!topic[0])
        topic = a->topic ? a->topic : "";
    if (!token[0] || !topic[0])
        return chat__error_set(CHAT_EINVAL, 0, "push apns: %s", token[0] ? "no topic: set the "
                                                                           "app's bundle id"
                                                                         : "no device token");
    int64_t conv = chat__push_int(ev, "conv");
    cJSON *ev_sandbox = cJSON_GetObjectItemCaseSensitive(ev, "sandbox");
    const char *base = cJSON_IsTrue(ev_sandbox) ? a->sandbox_url : a->url;

    char title[320], body[320];
    chat__push_alert(ev, count, title, sizeof title, body, sizeof body);
    char thread[32];
    snprintf(thread, sizeof thread, "conv-%" PRId64, conv);
    cJSON *o = cJSON_CreateObject();
    cJSON *aps = cJSON_AddObjectToObject(o, "aps");
    cJSON *alert = cJSON_AddObjectToObject(aps, "alert");
    cJSON *data = cJSON_AddObjectToObject(o, "libchat");
    int ok = alert && data && cJSON_AddStringToObject(alert, "title", title) &&
             cJSON_AddStringToObject(alert, "body", body) &&
             cJSON_AddStringToObject(aps, "sound", "default") &&
             /* a Notification Service Extension may rewrite it (localize, fetch, decrypt) */
             cJSON_AddNumberToObject(aps, "mutable-content", 1) &&
             cJSON_AddStringToObject(aps, "thread-id", thread) &&
             cJSON_AddNumberToObject(data, "conv", (double)conv) &&
             cJSON_AddNumberToObject(data, "seq", (double)chat__push_int(ev, "seq")) &&
             cJSON_AddStringToObject(data, "sender", chat__push_str(ev, "sender")) &&
             cJSON_AddStringToObject(data, "kind", chat__push_str(ev, "kind")) &&
             cJSON_AddNumberToObject(data, "unread", (double)chat__push_int(ev, "unread")) &&
             cJSON_AddNumberToObject(data, "count", (double)count);
    char *json = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!json)
        return chat__error_set(CHAT_ENOMEM, 0, "push apns: out of memory");
    out->body = chat__strdup(json);
    cJSON_free(json);
    /* apns-expiration: past it APNs stops trying to reach an offline device. */
    int64_t expires = (created_ms + a->env.ttl_ms) / 1000;
    out->url = chat__push_fmt("%s/3/device/%s", base, token);
    out->headers[0] = chat__push_fmt("authorization: bearer %s", a->jwt);
    out->headers[1] = chat__push_fmt("apns-topic: %s", topic);
    out->headers[2] = chat__strdup("apns-push-type: alert");
    out->headers[3] = chat__strdup("apns-priority: 10");
    out->headers[4] = chat__push_fmt("apns-expiration: %" PRId64, expires);
    out->headers[5] = chat__push_fmt("apns-collapse-id: %s", thread);
    (void)now_ms;
    for (int i = 0; i < 6; i++)
        if (!out->headers[i])
            return chat__error_set(CHAT_ENOMEM, 0, "push apns: out of memory");
    return out->body && out->url ? CHAT_OK
                                 : chat__error_set(CHAT_ENOMEM, 0, "push apns: out of memory");
}

/* APNs answers errors as {"reason":"BadDeviceToken"}. */
static int reason_is(const chat__http_req *r, const char *reason)
{
    cJSON *o = cJSON_ParseWithLength(r->resp, r->resp_len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "reason");
    int is = cJSON_IsString(v) && strcmp(v->valuestring, reason) == 0;
    cJSON_Delete(o);
    return is;
}

static int apns_classify(void *p, const chat__http_req *r)
{
    (void)p;
    if (r->error != CHAT_OK)
        return CHAT__PUSH_RETRY;
    switch (r->status) {
    case 200:
        return CHAT__PUSH_SENT;
    case 410: /* Unregistered: the app is gone from the device */
        return CHAT__PUSH_TOKEN;
    case 400:
        return reason_is(r, "BadDeviceToken") || reason_is(r, "DeviceTokenNotForTopic")
                   ? CHAT__PUSH_TOKEN
                   : CHAT__PUSH_FAILED;
    case 403:
        return reason_is(r, "ExpiredProviderToken") ? CHAT__PUSH_REAUTH : CHAT__PUSH_FAILED;
    case 429:
    case 500:
    case 503:
        return CHAT__PUSH_RETRY;
    default:
        return r->status >= 500 ? CHAT__PUSH_RETRY : CHAT__PUSH_FAILED;
    }
}

static const chat__push_provider apns_ops = {
    .name = "apns",
    .refresh = apns_refresh,
    .prepare = apns_prepare,
    .classify = apns_classify,
    .expire = apns_expire,
    .free = apns_free,
};

static int id_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n < 32 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == n;
}

int chat__push_apns_new(void **out, const chat__push_provider **ops,
                        const chat__push_apns_conf *conf, const chat__push_env *env)
{
    if (!id_ok(conf->key_id) || !id_ok(conf->team_id))
        return chat__error_set(CHAT_EINVAL, 0, "APNs: the key id and team id are the 10 "
                                               "letters and digits Apple shows");
    apns *a = chat__calloc(1, sizeof *a);
    if (!a)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    a->env = *env;
    snprintf(a->key_id, sizeof a->key_id, "%s", conf->key_id);
    snprintf(a->team_id, sizeof a->team_id, "%s", conf->team_id);
    const char *url = conf->production_url ? conf->production_url : "https://api.push.apple.com";
    const char *sandbox = conf->sandbox_url          ? conf->sandbox_url
                          : conf->production_url    ? conf->production_url
                                                    : "https://api.sandbox.push.apple.com";
    a->url = chat__strdup(url);
    a->sandbox_url = chat__strdup(sandbox);
    a->topic = conf->topic && conf->topic[0] ? chat__strdup(conf->topic) : NULL;
    int rc = !a->url || !a->sandbox_url || (conf->topic && conf->topic[0] && !a->topic)
                 ? chat__error_set(CHAT_ENOMEM, 0, "push: out of memory")
                 : chat__key_from_file(&a->key, conf->key_file);
    if (rc == CHAT_OK && chat__key_kind(a->key) != 1)
        rc = chat__error_set(CHAT_EINVAL, 0, "APNs: %s is not an EC P-256 key (a .p8 key from "
                                             "Apple)", conf->key_file);
    /* Sign once now: a key that cannot sign fails at start, not at the first push. */
    if (rc == CHAT_OK)
        rc = apns_refresh(a, NULL, 0);
    if (rc != CHAT_OK) {
        apns_free(a);
        return rc;
    }
    apns_expire(a); /* signed with time 0: make the real one at the first batch */
    *out = a;
    *ops = &apns_ops;
    return CHAT_OK;
}
