/* chatd: the example chat server daemon, on libchat's embedded defaults (SQLite in a data
 * directory, the in-process bus, optional push through APNs, FCM or a webhook), or on a
 * PostgreSQL database several chatd processes may share (--postgres), as one node of several
 * that exchange live frames and presence over a NATS server (--nats URL --node-id NAME).
 *
 *   chatd run   [--data-dir DIR] [--listen ADDR] [--port N] [options]   serve; SIGTERM drains
 *   chatd token --data-dir DIR USER DEVICE [--ttl SECONDS]               print a token
 *   chatd user add --data-dir DIR NAME                                   password from stdin
 *   chatd user delete --data-dir DIR NAME                                delete an account
 *   chatd vacuum --data-dir DIR                                         rewrite chat.db
 *   chatd admin --data-dir DIR COMMAND ...                               operate a running chatd
 */
#include "chatd.h"

#include <chat/sys/blob.h>
#include <chat/sys/bus.h>
#include <chat/sys/push.h>
#include <chat/sys/store.h>
#ifdef CHATD_TESTING_API
#include <chat/testing.h>
#endif

#include <errno.h>
#include <pthread.h>
#include <limits.h>
#include <stddef.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Every option here is in doc/man/chatd.1 too (tests/cli checks both ways). */
static const char usage[] =
    "usage: chatd run [options]             serve until SIGTERM (drains) or SIGINT\n"
    "       chatd token [options] USER DEVICE [--ttl SECONDS]\n"
    "       chatd user add [options] NAME   (reads the password from stdin)\n"
    "       chatd user delete [options] NAME (its messages erased; the server stopped)\n"
    "       chatd vacuum [options]          rewrite chat.db so erased bytes leave the file\n"
    "                                       (the server stopped)\n"
    "       chatd admin [options] COMMAND   (as the data directory's owner)\n"
    "admin commands (through the admin listener of the chatd running on --data-dir, or\n"
    "--admin ADDR:PORT; conv and user also read a stopped server's store):\n"
    "  stats                     the metrics\n"
    "  user USER                 the user's devices, connections and revoked devices\n"
    "  conv ID                   a conversation's head and members\n"
    "  disconnect CONN           close one connection (ids from 'user' or the log)\n"
    "  revoke-device USER DEVICE refuse the device's tokens issued so far, close it\n"
    "options:\n"
    "  --data-dir DIR      where chat.db and token.key live (default ./chat-data)\n"
    "  --key-file FILE     token keys, lines '<id> <64 hex>' (default DIR/token.key,\n"
    "                      created with one random key when missing)\n"
    "  --memory            keep messages in memory only (nothing survives a restart)\n"
    "  --postgres CONNINFO keep everything in PostgreSQL instead of DIR/chat.db: a libpq\n"
    "                      conninfo or URI ('host=db dbname=chat user=chat',\n"
    "                      'postgresql://chat@db/chat'); chatd processes given the same\n"
    "                      database share it. Token keys and media stay in DIR\n"
    "  --media-dir DIR     media bytes here (default DIR/media); nodes of a cluster\n"
    "                      (--node-id) may share one on a shared filesystem, each\n"
    "                      staging its uploads in progress apart\n"
    "  --listen ADDR       address to listen on (default 127.0.0.1)\n"
    "  --port N            port (default 7700; 0 picks a free one)\n"
    "  --sync normal|full  SQLite durability: process crash (normal) or power loss (full);\n"
    "                      with --postgres, PostgreSQL's settings decide\n"
    "  --checkpoint thread|inline  WAL checkpoints from a store thread (default) or inside\n"
    "                      the writer's commits (SQLite's auto-checkpoint)\n"
    "  --bus local|queued  delivery bus (queued serializes everything, for testing; only\n"
    "                      in a chatd built with libchat's test-support API)\n"
    "  --nats URL          be one node of several: frames and presence go between nodes\n"
    "                      over the NATS server(s) at URL (nats://host:port, comma-separated;\n"
    "                      doc/backends.md, the NATS bus); needs --node-id\n"
    "  --node-id NAME      this node's name among them, 1-64 of [A-Za-z0-9_-], unique\n"
    "  --nats-prefix P     subjects start with P (default chat): clusters on one NATS apart\n"
    "  --nats-heartbeat-ms N  heartbeat every N ms (default 1000); --nats-lease-ms N: a node\n"
    "                      silent for N ms (default 5000) is dropped with its users\n"
    "  --affinity          with --nats (and --postgres): a send goes to the node chosen for\n"
    "                      its conversation, which writes it (its lock stays on one node);\n"
    "                      written here when that node does not answer (doc/cluster.md)\n"
    "  --keep-edits        keep the text an edit replaces, in the store (never sent)\n"
    "  --reactions LIST    the emoji users may react with, comma-separated (default\n"
    "                      thumbs up, red heart, tears of joy, open mouth, crying, folded\n"
    "                      hands)\n"
    "  --reuse-port        share the port with other chatd processes (SO_REUSEPORT): one\n"
    "                      node per core on one port\n"
    "  --media-base-url URL  signed media URLs start with URL (a CDN or proxy in front;\n"
    "                      default: a path on this server)\n"
    "  --tls-cert FILE     serve wss:// and https:// with this PEM certificate (chain)\n"
    "  --tls-key FILE      and this PEM private key (both required for TLS)\n"
    "  --allow-origin O    accept WebSocket upgrades from browser Origin O only (repeat for\n"
    "                      more; upgrades without an Origin header are still accepted)\n"
    "  --admin-listen [ADDR:]PORT  serve /metrics, /healthz, /readyz and the admin\n"
    "                      commands there (ADDR defaults to 127.0.0.1; off by default)\n"
    "  --admin ADDR:PORT   chatd admin: the listener to ask (default: DIR/admin.addr)\n"
    "  --drain-secs N      on SIGTERM, close clients (1001) once their requests are\n"
    "                      answered, within N seconds (default 10)\n"
    "  --log-level L       error, warn (default), info or debug\n"
    "  --log-format F      text (default) or json (one JSON object a line)\n"
    "  --log-file PATH     log there instead of stderr; SIGHUP reopens it\n"
    "  --limit NAME=VALUE  frame_bytes, fragments, json_depth, body_bytes, group_members,\n"
    "                      out_queue_bytes, auth_deadline_ms, idle_ping_ms, idle_hangup_ms,\n"
    "                      send_rate, send_burst, typing_ttl_ms, page_max, connections,\n"
    "                      out_queue_frames, typing_rate, writer_queue, media_bytes,\n"
    "                      media_url_ttl_ms, upload_ttl_ms, uploads, uploads_per_user\n"
    "                      (media: doc/media.md), logins_pending, login_rate,\n"
    "                      user_send_rate, user_send_burst, presence_rate, settings_rate,\n"
    "                      presence_grace_ms, presence_user_rate, commit_window_us,\n"
    "                      head_hint_ms, edit_window_ms, delete_window_ms, retention_ms,\n"
    "                      expiry_sweep_ms, expiry_batch, search_rate\n"
    "  --config FILE       read 'name = value' lines with the option names above\n"
    "  --verbose           log more (--log-level info)\n"
    "push (doc/push.md; queued in DIR/push-*.db unless --memory):\n"
    "  --apns-key-file F   APNs token auth: the team's .p8 key (with the three below)\n"
    "  --apns-key-id ID    its 10-character key id\n"
    "  --apns-team-id ID   the team id\n"
    "  --apns-topic T      the app's bundle id, for devices that registered none\n"
    "  --apns-endpoint URL APNs (default https://api.push.apple.com; also the sandbox's\n"
    "                      unless --apns-sandbox-endpoint, default\n"
    "                      https://api.sandbox.push.apple.com)\n"
    "  --apns-sandbox-endpoint URL\n"
    "  --fcm-service-account F  FCM HTTP v1: the service account key (JSON)\n"
    "  --fcm-endpoint URL  FCM (default https://fcm.googleapis.com)\n"
    "  --fcm-token-uri URL the OAuth token URI (default: the key file's)\n"
    "  --webhook URL       POST push events for offline users (https://, or http:// to a\n"
    "                      gateway on this host)\n"
    "  --webhook-secret-file F  sign webhook requests with the secret in F (>= 16 bytes;\n"
    "                      a trailing newline is ignored): X-Libchat-Signature\n"
    "  --push-ca-file F    trust the CAs in F (PEM) for the push providers, not the system's\n"
    "  --push-limit NAME=VALUE  queue, coalesce_ms, dedupe_ms, ttl_ms, backoff_ms,\n"
    "                      backoff_max_ms, timeout_ms, flush_ms, batch\n"
    "  --push-previews     put message text in pushes (off: sender and counts only)\n"
    "  -h, --help          this text;  --version  the libchat version\n"
    "The manual: man chatd.\n";

