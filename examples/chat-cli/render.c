/* How things read: messages (text, media, group events) as sentences, the marks of my
 * messages, events as lines, the conversation list. Whatever a peer chose goes through
 * sb_add_safe. */
#include "cli.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

const char *status_mark(int st)
{
    switch (st) {
    case CHAT_MSG_STATUS_SENDING: return "\xe2\x80\xa6";               /* … */
    case CHAT_MSG_STATUS_SENT: return "\xe2\x9c\x93";                 /* ✓ */
    case CHAT_MSG_STATUS_DELIVERED: return "\xe2\x9c\x93\xe2\x9c\x93"; /* ✓✓ */
    case CHAT_MSG_STATUS_READ: return "read";
    case CHAT_MSG_STATUS_FAILED: return "failed";
    default: return "-";
    }
}

void render_mark(struct strbuf *b, int st, size_t read_count, size_t others)
{
    sb_adds(b, status_mark(st));
    if (others > 1 && (st == CHAT_MSG_STATUS_SENT || st == CHAT_MSG_STATUS_DELIVERED))
        sb_addf(b, " %zu/%zu read", read_count, others);
}

/* before + "bob", "bob and carol", "bob, carol and dave"; skip is left out (the author of a
 * "created": "alice created the group with bob"). Nothing when no name is left. */
static void add_names(struct strbuf *b, const cJSON *arr, const char *skip, const char *before)
{
    int n = 0, i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!skip || !cJSON_IsString(it) || strcmp(it->valuestring, skip) != 0)
            n++;
    }
    cJSON_ArrayForEach(it, arr)
    {
        if (skip && cJSON_IsString(it) && strcmp(it->valuestring, skip) == 0)
            continue;
        sb_adds(b, i == 0 ? before : i == n - 1 ? " and " : ", ");
        sb_adds_safe(b, cJSON_IsString(it) ? it->valuestring : "?");
        i++;
    }
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A membership or title change, after its author: "added dave", "renamed the group to …". */
static void add_group_event(struct strbuf *b, const cJSON *ev, const char *author)
{
    const char *type = jstr(ev, "type");
    const cJSON *users = cJSON_GetObjectItemCaseSensitive(ev, "users");
    const char *title = jstr(ev, "title");
    if (!type) {
        sb_adds(b, "changed the group");
    } else if (strcmp(type, "created") == 0) {
        sb_adds(b, "created the group \"");
        sb_adds_safe(b, title ? title : "");
        sb_adds(b, "\"");
        add_names(b, users, author, " with ");
    } else if (strcmp(type, "renamed") == 0) {
        sb_adds(b, "renamed the group to \"");
        sb_adds_safe(b, title ? title : "");
        sb_adds(b, "\"");
    } else if (strcmp(type, "added") == 0 || strcmp(type, "removed") == 0) {
        sb_adds(b, type);
        add_names(b, users, NULL, " ");
    } else if (strcmp(type, "left") == 0) {
        sb_adds(b, "left the group");
    } else if (strcmp(type, "role") == 0) {
        const char *role = jstr(ev, "role");
        sb_adds(b, "made ");
        sb_adds_safe(b, jstr(ev, "user") ? jstr(ev, "user") : "?");
        sb_adds(b, role && strcmp(role, "owner") == 0 ? " the owner" : " ");
        if (!role || strcmp(role, "owner") != 0)
            sb_adds_safe(b, role ? role : "?");
    } else {
        sb_adds(b, "changed the group (");
        sb_adds_safe(b, type);
        sb_adds(b, ")");
    }
}

int media_fields(const char *json, char *id, size_t id_size, char *name, size_t name_size,
                 double *size)
{
    cJSON *o = json && *json ? cJSON_Parse(json) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "media");
    int rc = -1;
    if (cJSON_IsObject(m)) {
        const char *i = jstr(m, "id"), *n = jstr(m, "name");
        const cJSON *sz = cJSON_GetObjectItemCaseSensitive(m, "size");
        if (id)
            snprintf(id, id_size, "%s", i ? i : "");
        if (name)
            snprintf(name, name_size, "%s", n ? n : "");
        if (size)
            *size = cJSON_IsNumber(sz) ? sz->valuedouble : -1;
        rc = 0;
    }
    cJSON_Delete(o);
    return rc;
}

void safe_file_name(char *out, size_t size, const char *name)
{
    const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
    struct strbuf b = {0};
    sb_adds_safe(&b, base);
    const char *s = b.s ? b.s : "";
    if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0 || s[0] == '-')
        s = "";
    snprintf(out, size, "%s", s);
    sb_free(&b);
}

