/* The interactive session's slash commands (/open, /to, /history, /download, /group, /edit,
 * /search, …), the conversation list and the unread summary. */
#define _GNU_SOURCE
#include "session.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
void finish_download(struct session *s, const chat_event *ev)
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

/* /search: the cached messages holding every word, newest first. */
static void show_search(struct session *s, const char *query)
{
    chat_msg_list *l = NULL;
    int rc = chat_client_search_local(&l, s->c, query, 0, 20);
    if (rc != CHAT_OK) {
        say_error("search", rc);
        return;
    }
    struct strbuf b = {0};
    size_t n = chat_msg_list_count(l);
    if (n == 0)
        say("(nothing found in the cache)");
    for (size_t i = 0; i < n; i++) {
        sb_reset(&b);
        where(s, &b, chat_msg_list_conv(l, i), NULL, chat_msg_list_seq(l, i));
        render_list_message(&b, l, i, STYLE_LIVE);
        say(b.s);
    }
    sb_free(&b);
    chat_msg_list_free(l);
}

/* The words of rest after its first one ("/edit 12 new text": "new text"). */
static const char *after_first_word(const char *rest)
{
    if (!rest)
        return "";
    rest += strspn(rest, " \t");
    rest += strcspn(rest, " \t");
    return rest + strspn(rest, " \t");
}

static int parse_seq(const char *w, uint64_t *seq)
{
    return parse_u64(w[0] == '#' ? w + 1 : w, seq) || *seq == 0 ? -1 : 0;
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
        "  /edit SEQ TEXT          replace the text of my message SEQ",
        "  /delete SEQ             delete message SEQ for everyone",
        "  /react SEQ EMOJI        react to message SEQ (/unreact SEQ EMOJI takes it back)",
        "  /search WORDS...        the cached messages holding every word",
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

void show_unread(struct session *s)
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
    } else if (strcmp(cmd, "/edit") == 0) {
        const char *text = after_first_word(rest_copy);
        if (!s->conv)
            need_conv = cmd;
        else if (nw < 3 || parse_seq(w[1], &v))
            usage = "/edit SEQ TEXT";
        else
            rc = chat_client_edit(&req, s->c, s->conv, v, text, strlen(text));
    } else if (strcmp(cmd, "/delete") == 0) {
        if (!s->conv)
            need_conv = cmd;
        else if (nw != 2 || parse_seq(w[1], &v))
            usage = "/delete SEQ";
        else
            rc = chat_client_delete(&req, s->c, s->conv, v);
    } else if (strcmp(cmd, "/react") == 0 || strcmp(cmd, "/unreact") == 0) {
        if (!s->conv)
            need_conv = cmd;
        else if (nw != 3 || parse_seq(w[1], &v))
            usage = cmd[1] == 'r' ? "/react SEQ EMOJI" : "/unreact SEQ EMOJI";
        else
            rc = chat_client_react(&req, s->c, s->conv, v, w[2], cmd[1] == 'r');
    } else if (strcmp(cmd, "/search") == 0) {
        if (!rest_copy || nw < 2)
            usage = "/search WORDS...";
        else
            show_search(s, rest_copy);
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

int on_line(char *line, void *arg)
{
    struct session *s = arg;
    if (line[strspn(line, " \t")] == '\0') /* nothing to send */
        return 0;
    if (line[0] == '/' && line[1] != '/')
        return command(s, line);
    send_line(s, line[0] == '/' ? line + 1 : line);
    return 0;
}