#define MAX_LIMITS CHATD_MAX_LIMITS
#define MAX_PUSH_LIMITS CHATD_MAX_PUSH_LIMITS

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...);

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chatd: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return 2;
}

static int parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return 0;
    *out = v;
    return 1;
}

static int add_limit(struct options *o, const char *spec)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return fail("--limit wants NAME=VALUE, got '%s'", spec);
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
    int id = chat_server_limit_by_name(name);
    if (id > 0) {
        long long v;
        if (!parse_int(eq + 1, 0, LLONG_MAX, &v))
            return fail("limit value must be a non-negative integer: '%s'", spec);
        if (o->n_limits == MAX_LIMITS)
            return fail("too many limits");
        o->limit_ids[o->n_limits] = id;
        o->limit_values[o->n_limits++] = v;
        return 0;
    }
    return fail("unknown limit in '%s' (see chatd --help)", spec);
}

static int add_push_limit(struct options *o, const char *spec)
{
    const char *eq = strchr(spec, '=');
    char name[64];
    long long v;
    if (!eq)
        return fail("--push-limit wants NAME=VALUE, got '%s'", spec);
    snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
    int id = chat_push_limit_by_name(name);
    if (id <= 0)
        return fail("unknown push limit in '%s' (see chatd --help)", spec);
    if (!parse_int(eq + 1, 0, LLONG_MAX, &v))
        return fail("push limit value must be a non-negative integer: '%s'", spec);
    if (o->n_push_limits == MAX_PUSH_LIMITS)
        return fail("too many push limits");
    o->push_limit_ids[o->n_push_limits] = id;
    o->push_limit_values[o->n_push_limits++] = v;
    return 0;
}