/* name quoted for a shell when it needs it */
static void add_shell_word(struct strbuf *b, const char *s)
{
    if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+") ==
                  strlen(s)) {
        sb_adds(b, s);
        return;
    }
    sb_adds(b, "'");
    for (; *s; s++) {
        if (*s == '\'')
            sb_adds(b, "'\\''");
        else
            sb_add(b, s, 1);
    }
    sb_adds(b, "'");
}

/* A media message, after its sender: "sent cat.jpg (image/jpeg, 47.1 KiB); …how to get it" */
static void add_media(struct strbuf *b, const cJSON *m, uint64_t seq, int style)
{
    const char *id = jstr(m, "id"), *name = jstr(m, "name"), *mime = jstr(m, "mime");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(m, "size");
    sb_adds(b, "sent ");
    sb_adds_safe(b, name && *name ? name : "a file");
    sb_adds(b, " (");
    if (mime && *mime) {
        sb_adds_safe(b, mime);
        sb_adds(b, ", ");
    }
    if (cJSON_IsNumber(size) && size->valuedouble >= 0)
        sb_add_size(b, size->valuedouble);
    else
        sb_adds(b, "size unknown");
    sb_adds(b, ")");
    if (style == STYLE_LIVE) {
        sb_addf(b, "; /download %" PRIu64 " saves it", seq);
    } else if (id) {
        char file[256];
        safe_file_name(file, sizeof file, name ? name : "");
        sb_adds(b, "; get it with: chat-cli download ");
        sb_adds_safe(b, id);
        sb_adds(b, " ");
        add_shell_word(b, *file ? file : "FILE");
    }
}

/* The body of a message: its text, or a sentence for what is not text. Returns 1 when the
 * body is a sentence that follows the sender's name ("alice added dave"), 0 for text. */
static int add_body(struct strbuf *b, int kind, const char *text, size_t len, const char *json,
                    uint64_t seq, int style)
{
    if (kind == CHAT_MSG_TEXT) {
        sb_add_safe(b, text, len);
        return 0;
    }
    cJSON *o = json && *json ? cJSON_Parse(json) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "media");
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
    int sentence = 1;
    if (kind == CHAT_MSG_MEDIA && cJSON_IsObject(m)) {
        add_media(b, m, seq, style);
    } else if (kind == CHAT_MSG_EVENT && cJSON_IsObject(ev)) {
        add_group_event(b, ev, jstr(o, "from"));
    } else if (kind == CHAT_MSG_MEDIA && text && len) { /* in the outbox: the file name */
        sb_adds(b, "sends ");
        sb_add_safe(b, text, len);
    } else {
        sb_adds(b, "sent a message this version cannot show");
    }
    cJSON_Delete(o);
    return sentence;
}

void render_message(struct strbuf *b, const char *from, int kind, const char *text,
                    size_t len, const char *json, uint64_t seq, int style)
{
    sb_adds_safe(b, from);
    struct strbuf body = {0};
    int sentence = add_body(&body, kind, text, len, json, seq, style);
    sb_adds(b, sentence ? " " : ": ");
    if (body.s)
        sb_add(b, body.s, body.len);
    sb_free(&body);
}

/* " [👍 2, ❤️ 1]" from the C API's reactions of a message ([{"emoji","users"}]). */
static void add_reactions(struct strbuf *b, const char *json)
{
    cJSON *arr = json && *json ? cJSON_Parse(json) : NULL;
    const cJSON *g;
    int n = 0;
    cJSON_ArrayForEach(g, arr)
    {
        const char *emoji = jstr(g, "emoji");
        int users = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(g, "users"));
        if (!emoji || users <= 0)
            continue;
        sb_adds(b, n++ ? ", " : " [");
        sb_adds_safe(b, emoji);
        sb_addf(b, " %d", users);
    }
    if (n)
        sb_adds(b, "]");
    cJSON_Delete(arr);
}

/* Message i of l as it is now: a tombstone "(deleted)", or its body, with "[thread #3] " and
 * "↪#12 " (a reply) before it and " (edited)" and its reactions after. Returns 1 when the
 * body is a sentence that follows the sender's name. */
static int add_list_body(struct strbuf *b, const chat_msg_list *l, size_t i, int style)
{
    uint64_t seq = chat_msg_list_seq(l, i);
    if (chat_msg_list_thread(l, i))
        sb_addf(b, "[thread #%" PRIu64 "] ", chat_msg_list_thread(l, i));
    if (chat_msg_list_deleted(l, i)) {
        sb_adds(b, "(deleted)");
        return 0;
    }
    if (chat_msg_list_reply_to(l, i))
        sb_addf(b, "\xe2\x86\xaa#%" PRIu64 " ", chat_msg_list_reply_to(l, i));
    size_t len = 0;
    const char *text = chat_msg_list_text(l, i, &len);
    int sentence = add_body(b, chat_msg_list_kind(l, i), text, len, chat_msg_list_json(l, i),
                            seq, style);
    if (chat_msg_list_edited_ms(l, i))
        sb_adds(b, " (edited)");
    add_reactions(b, chat_msg_list_reactions(l, i));
    return sentence;
}

