/* The filesystem blob store (include/chat/sys/blob.h): content-addressed objects in sharded
 * directories, uploads staged beside them and published by rename, so no partial file is ever
 * visible under an object name. Every read and write is one bounded pread/write call.
 * Servers sharing one directory (the nodes of a cluster) stage in a directory each: a server
 * clears its own staging when it starts, never the uploads another one has in progress. */
#include "chat/sys/blob.h"

#include "core/alloc.h"
#include "core/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fs_blob {
    char *dir;
    char *staging; /* dir/staging, or dir/staging/<instance> when shared */
} fs_blob;

typedef struct fs_handle {
    int fd;
} fs_handle;

static int io_fail(const char *what, const char *path)
{
    int err = errno;
    return chat__error_set(CHAT_EIO, err, "blob store: %s %s: %s", what, path, strerror(err));
}

/* Only [0-9a-z], 1..64: the engine checks too, this keeps the backend safe on its own. */
static int name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= 64 || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'z')))
            return 0;
    return n >= 4;
}

static int bad_name(const char *s)
{
    return chat__error_set(CHAT_EINVAL, 0, "blob store: bad name '%.70s'", s ? s : "(null)");
}

static int mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        int rc = mkdir(path, 0700);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

static int stage_path(const fs_blob *b, const char *key, char *out, size_t size)
{
    return (size_t)snprintf(out, size, "%s/%s", b->staging, key) < size ? 0 : -1;
}

static int object_dir(const fs_blob *b, const char *id, char *out, size_t size)
{
    return (size_t)snprintf(out, size, "%s/objects/%.2s/%.2s", b->dir, id, id + 2) < size ? 0
                                                                                         : -1;
}

/* Wrap the result of open(path) (fd < 0: it failed, errno says why) in a handle, with the
 * file's current size. The descriptor is closed on any failure. */
static int handle_new(int fd, const char *path, uint64_t *size_out, void **handle_out)
{
    if (fd < 0)
        return io_fail("open", path);
    struct stat st;
    fs_handle *h = chat__malloc(sizeof *h);
    if (!h || fstat(fd, &st) != 0) {
        int rc = h ? io_fail("stat", path) : CHAT_ENOMEM;
        chat__free(h);
        close(fd);
        return rc;
    }
    h->fd = fd;
    *size_out = (uint64_t)st.st_size;
    *handle_out = h;
    return CHAT_OK;
}

static void fs_destroy(void *state)
{
    fs_blob *b = state;
    if (!b)
        return;
    chat__free(b->dir);
    chat__free(b->staging);
    chat__free(b);
}

static int fs_stage_open(void *state, const char *key, int create, uint64_t *size_out,
                         void **handle_out)
{
    fs_blob *b = state;
    char path[PATH_MAX];
    if (!name_ok(key) || stage_path(b, key, path, sizeof path))
        return bad_name(key);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
    if (fd < 0 && errno == ENOENT && !create)
        return chat__error_set(CHAT_ENOTFOUND, 0, "blob store: nothing staged for %s", key);
    return handle_new(fd, path, size_out, handle_out);
}

static int fs_stage_write(void *state, void *handle, const void *buf, size_t len)
{
    (void)state;
    fs_handle *h = handle;
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(h->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return io_fail("write", "staging file");
        p += n;
        len -= (size_t)n;
    }
    return CHAT_OK;
}

static void fs_stage_close(void *state, void *handle)
{
    (void)state;
    fs_handle *h = handle;
    if (!h)
        return;
    close(h->fd);
    chat__free(h);
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static int fs_stage_commit(void *state, const char *key, const char *id)
{
    fs_blob *b = state;
    char src[PATH_MAX], dir[PATH_MAX], dst[PATH_MAX];
    if (!name_ok(key) || stage_path(b, key, src, sizeof src))
        return bad_name(key);
    if (!name_ok(id) || object_dir(b, id, dir, sizeof dir) ||
        (size_t)snprintf(dst, sizeof dst, "%s/%s", dir, id) >= sizeof dst)
        return bad_name(id);
    if (access(src, F_OK) != 0)
        return chat__error_set(CHAT_ENOTFOUND, 0, "blob store: nothing staged for %s", key);
    if (access(dst, F_OK) == 0) {
        /* Stored already: these bytes hash to the same id. */
        unlink(src);
        return CHAT_OK;
    }
    if (fsync_path(src, O_RDONLY) != 0)
        return io_fail("fsync", src);
    if (mkdir_p(dir) != 0)
        return io_fail("mkdir", dir);
    if (rename(src, dst) != 0)
        return io_fail("rename", src);
    if (fsync_path(dir, O_RDONLY | O_DIRECTORY) != 0)
        return io_fail("fsync", dir);
    return CHAT_OK;
}

static int fs_stage_remove(void *state, const char *key)
{
    fs_blob *b = state;
    char path[PATH_MAX];
    if (!name_ok(key) || stage_path(b, key, path, sizeof path))
        return bad_name(key);
    if (unlink(path) != 0 && errno != ENOENT)
        return io_fail("unlink", path);
    return CHAT_OK;
}

static int fs_open(void *state, const char *id, uint64_t *size_out, void **handle_out)
{
    fs_blob *b = state;
    char dir[PATH_MAX], path[PATH_MAX];
    if (!name_ok(id) || object_dir(b, id, dir, sizeof dir) ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, id) >= sizeof path)
        return bad_name(id);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return chat__error_set(CHAT_ENOTFOUND, 0, "blob store: no object %s", id);
    return handle_new(fd, path, size_out, handle_out);
}

