/* Incoming frames: validation before and after parsing, then routing by type. */
#include "server/lifecycle.h"
#include "server/media.h"
#include "server/push.h"
#include "server/req.h"

#include "core/decode.h"
#include "core/flat.h"
#include "core/ids.h"
#include "core/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
    const cJSON *item = chat__json_get(f, key);
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

void chat__dispatch(chat__conn *c, const char *buf, size_t len)
{
    chat_server *srv = c->srv;
    /* Most frames are text sends: those that are flat and valid skip the cJSON tree. */
    chat__flat fl;
    if (c->authed && chat__flat_scan(buf, len, &fl) && chat__send_flat(c, &fl))
        return;
    chat__decoded d;
    int rc = chat__decode_frame(buf, len, (int)chat__limit(srv, CHAT_LIMIT_JSON_DEPTH), &d);
    if (rc == CHAT_ENOMEM && !d.re) {
        /* The frame could not be read, so its request id is unknown: no error can answer it. */
        chat__conn_close(c, 1011, "out of memory");
        return;
    }
    if (rc != CHAT_OK) {
        /* Out of memory while checking the frame is ours; any other refusal is the frame's. */
        (rc == CHAT_ENOMEM ? chat__conn_decline : chat__conn_error)(c, d.re, rc, d.reason,
                                                                    d.message, 0);
        cJSON_Delete(d.re);
        return;
    }
    cJSON *f = d.frame, *re = d.re;
    const char *type = d.type;

    if ((type[0] == 'a' && strcmp(type, "auth") == 0) ||
        (type[0] == 'l' && strcmp(type, "login") == 0)) {
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
        {"media_url", chat__handle_media_url},
        {"logout", chat__handle_logout},
        {"edit", chat__handle_edit},         {"delete", chat__handle_delete},
        {"react", chat__handle_react},       {"conv_timer", chat__handle_conv_timer},
        {"search", chat__handle_search},
        {"push_register", chat__handle_push_register},
        {"push_unregister", chat__handle_push_unregister},
        {"mute", chat__handle_mute},
    };
    /* "send" first: most frames are sends. */
    void (*fn)(chat__conn *, cJSON *, cJSON *) = NULL;
    int known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !known; i++)
        if (type[0] == routes[i].type[0] && strcmp(type, routes[i].type) == 0) {
            fn = routes[i].fn;
            known = 1;
        }
    int group = !known && strncmp(type, "group_", 6) == 0 &&
                (strcmp(type + 6, "create") == 0 || strcmp(type + 6, "update") == 0 ||
                 strcmp(type + 6, "add") == 0 || strcmp(type + 6, "remove") == 0 ||
                 strcmp(type + 6, "leave") == 0 || strcmp(type + 6, "role") == 0);
    if (!known && !group) {
        char msg[96];
        /* Quoted whole characters only: a cut UTF-8 sequence would make the error frame
         * invalid UTF-8, which the client must answer by failing the connection. */
        snprintf(msg, sizeof msg, "unknown frame type '%.*s'", (int)chat__utf8_cut(type, 40),
                 type);
        chat__conn_error(c, re, CHAT_ENOTSUP, "unknown_type", msg, 0);
        goto out;
    }
    if (!c->authed) {
        chat__conn_error(c, re, CHAT_EAUTH, "not_authenticated", "authenticate first", 0);
        goto out;
    }
    if (known && !fn) { /* ping */
        cJSON *o = cJSON_CreateObject();
        int ok = o && cJSON_AddStringToObject(o, "type", "pong") &&
                 (!re || chat__json_add(o, "re", chat__json_id_copy(re))) &&
                 cJSON_AddNumberToObject(o, "ts", (double)chat__now_ms(srv));
        chat__frame *fr = ok ? chat__frame_json(o) : NULL;
        cJSON_Delete(o);
        if (fr) {
            chat__conn_send(c, fr);
            chat__frame_unref(fr);
        } else {
            chat__conn_close(c, 1011, "out of memory");
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
