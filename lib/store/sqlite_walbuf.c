/* A VFS shim under the SQLite store that gathers the appends of one commit to the WAL into one
 * write. SQLite writes every WAL frame as two pwrite()s, its 24-byte header and its page, so a
 * commit of 50 pages is 100 system calls; through the shim it is one (or a few, see
 * MAX_WRITE). Nothing else changes: the main database and shared-memory files, reads and syncs
 * pass through, and the buffer is written out before anything could need it on disk:
 *
 *  - at the end of a commit: a frame header whose "database size" field is non-zero marks the
 *    commit frame, and the write of its page flushes. That is before SQLite publishes the
 *    commit in the wal-index, so no other connection can see a frame that is not written yet,
 *    and before COMMIT returns, so an acknowledged commit is in the kernel (kill -9 safe) as
 *    it was without the shim;
 *  - before a sync, a read, a size query or truncation, a file control, and a close;
 *  - when a write is not contiguous with the buffer (SQLite rewriting a frame of the same
 *    transaction), and when the buffer is full.
 *
 * A failed flush is the error of the write call that triggered it, so SQLite fails the
 * commit as it would have failed on the pwrite() itself. */
#include "store/sqlite_internal.h"

#include "core/alloc.h"
#include "core/array.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define WAL_FRAME_HDR 24  /* a WAL frame header; the WAL file header is 32 bytes */
#define BUF_MAX (1u << 20) /* flush when a commit's frames reach this much */
/* One write at most: SQLite's unix VFS writes min(n, 128 KiB - 1) bytes per call (and fails
 * a write of exactly 128 KiB as a short write), so larger writes are split. */
#define MAX_WRITE (124u * 1024)
#define MAX_SHIMS 8 /* distinct base VFSes in one process */

typedef struct wal_file {
    sqlite3_file base; /* must be first: SQLite hands out this pointer */
    sqlite3_file *real;
    int is_wal;
    int commit_frame; /* the last header was a commit frame's: its page ends the commit */
    unsigned char *buf;
    size_t len, cap;
    sqlite3_int64 off; /* file offset of buf[0] */
} wal_file;

/* A registered shim over one base VFS; registered once per process and never removed (SQLite
 * keeps a pointer to it). */
typedef struct shim {
    sqlite3_vfs vfs;
    sqlite3_vfs *real;
    char name[80];
} shim;

static pthread_mutex_t shims_lock = PTHREAD_MUTEX_INITIALIZER;
static shim shims[MAX_SHIMS];
static int n_shims;

#define REAL(p) (((wal_file *)(p))->real)

static int flush(wal_file *f)
{
    int rc = SQLITE_OK;
    for (size_t done = 0; done < f->len && rc == SQLITE_OK;) {
        size_t n = f->len - done < MAX_WRITE ? f->len - done : MAX_WRITE;
        rc = f->real->pMethods->xWrite(f->real, f->buf + done, (int)n,
                                       f->off + (sqlite3_int64)done);
        done += n;
    }
    f->len = 0;
    return rc;
}

static int w_close(sqlite3_file *p)
{
    wal_file *f = (wal_file *)p;
    int rc = flush(f);
    int rc2 = f->real->pMethods->xClose(f->real);
    chat__free(f->buf);
    f->buf = NULL;
    f->cap = 0;
    return rc != SQLITE_OK ? rc : rc2;
}

