/* NativeClient: one chat_client, its event pump and its calls.
 *
 * Events: a pump thread waits on the client's event fd (and a wake fd for close), pops what is
 * queued, and hands batches to the JS thread through a napi_threadsafe_function; the JS side
 * (a `dispatch` function given to the constructor) turns them into EventEmitter events,
 * settles Promises and feeds async iterators. No native thread ever calls into JS. The
 * thread-safe function's queue is bounded and the pump blocks when it is full, so a JS thread
 * that falls behind leaves the events in libchat's queue instead of in memory of its own.
 *
 * Lifetime: close() stops the pump (abort the thread-safe function, wake, join), then frees
 * the chat_client unless a transfer still runs (the last one frees it). The JS object's
 * finalizer closes a client that was never closed; an environment cleanup hook does the same
 * when Node (or a Worker) exits with clients open. The struct itself lives until every holder
 * let go (nclient_release). */
#define _GNU_SOURCE
#include "addon.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BATCH_MAX 256  /* events per trip to the JS thread */
#define QUEUE_MAX 8    /* batches in flight before the pump waits */

static const napi_type_tag client_tag = {0x6c69626368617431ULL, 0x6e6f64652d617069ULL};

struct batch {
    size_t n;
    chat_event *ev[BATCH_MAX];
};

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        chat_event_free(b->ev[i]);
    free(b);
}

void nclient_release(struct nclient *nc)
{
    if (--nc->holders > 0)
        return;
    if (nc->wake_fd >= 0)
        close(nc->wake_fd);
    free(nc);
}

void nclient_maybe_free(struct nclient *nc)
{
    if (nc->closed && !nc->transfers && nc->c) {
        chat_client_free(nc->c);
        nc->c = NULL;
    }
}

/* ---- the pump ---- */

static void *pump_main(void *arg)
{
    struct nclient *nc = arg;
    int efd = chat_client_event_fd(nc->c);
    struct pollfd fds[2] = {{.fd = efd, .events = POLLIN}, {.fd = nc->wake_fd, .events = POLLIN}};
    while (!atomic_load(&nc->stopping)) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        if (atomic_load(&nc->stopping))
            break;
        struct batch *b = malloc(sizeof *b);
        if (!b)
            break;
        b->n = 0;
        while (b->n < BATCH_MAX && chat_client_next_event(&b->ev[b->n], nc->c) == CHAT_OK)
            b->n++;
        if (b->n == 0) {
            free(b);
            continue;
        }
        if (napi_call_threadsafe_function(nc->tsfn, b, napi_tsfn_blocking) != napi_ok) {
            batch_free(b); /* closing */
            break;
        }
    }
    return NULL;
}

static napi_value event_value(napi_env env, napi_value make, const chat_event *ev)
{
    size_t text_len = 0;
    const char *text = chat_event_text(ev, &text_len);
    napi_value argv[20] = {
        node_str(env, chat_event_type_name(chat_event_type(ev))),
        node_conv(env, chat_event_conv(ev)),
        node_id(env, chat_event_seq(ev)),
        node_num(env, (double)chat_event_ts_ms(ev)),
        node_str(env, chat_event_user(ev)),
        node_str(env, chat_event_device(ev)),
        node_str(env, chat_event_cmid(ev)),
        node_num(env, chat_event_kind(ev)),
        node_strn(env, text, text_len),
        node_str(env, chat_event_json(ev)),
        node_num(env, chat_event_code(ev)),
        node_str(env, chat_event_message(ev)),
        node_id(env, chat_event_request(ev)),
        node_id(env, chat_event_delivered(ev)),
        node_id(env, chat_event_read(ev)),
        node_bool(env, chat_event_active(ev)),
        node_num(env, (double)chat_event_last_seen_ms(ev)),
        node_num(env, (double)chat_event_retry_ms(ev)),
        node_num(env, (double)chat_event_count(ev)),
        node_bool(env, chat_event_more(ev)),
    };
    napi_value out = NULL;
    if (napi_call_function(env, node_undefined(env), make, 20, argv, &out) != napi_ok)
        return NULL;
    return out;
}

/* [JS thread] A batch from the pump; env is NULL when the function is torn down. */
static void pump_call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
    (void)js_cb;
    struct nclient *nc = context;
    struct batch *b = data;
    if (!env || nc->closed) {
        batch_free(b);
        return;
    }
    struct node_env *ne = node_env_get(env);
    napi_value make = NULL, dispatch = NULL, arr = NULL, out = NULL;
    if (ne->event_ctor)
        napi_get_reference_value(env, ne->event_ctor, &make);
    if (nc->dispatch)
        napi_get_reference_value(env, nc->dispatch, &dispatch);
    if (make && dispatch && napi_create_array_with_length(env, b->n, &arr) == napi_ok) {
        for (size_t i = 0; i < b->n; i++) {
            napi_value v = event_value(env, make, b->ev[i]);
            if (v)
                napi_set_element(env, arr, (uint32_t)i, v);
        }
        batch_free(b);
        b = NULL;
        napi_call_function(env, node_undefined(env), dispatch, 1, &arr, &out);
    }
    if (b)
        batch_free(b);
    /* dispatch catches what listeners throw; anything left (a failure of its own) goes to
     * the process like any uncaught error, as Node does for its own callbacks. */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
        napi_value exc;
        napi_get_and_clear_last_exception(env, &exc);
        napi_fatal_exception(env, exc);
    }
}

static void tsfn_finalize(napi_env env, void *data, void *hint)
{
    (void)env;
    (void)hint;
    nclient_release(data);
}

/* ---- closing ---- */

static void env_cleanup(void *arg);

/* Stop the pump and drop the client. js: JS may still be touched (refs, the thread-safe
 * function); 0 during environment teardown. */
