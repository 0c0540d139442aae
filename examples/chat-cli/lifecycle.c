/* The commands for scripts that change sent messages (edit, delete, react) and search: on the
 * server (waits for the answer) or in the cache (--local, offline). */
#include "cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* The SEQ argument (pos[1]) of a command that names a message of --conv; -1 when it is missing
 * or bad (said). */
static int message_arg(const struct opts *o, const char *cmd, int min_pos, uint64_t *seq)
{
    if (!o->has_conv) {
        usage_error("%s needs --conv ID", cmd);
        return -1;
    }
    if (o->npos < min_pos || parse_u64(o->pos[1], seq) || *seq == 0) {
        usage_error("%s needs a message SEQ%s", cmd, min_pos > 2 ? " and more" : "");
        return -1;
    }
    return 0;
}

/* Issue a change once synced, wait for its answer, print the change's own seq. */
static int change(chat_client *c, const struct opts *o, struct waiter *w, const char *what,
                  int (*issue)(uint64_t *req, chat_client *c, const struct opts *o, void *arg),
                  void *arg)
{
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    int ex = wait_synced(c, w, deadline);
    if (ex != EXIT_OK)
        return ex;
    uint64_t req = 0;
    int rc = issue(&req, c, o, arg);
    if (rc != CHAT_OK) {
        print_lib_error(what, rc);
        return rc == CHAT_EINVAL ? EXIT_USAGE : EXIT_FAIL;
    }
    chat_event *ev = NULL;
    if ((ex = wait_answer(c, w, deadline, req, what, &ev)) != EXIT_OK)
        return ex;
    printf("%" PRIu64 "\n", chat_event_seq(ev));
    if (!o->quiet)
        fprintf(stderr, "%s: done, as #%" PRIu64 " in conv " CONV_FMT "\n", what,
                chat_event_seq(ev), CONV_ARG(o->conv));
    chat_event_free(ev);
    return EXIT_OK;
}

struct edit_arg {
    uint64_t seq;
    char *text;
};

static int issue_edit(uint64_t *req, chat_client *c, const struct opts *o, void *arg)
{
    struct edit_arg *a = arg;
    return chat_client_edit(req, c, o->conv, a->seq, a->text, strlen(a->text));
}

int cmd_edit(chat_client *c, const struct opts *o, struct waiter *w)
{
    struct edit_arg a = {0};
    if (message_arg(o, "edit", 3, &a.seq))
        return EXIT_USAGE;
    struct strbuf t = {0};
    for (int i = 2; i < o->npos; i++) {
        if (i > 2)
            sb_adds(&t, " ");
        sb_adds(&t, o->pos[i]);
    }
    a.text = t.s;
    int ex = a.text ? change(c, o, w, "edit", issue_edit, &a) : EXIT_FAIL;
    sb_free(&t);
    return ex;
}

static int issue_delete(uint64_t *req, chat_client *c, const struct opts *o, void *arg)
{
    return chat_client_delete(req, c, o->conv, *(uint64_t *)arg);
}

int cmd_delete(chat_client *c, const struct opts *o, struct waiter *w)
{
    uint64_t seq = 0;
    if (message_arg(o, "delete", 2, &seq))
        return EXIT_USAGE;
    if (o->npos > 2)
        return usage_error("delete takes no argument like %s", o->pos[2]);
    return change(c, o, w, "delete", issue_delete, &seq);
}

struct react_arg {
    uint64_t seq;
    const char *emoji;
};

static int issue_react(uint64_t *req, chat_client *c, const struct opts *o, void *arg)
{
    struct react_arg *a = arg;
    return chat_client_react(req, c, o->conv, a->seq, a->emoji, !o->off);
}

int cmd_react(chat_client *c, const struct opts *o, struct waiter *w)
{
    struct react_arg a = {0};
    if (message_arg(o, "react", 3, &a.seq))
        return EXIT_USAGE;
    if (o->npos > 3)
        return usage_error("react takes one EMOJI");
    a.emoji = o->pos[2];
    return change(c, o, w, "react", issue_react, &a);
}

