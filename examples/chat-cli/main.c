/* chat-cli: a terminal client over the libchat client engine (include/chat/client.h).
 *
 *   chat-cli [OPTIONS] COMMAND [ARGS]
 *
 * Non-interactive commands for scripts (send, history, convs, group-create, listen) and, with
 * no command, a line-oriented interactive mode. Run `chat-cli --help` for the details.
 *
 * Exit codes: 0 success, 1 refused or failed (libchat error), 2 usage, 3 authentication
 * failed, 4 timed out (server unreachable, no ack). Errors go to stderr, results to stdout. */
#include <chat/chat.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_AUTH = 3, EXIT_TIMEOUT = 4 };

#define MAX_POS 64

static const char *prog = "chat-cli";

struct opts {
    const char *server, *token, *user, *password, *device, *cache, *ca_file;
    const char *to;
    uint64_t conv;
    int has_conv;
    int limit;
    uint64_t before;
    int seconds;
    int timeout_s;
    int mark_read;
    int quiet;
    const char *mime;
    const char *id;      /* group-create: client id that makes a retry safe */
    uint64_t stop_after; /* send-file/download: abort after this many bytes (tests resume) */
    const char *pos[MAX_POS];
    int npos;
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: %s [OPTIONS] [COMMAND [ARGS]]\n"
        "\n"
        "Connection options (any position before `--`):\n"
        "  --server URL        server, ws://HOST:PORT/ or wss://HOST:PORT/ (default\n"
        "                      $CHAT_SERVER, else ws://127.0.0.1:7700/)\n"
        "  --ca-file FILE      for wss:// (and its media transfers): trust the CAs in this\n"
        "                      PEM file instead of the system's (the server's certificate\n"
        "                      is always verified)\n"
        "  --token T           authenticate with a token (default $CHAT_TOKEN)\n"
        "  --user U --password P [--device D]\n"
        "                      log in instead (device default \"cli\")\n"
        "  --cache FILE        cache file (default: in memory, nothing kept)\n"
        "  --timeout SECONDS   bound of every wait (default 10)\n"
        "\n"
        "Commands:\n"
        "  send --to USER TEXT...    send to the direct conversation with USER; waits for the\n"
        "  send --conv ID TEXT...    ack and prints the message's seq\n"
        "  history --conv ID [--limit N] [--before SEQ]\n"
        "                            one line per message: seq, sender, mark (own messages:\n"
        "                            ... sending, \xe2\x9c\x93 sent, \xe2\x9c\x93\xe2\x9c\x93 delivered, read), text\n"
        "  convs                     one line per conversation: id, peer or title, unread\n"
        "  group-create [--id ID] TITLE USER...\n"
        "                            create a group; prints its conversation id. Repeating\n"
        "                            the command with the same --id (1-64 printable ASCII)\n"
        "                            prints the group the first run created\n"
        "  listen [--seconds N] [--read]\n"
        "                            print events as lines for N seconds (default 10; 0: until\n"
        "                            killed); --read marks incoming messages read\n"
        "  send-file --to USER|--conv ID FILE [--mime TYPE]\n"
        "                            upload FILE over HTTP, HTTPS for wss:// (progress on\n"
        "                            stderr; an interrupted upload of the same file resumes),\n"
        "                            then send it as a media message; prints the media id and\n"
        "                            the message's seq\n"
        "  download MEDIA_ID FILE    fetch a signed URL and download into FILE (progress on\n"
        "                            stderr; FILE.part left by an interrupted download resumes;\n"
        "                            the content hash is checked)\n"
        "  (none)                    interactive mode; type /help\n"
        "\n"
        "Exit codes: 0 ok, 1 refused/failed, 2 usage, 3 authentication failed, 4 timed out.\n",
        prog);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    usage(stderr);
    return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_int(const char *s, int min, int max, int *out)
{
    char *end = NULL;
    if (!s || !*s)
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* Returns -1 when parsed, else an exit code. */
static int parse_args(struct opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->server = getenv("CHAT_SERVER");
    o->token = getenv("CHAT_TOKEN");
    o->limit = 50;
    o->seconds = 10;
    o->timeout_s = 10;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->npos == MAX_POS)
                return usage_error("too many arguments");
            o->pos[o->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "--read") == 0) {
            o->mark_read = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
            continue;
        }
        static const char *const valued[] = {"--server", "--token", "--user", "--password",
                                             "--device", "--cache", "--timeout", "--to",
                                             "--conv", "--limit", "--before", "--seconds",
                                             "--mime", "--stop-after", "--ca-file", "--id"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            if (strcmp(a, valued[k]) == 0)
                known = 1;
        if (!known)
            return usage_error("unknown option %s", a);
        if (i + 1 >= argc)
            return usage_error("option %s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--server") == 0)
            o->server = v;
        else if (strcmp(a, "--token") == 0)
            o->token = v;
        else if (strcmp(a, "--user") == 0)
            o->user = v;
        else if (strcmp(a, "--password") == 0)
            o->password = v;
        else if (strcmp(a, "--device") == 0)
            o->device = v;
        else if (strcmp(a, "--ca-file") == 0)
            o->ca_file = v;
        else if (strcmp(a, "--cache") == 0)
            o->cache = v;
        else if (strcmp(a, "--to") == 0)
            o->to = v;
        else if (strcmp(a, "--timeout") == 0) {
            if (parse_int(v, 1, 86400, &o->timeout_s))
                return usage_error("bad --timeout %s", v);
        } else if (strcmp(a, "--conv") == 0) {
            if (parse_u64(v, &o->conv) || o->conv == 0)
                return usage_error("bad --conv %s", v);
            o->has_conv = 1;
        } else if (strcmp(a, "--limit") == 0) {
            if (parse_int(v, 1, 100000, &o->limit))
                return usage_error("bad --limit %s", v);
        } else if (strcmp(a, "--before") == 0) {
            if (parse_u64(v, &o->before))
                return usage_error("bad --before %s", v);
        } else if (strcmp(a, "--seconds") == 0) {
            if (parse_int(v, 0, 86400 * 365, &o->seconds))
                return usage_error("bad --seconds %s", v);
        } else if (strcmp(a, "--mime") == 0) {
            o->mime = v;
        } else if (strcmp(a, "--id") == 0) {
            o->id = v;
        } else if (strcmp(a, "--stop-after") == 0) {
            if (parse_u64(v, &o->stop_after) || o->stop_after == 0)
                return usage_error("bad --stop-after %s", v);
        }
    }
    if (!o->server || !*o->server)
        o->server = "ws://127.0.0.1:7700/";
    if (o->user || o->password) {
        if (!o->user || !o->password)
            return usage_error("--user and --password go together");
        if (!o->device)
            o->device = "cli";
        o->token = NULL; /* an explicit login wins over $CHAT_TOKEN */
    } else if (!o->token || !*o->token) {
        return usage_error("no credentials: give --token T (or $CHAT_TOKEN), or --user and "
                           "--password");
    }
    return -1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_lib_error(const char *what, int rc)
{
    const chat_error_info *e = chat_error_last();
    const char *detail = (e && e->code == rc && e->message && *e->message) ? e->message : NULL;
    fprintf(stderr, "%s: %s: %s (%s)%s%s\n", prog, what, chat_strerror(rc), chat_error_name(rc),
            detail ? ": " : "", detail ? detail : "");
}