static void nclient_close(struct nclient *nc, int js)
{
    if (nc->closed)
        return;
    nc->closed = 1;
    atomic_store(&nc->stopping, 1);
    uint64_t one = 1;
    (void)!write(nc->wake_fd, &one, sizeof one);
    if (!nc->tsfn_released) {
        /* abort: a pump blocked on a full queue returns at once */
        napi_release_threadsafe_function(nc->tsfn, napi_tsfn_abort);
        nc->tsfn_released = 1;
    }
    if (nc->pump_started) {
        pthread_join(nc->pump, NULL);
        nc->pump_started = 0;
    }
    if (js) {
        if (nc->dispatch) {
            napi_delete_reference(nc->env, nc->dispatch);
            nc->dispatch = NULL;
        }
        if (nc->cleanup_hook) {
            napi_remove_env_cleanup_hook(nc->env, env_cleanup, nc);
            nc->cleanup_hook = 0;
        }
        node_transfers_abort(nc);
    } else {
        node_transfers_join_all(nc);
    }
    nclient_maybe_free(nc);
}

/* The environment (the process, or a Worker) exits with this client open. */
static void env_cleanup(void *arg)
{
    struct nclient *nc = arg;
    nc->cleanup_hook = 0;
    nc->teardown = 1;
    nclient_close(nc, 0);
}

static void wrap_finalize(napi_env env, void *data, void *hint)
{
    (void)env;
    (void)hint;
    struct nclient *nc = data;
    if (!nc->teardown)
        nclient_close(nc, 1); /* garbage collected without close() */
    nclient_release(nc);
}

/* ---- method plumbing ---- */

/* This call's NativeClient (type-checked), or NULL with a ChatError pending. */
static struct nclient *self(napi_env env, napi_callback_info info, size_t *argc,
                            napi_value *argv, napi_value *this_out, const char *what,
                            int need_open)
{
    napi_value this_v = NULL;
    size_t want = argc ? *argc : 0;
    if (napi_get_cb_info(env, info, argc, argv, &this_v, NULL) != napi_ok)
        return node_throw(env, CHAT_EINVAL, what, "bad call"), NULL;
    if (argc && *argc < want) /* missing arguments read as undefined */
        for (size_t i = *argc; i < want; i++)
            argv[i] = node_undefined(env);
    bool ok = false;
    if (!this_v || napi_check_object_type_tag(env, this_v, &client_tag, &ok) != napi_ok || !ok)
        return node_throw(env, CHAT_EINVAL, what, "called on something that is not a Client"),
               NULL;
    struct nclient *nc = NULL;
    if (napi_unwrap(env, this_v, (void **)&nc) != napi_ok || !nc)
        return node_throw(env, CHAT_EINVAL, what, "called on something that is not a Client"),
               NULL;
    if (need_open && (nc->closed || !nc->c))
        return node_throw(env, CHAT_ECLOSED, what, "the Client is closed"), NULL;
    *this_out = this_v;
    return nc;
}

#define ARGS(n, what, open)                                                                   \
    size_t argc = (n);                                                                        \
    napi_value argv[(n) > 0 ? (n) : 1];                                                       \
    napi_value this_v = NULL;                                                                 \
    struct nclient *nc = self(env, info, &argc, argv, &this_v, (what), (open));               \
    if (!nc)                                                                                  \
        return NULL

static napi_value check(napi_env env, int rc, const char *what)
{
    return rc < 0 ? node_throw_rc(env, rc, what) : node_undefined(env);
}

/* A string libchat returned through an out parameter, freed here. */
static napi_value take_string(napi_env env, char *s)
{
    napi_value v = s ? node_str(env, s) : NULL;
    if (!s)
        napi_get_null(env, &v);
    chat_string_free(s);
    return v;
}

static void set(napi_env env, napi_value obj, const char *name, napi_value v)
{
    napi_set_named_property(env, obj, name, v);
}

/* ---- constructor: new NativeClient(options, dispatch) ---- */

static int prop(napi_env env, napi_value obj, const char *name, napi_value *out)
{
    bool has = false;
    *out = NULL;
    if (napi_has_named_property(env, obj, name, &has) != napi_ok)
        return -1;
    if (has && napi_get_named_property(env, obj, name, out) != napi_ok)
        return -1;
    if (*out && node_is_nullish(env, *out))
        *out = NULL;
    return 0;
}