static int kind_of(const char *name)
{
    if (name && strcmp(name, "media") == 0)
        return CHAT_MSG_MEDIA;
    if (name && strcmp(name, "event") == 0)
        return CHAT_MSG_EVENT;
    return CHAT_MSG_TEXT;
}

/* The server's search answer, one line per message; the cursor of the next page on stderr. */
static void print_answer(const char *json, const struct opts *o)
{
    cJSON *a = cJSON_Parse(json);
    const cJSON *m;
    struct strbuf b = {0};
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(a, "messages"))
    {
        const cJSON *conv = cJSON_GetObjectItemCaseSensitive(m, "conv");
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(m, "seq");
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(m, "from");
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(m, "kind");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(m, "text");
        char *item = cJSON_PrintUnformatted(m);
        const char *t = cJSON_IsString(text) ? text->valuestring : "";
        sb_reset(&b);
        render_hit(&b, cJSON_IsNumber(conv) ? (conv_id)conv->valuedouble : 0,
                   cJSON_IsNumber(seq) ? (uint64_t)seq->valuedouble : 0,
                   cJSON_IsString(from) ? from->valuestring : "?",
                   kind_of(cJSON_IsString(kind) ? kind->valuestring : NULL), t, strlen(t),
                   item);
        cJSON_free(item);
        puts(b.s);
    }
    const cJSON *more = cJSON_GetObjectItemCaseSensitive(a, "more");
    const cJSON *cursor = cJSON_GetObjectItemCaseSensitive(a, "cursor");
    if (cJSON_IsTrue(more) && cJSON_IsNumber(cursor) && !o->quiet)
        fprintf(stderr, "more: the next page with --before %.0f\n", cursor->valuedouble);
    sb_free(&b);
    cJSON_Delete(a);
}

int cmd_search(chat_client *c, const struct opts *o, struct waiter *w)
{
    if (o->npos < 2)
        return usage_error("search needs WORDS");
    if (o->local && o->before)
        return usage_error("--before pages the server's search; --local answers one page");
    struct strbuf q = {0};
    for (int i = 1; i < o->npos; i++) {
        if (i > 1)
            sb_adds(&q, " ");
        sb_adds(&q, o->pos[i]);
    }
    int ex = EXIT_OK, rc;
    conv_id conv = o->has_conv ? o->conv : 0;
    if (o->local) {
        chat_msg_list *l = NULL;
        if ((rc = chat_client_search_local(&l, c, q.s, conv, o->limit)) != CHAT_OK) {
            print_lib_error("search", rc);
            ex = rc == CHAT_EINVAL ? EXIT_USAGE : EXIT_FAIL;
        }
        struct strbuf b = {0};
        for (size_t i = 0; l && i < chat_msg_list_count(l); i++) {
            size_t len = 0;
            const char *text = chat_msg_list_text(l, i, &len);
            sb_reset(&b);
            render_hit(&b, chat_msg_list_conv(l, i), chat_msg_list_seq(l, i),
                       chat_msg_list_from(l, i), chat_msg_list_kind(l, i), text, len,
                       chat_msg_list_json(l, i));
            puts(b.s);
        }
        sb_free(&b);
        chat_msg_list_free(l);
        sb_free(&q);
        return ex;
    }
    int64_t deadline = now_ms() + o->timeout_s * 1000;
    uint64_t req = 0;
    chat_event *ev = NULL;
    if ((ex = wait_synced(c, w, deadline)) != EXIT_OK) {
        /* nothing */
    } else if ((rc = chat_client_search(&req, c, q.s, conv, o->before, o->limit)) != CHAT_OK) {
        print_lib_error("search", rc);
        ex = rc == CHAT_EINVAL ? EXIT_USAGE : EXIT_FAIL;
    } else if ((ex = wait_answer(c, w, deadline, req, "search", &ev)) == EXIT_OK) {
        print_answer(chat_event_json(ev), o);
        chat_event_free(ev);
    }
    sb_free(&q);
    return ex;
}
