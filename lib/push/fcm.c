/* FCM provider: Firebase Cloud Messaging's HTTP v1 API. Its bearer token is an OAuth 2.0
 * access token for the service account (RFC 7523): a JWT assertion signed RS256 with the
 * account's private key, exchanged at the token URI, kept until five minutes before it
 * expires. The message is a notification collapsed per conversation (collapse_key, tag), with
 * the conversation's fields as data for the app. */
#include "push/jwt.h"
#include "push/provider.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define SCOPE "https://www.googleapis.com/auth/firebase.messaging"
#define TOKEN_MARGIN_MS (5 * 60 * 1000)
#define ACCOUNT_FILE_MAX (64 * 1024)

typedef struct fcm {
    EVP_PKEY *key;
    char *key_id, *client_email, *token_uri, *send_url;
    char *access;        /* the current access token, a secret */
    int64_t access_until;
    chat__push_env env;
} fcm;

static void wipe_free(char *s)
{
    if (s) {
        sodium_memzero(s, strlen(s));
        chat__free(s);
    }
}

static void fcm_free(void *p)
{
    fcm *f = p;
    if (!f)
        return;
    EVP_PKEY_free(f->key);
    chat__free(f->key_id);
    chat__free(f->client_email);
    chat__free(f->token_uri);
    chat__free(f->send_url);
    wipe_free(f->access);
    chat__free(f);
}

static void fcm_expire(void *p)
{
    fcm *f = p;
    wipe_free(f->access);
    f->access = NULL;
}