static char *server_url(const char *s)
{
    /* accept "HOST:PORT" as well as "ws://HOST:PORT/" */
    size_t n = strlen(s) + 8;
    char *u = malloc(n);
    if (!u)
        return NULL;
    if (strncmp(s, "ws://", 5) == 0 || strncmp(s, "wss://", 6) == 0)
        snprintf(u, n, "%s", s);
    else
        snprintf(u, n, "ws://%s/", s);
    return u;
}

static int open_client(chat_client **out, const struct opts *o)
{
    chat_client_config *cfg = NULL;
    chat_client *c = NULL;
    char *url = server_url(o->server);
    int rc = url ? chat_client_config_new(&cfg) : CHAT_ENOMEM;
    if (rc == CHAT_OK)
        rc = chat_client_config_set_server(cfg, url);
    if (rc == CHAT_OK)
        rc = o->token ? chat_client_config_set_token(cfg, o->token)
                      : chat_client_config_set_login(cfg, o->user, o->password, o->device);
    if (rc == CHAT_OK && o->cache)
        rc = chat_client_config_set_cache_path(cfg, o->cache);
    if (rc == CHAT_OK && o->ca_file)
        rc = chat_client_config_set_ca_file(cfg, o->ca_file);
    if (rc == CHAT_OK) /* a script wants a quick retry, not a 30 s backoff */
        rc = chat_client_config_set_backoff(cfg, 200, 2000);
    if (rc == CHAT_OK) {
        int64_t t = (int64_t)o->timeout_s * 1000;
        rc = chat_client_config_set_heartbeat(cfg, 15000, t < 10000 ? t : 10000);
    }
    if (rc == CHAT_OK)
        rc = chat_client_new(&c, cfg);
    chat_client_config_free(cfg);
    free(url);
    if (rc == CHAT_OK)
        rc = chat_client_start(c);
    if (rc != CHAT_OK) {
        print_lib_error("cannot start the client", rc);
        chat_client_free(c);
        return rc == CHAT_EINVAL ? EXIT_USAGE : EXIT_FAIL;
    }
    *out = c;
    return EXIT_OK;
}

/* ---- waiting for events ------------------------------------------------------------------ */

typedef int (*match_fn)(const chat_event *ev, void *arg);

struct waiter {
    char last_offline[256];
    int synced;
};

/*
 * Wait until match(ev) holds for an event (returned in *out, owned by the caller), the
 * deadline passes (EXIT_TIMEOUT), or authentication fails (EXIT_AUTH). Messages are printed on
 * stderr. Other events are dropped.
 */
