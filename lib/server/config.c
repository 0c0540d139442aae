/* Server configuration: defaults, typed setters, and backend registration checks. */
#include "server/internal.h"

#include "bus/check.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Defaults and ranges of every limit, indexed by chat_limit. */
static const struct {
    const char *name;
    int64_t def, min, max;
} limit_table[CHAT__LIMIT_MAX] = {
    [CHAT_LIMIT_FRAME_BYTES] = {"frame_bytes", 64 * 1024, 256, 16 * 1024 * 1024},
    [CHAT_LIMIT_FRAGMENTS] = {"fragments", 64, 1, 4096},
    [CHAT_LIMIT_JSON_DEPTH] = {"json_depth", 16, 4, 128},
    [CHAT_LIMIT_BODY_BYTES] = {"body_bytes", 16 * 1024, 1, 8 * 1024 * 1024},
    [CHAT_LIMIT_GROUP_MEMBERS] = {"group_members", 1024, 2, 1000000},
    [CHAT_LIMIT_OUT_QUEUE_BYTES] = {"out_queue_bytes", 1024 * 1024, 4096, 1024LL * 1024 * 1024},
    [CHAT_LIMIT_AUTH_DEADLINE_MS] = {"auth_deadline_ms", 5000, 50, 600000},
    [CHAT_LIMIT_IDLE_PING_MS] = {"idle_ping_ms", 20000, 1000, 3600000},
    [CHAT_LIMIT_IDLE_HANGUP_MS] = {"idle_hangup_ms", 45000, 2000, 7200000},
    [CHAT_LIMIT_SEND_RATE] = {"send_rate", 20, 1, 1000000},
    [CHAT_LIMIT_SEND_BURST] = {"send_burst", 40, 1, 1000000},
    [CHAT_LIMIT_TYPING_TTL_MS] = {"typing_ttl_ms", 5000, 100, 600000},
    [CHAT_LIMIT_PAGE_MAX] = {"page_max", 200, 1, 10000},
    [CHAT_LIMIT_CONNECTIONS] = {"connections", 10000, 1, 10000000},
    [CHAT_LIMIT_OUT_QUEUE_FRAMES] = {"out_queue_frames", 1024, 8, 1000000},
    [CHAT_LIMIT_TYPING_RATE] = {"typing_rate", 2, 1, 1000},
    [CHAT_LIMIT_MEDIA_BYTES] = {"media_bytes", 100LL * 1024 * 1024, 1, 1LL << 40},
    [CHAT_LIMIT_MEDIA_URL_TTL_MS] = {"media_url_ttl_ms", 3600000, 1000, 30LL * 86400000},
    [CHAT_LIMIT_UPLOAD_TTL_MS] = {"upload_ttl_ms", 86400000, 1000, 30LL * 86400000},
    [CHAT_LIMIT_UPLOADS] = {"uploads", 1000, 1, 1000000},
    [CHAT_LIMIT_WRITER_QUEUE] = {"writer_queue", 16384, 1, 16 * 1024 * 1024},
    [CHAT_LIMIT_UPLOADS_PER_USER] = {"uploads_per_user", 16, 1, 1000000},
    [CHAT_LIMIT_LOGINS_PENDING] = {"logins_pending", 16, 1, 100000},
    [CHAT_LIMIT_LOGIN_RATE] = {"login_rate", 10, 1, 1000000},
    /* 0: twice the per-connection value (so raising that one raises this one too) */
    [CHAT_LIMIT_USER_SEND_RATE] = {"user_send_rate", 0, 0, 1000000},
    [CHAT_LIMIT_USER_SEND_BURST] = {"user_send_burst", 0, 0, 1000000},
    [CHAT_LIMIT_PRESENCE_RATE] = {"presence_rate", 5, 1, 1000000},
    [CHAT_LIMIT_SETTINGS_RATE] = {"settings_rate", 10, 1, 1000000},
    [CHAT_LIMIT_PRESENCE_GRACE_MS] = {"presence_grace_ms", 2000, 0, 600000},
    [CHAT_LIMIT_PRESENCE_USER_RATE] = {"presence_user_rate", 12, 1, 1000000},
    [CHAT_LIMIT_COMMIT_WINDOW_US] = {"commit_window_us", 250, 0, 100000},
    [CHAT_LIMIT_HEAD_HINT_MS] = {"head_hint_ms", 2000, 0, 600000},
    [CHAT_LIMIT_EDIT_WINDOW_MS] = {"edit_window_ms", 900000, 0, 3650LL * 86400000},
    [CHAT_LIMIT_DELETE_WINDOW_MS] = {"delete_window_ms", 172800000, 0, 3650LL * 86400000},
    [CHAT_LIMIT_RETENTION_MS] = {"retention_ms", 0, 0, 3650LL * 86400000},
    [CHAT_LIMIT_EXPIRY_SWEEP_MS] = {"expiry_sweep_ms", 1000, 10, 3600000},
    [CHAT_LIMIT_EXPIRY_BATCH] = {"expiry_batch", 64, 1, 100000},
    [CHAT_LIMIT_SEARCH_RATE] = {"search_rate", 5, 1, 1000000},
};