static int configure(napi_env env, chat_client_config *cfg, napi_value opts)
{
    const char *what = "Client";
    napi_value v;
    char *s = NULL, *s2 = NULL, *s3 = NULL;
    int rc = CHAT_OK;

    napi_valuetype t = napi_undefined;
    napi_typeof(env, opts, &t);
    if (t != napi_object) {
        node_throw(env, CHAT_EINVAL, what, "options must be an object");
        return -1;
    }
#define STR(name, optional, out)                                                              \
    (prop(env, opts, name, &v) || ((optional) && !v ? 0                                       \
                                   : node_get_str(env, v ? v : node_undefined(env), what,     \
                                                  "options." name, 0, out, NULL)))
    if (STR("server", 0, &s))
        return -1;
    rc = chat_client_config_set_server(cfg, s);
    free(s);
    s = NULL;
    if (rc)
        goto failed;

    if (STR("token", 1, &s))
        return -1;
    if (s) {
        rc = chat_client_config_set_token(cfg, s);
        free(s);
        s = NULL;
        if (rc)
            goto failed;
    }
    if (prop(env, opts, "login", &v))
        return -1;
    if (v) {
        napi_value login = v;
        napi_value u, p, d;
        if (prop(env, login, "user", &u) || prop(env, login, "password", &p) ||
            prop(env, login, "device", &d))
            return -1;
        if (node_get_str(env, u ? u : node_undefined(env), what, "options.login.user", 0, &s,
                         NULL) ||
            node_get_str(env, p ? p : node_undefined(env), what, "options.login.password", 0,
                         &s2, NULL) ||
            (d && node_get_str(env, d, what, "options.login.device", 0, &s3, NULL))) {
            free(s);
            free(s2);
            return -1;
        }
        rc = chat_client_config_set_login(cfg, s, s2, s3 ? s3 : "node");
        free(s);
        free(s2);
        free(s3);
        s = s2 = s3 = NULL;
        if (rc)
            goto failed;
    }
    if (STR("cache", 1, &s))
        return -1;
    if (s) {
        rc = chat_client_config_set_cache_path(cfg, s);
        free(s);
        s = NULL;
        if (rc)
            goto failed;
    }
    if (STR("caFile", 1, &s))
        return -1;
    if (s) {
        rc = chat_client_config_set_ca_file(cfg, s);
        free(s);
        s = NULL;
        if (rc)
            goto failed;
    }
#undef STR
    static const struct {
        const char *name, *a, *b, *fa, *fb;
        int (*set)(chat_client_config *, int64_t, int64_t);
    } pairs[] = {
        {"backoff", "baseMs", "maxMs", "options.backoff.baseMs", "options.backoff.maxMs",
         chat_client_config_set_backoff},
        {"heartbeat", "intervalMs", "timeoutMs", "options.heartbeat.intervalMs",
         "options.heartbeat.timeoutMs", chat_client_config_set_heartbeat},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        if (prop(env, opts, pairs[i].name, &v))
            return -1;
        if (!v)
            continue;
        napi_value a, b;
        int64_t x = 0, y = 0;
        if (prop(env, v, pairs[i].a, &a) || prop(env, v, pairs[i].b, &b) ||
            node_get_int(env, a ? a : node_undefined(env), what, pairs[i].fa, 0, INT64_MAX / 2,
                         &x) ||
            node_get_int(env, b ? b : node_undefined(env), what, pairs[i].fb, 0, INT64_MAX / 2,
                         &y))
            return -1;
        if ((rc = pairs[i].set(cfg, x, y)))
            goto failed;
    }
    if (prop(env, opts, "autoDelivered", &v))
        return -1;
    if (v) {
        int on = 1;
        if (node_get_bool(env, v, what, "options.autoDelivered", &on))
            return -1;
        if ((rc = chat_client_config_set_auto_delivered(cfg, on)))
            goto failed;
    }
    return 0;
failed:
    node_throw_rc(env, rc, what);
    return -1;
}

static napi_value js_new(napi_env env, napi_callback_info info)
{
    size_t argc = 2;
    napi_value argv[2], this_v, target = NULL;
    napi_get_cb_info(env, info, &argc, argv, &this_v, NULL);
    napi_get_new_target(env, info, &target);
    if (!target)
        return node_throw(env, CHAT_EINVAL, "Client", "use new");
    for (size_t i = argc; i < 2; i++)
        argv[i] = node_undefined(env);
    napi_value dispatch;
    if (node_get_func(env, argv[1], "Client", "dispatch", 0, &dispatch))
        return NULL;

    chat_client_config *cfg = NULL;
    int rc = chat_client_config_new(&cfg);
    if (rc)
        return node_throw_rc(env, rc, "Client");
    chat_client *c = NULL;
    if (configure(env, cfg, argv[0])) {
        chat_client_config_free(cfg);
        return NULL;
    }
    rc = chat_client_new(&c, cfg);
    chat_client_config_free(cfg);
    if (rc)
        return node_throw_rc(env, rc, "Client");

    struct nclient *nc = calloc(1, sizeof *nc);
    if (!nc) {
        chat_client_free(c);
        return node_throw(env, CHAT_ENOMEM, "Client", "out of memory");
    }
    nc->c = c;
    nc->env = env;
    nc->refed = 1;
    nc->holders = 1; /* the wrapper */
    nc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    atomic_init(&nc->stopping, 0);
    if (nc->wake_fd < 0) {
        nc->closed = 1;
        nclient_maybe_free(nc);
        nclient_release(nc);
        return node_throw(env, CHAT_EIO, "Client", "eventfd: %s", strerror(errno));
    }
    napi_value name = node_str(env, "libchat events");
    if (napi_wrap(env, this_v, nc, wrap_finalize, NULL, NULL) != napi_ok) {
        nc->closed = 1;
        nclient_maybe_free(nc);
        nclient_release(nc);
        return node_throw(env, CHAT_ERROR, "Client", "napi_wrap failed");
    }
    /* From here the wrapper's finalizer owns nc: failures below only close it. */
    napi_type_tag_object(env, this_v, &client_tag);
    napi_create_reference(env, dispatch, 1, &nc->dispatch);
    if (napi_create_threadsafe_function(env, NULL, NULL, name, QUEUE_MAX, 1, nc, tsfn_finalize,
                                        nc, pump_call_js, &nc->tsfn) != napi_ok) {
        nc->tsfn_released = 1;
        nclient_close(nc, 1);
        return node_throw(env, CHAT_ERROR, "Client", "napi_create_threadsafe_function failed");
    }
    nc->holders++; /* the thread-safe function, until tsfn_finalize */
    /* Registered after the thread-safe function, so it runs first at teardown (hooks run in
     * reverse order) and the function is still there to abort. */
    napi_add_env_cleanup_hook(env, env_cleanup, nc);
    nc->cleanup_hook = 1;
    if (pthread_create(&nc->pump, NULL, pump_main, nc) != 0) {
        nclient_close(nc, 1);
        return node_throw(env, CHAT_ERROR, "Client", "cannot start the event thread");
    }
    nc->pump_started = 1;
    return this_v;
}

/* ---- lifecycle ---- */

static napi_value js_start(napi_env env, napi_callback_info info)
{
    ARGS(0, "start", 1);
    return check(env, chat_client_start(nc->c), "start");
}

