/* faultvfs: see faultvfs.h. Test-only; never linked into libchat.
 *
 * Model: the real file is the disk. With buffering on, every write or truncate of the main
 * database or the WAL is queued in memory on the file's "inode" (shared by every handle on the
 * same path, as the OS page cache is) and only reaches the disk, in order, when a handle of that
 * file is synced. Reads and sizes see the disk with the queue applied on top. */
#define _GNU_SOURCE
#include "faultvfs.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fv_op {
    struct fv_op *next;
    sqlite3_int64 off;
    int len;                /* -1: truncate to off */
    unsigned char *data;
} fv_op;

typedef struct fv_inode {
    struct fv_inode *next;
    char *path;
    fv_op *head, *tail;
} fv_inode;

typedef struct fv_file {
    sqlite3_file base;
    fv_inode *ino;          /* NULL: not the main db or the WAL; passed through untouched */
    sqlite3_file *real;
} fv_file;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_vfs *root;
static sqlite3_vfs fv_vfs;
static fv_inode *inodes;
static int buffering, frozen;
static long counts[3], faults;
static int fault_kind;
static long fault_k;
static int fault_rc, fault_sticky;
static int crash_kind, crash_mode;
static long crash_k;
static unsigned int crash_seed;

static long crash_locked(int mode, unsigned int seed);
static long dropped_total;

/* ---- inodes and their queues (lock held) ------------------------------------------------- */

static fv_inode *inode_get(const char *path)
{
    for (fv_inode *i = inodes; i; i = i->next)
        if (strcmp(i->path, path) == 0)
            return i;
    fv_inode *i = calloc(1, sizeof *i);
    if (!i)
        return NULL;
    i->path = strdup(path);
    if (!i->path) {
        free(i);
        return NULL;
    }
    i->next = inodes;
    inodes = i;
    return i;
}

static void ops_free(fv_op *o)
{
    while (o) {
        fv_op *n = o->next;
        free(o->data);
        free(o);
        o = n;
    }
}

static int queue_op(fv_inode *ino, sqlite3_int64 off, const void *data, int len)
{
    fv_op *o = calloc(1, sizeof *o);
    if (!o)
        return SQLITE_NOMEM;
    o->off = off;
    o->len = len;
    if (len > 0) {
        o->data = malloc((size_t)len);
        if (!o->data) {
            free(o);
            return SQLITE_NOMEM;
        }
        memcpy(o->data, data, (size_t)len);
    }
    if (ino->tail)
        ino->tail->next = o;
    else
        ino->head = o;
    ino->tail = o;
    return SQLITE_OK;
}

/* Write the queue to the disk through a real handle, then forget it. */
static int flush_via(fv_inode *ino, sqlite3_file *real)
{
    int rc = SQLITE_OK;
    for (fv_op *o = ino->head; o && rc == SQLITE_OK; o = o->next)
        rc = o->len < 0 ? real->pMethods->xTruncate(real, o->off)
                        : real->pMethods->xWrite(real, o->data, o->len, o->off);
    ops_free(ino->head);
    ino->head = ino->tail = NULL;
    return rc;
}

/* Write the queue to the disk through a plain fd (no SQLite handle is open any more). */
static void flush_path(fv_inode *ino)
{
    if (!ino->head)
        return;
    int fd = open(ino->path, O_WRONLY | O_CLOEXEC);
    for (fv_op *o = ino->head; o && fd >= 0; o = o->next) {
        if (o->len < 0) {
            if (ftruncate(fd, (off_t)o->off) != 0)
                break;
        } else if (pwrite(fd, o->data, (size_t)o->len, (off_t)o->off) != o->len) {
            break;
        }
    }
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    ops_free(ino->head);
    ino->head = ino->tail = NULL;
}

/* Count a call; crash at the armed call (the call itself is then dropped: frozen is set), or
 * return the armed fault's code. */
static int fault_hit(int kind)
{
    long n = ++counts[kind];
    if (crash_kind == kind && n == crash_k) {
        crash_kind = 0;
        crash_locked(crash_mode, crash_seed);
        return SQLITE_OK;
    }
    if (fault_kind == kind && (n == fault_k || (fault_sticky && n > fault_k))) {
        faults++;
        return fault_rc;
    }
    return SQLITE_OK;
}

/* ---- io methods -------------------------------------------------------------------------- */

static int fv_close(sqlite3_file *f)
{
    fv_file *p = (fv_file *)f;
    int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
    return rc;
}

static int real_size(fv_file *p, sqlite3_int64 *size)
{
    return p->real->pMethods->xFileSize(p->real, size);
}

