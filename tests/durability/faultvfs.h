/* A test-only SQLite VFS ("faultvfs") wrapping the default VFS, modelled on SQLite's own crash
 * and I/O-error test VFS (src/test6.c, src/test_vfs.c). The store selects it by name through
 * chat_store_sqlite_open(..., "faultvfs"); nothing in libchat knows it exists.
 *
 * It counts xWrite and xSync calls on the main database and the WAL, can fail the k-th one with
 * any SQLite code (once, or for every later call: a full disk), and can hold writes that were
 * not yet synced in memory, per file, as an OS page cache does. Then:
 *   faultvfs_crash(0)  process crash: the disk freezes (later writes, syncs, truncates and
 *                      deletes are dropped) but the page cache survives;
 *   faultvfs_crash(1)  power loss: the disk freezes and the unsynced writes are lost;
 *   faultvfs_crash(2)  power loss that tears: a random subset of the unsynced writes (in no
 *                      particular order) reaches the disk, the rest is lost.
 * After a crash, close every connection (free the server), then faultvfs_restore() and reopen.
 * The -shm file is passed through: it is rebuilt from the WAL when the database is reopened.
 * All functions are thread-safe. */
#ifndef CHAT_TEST_FAULTVFS_H
#define CHAT_TEST_FAULTVFS_H

#define FAULTVFS_NAME "faultvfs"

/* What a fault counts. */
#define FV_WRITE 1
#define FV_SYNC 2

/* Register "faultvfs" (not as the default VFS). Returns an SQLite code. */
int faultvfs_register(void);

/* Hold unsynced writes in memory (needed by faultvfs_crash(1|2)); default off. */
void faultvfs_set_buffering(int on);

/* Zero the counters and clear any armed fault. */
void faultvfs_reset_counters(void);

/* Calls of kind (FV_WRITE or FV_SYNC) since the last reset. */
long faultvfs_count(int kind);

/* Fail the k-th call (1-based, counted from the last reset) of kind with rc, without doing it;
 * with sticky, every later call of that kind fails too until faultvfs_clear_fault(). */
void faultvfs_fail_at(int kind, long k, int rc, int sticky);
void faultvfs_clear_fault(void);

/* Faults that fired since the last reset. */
long faultvfs_faults(void);

/* Crash (see above); seed drives the torn subset of mode 2. Returns the number of unsynced
 * writes dropped. */
long faultvfs_crash(int mode, unsigned int seed);

/* Crash (mode as above) at the k-th call of kind (counted from the last reset), just before
 * that call would have taken effect: a power cut in the middle of a commit. */
void faultvfs_crash_at(int kind, long k, int mode, unsigned int seed);

/* 1 once crashed (until faultvfs_restore). */
int faultvfs_crashed(void);

/* Unsynced writes dropped by crashes since the last call. */
long faultvfs_dropped(void);

/* The disk works again; pending writes of files not yet closed are forgotten. */
void faultvfs_restore(void);

#endif /* CHAT_TEST_FAULTVFS_H */