static napi_value js_stop(napi_env env, napi_callback_info info)
{
    ARGS(0, "stop", 1);
    return check(env, chat_client_stop(nc->c), "stop");
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
    ARGS(0, "close", 0);
    nclient_close(nc, 1);
    return node_undefined(env);
}

static napi_value js_closed(napi_env env, napi_callback_info info)
{
    ARGS(0, "closed", 0);
    return node_bool(env, nc->closed);
}

/* ref(flag): whether the client keeps the process alive and its JS object reachable. */
static napi_value js_ref(napi_env env, napi_callback_info info)
{
    ARGS(1, "ref", 1);
    int on = 1;
    if (node_get_bool(env, argv[0], "ref", "on", &on))
        return NULL;
    if (on == nc->refed)
        return node_undefined(env);
    uint32_t count = 0;
    if (on) {
        napi_ref_threadsafe_function(env, nc->tsfn);
        napi_reference_ref(env, nc->dispatch, &count);
    } else {
        napi_unref_threadsafe_function(env, nc->tsfn);
        napi_reference_unref(env, nc->dispatch, &count);
    }
    nc->refed = on;
    return node_undefined(env);
}

static napi_value js_state(napi_env env, napi_callback_info info)
{
    ARGS(0, "state", 0);
    return node_num(env, nc->closed || !nc->c ? CHAT_CONN_STOPPED : chat_client_state(nc->c));
}

static napi_value js_reconnect_now(napi_env env, napi_callback_info info)
{
    ARGS(0, "reconnectNow", 1);
    return check(env, chat_client_reconnect_now(nc->c), "reconnectNow");
}

static napi_value js_disconnect(napi_env env, napi_callback_info info)
{
    ARGS(0, "disconnect", 1);
    return check(env, chat_client_disconnect(nc->c), "disconnect");
}

static napi_value js_set_token(napi_env env, napi_callback_info info)
{
    ARGS(1, "setToken", 1);
    char *tok = NULL;
    if (node_get_str(env, argv[0], "setToken", "token", 0, &tok, NULL))
        return NULL;
    int rc = chat_client_set_token(nc->c, tok);
    free(tok);
    return check(env, rc, "setToken");
}

static napi_value js_user(napi_env env, napi_callback_info info)
{
    ARGS(0, "user", 1);
    char *s = NULL;
    int rc = chat_client_user(&s, nc->c);
    if (rc == CHAT_ENOTFOUND)
        return take_string(env, NULL);
    return rc ? node_throw_rc(env, rc, "user") : take_string(env, s);
}

static napi_value js_token(napi_env env, napi_callback_info info)
{
    ARGS(0, "token", 1);
    char *s = NULL;
    int rc = chat_client_token(&s, nc->c);
    if (rc == CHAT_ENOTFOUND)
        return take_string(env, NULL);
    return rc ? node_throw_rc(env, rc, "token") : take_string(env, s);
}

/* ---- sending ---- */

/* send(target, body, media): target a conv id (number/bigint) or a user (string); body the
 * text, or the media object as JSON when media is true. Returns the cmid. */
static napi_value js_send(napi_env env, napi_callback_info info)
{
    ARGS(3, "send", 0);
    int media = 0;
    if (node_get_bool(env, argv[2], "send", "media", &media))
        return NULL;
    napi_valuetype t = napi_undefined;
    napi_typeof(env, argv[0], &t);
    const char *what = media ? (t == napi_string ? "sendMediaTo" : "sendMedia")
                             : (t == napi_string ? "sendTextTo" : "sendText");
    if (nc->closed || !nc->c)
        return node_throw(env, CHAT_ECLOSED, what, "the Client is closed");
    char *user = NULL, *body = NULL, *cmid = NULL;
    node_conv_id conv = 0;
    size_t len = 0;
    if (t == napi_string) {
        if (node_get_str(env, argv[0], what, "user", 0, &user, NULL))
            return NULL;
    } else if (node_get_conv(env, argv[0], what, &conv)) {
        return NULL;
    }
    int rc;
    if (media)
        rc = node_get_str(env, argv[1], what, "media", 0, &body, NULL);
    else
        rc = node_get_str(env, argv[1], what, "text", 0, &body, &len);
    if (rc) {
        free(user);
        return NULL;
    }
    if (media)
        rc = user ? chat_client_send_media_to(&cmid, nc->c, user, body)
                  : chat_client_send_media(&cmid, nc->c, conv, body);
    else
        rc = user ? chat_client_send_text_to(&cmid, nc->c, user, body, len)
                  : chat_client_send_text(&cmid, nc->c, conv, body, len);
    free(user);
    free(body);
    return rc ? node_throw_rc(env, rc, what) : take_string(env, cmid);
}

static napi_value js_outbox_count(napi_env env, napi_callback_info info)
{
    ARGS(0, "outboxCount", 1);
    size_t n = 0;
    int rc = chat_client_outbox_count(&n, nc->c);
    return rc ? node_throw_rc(env, rc, "outboxCount") : node_num(env, (double)n);
}

