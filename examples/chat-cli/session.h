/* chat-cli's interactive session: its state, shared by interactive.c (the loop, live events,
 * the prompt), outgoing.c (my messages: … until acked, then ✓; /history with what is queued)
 * and slash.c (the slash commands). */
#ifndef CHAT_CLI_SESSION_H
#define CHAT_CLI_SESSION_H

#include "cli.h"

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

/* interactive.c */
void say(const char *s);
void say_error(const char *what, int rc);
void update_prompt(struct session *s);
void open_conv(struct session *s, conv_id conv);
int is_me(const struct session *s, const char *user);
void where(struct session *s, struct strbuf *b, conv_id conv, const char *to, uint64_t seq);

/* outgoing.c */
void show_history(struct session *s, int limit, int fetch);
void send_line(struct session *s, const char *line);
void on_sent(struct session *s, const chat_event *ev);
void on_send_failed(struct session *s, const chat_event *ev);

/* slash.c */
/* A line typed: a slash command, or a message to send. For screen_input (arg: the session). */
int on_line(char *line, void *arg);
void show_unread(struct session *s);
void finish_download(struct session *s, const chat_event *ev);

#endif /* CHAT_CLI_SESSION_H */