/* Push options that take a value: name, and where it goes. */
static const char **push_option(struct options *o, const char *name)
{
    static const struct {
        const char *name;
        size_t off;
    } table[] = {
        {"webhook", offsetof(struct options, webhook)},
        {"webhook-secret-file", offsetof(struct options, webhook_secret_file)},
        {"apns-key-file", offsetof(struct options, apns_key_file)},
        {"apns-key-id", offsetof(struct options, apns_key_id)},
        {"apns-team-id", offsetof(struct options, apns_team_id)},
        {"apns-topic", offsetof(struct options, apns_topic)},
        {"apns-endpoint", offsetof(struct options, apns_endpoint)},
        {"apns-sandbox-endpoint", offsetof(struct options, apns_sandbox_endpoint)},
        {"fcm-service-account", offsetof(struct options, fcm_account)},
        {"fcm-endpoint", offsetof(struct options, fcm_endpoint)},
        {"fcm-token-uri", offsetof(struct options, fcm_token_uri)},
        {"push-ca-file", offsetof(struct options, push_ca_file)},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(name, table[i].name) == 0)
            return (const char **)((char *)o + table[i].off);
    return NULL;
}

/* One option; value is NULL for flags. Returns 0, or an exit code after printing why. */
static int set_option(struct options *o, const char *name, const char *value, int *used)
{
    *used = 1;
    long long v;
    if (strcmp(name, "data-dir") == 0 && value)
        o->data_dir = value;
    else if (strcmp(name, "key-file") == 0 && value)
        o->key_file = value;
    else if (strcmp(name, "postgres") == 0 && value)
        o->postgres = value;
    else if (strcmp(name, "media-dir") == 0 && value)
        o->media_dir = value;
    else if (strcmp(name, "listen") == 0 && value)
        o->listen = value;
    else if (strcmp(name, "port") == 0 && value) {
        if (!parse_int(value, 0, 65535, &v))
            return fail("--port must be 0-65535, got '%s'", value);
        o->port = (int)v;
    } else if (strcmp(name, "sync") == 0 && value) {
        if (strcmp(value, "normal") && strcmp(value, "full"))
            return fail("--sync must be normal or full, got '%s'", value);
        o->sync_full = strcmp(value, "full") == 0;
    } else if (strcmp(name, "checkpoint") == 0 && value) {
        if (strcmp(value, "thread") && strcmp(value, "inline"))
            return fail("--checkpoint must be thread or inline, got '%s'", value);
        o->inline_ckpt = strcmp(value, "inline") == 0;
    } else if (strcmp(name, "bus") == 0 && value) {
        if (strcmp(value, "local") && strcmp(value, "queued"))
            return fail("--bus must be local or queued, got '%s'", value);
        o->bus_queued = strcmp(value, "queued") == 0;
#ifndef CHATD_TESTING_API
        if (o->bus_queued)
            return fail("--bus queued: this chatd was built without libchat's test-support "
                        "API (meson -Dtesting_api=true)");
#endif
    } else if (strcmp(name, "nats") == 0 && value)
        o->nats_url = value;
    else if (strcmp(name, "node-id") == 0 && value)
        o->node_id = value;
    else if (strcmp(name, "nats-prefix") == 0 && value)
        o->nats_prefix = value;
    else if (strcmp(name, "nats-heartbeat-ms") == 0 && value) {
        if (!parse_int(value, 10, 600000, &o->nats_heartbeat_ms))
            return fail("--nats-heartbeat-ms must be 10-600000, got '%s'", value);
    } else if (strcmp(name, "nats-lease-ms") == 0 && value) {
        if (!parse_int(value, 20, 3600000, &o->nats_lease_ms))
            return fail("--nats-lease-ms must be 20-3600000, got '%s'", value);
    } else if (push_option(o, name) && value)
        *push_option(o, name) = value;
    else if (strcmp(name, "push-limit") == 0 && value)
        return add_push_limit(o, value);
    else if (strcmp(name, "media-base-url") == 0 && value)
        o->media_base_url = value;
    else if (strcmp(name, "reactions") == 0 && value)
        o->reactions = value;
    else if (strcmp(name, "limit") == 0 && value)
        return add_limit(o, value);
    else if (strcmp(name, "tls-cert") == 0 && value)
        o->tls_cert = value;
    else if (strcmp(name, "tls-key") == 0 && value)
        o->tls_key = value;
    else if (strcmp(name, "allow-origin") == 0 && value) {
        if (o->n_origins == 16)
            return fail("at most 16 --allow-origin");
        o->origins[o->n_origins++] = value;
    } else if (strcmp(name, "admin-listen") == 0 && value)
        o->admin_listen = value;
    else if (strcmp(name, "admin") == 0 && value)
        o->admin = value;
    else if (strcmp(name, "drain-secs") == 0 && value) {
        if (!parse_int(value, 0, 3600, &v))
            return fail("--drain-secs must be 0-3600, got '%s'", value);
        o->drain_secs = v;
    } else if (strcmp(name, "log-level") == 0 && value) {
        static const char *const levels[] = {"error", "warn", "info", "debug"};
        o->log_level = -2;
        for (int i = 0; i < 4; i++)
            if (strcmp(value, levels[i]) == 0)
                o->log_level = i;
        if (o->log_level == -2)
            return fail("--log-level must be error, warn, info or debug, got '%s'", value);
    } else if (strcmp(name, "log-format") == 0 && value) {
        if (strcmp(value, "text") && strcmp(value, "json"))
            return fail("--log-format must be text or json, got '%s'", value);
        o->log_json = strcmp(value, "json") == 0;
    } else if (strcmp(name, "log-file") == 0 && value)
        o->log_file = value;
    else {
        *used = 0;
        if (strcmp(name, "memory") == 0)
            o->memory = 1;
        else if (strcmp(name, "push-previews") == 0)
            o->previews = 1;
        else if (strcmp(name, "keep-edits") == 0)
            o->keep_edits = 1;
        else if (strcmp(name, "affinity") == 0)
            o->affinity = 1;
        else if (strcmp(name, "reuse-port") == 0)
            o->reuse_port = 1;
        else if (strcmp(name, "verbose") == 0)
            o->verbose = 1;
        else
            return value ? fail("unknown option --%s", name)
                         : fail("unknown option or missing value: --%s", name);
    }
    return 0;
}

