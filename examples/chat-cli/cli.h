/* chat-cli: declarations shared by its files.
 *
 *   main.c         options, --help, dispatch to a command
 *   engine.c       starting the client engine, waiting for events with a deadline
 *   text.c         growable strings; other people's text made safe for a terminal
 *   render.c       how messages, media, group events, marks and events read
 *   commands.c     the commands for scripts: send, history, convs, group-create, listen
 *   media.c        send-file and download (progress, resume)
 *   lifecycle.c    edit, delete, react, search
 *   interactive.c  the interactive session: its loop, live events, the prompt
 *   outgoing.c     ... my messages (… then ✓) and /history with what is queued
 *   slash.c        ... the slash commands
 *   session.h      ... the session's state, shared by those three
 *   screen.c       the terminal: a libedit input line with output printed above it */
#ifndef CHAT_CLI_H
#define CHAT_CLI_H

#include <chat/chat.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2, EXIT_AUTH = 3, EXIT_TIMEOUT = 4 };

#define MAX_POS 64

extern const char *prog;

/* A conversation id as the client engine types it. Printed with CONV_FMT, parsed by
 * parse_conv: the only places that know its width and signedness. */
typedef chat_conv_id conv_id;
#define CONV_FMT "%lld"
#define CONV_ARG(c) ((long long)(c))

struct opts {
    const char *server, *token, *user, *password, *device, *cache, *ca_file;
    const char *to;
    conv_id conv;
    int has_conv;
    int limit;
    uint64_t before;
    int seconds;
    int timeout_s;
    int mark_read;
    int quiet;
    int local; /* search: the cache instead of the server */
    int off;   /* react: take the reaction back */
    const char *mime;
    const char *id;      /* group-create: client id that makes a retry safe */
    uint64_t stop_after; /* send-file/download: abort after this many bytes (to try a resume) */
    const char *pos[MAX_POS];
    int npos;
};

int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int parse_u64(const char *s, uint64_t *out);
int parse_int(const char *s, int min, int max, int *out);
int parse_conv(const char *s, conv_id *out);

/* ---- engine.c ---------------------------------------------------------------------------- */

int64_t now_ms(void);
void print_lib_error(const char *what, int rc);
int open_client(chat_client **out, const struct opts *o);

typedef int (*match_fn)(const chat_event *ev, void *arg);

struct waiter {
    char last_offline[256];
    int synced;
};

/* The next event before deadline: 1 (*out, the caller frees it), 0 none came in the next
 * half second or the deadline passed, -1 failed (said on stderr). */
int next_event(chat_client *c, int64_t deadline, chat_event **out);
int wait_for(chat_client *c, struct waiter *w, int64_t deadline, match_fn match, void *arg,
             chat_event **out, const char *what);
int wait_synced(chat_client *c, struct waiter *w, int64_t deadline);
int match_cmid(const chat_event *ev, void *arg);
int match_request(const chat_event *ev, void *arg);
/* Wait for the RESULT of request req: EXIT_OK with the event in *out (the caller frees it)
 * when it succeeded; a refusal is said on stderr (EXIT_FAIL). */
int wait_answer(chat_client *c, struct waiter *w, int64_t deadline, uint64_t req,
                const char *what, chat_event **out);
int wait_result(chat_client *c, struct waiter *w, int64_t deadline, uint64_t req,
                const char *what, conv_id *out_conv);

/* ---- text.c ------------------------------------------------------------------------------ */

struct strbuf {
    char *s;
    size_t len, cap;
};