static int wait_for(chat_client *c, struct waiter *w, int64_t deadline, match_fn match,
                    void *arg, chat_event **out, const char *what)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            fprintf(stderr, "%s: timed out waiting for %s", prog, what);
            if (!w->synced && w->last_offline[0])
                fprintf(stderr, " (not connected: %s)", w->last_offline);
            else if (!w->synced)
                fprintf(stderr, " (not connected)");
            fprintf(stderr, "\n");
            return EXIT_TIMEOUT;
        }
        chat_event *ev = NULL;
        int rc = chat_client_wait_event(&ev, c, left > 500 ? 500 : (int)left);
        if (rc == CHAT_ETIMEDOUT)
            continue;
        if (rc != CHAT_OK) {
            print_lib_error("waiting for events", rc);
            return EXIT_FAIL;
        }
        int type = chat_event_type(ev);
        if (type == CHAT_EVENT_SYNCED)
            w->synced = 1;
        if (type == CHAT_EVENT_OFFLINE)
            snprintf(w->last_offline, sizeof w->last_offline, "%s (%s)", chat_event_message(ev),
                     chat_error_name(chat_event_code(ev)));
        if (match && match(ev, arg)) {
            *out = ev;
            return EXIT_OK;
        }
        if (type == CHAT_EVENT_AUTH_FAILED) {
            fprintf(stderr, "%s: authentication failed: %s (%s)\n", prog, chat_event_message(ev),
                    chat_error_name(chat_event_code(ev)));
            chat_event_free(ev);
            return EXIT_AUTH;
        }
        chat_event_free(ev);
    }
}

static int match_synced(const chat_event *ev, void *arg)
{
    (void)arg;
    return chat_event_type(ev) == CHAT_EVENT_SYNCED;
}

static int wait_synced(chat_client *c, struct waiter *w, int64_t deadline)
{
    chat_event *ev = NULL;
    int rc = wait_for(c, w, deadline, match_synced, NULL, &ev, "the connection and sync");
    chat_event_free(ev);
    return rc;
}

static int match_cmid(const chat_event *ev, void *arg)
{
    int t = chat_event_type(ev);
    return (t == CHAT_EVENT_SENT || t == CHAT_EVENT_SEND_FAILED) &&
           strcmp(chat_event_cmid(ev), (const char *)arg) == 0;
}

static int match_request(const chat_event *ev, void *arg)
{
    int t = chat_event_type(ev);
    return (t == CHAT_EVENT_RESULT || t == CHAT_EVENT_HISTORY) &&
           chat_event_request(ev) == *(const uint64_t *)arg;
}

/* ---- shared formatting ------------------------------------------------------------------- */

static const char *status_mark(int st)
{
    switch (st) {
    case CHAT_MSG_STATUS_SENDING: return "...";
    case CHAT_MSG_STATUS_SENT: return "\xe2\x9c\x93";                 /* ✓ */
    case CHAT_MSG_STATUS_DELIVERED: return "\xe2\x9c\x93\xe2\x9c\x93"; /* ✓✓ */
    case CHAT_MSG_STATUS_READ: return "read";
    case CHAT_MSG_STATUS_FAILED: return "failed";
    default: return "-";
    }
}

static char *join(const char *const *parts, int n)
{
    size_t len = 1;
    for (int i = 0; i < n; i++)
        len += strlen(parts[i]) + 1;
    char *s = malloc(len);
    if (!s)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(s, " ");
        strcat(s, parts[i]);
    }
    return s;
}

/* Print text on one line: newlines and tabs become spaces. */
static void put_text(FILE *f, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        fputc(s[i] == '\n' || s[i] == '\r' || s[i] == '\t' ? ' ' : s[i], f);
}

static void print_msg_list(const chat_msg_list *l, size_t from)
{
    for (size_t i = from; i < chat_msg_list_count(l); i++) {
        size_t len = 0;
        const char *text = chat_msg_list_text(l, i, &len);
        if (chat_msg_list_kind(l, i) != CHAT_MSG_TEXT) {
            text = chat_msg_list_json(l, i);
            len = strlen(text);
        }
        int st = chat_msg_list_status(l, i);
        printf("%" PRIu64 "\t%s\t", chat_msg_list_seq(l, i), chat_msg_list_from(l, i));
        if (st != CHAT_MSG_STATUS_NONE && chat_msg_list_others(l, i) > 1 &&
            st != CHAT_MSG_STATUS_READ)
            printf("%s %zu/%zu", status_mark(st), chat_msg_list_read_count(l, i),
                   chat_msg_list_others(l, i));
        else
            printf("%s", status_mark(st));
        putchar('\t');
        put_text(stdout, text, len);
        putchar('\n');
    }
}