static int read_config(struct options *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail("cannot read config file %s", path);
    char line[1024];
    int lineno = 0, rc = 0;
    while (!rc && fgets(line, sizeof line, f)) {
        lineno++;
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        s[strcspn(s, "\r\n")] = '\0';
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        char *name = s, *value = NULL;
        if (eq) {
            *eq = '\0';
            value = eq + 1;
            while (*value == ' ' || *value == '\t')
                value++;
        }
        char *end = name + strlen(name);
        while (end > name && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = '\0';
        if (value && o->n_owned < 64) {
            value = strdup(value);
            o->owned[o->n_owned++] = value;
        }
        int used;
        if (strncmp(name, "limit.", 6) == 0 && value) {
            char spec[256];
            snprintf(spec, sizeof spec, "%s=%s", name + 6, value);
            rc = add_limit(o, spec);
        } else {
            rc = set_option(o, name, value, &used);
        }
        if (rc)
            fprintf(stderr, "chatd: in %s, line %d\n", path, lineno);
    }
    fclose(f);
    return rc;
}

/* Parse options; positional arguments are collected into pos. */
static int parse_args(struct options *o, int argc, char **argv, const char **pos, int *n_pos,
                      long long *ttl)
{
    *n_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (*n_pos < 4)
                pos[(*n_pos)++] = a;
            else
                return fail("unexpected argument '%s'", a);
            continue;
        }
        const char *name = a + 2;
        if (strcmp(name, "help") == 0) {
            fputs(usage, stdout);
            exit(0);
        }
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(name, "config") == 0) {
            if (!value)
                return fail("--config needs a file");
            int rc = read_config(o, value);
            if (rc)
                return rc;
            i++;
            continue;
        }
        if (strcmp(name, "ttl") == 0) {
            if (!value || !parse_int(value, 1, 100LL * 365 * 24 * 3600, ttl))
                return fail("--ttl must be a positive number of seconds");
            i++;
            continue;
        }
        int used;
        int rc = set_option(o, name, value, &used);
        if (rc)
            return rc;
        i += used;
    }
    return 0;
}

static int report(const char *what, int rc)
{
    fprintf(stderr, "chatd: %s: %s (%s)\n", what, chat_error_last()->message[0]
                                                      ? chat_error_last()->message
                                                      : chat_strerror(rc),
            chat_error_name(rc));
    return 1;
}

/* --reactions: a comma-separated list. */
static int set_reactions(chat_server_config *cfg, const char *list)
{
    char buf[CHAT_REACTIONS_MAX * (CHAT_REACTION_MAX + 1) + 1];
    const char *emoji[CHAT_REACTIONS_MAX];
    size_t n = 0;
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save = NULL, *e = strtok_r(buf, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        if (n == CHAT_REACTIONS_MAX)
            return CHAT_EINVAL;
        emoji[n++] = e;
    }
    return chat_server_config_set_reactions(cfg, emoji, n);
}

/* The NATS bus; on failure the bus is freed (by set_bus, or here before it). */
static int set_nats_bus(chat_server_config *cfg, const struct options *o)
{
    void *st = NULL;
    int rc = chat_bus_nats_new(&st, o->nats_url, o->node_id);
    if (rc)
        return rc;
    if (o->nats_prefix)
        rc = chat_bus_nats_set_prefix(st, o->nats_prefix);
    if (!rc && (o->nats_heartbeat_ms || o->nats_lease_ms))
        rc = chat_bus_nats_set_timing(st, o->nats_heartbeat_ms ? o->nats_heartbeat_ms : 1000,
                                      o->nats_lease_ms ? o->nats_lease_ms : 5000);
    if (rc) {
        chat_bus_nats_ops()->destroy(st);
        return rc;
    }
    return chat_server_config_set_bus(cfg, chat_bus_nats_ops(), st);
}

/* The webhook secret: the file's bytes, a trailing newline left out. */
static int read_secret(const char *path, unsigned char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "chatd: cannot read %s: %s\n", path, strerror(errno));
        return CHAT_EIO;
    }
    size_t n = fread(buf, 1, cap, f);
    int more = fgetc(f) != EOF;
    fclose(f);
    if (more) {
        fprintf(stderr, "chatd: %s: a webhook secret is at most %zu bytes\n", path, cap);
        return CHAT_EINVAL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    *len = n;
    return CHAT_OK;
}