static napi_value msg_list_value(napi_env env, chat_msg_list *l)
{
    napi_value arr;
    size_t n = chat_msg_list_count(l);
    napi_create_array_with_length(env, n, &arr);
    for (size_t i = 0; i < n; i++) {
        napi_value m;
        napi_create_object(env, &m);
        size_t tl = 0;
        const char *text = chat_msg_list_text(l, i, &tl);
        set(env, m, "conv", node_conv(env, chat_msg_list_conv(l, i)));
        set(env, m, "seq", node_id(env, chat_msg_list_seq(l, i)));
        set(env, m, "ts", node_num(env, (double)chat_msg_list_ts_ms(l, i)));
        set(env, m, "from", node_str(env, chat_msg_list_from(l, i)));
        set(env, m, "cmid", node_str(env, chat_msg_list_cmid(l, i)));
        set(env, m, "kind", node_num(env, chat_msg_list_kind(l, i)));
        set(env, m, "text", node_strn(env, text, tl));
        set(env, m, "json", node_str(env, chat_msg_list_json(l, i)));
        set(env, m, "status", node_num(env, chat_msg_list_status(l, i)));
        set(env, m, "deliveredCount", node_num(env, (double)chat_msg_list_delivered_count(l, i)));
        set(env, m, "readCount", node_num(env, (double)chat_msg_list_read_count(l, i)));
        set(env, m, "others", node_num(env, (double)chat_msg_list_others(l, i)));
        set(env, m, "edited", node_num(env, (double)chat_msg_list_edited_ms(l, i)));
        set(env, m, "deleted", node_bool(env, chat_msg_list_deleted(l, i)));
        set(env, m, "expires", node_num(env, (double)chat_msg_list_expires_ms(l, i)));
        set(env, m, "replyTo", node_id(env, chat_msg_list_reply_to(l, i)));
        set(env, m, "thread", node_id(env, chat_msg_list_thread(l, i)));
        set(env, m, "reactions", node_str(env, chat_msg_list_reactions(l, i)));
        napi_set_element(env, arr, (uint32_t)i, m);
    }
    return arr;
}

static napi_value js_outbox(napi_env env, napi_callback_info info)
{
    ARGS(0, "outbox", 1);
    chat_msg_list *l = NULL;
    int rc = chat_client_outbox(&l, nc->c);
    if (rc)
        return node_throw_rc(env, rc, "outbox");
    napi_value v = msg_list_value(env, l);
    chat_msg_list_free(l);
    return v;
}

/* sendReply(conv, replyTo, thread, text) -> cmid */
static napi_value js_send_reply(napi_env env, napi_callback_info info)
{
    ARGS(4, "sendReply", 1);
    node_conv_id conv = 0;
    uint64_t reply = 0, thread = 0;
    char *text = NULL, *cmid = NULL;
    size_t len = 0;
    if (node_get_conv(env, argv[0], "sendReply", &conv) ||
        node_get_id(env, argv[1], "sendReply", "replyTo", UINT64_MAX, &reply) ||
        node_get_id(env, argv[2], "sendReply", "thread", UINT64_MAX, &thread) ||
        node_get_str(env, argv[3], "sendReply", "text", 0, &text, &len))
        return NULL;
    int rc = chat_client_send_reply(&cmid, nc->c, conv, reply, thread, text, len);
    free(text);
    return rc ? node_throw_rc(env, rc, "sendReply") : take_string(env, cmid);
}

/* ---- receipts, typing, presence, requests ---- */

static napi_value js_mark_read(napi_env env, napi_callback_info info)
{
    ARGS(2, "markRead", 1);
    node_conv_id conv = 0;
    uint64_t seq = 0;
    if (node_get_conv(env, argv[0], "markRead", &conv) ||
        node_get_id(env, argv[1], "markRead", "seq", UINT64_MAX, &seq))
        return NULL;
    return check(env, chat_client_mark_read(nc->c, conv, seq), "markRead");
}

static napi_value js_typing(napi_env env, napi_callback_info info)
{
    ARGS(2, "typing", 1);
    node_conv_id conv = 0;
    int active = 1;
    if (node_get_conv(env, argv[0], "typing", &conv) ||
        node_get_bool(env, argv[1], "typing", "active", &active))
        return NULL;
    return check(env, chat_client_typing(nc->c, conv, active), "typing");
}

static napi_value request_value(napi_env env, int rc, uint64_t req, const char *what)
{
    return rc ? node_throw_rc(env, rc, what) : node_id(env, req);
}

static napi_value js_presence_query(napi_env env, napi_callback_info info)
{
    ARGS(1, "presenceQuery", 1);
    char **users = NULL;
    size_t n = 0;
    if (node_get_strv(env, argv[0], "presenceQuery", "users", &users, &n))
        return NULL;
    uint64_t req = 0;
    int rc = chat_client_presence_query(&req, nc->c, (const char *const *)users, n);
    node_strv_free(users, n);
    return request_value(env, rc, req, "presenceQuery");
}

static napi_value js_media_url(napi_env env, napi_callback_info info)
{
    ARGS(1, "mediaUrl", 1);
    char *id = NULL;
    if (node_get_str(env, argv[0], "mediaUrl", "mediaId", 0, &id, NULL))
        return NULL;
    uint64_t req = 0;
    int rc = chat_client_media_url(&req, nc->c, id);
    free(id);
    return request_value(env, rc, req, "mediaUrl");
}

/* groupCreate(title, members, cmid|null) */
static napi_value js_group_create(napi_env env, napi_callback_info info)
{
    ARGS(3, "groupCreate", 1);
    char *title = NULL, *cmid = NULL, **members = NULL;
    size_t n = 0;
    if (node_get_str(env, argv[0], "groupCreate", "title", 0, &title, NULL))
        return NULL;
    if (node_get_strv(env, argv[1], "groupCreate", "members", &members, &n) ||
        node_get_str(env, argv[2], "groupCreate", "cmid", 1, &cmid, NULL)) {
        free(title);
        node_strv_free(members, n);
        return NULL;
    }
    uint64_t req = 0;
    int rc = cmid ? chat_client_group_create_id(&req, nc->c, cmid, title,
                                                (const char *const *)members, n)
                  : chat_client_group_create(&req, nc->c, title, (const char *const *)members,
                                             n);
    free(title);
    free(cmid);
    node_strv_free(members, n);
    return request_value(env, rc, req, "groupCreate");
}