void render_list_message(struct strbuf *b, const chat_msg_list *l, size_t i, int style)
{
    sb_adds_safe(b, chat_msg_list_from(l, i));
    struct strbuf body = {0};
    int sentence = add_list_body(&body, l, i, style);
    sb_adds(b, sentence && !chat_msg_list_thread(l, i) && !chat_msg_list_reply_to(l, i)
                   ? " "
                   : ": ");
    if (body.s)
        sb_add(b, body.s, body.len);
    sb_free(&body);
}

/* seq <TAB> sender <TAB> mark <TAB> text, one line per message (the history command). */
void print_msg_list(const chat_msg_list *l)
{
    struct strbuf b = {0};
    for (size_t i = 0; i < chat_msg_list_count(l); i++) {
        sb_reset(&b);
        sb_addf(&b, "%" PRIu64 "\t", chat_msg_list_seq(l, i));
        sb_adds_safe(&b, chat_msg_list_from(l, i));
        sb_adds(&b, "\t");
        render_mark(&b, chat_msg_list_status(l, i), chat_msg_list_read_count(l, i),
                    chat_msg_list_others(l, i));
        sb_adds(&b, "\t");
        add_list_body(&b, l, i, STYLE_SCRIPT);
        puts(b.s);
    }
    sb_free(&b);
}

void render_hit(struct strbuf *b, conv_id conv, uint64_t seq, const char *from, int kind,
                const char *text, size_t len, const char *json)
{
    sb_addf(b, CONV_FMT "\t%" PRIu64 "\t", CONV_ARG(conv), seq);
    sb_adds_safe(b, from);
    sb_adds(b, "\t");
    add_body(b, kind, text, len, json, seq, STYLE_SCRIPT);
}

void render_update(struct strbuf *b, const chat_event *ev)
{
    uint64_t seq = chat_event_seq(ev);
    if (chat_event_type(ev) == CHAT_EVENT_EXPIRED) {
        sb_addf(b, "#%" PRIu64 " expired", seq);
        return;
    }
    size_t len = 0;
    const char *text = chat_event_text(ev, &len);
    sb_adds_safe(b, chat_event_user(ev));
    switch (chat_event_kind(ev)) {
    case CHAT_MSG_EDIT:
        sb_addf(b, " edited #%" PRIu64 ": ", seq);
        sb_add_safe(b, text, len);
        break;
    case CHAT_MSG_DELETE:
        sb_addf(b, " deleted #%" PRIu64, seq);
        break;
    case CHAT_MSG_REACT:
        sb_adds(b, chat_event_active(ev) ? " reacted " : " took back ");
        sb_add_safe(b, text, len);
        sb_addf(b, chat_event_active(ev) ? " to #%" PRIu64 : " on #%" PRIu64, seq);
        break;
    default:
        sb_adds(b, "'s account was deleted: their messages are erased");
        break;
    }
}

static void add_last_seen(struct strbuf *b, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    char buf[64];
    struct tm tm;
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", localtime_r(&t, &tm));
    sb_addf(b, ", last seen %s", buf);
}