/* The push service from the push options, registered on cfg; nothing when none is set. */
static int configure_push(struct options *o, chat_server_config *cfg)
{
    if (!o->webhook && !o->apns_key_file && !o->fcm_account) {
        if (o->webhook_secret_file || o->apns_key_id || o->apns_team_id || o->fcm_endpoint)
            fprintf(stderr, "chatd: push options without --webhook, --apns-key-file or "
                            "--fcm-service-account are ignored\n");
        return CHAT_OK;
    }
    chat_push_config *pc;
    int rc = chat_push_config_new(&pc);
    unsigned char secret[1024];
    size_t secret_len = 0;
    if (!rc && !o->memory)
        rc = chat_push_config_set_queue_dir(pc, o->data_dir);
    if (!rc && o->push_ca_file)
        rc = chat_push_config_set_ca_file(pc, o->push_ca_file);
    if (!rc && o->apns_key_file)
        rc = chat_push_config_set_apns(pc, o->apns_key_file, o->apns_key_id, o->apns_team_id,
                                       o->apns_topic);
    if (!rc && (o->apns_endpoint || o->apns_sandbox_endpoint))
        rc = chat_push_config_set_apns_endpoints(pc, o->apns_endpoint, o->apns_sandbox_endpoint);
    if (!rc && o->fcm_account)
        rc = chat_push_config_set_fcm(pc, o->fcm_account);
    if (!rc && (o->fcm_endpoint || o->fcm_token_uri))
        rc = chat_push_config_set_fcm_endpoints(pc, o->fcm_endpoint, o->fcm_token_uri);
    if (!rc && o->webhook && o->webhook_secret_file)
        rc = read_secret(o->webhook_secret_file, secret, sizeof secret, &secret_len);
    if (!rc && o->webhook)
        rc = chat_push_config_set_webhook(pc, o->webhook, o->webhook_secret_file ? secret : NULL,
                                          secret_len);
    memset(secret, 0, sizeof secret);
    for (int i = 0; !rc && i < o->n_push_limits; i++)
        rc = chat_push_config_set_limit(pc, o->push_limit_ids[i], o->push_limit_values[i]);
    void *st = NULL;
    if (!rc)
        rc = chat_push_service_new(&st, pc);
    chat_push_config_free(pc);
    if (!rc)
        rc = chat_server_config_set_push(cfg, chat_push_service_ops(), st);
    return rc;
}

/* The filesystem blob store in --media-dir: shared by the nodes of a cluster, each staging
 * apart (a node clears its own uploads in progress when it starts, not the others'). */
static int set_media_dir(chat_server_config *cfg, const struct options *o)
{
    void *st = NULL;
    int rc = o->node_id ? chat_blob_fs_new_shared(&st, o->media_dir, o->node_id)
                        : chat_blob_fs_new(&st, o->media_dir);
    return rc ? rc : chat_server_config_set_blob(cfg, chat_blob_fs_ops(), st);
}