/* What users may react with unless the host says otherwise (WhatsApp's six). */
static const char *const default_reactions[] = {"\xf0\x9f\x91\x8d",         /* thumbs up */
                                                "\xe2\x9d\xa4\xef\xb8\x8f", /* red heart */
                                                "\xf0\x9f\x98\x82",         /* tears of joy */
                                                "\xf0\x9f\x98\xae",         /* open mouth */
                                                "\xf0\x9f\x98\xa2",         /* crying */
                                                "\xf0\x9f\x99\x8f"};        /* folded hands */

int chat_server_limit_by_name(const char *name)
{
    for (int i = 1; name && i < CHAT__LIMIT_MAX; i++)
        if (limit_table[i].name && strcmp(limit_table[i].name, name) == 0)
            return i;
    return chat__error_set(CHAT_EINVAL, 0, "unknown limit '%s'", name ? name : "(null)");
}

int chat_server_config_new(chat_server_config **out)
{
    if (!out)
        return CHAT_EINVAL;
    chat_server_config *cfg = chat__calloc(1, sizeof *cfg);
    if (!cfg)
        return CHAT_ENOMEM;
    cfg->address = chat__strdup("127.0.0.1");
    if (!cfg->address) {
        chat__free(cfg);
        return CHAT_ENOMEM;
    }
    cfg->port = 7700;
    cfg->log_level = CHAT_LOG_WARN;
    cfg->clock = chat_clock_real_ms;
    for (int i = 1; i < CHAT__LIMIT_MAX; i++)
        cfg->limits[i] = limit_table[i].def;
    int rc = chat_server_config_set_reactions(cfg, default_reactions,
                                              sizeof default_reactions / sizeof *default_reactions);
    if (rc != CHAT_OK) {
        chat_server_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return CHAT_OK;
}

void chat_server_config_free(chat_server_config *cfg)
{
    if (!cfg)
        return;
    if (cfg->store_ops)
        cfg->store_ops->destroy(cfg->store_state);
    if (cfg->bus_ops)
        cfg->bus_ops->destroy(cfg->bus_state);
    if (cfg->push_ops)
        cfg->push_ops->destroy(cfg->push_state);
    if (cfg->blob_ops)
        cfg->blob_ops->destroy(cfg->blob_state);
    if (cfg->auth_ops)
        cfg->auth_ops->destroy(cfg->auth_state);
    chat__keyring_wipe(&cfg->keys);
    chat__free(cfg->address);
    chat__free(cfg->data_dir);
    chat__free(cfg->media_base_url);
    chat__free(cfg);
}

static int set_str(char **dst, const char *src)
{
    char *copy = chat__strdup(src);
    if (!copy)
        return CHAT_ENOMEM;
    chat__free(*dst);
    *dst = copy;
    return CHAT_OK;
}

int chat_server_config_set_listen(chat_server_config *cfg, const char *address, int port)
{
    if (!cfg || !address || !*address || port < 0 || port > 65535)
        return chat__error_set(CHAT_EINVAL, 0, "listen needs an address and a port 0-65535");
    cfg->port = port;
    return set_str(&cfg->address, address);
}

int chat_server_config_set_data_dir(chat_server_config *cfg, const char *dir)
{
    if (!cfg || !dir || !*dir)
        return CHAT_EINVAL;
    return set_str(&cfg->data_dir, dir);
}

int chat_server_config_set_store_flags(chat_server_config *cfg, unsigned int flags)
{
    if (!cfg || (flags & ~(CHAT_STORE_SQLITE_SYNC_FULL | CHAT_STORE_SQLITE_INLINE_CHECKPOINT)))
        return CHAT_EINVAL;
    cfg->store_flags = flags;
    return CHAT_OK;
}

int chat_server_config_set_limit(chat_server_config *cfg, int limit, int64_t value)
{
    if (!cfg || limit <= 0 || limit >= CHAT__LIMIT_MAX || !limit_table[limit].name)
        return chat__error_set(CHAT_EINVAL, 0, "unknown limit %d", limit);
    if (value < limit_table[limit].min || value > limit_table[limit].max)
        return chat__error_set(CHAT_EINVAL, 0, "limit %s must be within %lld..%lld",
                               limit_table[limit].name,
                               (long long)limit_table[limit].min,
                               (long long)limit_table[limit].max);
    cfg->limits[limit] = value;
    return CHAT_OK;
}

int chat_server_config_set_reactions(chat_server_config *cfg, const char *const *emoji,
                                     size_t n)
{
    if (!cfg || !emoji || n == 0 || n > CHAT_REACTIONS_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "reactions: 1-%d emoji", CHAT_REACTIONS_MAX);
    for (size_t i = 0; i < n; i++) {
        size_t len = emoji[i] ? strlen(emoji[i]) : 0;
        if (len == 0 || len > CHAT_REACTION_MAX || !chat__utf8_valid((const unsigned char *)emoji[i], len))
            return chat__error_set(CHAT_EINVAL, 0, "reactions: emoji %zu is not 1-%d bytes of "
                                                   "UTF-8", i, CHAT_REACTION_MAX);
        for (size_t k = 0; k < len; k++)
            if ((unsigned char)emoji[i][k] <= ' ' || emoji[i][k] == 0x7f)
                return chat__error_set(CHAT_EINVAL, 0, "reactions: emoji %zu holds a space or "
                                                       "a control character", i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(emoji[i], emoji[j]) == 0)
                return chat__error_set(CHAT_EINVAL, 0, "reactions: emoji %zu repeats one", i);
    }
    for (size_t i = 0; i < n; i++)
        snprintf(cfg->reactions[i], sizeof cfg->reactions[i], "%s", emoji[i]);
    cfg->n_reactions = (int)n;
    return CHAT_OK;
}

int chat_server_config_set_flags(chat_server_config *cfg, unsigned int flags)
{
    if (!cfg || (flags & ~(CHAT_SERVER_PUSH_PREVIEWS | CHAT_SERVER_REUSE_PORT |
                           CHAT_SERVER_KEEP_EDITS | CHAT_SERVER_AFFINITY)))
        return CHAT_EINVAL;
    cfg->flags = flags;
    return CHAT_OK;
}

int chat_server_config_set_log_kv(chat_server_config *cfg, chat_log_kv_cb cb, int max_level,
                                  void *user_data)
{
    int rc = chat_server_config_set_log(cfg, NULL, max_level, user_data);
    if (rc == CHAT_OK)
        cfg->log_kv = cb;
    return rc;
}

int chat_server_config_set_log(chat_server_config *cfg, chat_log_cb cb, int max_level,
                               void *user_data)
{
    if (!cfg)
        return CHAT_EINVAL;
    cfg->log_cb = cb;
    cfg->log_kv = NULL; /* the last sink set is the one */
    cfg->log_level = max_level;
    cfg->log_ud = user_data;
    return CHAT_OK;
}

int chat_server_config_set_clock(chat_server_config *cfg, chat_clock_fn fn, void *user_data)
{
    if (!cfg || !fn)
        return CHAT_EINVAL;
    cfg->clock = fn;
    cfg->clock_ud = user_data;
    return CHAT_OK;
}

int chat_server_config_set_tls(chat_server_config *cfg, const char *cert_file,
                               const char *key_file)
{
    if (!cfg)
        return chat__error_set(CHAT_EINVAL, 0, "cfg is NULL");
    if (!cert_file && !key_file) {
        cfg->tls_cert[0] = cfg->tls_key[0] = '\0';
        return CHAT_OK;
    }
    if (!cert_file || !key_file || !*cert_file || !*key_file)
        return chat__error_set(CHAT_EINVAL, 0, "TLS needs both a certificate and a key file");
    if (strlen(cert_file) >= sizeof cfg->tls_cert || strlen(key_file) >= sizeof cfg->tls_key)
        return chat__error_set(CHAT_EINVAL, 0, "TLS file paths must be under %d bytes",
                               CHAT__PATH_MAX);
    const char *files[2] = {cert_file, key_file};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        if (!f)
            return chat__error_set(CHAT_EIO, errno, "cannot read %s: %s", files[i],
                                   strerror(errno));
        fclose(f);
    }
    snprintf(cfg->tls_cert, sizeof cfg->tls_cert, "%s", cert_file);
    snprintf(cfg->tls_key, sizeof cfg->tls_key, "%s", key_file);
    return CHAT_OK;
}

