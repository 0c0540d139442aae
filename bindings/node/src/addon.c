/* The libchat Node-API addon: module setup, errors and argument conversion.
 *
 * The addon is the thin native half of the binding; lib/index.js builds the JavaScript API
 * (EventEmitter, Promises, async iteration) on top of it. Every argument is checked here, so
 * that calling the native half directly with anything gives a ChatError, never a crash. */
#define _GNU_SOURCE
#include "addon.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* ---- per-environment data ---- */

static void env_free(napi_env env, void *data, void *hint)
{
    (void)env;
    (void)hint;
    free(data); /* the refs belong to the environment, which is going away */
}

struct node_env *node_env_get(napi_env env)
{
    struct node_env *ne = NULL;
    if (napi_get_instance_data(env, (void **)&ne) != napi_ok)
        return NULL;
    return ne;
}

/* ---- values ---- */

napi_value node_undefined(napi_env env)
{
    napi_value v = NULL;
    napi_get_undefined(env, &v);
    return v;
}

napi_value node_strn(napi_env env, const char *s, size_t len)
{
    napi_value v = NULL;
    napi_create_string_utf8(env, s ? s : "", s ? len : 0, &v);
    return v;
}

napi_value node_str(napi_env env, const char *s)
{
    return node_strn(env, s, s ? strlen(s) : 0);
}

napi_value node_bool(napi_env env, int b)
{
    napi_value v = NULL;
    napi_get_boolean(env, b != 0, &v);
    return v;
}

napi_value node_num(napi_env env, double d)
{
    napi_value v = NULL;
    napi_create_double(env, d, &v);
    return v;
}

/* Ids and seqs: a number while exact, a BigInt beyond 2^53 - 1 (never a rounded number). */
napi_value node_id(napi_env env, uint64_t id)
{
    napi_value v = NULL;
    if (id <= MAX_SAFE_INTEGER)
        napi_create_double(env, (double)id, &v);
    else
        napi_create_bigint_uint64(env, id, &v);
    return v;
}

/* The one place a conversation id becomes a JS value. */
napi_value node_conv(napi_env env, node_conv_id id)
{
    return node_id(env, (uint64_t)id);
}

/* ---- errors ---- */

napi_value node_error_value(napi_env env, int code, const char *what, const char *reason)
{
    struct node_env *ne = node_env_get(env);
    napi_value ctor = NULL, err = NULL;
    if (ne && ne->error_ctor)
        napi_get_reference_value(env, ne->error_ctor, &ctor);
    if (ctor) {
        napi_value argv[3] = {node_num(env, code), node_str(env, reason),
                              what ? node_str(env, what) : node_undefined(env)};
        if (napi_new_instance(env, ctor, 3, argv, &err) == napi_ok)
            return err;
        napi_value ignored;
        napi_get_and_clear_last_exception(env, &ignored);
    }
    /* Before init(): a plain Error with the same fields. */
    char buf[512];
    snprintf(buf, sizeof buf, "%s%s%s", what ? what : "", what ? ": " : "", reason);
    napi_create_error(env, node_str(env, chat_error_name(code)), node_str(env, buf), &err);
    napi_set_named_property(env, err, "errno", node_num(env, code));
    napi_set_named_property(env, err, "reason", node_str(env, reason));
    return err;
}

napi_value node_throw(napi_env env, int code, const char *what, const char *fmt, ...)
{
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending)
        return NULL; /* keep the first error */
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    napi_throw(env, node_error_value(env, code, what, reason));
    return NULL;
}

napi_value node_throw_rc(napi_env env, int rc, const char *what)
{
    const chat_error_info *info = chat_error_last();
    const char *reason = info->code == rc && info->message && *info->message
                             ? info->message : chat_strerror(rc);
    return node_throw(env, rc, what, "%s", reason);
}

/* ---- argument readers ---- */

static const char *type_name(napi_env env, napi_value v)
{
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    switch (t) {
    case napi_undefined: return "undefined";
    case napi_null: return "null";
    case napi_boolean: return "a boolean";
    case napi_number: return "a number";
    case napi_string: return "a string";
    case napi_symbol: return "a symbol";
    case napi_object: return "an object";
    case napi_function: return "a function";
    case napi_external: return "an external";
    case napi_bigint: return "a bigint";
    }
    return "a value";
}

