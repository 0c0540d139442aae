/* chat-cli: a terminal client over the libchat client engine (include/chat/client.h).
 *
 *   chat-cli [OPTIONS] [COMMAND [ARGS]]
 *
 * Commands for scripts (send, history, convs, group-create, listen, send-file, download, edit,
 * delete, react, search) and, with no command, an interactive mode. `chat-cli --help` and chat-cli(1) are the reference;
 * cli.h says which file holds what.
 *
 * Exit codes: 0 success, 1 refused or failed (libchat error), 2 usage, 3 authentication
 * failed, 4 timed out (server unreachable, no ack). Errors go to stderr, results to stdout. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *prog = "chat-cli";

/* Every option here is in doc/man/chat-cli.1 too (tests/cli checks both ways). */
static void usage(FILE *f)
{
    fprintf(f,
        "usage: %s [OPTIONS] [COMMAND [ARGS]]\n"
        "\n"
        "Connection options (any position before `--`):\n"
        "  --server URL        server, ws://HOST:PORT/ or wss://HOST:PORT/ (default\n"
        "                      $CHAT_SERVER, else ws://127.0.0.1:7700/)\n"
        "  --ca-file FILE      for wss:// (and its media transfers): trust the CAs in this\n"
        "                      PEM file instead of the system's (the server's certificate\n"
        "                      is always verified)\n"
        "  --token T           authenticate with a token (default $CHAT_TOKEN)\n"
        "  --user U --password P [--device D]\n"
        "                      log in instead (device default \"cli\")\n"
        "  --cache FILE        cache file (default: in memory, nothing kept)\n"
        "  --timeout SECONDS   bound of every wait (default 10)\n"
        "  -q, --quiet         no progress or confirmations on stderr\n"
        "  -h, --help          this text;  --version  the versions of chat-cli and libchat\n"
        "\n"
        "Commands:\n"
        "  send --to USER TEXT...    send to the direct conversation with USER; waits for the\n"
        "  send --conv ID TEXT...    ack and prints the message's seq\n"
        "  history --conv ID [--limit N] [--before SEQ]\n"
        "                            one line per message: seq, sender, mark (own messages:\n"
        "                            \xe2\x9c\x93 sent, \xe2\x9c\x93\xe2\x9c\x93 delivered, read; in a group \"\xe2\x9c\x93 1/3 read\"),\n"
        "                            text (media and group changes as sentences)\n"
        "  convs                     one line per conversation: id, peer or #title, unread\n"
        "  group-create [--id ID] TITLE USER...\n"
        "                            create a group; prints its conversation id. Repeating\n"
        "                            the command with the same --id (1-64 printable ASCII)\n"
        "                            prints the group the first run created\n"
        "  listen [--seconds N] [--read]\n"
        "                            print events as lines for N seconds (default 10; 0: until\n"
        "                            killed); --read marks incoming messages read\n"
        "  send-file --to USER|--conv ID FILE [--mime TYPE] [--stop-after BYTES]\n"
        "                            upload FILE over HTTP, HTTPS for wss:// (progress on\n"
        "                            stderr; an interrupted upload of the same file resumes),\n"
        "                            then send it as a media message; prints the media id and\n"
        "                            the message's seq\n"
        "  download MEDIA_ID FILE [--stop-after BYTES]\n"
        "                            fetch a signed URL and download into FILE (progress on\n"
        "                            stderr; FILE.part left by an interrupted download resumes;\n"
        "                            the content hash is checked). --stop-after interrupts a\n"
        "                            transfer after BYTES, to try the resume\n"
        "  edit --conv ID SEQ TEXT...\n"
        "                            replace the text of my message SEQ (prints the edit's seq)\n"
        "  delete --conv ID SEQ      delete message SEQ for everyone (mine, or as an admin)\n"
        "  react --conv ID SEQ EMOJI [--off]\n"
        "                            put my reaction EMOJI on message SEQ (--off: take it back)\n"
        "  search [--conv ID] [--limit N] [--before CURSOR] [--local] WORDS...\n"
        "                            messages holding every word, newest first, as they are\n"
        "                            now: one line each, conv, seq, sender, text. On the\n"
        "                            server (the next page's cursor on stderr), or with\n"
        "                            --local in the cache only (works offline)\n"
        "  (none)                    interactive mode: a prompt with line editing and history;\n"
        "                            type /help\n"
        "\n"
        "Exit codes: 0 ok, 1 refused/failed, 2 usage, 3 authentication failed, 4 timed out.\n"
        "More: man chat-cli.\n",
        prog);
}

int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    usage(stderr);
    return EXIT_USAGE;
}

int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