/* One line per event, for listen and the interactive mode. Returns 1 when printed. */
static int print_event(const chat_event *ev)
{
    size_t len = 0;
    const char *text;
    switch (chat_event_type(ev)) {
    case CHAT_EVENT_ONLINE:
        printf("online as %s (device %s)\n", chat_event_user(ev), chat_event_device(ev));
        return 1;
    case CHAT_EVENT_OFFLINE:
        printf("offline: %s (%s), retry in %" PRId64 " ms\n", chat_event_message(ev),
               chat_error_name(chat_event_code(ev)), chat_event_retry_ms(ev));
        return 1;
    case CHAT_EVENT_SYNCED:
        printf("synced\n");
        return 1;
    case CHAT_EVENT_MESSAGE:
        text = chat_event_text(ev, &len);
        if (chat_event_kind(ev) != CHAT_MSG_TEXT) {
            text = chat_event_json(ev);
            len = strlen(text);
        }
        printf("[conv %" PRIu64 " #%" PRIu64 "] %s: ", chat_event_conv(ev), chat_event_seq(ev),
               chat_event_user(ev));
        put_text(stdout, text, len);
        putchar('\n');
        return 1;
    case CHAT_EVENT_SENT:
        printf("\xe2\x9c\x93 sent #%" PRIu64 " in conv %" PRIu64 "\n", chat_event_seq(ev),
               chat_event_conv(ev));
        return 1;
    case CHAT_EVENT_SEND_FAILED:
        printf("send failed: %s (%s)\n", chat_event_message(ev),
               chat_error_name(chat_event_code(ev)));
        return 1;
    case CHAT_EVENT_RECEIPT:
        printf("receipt conv %" PRIu64 ": %s delivered #%" PRIu64 " read #%" PRIu64 "\n",
               chat_event_conv(ev), chat_event_user(ev), chat_event_delivered(ev),
               chat_event_read(ev));
        return 1;
    case CHAT_EVENT_TYPING:
        if (chat_event_active(ev))
            printf("conv %" PRIu64 ": %s is typing\xe2\x80\xa6\n", chat_event_conv(ev),
                   chat_event_user(ev));
        else
            printf("conv %" PRIu64 ": %s stopped typing\n", chat_event_conv(ev),
                   chat_event_user(ev));
        return 1;
    case CHAT_EVENT_PRESENCE:
        if (chat_event_active(ev)) {
            printf("presence: %s online\n", chat_event_user(ev));
        } else if (chat_event_last_seen_ms(ev) > 0) {
            time_t t = (time_t)(chat_event_last_seen_ms(ev) / 1000);
            char buf[64];
            struct tm tm;
            strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
            printf("presence: %s offline, last seen %s\n", chat_event_user(ev), buf);
        } else {
            printf("presence: %s offline\n", chat_event_user(ev));
        }
        return 1;
    case CHAT_EVENT_AUTH_FAILED:
        printf("authentication failed: %s\n", chat_event_message(ev));
        return 1;
    default:
        return 0;
    }
}

/* ---- commands ---------------------------------------------------------------------------- */

static int cmd_send(chat_client *c, const struct opts *o, struct waiter *w)
{
    if ((o->to != NULL) == (o->has_conv != 0))
        return usage_error("send needs exactly one of --to USER and --conv ID");
    if (o->npos < 2)
        return usage_error("send needs a TEXT");
    char *text = join(o->pos + 1, o->npos - 1);
    if (!text) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return EXIT_FAIL;
    }
    char *cmid = NULL;
    int rc = o->to ? chat_client_send_text_to(&cmid, c, o->to, text, strlen(text))
                   : chat_client_send_text(&cmid, c, o->conv, text, strlen(text));
    free(text);
    if (rc != CHAT_OK) {
        print_lib_error("send", rc);
        return rc == CHAT_EINVAL ? EXIT_USAGE : EXIT_FAIL;
    }
    chat_event *ev = NULL;
    int ex = wait_for(c, w, now_ms() + o->timeout_s * 1000, match_cmid, cmid, &ev,
                      "the server's ack");
    if (ex == EXIT_TIMEOUT && o->cache)
        fprintf(stderr, "%s: message %s stays in the outbox of %s\n", prog, cmid, o->cache);
    chat_string_free(cmid);
    if (ex != EXIT_OK)
        return ex;
    if (chat_event_type(ev) == CHAT_EVENT_SEND_FAILED) {
        fprintf(stderr, "%s: send refused: %s (%s)\n", prog, chat_event_message(ev),
                chat_error_name(chat_event_code(ev)));
        chat_event_free(ev);
        return EXIT_FAIL;
    }
    printf("%" PRIu64 "\n", chat_event_seq(ev));
    if (!o->quiet)
        fprintf(stderr, "sent to conv %" PRIu64 " as #%" PRIu64 "\n", chat_event_conv(ev),
                chat_event_seq(ev));
    chat_event_free(ev);
    return EXIT_OK;
}

static int cmd_history(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (!o->has_conv)
        return usage_error("history needs --conv ID");
    if (o->npos > 1)
        return usage_error("history takes no argument like %s", o->pos[1]);
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    for (int attempt = 0;; attempt++) {
        chat_msg_list *l = NULL;
        uint64_t req = 0;
        int rc = chat_client_history(&l, &req, c, o->conv, o->before, o->limit);
        if (rc != CHAT_OK) {
            print_lib_error("history", rc);
            return EXIT_FAIL;
        }
        if (chat_msg_list_complete(l) || req == 0 || attempt == 3) {
            print_msg_list(l, 0);
            chat_msg_list_free(l);
            return EXIT_OK;
        }
        chat_msg_list_free(l);
        chat_event *ev = NULL;
        ex = wait_for(c, w, deadline, match_request, &req, &ev, "history from the server");
        if (ex != EXIT_OK)
            return ex;
        int code = chat_event_code(ev);
        if (code != CHAT_OK) {
            fprintf(stderr, "%s: history: %s (%s)\n", prog, chat_event_message(ev),
                    chat_error_name(code));
            chat_event_free(ev);
            return EXIT_FAIL;
        }
        chat_event_free(ev);
    }
}

static int print_convs(chat_client *c)
{
    chat_conv_list *l = NULL;
    int rc = chat_client_convs(&l, c);
    if (rc != CHAT_OK) {
        print_lib_error("convs", rc);
        return EXIT_FAIL;
    }
    for (size_t i = 0; i < chat_conv_list_count(l); i++) {
        int group = chat_conv_list_kind(l, i) == CHAT_CONV_GROUP;
        printf("%" PRIu64 "\t%s%s\t%" PRIu64 "%s\n", chat_conv_list_id(l, i), group ? "#" : "",
               group ? chat_conv_list_title(l, i) : chat_conv_list_peer(l, i),
               chat_conv_list_unread(l, i),
               chat_conv_list_role(l, i) == CHAT_ROLE_NONE ? "\t(left)" : "");
    }
    chat_conv_list_free(l);
    return EXIT_OK;
}

