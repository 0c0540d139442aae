/* chatd's parts: its log (log.c), the admin listener (admin_http.c) and the admin command
 * (admin_cli.c), around the daemon in chatd.c. */
#ifndef CHATD_H
#define CHATD_H

#include <chat/chat.h>

#include <stddef.h>
#include <sys/socket.h>

#define CHATD_MAX_LIMITS 32
#define CHATD_MAX_PUSH_LIMITS 16

struct options {
    const char *data_dir;
    const char *key_file;
    int memory;
    const char *postgres;
    const char *media_dir;
    const char *listen;
    int port;
    int sync_full;
    int inline_ckpt;
    int bus_queued;
    const char *nats_url, *node_id, *nats_prefix;
    long long nats_heartbeat_ms, nats_lease_ms;
    const char *webhook, *webhook_secret_file;
    const char *apns_key_file, *apns_key_id, *apns_team_id, *apns_topic;
    const char *apns_endpoint, *apns_sandbox_endpoint;
    const char *fcm_account, *fcm_endpoint, *fcm_token_uri;
    const char *push_ca_file;
    int n_push_limits;
    int push_limit_ids[CHATD_MAX_PUSH_LIMITS];
    long long push_limit_values[CHATD_MAX_PUSH_LIMITS];
    int serving; /* chatd run: the push service is made only then */
    const char *media_base_url;
    int previews;
    int keep_edits;
    int affinity;
    const char *reactions;
    int reuse_port;
    const char *tls_cert, *tls_key;
    int n_origins;
    const char *origins[16];
    int verbose;
    int n_limits;
    int limit_ids[CHATD_MAX_LIMITS];
    long long limit_values[CHATD_MAX_LIMITS];
    const char *admin_listen; /* [ADDR:]PORT of the admin listener, NULL: none */
    const char *admin;        /* `chatd admin`: ADDR:PORT of a running chatd's listener */
    const char *log_file;     /* NULL: stderr */
    int log_json;
    int log_level;            /* -1: from --verbose */
    long long drain_secs;
    char *owned[64]; /* strings read from a config file */
    int n_owned;
};

/* ---- log.c: one line per event, text or JSON lines, to stderr or a file ---- */

/* Log to path (NULL: stderr) at or below level, as JSON lines or text. 0, or -1 (errno). */
int chatd_log_open(const char *path, int json, int level);
/* Open the file again under its name (after logrotate moved it): 0, or -1 (errno). */
int chatd_log_reopen(void);
void chatd_log_close(void);
int chatd_log_level(void);
/* The library's structured sink (chat_log_kv_cb). */
void chatd_log_kv(int level, const char *msg, const char *const *fields, void *ud);
/* A line of chatd's own. */
void chatd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- admin_http.c: /metrics, /healthz, /readyz and /admin/ on a listener of its own ---- */

#define CHATD_ADMIN_TOKEN_LEN 64 /* hex digits */

typedef struct chatd_admin chatd_admin;

/* Listen on spec ([ADDR:]PORT, ADDR defaults to 127.0.0.1) and serve srv from a thread.
 * bound receives "ADDR:PORT" as bound. 0, or -1 after printing why. */
int chatd_admin_start(chatd_admin **out, chat_server *srv, const char *spec, const char *token,
                      char *bound, size_t bound_size);
void chatd_admin_stop(chatd_admin *a);
/* The admin token of data_dir (DIR/admin.token, 64 hex digits, mode 0600), created when
 * missing if create is set. 0, or -1 after printing why. */
int chatd_admin_token(const char *data_dir, int create, char out[CHATD_ADMIN_TOKEN_LEN + 1]);
/* [ADDR:]PORT (ADDR numeric, 127.0.0.1 when absent, [v6] in brackets) into an address:
 * 0, or -1. */
int chatd_parse_addr(const char *spec, struct sockaddr_storage *ss, socklen_t *len);
/* Equal strings, compared in time that depends on their length only. */
int chatd_same_secret(const char *a, const char *b);

/* ---- admin_cli.c: `chatd admin COMMAND` ---- */

/* Ask a running chatd's admin listener at addr (ADDR:PORT): one HTTP request with the admin
 * token; *status is the HTTP status, *body its body (malloc'd, NUL-terminated). 0; -2 when
 * nothing listens there (silently); -1 after printing why (no answer). */
int chatd_admin_request(const char *addr, const char *token, const char *method,
                        const char *path, int *status, char **body);

#endif
