/* Public entry points of the client engine: configuration, lifecycle, the [any thread] calls
 * that write the cache or post work to the loop thread, and the list getters. */
#define _GNU_SOURCE
#include "client/internal.h"
#include "client/lists.h"
#include "chat/sys/store.h"

#include "auth/keyring.h"
#include "core/alloc.h"
#include "core/monowait.h"
#include "core/thread.h"
#include "core/error.h"
#include "core/ids.h"
#include "core/json.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define BODY_MAX (16 * 1024)

static int set_str(char **dst, const char *s)
{
    char *n = NULL;
    if (s && !(n = chat__strdup(s)))
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    chat__free(*dst);
    *dst = n;
    return CHAT_OK;
}

static void free_secret(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = 0;
        chat__free(s);
    }
}

/* ---- configuration ----------------------------------------------------------------------- */

int chat_client_config_new(chat_client_config **out)
{
    if (!out)
        return chat__error_set(CHAT_EINVAL, 0, "out is NULL");
    chat_client_config *cfg = chat__calloc(1, sizeof *cfg);
    if (!cfg)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    cfg->backoff_base_ms = 500;
    cfg->backoff_max_ms = 30000;
    cfg->hb_interval_ms = 15000;
    cfg->hb_timeout_ms = 10000;
    cfg->queue_enabled = 1;
    cfg->auto_delivered = 1;
    *out = cfg;
    return CHAT_OK;
}

void chat_client_config_free(chat_client_config *cfg)
{
    if (!cfg)
        return;
    chat__free(cfg->url);
    free_secret(cfg->token);
    chat__free(cfg->user);
    free_secret(cfg->password);
    chat__free(cfg->device);
    chat__free(cfg->cache_path);
    chat__free(cfg->ca_file);
    if (cfg->ev_destroy)
        cfg->ev_destroy(cfg->ev_ud);
    if (cfg->tops && cfg->tstate)
        cfg->tops->destroy(cfg->tstate);
    chat__free(cfg);
}

#define CHECK_CFG(cfg)                                                                          \
    do {                                                                                        \
        if (!(cfg))                                                                             \
            return chat__error_set(CHAT_EINVAL, 0, "cfg is NULL");                              \
    } while (0)

int chat_client_config_set_server(chat_client_config *cfg, const char *url)
{
    CHECK_CFG(cfg);
    if (!url || (strncmp(url, "ws://", 5) != 0 && strncmp(url, "wss://", 6) != 0))
        return chat__error_set(CHAT_EINVAL, 0, "url: expected ws://host:port/");
    return set_str(&cfg->url, url);
}

int chat_client_config_set_token(chat_client_config *cfg, const char *token)
{
    CHECK_CFG(cfg);
    if (!token || !*token)
        return chat__error_set(CHAT_EINVAL, 0, "token is empty");
    char *n = chat__strdup(token);
    if (!n)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    free_secret(cfg->token);
    cfg->token = n;
    return CHAT_OK;
}

int chat_client_config_set_login(chat_client_config *cfg, const char *user, const char *password,
                                 const char *device)
{
    CHECK_CFG(cfg);
    if (!user || !chat__id_valid(user, strlen(user)))
        return chat__error_set(CHAT_EINVAL, 0, "user: 1..64 of [A-Za-z0-9_.@-]");
    if (!device || !chat__id_valid(device, strlen(device)))
        return chat__error_set(CHAT_EINVAL, 0, "device: 1..64 of [A-Za-z0-9_.@-]");
    if (!password)
        return chat__error_set(CHAT_EINVAL, 0, "password is NULL");
    char *p = chat__strdup(password);
    if (!p)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    int rc = set_str(&cfg->user, user);
    if (rc == CHAT_OK)
        rc = set_str(&cfg->device, device);
    if (rc != CHAT_OK) {
        free_secret(p);
        return rc;
    }
    free_secret(cfg->password);
    cfg->password = p;
    return CHAT_OK;
}

int chat_client_config_set_cache_path(chat_client_config *cfg, const char *path)
{
    CHECK_CFG(cfg);
    return set_str(&cfg->cache_path, path);
}

int chat_client_config_set_ca_file(chat_client_config *cfg, const char *path)
{
    CHECK_CFG(cfg);
    if (path && !*path)
        return chat__error_set(CHAT_EINVAL, 0, "the CA file path is empty");
    if (!path) {
        chat__free(cfg->ca_file);
        cfg->ca_file = NULL;
        return CHAT_OK;
    }
    return set_str(&cfg->ca_file, path);
}

int chat_client_config_set_backoff(chat_client_config *cfg, int64_t base_ms, int64_t max_ms)
{
    CHECK_CFG(cfg);
    if (base_ms < 1 || max_ms < base_ms || max_ms > INT32_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "backoff: need 1 <= base_ms <= max_ms");
    cfg->backoff_base_ms = base_ms;
    cfg->backoff_max_ms = max_ms;
    return CHAT_OK;
}

int chat_client_config_set_heartbeat(chat_client_config *cfg, int64_t interval_ms,
                                     int64_t timeout_ms)
{
    CHECK_CFG(cfg);
    if (interval_ms < 10 || timeout_ms < 10 || interval_ms > INT32_MAX || timeout_ms > INT32_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "heartbeat: need 10 ms or more");
    cfg->hb_interval_ms = interval_ms;
    cfg->hb_timeout_ms = timeout_ms;
    return CHAT_OK;
}

int chat_client_config_set_log(chat_client_config *cfg, chat_log_cb cb, int max_level,
                               void *user_data)
{
    CHECK_CFG(cfg);
    cfg->log_cb = cb;
    cfg->log_level = max_level;
    cfg->log_ud = user_data;
    return CHAT_OK;
}

