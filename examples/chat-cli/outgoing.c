/* My messages in the interactive session: a line sent shows as … until the server acks it,
 * then ✓ in place (or a line of its own); /history lists the conversation, then what is still
 * queued, each message once. */
#include "session.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void history_line(struct session *s, struct strbuf *b, const chat_msg_list *l, size_t i)
{
    sb_reset(b);
    sb_addf(b, "#%" PRIu64 " ", chat_msg_list_seq(l, i));
    render_list_message(b, l, i, STYLE_LIVE);
    int st = chat_msg_list_status(l, i);
    if (st != CHAT_MSG_STATUS_NONE) {
        sb_adds(b, "  ");
        render_mark(b, st, chat_msg_list_read_count(l, i), chat_msg_list_others(l, i));
    }
    (void)s;
}

/*
 * The open conversation's last messages, then what I sent to it that the server has not
 * acked yet (…). The ack moves a message from the outbox into the history in one cache
 * transaction, which can fall between the two reads. So the outbox is read first and an
 * entry is left out when the history read after it holds its cmid: acked before the history
 * was read, it is listed there; acked after, it is listed once, as queued. (History read
 * first, a message acked in between would be in neither list; the outbox read first and
 * listed whole, it would be in both. Asking the entry's status afterwards instead of
 * looking in the history is no better: acked after the history read, it would be dropped.)
 */
static int in_list(const chat_msg_list *l, const char *cmid)
{
    for (size_t i = 0; i < chat_msg_list_count(l); i++)
        if (strcmp(chat_msg_list_cmid(l, i), cmid) == 0)
            return 1;
    return 0;
}

void show_history(struct session *s, int limit, int fetch)
{
    chat_msg_list *ob = NULL, *l = NULL;
    uint64_t req = 0;
    if (chat_client_outbox(&ob, s->c) != CHAT_OK)
        ob = NULL;
    int rc = chat_client_history(&l, &req, s->c, s->conv, 0, limit);
    if (rc != CHAT_OK) {
        say_error("history", rc);
        chat_msg_list_free(ob);
        return;
    }
    if (!chat_msg_list_complete(l) && req && fetch) {
        s->history_req = req; /* shown when it arrives: HISTORY */
        s->history_limit = limit;
        say("fetching history\xe2\x80\xa6");
        chat_msg_list_free(l);
        chat_msg_list_free(ob);
        return;
    }
    struct strbuf b = {0};
    size_t n = chat_msg_list_count(l);
    if (n == 0 && chat_msg_list_complete(l))
        say("(no messages yet)");
    for (size_t i = 0; i < n; i++) {
        history_line(s, &b, l, i);
        say(b.s);
    }
    for (size_t i = 0; ob && i < chat_msg_list_count(ob); i++) {
        int st = chat_msg_list_status(ob, i);
        if ((conv_id)chat_msg_list_conv(ob, i) != s->conv || in_list(l, chat_msg_list_cmid(ob, i)))
            continue;
        size_t len = 0;
        const char *text = chat_msg_list_text(ob, i, &len);
        sb_reset(&b);
        sb_adds(&b, "#- ");
        sb_adds_safe(&b, chat_msg_list_from(ob, i));
        sb_adds(&b, ": ");
        sb_add_safe(&b, text, len);
        sb_adds(&b, "  ");
        sb_adds(&b, st == CHAT_MSG_STATUS_SENDING ? "\xe2\x80\xa6 queued" : "failed");
        say(b.s);
    }
    if (!chat_msg_list_complete(l))
        say("(older messages are not in the cache; /history again once online)");
    sb_free(&b);
    if (n)
        chat_client_mark_read(s->c, s->conv, chat_msg_list_seq(l, n - 1));
    chat_msg_list_free(l);
    chat_msg_list_free(ob);
}

/* ---- sending ------------------------------------------------------------------------------ */

void send_line(struct session *s, const char *line)
{
    if (!s->conv && !s->to[0]) {
        say("no open conversation: /open ID or /to USER first");
        return;
    }
    char *cmid = NULL;
    size_t n = strlen(line);
    int rc = s->conv ? chat_client_send_text(&cmid, s->c, s->conv, line, n)
                     : chat_client_send_text_to(&cmid, s->c, s->to, line, n);
    if (rc != CHAT_OK) {
        say_error("send", rc);
        return;
    }
    struct pending *np = realloc(s->pend, (s->npend + 1) * sizeof *np);
    struct strbuf b = {0};
    where(s, &b, s->conv, s->to, 0);
    sb_adds_safe(&b, s->me[0] ? s->me : "you");
    sb_adds(&b, ": ");
    size_t at = b.len;
    sb_add_safe(&b, line, n);
    /* the typed line, marked: … until acked (the echo of the input goes, the message stays) */
    screen_erase_input();
    screen_linef("\xe2\x80\xa6 %s", b.s ? b.s : "");
    if (np) {
        s->pend = np;
        struct pending *p = &s->pend[s->npend++];
        memset(p, 0, sizeof *p);
        snprintf(p->cmid, sizeof p->cmid, "%s", cmid);
        snprintf(p->to, sizeof p->to, "%s", s->conv ? "" : s->to);
        p->pos = screen_last_line();
        p->text = strdup(b.s ? b.s + at : "");
    }
    sb_free(&b);
    chat_string_free(cmid);
}

static struct pending *find_pending(struct session *s, const char *cmid)
{
    for (size_t i = 0; i < s->npend; i++)
        if (strcmp(s->pend[i].cmid, cmid) == 0)
            return &s->pend[i];
    return NULL;
}

static void drop_pending(struct session *s, struct pending *p)
{
    free(p->text);
    *p = s->pend[--s->npend];
}

void on_sent(struct session *s, const chat_event *ev)
{
    conv_id conv = chat_event_conv(ev);
    struct pending *p = find_pending(s, chat_event_cmid(ev));
    if (p && p->to[0] && !s->conv && strcmp(p->to, s->to) == 0)
        open_conv(s, conv); /* the first message to USER made the conversation */
    if (p && screen_mark(p->pos, "\xe2\x9c\x93") == 0) {
        drop_pending(s, p);
        return;
    }
    struct strbuf b = {0};
    sb_addf(&b, "\xe2\x9c\x93 sent #%" PRIu64 " in conv " CONV_FMT, chat_event_seq(ev),
            CONV_ARG(conv));
    if (p) {
        sb_adds(&b, ": ");
        sb_adds(&b, p->text ? p->text : "");
        drop_pending(s, p);
    }
    say(b.s);
    sb_free(&b);
}

void on_send_failed(struct session *s, const chat_event *ev)
{
    struct pending *p = find_pending(s, chat_event_cmid(ev));
    struct strbuf b = {0};
    sb_adds(&b, "\xe2\x9c\x97 not sent");
    if (p) {
        screen_mark(p->pos, "\xe2\x9c\x97"); /* ✗ */
        sb_adds(&b, " (");
        sb_adds(&b, p->text ? p->text : "");
        sb_adds(&b, ")");
        drop_pending(s, p);
    }
    sb_adds(&b, ": ");
    sb_adds_safe(&b, chat_event_message(ev));
    sb_addf(&b, " (%s)", chat_error_name(chat_event_code(ev)));
    say(b.s);
    sb_free(&b);
}
