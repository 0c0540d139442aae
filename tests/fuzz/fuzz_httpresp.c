/* Fuzz target: the bytes a media server (or anything at its address) answers a client's
 * upload or download with -> the client's HTTP response head parser (lib/client/httpresp.c).
 * Invariants:
 *  - the head is fed whole and in pieces of 1-13 bytes (sizes from the input): the same
 *    outcome, the same bytes taken, the same head and status;
 *  - what was taken is a prefix of the input, NUL-terminated, under CHAT__HTTP_HEAD_MAX;
 *  - a complete head ends exactly at the first "\r\n\r\n" of the input and starts with an
 *    "HTTP/1." status line; "more" means no blank line yet and room left; a refusal is either
 *    that blank line behind no status line, or a head that filled the buffer without one;
 *  - a header lookup (the names media.c asks for, and one taken from the input) into buffers of
 *    1 to 256 bytes finds a field exactly when a model scan of the lines does, and writes a
 *    NUL-terminated value of the buffer's size at most, with no CR or LF, found in the head;
 *  - the decimal and Content-Range readers agree with strtoull over that value. */
#define _GNU_SOURCE
#include "fuzz.h"

#include "chat/errors.h"
#include "client/httpresp.h"

#include <string.h>
#include <strings.h>

static const char *const names[] = {"content-length", "content-range", "location", "media-id",
                                    "upload-offset",  "upload-busy"};
static const size_t sizes[] = {1, 2, 8, 32, 96, 256};

/* A model of the field lookup: some line after the status line starts "name:". */
static int model_has_field(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 1, "\r\n"))
        if (p[2] && strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
            return 1;
    return 0;
}

static void check_lookup(const chat__http_head *h, const char *name)
{
    int has = model_has_field(h->head, name);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *out = malloc(sizes[i]); /* exact size: a write past it is caught by ASan */
        FUZZ_CHECK(out);
        const char *v = chat__http_header(h, name, out, sizes[i]);
        FUZZ_CHECK((v != NULL) == has);
        if (v) {
            FUZZ_CHECK(v == out);
            size_t len = strnlen(out, sizes[i]);
            FUZZ_CHECK(len < sizes[i]);
            FUZZ_CHECK(!memchr(out, '\r', len) && !memchr(out, '\n', len));
            FUZZ_CHECK(strstr(h->head, out) != NULL);
        }
        free(out);
    }
    char v[32];
    int found = -1;
    uint64_t u = chat__http_header_u64(h, name, &found);
    FUZZ_CHECK(found == has);
    FUZZ_CHECK(u == (has ? strtoull(chat__http_header(h, name, v, sizeof v), NULL, 10) : 0));
}

static void check_fields(const chat__http_head *h, const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        check_lookup(h, names[i]);
    /* A name from the input: the bytes after its first line break, up to a colon. */
    const char *nl = memmem(data, size, "\r\n", 2);
    if (nl) {
        char name[17];
        size_t n = 0, at = (size_t)(nl - (const char *)data) + 2;
        while (n < 16 && at + n < size && data[at + n] && data[at + n] != ':' &&
               data[at + n] != '\r' && data[at + n] != '\n') {
            name[n] = (char)data[at + n];
            n++;
        }
        name[n] = 0;
        check_lookup(h, name);
    }
    char cr[96];
    const char *slash = chat__http_header(h, "content-range", cr, sizeof cr) ? strchr(cr, '/')
                                                                            : NULL;
    FUZZ_CHECK(chat__http_range_total(h, 12345) ==
               (slash ? strtoull(slash + 1, NULL, 10) : 12345));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static chat__http_head whole, parts;
    const char *buf = (const char *)data;
    chat__http_head_init(&whole);
    size_t used = 0;
    int rc = chat__http_head_feed(&whole, buf, size, &used);
    FUZZ_CHECK(rc == CHAT_OK || rc == CHAT_EAGAIN || rc == CHAT_EPROTO);
    FUZZ_CHECK(used <= size && whole.len == used && used < CHAT__HTTP_HEAD_MAX);
    FUZZ_CHECK(whole.head[used] == 0 && memcmp(whole.head, buf, used) == 0);

    const char *blank = memmem(buf, size, "\r\n\r\n", 4);
    size_t end = blank ? (size_t)(blank - buf) + 4 : (size_t)-1;
    if (rc == CHAT_OK) {
        FUZZ_CHECK(used == end);
        FUZZ_CHECK(strncmp(whole.head, "HTTP/1.", 7) == 0);
    } else if (rc == CHAT_EAGAIN) {
        FUZZ_CHECK(used == size && !blank && size < CHAT__HTTP_HEAD_MAX - 1);
    } else {
        FUZZ_CHECK(used == end || (used == CHAT__HTTP_HEAD_MAX - 1 && end > used));
    }

    /* The same bytes in pieces, as the socket may deliver them. */
    chat__http_head_init(&parts);
    size_t off = 0;
    int prc = CHAT_EAGAIN;
    for (size_t i = 0; prc == CHAT_EAGAIN && off < size; i++) {
        size_t piece = 1 + data[i % size] % 13;
        if (piece > size - off)
            piece = size - off;
        size_t took = 0;
        prc = chat__http_head_feed(&parts, buf + off, piece, &took);
        FUZZ_CHECK(took <= piece && (prc != CHAT_EAGAIN || took == piece));
        off += took;
    }
    FUZZ_CHECK(prc == rc && off == used && parts.len == whole.len);
    FUZZ_CHECK(memcmp(parts.head, whole.head, used + 1) == 0);
    if (rc == CHAT_OK)
        FUZZ_CHECK(parts.status == whole.status);

    /* Lookups run only on complete heads in media.c; any head must still be safe to read. */
    check_fields(&whole, data, size);
    return 0;
}