static int fv_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    fv_file *p = (fv_file *)f;
    if (!p->ino)
        return p->real->pMethods->xRead(p->real, buf, amt, off);
    pthread_mutex_lock(&lock);
    int rc = p->real->pMethods->xRead(p->real, buf, amt, off);
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) {
        pthread_mutex_unlock(&lock);
        return rc;
    }
    sqlite3_int64 size = 0;
    real_size(p, &size);
    unsigned char *b = buf;
    sqlite3_int64 end = off + amt;
    for (fv_op *o = p->ino->head; o; o = o->next) {
        if (o->len < 0) {
            if (o->off < end) {
                sqlite3_int64 from = o->off > off ? o->off : off;
                memset(b + (from - off), 0, (size_t)(end - from));
            }
            size = o->off;
            continue;
        }
        sqlite3_int64 s = o->off > off ? o->off : off;
        sqlite3_int64 e = o->off + o->len < end ? o->off + o->len : end;
        if (s < e)
            memcpy(b + (s - off), o->data + (s - o->off), (size_t)(e - s));
        if (o->off + o->len > size)
            size = o->off + o->len;
    }
    pthread_mutex_unlock(&lock);
    if (size < end) {
        if (size > off)
            memset(b + (size - off), 0, (size_t)(end - size));
        else
            memset(b, 0, (size_t)amt);
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int fv_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    fv_file *p = (fv_file *)f;
    if (!p->ino)
        return p->real->pMethods->xWrite(p->real, buf, amt, off);
    pthread_mutex_lock(&lock);
    int rc = SQLITE_OK;
    if (frozen)
        ;
    else if ((rc = fault_hit(FV_WRITE)) != SQLITE_OK || frozen)
        ;
    else if (buffering)
        rc = queue_op(p->ino, off, buf, amt);
    else
        rc = p->real->pMethods->xWrite(p->real, buf, amt, off);
    pthread_mutex_unlock(&lock);
    return rc;
}

static int fv_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    fv_file *p = (fv_file *)f;
    if (!p->ino)
        return p->real->pMethods->xTruncate(p->real, size);
    pthread_mutex_lock(&lock);
    int rc = SQLITE_OK;
    if (frozen)
        ;
    else if (buffering)
        rc = queue_op(p->ino, size, NULL, -1);
    else
        rc = p->real->pMethods->xTruncate(p->real, size);
    pthread_mutex_unlock(&lock);
    return rc;
}

static int fv_sync(sqlite3_file *f, int flags)
{
    fv_file *p = (fv_file *)f;
    if (!p->ino)
        return p->real->pMethods->xSync(p->real, flags);
    pthread_mutex_lock(&lock);
    int rc = SQLITE_OK;
    if (frozen)
        ;
    else if ((rc = fault_hit(FV_SYNC)) != SQLITE_OK || frozen)
        ;
    else {
        rc = flush_via(p->ino, p->real);
        if (rc == SQLITE_OK)
            rc = p->real->pMethods->xSync(p->real, flags);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int fv_file_size(sqlite3_file *f, sqlite3_int64 *out)
{
    fv_file *p = (fv_file *)f;
    if (!p->ino)
        return real_size(p, out);
    pthread_mutex_lock(&lock);
    sqlite3_int64 size = 0;
    int rc = real_size(p, &size);
    for (fv_op *o = p->ino->head; o && rc == SQLITE_OK; o = o->next) {
        if (o->len < 0)
            size = o->off;
        else if (o->off + o->len > size)
            size = o->off + o->len;
    }
    pthread_mutex_unlock(&lock);
    *out = size;
    return rc;
}

static int fv_lock(sqlite3_file *f, int l)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xLock(p->real, l);
}

static int fv_unlock(sqlite3_file *f, int l)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xUnlock(p->real, l);
}

static int fv_check_reserved(sqlite3_file *f, int *out)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static int fv_file_control(sqlite3_file *f, int op, void *arg)
{
    fv_file *p = (fv_file *)f;
    /* A size hint extends the disk file behind the queue's back: nothing needs it. */
    if (p->ino && op == SQLITE_FCNTL_SIZE_HINT)
        return SQLITE_OK;
    return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int fv_sector_size(sqlite3_file *f)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xSectorSize(p->real);
}

static int fv_device_chars(sqlite3_file *f)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xDeviceCharacteristics(p->real);
}

static int fv_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xShmMap(p->real, pg, pgsz, extend, pp);
}

static int fv_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xShmLock(p->real, off, n, flags);
}

static void fv_shm_barrier(sqlite3_file *f)
{
    fv_file *p = (fv_file *)f;
    p->real->pMethods->xShmBarrier(p->real);
}

static int fv_shm_unmap(sqlite3_file *f, int del)
{
    fv_file *p = (fv_file *)f;
    return p->real->pMethods->xShmUnmap(p->real, del);
}

/* Version 2: shared memory for WAL, but no xFetch, so SQLite never maps the file and every
 * read goes through fv_read. */
static const sqlite3_io_methods fv_methods = {
    2,
    fv_close,
    fv_read,
    fv_write,
    fv_truncate,
    fv_sync,
    fv_file_size,
    fv_lock,
    fv_unlock,
    fv_check_reserved,
    fv_file_control,
    fv_sector_size,
    fv_device_chars,
    fv_shm_map,
    fv_shm_lock,
    fv_shm_barrier,
    fv_shm_unmap,
    NULL,
    NULL,
};