/* One line per event, for listen. Returns 1 when printed. */
int print_event(const chat_event *ev)
{
    struct strbuf b = {0};
    size_t len = 0;
    const char *text;
    switch (chat_event_type(ev)) {
    case CHAT_EVENT_ONLINE:
        sb_adds(&b, "online as ");
        sb_adds_safe(&b, chat_event_user(ev));
        sb_adds(&b, " (device ");
        sb_adds_safe(&b, chat_event_device(ev));
        sb_adds(&b, ")");
        break;
    case CHAT_EVENT_OFFLINE:
        sb_adds(&b, "offline: ");
        sb_adds_safe(&b, chat_event_message(ev));
        sb_addf(&b, " (%s), retry in %" PRId64 " ms", chat_error_name(chat_event_code(ev)),
                chat_event_retry_ms(ev));
        break;
    case CHAT_EVENT_SYNCED:
        sb_adds(&b, "synced");
        break;
    case CHAT_EVENT_MESSAGE:
        text = chat_event_text(ev, &len);
        sb_addf(&b, "[conv " CONV_FMT " #%" PRIu64 "] ", CONV_ARG(chat_event_conv(ev)),
                chat_event_seq(ev));
        render_message(&b, chat_event_user(ev), chat_event_kind(ev), text, len,
                       chat_event_json(ev), chat_event_seq(ev), STYLE_SCRIPT);
        break;
    case CHAT_EVENT_SENT:
        sb_addf(&b, "\xe2\x9c\x93 sent #%" PRIu64 " in conv " CONV_FMT, chat_event_seq(ev),
                CONV_ARG(chat_event_conv(ev)));
        break;
    case CHAT_EVENT_SEND_FAILED:
        sb_adds(&b, "send failed: ");
        sb_adds_safe(&b, chat_event_message(ev));
        sb_addf(&b, " (%s)", chat_error_name(chat_event_code(ev)));
        break;
    case CHAT_EVENT_RECEIPT:
        sb_addf(&b, "receipt conv " CONV_FMT ": ", CONV_ARG(chat_event_conv(ev)));
        sb_adds_safe(&b, chat_event_user(ev));
        sb_addf(&b, " delivered #%" PRIu64 " read #%" PRIu64, chat_event_delivered(ev),
                chat_event_read(ev));
        break;
    case CHAT_EVENT_TYPING:
        sb_addf(&b, "conv " CONV_FMT ": ", CONV_ARG(chat_event_conv(ev)));
        sb_adds_safe(&b, chat_event_user(ev));
        sb_adds(&b, chat_event_active(ev) ? " is typing\xe2\x80\xa6" : " stopped typing");
        break;
    case CHAT_EVENT_PRESENCE:
        sb_adds(&b, "presence: ");
        sb_adds_safe(&b, chat_event_user(ev));
        sb_adds(&b, chat_event_active(ev) ? " online" : " offline");
        if (!chat_event_active(ev) && chat_event_last_seen_ms(ev) > 0)
            add_last_seen(&b, chat_event_last_seen_ms(ev));
        break;
    case CHAT_EVENT_AUTH_FAILED:
        sb_adds(&b, "authentication failed: ");
        sb_adds_safe(&b, chat_event_message(ev));
        break;
    case CHAT_EVENT_UPDATED:
    case CHAT_EVENT_EXPIRED:
        sb_addf(&b, "[conv " CONV_FMT "] ", CONV_ARG(chat_event_conv(ev)));
        render_update(&b, ev);
        break;
    default:
        return 0;
    }
    puts(b.s ? b.s : "");
    sb_free(&b);
    return 1;
}

void render_conv(struct strbuf *b, const chat_conv_list *l, size_t i, int human)
{
    const char *sep = human ? "  " : "\t";
    int group = chat_conv_list_kind(l, i) == CHAT_CONV_GROUP;
    sb_addf(b, CONV_FMT "%s%s", CONV_ARG(chat_conv_list_id(l, i)), sep, group ? "#" : "");
    sb_adds_safe(b, group ? chat_conv_list_title(l, i) : chat_conv_list_peer(l, i));
    sb_addf(b, "%s%" PRIu64 "%s", sep, chat_conv_list_unread(l, i), human ? " unread" : "");
    if (chat_conv_list_role(l, i) == CHAT_ROLE_NONE)
        sb_addf(b, "%s(left)", sep);
}

/* id <TAB> peer or #title <TAB> unread [<TAB> (left)], one line per conversation. */
int print_convs(chat_client *c)
{
    chat_conv_list *l = NULL;
    int rc = chat_client_convs(&l, c);
    if (rc != CHAT_OK) {
        print_lib_error("convs", rc);
        return EXIT_FAIL;
    }
    struct strbuf b = {0};
    for (size_t i = 0; i < chat_conv_list_count(l); i++) {
        sb_reset(&b);
        render_conv(&b, l, i, 0);
        puts(b.s);
    }
    sb_free(&b);
    chat_conv_list_free(l);
    return EXIT_OK;
}

void conv_label(chat_client *c, conv_id conv, struct strbuf *out, int *is_group)
{
    chat_conv_list *l = NULL;
    int found = 0;
    if (is_group)
        *is_group = 0;
    if (chat_client_convs(&l, c) == CHAT_OK) {
        for (size_t i = 0; i < chat_conv_list_count(l) && !found; i++) {
            if ((conv_id)chat_conv_list_id(l, i) != conv)
                continue;
            int group = chat_conv_list_kind(l, i) == CHAT_CONV_GROUP;
            const char *name = group ? chat_conv_list_title(l, i) : chat_conv_list_peer(l, i);
            if (!*name)
                break;
            if (group)
                sb_adds(out, "#");
            sb_adds_safe(out, name);
            if (is_group)
                *is_group = group;
            found = 1;
        }
        chat_conv_list_free(l);
    }
    if (!found)
        sb_addf(out, "conv " CONV_FMT, CONV_ARG(conv));
}