int chat_client_config_set_event_cb(chat_client_config *cfg, chat_client_event_cb cb,
                                    void *user_data, void (*destroy)(void *user_data))
{
    CHECK_CFG(cfg);
    if (cfg->ev_destroy)
        cfg->ev_destroy(cfg->ev_ud);
    cfg->ev_cb = cb;
    cfg->ev_ud = user_data;
    cfg->ev_destroy = destroy;
    return CHAT_OK;
}

int chat_client_config_set_event_queue(chat_client_config *cfg, int enabled)
{
    CHECK_CFG(cfg);
    cfg->queue_enabled = enabled != 0;
    return CHAT_OK;
}

int chat_client_config_set_auto_delivered(chat_client_config *cfg, int enabled)
{
    CHECK_CFG(cfg);
    cfg->auto_delivered = enabled != 0;
    return CHAT_OK;
}

int chat_client_config_set_transport(chat_client_config *cfg,
                                     const chat_client_transport_ops *ops, void *state)
{
    if (!cfg || !ops) {
        if (ops && ops->destroy && state)
            ops->destroy(state);
        return chat__error_set(CHAT_EINVAL, 0, "cfg or ops is NULL");
    }
    if (ops->version < 1 || ops->version > CHAT_CLIENT_TRANSPORT_OPS_VERSION) {
        if (ops->destroy && state)
            ops->destroy(state);
        return chat__error_set(CHAT_EVERSION, 0, "transport ops version %u", ops->version);
    }
    const char *missing = !ops->destroy     ? "destroy"
                          : !ops->connect   ? "connect"
                          : !ops->send_text ? "send_text"
                          : !ops->close     ? "close"
                          : !ops->poll      ? "poll"
                          : !ops->wake      ? "wake"
                                            : NULL;
    if (missing) {
        if (ops->destroy && state)
            ops->destroy(state);
        return chat__error_set(CHAT_EINVAL, 0, "transport ops: %s is NULL", missing);
    }
    if (cfg->tops && cfg->tstate)
        cfg->tops->destroy(cfg->tstate);
    cfg->tops = ops;
    cfg->tstate = state;
    return CHAT_OK;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static int on_loop_thread(chat_client *c)
{
    return atomic_load(&c->loop_tid_valid) && pthread_equal(c->loop_tid, pthread_self());
}

int chat_client_new(chat_client **out, chat_client_config *cfg)
{
    if (!out || !cfg)
        return chat__error_set(CHAT_EINVAL, 0, "out or cfg is NULL");
    if (!cfg->url)
        return chat__error_set(CHAT_EINVAL, 0, "no server URL");
    if (!cfg->token && !cfg->password && !cfg->cache_path)
        return chat__error_set(CHAT_EINVAL, 0, "no credentials (token or login)");
    if (chat__sodium_init() != CHAT_OK)
        return CHAT_ERROR;
    chat_client *c = chat__calloc(1, sizeof *c);
    if (!c)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    c->ev_fd = -1;
    pthread_mutex_init(&c->life_mu, NULL);
    pthread_mutex_init(&c->cmd_mu, NULL);
    pthread_mutex_init(&c->ev_mu, NULL);
    chat__cond_init_mono(&c->ev_cond);
    int rc = CHAT_ENOMEM;
    if (!(c->url = chat__strdup(cfg->url)) ||
        (cfg->token && !(c->token = chat__strdup(cfg->token))) ||
        (cfg->password && !(c->password = chat__strdup(cfg->password))) ||
        (cfg->user && !(c->login_user = chat__strdup(cfg->user))) ||
        (cfg->device && !(c->device = chat__strdup(cfg->device))) ||
        (cfg->ca_file && !(c->ca_file = chat__strdup(cfg->ca_file)))) {
        chat__error_set(rc, 0, "out of memory");
        goto fail;
    }
    c->backoff_base_ms = cfg->backoff_base_ms;
    c->backoff_max_ms = cfg->backoff_max_ms;
    c->hb_interval_ms = cfg->hb_interval_ms;
    c->hb_timeout_ms = cfg->hb_timeout_ms;
    c->log_cb = cfg->log_cb;
    c->log_level = cfg->log_level;
    c->log_ud = cfg->log_ud;
    c->queue_enabled = cfg->queue_enabled;
    c->auto_delivered = cfg->auto_delivered;
    c->ev_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->ev_fd < 0) {
        rc = chat__error_set(CHAT_EIO, errno, "eventfd: %s", strerror(errno));
        goto fail;
    }
    rc = chat__cache_open(&c->cache, cfg->cache_path);
    if (rc != CHAT_OK)
        goto fail;
    char *me = NULL;
    if (chat__cache_meta_get(c->cache, "user", &me) == CHAT_OK)
        c->me = me;
    if (cfg->tops) {
        c->tops = cfg->tops;
        c->tstate = cfg->tstate;
    } else {
        rc = chat_client_transport_ws_new(&c->tstate);
        if (rc != CHAT_OK)
            goto fail;
        c->tops = chat_client_transport_ws_ops();
        if (cfg->ca_file && (rc = chat__client_ws_set_ca_file(c->tstate, cfg->ca_file)) != CHAT_OK)
            goto fail;
    }
    /* success: take what moves from the config */
    cfg->tops = NULL;
    cfg->tstate = NULL;
    c->ev_cb = cfg->ev_cb;
    c->ev_ud = cfg->ev_ud;
    c->ev_destroy = cfg->ev_destroy;
    cfg->ev_cb = NULL;
    cfg->ev_ud = NULL;
    cfg->ev_destroy = NULL;
    atomic_store(&c->next_request, 1);
    *out = c;
    return CHAT_OK;
fail:
    chat_client_free(c);
    return rc;
}

