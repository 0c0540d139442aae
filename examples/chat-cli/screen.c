/* The interactive terminal.
 *
 * With a terminal on both stdin and stdout, input is a libedit line (prompt, history, emacs
 * keys, Ctrl-L) read one key at a time through el_gets in unbuffered mode, so the session can
 * poll stdin and the client's event fd together. Output never lands inside the line being
 * typed: before a line is printed the input line is erased (the cursor goes back to where the
 * prompt starts and the rest of the screen is cleared), the line is printed, and libedit draws
 * the prompt and the half-typed line again below it (EL_REFRESH), cursor where it was.
 *
 * Libedit's readline emulation is not used: in Debian 12's libedit (3.1-20221030) its
 * rl_redisplay pushes a redraw key into the input instead of redrawing, and rl_replace_line
 * cannot empty a line; the native API has what is needed.
 *
 * The screen counts the rows it printed, so a line printed a moment ago can get its first
 * column rewritten in place (a queued message's … becomes ✓ when acked) while it is still
 * on the screen. Clearing the screen or resizing it makes those positions stale (epoch).
 *
 * Without a terminal (a pipe, a script) lines are read and printed as they are. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static struct {
    int tty;
    EditLine *el;
    History *hist;
    int editing;        /* libedit has a line under way (its prompt is drawn unless hidden) */
    int hidden;         /* output took the input line off the screen */
    int status;         /* a status line stands where the input line goes */
    char prompt[512];
    uint64_t rows;      /* rows printed above the input line since the start */
    uint64_t last_row;  /* the row the last printed line starts on */
    unsigned epoch;     /* bumped when rows no longer tell where lines are */
    uint64_t input_end; /* rows when the echo of the last entered line ended */
    int input_rows;     /* rows that echo takes */
    /* without a terminal */
    char buf[2 * 16384 + 2];
    size_t have;
} scr;

static volatile sig_atomic_t winch;

static void on_winch(int sig)
{
    (void)sig;
    winch = 1;
}

static void term_size(int *rows, int *cols)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
        *rows = ws.ws_row;
        *cols = ws.ws_col;
    } else {
        *rows = 24;
        *cols = 80;
    }
}

static int term_cols(void)
{
    int rows, cols;
    term_size(&rows, &cols);
    return cols;
}

static char *prompt_fn(EditLine *e)
{
    (void)e;
    return scr.prompt;
}

/* Ctrl-L: clear the screen and draw the input line again at its top. */
static unsigned char redraw_fn(EditLine *e, int ch)
{
    (void)ch;
    fputs("\033[H\033[2J", stdout);
    scr.epoch++;
    scr.status = 0;
    el_set(e, EL_REFRESH);
    return CC_NORM;
}

int screen_open(void)
{
    scr.tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (!scr.tty)
        return 0;
    setlocale(LC_CTYPE, ""); /* libedit reads and shows UTF-8 only in a UTF-8 locale */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_winch; /* no SA_RESTART: the poll wakes up and redraws */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGWINCH, &sa, NULL);
    scr.el = el_init(prog, stdin, stdout, stderr);
    scr.hist = history_init();
    if (!scr.el || !scr.hist) {
        screen_close();
        scr.tty = 0;
        return -1;
    }
    HistEvent hev;
    history(scr.hist, &hev, H_SETSIZE, 1000);
    history(scr.hist, &hev, H_SETUNIQUE, 1);
    el_set(scr.el, EL_EDITOR, "emacs");
    el_set(scr.el, EL_SIGNAL, 1);
    el_set(scr.el, EL_PROMPT, prompt_fn);
    el_set(scr.el, EL_HIST, history, scr.hist);
    /* el_wset: el_set copies the name and help of EL_ADDFN and never frees them */
    el_wset(scr.el, EL_ADDFN, L"chat-redraw", L"clear the screen, draw the input line again",
            redraw_fn);
    el_set(scr.el, EL_BIND, "^L", "chat-redraw", NULL);
    el_source(scr.el, NULL); /* the user's ~/.editrc, as every libedit program */
    return 0;
}

int screen_is_tty(void) { return scr.tty; }

void screen_close(void)
{
    if (scr.el) {
        if (scr.editing && !scr.hidden) {
            fputs("\n", stdout); /* leave the prompt line as it is */
            scr.hidden = 1;
        }
        el_set(scr.el, EL_UNBUFFERED, 0);
        el_end(scr.el);
        scr.el = NULL;
    }
    if (scr.hist)
        history_end(scr.hist);
    scr.hist = NULL;
    scr.editing = 0;
    fflush(stdout);
}

/* Rows a printed line of w columns takes. */
static int rows_of(size_t w, int cols)
{
    return w == 0 ? 1 : (int)((w + (size_t)cols - 1) / (size_t)cols);
}

/* Take the input line (or a status line) off the screen: the cursor goes to the column 0 of
 * the row where the prompt starts, and everything from there down is cleared. */
static void hide(void)
{
    if (!scr.tty)
        return;
    if (scr.status) {
        fputs("\r\033[K", stdout);
        scr.status = 0;
    }
    if (!scr.editing || scr.hidden)
        return;
    const LineInfo *li = el_line(scr.el);
    size_t w = text_width(scr.prompt, strlen(scr.prompt)) +
               text_width(li->buffer, (size_t)(li->cursor - li->buffer));
    int up = (int)(w / (size_t)term_cols());
    fputs("\r", stdout);
    if (up)
        printf("\033[%dA", up);
    fputs("\033[J", stdout);
    scr.hidden = 1;
}

