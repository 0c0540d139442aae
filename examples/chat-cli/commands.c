/* The commands for scripts: one request, a wait bounded by --timeout, records on stdout. */
#include "cli.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

int cmd_send(chat_client *c, const struct opts *o, struct waiter *w)
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
        fprintf(stderr, "sent to conv " CONV_FMT " as #%" PRIu64 "\n",
                CONV_ARG(chat_event_conv(ev)), chat_event_seq(ev));
    chat_event_free(ev);
    return EXIT_OK;
}

int cmd_history(chat_client *c, const struct opts *o, struct waiter *w)
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
            print_msg_list(l);
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

int cmd_convs(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos > 1)
        return usage_error("convs takes no argument like %s", o->pos[1]);
    int ex = wait_synced(c, w, now_ms() + o->timeout_s * 1000);
    return ex != EXIT_OK ? ex : print_convs(c);
}

int cmd_group_create(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos < 3)
        return usage_error("group-create needs TITLE and at least one USER");
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    uint64_t req = 0;
    conv_id conv = 0;
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
        printf(CONV_FMT "\n", CONV_ARG(conv));
    return ex;
}

int cmd_listen(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos > 1)
        return usage_error("listen takes no argument like %s", o->pos[1]);
    (void)w;
    int64_t end = o->seconds > 0 ? now_ms() + (int64_t)o->seconds * 1000 : INT64_MAX;
    for (;;) {
        if (end - now_ms() <= 0)
            return EXIT_OK;
        chat_event *ev = NULL;
        int got = next_event(c, end, &ev);
        if (got < 0)
            return EXIT_FAIL;
        if (got == 0)
            continue;
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
