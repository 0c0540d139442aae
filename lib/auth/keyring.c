/* Token MAC keys: the in-memory ring, the key file, and the process-wide sodium_init. */
#include "auth/keyring.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A key file holds at most 16 short lines plus comments; anything bigger is not one. */
#define KEY_FILE_MAX (64 * 1024)

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_status = CHAT_ERROR;

static void sodium_init_once(void)
{
    /* 0 = initialised now, 1 = already initialised by the host: both fine. */
    sodium_status = sodium_init() < 0 ? CHAT_ERROR : CHAT_OK;
}

int chat__sodium_init(void)
{
    if (pthread_once(&sodium_once, sodium_init_once) != 0)
        return chat__error_set(CHAT_ERROR, 0, "pthread_once failed");
    if (sodium_status != CHAT_OK)
        return chat__error_set(CHAT_ERROR, 0, "libsodium could not be initialised");
    return CHAT_OK;
}

int chat__keyring_add(chat__keyring *kr, unsigned key_id, const unsigned char *key, size_t len)
{
    if (!kr || !key)
        return chat__error_set(CHAT_EINVAL, 0, "token key: NULL argument");
    if (key_id > CHAT__KEY_ID_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "token key id %u is out of range 0..255", key_id);
    if (len != CHAT__KEY_BYTES)
        return chat__error_set(CHAT_EINVAL, 0, "token key must be 32 bytes, not %zu", len);
    int i;
    for (i = 0; i < kr->n; i++)
        if (kr->keys[i].id == key_id)
            break;
    if (i == kr->n) {
        if (kr->n >= CHAT__KEYRING_MAX)
            return chat__error_set(CHAT_ELIMIT, 0, "more than %d token keys",
                                   CHAT__KEYRING_MAX);
        kr->n++;
    }
    kr->keys[i].id = key_id;
    memcpy(kr->keys[i].key, key, CHAT__KEY_BYTES);
    kr->current = i;
    return CHAT_OK;
}

const unsigned char *chat__keyring_find(const chat__keyring *kr, unsigned key_id)
{
    if (!kr)
        return NULL;
    for (int i = 0; i < kr->n; i++)
        if (kr->keys[i].id == key_id)
            return kr->keys[i].key;
    return NULL;
}

void chat__keyring_wipe(chat__keyring *kr)
{
    if (kr)
        sodium_memzero(kr, sizeof *kr);
}

/* Create path (O_EXCL, 0600) holding one random key with id 1. Losing a creation race to
 * another process is fine: the caller loads whatever file won. */
static int create_key_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return CHAT_OK;
        return chat__error_set(CHAT_EIO, errno, "cannot create key file %s: %s", path,
                               strerror(errno));
    }
    /* The umask may have removed owner bits; the loader needs exactly owner read. */
    (void)fchmod(fd, 0600);

    unsigned char key[CHAT__KEY_BYTES];
    char hex[2 * CHAT__KEY_BYTES + 1];
    char text[160];
    randombytes_buf(key, sizeof key);
    sodium_bin2hex(hex, sizeof hex, key, sizeof key);
    int n = snprintf(text, sizeof text,
                     "# libchat token keys: \"<key_id> <64 hex>\"; the last line signs.\n"
                     "1 %s\n", hex);
    sodium_memzero(key, sizeof key);
    sodium_memzero(hex, sizeof hex);

    int rc = CHAT_OK, err = 0;
    size_t off = 0;
    while (off < (size_t)n) {
        ssize_t w = write(fd, text + off, (size_t)n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        off += (size_t)w;
    }
    sodium_memzero(text, sizeof text);
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (err) {
        /* A half-written file would fail every later start; do not leave it behind. */
        unlink(path);
        rc = chat__error_set(CHAT_EIO, err, "cannot write key file %s: %s", path,
                             strerror(err));
    }
    return rc;
}

/* Read the whole file into a chat__malloc'd, NUL-terminated buffer of *len bytes
 * (KEY_FILE_MAX + 1 bytes allocated; the caller wipes and frees it). */