int chat_client_start(chat_client *c)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    if (on_loop_thread(c))
        return chat__error_set(CHAT_EMISUSE, 0, "chat_client_start on the loop thread");
    pthread_mutex_lock(&c->life_mu);
    int rc = CHAT_OK;
    if (c->running)
        rc = chat__error_set(CHAT_EMISUSE, 0, "client already started");
    else {
        atomic_store(&c->stop, 0);
        if (chat__thread_start(&c->thread, chat__client_loop, c) != 0)
            rc = chat__error_set(CHAT_ERROR, 0, "cannot create the loop thread");
        else
            c->running = 1;
    }
    pthread_mutex_unlock(&c->life_mu);
    return rc;
}

int chat_client_stop(chat_client *c)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    if (on_loop_thread(c))
        return chat__error_set(CHAT_EMISUSE, 0, "chat_client_stop on the loop thread");
    pthread_mutex_lock(&c->life_mu);
    if (c->running) {
        atomic_store(&c->stop, 1);
        c->tops->wake(c->tstate);
        pthread_join(c->thread, NULL);
        c->running = 0;
    }
    pthread_mutex_unlock(&c->life_mu);
    return CHAT_OK;
}

void chat_client_free(chat_client *c)
{
    if (!c)
        return;
    if (c->tops)
        chat_client_stop(c);
    chat__cmd *cmd = c->cmd_head;
    while (cmd) {
        chat__cmd *n = cmd->next;
        cJSON_Delete(cmd->body);
        chat__free(cmd);
        cmd = n;
    }
    while (c->pend) {
        chat__pend *p = c->pend;
        c->pend = p->next;
        chat__free(p->cmid);
        chat__free(p);
    }
    if (c->tops && c->tstate)
        c->tops->destroy(c->tstate);
    if (c->ev_destroy)
        c->ev_destroy(c->ev_ud);
    chat__event_queue_clear(c);
    if (c->ev_fd >= 0)
        close(c->ev_fd);
    chat__cache_close(c->cache);
    cJSON_Delete(c->push_frame);
    chat__free(c->fetch);
    chat__free(c->url);
    free_secret(c->token);
    free_secret(c->password);
    chat__free(c->login_user);
    chat__free(c->device);
    chat__free(c->ca_file);
    chat__free(c->me);
    pthread_cond_destroy(&c->ev_cond);
    pthread_mutex_destroy(&c->ev_mu);
    pthread_mutex_destroy(&c->cmd_mu);
    pthread_mutex_destroy(&c->life_mu);
    chat__free(c);
}

int chat_client_state(const chat_client *c)
{
    return c ? atomic_load(&((chat_client *)c)->state) : CHAT_CONN_STOPPED;
}

/* A conversation id the wire can carry exactly: 1..2^53-1 (JSON numbers are doubles). */
static int conv_ok(chat_conv_id conv)
{
    return conv > 0 && conv <= CHAT__JSON_INT_MAX;
}

static int post_simple(chat_client *c, int type, chat_conv_id conv, uint64_t seq)
{
    chat__cmd *cmd = chat__calloc(1, sizeof *cmd);
    if (!cmd)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    cmd->type = type;
    cmd->conv = conv;
    cmd->seq = seq;
    return chat__client_post(c, cmd);
}

int chat_client_reconnect_now(chat_client *c)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    return post_simple(c, CMD_RECONNECT, 0, 0);
}

int chat_client_disconnect(chat_client *c)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    return post_simple(c, CMD_DISCONNECT, 0, 0);
}

int chat_client_set_token(chat_client *c, const char *token)
{
    if (!c || !token || !*token)
        return chat__error_set(CHAT_EINVAL, 0, "client or token is NULL");
    char *n = chat__strdup(token);
    if (!n)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    pthread_mutex_lock(&c->cmd_mu);
    char *old = c->token;
    c->token = n;
    pthread_mutex_unlock(&c->cmd_mu);
    free_secret(old);
    return post_simple(c, CMD_RECONNECT, 0, 0);
}

int chat_client_user(char **out, chat_client *c)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    char *me = chat__client_me(c);
    if (!me)
        return chat__error_set(CHAT_ENOTFOUND, 0, "not authenticated yet");
    *out = me;
    return CHAT_OK;
}

int chat_client_token(char **out, chat_client *c)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    pthread_mutex_lock(&c->cmd_mu);
    char *t = c->token ? chat__strdup(c->token) : NULL;
    int had = c->token != NULL;
    pthread_mutex_unlock(&c->cmd_mu);
    if (had && !t)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    if (!t) {
        int rc = chat__cache_meta_get(c->cache, "token", &t);
        if (rc != CHAT_OK)
            return rc == CHAT_ENOTFOUND ? chat__error_set(rc, 0, "no token yet") : rc;
    }
    *out = t;
    return CHAT_OK;
}

/* ---- sending ----------------------------------------------------------------------------- */

