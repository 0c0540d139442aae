/* client-events: the C engine alone, for comparing bindings against it (bench/node-bench.mjs,
 * bindings/python/bench.py, run by bench/bindings-bench.sh).
 *
 *   client-events recv URL TOKEN N TAG       wait for SYNCED, print "ready", wait for a line on
 *                                            stdin (messages pile up in the queue meanwhile),
 *                                            then take events until N MESSAGE events whose text
 *                                            starts with TAG (earlier rounds' messages a sync
 *                                            may bring are not counted)
 *   client-events live URL TOKEN N TAG       the same without waiting: take the messages as
 *                                            they arrive
 *   client-events send URL TOKEN PEER N TAG  send N texts "TAG i" to PEER, wait for the last ack
 *   client-events sendcost N                 N chat_client_send_text_to calls on a client that
 *                                            is not started (in-memory outbox): the cost of a
 *                                            call
 *
 * Prints one RESULT line; CPU time is the whole process's (the engine's loop thread too). */
#include <chat/chat.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static chat_client *open_client(const char *url, const char *token, int start)
{
    chat_client_config *cfg = NULL;
    chat_client *c = NULL;
    int rc = chat_client_config_new(&cfg);
    if (!rc)
        rc = chat_client_config_set_server(cfg, url);
    if (!rc)
        rc = chat_client_config_set_token(cfg, token);
    if (!rc)
        rc = chat_client_new(&c, cfg);
    chat_client_config_free(cfg);
    if (!rc && start)
        rc = chat_client_start(c);
    if (rc) {
        fprintf(stderr, "client-events: %s\n", chat_error_last()->message);
        exit(1);
    }
    return c;
}

/* The next event of type, or exit after 30 s without one. */
static chat_event *wait_type(chat_client *c, int type)
{
    double end = now_s() + 30;
    while (now_s() < end) {
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, c, 100) != CHAT_OK)
            continue;
        if (chat_event_type(ev) == type)
            return ev;
        chat_event_free(ev);
    }
    fprintf(stderr, "client-events: no %s event within 30 s\n", chat_event_type_name(type));
    exit(1);
}

int main(int argc, char **argv)
{
    int live = argc == 6 && strcmp(argv[1], "live") == 0;
    if (live || (argc == 6 && strcmp(argv[1], "recv") == 0)) {
        long n = atol(argv[4]);
        const char *tag = argv[5];
        size_t tag_len = strlen(tag);
        chat_client *c = open_client(argv[2], argv[3], 1);
        chat_event_free(wait_type(c, CHAT_EVENT_SYNCED));
        printf("ready\n");
        fflush(stdout);
        char line[16];
        if (!live && !fgets(line, sizeof line, stdin))
            return 1;
        double t0 = 0, c0 = 0;
        for (long i = 0; i < n;) {
            chat_event *ev = wait_type(c, CHAT_EVENT_MESSAGE);
            size_t len = 0;
            const char *text = chat_event_text(ev, &len);
            if (text && len >= tag_len && memcmp(text, tag, tag_len) == 0 && i++ == 0) {
                t0 = now_s();
                c0 = cpu_s();
            }
            chat_event_free(ev);
        }
        double secs = now_s() - t0, cpu = cpu_s() - c0;
        printf("RESULT mode=%s events=%ld secs=%.3f events_per_s=%.0f cpu_us_per_event=%.2f\n",
               argv[1], n, secs, n > 1 ? (double)(n - 1) / secs : 0,
               n > 1 ? cpu * 1e6 / (double)(n - 1) : 0);
        chat_client_free(c);
        return 0;
    }
    if (argc == 7 && strcmp(argv[1], "send") == 0) {
        long n = atol(argv[5]);
        chat_client *c = open_client(argv[2], argv[3], 1);
        chat_event_free(wait_type(c, CHAT_EVENT_SYNCED));
        char *last = NULL;
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            char text[64];
            int len = snprintf(text, sizeof text, "%.40s %ld", argv[6], i);
            chat_string_free(last);
            last = NULL;
            if (chat_client_send_text_to(&last, c, argv[4], text, (size_t)len) != CHAT_OK) {
                fprintf(stderr, "client-events: send: %s\n", chat_error_last()->message);
                return 1;
            }
        }
        for (;;) {
            chat_event *ev = wait_type(c, CHAT_EVENT_SENT);
            int done = strcmp(chat_event_cmid(ev), last) == 0;
            chat_event_free(ev);
            if (done)
                break;
        }
        printf("RESULT mode=send msgs=%ld secs=%.3f\n", n, now_s() - t0);
        chat_string_free(last);
        chat_client_free(c);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "sendcost") == 0) {
        long n = atol(argv[2]);
        chat_client *c = open_client("ws://127.0.0.1:9/", "unused", 0);
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            char *cmid = NULL;
            if (chat_client_send_text_to(&cmid, c, "bob", "hello", 5) != CHAT_OK)
                return 1;
            chat_string_free(cmid);
        }
        double secs = now_s() - t0;
        printf("RESULT mode=sendcost calls=%ld us_per_call=%.2f\n", n, secs * 1e6 / (double)n);
        chat_client_free(c);
        return 0;
    }
    fprintf(stderr, "usage: client-events recv|live URL TOKEN N TAG | send URL TOKEN PEER N TAG | "
                    "sendcost N\n");
    return 2;
}