static int cmd_convs(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos > 1)
        return usage_error("convs takes no argument like %s", o->pos[1]);
    int ex = wait_synced(c, w, now_ms() + o->timeout_s * 1000);
    return ex != EXIT_OK ? ex : print_convs(c);
}

static int wait_result(chat_client *c, struct waiter *w, int64_t deadline, uint64_t req,
                       const char *what, uint64_t *out_conv)
{
    chat_event *ev = NULL;
    int ex = wait_for(c, w, deadline, match_request, &req, &ev, what);
    if (ex != EXIT_OK)
        return ex;
    int code = chat_event_code(ev);
    if (code != CHAT_OK) {
        fprintf(stderr, "%s: %s refused: %s (%s)\n", prog, what, chat_event_message(ev),
                chat_error_name(code));
        ex = EXIT_FAIL;
    } else if (out_conv) {
        *out_conv = chat_event_conv(ev);
    }
    chat_event_free(ev);
    return ex;
}

static int cmd_group_create(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos < 3)
        return usage_error("group-create needs TITLE and at least one USER");
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    uint64_t req = 0, conv = 0;
    const char *const *users = o->pos + 2;
    size_t n = (size_t)(o->npos - 2);
    int rc = o->id ? chat_client_group_create_id(&req, c, o->id, o->pos[1], users, n)
                   : chat_client_group_create(&req, c, o->pos[1], users, n);
    if (rc != CHAT_OK) {
        print_lib_error("group-create", rc);
        return EXIT_FAIL;
    }
    ex = wait_result(c, w, deadline, req, "group-create", &conv);
    if (ex == EXIT_OK)
        printf("%" PRIu64 "\n", conv);
    return ex;
}

/* ---- media ------------------------------------------------------------------------------ */

struct progress {
    const char *what;
    uint64_t stop_after;
    uint64_t first; /* the first "done" reported: above 0 when resuming */
    int quiet, reported;
    int last_pct;
};

static int on_progress(uint64_t done, uint64_t total, void *ud)
{
    struct progress *p = ud;
    if (!p->reported) {
        p->reported = 1;
        p->first = done;
    }
    int pct = total ? (int)(done * 100 / total) : 100;
    if (!p->quiet && (pct != p->last_pct || done == total)) {
        fprintf(stderr, "\r%s: %3d%% (%" PRIu64 " of %" PRIu64 " bytes)", p->what, pct, done,
                total);
        if (done == total)
            fputc('\n', stderr);
        p->last_pct = pct;
    }
    if (p->stop_after && done >= p->stop_after && done < total) {
        if (!p->quiet)
            fputc('\n', stderr);
        return 1;
    }
    return 0;
}

static int transfer_error(const char *what, int rc, const struct progress *p)
{
    if (rc == CHAT_EUSER) {
        fprintf(stderr, "%s: %s interrupted; run the same command again to resume\n", prog,
                what);
        return EXIT_FAIL;
    }
    (void)p;
    print_lib_error(what, rc);
    return rc == CHAT_EAUTH ? EXIT_AUTH : EXIT_FAIL;
}

/* A JSON string value of a flat object, without escapes (ids and URLs). */
static int json_str(const char *js, const char *key, char *out, size_t size)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(js, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    const char *end = strchr(p, '"');
    if (!end || (size_t)(end - p) >= size)
        return -1;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return 0;
}