static int w_read(sqlite3_file *p, void *out, int n, sqlite3_int64 off)
{
    int rc = flush((wal_file *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xRead(REAL(p), out, n, off);
}

/* Room for more (>= 1) bytes after the buffered ones. */
static int reserve(wal_file *f, size_t more)
{
    unsigned char *nb = chat__array_reserve(f->buf, f->len + more - 1, &f->cap, 1);
    if (!nb)
        return SQLITE_IOERR_NOMEM;
    f->buf = nb;
    return SQLITE_OK;
}

static int w_write(sqlite3_file *p, const void *data, int n, sqlite3_int64 off)
{
    wal_file *f = (wal_file *)p;
    int rc;
    if (!f->is_wal || n <= 0)
        return f->real->pMethods->xWrite(f->real, data, n, off);
    if (f->len && off != f->off + (sqlite3_int64)f->len && (rc = flush(f)) != SQLITE_OK)
        return rc;
    if (f->len + (size_t)n > BUF_MAX && (rc = flush(f)) != SQLITE_OK)
        return rc;
    if ((size_t)n > BUF_MAX) /* never from SQLite's WAL (a page is at most 64 KiB) */
        return f->real->pMethods->xWrite(f->real, data, n, off);
    if ((rc = reserve(f, (size_t)n)) != SQLITE_OK)
        return rc;
    if (!f->len)
        f->off = off;
    memcpy(f->buf + f->len, data, (size_t)n);
    f->len += (size_t)n;
    if (n == WAL_FRAME_HDR && off >= 32) {
        /* Bytes 4-7 of a frame header: the database size in pages after a commit, else 0. */
        const unsigned char *h = data;
        f->commit_frame = (h[4] | h[5] | h[6] | h[7]) != 0;
        return SQLITE_OK;
    }
    if (f->commit_frame) {
        f->commit_frame = 0;
        return flush(f);
    }
    return SQLITE_OK;
}

static int w_truncate(sqlite3_file *p, sqlite3_int64 size)
{
    int rc = flush((wal_file *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xTruncate(REAL(p), size);
}

static int w_sync(sqlite3_file *p, int flags)
{
    int rc = flush((wal_file *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xSync(REAL(p), flags);
}

static int w_size(sqlite3_file *p, sqlite3_int64 *size)
{
    int rc = flush((wal_file *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xFileSize(REAL(p), size);
}

static int w_lock(sqlite3_file *p, int level)
{
    return REAL(p)->pMethods->xLock(REAL(p), level);
}

static int w_unlock(sqlite3_file *p, int level)
{
    return REAL(p)->pMethods->xUnlock(REAL(p), level);
}

static int w_check_lock(sqlite3_file *p, int *out)
{
    return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out);
}

static int w_fcntl(sqlite3_file *p, int op, void *arg)
{
    int rc = flush((wal_file *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xFileControl(REAL(p), op, arg);
}

static int w_sector(sqlite3_file *p)
{
    return REAL(p)->pMethods->xSectorSize(REAL(p));
}

static int w_device(sqlite3_file *p)
{
    return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}

static int w_shm_map(sqlite3_file *p, int page, int size, int extend, void volatile **out)
{
    return REAL(p)->pMethods->xShmMap(REAL(p), page, size, extend, out);
}

static int w_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
    return REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags);
}

static void w_shm_barrier(sqlite3_file *p)
{
    REAL(p)->pMethods->xShmBarrier(REAL(p));
}

static int w_shm_unmap(sqlite3_file *p, int delete_flag)
{
    return REAL(p)->pMethods->xShmUnmap(REAL(p), delete_flag);
}

static int w_fetch(sqlite3_file *p, sqlite3_int64 off, int n, void **out)
{
    int rc = flush((wal_file *)p);
    return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xFetch(REAL(p), off, n, out);
}

static int w_unfetch(sqlite3_file *p, sqlite3_int64 off, void *page)
{
    return REAL(p)->pMethods->xUnfetch(REAL(p), off, page);
}

/* The base file's method table version decides which of these SQLite may call (it checks
 * iVersion before the shared-memory and mmap methods), so the wrapper claims the same one. */
#define WAL_METHODS(version)                                                                  \
    {                                                                                         \
        version, w_close, w_read, w_write, w_truncate, w_sync, w_size, w_lock, w_unlock,      \
            w_check_lock, w_fcntl, w_sector, w_device, w_shm_map, w_shm_lock, w_shm_barrier,  \
            w_shm_unmap, w_fetch, w_unfetch,                                                  \
    }
static const sqlite3_io_methods methods_by_version[3] = {WAL_METHODS(1), WAL_METHODS(2),
                                                          WAL_METHODS(3)};

/* ---- the VFS: xOpen wraps the file; everything else is the base VFS's, called with it ---- */

#define BASE(vfs) (((shim *)(vfs)->pAppData)->real)

static int shim_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *p, int flags, int *out)
{
    wal_file *f = (wal_file *)p;
    memset(f, 0, sizeof *f);
    f->real = (sqlite3_file *)(f + 1);
    int rc = BASE(vfs)->xOpen(BASE(vfs), name, f->real, flags, out);
    if (rc != SQLITE_OK || !f->real->pMethods) {
        if (f->real->pMethods)
            f->real->pMethods->xClose(f->real);
        p->pMethods = NULL; /* a failed open has no methods: SQLite calls none, not xClose */
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    int v = f->real->pMethods->iVersion;
    p->pMethods = &methods_by_version[(v < 1 ? 1 : v > 3 ? 3 : v) - 1];
    f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    return SQLITE_OK;
}

static int shim_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return BASE(vfs)->xDelete(BASE(vfs), name, sync_dir);
}

static int shim_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return BASE(vfs)->xAccess(BASE(vfs), name, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return BASE(vfs)->xFullPathname(BASE(vfs), name, n, out);
}

static void *shim_dl_open(sqlite3_vfs *vfs, const char *name)
{
    return BASE(vfs)->xDlOpen(BASE(vfs), name);
}

static void shim_dl_error(sqlite3_vfs *vfs, int n, char *out)
{
    BASE(vfs)->xDlError(BASE(vfs), n, out);
}

static void (*shim_dl_sym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    return BASE(vfs)->xDlSym(BASE(vfs), h, sym);
}

static void shim_dl_close(sqlite3_vfs *vfs, void *h)
{
    BASE(vfs)->xDlClose(BASE(vfs), h);
}

static int shim_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return BASE(vfs)->xRandomness(BASE(vfs), n, out);
}

static int shim_sleep(sqlite3_vfs *vfs, int us)
{
    return BASE(vfs)->xSleep(BASE(vfs), us);
}

static int shim_current_time(sqlite3_vfs *vfs, double *out)
{
    return BASE(vfs)->xCurrentTime(BASE(vfs), out);
}

static int shim_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return BASE(vfs)->xGetLastError(BASE(vfs), n, out);
}

static int shim_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return BASE(vfs)->xCurrentTimeInt64(BASE(vfs), out);
}

const char *chat__sqlite_walbuf_vfs(const char *base_name)
{
    sqlite3_vfs *real = sqlite3_vfs_find(base_name);
    if (!real)
        return NULL;
    pthread_mutex_lock(&shims_lock);
    const char *found = NULL;
    for (int i = 0; i < n_shims && !found; i++)
        if (shims[i].real == real)
            found = shims[i].name;
    if (!found && n_shims < MAX_SHIMS) {
        shim *s = &shims[n_shims];
        memset(s, 0, sizeof *s);
        s->real = real;
        snprintf(s->name, sizeof s->name, "libchat-walbuf-%d", n_shims);
        /* Version 2 at most: the system-call overrides of version 3 are the base's own
         * business (and SQLite's tests'), not something to forward. */
        s->vfs.iVersion = real->iVersion < 2 ? real->iVersion : 2;
        s->vfs.szOsFile = (int)sizeof(wal_file) + real->szOsFile;
        s->vfs.mxPathname = real->mxPathname;
        s->vfs.zName = s->name;
        s->vfs.pAppData = s;
        s->vfs.xOpen = shim_open;
        s->vfs.xDelete = shim_delete;
        s->vfs.xAccess = shim_access;
        s->vfs.xFullPathname = shim_full_pathname;
        s->vfs.xDlOpen = real->xDlOpen ? shim_dl_open : NULL;
        s->vfs.xDlError = real->xDlError ? shim_dl_error : NULL;
        s->vfs.xDlSym = real->xDlSym ? shim_dl_sym : NULL;
        s->vfs.xDlClose = real->xDlClose ? shim_dl_close : NULL;
        s->vfs.xRandomness = shim_randomness;
        s->vfs.xSleep = shim_sleep;
        s->vfs.xCurrentTime = shim_current_time;
        s->vfs.xGetLastError = real->xGetLastError ? shim_last_error : NULL;
        if (s->vfs.iVersion >= 2)
            s->vfs.xCurrentTimeInt64 = real->xCurrentTimeInt64 ? shim_current_time64 : NULL;
        if (sqlite3_vfs_register(&s->vfs, 0) == SQLITE_OK) {
            n_shims++;
            found = s->name;
        }
    }
    pthread_mutex_unlock(&shims_lock);
    return found;
}
