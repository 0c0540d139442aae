/* The interactive session: slash commands, live events as lines above the input, the state
 * of the connection and the open conversation in the prompt. All output goes through the
 * screen (screen.c), errors included: stderr would land inside the input line. */
#define _GNU_SOURCE
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A message I typed, until the server acks it: where its line is, to turn … into ✓. */
struct pending {
    char cmid[64];
    struct screen_pos pos;
    char to[128]; /* sent with /to before the conversation existed */
    char *text;   /* its text, made safe */
};

/* The watermarks of one member of the open conversation last shown. */
struct seen_receipt {
    char user[128];
    uint64_t delivered, read;
};

struct session {
    chat_client *c;
    const struct opts *o;
    conv_id conv;  /* the open conversation, 0 none */
    char to[128];  /* /to USER before that conversation exists */
    char label[256];
    char me[128], device[128];
    int state; /* ::chat_conn_state, as the last event said */
    int online_once, synced_once, offline_said, auth_failed;
    uint64_t group_req, who_req, history_req, url_req;
    int history_limit;
    char dl_id[160], dl_path[1024];
    struct pending *pend;
    size_t npend;
    struct seen_receipt seen[32];
    size_t nseen;
};

static void say(const char *s) { screen_line(s); }

static void say_error(const char *what, int rc)
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

static void update_prompt(struct session *s)
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

static void open_conv(struct session *s, conv_id conv)
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

static int is_me(const struct session *s, const char *user)
{
    return s->me[0] && strcmp(user, s->me) == 0;
}

/* Where a line belongs: "#5 " in the open conversation, "[#Team #5] " or "[bob #5] " in
 * another one, "[to bob] " before the conversation exists (seq 0: not known yet). */