int chat_server_config_add_allowed_origin(chat_server_config *cfg, const char *origin)
{
    if (!cfg || !origin || !*origin || strlen(origin) >= CHAT__ORIGIN_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "an origin is 1-%d bytes", CHAT__ORIGIN_MAX - 1);
    for (const char *p = origin; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return chat__error_set(CHAT_EINVAL, 0, "an origin is printable ASCII without spaces");
    for (int i = 0; i < cfg->n_origins; i++)
        if (strcmp(cfg->origins[i], origin) == 0)
            return CHAT_OK;
    if (cfg->n_origins == CHAT__ORIGINS_MAX)
        return chat__error_set(CHAT_ELIMIT, 0, "at most %d allowed origins", CHAT__ORIGINS_MAX);
    snprintf(cfg->origins[cfg->n_origins++], CHAT__ORIGIN_MAX, "%s", origin);
    return CHAT_OK;
}

int chat_server_config_add_token_key(chat_server_config *cfg, unsigned int key_id,
                                     const unsigned char *key, size_t key_len)
{
    if (!cfg || !key)
        return CHAT_EINVAL;
    if (chat__sodium_init() != CHAT_OK)
        return CHAT_ERROR;
    return chat__keyring_add(&cfg->keys, key_id, key, key_len);
}

int chat_server_config_load_key_file(chat_server_config *cfg, const char *path, int create)
{
    if (!cfg || !path)
        return CHAT_EINVAL;
    if (chat__sodium_init() != CHAT_OK)
        return CHAT_ERROR;
    return chat__keyring_load_file(&cfg->keys, path, create);
}

/* Registration per STYLE.md: version in range, required methods present; state is owned
 * from here on and destroyed at once on failure. */
#define REQUIRE(ops, field)                                                                   \
    do {                                                                                      \
        if (!(ops)->field) {                                                                  \
            rc = chat__error_set(CHAT_EINVAL, 0, "%s: method %s is required", what, #field); \
            goto fail;                                                                        \
        }                                                                                     \
    } while (0)

static int check_version(unsigned int version, unsigned int current, const char *what)
{
    if (version < 1 || version > current)
        return chat__error_set(CHAT_EVERSION, 0, "%s: ops version %u not in 1..%u", what,
                               version, current);
    return CHAT_OK;
}

int chat_server_config_set_store(chat_server_config *cfg, const chat_store_ops *ops, void *state)
{
    const char *what = "store";
    int rc = CHAT_OK;
    if (!cfg || !ops || !ops->destroy) {
        rc = chat__error_set(CHAT_EINVAL, 0, "store: ops and destroy are required");
        goto fail;
    }
    rc = check_version(ops->version, CHAT_STORE_OPS_VERSION, what);
    if (rc != CHAT_OK)
        goto fail;
    REQUIRE(ops, begin);
    REQUIRE(ops, commit);
    REQUIRE(ops, rollback);
    REQUIRE(ops, conv_insert);
    REQUIRE(ops, conv_get);
    REQUIRE(ops, conv_find_direct);
    REQUIRE(ops, conv_update);
    REQUIRE(ops, member_get);
    REQUIRE(ops, member_put);
    REQUIRE(ops, member_list);
    REQUIRE(ops, msg_insert);
    REQUIRE(ops, msg_find_cmid);
    REQUIRE(ops, msg_range);
    REQUIRE(ops, user_convs);
    REQUIRE(ops, contacts);
    REQUIRE(ops, user_get);
    REQUIRE(ops, user_put);
    REQUIRE(ops, revoked_put);
    REQUIRE(ops, revoked_list);
    REQUIRE(ops, meta_get);
    REQUIRE(ops, meta_set);
    if (cfg->store_ops)
        cfg->store_ops->destroy(cfg->store_state);
    cfg->store_ops = ops;
    cfg->store_state = state;
    return CHAT_OK;
fail:
    if (ops && ops->destroy)
        ops->destroy(state);
    return rc;
}

int chat_server_config_set_bus(chat_server_config *cfg, const chat_bus_ops *ops, void *state)
{
    const char *what = "bus";
    int rc = CHAT_OK;
    if (!cfg || !ops || !ops->destroy) {
        rc = chat__error_set(CHAT_EINVAL, 0, "bus: ops and destroy are required");
        goto fail;
    }
    rc = check_version(ops->version, CHAT_BUS_OPS_VERSION, what);
    if (rc != CHAT_OK)
        goto fail;
    REQUIRE(ops, attach);
    if (!chat__bus_has_publish2(ops))
        REQUIRE(ops, publish); /* a version-2 bus may set publish2 alone */
    REQUIRE(ops, device_up);
    REQUIRE(ops, device_down);
    REQUIRE(ops, online);
    if (ops->version >= 4 && !ops->request != !ops->respond) {
        rc = chat__error_set(CHAT_EINVAL, 0, "bus: request and respond go together");
        goto fail;
    }
    if (cfg->bus_ops)
        cfg->bus_ops->destroy(cfg->bus_state);
    cfg->bus_ops = ops;
    cfg->bus_state = state;
    return CHAT_OK;
fail:
    if (ops && ops->destroy)
        ops->destroy(state);
    return rc;
}

int chat_server_config_set_push(chat_server_config *cfg, const chat_push_ops *ops, void *state)
{
    const char *what = "push";
    int rc = CHAT_OK;
    if (!cfg || !ops || !ops->destroy) {
        rc = chat__error_set(CHAT_EINVAL, 0, "push: ops and destroy are required");
        goto fail;
    }
    rc = check_version(ops->version, CHAT_PUSH_OPS_VERSION, what);
    if (rc != CHAT_OK)
        goto fail;
    REQUIRE(ops, notify);
    if (cfg->push_ops)
        cfg->push_ops->destroy(cfg->push_state);
    cfg->push_ops = ops;
    cfg->push_state = state;
    return CHAT_OK;
fail:
    if (ops && ops->destroy)
        ops->destroy(state);
    return rc;
}

int chat_server_config_set_blob(chat_server_config *cfg, const chat_blob_ops *ops, void *state)
{
    const char *what = "blob";
    int rc = CHAT_OK;
    if (!cfg || !ops || !ops->destroy) {
        rc = chat__error_set(CHAT_EINVAL, 0, "blob: ops and destroy are required");
        goto fail;
    }
    rc = check_version(ops->version, CHAT_BLOB_OPS_VERSION, what);
    if (rc != CHAT_OK)
        goto fail;
    REQUIRE(ops, stage_open);
    REQUIRE(ops, stage_write);
    REQUIRE(ops, stage_close);
    REQUIRE(ops, stage_commit);
    REQUIRE(ops, stage_remove);
    REQUIRE(ops, open);
    REQUIRE(ops, read);
    REQUIRE(ops, close);
    if (cfg->blob_ops)
        cfg->blob_ops->destroy(cfg->blob_state);
    cfg->blob_ops = ops;
    cfg->blob_state = state;
    return CHAT_OK;
fail:
    if (ops && ops->destroy)
        ops->destroy(state);
    return rc;
}

int chat_server_config_set_auth(chat_server_config *cfg, const chat_auth_ops *ops, void *state)
{
    const char *what = "auth";
    int rc = CHAT_OK;
    if (!cfg || !ops || !ops->destroy) {
        rc = chat__error_set(CHAT_EINVAL, 0, "auth: ops and destroy are required");
        goto fail;
    }
    rc = check_version(ops->version, CHAT_AUTH_OPS_VERSION, what);
    if (rc != CHAT_OK)
        goto fail;
    REQUIRE(ops, verify);
    if (cfg->auth_ops)
        cfg->auth_ops->destroy(cfg->auth_state);
    cfg->auth_ops = ops;
    cfg->auth_state = state;
    return CHAT_OK;
fail:
    if (ops && ops->destroy)
        ops->destroy(state);
    return rc;
}

int chat_server_config_set_media_base_url(chat_server_config *cfg, const char *url)
{
    if (!cfg || !url)
        return chat__error_set(CHAT_EINVAL, 0, "media base URL: NULL argument");
    size_t n = strlen(url);
    while (n && url[n - 1] == '/')
        n--;
    int scheme = strncmp(url, "http://", 7) == 0 ? 7 : strncmp(url, "https://", 8) == 0 ? 8 : 0;
    if (!scheme || n <= (size_t)scheme || n > 512)
        return chat__error_set(CHAT_EINVAL, 0, "media base URL must be http(s)://HOST[/PATH]");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= ' ' || url[i] == '?' || url[i] == '#' || url[i] == 0x7f)
            return chat__error_set(CHAT_EINVAL, 0, "media base URL: bad character");
    char *copy = chat__strndup(url, n);
    if (!copy)
        return CHAT_ENOMEM;
    chat__free(cfg->media_base_url);
    cfg->media_base_url = copy;
    return CHAT_OK;
}