/* A message is in the outbox: hand the caller its cmid and wake the loop to send it. */
static int queued(chat_client *c, const char *cmid, char **out_cmid)
{
    if (out_cmid && !(*out_cmid = chat__strdup(cmid))) {
        /* the message is queued anyway; only the copy failed */
        post_simple(c, CMD_FLUSH, 0, 0);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    return post_simple(c, CMD_FLUSH, 0, 0);
}

static int check_text(const char *text, size_t len)
{
    if (!text)
        return chat__error_set(CHAT_EINVAL, 0, "text is NULL");
    if (len == 0 || len > BODY_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "text: 1..%d bytes", BODY_MAX);
    if (memchr(text, 0, len))
        return chat__error_set(CHAT_EINVAL, 0, "text contains a NUL byte");
    return CHAT_OK;
}

static int send_common(char **out_cmid, chat_client *c, chat_conv_id conv, const char *to,
                       const char *text, size_t len)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    int rc = check_text(text, len);
    if (rc != CHAT_OK)
        return rc;
    char cmid[CHAT__CMID_SIZE];
    rc = chat__cache_outbox_add(c->cache, conv, to, text, len, cmid);
    return rc == CHAT_OK ? queued(c, cmid, out_cmid) : rc;
}

int chat_client_send_reply(char **out_cmid, chat_client *c, chat_conv_id conv, uint64_t reply_seq,
                           uint64_t thread_seq, const char *text, size_t len)
{
    if (!c || !conv_ok(conv))
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL or conv not 1..2^53-1");
    int rc = check_text(text, len);
    if (rc != CHAT_OK)
        return rc;
    char cmid[CHAT__CMID_SIZE];
    rc = chat__cache_outbox_add_reply(c->cache, conv, reply_seq, thread_seq, text, len, cmid);
    return rc == CHAT_OK ? queued(c, cmid, out_cmid) : rc;
}

int chat_client_send_text(char **out_cmid, chat_client *c, chat_conv_id conv, const char *text,
                          size_t len)
{
    if (!conv_ok(conv))
        return chat__error_set(CHAT_EINVAL, 0, "conv: 1..2^53-1");
    return send_common(out_cmid, c, conv, NULL, text, len);
}

int chat_client_send_text_to(char **out_cmid, chat_client *c, const char *user,
                             const char *text, size_t len)
{
    if (!user || !chat__id_valid(user, strlen(user)))
        return chat__error_set(CHAT_EINVAL, 0, "user: 1..64 of [A-Za-z0-9_.@-]");
    return send_common(out_cmid, c, 0, user, text, len);
}

