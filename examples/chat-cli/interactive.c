/* The interactive session: its loop, live events as lines above the input, the state of the
 * connection and the open conversation in the prompt (session.h says where the rest is). All
 * output goes through the screen (screen.c), errors included: stderr would land inside the
 * input line. */
#define _GNU_SOURCE
#include "session.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void say(const char *s) { screen_line(s); }

void say_error(const char *what, int rc)
{
    const chat_error_info *e = chat_error_last();
    struct strbuf b = {0};
    sb_addf(&b, "%s: %s (%s)", what, chat_strerror(rc), chat_error_name(rc));
    if (e && e->code == rc && e->message && *e->message) {
        sb_adds(&b, ": ");
        sb_adds_safe(&b, e->message);
    }
    say(b.s);
    sb_free(&b);
}

void update_prompt(struct session *s)
{
    struct strbuf b = {0};
    if (s->state != CHAT_CONN_ONLINE)
        sb_adds(&b, s->offline_said ? "(offline) " : "(connecting) ");
    if (s->conv)
        sb_adds(&b, s->label);
    else if (s->to[0]) {
        sb_adds(&b, "to ");
        sb_adds_safe(&b, s->to);
    } else
        sb_adds(&b, "chat");
    sb_adds(&b, "> ");
    screen_set_prompt(b.s);
    sb_free(&b);
}

void open_conv(struct session *s, conv_id conv)
{
    s->conv = conv;
    s->to[0] = '\0';
    s->nseen = 0;
    struct strbuf b = {0};
    conv_label(s->c, conv, &b, NULL);
    snprintf(s->label, sizeof s->label, "%s", b.s ? b.s : "");
    sb_free(&b);
    update_prompt(s);
}

int is_me(const struct session *s, const char *user)
{
    return s->me[0] && strcmp(user, s->me) == 0;
}

/* Where a line belongs: "#5 " in the open conversation, "[#Team #5] " or "[bob #5] " in
 * another one, "[to bob] " before the conversation exists (seq 0: not known yet). */
void where(struct session *s, struct strbuf *b, conv_id conv, const char *to,
                  uint64_t seq)
{
    if (!conv) {
        sb_adds(b, "[to ");
        sb_adds_safe(b, to ? to : "?");
        sb_adds(b, "] ");
    } else if (conv == s->conv) {
        if (seq)
            sb_addf(b, "#%" PRIu64 " ", seq);
    } else {
        sb_adds(b, "[");
        conv_label(s->c, conv, b, NULL);
        if (seq)
            sb_addf(b, " #%" PRIu64, seq);
        sb_adds(b, "] ");
    }
}

/* ---- events ------------------------------------------------------------------------------- */

/* Whether a message of mine has a seq in (from, to] of the open conversation (as cached). */
static int mine_between(struct session *s, uint64_t from, uint64_t to)
{
    chat_msg_list *l = NULL;
    uint64_t n = to - from < 200 ? to - from : 200;
    int mine = 0;
    if (!n || chat_client_history(&l, NULL, s->c, s->conv, to + 1, (int)n) != CHAT_OK)
        return 0;
    for (size_t i = 0; i < chat_msg_list_count(l) && !mine; i++)
        mine = chat_msg_list_seq(l, i) > from && is_me(s, chat_msg_list_from(l, i));
    chat_msg_list_free(l);
    return mine;
}

/* A member's watermark moved past a message of mine in the open conversation: say so. */
static void on_receipt(struct session *s, const chat_event *ev)
{
    const char *user = chat_event_user(ev);
    if ((conv_id)chat_event_conv(ev) != s->conv || is_me(s, user))
        return;
    struct seen_receipt *r = NULL;
    for (size_t i = 0; i < s->nseen && !r; i++)
        if (strcmp(s->seen[i].user, user) == 0)
            r = &s->seen[i];
    if (!r && s->nseen < sizeof s->seen / sizeof s->seen[0]) {
        r = &s->seen[s->nseen++];
        memset(r, 0, sizeof *r);
        snprintf(r->user, sizeof r->user, "%s", user);
    }
    struct strbuf b = {0};
    uint64_t was_read = r ? r->read : 0, was_delivered = r ? r->delivered : 0;
    if (chat_event_read(ev) > was_read && mine_between(s, was_read, chat_event_read(ev))) {
        sb_adds(&b, "read by ");
        sb_adds_safe(&b, user);
        sb_addf(&b, " up to #%" PRIu64, chat_event_read(ev));
    } else if (chat_event_delivered(ev) > was_delivered &&
               chat_event_read(ev) < chat_event_delivered(ev) &&
               mine_between(s, was_delivered, chat_event_delivered(ev))) {
        sb_adds(&b, "\xe2\x9c\x93\xe2\x9c\x93 delivered to ");
        sb_adds_safe(&b, user);
        sb_addf(&b, " up to #%" PRIu64, chat_event_delivered(ev));
    }
    if (r) {
        r->read = chat_event_read(ev) > r->read ? chat_event_read(ev) : r->read;
        r->delivered = chat_event_delivered(ev) > r->delivered ? chat_event_delivered(ev)
                                                                : r->delivered;
    }
    if (b.s)
        say(b.s);
    sb_free(&b);
}

