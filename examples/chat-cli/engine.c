/* Starting the client engine, and waiting for its events with a deadline (the commands). */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void print_lib_error(const char *what, int rc)
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

int open_client(chat_client **out, const struct opts *o)
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

int next_event(chat_client *c, int64_t deadline, chat_event **out)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return 0;
    /* in slices, so that a deadline far away (listen: none) is still checked */
    int rc = chat_client_wait_event(out, c, left > 500 ? 500 : (int)left);
    if (rc == CHAT_ETIMEDOUT)
        return 0;
    if (rc != CHAT_OK) {
        print_lib_error("waiting for events", rc);
        return -1;
    }
    return 1;
}

/*
 * Wait until match(ev) holds for an event (returned in *out, owned by the caller), the
 * deadline passes (EXIT_TIMEOUT), or authentication fails (EXIT_AUTH). Messages are printed on
 * stderr. Other events are dropped.
 */
int wait_for(chat_client *c, struct waiter *w, int64_t deadline, match_fn match, void *arg,
             chat_event **out, const char *what)
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
        int got = next_event(c, deadline, &ev);
        if (got < 0)
            return EXIT_FAIL;
        if (got == 0)
            continue; /* the deadline is checked above */
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

int wait_synced(chat_client *c, struct waiter *w, int64_t deadline)
{
    chat_event *ev = NULL;
    int rc = wait_for(c, w, deadline, match_synced, NULL, &ev, "the connection and sync");
    chat_event_free(ev);
    return rc;
}

int match_cmid(const chat_event *ev, void *arg)
{
    int t = chat_event_type(ev);
    return (t == CHAT_EVENT_SENT || t == CHAT_EVENT_SEND_FAILED) &&
           strcmp(chat_event_cmid(ev), (const char *)arg) == 0;
}

int match_request(const chat_event *ev, void *arg)
{
    int t = chat_event_type(ev);
    return (t == CHAT_EVENT_RESULT || t == CHAT_EVENT_HISTORY) &&
           chat_event_request(ev) == *(const uint64_t *)arg;
}

int wait_answer(chat_client *c, struct waiter *w, int64_t deadline, uint64_t req,
                const char *what, chat_event **out)
{
    chat_event *ev = NULL;
    int ex = wait_for(c, w, deadline, match_request, &req, &ev, what);
    if (ex != EXIT_OK)
        return ex;
    int code = chat_event_code(ev);
    if (code != CHAT_OK) {
        fprintf(stderr, "%s: %s refused: %s (%s)\n", prog, what, chat_event_message(ev),
                chat_error_name(code));
        chat_event_free(ev);
        return EXIT_FAIL;
    }
    *out = ev;
    return EXIT_OK;
}

int wait_result(chat_client *c, struct waiter *w, int64_t deadline, uint64_t req,
                const char *what, conv_id *out_conv)
{
    chat_event *ev = NULL;
    int ex = wait_answer(c, w, deadline, req, what, &ev);
    if (ex != EXIT_OK)
        return ex;
    if (out_conv)
        *out_conv = chat_event_conv(ev);
    chat_event_free(ev);
    return EXIT_OK;
}