static void where(struct session *s, struct strbuf *b, conv_id conv, const char *to,
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

/* ---- history ------------------------------------------------------------------------------ */

static void history_line(struct session *s, struct strbuf *b, const chat_msg_list *l, size_t i)
{
    size_t len = 0;
    const char *text = chat_msg_list_text(l, i, &len);
    uint64_t seq = chat_msg_list_seq(l, i);
    sb_reset(b);
    sb_addf(b, "#%" PRIu64 " ", seq);
    render_message(b, chat_msg_list_from(l, i), chat_msg_list_kind(l, i), text, len,
                   chat_msg_list_json(l, i), seq, STYLE_LIVE);
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

static void show_history(struct session *s, int limit, int fetch)
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

static void send_line(struct session *s, const char *line)
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

static void on_sent(struct session *s, const chat_event *ev)
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

static void on_send_failed(struct session *s, const chat_event *ev)
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

/* ---- downloads ---------------------------------------------------------------------------- */

static void start_download(struct session *s, uint64_t seq, const char *file)
{
    chat_msg_list *l = NULL;
    if (chat_client_history(&l, NULL, s->c, s->conv, seq + 1, 1) != CHAT_OK)
        l = NULL;
    char id[160] = "", name[512] = "";
    int ok = l && chat_msg_list_count(l) == 1 && chat_msg_list_seq(l, 0) == seq &&
             chat_msg_list_kind(l, 0) == CHAT_MSG_MEDIA &&
             media_fields(chat_msg_list_json(l, 0), id, sizeof id, name, sizeof name, NULL) == 0 &&
             id[0];
    chat_msg_list_free(l);
    if (!ok) {
        screen_linef("#%" PRIu64 " is not a file in this conversation's cache", seq);
        return;
    }
    if (file)
        snprintf(s->dl_path, sizeof s->dl_path, "%s", file);
    else
        safe_file_name(s->dl_path, sizeof s->dl_path, name);
    if (!s->dl_path[0] || (!file && access(s->dl_path, F_OK) == 0)) {
        struct strbuf b = {0};
        sb_adds_safe(&b, s->dl_path[0] ? s->dl_path : name);
        screen_linef("%s%s: give a file name, /download %" PRIu64 " FILE", b.s ? b.s : "",
                     s->dl_path[0] ? " exists" : " is no usable file name", seq);
        sb_free(&b);
        return;
    }
    snprintf(s->dl_id, sizeof s->dl_id, "%s", id);
    int rc = chat_client_media_url(&s->url_req, s->c, id);
    if (rc != CHAT_OK)
        say_error("download", rc);
}

/* The signed URL came: download (this blocks the session; progress on the status line). */
static void finish_download(struct session *s, const chat_event *ev)
{
    s->url_req = 0;
    cJSON *ans = chat_event_code(ev) == CHAT_OK ? cJSON_Parse(chat_event_json(ev)) : NULL;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(ans, "url");
    struct strbuf b = {0};
    sb_adds_safe(&b, s->dl_path);
    if (!cJSON_IsString(url)) {
        struct strbuf m = {0};
        sb_adds_safe(&m, chat_event_message(ev));
        screen_linef("download of %s refused: %s (%s)", b.s, m.s ? m.s : "",
                     chat_error_name(chat_event_code(ev)));
        sb_free(&m);
    } else {
        struct progress p = {"download", 0, 0, 0, 0, -1, 1};
        int rc = chat_client_download(s->c, url->valuestring, s->dl_id, s->dl_path, on_progress,
                                      &p);
        if (rc == CHAT_OK)
            screen_linef("saved %s", b.s);
        else
            say_error("download", rc);
    }
    sb_free(&b);
    cJSON_Delete(ans);
}

/* ---- slash commands ----------------------------------------------------------------------- */

static int split_words(char *line, const char **words, int max)
{
    int n = 0;
    for (char *tok = strtok(line, " \t"); tok && n < max; tok = strtok(NULL, " \t"))
        words[n++] = tok;
    return n;
}

static void show_help(void)
{
    static const char *const lines[] = {
        "commands:",
        "  /convs                  conversations with unread counts",
        "  /open ID|NAME           open a conversation (bob, #Team or its id): its history,",
        "                          marked read",
        "  /to USER                talk to USER (direct conversation)",
        "  /history [N]            the last N messages of the open conversation",
        "  /download SEQ [FILE]    save the file of message SEQ (default: its name, here)",
        "  /typing                 tell the others you are typing",
        "  /who USER...            online / last seen",
        "  /group TITLE USER...    create a group and open it",
        "  /add USER...  /remove USER...  /rename TITLE  /leave     (the open group)",
        "  /quit                   leave (after the outbox is sent, up to --timeout)",
        "  anything else           is sent to the open conversation (//text sends /text)",
        "keys: arrows, Ctrl-A/E, Ctrl-W, Ctrl-U edit; Up/Down history; Ctrl-L redraw;",
        "      Ctrl-D on an empty line quits",
    };
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        say(lines[i]);
}

static void show_convs(struct session *s)
{
    chat_conv_list *l = NULL;
    int rc = chat_client_convs(&l, s->c);
    if (rc != CHAT_OK) {
        say_error("convs", rc);
        return;
    }
    struct strbuf b = {0};
    size_t n = chat_conv_list_count(l);
    if (n == 0)
        say("no conversations yet: /to USER starts one");
    for (size_t i = 0; i < n; i++) {
        sb_reset(&b);
        render_conv(&b, l, i, 1);
        say(b.s);
    }
    sb_free(&b);
    chat_conv_list_free(l);
}

static void show_unread(struct session *s)
{
    chat_conv_list *l = NULL;
    if (chat_client_convs(&l, s->c) != CHAT_OK)
        return;
    struct strbuf b = {0};
    int shown = 0;
    for (size_t i = 0; i < chat_conv_list_count(l); i++) {
        uint64_t u = chat_conv_list_unread(l, i);
        if (!u)
            continue;
        sb_adds(&b, shown ? ", " : "unread: ");
        if (shown++ == 8) {
            sb_adds(&b, "\xe2\x80\xa6");
            break;
        }
        conv_label(s->c, chat_conv_list_id(l, i), &b, NULL);
        sb_addf(&b, " (conv " CONV_FMT ") %" PRIu64, CONV_ARG(chat_conv_list_id(l, i)), u);
    }
    say(shown ? b.s : "no unread messages");
    if (shown)
        say("/open ID reads a conversation; /convs lists them all");
    sb_free(&b);
    chat_conv_list_free(l);
}

/* "/open 12", "/open bob", "/open #Team" */
static conv_id find_conv(struct session *s, const char *what)
{
    conv_id id = 0;
    if (parse_conv(what, &id) == 0)
        return id;
    chat_conv_list *l = NULL;
    if (chat_client_convs(&l, s->c) != CHAT_OK)
        return 0;
    for (size_t i = 0; i < chat_conv_list_count(l) && !id; i++) {
        int group = chat_conv_list_kind(l, i) == CHAT_CONV_GROUP;
        const char *name = group ? chat_conv_list_title(l, i) : chat_conv_list_peer(l, i);
        const char *want = group && what[0] == '#' ? what + 1 : what;
        if (*name && strcmp(name, want) == 0)
            id = chat_conv_list_id(l, i);
    }
    chat_conv_list_free(l);
    return id;
}

static conv_id direct_with(struct session *s, const char *user)
{
    chat_conv_list *l = NULL;
    conv_id id = 0;
    if (chat_client_convs(&l, s->c) != CHAT_OK)
        return 0;
    for (size_t i = 0; i < chat_conv_list_count(l) && !id; i++)
        if (chat_conv_list_kind(l, i) == CHAT_CONV_DIRECT &&
            strcmp(chat_conv_list_peer(l, i), user) == 0)
            id = chat_conv_list_id(l, i);
    chat_conv_list_free(l);
    return id;
}

/* Returns 1 to quit. */
static int command(struct session *s, char *line)
{
    char *rest = strchr(line, ' ');
    char *rest_copy = rest ? strdup(rest + 1) : NULL;
    const char *w[MAX_POS];
    int nw = split_words(line, w, MAX_POS);
    const char *cmd = w[0];
    uint64_t req = 0, v = 0;
    int rc = CHAT_OK, quit = 0;
    const char *need_conv = NULL, *usage = NULL;
    if (strcmp(cmd, "/quit") == 0 || strcmp(cmd, "/q") == 0) {
        quit = 1;
    } else if (strcmp(cmd, "/help") == 0) {
        show_help();
    } else if (strcmp(cmd, "/convs") == 0) {
        show_convs(s);
    } else if (strcmp(cmd, "/open") == 0) {
        conv_id id = nw == 2 ? find_conv(s, w[1]) : 0;
        if (nw != 2)
            usage = "/open ID|NAME";
        else if (!id)
            say("no such conversation; /convs lists them");
        else {
            open_conv(s, id);
            show_history(s, 20, 1);
        }
    } else if (strcmp(cmd, "/to") == 0) {
        if (nw != 2) {
            usage = "/to USER";
        } else if ((v = direct_with(s, w[1])) != 0) {
            open_conv(s, v);
            show_history(s, 20, 1);
        } else {
            s->conv = 0;
            snprintf(s->to, sizeof s->to, "%s", w[1]);
            update_prompt(s);
            struct strbuf b = {0};
            sb_adds(&b, "talking to ");
            sb_adds_safe(&b, w[1]);
            sb_adds(&b, " (new conversation)");
            say(b.s);
            sb_free(&b);
        }
    } else if (strcmp(cmd, "/history") == 0) {
        int lim = 20;
        if (!s->conv)
            need_conv = cmd;
        else if (nw > 2 || (nw == 2 && parse_int(w[1], 1, 200, &lim)))
            usage = "/history [N], N up to 200";
        else
            show_history(s, lim, 1);
    } else if (strcmp(cmd, "/download") == 0) {
        if (!s->conv)
            need_conv = cmd;
        else if ((nw != 2 && nw != 3) || parse_u64(w[1][0] == '#' ? w[1] + 1 : w[1], &v))
            usage = "/download SEQ [FILE]";
        else
            start_download(s, v, nw == 3 ? w[2] : NULL);
    } else if (strcmp(cmd, "/typing") == 0) {
        if (!s->conv)
            need_conv = cmd;
        else
            rc = chat_client_typing(s->c, s->conv, 1);
    } else if (strcmp(cmd, "/who") == 0) {
        if (nw < 2)
            usage = "/who USER...";
        else if ((rc = chat_client_presence_query(&req, s->c, w + 1, (size_t)(nw - 1))) ==
                 CHAT_OK)
            s->who_req = req;
    } else if (strcmp(cmd, "/group") == 0) {
        if (nw < 3)
            usage = "/group TITLE USER...";
        else if ((rc = chat_client_group_create(&req, s->c, w[1], w + 2, (size_t)(nw - 2))) ==
                 CHAT_OK)
            s->group_req = req;
    } else if (strcmp(cmd, "/add") == 0 || strcmp(cmd, "/remove") == 0) {
        int add = cmd[1] == 'a';
        if (!s->conv)
            need_conv = cmd;
        else if (nw < 2)
            usage = add ? "/add USER..." : "/remove USER...";
        else
            rc = (add ? chat_client_group_add : chat_client_group_remove)(
                &req, s->c, s->conv, w + 1, (size_t)(nw - 1));
    } else if (strcmp(cmd, "/rename") == 0) {
        if (!s->conv)
            need_conv = cmd;
        else if (!rest_copy || !*rest_copy)
            usage = "/rename TITLE";
        else
            rc = chat_client_group_rename(&req, s->c, s->conv, rest_copy);
    } else if (strcmp(cmd, "/leave") == 0) {
        if (!s->conv)
            need_conv = cmd;
        else
            rc = chat_client_group_leave(&req, s->c, s->conv);
    } else {
        struct strbuf b = {0};
        sb_adds(&b, "unknown command ");
        sb_adds_safe(&b, cmd);
        sb_adds(&b, "; /help lists them");
        say(b.s);
        sb_free(&b);
    }
    if (usage)
        screen_linef("usage: %s", usage);
    if (need_conv)
        screen_linef("%s needs an open conversation: /open ID or /to USER first", need_conv);
    if (rc != CHAT_OK)
        say_error(cmd + 1, rc);
    free(rest_copy);
    return quit;
}

static int on_line(char *line, void *arg)
{
    struct session *s = arg;
    if (line[strspn(line, " \t")] == '\0') /* nothing to send */
        return 0;
    if (line[0] == '/' && line[1] != '/')
        return command(s, line);
    send_line(s, line[0] == '/' ? line + 1 : line);
    return 0;
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