static void json_escape(char *out, size_t size, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < size; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20) {
            n += (size_t)snprintf(out + n, size - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    out[n] = '\0';
}

static int cmd_send_file(chat_client *c, const struct opts *o, struct waiter *w)
{
    if ((o->to != NULL) == (o->has_conv != 0))
        return usage_error("send-file needs exactly one of --to USER and --conv ID");
    if (o->npos != 2)
        return usage_error("send-file needs one FILE");
    const char *path = o->pos[1];
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    struct progress p = {"upload", o->stop_after, 0, o->quiet, 0, -1};
    char *id = NULL;
    const char *mime = o->mime ? o->mime : "application/octet-stream";
    int rc = chat_client_upload_file(&id, c, path, mime, on_progress, &p);
    if (rc != CHAT_OK)
        return transfer_error("upload", rc, &p);
    if (!o->quiet && p.first > 0)
        fprintf(stderr, "resumed at byte %" PRIu64 "\n", p.first);
    FILE *f = fopen(path, "rb");
    long size = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    if (f)
        fclose(f);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    char name[600], emime[600], media[1600];
    json_escape(name, sizeof name, base);
    json_escape(emime, sizeof emime, mime);
    snprintf(media, sizeof media, "{\"id\":\"%s\",\"mime\":\"%s\",\"size\":%ld,\"name\":\"%s\"}",
             id, emime, size, name);
    char *cmid = NULL;
    rc = o->to ? chat_client_send_media_to(&cmid, c, o->to, media)
               : chat_client_send_media(&cmid, c, o->conv, media);
    if (rc != CHAT_OK) {
        chat_string_free(id);
        print_lib_error("send-file", rc);
        return EXIT_FAIL;
    }
    chat_event *ev = NULL;
    ex = wait_for(c, w, now_ms() + o->timeout_s * 1000, match_cmid, cmid, &ev, "the server's ack");
    chat_string_free(cmid);
    if (ex == EXIT_OK && chat_event_type(ev) == CHAT_EVENT_SEND_FAILED) {
        fprintf(stderr, "%s: send refused: %s (%s)\n", prog, chat_event_message(ev),
                chat_error_name(chat_event_code(ev)));
        ex = EXIT_FAIL;
    } else if (ex == EXIT_OK) {
        printf("%s\t%" PRIu64 "\n", id, chat_event_seq(ev));
    }
    chat_event_free(ev);
    chat_string_free(id);
    return ex;
}

static int cmd_download(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos != 3)
        return usage_error("download needs MEDIA_ID and FILE");
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    uint64_t req = 0;
    int rc = chat_client_media_url(&req, c, o->pos[1]);
    if (rc != CHAT_OK) {
        print_lib_error("download", rc);
        return EXIT_FAIL;
    }
    chat_event *ev = NULL;
    ex = wait_for(c, w, deadline, match_request, &req, &ev, "the media URL");
    if (ex != EXIT_OK)
        return ex;
    char url[2048];
    if (chat_event_code(ev) != CHAT_OK || json_str(chat_event_json(ev), "url", url, sizeof url)) {
        fprintf(stderr, "%s: media URL refused: %s (%s)\n", prog, chat_event_message(ev),
                chat_error_name(chat_event_code(ev)));
        chat_event_free(ev);
        return EXIT_FAIL;
    }
    chat_event_free(ev);
    struct progress p = {"download", o->stop_after, 0, o->quiet, 0, -1};
    rc = chat_client_download(c, url, o->pos[1], o->pos[2], on_progress, &p);
    if (rc != CHAT_OK)
        return transfer_error("download", rc, &p);
    if (!o->quiet && p.first > 0)
        fprintf(stderr, "resumed at byte %" PRIu64 "\n", p.first);
    printf("%s\n", o->pos[2]);
    return EXIT_OK;
}

static int cmd_listen(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos > 1)
        return usage_error("listen takes no argument like %s", o->pos[1]);
    (void)w;
    int64_t end = o->seconds > 0 ? now_ms() + (int64_t)o->seconds * 1000 : INT64_MAX;
    for (;;) {
        int64_t left = end - now_ms();
        if (left <= 0)
            return EXIT_OK;
        chat_event *ev = NULL;
        int rc = chat_client_wait_event(&ev, c, left > 500 ? 500 : (int)left);
        if (rc == CHAT_ETIMEDOUT)
            continue;
        if (rc != CHAT_OK) {
            print_lib_error("waiting for events", rc);
            return EXIT_FAIL;
        }
        int type = chat_event_type(ev);
        print_event(ev);
        if (type == CHAT_EVENT_MESSAGE && o->mark_read)
            chat_client_mark_read(c, chat_event_conv(ev), chat_event_seq(ev));
        chat_event_free(ev);
        if (type == CHAT_EVENT_AUTH_FAILED) {
            fprintf(stderr, "%s: authentication failed\n", prog);
            return EXIT_AUTH;
        }
    }
}

/* ---- interactive mode -------------------------------------------------------------------- */

struct session {
    chat_client *c;
    uint64_t conv;         /* the open conversation, 0 none */
    char to[128];          /* "/to USER": sends go to this user until the ack names a conv */
    char me[128];
    char pending_cmid[64]; /* the last send to `to`, whose SENT opens its conversation */
};

static void show_history(struct session *s, int limit)
{
    chat_msg_list *l = NULL;
    uint64_t req = 0;
    int rc = chat_client_history(&l, &req, s->c, s->conv, 0, limit);
    if (rc != CHAT_OK) {
        print_lib_error("history", rc);
        return;
    }
    print_msg_list(l, 0);
    if (!chat_msg_list_complete(l) && req)
        printf("(fetching older messages; /history again to see them)\n");
    size_t n = chat_msg_list_count(l);
    if (n)
        chat_client_mark_read(s->c, s->conv, chat_msg_list_seq(l, n - 1));
    chat_msg_list_free(l);
}

static int split_words(char *line, const char **words, int max)
{
    int n = 0;
    for (char *tok = strtok(line, " \t"); tok && n < max; tok = strtok(NULL, " \t"))
        words[n++] = tok;
    return n;
}

static void interactive_help(void)
{
    printf("commands:\n"
           "  /convs                  conversations with unread counts\n"
           "  /open ID                open a conversation (shows its history, marks it read)\n"
           "  /to USER                talk to USER (direct conversation)\n"
           "  /history [N]            the last N messages of the open conversation\n"
           "  /typing                 tell the others you are typing\n"
           "  /who USER...            online / last seen\n"
           "  /group TITLE USER...    create a group      /add USER...  /remove USER...\n"
           "  /rename TITLE           /leave              /quit\n"
           "  anything else           is sent to the open conversation\n");
}