static void on_result(struct session *s, const chat_event *ev)
{
    uint64_t req = chat_event_request(ev);
    int code = chat_event_code(ev);
    struct strbuf b = {0};
    if (req && req == s->url_req) {
        finish_download(s, ev);
        return;
    }
    if (req && req == s->who_req)
        s->who_req = 0;
    if (code != CHAT_OK) {
        sb_adds(&b, req == s->group_req ? "group not created: " : "refused: ");
        sb_adds_safe(&b, chat_event_message(ev));
        sb_addf(&b, " (%s)", chat_error_name(code));
        say(b.s);
    } else if (req && req == s->group_req) {
        open_conv(s, chat_event_conv(ev));
        sb_addf(&b, "group %s (conv " CONV_FMT ") created; it is open: what you type goes there",
                s->label, CONV_ARG(s->conv));
        say(b.s);
    }
    if (req == s->group_req)
        s->group_req = 0;
    sb_free(&b);
}

static void on_presence(struct session *s, const chat_event *ev)
{
    if (!s->who_req)
        return; /* only what /who asked for: contacts come and go all day */
    struct strbuf b = {0};
    sb_adds_safe(&b, chat_event_user(ev));
    if (chat_event_active(ev)) {
        sb_adds(&b, " is online");
    } else {
        sb_adds(&b, " is offline");
        if (chat_event_last_seen_ms(ev) > 0) {
            time_t t = (time_t)(chat_event_last_seen_ms(ev) / 1000);
            char when[64];
            struct tm tm;
            strftime(when, sizeof when, "%Y-%m-%d %H:%M", localtime_r(&t, &tm));
            sb_addf(&b, ", last seen %s", when);
        }
    }
    say(b.s);
    sb_free(&b);
}