static int fs_remove(void *state, const char *id)
{
    fs_blob *b = state;
    char dir[PATH_MAX], path[PATH_MAX];
    if (!name_ok(id) || object_dir(b, id, dir, sizeof dir) ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, id) >= sizeof path)
        return bad_name(id);
    if (unlink(path) != 0)
        return errno == ENOENT ? chat__error_set(CHAT_ENOTFOUND, 0, "blob store: no object %s", id)
                               : io_fail("unlink", path);
    return CHAT_OK;
}

static int fs_read(void *state, void *handle, uint64_t offset, void *buf, size_t len,
                   size_t *got)
{
    (void)state;
    fs_handle *h = handle;
    for (;;) {
        ssize_t n = pread(h->fd, buf, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return io_fail("read", "object");
        *got = (size_t)n;
        return CHAT_OK;
    }
}

static int clear_staging(fs_blob *b)
{
    char path[PATH_MAX];
    const char *dir = b->staging;
    DIR *d = opendir(dir);
    if (!d)
        return io_fail("opendir", dir);
    struct dirent *e;
    while ((e = readdir(d)))
        if (name_ok(e->d_name) &&
            (size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) < sizeof path)
            unlink(path);
    closedir(d);
    return CHAT_OK;
}

static int fs_ctl(void *state, int op, void *arg)
{
    (void)arg;
    if (op == CHAT_BLOB_CTL_CLEAR_STAGING)
        return clear_staging(state);
    return chat__error_set(CHAT_ENOTSUP, 0, "blob store: unknown ctl op %d", op);
}

static const chat_blob_ops fs_ops = {
    .version = CHAT_BLOB_OPS_VERSION,
    .destroy = fs_destroy,
    .stage_open = fs_stage_open,
    .stage_write = fs_stage_write,
    .stage_close = fs_stage_close,
    .stage_commit = fs_stage_commit,
    .stage_remove = fs_stage_remove,
    .open = fs_open,
    .read = fs_read,
    .close = fs_stage_close,
    .ctl = fs_ctl,
    .remove = fs_remove,
};

const chat_blob_ops *chat_blob_fs_ops(void)
{
    return &fs_ops;
}

/* An instance names a directory: the characters of a node id. */
static int instance_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= 64 || !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'z') ||
                         (s[n] >= 'A' && s[n] <= 'Z') || s[n] == '_' || s[n] == '-'))
            return 0;
    return n > 0;
}

static int fs_new(void **state_out, const char *dir, const char *instance)
{
    char path[PATH_MAX];
    fs_blob *b = chat__calloc(1, sizeof *b);
    if (!b || !(b->dir = chat__strdup(dir))) {
        chat__free(b);
        return CHAT_ENOMEM;
    }
    int n = instance ? snprintf(path, sizeof path, "%s/staging/%s", dir, instance)
                     : snprintf(path, sizeof path, "%s/staging", dir);
    if (n < 0 || (size_t)n >= sizeof path) {
        fs_destroy(b);
        return chat__error_set(CHAT_EINVAL, 0, "blob store: directory path too long");
    }
    if (!(b->staging = chat__strdup(path))) {
        fs_destroy(b);
        return CHAT_ENOMEM;
    }
    const char *const subs[] = {"objects", b->staging + strlen(dir) + 1};
    for (int i = 0; i < 2; i++) {
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, subs[i]) >= sizeof path ||
            mkdir_p(path) != 0) {
            int rc = io_fail("mkdir", path);
            fs_destroy(b);
            return rc;
        }
    }
    *state_out = b;
    return CHAT_OK;
}

int chat_blob_fs_new(void **state_out, const char *dir)
{
    if (!state_out || !dir || !*dir)
        return chat__error_set(CHAT_EINVAL, 0, "blob store: a directory is required");
    return fs_new(state_out, dir, NULL);
}

int chat_blob_fs_new_shared(void **state_out, const char *dir, const char *instance)
{
    if (!state_out || !dir || !*dir || !instance)
        return chat__error_set(CHAT_EINVAL, 0, "blob store: a directory and an instance name "
                                               "are required");
    if (!instance_ok(instance))
        return chat__error_set(CHAT_EINVAL, 0, "blob store: instance '%.70s' is not 1-64 of "
                                               "[A-Za-z0-9_-]", instance);
    return fs_new(state_out, dir, instance);
}