/* Returns 1 to quit. */
static int interactive_line(struct session *s, char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    if (n == 0)
        return 0;
    if (line[0] != '/') {
        char *cmid = NULL;
        int rc;
        if (s->conv)
            rc = chat_client_send_text(&cmid, s->c, s->conv, line, n);
        else if (s->to[0])
            rc = chat_client_send_text_to(&cmid, s->c, s->to, line, n);
        else {
            printf("no open conversation: /open ID or /to USER first\n");
            return 0;
        }
        if (rc != CHAT_OK)
            print_lib_error("send", rc);
        else if (!s->conv)
            snprintf(s->pending_cmid, sizeof s->pending_cmid, "%s", cmid);
        chat_string_free(cmid);
        return 0;
    }
    const char *w[MAX_POS];
    char *rest = strchr(line, ' ');
    char *rest_copy = rest ? strdup(rest + 1) : NULL;
    int nw = split_words(line, w, MAX_POS);
    uint64_t req = 0, v = 0;
    int rc = CHAT_OK;
    if (strcmp(w[0], "/quit") == 0 || strcmp(w[0], "/q") == 0) {
        free(rest_copy);
        return 1;
    } else if (strcmp(w[0], "/help") == 0) {
        interactive_help();
    } else if (strcmp(w[0], "/convs") == 0) {
        print_convs(s->c);
    } else if (strcmp(w[0], "/open") == 0 && nw == 2 && parse_u64(w[1], &v) == 0 && v) {
        s->conv = v;
        s->to[0] = '\0';
        show_history(s, 20);
    } else if (strcmp(w[0], "/to") == 0 && nw == 2) {
        snprintf(s->to, sizeof s->to, "%s", w[1]);
        s->conv = 0;
        chat_conv_list *l = NULL;
        if (chat_client_convs(&l, s->c) == CHAT_OK) {
            for (size_t i = 0; i < chat_conv_list_count(l); i++)
                if (chat_conv_list_kind(l, i) == CHAT_CONV_DIRECT &&
                    strcmp(chat_conv_list_peer(l, i), w[1]) == 0)
                    s->conv = chat_conv_list_id(l, i);
            chat_conv_list_free(l);
        }
        if (s->conv)
            show_history(s, 20);
        else
            printf("talking to %s (new conversation)\n", w[1]);
    } else if (strcmp(w[0], "/history") == 0 && s->conv) {
        int lim = 20;
        if (nw == 2 && parse_int(w[1], 1, 10000, &lim))
            lim = 20;
        show_history(s, lim);
    } else if (strcmp(w[0], "/typing") == 0 && s->conv) {
        rc = chat_client_typing(s->c, s->conv, 1);
    } else if (strcmp(w[0], "/who") == 0 && nw >= 2) {
        rc = chat_client_presence_query(&req, s->c, w + 1, (size_t)(nw - 1));
    } else if (strcmp(w[0], "/group") == 0 && nw >= 3) {
        rc = chat_client_group_create(&req, s->c, w[1], w + 2, (size_t)(nw - 2));
    } else if (strcmp(w[0], "/add") == 0 && nw >= 2 && s->conv) {
        rc = chat_client_group_add(&req, s->c, s->conv, w + 1, (size_t)(nw - 1));
    } else if (strcmp(w[0], "/remove") == 0 && nw >= 2 && s->conv) {
        rc = chat_client_group_remove(&req, s->c, s->conv, w + 1, (size_t)(nw - 1));
    } else if (strcmp(w[0], "/rename") == 0 && rest_copy && s->conv) {
        rc = chat_client_group_rename(&req, s->c, s->conv, rest_copy);
    } else if (strcmp(w[0], "/leave") == 0 && s->conv) {
        rc = chat_client_group_leave(&req, s->c, s->conv);
    } else {
        printf("unknown command or missing argument / open conversation; /help lists them\n");
    }
    if (rc != CHAT_OK)
        print_lib_error(w[0] + 1, rc);
    free(rest_copy);
    return 0;
}

static void interactive_event(struct session *s, const chat_event *ev)
{
    int type = chat_event_type(ev);
    uint64_t conv = chat_event_conv(ev);
    switch (type) {
    case CHAT_EVENT_ONLINE:
        snprintf(s->me, sizeof s->me, "%s", chat_event_user(ev));
        print_event(ev);
        break;
    case CHAT_EVENT_MESSAGE:
        if (strcmp(chat_event_user(ev), s->me) == 0 && chat_event_cmid(ev)[0] &&
            conv == s->conv)
            break; /* my own, from this device: SENT reports it */
        print_event(ev);
        if (conv == s->conv && s->conv)
            chat_client_mark_read(s->c, conv, chat_event_seq(ev));
        break;
    case CHAT_EVENT_SENT:
        if (s->pending_cmid[0] && strcmp(s->pending_cmid, chat_event_cmid(ev)) == 0) {
            s->conv = conv;
            s->pending_cmid[0] = '\0';
        }
        print_event(ev);
        break;
    case CHAT_EVENT_RECEIPT:
        if (conv == s->conv && strcmp(chat_event_user(ev), s->me) != 0) {
            if (chat_event_read(ev))
                printf("read by %s up to #%" PRIu64 "\n", chat_event_user(ev),
                       chat_event_read(ev));
            else
                printf("\xe2\x9c\x93\xe2\x9c\x93 delivered to %s up to #%" PRIu64 "\n",
                       chat_event_user(ev), chat_event_delivered(ev));
        }
        break;
    case CHAT_EVENT_TYPING:
        if (chat_event_active(ev) && strcmp(chat_event_user(ev), s->me) != 0)
            printf("%s is typing\xe2\x80\xa6\n", chat_event_user(ev));
        break;
    case CHAT_EVENT_RESULT:
        if (chat_event_code(ev) != CHAT_OK)
            printf("request %" PRIu64 " failed: %s (%s)\n", chat_event_request(ev),
                   chat_event_message(ev), chat_error_name(chat_event_code(ev)));
        else if (conv)
            printf("ok (conv %" PRIu64 ")\n", conv);
        break;
    case CHAT_EVENT_CONV:
    case CHAT_EVENT_CONNECTING:
    case CHAT_EVENT_HISTORY:
        break;
    default:
        print_event(ev);
        break;
    }
}