int parse_int(const char *s, int min, int max, int *out)
{
    char *end = NULL;
    if (!s || !*s)
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

int parse_conv(const char *s, conv_id *out)
{
    uint64_t v = 0;
    if (parse_u64(s, &v) || v == 0 || v > (uint64_t)INT64_MAX)
        return -1;
    *out = (conv_id)v;
    return 0;
}

/* Returns -1 when parsed, else an exit code. */
static int parse_args(struct opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->server = getenv("CHAT_SERVER");
    o->token = getenv("CHAT_TOKEN");
    o->limit = 50;
    o->seconds = 10;
    o->timeout_s = 10;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || strcmp(a, "-") == 0) {
            if (o->npos == MAX_POS)
                return usage_error("too many arguments");
            o->pos[o->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return EXIT_OK;
        }
        if (strcmp(a, "--version") == 0) {
            printf("chat-cli %s (libchat %s)\n", CHAT_VERSION_STRING, chat_version_string());
            return EXIT_OK;
        }
        if (strcmp(a, "--read") == 0) {
            o->mark_read = 1;
            continue;
        }
        if (strcmp(a, "--local") == 0 || strcmp(a, "--off") == 0) {
            *(a[2] == 'l' ? &o->local : &o->off) = 1;
            continue;
        }
        if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            o->quiet = 1;
            continue;
        }
        static const char *const valued[] = {"--server", "--token", "--user", "--password",
                                             "--device", "--cache", "--timeout", "--to",
                                             "--conv", "--limit", "--before", "--seconds",
                                             "--mime", "--stop-after", "--ca-file", "--id"};
        int known = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            if (strcmp(a, valued[k]) == 0)
                known = 1;
        if (!known)
            return usage_error("unknown option %s", a);
        if (i + 1 >= argc)
            return usage_error("option %s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--server") == 0)
            o->server = v;
        else if (strcmp(a, "--token") == 0)
            o->token = v;
        else if (strcmp(a, "--user") == 0)
            o->user = v;
        else if (strcmp(a, "--password") == 0)
            o->password = v;
        else if (strcmp(a, "--device") == 0)
            o->device = v;
        else if (strcmp(a, "--ca-file") == 0)
            o->ca_file = v;
        else if (strcmp(a, "--cache") == 0)
            o->cache = v;
        else if (strcmp(a, "--to") == 0)
            o->to = v;
        else if (strcmp(a, "--timeout") == 0) {
            if (parse_int(v, 1, 86400, &o->timeout_s))
                return usage_error("bad --timeout %s", v);
        } else if (strcmp(a, "--conv") == 0) {
            if (parse_conv(v, &o->conv))
                return usage_error("bad --conv %s", v);
            o->has_conv = 1;
        } else if (strcmp(a, "--limit") == 0) {
            if (parse_int(v, 1, 100000, &o->limit))
                return usage_error("bad --limit %s", v);
        } else if (strcmp(a, "--before") == 0) {
            if (parse_u64(v, &o->before))
                return usage_error("bad --before %s", v);
        } else if (strcmp(a, "--seconds") == 0) {
            if (parse_int(v, 0, 86400 * 365, &o->seconds))
                return usage_error("bad --seconds %s", v);
        } else if (strcmp(a, "--mime") == 0) {
            o->mime = v;
        } else if (strcmp(a, "--id") == 0) {
            o->id = v;
        } else if (strcmp(a, "--stop-after") == 0) {
            if (parse_u64(v, &o->stop_after) || o->stop_after == 0)
                return usage_error("bad --stop-after %s", v);
        }
    }
    if (!o->server || !*o->server)
        o->server = "ws://127.0.0.1:7700/";
    if (o->user || o->password) {
        if (!o->user || !o->password)
            return usage_error("--user and --password go together");
        if (!o->device)
            o->device = "cli";
        o->token = NULL; /* an explicit login wins over $CHAT_TOKEN */
    } else if (!o->token || !*o->token) {
        return usage_error("no credentials: give --token T (or $CHAT_TOKEN), or --user and "
                           "--password");
    }
    return -1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct opts o;
    int ex = parse_args(&o, argc, argv);
    if (ex >= 0)
        return ex;
    const char *cmd = o.npos ? o.pos[0] : NULL;
    static const struct {
        const char *name;
        int (*run)(chat_client *, const struct opts *, struct waiter *);
    } cmds[] = {{"send", cmd_send},           {"history", cmd_history},
                {"convs", cmd_convs},         {"group-create", cmd_group_create},
                {"listen", cmd_listen},       {"send-file", cmd_send_file},
                {"download", cmd_download},   {"edit", cmd_edit},
                {"delete", cmd_delete},       {"react", cmd_react},
                {"search", cmd_search}};
    int which = -1;
    for (size_t i = 0; cmd && i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(cmd, cmds[i].name) == 0)
            which = (int)i;
    if (cmd && which < 0)
        return usage_error("unknown command %s", cmd);
    static const char *const on_conv[] = {"history", "edit", "delete", "react", "search"};
    int takes_conv = 0;
    for (size_t i = 0; cmd && i < sizeof on_conv / sizeof on_conv[0]; i++)
        takes_conv |= strcmp(cmd, on_conv[i]) == 0;
    if (cmd && strcmp(cmd, "send") != 0 && strcmp(cmd, "send-file") != 0 &&
        (o.to || (o.has_conv && !takes_conv)))
        return usage_error("--to/--conv do not apply to %s", cmd);
    if ((o.local && (!cmd || strcmp(cmd, "search") != 0)) ||
        (o.off && (!cmd || strcmp(cmd, "react") != 0)))
        return usage_error("--local applies to search, --off to react");
    if (o.id && (!cmd || strcmp(cmd, "group-create") != 0))
        return usage_error("--id applies to group-create only");

    chat_client *c = NULL;
    ex = open_client(&c, &o);
    if (ex != EXIT_OK)
        return ex;
    struct waiter w;
    memset(&w, 0, sizeof w);
    ex = cmd ? cmds[which].run(c, &o, &w) : cmd_interactive(c, &o);
    chat_client_free(c);
    return ex;
}
