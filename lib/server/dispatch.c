/* Incoming frames: validation before and after parsing, then routing by type. */
#include "server/req.h"

#include "core/ids.h"
#include "core/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* A request id is a short printable string or a non-negative integer. */
static int valid_id(const cJSON *id)
{
    if (cJSON_IsString(id))
        return chat__cmid_valid(id->valuestring, strlen(id->valuestring));
    if (cJSON_IsNumber(id))
        return id->valuedouble >= 0 && id->valuedouble <= 9007199254740992.0 &&
               (double)(int64_t)id->valuedouble == id->valuedouble;
    return 0;
}

int chat__arg_conv(chat__conn *c, const cJSON *f, const cJSON *re, int64_t *out)
{
    uint64_t v;
    int rc = chat__json_u64(f, "conv", &v);
    if (rc == CHAT_ENOTFOUND) {
        chat__conn_error(c, re, CHAT_EINVAL, "missing_field", "field 'conv' is required", 0);
        return 0;
    }
    if (rc != CHAT_OK || v == 0) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "field 'conv' must be a conversation id",
                         0);
        return 0;
    }
    *out = (int64_t)v;
    return 1;
}

int chat__arg_str(chat__conn *c, const cJSON *f, const cJSON *re, const char *key, int required,
                  const char **out, size_t *len)
{
    char msg[96];
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(f, key);
    if (!item) {
        if (!required) {
            *out = NULL;
            if (len)
                *len = 0;
            return 1;
        }
        snprintf(msg, sizeof msg, "field '%s' is required", key);
        chat__conn_error(c, re, CHAT_EINVAL, "missing_field", msg, 0);
        return 0;
    }
    if (!cJSON_IsString(item)) {
        snprintf(msg, sizeof msg, "field '%s' must be a string", key);
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", msg, 0);
        return 0;
    }
    *out = item->valuestring;
    if (len)
        *len = strlen(item->valuestring);
    return 1;
}

static int has_nul(const char *buf, size_t len)
{
    return memchr(buf, '\0', len) != NULL;
}

void chat__dispatch(chat__conn *c, const char *buf, size_t len)
{
    chat_server *srv = c->srv;
    if (!chat__json_depth_ok(buf, len, (int)chat__limit(srv, CHAT_LIMIT_JSON_DEPTH))) {
        chat__conn_error(c, NULL, CHAT_ELIMIT, "too_deep", "JSON nested too deeply", 0);
        return;
    }
    if (has_nul(buf, len)) {
        chat__conn_error(c, NULL, CHAT_EPROTO, "bad_json", "NUL byte in frame", 0);
        return;
    }
    cJSON *f = cJSON_ParseWithLength(buf, len);
    if (!f) {
        chat__conn_error(c, NULL, CHAT_EPROTO, "bad_json", "frame is not valid JSON", 0);
        return;
    }
    if (!cJSON_IsObject(f)) {
        chat__conn_error(c, NULL, CHAT_EPROTO, "not_object", "frame must be a JSON object", 0);
        cJSON_Delete(f);
        return;
    }
    cJSON *re = NULL;
    cJSON *id = cJSON_GetObjectItemCaseSensitive(f, "id");
    if (id && valid_id(id))
        re = cJSON_DetachItemViaPointer(f, id);
    if (chat__json_has_duplicate_keys(f)) {
        chat__conn_error(c, re, CHAT_EPROTO, "duplicate_key", "an object repeats a key", 0);
        goto out;
    }
    if (id && !re) {
        chat__conn_error(c, NULL, CHAT_EINVAL, "bad_field",
                         "field 'id' must be 1-64 printable characters or an integer", 0);
        goto out;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(f, "type");
    if (!t) {
        chat__conn_error(c, re, CHAT_EINVAL, "missing_field", "field 'type' is required", 0);
        goto out;
    }
    if (!cJSON_IsString(t)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "field 'type' must be a string", 0);
        goto out;
    }
    const char *type = t->valuestring;

    if (strcmp(type, "auth") == 0 || strcmp(type, "login") == 0) {
        if (c->authed || c->auth_pending) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "already authenticated", 0);
            goto out;
        }
        if (type[0] == 'a')
            chat__handle_auth(c, f, re);
        else
            chat__handle_login(c, f, re);
        return;
    }
    static const struct {
        const char *type;
        void (*fn)(chat__conn *c, cJSON *f, cJSON *re);
    } routes[] = {
        {"send", chat__handle_send},         {"history", chat__handle_history},
        {"receipt", chat__handle_receipt},   {"convs", chat__handle_convs},
        {"presence", chat__handle_presence}, {"settings", chat__handle_settings},
        {"typing", chat__handle_typing},     {"ping", NULL},
        {"logout", chat__handle_logout},
    };
    void (*fn)(chat__conn *, cJSON *, cJSON *) = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(type, routes[i].type) == 0) {
            fn = routes[i].fn;
            known = 1;
        }
    int group = strncmp(type, "group_", 6) == 0 &&
                (strcmp(type + 6, "create") == 0 || strcmp(type + 6, "update") == 0 ||
                 strcmp(type + 6, "add") == 0 || strcmp(type + 6, "remove") == 0 ||
                 strcmp(type + 6, "leave") == 0 || strcmp(type + 6, "role") == 0);
    if (!known && !group) {
        char msg[96];
        snprintf(msg, sizeof msg, "unknown frame type '%.40s'", type);
        chat__conn_error(c, re, CHAT_ENOTSUP, "unknown_type", msg, 0);
        goto out;
    }
    if (!c->authed) {
        chat__conn_error(c, re, CHAT_EAUTH, "not_authenticated", "authenticate first", 0);
        goto out;
    }
    if (strcmp(type, "ping") == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "type", "pong");
        if (re)
            cJSON_AddItemToObject(o, "re", re);
        re = NULL;
        cJSON_AddNumberToObject(o, "ts", (double)chat__now_ms(srv));
        chat__frame *fr = chat__frame_take_json(o);
        if (fr) {
            chat__conn_send(c, fr);
            chat__frame_unref(fr);
        }
        goto out;
    }
    /* Handlers own f and re from here on. */
    if (group)
        chat__handle_group(c, f, re, type + 6);
    else
        fn(c, f, re);
    return;
out:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