static int make_config(struct options *o, chat_server_config **out)
{
    if (!o->nats_url != !o->node_id)
        return fail("--nats and --node-id go together");
    if (o->nats_url && o->bus_queued)
        return fail("--bus queued and --nats exclude each other");
    /* Without --nats there is one node, which writes everything anyway: nothing to do. */
    if (o->affinity && o->nats_url && (!o->postgres || o->memory))
        return fail("--affinity needs --postgres: the nodes must share one store");
    chat_server_config *cfg;
    int rc = chat_server_config_new(&cfg);
    if (rc)
        return report("config", rc);
    if (!o->memory && mkdir(o->data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "chatd: cannot create data dir %s: %s\n", o->data_dir, strerror(errno));
        chat_server_config_free(cfg);
        return 1;
    }
    char keyfile[4096];
    snprintf(keyfile, sizeof keyfile, "%s/token.key", o->data_dir);
    if (o->memory && !o->key_file)
        mkdir(o->data_dir, 0700);
    if ((rc = chat_server_config_load_key_file(cfg, o->key_file ? o->key_file : keyfile, 1)))
        goto bad;
    if (!o->memory && (rc = chat_server_config_set_data_dir(cfg, o->data_dir)))
        goto bad;
    if ((rc = chat_server_config_set_listen(cfg, o->listen, o->port)))
        goto bad;
    if (o->postgres && !o->memory) {
        if (o->sync_full || o->inline_ckpt)
            fprintf(stderr, "chatd: --sync and --checkpoint are SQLite's; ignored with "
                            "--postgres\n");
        void *st;
        if ((rc = chat_store_postgres_open(&st, o->postgres, 0)) ||
            (rc = chat_server_config_set_store(cfg, chat_store_postgres_ops(), st))) {
            chat_server_config_free(cfg);
            return report("cannot open the PostgreSQL store", rc);
        }
    } else if ((o->sync_full || o->inline_ckpt) &&
               (rc = chat_server_config_set_store_flags(
                    cfg, (o->sync_full ? CHAT_STORE_SQLITE_SYNC_FULL : 0u) |
                             (o->inline_ckpt ? CHAT_STORE_SQLITE_INLINE_CHECKPOINT : 0u)))) {
        goto bad;
    }
    unsigned flags = (o->previews ? CHAT_SERVER_PUSH_PREVIEWS : 0u) |
                     (o->reuse_port ? CHAT_SERVER_REUSE_PORT : 0u) |
                     (o->keep_edits ? CHAT_SERVER_KEEP_EDITS : 0u) |
                     (o->affinity ? CHAT_SERVER_AFFINITY : 0u);
    if (flags && (rc = chat_server_config_set_flags(cfg, flags)))
        goto bad;
    if (o->reactions && (rc = set_reactions(cfg, o->reactions)))
        goto bad;
    if (o->media_base_url &&
        (rc = chat_server_config_set_media_base_url(cfg, o->media_base_url)))
        goto bad;
    if (o->media_dir && (rc = set_media_dir(cfg, o))) {
        chat_server_config_free(cfg);
        return report("media directory", rc);
    }
    if ((o->tls_cert || o->tls_key) &&
        (rc = chat_server_config_set_tls(cfg, o->tls_cert, o->tls_key)))
        goto bad;
    for (int i = 0; i < o->n_origins; i++)
        if ((rc = chat_server_config_add_allowed_origin(cfg, o->origins[i])))
            goto bad;
    for (int i = 0; i < o->n_limits; i++)
        if ((rc = chat_server_config_set_limit(cfg, o->limit_ids[i], o->limit_values[i])))
            goto bad;
    chat_server_config_set_log_kv(cfg, chatd_log_kv, chatd_log_level(), NULL);
#ifdef CHATD_TESTING_API
    if (o->bus_queued) {
        void *st;
        if ((rc = chat_bus_queued_new(&st)) ||
            (rc = chat_server_config_set_bus(cfg, chat_bus_queued_ops(), st)))
            goto bad;
    }
#endif
    if (o->nats_url && (rc = set_nats_bus(cfg, o))) {
        chat_server_config_free(cfg);
        return report("NATS bus", rc);
    }
    if (o->serving && (rc = configure_push(o, cfg)))
        goto bad;
    *out = cfg;
    return 0;
bad:
    chat_server_config_free(cfg);
    return report("configuration", rc);
}

/* A server holds one descriptor per connection: take the whole hard limit the system allows
 * (the soft default, often 1024, would cap chatd far below its connection limit). libchat
 * refuses new sockets near whichever limit is in force, so this only moves the ceiling. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            fprintf(stderr, "chatd: cannot raise the open-file limit: %s\n", strerror(errno));
    }
}

/* The drain, waited for off the main thread: SIGUSR1 tells sigwait it is over. */
static void *drain_waiter(void *arg)
{
    chat_server *srv = arg;
    int rc = chat_server_drain_wait(srv);
    if (rc == CHAT_OK)
        chatd_log(CHAT_LOG_INFO, "drained: every client was answered and closed (1001)");
    else if (rc == CHAT_ETIMEDOUT)
        chatd_log(CHAT_LOG_WARN, "drain deadline: the clients still connected were dropped");
    kill(getpid(), SIGUSR1);
    return NULL;
}

/* DIR/admin.addr: where `chatd admin` finds this server's admin listener. */
static void admin_addr_file(const struct options *o, const char *bound, int create)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/admin.addr", o->data_dir);
    if (!create) {
        unlink(path);
        return;
    }
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%s\n", bound);
        fclose(f);
    }
}

static int cmd_run(struct options *o)
{
    o->serving = 1;
    chat_server_config *cfg;
    int rc = make_config(o, &cfg);
    if (rc)
        return rc;
    char token[CHATD_ADMIN_TOKEN_LEN + 1];
    if (o->admin_listen && chatd_admin_token(o->data_dir, 1, token) != 0) {
        chat_server_config_free(cfg);
        return 1;
    }
    /* Signals go to the main thread's sigwait only; the library's threads inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    raise_fd_limit();
    chat_server *srv;
    rc = chat_server_new(&srv, cfg);
    chat_server_config_free(cfg);
    if (rc)
        return report("cannot start", rc);
    rc = chat_server_start(srv);
    if (rc) {
        report("cannot listen", rc);
        chat_server_free(srv);
        return 1;
    }
    chatd_admin *admin = NULL;
    char bound[300] = "";
    if (o->admin_listen &&
        chatd_admin_start(&admin, srv, o->admin_listen, token, bound, sizeof bound) != 0) {
        explicit_bzero(token, sizeof token);
        chat_server_free(srv);
        return 1;
    }
    explicit_bzero(token, sizeof token);
    printf("chatd listening on %s:%d\n", o->listen, chat_server_port(srv));
    if (admin) {
        admin_addr_file(o, bound, 1);
        printf("chatd admin listening on %s\n", bound);
    }
    fflush(stdout);

    /* SIGTERM drains (a second one, or SIGINT, stops at once); SIGHUP reopens the log. */
    pthread_t waiter;
    int draining = 0;
    for (;;) {
        int sig;
        sigwait(&set, &sig);
        if (sig == SIGHUP) {
            if (chatd_log_reopen() != 0)
                fprintf(stderr, "chatd: cannot reopen the log file: %s\n", strerror(errno));
            else
                chatd_log(CHAT_LOG_INFO, "SIGHUP: log file reopened");
            continue;
        }
        if (sig == SIGTERM && !draining) {
            chatd_log(CHAT_LOG_WARN, "SIGTERM: draining (deadline %lld s)", o->drain_secs);
            chat_server_drain(srv, o->drain_secs * 1000);
            draining = pthread_create(&waiter, NULL, drain_waiter, srv) == 0;
            if (draining)
                continue;
        }
        if (sig == SIGUSR1 && !draining)
            continue;
        chatd_log(CHAT_LOG_WARN, "%s, shutting down",
                  sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "drained");
        break;
    }
    chatd_admin_stop(admin);
    if (admin)
        admin_addr_file(o, bound, 0);
    chat_server_stop(srv);
    if (draining)
        pthread_join(waiter, NULL);
    chat_server_free(srv);
    return 0;
}