int node_is_nullish(napi_env env, napi_value v)
{
    napi_valuetype t = napi_undefined;
    if (!v || napi_typeof(env, v, &t) != napi_ok)
        return 1;
    return t == napi_undefined || t == napi_null;
}

int node_get_str(napi_env env, napi_value v, const char *what, const char *name, int optional,
                 char **out, size_t *len)
{
    *out = NULL;
    if (len)
        *len = 0;
    if (optional && node_is_nullish(env, v))
        return 0;
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    if (t != napi_string) {
        node_throw(env, CHAT_EINVAL, what, "%s must be a string, got %s", name,
                   type_name(env, v));
        return -1;
    }
    size_t n = 0;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok)
        goto fail;
    char *s = malloc(n + 1);
    if (!s) {
        node_throw(env, CHAT_ENOMEM, what, "out of memory");
        return -1;
    }
    /* JS strings are UTF-16; lone surrogates come out as U+FFFD, so s is valid UTF-8. */
    if (napi_get_value_string_utf8(env, v, s, n + 1, &n) != napi_ok) {
        free(s);
        goto fail;
    }
    if (!len && strlen(s) != n) {
        free(s);
        node_throw(env, CHAT_EINVAL, what, "%s must not contain NUL characters", name);
        return -1;
    }
    *out = s;
    if (len)
        *len = n;
    return 0;
fail:
    node_throw(env, CHAT_EINVAL, what, "%s: not a readable string", name);
    return -1;
}

int node_get_id(napi_env env, napi_value v, const char *what, const char *name, uint64_t max,
                uint64_t *out)
{
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    if (t == napi_number) {
        double d = 0;
        napi_get_value_double(env, v, &d);
        if (d >= 0 && d <= (double)MAX_SAFE_INTEGER && d == (double)(uint64_t)d &&
            (uint64_t)d <= max) {
            *out = (uint64_t)d;
            return 0;
        }
    } else if (t == napi_bigint) {
        uint64_t u = 0;
        bool lossless = false;
        napi_get_value_bigint_uint64(env, v, &u, &lossless);
        if (lossless && u <= max) {
            *out = u;
            return 0;
        }
    } else {
        node_throw(env, CHAT_EINVAL, what, "%s must be a number, got %s", name,
                   type_name(env, v));
        return -1;
    }
    node_throw(env, CHAT_EINVAL, what, "%s must be an integer from 0 to %llu", name,
               (unsigned long long)(max < MAX_SAFE_INTEGER ? max : MAX_SAFE_INTEGER));
    return -1;
}

/* The one place a JS value becomes a conversation id. */
int node_get_conv(napi_env env, napi_value v, const char *what, node_conv_id *out)
{
    const uint64_t max = (node_conv_id)-1 > 0 ? UINT64_MAX : (uint64_t)INT64_MAX;
    uint64_t id = 0;
    if (node_get_id(env, v, what, "conv", max, &id))
        return -1;
    *out = (node_conv_id)id;
    return 0;
}

int node_get_int(napi_env env, napi_value v, const char *what, const char *name, int64_t min,
                 int64_t max, int64_t *out)
{
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    if (t != napi_number) {
        node_throw(env, CHAT_EINVAL, what, "%s must be a number, got %s", name,
                   type_name(env, v));
        return -1;
    }
    double d = 0;
    napi_get_value_double(env, v, &d);
    if (!(d >= (double)min && d <= (double)max) || d != (double)(int64_t)d) {
        node_throw(env, CHAT_EINVAL, what, "%s must be an integer from %lld to %lld", name,
                   (long long)min, (long long)max);
        return -1;
    }
    *out = (int64_t)d;
    return 0;
}

int node_get_bool(napi_env env, napi_value v, const char *what, const char *name, int *out)
{
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    if (t != napi_boolean) {
        node_throw(env, CHAT_EINVAL, what, "%s must be a boolean, got %s", name,
                   type_name(env, v));
        return -1;
    }
    bool b = false;
    napi_get_value_bool(env, v, &b);
    *out = b;
    return 0;
}

void node_strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