/* groupAdd / groupRemove (conv, users) */
static napi_value group_users(napi_env env, napi_callback_info info, const char *what,
                              int (*fn)(uint64_t *, chat_client *, node_conv_id,
                                        const char *const *, size_t))
{
    ARGS(2, what, 1);
    node_conv_id conv = 0;
    char **users = NULL;
    size_t n = 0;
    if (node_get_conv(env, argv[0], what, &conv) ||
        node_get_strv(env, argv[1], what, "users", &users, &n))
        return NULL;
    uint64_t req = 0;
    int rc = fn(&req, nc->c, conv, (const char *const *)users, n);
    node_strv_free(users, n);
    return request_value(env, rc, req, what);
}

static napi_value js_group_add(napi_env env, napi_callback_info info)
{
    return group_users(env, info, "groupAdd", chat_client_group_add);
}

static napi_value js_group_remove(napi_env env, napi_callback_info info)
{
    return group_users(env, info, "groupRemove", chat_client_group_remove);
}

static napi_value js_group_leave(napi_env env, napi_callback_info info)
{
    ARGS(1, "groupLeave", 1);
    node_conv_id conv = 0;
    if (node_get_conv(env, argv[0], "groupLeave", &conv))
        return NULL;
    uint64_t req = 0;
    int rc = chat_client_group_leave(&req, nc->c, conv);
    return request_value(env, rc, req, "groupLeave");
}

static napi_value js_group_rename(napi_env env, napi_callback_info info)
{
    ARGS(2, "groupRename", 1);
    node_conv_id conv = 0;
    char *title = NULL;
    if (node_get_conv(env, argv[0], "groupRename", &conv) ||
        node_get_str(env, argv[1], "groupRename", "title", 0, &title, NULL))
        return NULL;
    uint64_t req = 0;
    int rc = chat_client_group_rename(&req, nc->c, conv, title);
    free(title);
    return request_value(env, rc, req, "groupRename");
}

static napi_value js_group_set_role(napi_env env, napi_callback_info info)
{
    ARGS(3, "groupSetRole", 1);
    node_conv_id conv = 0;
    char *user = NULL;
    int64_t role = 0;
    if (node_get_conv(env, argv[0], "groupSetRole", &conv) ||
        node_get_int(env, argv[2], "groupSetRole", "role", CHAT_ROLE_NONE, CHAT_ROLE_OWNER,
                     &role) ||
        node_get_str(env, argv[1], "groupSetRole", "user", 0, &user, NULL))
        return NULL;
    uint64_t req = 0;
    int rc = chat_client_group_set_role(&req, nc->c, conv, user, (int)role);
    free(user);
    return request_value(env, rc, req, "groupSetRole");
}

/* ---- push notifications ---- */

/* pushRegister(platform, token, topic|null, sandbox) */
static napi_value js_push_register(napi_env env, napi_callback_info info)
{
    ARGS(4, "pushRegister", 1);
    char *platform = NULL, *token = NULL, *topic = NULL;
    int sandbox = 0;
    uint64_t req = 0;
    napi_value r = NULL; /* NULL: an argument threw */
    if (!node_get_str(env, argv[0], "pushRegister", "platform", 0, &platform, NULL) &&
        !node_get_str(env, argv[1], "pushRegister", "token", 0, &token, NULL) &&
        !node_get_str(env, argv[2], "pushRegister", "topic", 1, &topic, NULL) &&
        !node_get_bool(env, argv[3], "pushRegister", "sandbox", &sandbox)) {
        int rc = chat_client_push_register(&req, nc->c, platform, token, topic, sandbox);
        r = request_value(env, rc, req, "pushRegister");
    }
    free(platform);
    free(token);
    free(topic);
    return r;
}

static napi_value js_push_unregister(napi_env env, napi_callback_info info)
{
    ARGS(0, "pushUnregister", 1);
    uint64_t req = 0;
    int rc = chat_client_push_unregister(&req, nc->c);
    return request_value(env, rc, req, "pushUnregister");
}

/* mute(conv, untilMs): -1 until unmuted (as convs() reports it), 0 unmutes. */
static napi_value js_mute(napi_env env, napi_callback_info info)
{
    ARGS(2, "mute", 1);
    node_conv_id conv = 0;
    int64_t until = 0;
    if (node_get_conv(env, argv[0], "mute", &conv) ||
        node_get_int(env, argv[1], "mute", "untilMs", -1, (int64_t)MAX_SAFE_INTEGER, &until))
        return NULL;
    uint64_t req = 0;
    int rc = chat_client_mute(&req, nc->c, conv, until < 0 ? INT64_MAX : until);
    return request_value(env, rc, req, "mute");
}

/* ---- changes to sent messages, timers, threads, search ---- */

/* The (conv, seq) of a message call: argv[0], argv[1] (name: the seq's name in errors). */
static int msg_target(napi_env env, napi_value *argv, const char *what, const char *name,
                      node_conv_id *conv, uint64_t *seq)
{
    return node_get_conv(env, argv[0], what, conv) ||
           node_get_id(env, argv[1], what, name, UINT64_MAX, seq);
}

/* edit(conv, seq, text) -> request */
static napi_value js_edit(napi_env env, napi_callback_info info)
{
    ARGS(3, "edit", 1);
    node_conv_id conv = 0;
    uint64_t seq = 0, req = 0;
    char *text = NULL;
    size_t len = 0;
    if (msg_target(env, argv, "edit", "seq", &conv, &seq) ||
        node_get_str(env, argv[2], "edit", "text", 0, &text, &len))
        return NULL;
    int rc = chat_client_edit(&req, nc->c, conv, seq, text, len);
    free(text);
    return request_value(env, rc, req, "edit");
}