static int cmd_token(struct options *o, const char *user, const char *device, long long ttl)
{
    chat_server_config *cfg;
    o->memory = 1; /* tokens need the key only */
    o->media_dir = NULL;
    int rc = make_config(o, &cfg);
    if (rc)
        return rc;
    raise_fd_limit();
    chat_server *srv;
    rc = chat_server_new(&srv, cfg);
    chat_server_config_free(cfg);
    if (rc)
        return report("cannot load keys", rc);
    char *tok = NULL;
    rc = chat_server_issue_token(srv, user, device, ttl * 1000, &tok);
    if (rc == CHAT_OK)
        printf("%s\n", tok);
    else
        report("cannot issue a token", rc);
    chat_string_free(tok);
    chat_server_free(srv);
    return rc ? 1 : 0;
}

/* A server on the options' store, not started: for the commands that work on the store.
 * 0, or the exit status after printing why. */
static int open_server(struct options *o, chat_server **srv)
{
    chat_server_config *cfg;
    int rc = make_config(o, &cfg);
    if (rc)
        return rc;
    rc = chat_server_new(srv, cfg);
    chat_server_config_free(cfg);
    return rc ? report("cannot open the store", rc) : 0;
}

static int cmd_user_add(struct options *o, const char *name)
{
    char pw[1100];
    if (!fgets(pw, sizeof pw, stdin)) {
        fprintf(stderr, "chatd: user add reads the password from the first line of stdin\n");
        return 2;
    }
    pw[strcspn(pw, "\r\n")] = '\0';
    raise_fd_limit();
    chat_server *srv;
    int rc = open_server(o, &srv);
    if (rc)
        return rc;
    rc = chat_server_user_set_password(srv, name, pw);
    memset(pw, 0, sizeof pw);
    if (rc)
        report("cannot add the user", rc);
    else
        printf("user %s saved\n", name);
    chat_server_free(srv);
    return rc ? 1 : 0;
}

static int cmd_user_delete(struct options *o, const char *name)
{
    raise_fd_limit();
    chat_server *srv;
    int rc = open_server(o, &srv);
    if (rc)
        return rc;
    rc = chat_server_user_delete(srv, name);
    if (rc)
        report("cannot delete the user", rc);
    else
        printf("user %s deleted\n", name);
    chat_server_free(srv);
    return rc ? 1 : 0;
}

static int cmd_vacuum(struct options *o)
{
    if (o->memory || o->postgres)
        return fail("vacuum rewrites the SQLite store of --data-dir; --memory and --postgres "
                    "have none");
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/chat.db", o->data_dir) >= (int)sizeof path)
        return fail("the data directory's path is too long");
    int rc = chat_store_sqlite_vacuum(path);
    if (rc) {
        report("cannot vacuum the store", rc);
        return 1;
    }
    printf("%s rewritten\n", path);
    return 0;
}

/* `chatd admin` with no server to ask: conv and user read the store, revoke-device writes
 * its record there (a server started later refuses the device). */
static int cmd_admin_local(struct options *o, const char *cmd, const char **pos)
{
    int conv = strcmp(cmd, "conv") == 0, user = strcmp(cmd, "user") == 0;
    int revoke = strcmp(cmd, "revoke-device") == 0;
    if (!conv && !user && !revoke)
        return fail("'%s' needs the running chatd's admin listener (chatd run --admin-listen)",
                    cmd);
    o->memory = 0;
    chat_server *srv;
    int rc = open_server(o, &srv);
    if (rc)
        return rc;
    char *out = NULL;
    if (conv) {
        char *end;
        long long id = strtoll(pos[1], &end, 10);
        rc = *end || id <= 0 ? CHAT_EINVAL : chat_server_admin_conv(&out, srv, id);
    } else if (user) {
        rc = chat_server_admin_user(&out, srv, pos[1]);
    } else {
        rc = chat_server_admin_revoke_device(srv, pos[1], pos[2]);
        if (rc == CHAT_OK)
            fprintf(stderr, "chatd: revoked in the store; a chatd already running without an "
                            "admin listener refuses the device from its next start\n");
    }
    if (rc == CHAT_OK && out)
        printf("%s\n", out);
    else if (rc != CHAT_OK)
        report(cmd, rc);
    chat_string_free(out);
    chat_server_free(srv);
    return rc ? 1 : 0;
}

/* `chatd admin`: the data directory's owner only; through the running server's admin
 * listener (its address in DIR/admin.addr, or --admin), else on the store itself. */