/* application/x-www-form-urlencoded: the assertion is base64url and dots, nothing to escape. */
static int fcm_refresh(void *p, chat__http *http, int64_t now_ms)
{
    fcm *f = p;
    if (f->access && now_ms < f->access_until - TOKEN_MARGIN_MS)
        return CHAT_OK;
    int64_t iat = now_ms / 1000;
    char *header = chat__push_fmt("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                                  f->key_id);
    cJSON *claims = cJSON_CreateObject();
    cJSON_AddStringToObject(claims, "iss", f->client_email);
    cJSON_AddStringToObject(claims, "scope", SCOPE);
    cJSON_AddStringToObject(claims, "aud", f->token_uri);
    cJSON_AddNumberToObject(claims, "iat", (double)iat);
    cJSON_AddNumberToObject(claims, "exp", (double)(iat + 3600));
    char *claims_json = cJSON_PrintUnformatted(claims);
    cJSON_Delete(claims);
    char *jwt = NULL, *form = NULL;
    int rc = header && claims_json ? chat__jwt_sign(&jwt, f->key, header, claims_json)
                                   : CHAT_ENOMEM;
    chat__free(header);
    cJSON_free(claims_json);
    if (rc == CHAT_OK &&
        !(form = chat__push_fmt("grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3A"
                                "jwt-bearer&assertion=%s", jwt)))
        rc = CHAT_ENOMEM;
    chat__free(jwt);
    if (rc != CHAT_OK) {
        f->env.log(f->env.log_ud, CHAT_LOG_ERROR, "push fcm: cannot make the OAuth assertion: %s",
                   chat_strerror(rc));
        return rc;
    }
    chat__http_req *r = chat__calloc(1, sizeof *r);
    if (!r) {
        wipe_free(form);
        return CHAT_ENOMEM;
    }
    r->url = f->token_uri;
    r->body = form;
    r->body_len = strlen(form);
    r->content_type = "application/x-www-form-urlencoded";
    rc = chat__http_run(http, r, 1);
    wipe_free(form);
    cJSON *o = rc == CHAT_OK && r->error == CHAT_OK && r->status == 200
                   ? cJSON_ParseWithLength(r->resp, r->resp_len)
                   : NULL;
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(o, "access_token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(o, "expires_in");
    if (cJSON_IsString(tok) && tok->valuestring[0] && cJSON_IsNumber(exp) &&
        exp->valuedouble > 0) {
        wipe_free(f->access);
        f->access = chat__strdup(tok->valuestring);
        f->access_until = now_ms + (int64_t)(exp->valuedouble * 1000);
        rc = f->access ? CHAT_OK : CHAT_ENOMEM;
        sodium_memzero(tok->valuestring, strlen(tok->valuestring));
    } else {
        /* The body of a refusal names the reason (invalid_grant, ...), never a secret. */
        f->env.log(f->env.log_ud, CHAT_LOG_WARN, "push fcm: no access token from the token URI: "
                   "%s %d %.200s", r->error == CHAT_OK ? "HTTP" : chat_error_name(r->error),
                   r->status, r->error == CHAT_OK ? r->resp : r->detail);
        rc = CHAT_EAUTH;
    }
    sodium_memzero(r->resp, sizeof r->resp);
    cJSON_Delete(o);
    chat__free(r);
    return rc;
}

/* FCM's data values are strings. */
static int add_data(cJSON *data, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return cJSON_AddStringToObject(data, key, buf) != NULL;
}

static int fcm_prepare(void *p, const cJSON *ev, const char *ev_text, int64_t count,
                       int64_t created_ms, chat__push_out *out, int64_t now_ms)
{
    (void)ev_text;
    fcm *f = p;
    const char *token = chat__push_str(ev, "token");
    if (!token[0])
        return chat__error_set(CHAT_EINVAL, 0, "push fcm: no registration token");
    int64_t conv = chat__push_int(ev, "conv");
    char title[320], body[320], tag[32], ttl[32];
    chat__push_alert(ev, count, title, sizeof title, body, sizeof body);
    snprintf(tag, sizeof tag, "conv-%" PRId64, conv);
    /* What is left of the notification's life: past it FCM stops trying. */
    int64_t left = created_ms + f->env.ttl_ms - now_ms;
    snprintf(ttl, sizeof ttl, "%" PRId64 "s", left > 1000 ? left / 1000 : 1);

    cJSON *o = cJSON_CreateObject();
    cJSON *m = cJSON_AddObjectToObject(o, "message");
    cJSON *n = cJSON_AddObjectToObject(m, "notification");
    cJSON *data = cJSON_AddObjectToObject(m, "data");
    cJSON *android = cJSON_AddObjectToObject(m, "android");
    cJSON *an = cJSON_AddObjectToObject(android, "notification");
    int ok = n && data && an && cJSON_AddStringToObject(m, "token", token) &&
             cJSON_AddStringToObject(n, "title", title) &&
             cJSON_AddStringToObject(n, "body", body) &&
             add_data(data, "conv", conv) &&
             add_data(data, "seq", chat__push_int(ev, "seq")) &&
             cJSON_AddStringToObject(data, "sender", chat__push_str(ev, "sender")) &&
             cJSON_AddStringToObject(data, "kind", chat__push_str(ev, "kind")) &&
             add_data(data, "unread", chat__push_int(ev, "unread")) &&
             add_data(data, "count", count) &&
             cJSON_AddStringToObject(android, "collapse_key", tag) &&
             cJSON_AddStringToObject(android, "priority", "HIGH") &&
             cJSON_AddStringToObject(android, "ttl", ttl) &&
             cJSON_AddStringToObject(an, "tag", tag);
    char *json = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!json)
        return chat__error_set(CHAT_ENOMEM, 0, "push fcm: out of memory");
    out->body = chat__strdup(json);
    cJSON_free(json);
    out->url = chat__strdup(f->send_url);
    out->headers[0] = chat__push_fmt("authorization: Bearer %s", f->access);
    if (!out->body || !out->url || !out->headers[0])
        return chat__error_set(CHAT_ENOMEM, 0, "push fcm: out of memory");
    return CHAT_OK;
}

/* FCM's error: {"error":{"code":404,"message":"...","status":"NOT_FOUND","details":[{"@type":
 * "type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"UNREGISTERED"}]}}. */
static void fcm_error(const chat__http_req *r, char *status, size_t ssize, char *code,
                      size_t csize, int *about_token)
{
    cJSON *o = cJSON_ParseWithLength(r->resp, r->resp_len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(o, "error");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
    snprintf(status, ssize, "%s", cJSON_IsString(st) ? st->valuestring : "");
    code[0] = '\0';
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(e, "details"))
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "errorCode");
        if (cJSON_IsString(c))
            snprintf(code, csize, "%s", c->valuestring);
        const cJSON *fv;
        cJSON_ArrayForEach(fv, cJSON_GetObjectItemCaseSensitive(d, "fieldViolations"))
        {
            const cJSON *field = cJSON_GetObjectItemCaseSensitive(fv, "field");
            if (cJSON_IsString(field) && strstr(field->valuestring, "token"))
                *about_token = 1;
        }
    }
    for (const char *m = cJSON_IsString(msg) ? msg->valuestring : ""; *m; m++)
        if ((m[0] | 0x20) == 't' && strncmp(m + 1, "oken", 4) == 0)
            *about_token = 1; /* "The registration token is not a valid FCM registration token" */
    cJSON_Delete(o);
}