int chat_client_outbox_count(size_t *out, chat_client *c)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    return chat__cache_outbox_count(c->cache, out);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* after: what the answer's handling needs besides conv (PEND_MUTE: the mute's end). */
static int post_frame_after(uint64_t *out_request, chat_client *c, cJSON *body, int kind,
                            chat_conv_id conv, uint64_t after)
{
    if (!body)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    chat__cmd *cmd = chat__calloc(1, sizeof *cmd);
    if (!cmd) {
        cJSON_Delete(body);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    cmd->type = CMD_FRAME;
    cmd->kind = kind;
    cmd->conv = conv;
    cmd->seq = after;
    cmd->body = body;
    cmd->request = atomic_fetch_add(&c->next_request, 1);
    if (out_request)
        *out_request = cmd->request;
    return chat__client_post(c, cmd);
}

static int post_frame(uint64_t *out_request, chat_client *c, cJSON *body, int kind,
                      chat_conv_id conv)
{
    return post_frame_after(out_request, c, body, kind, conv, 0);
}

static cJSON *users_array(const char *const *users, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
        cJSON *s = cJSON_CreateString(users[i]);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static int check_users(const char *const *users, size_t n, int allow_empty)
{
    if ((!users && n) || (!n && !allow_empty))
        return chat__error_set(CHAT_EINVAL, 0, "users: need at least one");
    for (size_t i = 0; i < n; i++)
        if (!users[i] || !chat__id_valid(users[i], strlen(users[i])))
            return chat__error_set(CHAT_EINVAL, 0, "users[%zu] is not a valid user id", i);
    return CHAT_OK;
}

static cJSON *frame(const char *type, chat_conv_id conv)
{
    cJSON *o = cJSON_CreateObject();
    if (o && !cJSON_AddStringToObject(o, "type", type)) {
        cJSON_Delete(o);
        return NULL;
    }
    if (o && conv && !chat__json_add_int(o, "conv", conv)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static int add_users(cJSON *o, const char *key, const char *const *users, size_t n)
{
    cJSON *a = users_array(users, n);
    if (!a || !cJSON_AddItemToObject(o, key, a)) {
        cJSON_Delete(a);
        return CHAT_ENOMEM;
    }
    return CHAT_OK;
}

int chat_client_mark_read(chat_client *c, chat_conv_id conv, uint64_t seq)
{
    if (!c || !conv_ok(conv) || !seq)
        return chat__error_set(CHAT_EINVAL, 0, "client, conv or seq is 0 (conv: 1..2^53-1)");
    int rc = chat__cache_mark_read(c->cache, conv, seq);
    if (rc != CHAT_OK)
        return rc;
    return post_simple(c, CMD_READ, conv, seq);
}

int chat_client_typing(chat_client *c, chat_conv_id conv, int active)
{
    if (!c || !conv_ok(conv))
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL or conv not in 1..2^53-1");
    cJSON *o = frame("typing", conv);
    if (!o || !cJSON_AddStringToObject(o, "state", active ? "start" : "stop")) {
        cJSON_Delete(o);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    chat__cmd *cmd = chat__calloc(1, sizeof *cmd);
    if (!cmd) {
        cJSON_Delete(o);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    cmd->type = CMD_TYPING;
    cmd->body = o;
    return chat__client_post(c, cmd);
}

int chat_client_presence_query(uint64_t *out_request, chat_client *c, const char *const *users,
                               size_t n_users)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    int rc = check_users(users, n_users, 0);
    if (rc != CHAT_OK)
        return rc;
    cJSON *o = frame("presence", 0);
    if (o && add_users(o, "users", users, n_users) != CHAT_OK) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_PRESENCE, 0);
}

int chat_client_group_create_id(uint64_t *out_request, chat_client *c, const char *cmid,
                                const char *title, const char *const *members, size_t n_members)
{
    if (!c || !title)
        return chat__error_set(CHAT_EINVAL, 0, "client or title is NULL");
    if (cmid && !chat__cmid_valid(cmid, strlen(cmid)))
        return chat__error_set(CHAT_EINVAL, 0, "a cmid is 1-64 printable ASCII characters, no space");
    int rc = check_users(members, n_members, 1);
    if (rc != CHAT_OK)
        return rc;
    cJSON *o = frame("group_create", 0);
    if (o && (!cJSON_AddStringToObject(o, "title", title) ||
              add_users(o, "members", members, n_members) != CHAT_OK ||
              (cmid && !cJSON_AddStringToObject(o, "cmid", cmid)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_GROUP, 0);
}

int chat_client_group_create(uint64_t *out_request, chat_client *c, const char *title,
                             const char *const *members, size_t n_members)
{
    return chat_client_group_create_id(out_request, c, NULL, title, members, n_members);
}

static int group_users(uint64_t *out_request, chat_client *c, const char *type, chat_conv_id conv,
                       const char *const *users, size_t n)
{
    if (!c || !conv_ok(conv))
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL or conv not in 1..2^53-1");
    int rc = check_users(users, n, 0);
    if (rc != CHAT_OK)
        return rc;
    cJSON *o = frame(type, conv);
    if (o && add_users(o, "users", users, n) != CHAT_OK) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_GROUP, conv);
}

int chat_client_group_add(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                          const char *const *users, size_t n_users)
{
    return group_users(out_request, c, "group_add", conv, users, n_users);
}

int chat_client_group_remove(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                             const char *const *users, size_t n_users)
{
    return group_users(out_request, c, "group_remove", conv, users, n_users);
}

int chat_client_group_leave(uint64_t *out_request, chat_client *c, chat_conv_id conv)
{
    if (!c || !conv_ok(conv))
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL or conv not in 1..2^53-1");
    return post_frame(out_request, c, frame("group_leave", conv), PEND_GROUP, conv);
}

int chat_client_group_rename(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                             const char *title)
{
    if (!c || !conv_ok(conv) || !title)
        return chat__error_set(CHAT_EINVAL, 0, "client, conv or title is missing");
    cJSON *o = frame("group_update", conv);
    if (o && !cJSON_AddStringToObject(o, "title", title)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_GROUP, conv);
}

/* ---- push registration and mutes ---------------------------------------------------------- */

static int token_ok(const char *s, int hex)
{
    size_t n = strlen(s);
    if (n == 0 || n > CHAT_CLIENT_PUSH_TOKEN_MAX || (hex && (n < 16 || n > 200 || n % 2)))
        return 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        int ok = (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
        if (!hex)
            ok = ok || (ch >= 'g' && ch <= 'z') || (ch >= 'G' && ch <= 'Z') || ch == '_' ||
                 ch == '-' || ch == ':' || ch == '.';
        if (!ok)
            return 0;
    }
    return 1;
}

static int post_push(uint64_t *out_request, chat_client *c, cJSON *body)
{
    chat__cmd *cmd = chat__calloc(1, sizeof *cmd);
    if (!cmd) {
        cJSON_Delete(body);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    cmd->type = CMD_PUSH;
    cmd->body = body;
    cmd->request = atomic_fetch_add(&c->next_request, 1);
    if (out_request)
        *out_request = cmd->request;
    return chat__client_post(c, cmd);
}

int chat_client_push_register(uint64_t *out_request, chat_client *c, const char *platform,
                              const char *token, const char *topic, int sandbox)
{
    if (!c || !platform || !token)
        return chat__error_set(CHAT_EINVAL, 0, "client, platform or token is NULL");
    int apns = strcmp(platform, "apns") == 0;
    if (!apns && strcmp(platform, "fcm") != 0)
        return chat__error_set(CHAT_EINVAL, 0, "platform: \"apns\" or \"fcm\"");
    if (!token_ok(token, apns))
        return chat__error_set(CHAT_EINVAL, 0, apns ? "an APNs token is 16-200 hex digits"
                                                     : "an FCM token is 1-512 of [A-Za-z0-9_:.-]");
    if (topic && (strlen(topic) > 255 || strspn(topic, "abcdefghijklmnopqrstuvwxyz"
                                                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") !=
                                             strlen(topic)))
        return chat__error_set(CHAT_EINVAL, 0, "topic: at most 255 of [A-Za-z0-9._-]");
    if (sandbox != 0 && sandbox != 1)
        return chat__error_set(CHAT_EINVAL, 0, "sandbox is 0 or 1");
    cJSON *o = cJSON_CreateObject();
    if (o && (!cJSON_AddStringToObject(o, "type", "push_register") ||
              !cJSON_AddStringToObject(o, "platform", platform) ||
              !cJSON_AddStringToObject(o, "token", token) ||
              (topic && topic[0] && !cJSON_AddStringToObject(o, "topic", topic)) ||
              (apns && !cJSON_AddBoolToObject(o, "sandbox", sandbox)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (!o)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    return post_push(out_request, c, o);
}

int chat_client_push_unregister(uint64_t *out_request, chat_client *c)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    return post_push(out_request, c, NULL);
}

int chat_client_mute(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                     int64_t until_ms)
{
    if (!c || conv <= 0 || until_ms < 0)
        return chat__error_set(CHAT_EINVAL, 0, "client or conv missing, or until_ms < 0");
    cJSON *o = frame("mute", conv);
    if (o && until_ms != INT64_MAX && !cJSON_AddNumberToObject(o, "until", (double)until_ms)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame_after(out_request, c, o, PEND_MUTE, conv,
                            (uint64_t)(until_ms == INT64_MAX ? -1 : until_ms));
}

int chat_client_group_set_role(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                               const char *user, int role)
{
    if (!c || !conv_ok(conv) || !user || !chat__id_valid(user, strlen(user)))
        return chat__error_set(CHAT_EINVAL, 0, "client, conv or user is missing");
    const char *r = role == CHAT_ROLE_MEMBER  ? "member"
                    : role == CHAT_ROLE_ADMIN ? "admin"
                    : role == CHAT_ROLE_OWNER ? "owner"
                                              : NULL;
    if (!r)
        return chat__error_set(CHAT_EINVAL, 0, "role: member, admin or owner");
    cJSON *o = frame("group_role", conv);
    if (o && (!cJSON_AddStringToObject(o, "user", user) || !cJSON_AddStringToObject(o, "role", r))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_GROUP, conv);
}

/* ---- changing sent messages, timers, search ---------------------------------------------- */

static cJSON *change_frame(const char *type, chat_conv_id conv, uint64_t seq)
{
    cJSON *o = frame(type, conv);
    if (o && !cJSON_AddNumberToObject(o, "seq", (double)seq)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

int chat_client_edit(uint64_t *out_request, chat_client *c, chat_conv_id conv, uint64_t seq,
                     const char *text, size_t len)
{
    if (!c || !conv_ok(conv) || !seq)
        return chat__error_set(CHAT_EINVAL, 0, "client NULL, conv not 1..2^53-1 or seq 0");
    int rc = check_text(text, len);
    if (rc != CHAT_OK)
        return rc;
    char *t = chat__strndup(text, len);
    cJSON *o = t ? change_frame("edit", conv, seq) : NULL;
    if (o && !cJSON_AddStringToObject(o, "text", t)) {
        cJSON_Delete(o);
        o = NULL;
    }
    chat__free(t);
    return post_frame(out_request, c, o, PEND_CHANGE, conv);
}

int chat_client_delete(uint64_t *out_request, chat_client *c, chat_conv_id conv, uint64_t seq)
{
    if (!c || !conv_ok(conv) || !seq)
        return chat__error_set(CHAT_EINVAL, 0, "client NULL, conv not 1..2^53-1 or seq 0");
    return post_frame(out_request, c, change_frame("delete", conv, seq), PEND_CHANGE, conv);
}

int chat_client_react(uint64_t *out_request, chat_client *c, chat_conv_id conv, uint64_t seq,
                      const char *emoji, int on)
{
    if (!c || !conv_ok(conv) || !seq || !emoji || !*emoji || strlen(emoji) > CHAT_REACTION_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "client, conv, seq or emoji missing");
    cJSON *o = change_frame("react", conv, seq);
    if (o && (!cJSON_AddStringToObject(o, "emoji", emoji) ||
              !cJSON_AddBoolToObject(o, "on", on != 0))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_CHANGE, conv);
}

int chat_client_set_timer(uint64_t *out_request, chat_client *c, chat_conv_id conv, int64_t ttl_ms)
{
    if (!c || !conv_ok(conv) || ttl_ms < 0)
        return chat__error_set(CHAT_EINVAL, 0, "client or conv is 0, or ttl_ms negative");
    cJSON *o = frame("conv_timer", conv);
    if (o && !cJSON_AddNumberToObject(o, "ttl_ms", (double)ttl_ms)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_CHANGE, conv);
}

int chat_client_mark_thread_read(uint64_t *out_request, chat_client *c, chat_conv_id conv,
                                 uint64_t root, uint64_t seq)
{
    if (!c || !conv_ok(conv) || !root || !seq)
        return chat__error_set(CHAT_EINVAL, 0, "client, conv, root or seq is 0");
    cJSON *o = frame("receipt", conv);
    if (o && (!cJSON_AddNumberToObject(o, "thread", (double)root) ||
              !cJSON_AddNumberToObject(o, "read", (double)seq))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_JSON, conv);
}

int chat_client_thread(uint64_t *out_request, chat_client *c, chat_conv_id conv, uint64_t root,
                       uint64_t after_seq, int limit)
{
    if (!c || !conv_ok(conv) || !root || limit < 1 || limit > 200)
        return chat__error_set(CHAT_EINVAL, 0, "client, conv or root is 0, or limit not 1..200");
    cJSON *o = frame("history", conv);
    if (o && (!cJSON_AddNumberToObject(o, "thread", (double)root) ||
              !cJSON_AddNumberToObject(o, "after", (double)after_seq) ||
              !cJSON_AddNumberToObject(o, "limit", limit))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_JSON, conv);
}

static int check_query(const char *query, int limit)
{
    if (!query || !*query || strlen(query) > 256)
        return chat__error_set(CHAT_EINVAL, 0, "query: 1..256 bytes");
    if (limit < 1 || limit > 200)
        return chat__error_set(CHAT_EINVAL, 0, "limit: 1..200");
    return CHAT_OK;
}

int chat_client_search(uint64_t *out_request, chat_client *c, const char *query, chat_conv_id conv,
                       uint64_t before, int limit)
{
    int rc = c ? check_query(query, limit) : chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    if (rc == CHAT_OK && conv && !conv_ok(conv))
        rc = chat__error_set(CHAT_EINVAL, 0, "conv: 0 or 1..2^53-1");
    if (rc != CHAT_OK)
        return rc;
    cJSON *o = frame("search", conv);
    if (o && (!cJSON_AddStringToObject(o, "query", query) ||
              !cJSON_AddNumberToObject(o, "limit", limit) ||
              (before && !cJSON_AddNumberToObject(o, "before", (double)before)))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_JSON, conv);
}

int chat_client_search_local(chat_msg_list **out, chat_client *c, const char *query,
                             chat_conv_id conv, int limit)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    int rc = check_query(query, limit);
    if (rc == CHAT_OK && conv && !conv_ok(conv))
        rc = chat__error_set(CHAT_EINVAL, 0, "conv: 0 or 1..2^53-1");
    return rc == CHAT_OK ? chat__cache_search(c->cache, query, conv, limit, out) : rc;
}

/* ---- cache reads ------------------------------------------------------------------------- */

int chat_client_convs(chat_conv_list **out, chat_client *c)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    char *me = chat__client_me(c);
    int rc = chat__cache_convs(c->cache, me, out);
    chat__free(me);
    return rc;
}

int chat_client_history(chat_msg_list **out, uint64_t *out_request, chat_client *c,
                        chat_conv_id conv, uint64_t before_seq, int limit)
{
    if (!out || !c || !conv_ok(conv))
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument or conv not in 1..2^53-1");
    if (limit < 1 || limit > 200)
        return chat__error_set(CHAT_EINVAL, 0, "limit: 1..200");
    if (out_request)
        *out_request = 0;
    char *me = chat__client_me(c);
    int missing = 0;
    uint64_t top = 0;
    int rc = chat__cache_history(c->cache, me, conv, before_seq, limit, out, &missing, &top);
    chat__free(me);
    if (rc != CHAT_OK || !missing)
        return rc;
    cJSON *o = frame("history", conv);
    if (o && top && !chat__json_add_int(o, "before", (int64_t)(top + 1))) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (o && !cJSON_AddNumberToObject(o, "limit", limit)) {
        cJSON_Delete(o);
        o = NULL;
    }
    uint64_t req = 0;
    if (post_frame(&req, c, o, PEND_HISTORY_USER, conv) == CHAT_OK && out_request)
        *out_request = req;
    return CHAT_OK;
}

int chat_client_outbox(chat_msg_list **out, chat_client *c)
{
    if (!out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    return chat__cache_outbox_list(c->cache, out);
}

int chat_client_message_status(int *out_status, chat_conv_id *out_conv, uint64_t *out_seq,
                               chat_client *c, const char *cmid)
{
    if (!out_status || !c || !cmid)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    char *me = chat__client_me(c);
    chat_conv_id conv = 0;
    uint64_t seq = 0;
    int rc = chat__cache_status(c->cache, me, cmid, out_status, &conv, &seq);
    chat__free(me);
    if (rc == CHAT_OK) {
        if (out_conv)
            *out_conv = conv;
        if (out_seq)
            *out_seq = seq;
    }
    return rc;
}

int chat_client_message_receipts(size_t *out_delivered, size_t *out_read, size_t *out_others,
                                 chat_client *c, chat_conv_id conv, uint64_t seq)
{
    if (!c || !conv_ok(conv) || !seq)
        return chat__error_set(CHAT_EINVAL, 0, "NULL argument");
    size_t d = 0, r = 0, o = 0;
    char *me = chat__client_me(c);
    int rc = chat__cache_receipts(c->cache, me, conv, seq, &d, &r, &o);
    chat__free(me);
    if (out_delivered)
        *out_delivered = d;
    if (out_read)
        *out_read = r;
    if (out_others)
        *out_others = o;
    return rc;
}

/* ---- list getters ------------------------------------------------------------------------ */

/* Element getters: an index out of range (or a NULL list) reads as the field's empty value. */
#define LIST_GETTER(list, type, name, field, empty)                                             \
    type chat_##list##_##name(const chat_##list *l, size_t i)                                  \
    {                                                                                          \
        return l && i < l->n ? l->v[i].field : (empty);                                        \
    }

size_t chat_conv_list_count(const chat_conv_list *l) { return l ? l->n : 0; }
LIST_GETTER(conv_list, chat_conv_id, id, conv, 0)
LIST_GETTER(conv_list, int, kind, kind, 0)
LIST_GETTER(conv_list, const char *, title, title, "")
LIST_GETTER(conv_list, const char *, peer, peer, "")
LIST_GETTER(conv_list, int, role, role, 0)
LIST_GETTER(conv_list, uint64_t, head, head, 0)
LIST_GETTER(conv_list, uint64_t, read, read, 0)
LIST_GETTER(conv_list, uint64_t, unread, unread, 0)
LIST_GETTER(conv_list, size_t, member_count, members, 0)
LIST_GETTER(conv_list, int64_t, muted_until, muted_until, 0)

void chat_conv_list_free(chat_conv_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        chat__free(l->v[i].title);
        chat__free(l->v[i].peer);
    }
    chat__free(l->v);
    chat__free(l);
}

size_t chat_msg_list_count(const chat_msg_list *l) { return l ? l->n : 0; }
int chat_msg_list_complete(const chat_msg_list *l) { return l ? l->complete : 0; }
LIST_GETTER(msg_list, chat_conv_id, conv, conv, 0)
LIST_GETTER(msg_list, uint64_t, seq, seq, 0)
LIST_GETTER(msg_list, int64_t, ts_ms, ts, 0)
LIST_GETTER(msg_list, const char *, from, from, "")
LIST_GETTER(msg_list, const char *, cmid, cmid, "")
LIST_GETTER(msg_list, int, kind, kind, 0)
LIST_GETTER(msg_list, const char *, json, json, "")
LIST_GETTER(msg_list, int, status, status, 0)
LIST_GETTER(msg_list, size_t, delivered_count, delivered, 0)
LIST_GETTER(msg_list, size_t, read_count, read, 0)
LIST_GETTER(msg_list, size_t, others, others, 0)
LIST_GETTER(msg_list, int64_t, edited_ms, edited, 0)
LIST_GETTER(msg_list, int64_t, expires_ms, expires, 0)
LIST_GETTER(msg_list, uint64_t, reply_to, reply, 0)
LIST_GETTER(msg_list, uint64_t, thread, thread, 0)
int chat_msg_list_deleted(const chat_msg_list *l, size_t i)
{
    return l && i < l->n && l->v[i].flags == 1;
}
const char *chat_msg_list_reactions(const chat_msg_list *l, size_t i)
{
    return l && i < l->n && l->v[i].reactions ? l->v[i].reactions : "";
}
size_t chat_msg_list_reaction_count(const chat_msg_list *l, size_t i, const char *emoji)
{
    if (!l || i >= l->n || !l->v[i].reactions || !emoji)
        return 0;
    cJSON *a = cJSON_Parse(l->v[i].reactions), *g;
    size_t n = 0;
    cJSON_ArrayForEach(g, a)
    {
        const char *e = chat__json_str(g, "emoji", NULL);
        if (e && strcmp(e, emoji) == 0)
            n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "users"));
    }
    cJSON_Delete(a);
    return n;
}
const char *chat_msg_list_text(const chat_msg_list *l, size_t i, size_t *len)
{
    const chat__msg_item *it = l && i < l->n ? &l->v[i] : NULL;
    if (len)
        *len = it && it->kind == CHAT_MSG_TEXT ? it->text_len : 0;
    return it && it->kind == CHAT_MSG_TEXT ? it->text : "";
}
void chat_msg_list_free(chat_msg_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        chat__free(l->v[i].from);
        chat__free(l->v[i].cmid);
        chat__free(l->v[i].text);
        chat__free(l->v[i].json);
        chat__free(l->v[i].reactions);
    }
    chat__free(l->v);
    chat__free(l);
}

/* ---- media ------------------------------------------------------------------------------- */

/* The media object of a media message, checked as the server will and normalized. */
static int media_object(const char *media_json, char **out_json, char **out_name)
{
    int oom = 0;
    cJSON *m = media_json ? chat__json_parse(media_json, strlen(media_json), &oom) : NULL;
    if (oom)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    if (!cJSON_IsObject(m)) {
        cJSON_Delete(m);
        return chat__error_set(CHAT_EINVAL, 0, "media: a JSON object is required");
    }
    static const struct {
        const char *key;
        size_t max;
    } strs[] = {{"id", 128}, {"mime", 255}, {"name", 255}};
    for (size_t i = 0; i < 3; i++) {
        size_t n = 0;
        const char *s = chat__json_str(m, strs[i].key, &n);
        if (!s || n == 0 || n > strs[i].max) {
            cJSON_Delete(m);
            return chat__error_set(CHAT_EINVAL, 0, "media.%s: a string of 1..%zu bytes",
                                   strs[i].key, strs[i].max);
        }
    }
    uint64_t size;
    if (chat__json_u64(m, "size", &size) != CHAT_OK) {
        cJSON_Delete(m);
        return chat__error_set(CHAT_EINVAL, 0, "media.size: a non-negative integer");
    }
    *out_name = chat__strdup(chat__json_str(m, "name", NULL));
    char *js = cJSON_PrintUnformatted(m);
    *out_json = js ? chat__strdup(js) : NULL;
    cJSON_free(js);
    cJSON_Delete(m);
    if (!*out_name || !*out_json) {
        chat__free(*out_name);
        chat__free(*out_json);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    return CHAT_OK;
}

static int send_media_common(char **out_cmid, chat_client *c, chat_conv_id conv, const char *to,
                             const char *media_json)
{
    if (!c)
        return chat__error_set(CHAT_EINVAL, 0, "client is NULL");
    char *js = NULL, *name = NULL;
    int rc = media_object(media_json, &js, &name);
    if (rc != CHAT_OK)
        return rc;
    char cmid[CHAT__CMID_SIZE];
    rc = chat__cache_outbox_add_media(c->cache, conv, to, name, js, cmid);
    chat__free(js);
    chat__free(name);
    return rc == CHAT_OK ? queued(c, cmid, out_cmid) : rc;
}

int chat_client_send_media(char **out_cmid, chat_client *c, chat_conv_id conv,
                           const char *media_json)
{
    if (!conv_ok(conv))
        return chat__error_set(CHAT_EINVAL, 0, "conv: 1..2^53-1");
    return send_media_common(out_cmid, c, conv, NULL, media_json);
}

int chat_client_send_media_to(char **out_cmid, chat_client *c, const char *user,
                              const char *media_json)
{
    if (!user || !chat__id_valid(user, strlen(user)))
        return chat__error_set(CHAT_EINVAL, 0, "user: 1..64 of [A-Za-z0-9_.@-]");
    return send_media_common(out_cmid, c, 0, user, media_json);
}

int chat_client_media_url(uint64_t *out_request, chat_client *c, const char *media_id)
{
    if (!c || !media_id || !*media_id || strlen(media_id) > 128)
        return chat__error_set(CHAT_EINVAL, 0, "client or media id missing");
    cJSON *o = frame("media_url", 0);
    if (o && !cJSON_AddStringToObject(o, "media", media_id)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return post_frame(out_request, c, o, PEND_MEDIA_URL, 0);
}