static int cmd_admin(struct options *o, const char **pos, int n_pos)
{
    struct stat st;
    if (stat(o->data_dir, &st) != 0)
        return fail("cannot read the data directory %s: %s", o->data_dir, strerror(errno));
    if (st.st_uid != geteuid())
        return fail("chatd admin runs as the owner of %s (uid %u) only", o->data_dir,
                    (unsigned)st.st_uid);
    const char *cmd = n_pos ? pos[0] : "";
    for (int i = 1; i < n_pos; i++)
        if (strchr(pos[i], '/') || strchr(pos[i], ' '))
            return fail("'%s' is not an id", pos[i]);
    char path[512];
    const char *method = "GET";
    if (strcmp(cmd, "stats") == 0 && n_pos == 1) {
        snprintf(path, sizeof path, "/admin/stats");
    } else if (strcmp(cmd, "user") == 0 && n_pos == 2) {
        snprintf(path, sizeof path, "/admin/users/%s", pos[1]);
    } else if (strcmp(cmd, "conv") == 0 && n_pos == 2) {
        snprintf(path, sizeof path, "/admin/convs/%s", pos[1]);
    } else if (strcmp(cmd, "disconnect") == 0 && n_pos == 2) {
        snprintf(path, sizeof path, "/admin/connections/%s/disconnect", pos[1]);
        method = "POST";
    } else if (strcmp(cmd, "revoke-device") == 0 && n_pos == 3) {
        snprintf(path, sizeof path, "/admin/users/%s/devices/%s/revoke", pos[1], pos[2]);
        method = "POST";
    } else {
        return fail("unknown admin command or wrong arguments (see chatd --help)");
    }
    char addr[300] = "";
    if (o->admin) {
        snprintf(addr, sizeof addr, "%s", o->admin);
    } else {
        char file[4096];
        snprintf(file, sizeof file, "%s/admin.addr", o->data_dir);
        FILE *f = fopen(file, "r");
        if (f) {
            if (fgets(addr, sizeof addr, f))
                addr[strcspn(addr, "\r\n")] = '\0';
            fclose(f);
        }
    }
    if (!addr[0])
        return cmd_admin_local(o, cmd, pos);
    char token[CHATD_ADMIN_TOKEN_LEN + 1];
    if (chatd_admin_token(o->data_dir, 0, token) != 0)
        return 1;
    int status = 0;
    char *body = NULL;
    int rc = chatd_admin_request(addr, token, method, path, &status, &body);
    explicit_bzero(token, sizeof token);
    if (rc == -2 && !o->admin) { /* an address left behind by a chatd that is gone */
        fprintf(stderr, "chatd: no admin listener at %s (from %s/admin.addr): using the "
                        "store\n", addr, o->data_dir);
        return cmd_admin_local(o, cmd, pos);
    }
    if (rc != 0) {
        if (rc == -2)
            fprintf(stderr, "chatd: nothing listens at %s\n", addr);
        return 1;
    }
    FILE *out = status == 200 ? stdout : stderr;
    fputs(body, out);
    if (body[0] && body[strlen(body) - 1] != '\n')
        fputc('\n', out);
    free(body);
    return status == 200 ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct options o = {.data_dir = "chat-data", .listen = "127.0.0.1", .port = 7700,
                        .log_level = -1, .drain_secs = 10};
    const char *pos[4];
    int n_pos;
    long long ttl = 30LL * 24 * 3600;
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fputs(usage, stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("chatd %s\n", chat_version_string());
        return 0;
    }
    int rc = parse_args(&o, argc - 2, argv + 2, pos, &n_pos, &ttl);
    if (!rc && o.memory && o.postgres)
        rc = fail("--memory and --postgres exclude each other");
    int level = o.log_level >= 0 ? o.log_level : o.verbose ? CHAT_LOG_INFO : CHAT_LOG_WARN;
    if (!rc && chatd_log_open(strcmp(argv[1], "run") == 0 ? o.log_file : NULL, o.log_json,
                              level) != 0)
        rc = fail("cannot open the log file %s: %s", o.log_file, strerror(errno));
    if (!rc) {
        if (strcmp(argv[1], "run") == 0 && n_pos == 0)
            rc = cmd_run(&o);
        else if (strcmp(argv[1], "token") == 0 && n_pos == 2)
            rc = cmd_token(&o, pos[0], pos[1], ttl);
        else if (strcmp(argv[1], "user") == 0 && n_pos == 2 && strcmp(pos[0], "add") == 0)
            rc = cmd_user_add(&o, pos[1]);
        else if (strcmp(argv[1], "user") == 0 && n_pos == 2 && strcmp(pos[0], "delete") == 0)
            rc = cmd_user_delete(&o, pos[1]);
        else if (strcmp(argv[1], "vacuum") == 0 && n_pos == 0)
            rc = cmd_vacuum(&o);
        else if (strcmp(argv[1], "admin") == 0)
            rc = cmd_admin(&o, pos, n_pos);
        else
            rc = fail("unknown command or wrong arguments: %s (see chatd --help)", argv[1]);
    }
    for (int i = 0; i < o.n_owned; i++)
        free(o.owned[i]);
    chatd_log_close();
    return rc;
}