static void on_event(struct session *s, const chat_event *ev)
{
    int type = chat_event_type(ev);
    conv_id conv = chat_event_conv(ev);
    struct strbuf b = {0};
    switch (type) {
    case CHAT_EVENT_CONNECTING:
        s->state = CHAT_CONN_CONNECTING;
        break;
    case CHAT_EVENT_ONLINE:
        s->state = CHAT_CONN_ONLINE;
        snprintf(s->me, sizeof s->me, "%s", chat_event_user(ev));
        snprintf(s->device, sizeof s->device, "%s", chat_event_device(ev));
        if (!s->online_once) {
            sb_adds(&b, "online as ");
            sb_adds_safe(&b, s->me);
            sb_adds(&b, " (device ");
            sb_adds_safe(&b, s->device);
            sb_adds(&b, ")");
            say(b.s);
        } else if (s->offline_said) {
            say("back online");
        }
        s->online_once = 1;
        s->offline_said = 0;
        break;
    case CHAT_EVENT_OFFLINE:
        s->state = CHAT_CONN_OFFLINE;
        if (!s->offline_said) { /* one line per outage, not one per retry */
            sb_adds(&b, "offline: ");
            sb_adds_safe(&b, chat_event_message(ev));
            sb_addf(&b, " (%s); retrying. What you send is queued (\xe2\x80\xa6) and goes "
                        "out once the server is back",
                    chat_error_name(chat_event_code(ev)));
            say(b.s);
            s->offline_said = 1;
        }
        break;
    case CHAT_EVENT_AUTH_FAILED:
        sb_adds(&b, "authentication failed: ");
        sb_adds_safe(&b, chat_event_message(ev));
        say(b.s);
        s->auth_failed = 1;
        break;
    case CHAT_EVENT_SYNCED:
        if (!s->synced_once) {
            say("synced");
            show_unread(s);
            if (s->conv) /* opened before the sync: the label may be known now */
                open_conv(s, s->conv);
        }
        s->synced_once = 1;
        break;
    case CHAT_EVENT_MESSAGE:
        /* the first sync brings what was missed: summed up by SYNCED, not printed */
        if (!s->synced_once)
            break;
        /* my own from this device: SENT reports it (the sync can bring it first when an
         * ack was lost) */
        if (is_me(s, chat_event_user(ev)) && chat_event_cmid(ev)[0] &&
            strcmp(chat_event_device(ev), s->device) == 0)
            break;
        {
            size_t len = 0;
            const char *text = chat_event_text(ev, &len);
            where(s, &b, conv, NULL, chat_event_seq(ev));
            render_message(&b, chat_event_user(ev), chat_event_kind(ev), text, len,
                           chat_event_json(ev), chat_event_seq(ev), STYLE_LIVE);
            say(b.s);
        }
        if (conv == s->conv && s->conv)
            chat_client_mark_read(s->c, conv, chat_event_seq(ev));
        break;
    case CHAT_EVENT_SENT:
        on_sent(s, ev);
        break;
    case CHAT_EVENT_SEND_FAILED:
        on_send_failed(s, ev);
        break;
    case CHAT_EVENT_RECEIPT:
        on_receipt(s, ev);
        break;
    case CHAT_EVENT_TYPING:
        if (conv == s->conv && chat_event_active(ev) && !is_me(s, chat_event_user(ev))) {
            sb_adds_safe(&b, chat_event_user(ev));
            sb_adds(&b, " is typing\xe2\x80\xa6");
            say(b.s);
        }
        break;
    case CHAT_EVENT_PRESENCE:
        on_presence(s, ev);
        break;
    case CHAT_EVENT_CONV:
        if (conv == s->conv && s->conv)
            open_conv(s, conv); /* a new title */
        break;
    case CHAT_EVENT_RESULT:
        on_result(s, ev);
        break;
    case CHAT_EVENT_UPDATED:
    case CHAT_EVENT_EXPIRED:
        if (!s->synced_once) /* what the first sync brings is in the history */
            break;
        where(s, &b, conv, NULL, 0);
        render_update(&b, ev);
        say(b.s);
        break;
    case CHAT_EVENT_HISTORY:
        if (chat_event_request(ev) == s->history_req && s->history_req) {
            s->history_req = 0;
            if (chat_event_code(ev) != CHAT_OK)
                say("(history not fetched: offline; what the cache has:)");
            show_history(s, s->history_limit, 0);
        }
        break;
    default:
        break;
    }
    sb_free(&b);
    update_prompt(s);
}

/* Leaving: give what is still in the outbox until the deadline to be acked, so a line typed
 * just before /quit (or the end of piped input) is not dropped silently. */
static int finish_session(struct session *s, int64_t deadline, int cached)
{
    size_t left = 0;
    while (chat_client_outbox_count(&left, s->c) == CHAT_OK && left > 0 && now_ms() < deadline) {
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, s->c, 100) == CHAT_OK) {
            on_event(s, ev);
            chat_event_free(ev);
        }
    }
    screen_close();
    if (left == 0)
        return EXIT_OK;
    fprintf(stderr, "%s: %zu message(s) not acked yet; %s\n", prog, left,
            cached ? "they stay in the cache and go out with the next run"
                   : "they are lost (no --cache)");
    return EXIT_TIMEOUT;
}

int cmd_interactive(chat_client *c, const struct opts *o)
{
    struct session s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.o = o;
    s.state = CHAT_CONN_CONNECTING;
    if (o->user)
        snprintf(s.me, sizeof s.me, "%s", o->user);
    int efd = chat_client_event_fd(c);
    if (efd < 0) {
        print_lib_error("event fd", efd);
        return EXIT_FAIL;
    }
    screen_open();
    say("chat-cli interactive; /help for commands");
    update_prompt(&s);
    int ex = -1;
    while (ex < 0) {
        screen_flush();
        struct pollfd p[2] = {{.fd = efd, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
        if (poll(p, 2, 1000) < 0 && errno != EINTR) {
            ex = EXIT_FAIL;
            break;
        }
        chat_event *ev = NULL;
        while (!s.auth_failed && chat_client_next_event(&ev, c) == CHAT_OK) {
            on_event(&s, ev);
            chat_event_free(ev);
        }
        if (s.auth_failed) {
            screen_close();
            ex = EXIT_AUTH;
        } else if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && screen_input(on_line, &s)) {
            ex = finish_session(&s, now_ms() + o->timeout_s * 1000, o->cache != NULL);
        }
    }
    screen_close();
    for (size_t i = 0; i < s.npend; i++)
        free(s.pend[i].text);
    free(s.pend);
    return ex;
}