void sb_free(struct strbuf *b);
void sb_reset(struct strbuf *b);
void sb_add(struct strbuf *b, const char *s, size_t n);
void sb_adds(struct strbuf *b, const char *s);
void sb_addf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s (len bytes, UTF-8 or not) as it may be shown on a terminal, on one line: newlines and
 * tabs become spaces, other control characters caret notation (ESC is ^[), C1 controls,
 * direction overrides and invalid bytes escapes (\u009b, \u202e, \xff). */
void sb_add_safe(struct strbuf *b, const char *s, size_t len);
void sb_adds_safe(struct strbuf *b, const char *s);
/* Columns s takes on a terminal (UTF-8; wide characters count 2). */
size_t text_width(const char *s, size_t len);
/* "812 bytes", "47.1 KiB", "3.0 MiB" */
void sb_add_size(struct strbuf *b, double bytes);

/* ---- render.c ---------------------------------------------------------------------------- */

enum render_style {
    STYLE_SCRIPT = 0, /* history/listen: how to get a file is a chat-cli command */
    STYLE_LIVE = 1    /* interactive: /download SEQ */
};

const char *status_mark(int status);
/* The mark of my message: "✓", "✓✓", "read"; in a group "✓ 1/3 read" (1 of the 3 others
 * have read it) until every other member has. */
void render_mark(struct strbuf *b, int status, size_t read_count, size_t others);
/* "alice: hi", or a sentence for media ("alice sent cat.jpg (image/jpeg, 47.1 KiB); ...")
 * and group events ("alice added dave"). json: the message's wire object. */
void render_message(struct strbuf *b, const char *from, int kind, const char *text,
                    size_t len, const char *json, uint64_t seq, int style);
/* The media object of a media message's wire JSON: id and file name (both may be NULL).
 * Returns 0 when json is a media message. */
int media_fields(const char *json, char *id, size_t id_size, char *name, size_t name_size,
                 double *size);
/* A file name for what a peer called name: its last path component, made safe, or ""
 * when nothing usable is left. */
void safe_file_name(char *out, size_t size, const char *name);
/* "alice: hi (edited) [👍 2]": message i of l as it is now (render_message plus a tombstone,
 * the reply or thread it belongs to, the edited mark, the reactions). */
void render_list_message(struct strbuf *b, const chat_msg_list *l, size_t i, int style);
void print_msg_list(const chat_msg_list *l);
/* conv <TAB> seq <TAB> sender <TAB> text: a search hit (json: the message's wire object). */
void render_hit(struct strbuf *b, conv_id conv, uint64_t seq, const char *from, int kind,
                const char *text, size_t len, const char *json);
/* What an UPDATED or EXPIRED event says: "alice edited #4: new text", "bob reacted 👍 to #4",
 * "#7 expired". */
void render_update(struct strbuf *b, const chat_event *ev);
int print_event(const chat_event *ev);
/* Conversation i of l: "12<sep>bob<sep>2" (human: "12  bob  2 unread"), and (left). */
void render_conv(struct strbuf *b, const chat_conv_list *l, size_t i, int human);
int print_convs(chat_client *c);
/* A conversation as people name it: "bob", "#Team", or "conv 12" when not cached yet. */
void conv_label(chat_client *c, conv_id conv, struct strbuf *out, int *is_group);

/* ---- commands.c, media.c, interactive.c -------------------------------------------------- */

int cmd_send(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_history(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_convs(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_group_create(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_listen(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_send_file(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_download(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_edit(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_delete(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_react(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_search(chat_client *c, const struct opts *o, struct waiter *w);
int cmd_interactive(chat_client *c, const struct opts *o);

/* Download url into path with a progress display (stderr for commands, the screen's status
 * line in the interactive mode when progress_on_screen). Returns a chat_status. */
struct progress {
    const char *what;
    uint64_t stop_after;
    uint64_t first; /* the first "done" reported: above 0 when resuming */
    int quiet, reported;
    int last_pct;
    int on_screen;
};
int on_progress(uint64_t done, uint64_t total, void *ud);

/* ---- screen.c ---------------------------------------------------------------------------- */

/* The interactive terminal. With a terminal on stdin and stdout: a libedit input line (prompt,
 * history, emacs keys) that output never lands in; otherwise plain lines in and out. */
int screen_open(void);
void screen_close(void);
int screen_is_tty(void);
/* Print one line above the input line (the text is printed as given: make it safe first). */
void screen_line(const char *s);
void screen_linef(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Where the last line printed is, for screen_mark: valid until the screen is cleared or
 * resized. */
struct screen_pos {
    uint64_t row;
    unsigned epoch;
};
struct screen_pos screen_last_line(void);
/* Overwrite the first column of that line with mark (one column wide). Returns 0 when done,
 * -1 when the line is no longer on the screen (or there is no terminal). */
int screen_mark(struct screen_pos pos, const char *mark);
/* Erase the echo of the line just entered (when nothing was printed after it). */
void screen_erase_input(void);
void screen_set_prompt(const char *prompt);
/* Progress of a long operation on the line the input normally takes. */
void screen_status(const char *s);
/* Draw the input line again if output hid it; call before waiting for input. */
void screen_flush(void);
/* stdin is readable: read it, call on_line for every complete line. Returns 1 when on_line
 * asked to stop (returned non-zero) or input ended (Ctrl-D, end of file), else 0. */
int screen_input(int (*on_line)(char *line, void *arg), void *arg);

#endif /* CHAT_CLI_H */