int node_get_strv(napi_env env, napi_value v, const char *what, const char *name, char ***out,
                  size_t *n)
{
    *out = NULL;
    *n = 0;
    bool is_array = false;
    napi_is_array(env, v, &is_array);
    if (!is_array) {
        node_throw(env, CHAT_EINVAL, what, "%s must be an array of strings, got %s", name,
                   type_name(env, v));
        return -1;
    }
    uint32_t len = 0;
    napi_get_array_length(env, v, &len);
    char **arr = calloc(len ? len : 1, sizeof *arr);
    if (!arr) {
        node_throw(env, CHAT_ENOMEM, what, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < len; i++) {
        napi_value el = NULL;
        char elname[64];
        snprintf(elname, sizeof elname, "%s[%u]", name, i);
        if (napi_get_element(env, v, i, &el) != napi_ok ||
            node_get_str(env, el, what, elname, 0, &arr[i], NULL)) {
            node_throw(env, CHAT_EINVAL, what, "%s is not a string", elname);
            node_strv_free(arr, i);
            return -1;
        }
    }
    *out = arr;
    *n = len;
    return 0;
}

int node_get_func(napi_env env, napi_value v, const char *what, const char *name, int optional,
                  napi_value *out)
{
    *out = NULL;
    if (optional && node_is_nullish(env, v))
        return 0;
    napi_valuetype t = napi_undefined;
    napi_typeof(env, v, &t);
    if (t != napi_function) {
        node_throw(env, CHAT_EINVAL, what, "%s must be a function, got %s", name,
                   type_name(env, v));
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- module functions ---- */

/* init(ChatError, makeEvent): the constructors the addon builds errors and events with. */
static napi_value js_init(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    napi_value err_ctor, ev_ctor;
    if (node_get_func(env, argv[0], "init", "ChatError", 0, &err_ctor) ||
        node_get_func(env, argv[1], "init", "makeEvent", 0, &ev_ctor))
        return NULL;
    struct node_env *ne = node_env_get(env);
    if (ne->error_ctor)
        napi_delete_reference(env, ne->error_ctor);
    if (ne->event_ctor)
        napi_delete_reference(env, ne->event_ctor);
    napi_create_reference(env, err_ctor, 1, &ne->error_ctor);
    napi_create_reference(env, ev_ctor, 1, &ne->event_ctor);
    return node_undefined(env);
}

/* codes(): {OK: 0, ERROR: -1, EINVAL: -2, ...}, read from the library. */
static napi_value js_codes(napi_env env, napi_callback_info info)
{
    (void)info;
    napi_value obj;
    napi_create_object(env, &obj);
    for (int code = 0; code > -256; code--) {
        const char *name = chat_error_name(code);
        if (code < CHAT_ERROR && strcmp(name, "ERROR") == 0)
            break; /* past the last code */
        napi_set_named_property(env, obj, name, node_num(env, code));
    }
    return obj;
}

static napi_value js_strerror(napi_env env, napi_callback_info info)
{
    size_t argc = 1;
    napi_value argv[1];
    napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
    int64_t code = 0;
    if (node_get_int(env, argv[0], "strerror", "code", INT32_MIN, INT32_MAX, &code))
        return NULL;
    return node_str(env, chat_strerror((int)code));
}

static napi_value js_version(napi_env env, napi_callback_info info)
{
    (void)info;
    return node_str(env, chat_version_string());
}

NAPI_MODULE_INIT()
{
    struct node_env *ne = calloc(1, sizeof *ne);
    if (!ne || napi_set_instance_data(env, ne, env_free, NULL) != napi_ok) {
        free(ne);
        napi_throw_error(env, NULL, "libchat: out of memory");
        return NULL;
    }
    napi_property_descriptor props[] = {
        {"init", NULL, js_init, NULL, NULL, NULL, napi_default, NULL},
        {"codes", NULL, js_codes, NULL, NULL, NULL, napi_default, NULL},
        {"strerror", NULL, js_strerror, NULL, NULL, NULL, napi_default, NULL},
        {"version", NULL, js_version, NULL, NULL, NULL, napi_default, NULL},
        {"NativeClient", NULL, NULL, NULL, NULL, node_client_class(env), napi_default, NULL},
    };
    if (!props[4].value)
        return NULL;
    napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
    return exports;
}