/* delete(conv, seq) -> request */
static napi_value js_delete(napi_env env, napi_callback_info info)
{
    ARGS(2, "delete", 1);
    node_conv_id conv = 0;
    uint64_t seq = 0, req = 0;
    if (msg_target(env, argv, "delete", "seq", &conv, &seq))
        return NULL;
    int rc = chat_client_delete(&req, nc->c, conv, seq);
    return request_value(env, rc, req, "delete");
}

/* react(conv, seq, emoji, on) -> request */
static napi_value js_react(napi_env env, napi_callback_info info)
{
    ARGS(4, "react", 1);
    node_conv_id conv = 0;
    uint64_t seq = 0, req = 0;
    char *emoji = NULL;
    int on = 1;
    if (msg_target(env, argv, "react", "seq", &conv, &seq) ||
        node_get_bool(env, argv[3], "react", "on", &on) ||
        node_get_str(env, argv[2], "react", "emoji", 0, &emoji, NULL))
        return NULL;
    int rc = chat_client_react(&req, nc->c, conv, seq, emoji, on);
    free(emoji);
    return request_value(env, rc, req, "react");
}

/* setTimer(conv, ttlMs) -> request */
static napi_value js_set_timer(napi_env env, napi_callback_info info)
{
    ARGS(2, "setTimer", 1);
    node_conv_id conv = 0;
    int64_t ttl = 0;
    uint64_t req = 0;
    if (node_get_conv(env, argv[0], "setTimer", &conv) ||
        node_get_int(env, argv[1], "setTimer", "ttlMs", 0, INT64_MAX, &ttl))
        return NULL;
    int rc = chat_client_set_timer(&req, nc->c, conv, ttl);
    return request_value(env, rc, req, "setTimer");
}

/* markThreadRead(conv, root, seq) -> request */
static napi_value js_mark_thread_read(napi_env env, napi_callback_info info)
{
    ARGS(3, "markThreadRead", 1);
    node_conv_id conv = 0;
    uint64_t root = 0, seq = 0, req = 0;
    if (msg_target(env, argv, "markThreadRead", "root", &conv, &root) ||
        node_get_id(env, argv[2], "markThreadRead", "seq", UINT64_MAX, &seq))
        return NULL;
    int rc = chat_client_mark_thread_read(&req, nc->c, conv, root, seq);
    return request_value(env, rc, req, "markThreadRead");
}

/* thread(conv, root, after, limit) -> request */
static napi_value js_thread(napi_env env, napi_callback_info info)
{
    ARGS(4, "thread", 1);
    node_conv_id conv = 0;
    uint64_t root = 0, after = 0, req = 0;
    int64_t limit = 0;
    if (msg_target(env, argv, "thread", "root", &conv, &root) ||
        node_get_id(env, argv[2], "thread", "after", UINT64_MAX, &after) ||
        node_get_int(env, argv[3], "thread", "limit", 1, INT32_MAX, &limit))
        return NULL;
    int rc = chat_client_thread(&req, nc->c, conv, root, after, (int)limit);
    return request_value(env, rc, req, "thread");
}

/* search(query, conv, before, limit) -> request */
static napi_value js_search(napi_env env, napi_callback_info info)
{
    ARGS(4, "search", 1);
    node_conv_id conv = 0;
    uint64_t before = 0, req = 0;
    int64_t limit = 0;
    char *query = NULL;
    if (node_get_conv(env, argv[1], "search", &conv) ||
        node_get_id(env, argv[2], "search", "before", UINT64_MAX, &before) ||
        node_get_int(env, argv[3], "search", "limit", 1, INT32_MAX, &limit) ||
        node_get_str(env, argv[0], "search", "query", 0, &query, NULL))
        return NULL;
    int rc = chat_client_search(&req, nc->c, query, conv, before, (int)limit);
    free(query);
    return request_value(env, rc, req, "search");
}

/* searchLocal(query, conv, limit) -> [message] */
static napi_value js_search_local(napi_env env, napi_callback_info info)
{
    ARGS(3, "searchLocal", 1);
    node_conv_id conv = 0;
    int64_t limit = 0;
    char *query = NULL;
    if (node_get_conv(env, argv[1], "searchLocal", &conv) ||
        node_get_int(env, argv[2], "searchLocal", "limit", 1, INT32_MAX, &limit) ||
        node_get_str(env, argv[0], "searchLocal", "query", 0, &query, NULL))
        return NULL;
    chat_msg_list *l = NULL;
    int rc = chat_client_search_local(&l, nc->c, query, conv, (int)limit);
    free(query);
    if (rc)
        return node_throw_rc(env, rc, "searchLocal");
    napi_value v = msg_list_value(env, l);
    chat_msg_list_free(l);
    return v;
}

/* ---- the cache ---- */

static napi_value js_convs(napi_env env, napi_callback_info info)
{
    ARGS(0, "convs", 1);
    chat_conv_list *l = NULL;
    int rc = chat_client_convs(&l, nc->c);
    if (rc)
        return node_throw_rc(env, rc, "convs");
    napi_value arr;
    size_t n = chat_conv_list_count(l);
    napi_create_array_with_length(env, n, &arr);
    for (size_t i = 0; i < n; i++) {
        napi_value o;
        napi_create_object(env, &o);
        set(env, o, "id", node_conv(env, chat_conv_list_id(l, i)));
        set(env, o, "kind", node_num(env, chat_conv_list_kind(l, i)));
        set(env, o, "title", node_str(env, chat_conv_list_title(l, i)));
        set(env, o, "peer", node_str(env, chat_conv_list_peer(l, i)));
        set(env, o, "role", node_num(env, chat_conv_list_role(l, i)));
        set(env, o, "head", node_id(env, chat_conv_list_head(l, i)));
        set(env, o, "read", node_id(env, chat_conv_list_read(l, i)));
        set(env, o, "unread", node_id(env, chat_conv_list_unread(l, i)));
        set(env, o, "memberCount", node_num(env, (double)chat_conv_list_member_count(l, i)));
        set(env, o, "mutedUntil", node_num(env, (double)chat_conv_list_muted_until(l, i)));
        napi_set_element(env, arr, (uint32_t)i, o);
    }
    chat_conv_list_free(l);
    return arr;
}