/* Leaving: give what is still in the outbox until the deadline to be acked, so a line typed
 * just before /quit (or the end of piped input) is not dropped silently. */
static int finish_session(struct session *s, int64_t deadline, int cached)
{
    size_t left = 0;
    while (chat_client_outbox_count(&left, s->c) == CHAT_OK && left > 0 && now_ms() < deadline) {
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, s->c, 100) == CHAT_OK) {
            interactive_event(s, ev);
            chat_event_free(ev);
        }
    }
    fflush(stdout);
    if (left == 0)
        return EXIT_OK;
    fprintf(stderr, "%s: %zu message(s) not acked yet; %s\n", prog, left,
            cached ? "they stay in the cache and go out with the next run"
                   : "they are lost (no --cache)");
    return EXIT_TIMEOUT;
}

static int cmd_interactive(chat_client *c, const struct opts *o)
{
    struct session s;
    memset(&s, 0, sizeof s);
    s.c = c;
    int efd = chat_client_event_fd(c);
    if (efd < 0) {
        print_lib_error("event fd", efd);
        return EXIT_FAIL;
    }
    printf("chat-cli interactive; /help for commands\n");
    /* stdin is read with read(2) into our own buffer (stdio's would hide buffered lines from
     * poll); every complete line is handled at once. */
    static char buf[2 * 16384 + 2];
    size_t have = 0;
    int stdin_open = 1;
    for (;;) {
        fflush(stdout);
        struct pollfd p[2] = {{.fd = efd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
        int r = poll(p, stdin_open ? 2 : 1, 1000);
        if (r < 0 && errno != EINTR)
            return EXIT_FAIL;
        chat_event *ev = NULL;
        int auth_failed = 0;
        while (chat_client_next_event(&ev, c) == CHAT_OK) {
            interactive_event(&s, ev);
            auth_failed |= chat_event_type(ev) == CHAT_EVENT_AUTH_FAILED;
            chat_event_free(ev);
        }
        if (auth_failed)
            return EXIT_AUTH;
        if (!stdin_open || !(p[1].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        ssize_t n = read(0, buf + have, sizeof buf - 1 - have);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0) { /* end of input: handle a last unterminated line, then quit */
            buf[have] = '\0';
            if (have)
                interactive_line(&s, buf);
            return finish_session(&s, now_ms() + o->timeout_s * 1000, o->cache != NULL);
        }
        have += (size_t)n;
        buf[have] = '\0';
        char *start = buf, *nl;
        while ((nl = memchr(start, '\n', have - (size_t)(start - buf))) != NULL) {
            *nl = '\0';
            if (interactive_line(&s, start))
                return finish_session(&s, now_ms() + o->timeout_s * 1000, o->cache != NULL);
            start = nl + 1;
        }
        have -= (size_t)(start - buf);
        memmove(buf, start, have);
        if (have == sizeof buf - 1) { /* an overlong line: drop it */
            printf("line too long, dropped\n");
            have = 0;
        }
    }
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct opts o;
    int ex = parse_args(&o, argc, argv);
    if (ex >= 0)
        return ex;
    const char *cmd = o.npos ? o.pos[0] : NULL;
    static const char *const cmds[] = {"send",   "history",   "convs",   "group-create",
                                       "listen", "send-file", "download"};
    int known = cmd == NULL;
    for (size_t i = 0; cmd && i < sizeof cmds / sizeof cmds[0]; i++)
        known |= strcmp(cmd, cmds[i]) == 0;
    if (!known)
        return usage_error("unknown command %s", cmd);
    if (cmd && strcmp(cmd, "send") != 0 && strcmp(cmd, "send-file") != 0 &&
        (o.to || (o.has_conv && strcmp(cmd, "history"))))
        return usage_error("--to/--conv do not apply to %s", cmd);
    if (o.id && (!cmd || strcmp(cmd, "group-create") != 0))
        return usage_error("--id applies to group-create only");

    chat_client *c = NULL;
    ex = open_client(&c, &o);
    if (ex != EXIT_OK)
        return ex;
    struct waiter w;
    memset(&w, 0, sizeof w);
    if (!cmd)
        ex = cmd_interactive(c, &o);
    else if (strcmp(cmd, "send") == 0)
        ex = cmd_send(c, &o, &w);
    else if (strcmp(cmd, "history") == 0)
        ex = cmd_history(c, &o, &w);
    else if (strcmp(cmd, "convs") == 0)
        ex = cmd_convs(c, &o, &w);
    else if (strcmp(cmd, "group-create") == 0)
        ex = cmd_group_create(c, &o, &w);
    else if (strcmp(cmd, "send-file") == 0)
        ex = cmd_send_file(c, &o, &w);
    else if (strcmp(cmd, "download") == 0)
        ex = cmd_download(c, &o, &w);
    else
        ex = cmd_listen(c, &o, &w);
    chat_client_free(c);
    return ex;
}