static int fcm_classify(void *p, const chat__http_req *r)
{
    (void)p;
    if (r->error != CHAT_OK)
        return CHAT__PUSH_RETRY;
    if (r->status == 200)
        return CHAT__PUSH_SENT;
    char status[48], code[48];
    int about_token = 0;
    fcm_error(r, status, sizeof status, code, sizeof code, &about_token);
    /* Only FCM's own error codes condemn a token: a bare 404 may be a wrong project URL. */
    if (strcmp(code, "UNREGISTERED") == 0 || strcmp(code, "SENDER_ID_MISMATCH") == 0)
        return CHAT__PUSH_TOKEN;
    if (strcmp(code, "INVALID_ARGUMENT") == 0 || strcmp(status, "INVALID_ARGUMENT") == 0)
        return about_token ? CHAT__PUSH_TOKEN : CHAT__PUSH_FAILED;
    if (r->status == 401)
        return CHAT__PUSH_REAUTH;
    if (r->status == 429 || r->status >= 500)
        return CHAT__PUSH_RETRY;
    return CHAT__PUSH_FAILED;
}

static const chat__push_provider fcm_ops = {
    .name = "fcm",
    .refresh = fcm_refresh,
    .prepare = fcm_prepare,
    .classify = fcm_classify,
    .expire = fcm_expire,
    .free = fcm_free,
};

static char *field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0] ? chat__strdup(v->valuestring) : NULL;
}

/* Read the service account JSON; its private key goes into f->key and every copy of its text
 * is wiped. */
static int read_account(fcm *f, const char *path, char **project)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return chat__error_set(CHAT_EIO, 0, "FCM: cannot read the service account file %s", path);
    char *buf = chat__malloc(ACCOUNT_FILE_MAX);
    size_t n = buf ? fread(buf, 1, ACCOUNT_FILE_MAX, fp) : 0;
    fclose(fp);
    if (!buf)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    cJSON *o = n < ACCOUNT_FILE_MAX ? cJSON_ParseWithLength(buf, n) : NULL;
    sodium_memzero(buf, ACCOUNT_FILE_MAX);
    chat__free(buf);
    int rc = CHAT_OK;
    const cJSON *pk = cJSON_GetObjectItemCaseSensitive(o, "private_key");
    if (!o || !cJSON_IsString(pk))
        rc = chat__error_set(CHAT_EINVAL, 0, "FCM: %s is not a service account key (JSON with "
                                             "a private_key)", path);
    else
        rc = chat__key_from_pem(&f->key, pk->valuestring, strlen(pk->valuestring), path);
    if (cJSON_IsString(pk))
        sodium_memzero(pk->valuestring, strlen(pk->valuestring));
    if (rc == CHAT_OK && chat__key_kind(f->key) != 2)
        rc = chat__error_set(CHAT_EINVAL, 0, "FCM: the key in %s is not an RSA key", path);
    if (rc == CHAT_OK) {
        f->key_id = field(o, "private_key_id");
        f->client_email = field(o, "client_email");
        *project = field(o, "project_id");
        if (!f->token_uri)
            f->token_uri = field(o, "token_uri");
        if (!f->key_id || !f->client_email || !*project || !f->token_uri)
            rc = chat__error_set(CHAT_EINVAL, 0, "FCM: %s lacks private_key_id, client_email, "
                                                 "project_id or token_uri", path);
    }
    cJSON_Delete(o);
    return rc;
}

int chat__push_fcm_new(void **out, const chat__push_provider **ops,
                       const chat__push_fcm_conf *conf, const chat__push_env *env)
{
    fcm *f = chat__calloc(1, sizeof *f);
    if (!f)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    f->env = *env;
    char *project = NULL;
    int rc = CHAT_OK;
    if (conf->token_uri && !(f->token_uri = chat__strdup(conf->token_uri)))
        rc = chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    if (rc == CHAT_OK)
        rc = read_account(f, conf->service_account_file, &project);
    if (rc == CHAT_OK && strspn(project, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(project))
        rc = chat__error_set(CHAT_EINVAL, 0, "FCM: odd project_id in %s",
                             conf->service_account_file);
    if (rc == CHAT_OK) {
        const char *base = conf->send_url ? conf->send_url : "https://fcm.googleapis.com";
        f->send_url = chat__push_fmt("%s/v1/projects/%s/messages:send", base, project);
        if (!f->send_url)
            rc = chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    }
    chat__free(project);
    if (rc != CHAT_OK) {
        fcm_free(f);
        return rc;
    }
    *out = f;
    *ops = &fcm_ops;
    return CHAT_OK;
}