void screen_flush(void)
{
    if (scr.tty) {
        if (winch) {
            winch = 0;
            el_resize(scr.el);
            scr.epoch++; /* lines wrap differently now */
            if (scr.editing && !scr.hidden) {
                fputs("\r\033[J", stdout);
                scr.hidden = 1;
            }
        }
        if (!scr.status) {
            if (!scr.editing) {
                el_set(scr.el, EL_UNBUFFERED, 1); /* a new line: draws the prompt */
                scr.editing = 1;
                scr.hidden = 0;
            } else if (scr.hidden) {
                el_set(scr.el, EL_REFRESH);
                scr.hidden = 0;
            }
        }
    }
    fflush(stdout);
}

void screen_line(const char *s)
{
    if (!scr.tty) {
        puts(s);
        return;
    }
    hide();
    fputs(s, stdout);
    fputs("\n", stdout);
    scr.last_row = scr.rows;
    scr.rows += (uint64_t)rows_of(text_width(s, strlen(s)), term_cols());
}

void screen_linef(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    screen_line(buf);
}

struct screen_pos screen_last_line(void)
{
    struct screen_pos p = {scr.last_row, scr.epoch};
    return p;
}

int screen_mark(struct screen_pos pos, const char *mark)
{
    if (!scr.tty || pos.epoch != scr.epoch || pos.row >= scr.rows)
        return -1;
    int rows, cols;
    term_size(&rows, &cols);
    uint64_t up = scr.rows - pos.row;
    /* Where the line is now is known only while nothing scrolled it away: the input line
     * below it may have spanned rows that are not counted, so keep a margin. */
    if (up > (uint64_t)rows / 2)
        return -1;
    hide();
    printf("\033[%dA\r%s\033[%dB\r", (int)up, mark, (int)up);
    return 0;
}

void screen_erase_input(void)
{
    int rows, cols;
    term_size(&rows, &cols);
    if (!scr.tty || scr.rows != scr.input_end || scr.input_rows >= rows)
        return;
    printf("\033[%dA\r\033[J", scr.input_rows);
    scr.rows -= (uint64_t)scr.input_rows;
    scr.input_end = UINT64_MAX;
}

void screen_set_prompt(const char *prompt)
{
    if (strcmp(prompt, scr.prompt) == 0)
        return;
    hide(); /* drawn again with the new prompt by screen_flush */
    snprintf(scr.prompt, sizeof scr.prompt, "%s", prompt);
}

void screen_status(const char *s)
{
    if (!scr.tty)
        return;
    hide();
    fputs("\r\033[K", stdout);
    fputs(s, stdout);
    scr.status = 1;
    fflush(stdout);
}

/* A line is done: libedit has moved the cursor below it. Leave the editing state so output
 * goes below the line; screen_flush starts the next one. */
static int line_done(const char *b, int n, int (*on_line)(char *, void *), void *arg)
{
    char *line = strndup(b, (size_t)n);
    if (!line)
        return 0;
    size_t w = text_width(scr.prompt, strlen(scr.prompt)) + text_width(line, (size_t)n);
    el_set(scr.el, EL_UNBUFFERED, 0);
    scr.editing = 0;
    scr.hidden = 0;
    /* libedit ends the echo with a newline, after a row of its own when the text filled the
     * last row exactly */
    scr.input_rows = (int)(w / (size_t)term_cols()) + 1;
    scr.rows += (uint64_t)scr.input_rows;
    scr.last_row = scr.rows - (uint64_t)scr.input_rows;
    scr.input_end = scr.rows;
    if (*line) {
        HistEvent hev;
        history(scr.hist, &hev, H_ENTER, line);
    }
    int stop = on_line(line, arg);
    free(line);
    return stop;
}

static int input_tty(int (*on_line)(char *, void *), void *arg)
{
    /* libedit draws a key's effect relative to the line it believes is on the screen: put it
     * back first if output took it away (keys and events can be ready in the same poll) */
    screen_flush();
    int avail = 0;
    if (ioctl(STDIN_FILENO, FIONREAD, &avail) == 0 && avail == 0)
        return 1; /* readable with nothing to read: the terminal is gone */
    int n = 0;
    errno = 0;
    const char *b = el_gets(scr.el, &n);
    /* NULL also when a key left the line empty (Ctrl-L, an arrow): only errno tells a
     * failed read */
    if (!b)
        return errno != 0 && errno != EINTR && errno != EAGAIN;
    if (n == 1 && b[0] == 4) /* Ctrl-D on an empty line */
        return 1;
    if (n > 0 && b[n - 1] == '\n')
        return line_done(b, n - 1, on_line, arg);
    return 0;
}

static int input_plain(int (*on_line)(char *, void *), void *arg)
{
    ssize_t n = read(STDIN_FILENO, scr.buf + scr.have, sizeof scr.buf - 1 - scr.have);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0) { /* end of input: a last unterminated line, then stop */
        scr.buf[scr.have] = '\0';
        int stop = scr.have ? on_line(scr.buf, arg) : 0;
        scr.have = 0;
        (void)stop;
        return 1;
    }
    scr.have += (size_t)n;
    scr.buf[scr.have] = '\0';
    char *start = scr.buf, *nl;
    while ((nl = memchr(start, '\n', scr.have - (size_t)(start - scr.buf))) != NULL) {
        *nl = '\0';
        if (nl > start && nl[-1] == '\r')
            nl[-1] = '\0';
        if (on_line(start, arg)) {
            scr.have = 0;
            return 1;
        }
        start = nl + 1;
    }
    scr.have -= (size_t)(start - scr.buf);
    memmove(scr.buf, start, scr.have);
    if (scr.have == sizeof scr.buf - 1) { /* an overlong line: drop it */
        screen_line("line too long, dropped");
        scr.have = 0;
    }
    return 0;
}

int screen_input(int (*on_line)(char *line, void *arg), void *arg)
{
    return scr.tty ? input_tty(on_line, arg) : input_plain(on_line, arg);
}