/* history(conv, before, limit) -> {messages, complete, request} */
static napi_value js_history(napi_env env, napi_callback_info info)
{
    ARGS(3, "history", 1);
    node_conv_id conv = 0;
    uint64_t before = 0;
    int64_t limit = 0;
    if (node_get_conv(env, argv[0], "history", &conv) ||
        node_get_id(env, argv[1], "history", "before", UINT64_MAX, &before) ||
        node_get_int(env, argv[2], "history", "limit", 1, INT32_MAX, &limit))
        return NULL;
    chat_msg_list *l = NULL;
    uint64_t req = 0;
    int rc = chat_client_history(&l, &req, nc->c, conv, before, (int)limit);
    if (rc)
        return node_throw_rc(env, rc, "history");
    napi_value o;
    napi_create_object(env, &o);
    set(env, o, "messages", msg_list_value(env, l));
    set(env, o, "complete", node_bool(env, chat_msg_list_complete(l)));
    set(env, o, "request", node_id(env, req));
    chat_msg_list_free(l);
    return o;
}

static napi_value js_message_status(napi_env env, napi_callback_info info)
{
    ARGS(1, "messageStatus", 1);
    char *cmid = NULL;
    if (node_get_str(env, argv[0], "messageStatus", "cmid", 0, &cmid, NULL))
        return NULL;
    int st = 0;
    node_conv_id conv = 0;
    uint64_t seq = 0;
    int rc = chat_client_message_status(&st, &conv, &seq, nc->c, cmid);
    free(cmid);
    if (rc)
        return node_throw_rc(env, rc, "messageStatus");
    napi_value o;
    napi_create_object(env, &o);
    set(env, o, "status", node_num(env, st));
    set(env, o, "conv", node_conv(env, conv));
    set(env, o, "seq", node_id(env, seq));
    return o;
}

static napi_value js_message_receipts(napi_env env, napi_callback_info info)
{
    ARGS(2, "messageReceipts", 1);
    node_conv_id conv = 0;
    uint64_t seq = 0;
    if (node_get_conv(env, argv[0], "messageReceipts", &conv) ||
        node_get_id(env, argv[1], "messageReceipts", "seq", UINT64_MAX, &seq))
        return NULL;
    size_t d = 0, r = 0, o = 0;
    int rc = chat_client_message_receipts(&d, &r, &o, nc->c, conv, seq);
    if (rc)
        return node_throw_rc(env, rc, "messageReceipts");
    napi_value obj;
    napi_create_object(env, &obj);
    set(env, obj, "delivered", node_num(env, (double)d));
    set(env, obj, "read", node_num(env, (double)r));
    set(env, obj, "others", node_num(env, (double)o));
    return obj;
}

/* ---- transfers ---- */

static napi_value js_upload(napi_env env, napi_callback_info info)
{
    ARGS(4, "uploadFile", 1);
    return node_client_upload(env, nc, this_v, argv);
}

static napi_value js_download(napi_env env, napi_callback_info info)
{
    ARGS(5, "download", 1);
    return node_client_download(env, nc, this_v, argv);
}

static napi_value js_abort_transfer(napi_env env, napi_callback_info info)
{
    ARGS(1, "abortTransfer", 0);
    uint64_t id = 0;
    if (node_get_id(env, argv[0], "abortTransfer", "id", UINT32_MAX, &id))
        return NULL;
    node_transfer_abort_id(nc, (uint32_t)id);
    return node_undefined(env);
}

napi_value node_client_class(napi_env env)
{
#define M(name, fn) {name, NULL, fn, NULL, NULL, NULL, napi_default_method, NULL}
    napi_property_descriptor methods[] = {
        M("start", js_start),
        M("stop", js_stop),
        M("close", js_close),
        M("closed", js_closed),
        M("ref", js_ref),
        M("state", js_state),
        M("reconnectNow", js_reconnect_now),
        M("disconnect", js_disconnect),
        M("setToken", js_set_token),
        M("user", js_user),
        M("token", js_token),
        M("send", js_send),
        M("sendReply", js_send_reply),
        M("edit", js_edit),
        M("delete", js_delete),
        M("react", js_react),
        M("setTimer", js_set_timer),
        M("markThreadRead", js_mark_thread_read),
        M("thread", js_thread),
        M("search", js_search),
        M("searchLocal", js_search_local),
        M("outboxCount", js_outbox_count),
        M("outbox", js_outbox),
        M("markRead", js_mark_read),
        M("typing", js_typing),
        M("presenceQuery", js_presence_query),
        M("mediaUrl", js_media_url),
        M("groupCreate", js_group_create),
        M("groupAdd", js_group_add),
        M("groupRemove", js_group_remove),
        M("groupLeave", js_group_leave),
        M("groupRename", js_group_rename),
        M("groupSetRole", js_group_set_role),
        M("pushRegister", js_push_register),
        M("pushUnregister", js_push_unregister),
        M("mute", js_mute),
        M("convs", js_convs),
        M("history", js_history),
        M("messageStatus", js_message_status),
        M("messageReceipts", js_message_receipts),
        M("upload", js_upload),
        M("download", js_download),
        M("abortTransfer", js_abort_transfer),
    };
#undef M
    napi_value cls = NULL;
    if (napi_define_class(env, "NativeClient", NAPI_AUTO_LENGTH, js_new, NULL,
                          sizeof methods / sizeof methods[0], methods, &cls) != napi_ok) {
        napi_throw_error(env, NULL, "libchat: cannot define NativeClient");
        return NULL;
    }
    return cls;
}