static int read_key_file(const char *path, int create, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && errno == ENOENT && create) {
        int rc = create_key_file(path);
        if (rc != CHAT_OK)
            return rc;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    }
    if (fd < 0)
        return chat__error_set(CHAT_EIO, errno, "cannot open key file %s: %s", path,
                               strerror(errno));

    struct stat st;
    int rc = CHAT_OK;
    if (fstat(fd, &st) != 0) {
        rc = chat__error_set(CHAT_EIO, errno, "cannot stat key file %s: %s", path,
                             strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = chat__error_set(CHAT_EIO, 0, "key file %s is not a regular file", path);
    } else if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = chat__error_set(CHAT_EIO, 0,
                             "key file %s is accessible by group or others (mode %04o); "
                             "refusing it: chmod 600 it, and rotate its keys if it leaked",
                             path, (unsigned)(st.st_mode & 07777));
    }
    char *buf = NULL;
    size_t total = 0;
    if (rc == CHAT_OK && !(buf = chat__malloc(KEY_FILE_MAX + 1)))
        rc = chat__error_set(CHAT_ENOMEM, 0, "out of memory reading key file %s", path);
    while (rc == CHAT_OK && total <= KEY_FILE_MAX) {
        ssize_t r = read(fd, buf + total, KEY_FILE_MAX + 1 - total);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = chat__error_set(CHAT_EIO, errno, "cannot read key file %s: %s", path,
                                 strerror(errno));
        else if (r == 0)
            break;
        else
            total += (size_t)r;
    }
    close(fd);
    if (rc == CHAT_OK && total > KEY_FILE_MAX)
        rc = chat__error_set(CHAT_EPROTO, 0, "key file %s is larger than %d bytes", path,
                             KEY_FILE_MAX);
    if (rc != CHAT_OK) {
        if (buf) {
            sodium_memzero(buf, KEY_FILE_MAX + 1);
            chat__free(buf);
        }
        return rc;
    }
    buf[total] = '\0';
    *out = buf;
    *len = total;
    return CHAT_OK;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Parse one trimmed, non-empty, non-comment line [p, end) into id and key. */
static int parse_line(const char *p, const char *end, unsigned *id, unsigned char *key)
{
    unsigned v = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 4) {
        v = v * 10 + (unsigned)(*p++ - '0');
        digits++;
    }
    if (digits == 0 || digits > 3 || v > CHAT__KEY_ID_MAX || p == end || !is_blank(*p))
        return 0;
    while (p < end && is_blank(*p))
        p++;
    const char *hex = p;
    while (p < end && !is_blank(*p))
        p++;
    if (p - hex != 2 * CHAT__KEY_BYTES || p != end)
        return 0;
    size_t bin_len = 0;
    const char *hex_end = NULL;
    if (sodium_hex2bin(key, CHAT__KEY_BYTES, hex, 2 * CHAT__KEY_BYTES, NULL, &bin_len,
                       &hex_end) != 0 ||
        bin_len != CHAT__KEY_BYTES || hex_end != hex + 2 * CHAT__KEY_BYTES)
        return 0;
    *id = v;
    return 1;
}

/* Add every key of buf[0..len) to tmp; see chat__keyring_load_file for the format. */
static int parse_key_file(chat__keyring *tmp, const char *path, const char *buf, size_t len)
{
    unsigned char seen[(CHAT__KEY_ID_MAX + 1) / 8] = {0};
    unsigned char key[CHAT__KEY_BYTES];
    const char *p = buf, *end = buf + len;
    int line = 0, found = 0, rc = CHAT_OK;
    while (p < end && rc == CHAT_OK) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *a = p, *b = eol;
        p = eol < end ? eol + 1 : end;
        while (a < b && is_blank(*a))
            a++;
        while (b > a && is_blank(b[-1]))
            b--;
        if (a == b || *a == '#')
            continue;
        unsigned id;
        if (!parse_line(a, b, &id, key)) {
            rc = chat__error_set(CHAT_EPROTO, 0,
                                 "key file %s line %d: expected \"<key_id 0..255> "
                                 "<64 hex digits>\"", path, line);
        } else if (seen[id / 8] & (1u << (id % 8))) {
            rc = chat__error_set(CHAT_EPROTO, 0, "key file %s line %d: key id %u repeated",
                                 path, line, id);
        } else {
            seen[id / 8] |= (unsigned char)(1u << (id % 8));
            rc = chat__keyring_add(tmp, id, key, sizeof key);
            if (rc == CHAT_ELIMIT)
                chat__error_set(rc, 0, "key file %s line %d: more than %d token keys", path,
                                line, CHAT__KEYRING_MAX);
            found++;
        }
    }
    sodium_memzero(key, sizeof key);
    if (rc == CHAT_OK && !found)
        rc = chat__error_set(CHAT_EPROTO, 0, "key file %s holds no key", path);
    return rc;
}

int chat__keyring_load_file(chat__keyring *kr, const char *path, int create)
{
    if (!kr || !path)
        return chat__error_set(CHAT_EINVAL, 0, "key file: NULL argument");
    int rc = chat__sodium_init();
    if (rc != CHAT_OK)
        return rc;
    char *buf = NULL;
    size_t len = 0;
    rc = read_key_file(path, create, &buf, &len);
    if (rc != CHAT_OK)
        return rc;
    /* Parse into a copy so a bad line leaves kr as it was. */
    chat__keyring tmp = *kr;
    rc = parse_key_file(&tmp, path, buf, len);
    if (rc == CHAT_OK)
        *kr = tmp;
    sodium_memzero(&tmp, sizeof tmp);
    sodium_memzero(buf, KEY_FILE_MAX + 1);
    chat__free(buf);
    return rc;
}
