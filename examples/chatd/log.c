/* chatd's log: one line per event, as text or as JSON lines with stable keys (ts, level, msg,
 * and the library's fields: conn, user, device, req, code), to stderr or to a file that
 * SIGHUP reopens (logrotate moves the file, chatd writes to a new one). Each line is one
 * write() to an O_APPEND descriptor, so lines from several threads never interleave. */
#include "chatd.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int log_fd = 2, json, max_level = CHAT_LOG_WARN;
static char path[4096];

static const char *level_name(int level)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    return names[level < 0 || level > 3 ? 0 : level];
}

static int open_file(void)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

int chatd_log_open(const char *file, int as_json, int level)
{
    json = as_json;
    max_level = level;
    if (!file)
        return 0;
    snprintf(path, sizeof path, "%s", file);
    int fd = open_file();
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&mu);
    log_fd = fd;
    pthread_mutex_unlock(&mu);
    return 0;
}

int chatd_log_reopen(void)
{
    if (!path[0])
        return 0;
    int fd = open_file();
    if (fd < 0)
        return -1;
    pthread_mutex_lock(&mu);
    int old = log_fd;
    log_fd = fd;
    pthread_mutex_unlock(&mu);
    close(old);
    return 0;
}

void chatd_log_close(void)
{
    pthread_mutex_lock(&mu);
    if (path[0] && log_fd > 2)
        close(log_fd);
    log_fd = 2;
    path[0] = '\0';
    pthread_mutex_unlock(&mu);
}

int chatd_log_level(void)
{
    return max_level;
}

typedef struct line {
    char buf[2048];
    size_t len;
} line;

static void add(line *l, const char *s, size_t n)
{
    if (n > sizeof l->buf - 2 - l->len) /* room for the newline */
        n = sizeof l->buf - 2 - l->len;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void adds(line *l, const char *s)
{
    add(l, s, strlen(s));
}

/* A JSON string's contents: quotes, backslashes and control bytes escaped. */
static void add_escaped(line *l, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            add(l, e, 2);
        } else if (ch < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", ch);
            adds(l, e);
        } else {
            add(l, s, 1);
        }
    }
}

static void timestamp(char *out, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, size - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Only integers, bare in JSON: the connection id. */
static int numeric_key(const char *key)
{
    return strcmp(key, "conn") == 0;
}

static void emit(int level, const char *msg, const char *const *fields)
{
    if (level > max_level)
        return;
    char ts[40];
    timestamp(ts, sizeof ts);
    line l = {.len = 0};
    if (json) {
        adds(&l, "{\"ts\":\"");
        adds(&l, ts);
        adds(&l, "\",\"level\":\"");
        adds(&l, level_name(level));
        adds(&l, "\",\"msg\":\"");
        add_escaped(&l, msg);
        adds(&l, "\"");
        for (size_t i = 0; fields && fields[i]; i += 2) {
            adds(&l, ",\"");
            add_escaped(&l, fields[i]);
            adds(&l, numeric_key(fields[i]) ? "\":" : "\":\"");
            add_escaped(&l, fields[i + 1]);
            if (!numeric_key(fields[i]))
                adds(&l, "\"");
        }
        adds(&l, "}");
    } else {
        adds(&l, ts);
        adds(&l, " ");
        adds(&l, level_name(level));
        adds(&l, " ");
        adds(&l, msg);
        for (size_t i = 0; fields && fields[i]; i += 2) {
            adds(&l, " ");
            adds(&l, fields[i]);
            adds(&l, "=");
            adds(&l, fields[i + 1]);
        }
    }
    l.buf[l.len++] = '\n';
    pthread_mutex_lock(&mu);
    ssize_t w = write(log_fd, l.buf, l.len);
    pthread_mutex_unlock(&mu);
    (void)w; /* a log that cannot be written is not a reason to stop serving */
}

void chatd_log_kv(int level, const char *msg, const char *const *fields, void *ud)
{
    (void)ud;
    emit(level, msg, fields);
}

void chatd_log(int level, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    emit(level, msg, NULL);
}