/* ---- vfs --------------------------------------------------------------------------------- */

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    fv_file *p = (fv_file *)f;
    memset(p, 0, sizeof *p);
    p->real = (sqlite3_file *)(p + 1);
    int rc = root->xOpen(root, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK) {
        if (p->real->pMethods)
            p->real->pMethods->xClose(p->real);
        p->base.pMethods = NULL;
        return rc;
    }
    if (name && (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL))) {
        pthread_mutex_lock(&lock);
        p->ino = inode_get(name);
        pthread_mutex_unlock(&lock);
        if (!p->ino) {
            p->real->pMethods->xClose(p->real);
            p->base.pMethods = NULL;
            return SQLITE_NOMEM;
        }
    }
    p->base.pMethods = &fv_methods;
    return SQLITE_OK;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    pthread_mutex_lock(&lock);
    if (frozen) {
        pthread_mutex_unlock(&lock);
        return SQLITE_OK;
    }
    for (fv_inode *i = inodes; i; i = i->next)
        if (strcmp(i->path, name) == 0) {
            ops_free(i->head);
            i->head = i->tail = NULL;
        }
    pthread_mutex_unlock(&lock);
    return root->xDelete(root, name, sync_dir);
}

int faultvfs_register(void)
{
    if (sqlite3_vfs_find(FAULTVFS_NAME))
        return SQLITE_OK;
    root = sqlite3_vfs_find(NULL);
    if (!root)
        return SQLITE_ERROR;
    fv_vfs = *root;
    fv_vfs.pNext = NULL;
    fv_vfs.zName = FAULTVFS_NAME;
    fv_vfs.szOsFile = (int)sizeof(fv_file) + root->szOsFile;
    fv_vfs.pAppData = NULL;
    fv_vfs.xOpen = fv_open;
    fv_vfs.xDelete = fv_delete;
    return sqlite3_vfs_register(&fv_vfs, 0);
}

/* ---- control ----------------------------------------------------------------------------- */

void faultvfs_set_buffering(int on)
{
    pthread_mutex_lock(&lock);
    buffering = on;
    pthread_mutex_unlock(&lock);
}

void faultvfs_reset_counters(void)
{
    pthread_mutex_lock(&lock);
    counts[FV_WRITE] = counts[FV_SYNC] = 0;
    faults = 0;
    fault_kind = 0;
    crash_kind = 0;
    pthread_mutex_unlock(&lock);
}

long faultvfs_count(int kind)
{
    pthread_mutex_lock(&lock);
    long n = kind == FV_WRITE || kind == FV_SYNC ? counts[kind] : 0;
    pthread_mutex_unlock(&lock);
    return n;
}

void faultvfs_fail_at(int kind, long k, int rc, int sticky)
{
    pthread_mutex_lock(&lock);
    fault_kind = kind;
    fault_k = k;
    fault_rc = rc;
    fault_sticky = sticky;
    pthread_mutex_unlock(&lock);
}

void faultvfs_clear_fault(void)
{
    pthread_mutex_lock(&lock);
    fault_kind = 0;
    pthread_mutex_unlock(&lock);
}

long faultvfs_faults(void)
{
    pthread_mutex_lock(&lock);
    long n = faults;
    pthread_mutex_unlock(&lock);
    return n;
}

static long crash_locked(int mode, unsigned int seed)
{
    long dropped = 0;
    frozen = 1;
    for (fv_inode *i = inodes; i; i = i->next) {
        if (mode == 0)
            continue;
        /* Keep (mode 2) a random subset, in order: the rest never reached the disk. */
        fv_op **pp = &i->head;
        i->tail = NULL;
        while (*pp) {
            fv_op *o = *pp;
            seed = seed * 1103515245u + 12345u;
            if (mode == 2 && ((seed >> 16) & 1)) {
                i->tail = o;
                pp = &o->next;
                continue;
            }
            *pp = o->next;
            o->next = NULL;
            ops_free(o);
            dropped++;
        }
    }
    dropped_total += dropped;
    return dropped;
}

long faultvfs_crash(int mode, unsigned int seed)
{
    pthread_mutex_lock(&lock);
    long n = frozen ? 0 : crash_locked(mode, seed);
    pthread_mutex_unlock(&lock);
    return n;
}

void faultvfs_crash_at(int kind, long k, int mode, unsigned int seed)
{
    pthread_mutex_lock(&lock);
    crash_kind = kind;
    crash_k = k;
    crash_mode = mode;
    crash_seed = seed;
    pthread_mutex_unlock(&lock);
}

int faultvfs_crashed(void)
{
    pthread_mutex_lock(&lock);
    int f = frozen;
    pthread_mutex_unlock(&lock);
    return f;
}

long faultvfs_dropped(void)
{
    pthread_mutex_lock(&lock);
    long n = dropped_total;
    dropped_total = 0;
    pthread_mutex_unlock(&lock);
    return n;
}

void faultvfs_restore(void)
{
    pthread_mutex_lock(&lock);
    /* What survived the crash in the page cache reaches the disk. */
    for (fv_inode *i = inodes; i; i = i->next)
        flush_path(i);
    frozen = 0;
    crash_kind = 0;
    pthread_mutex_unlock(&lock);
}
