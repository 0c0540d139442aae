/**
 * @file sys/blob.h
 * @brief Media byte store vtable (backend-author API, stable per minor release).
 *
 * A blob store keeps media bytes under their content id (the lower-case hex BLAKE2b-256 of
 * the bytes, computed by the engine) and stages uploads in progress under an upload key, so an
 * interrupted upload can continue from its last byte. A staged object is never readable
 * through open(): stage_commit() publishes it atomically, whole or not at all.
 *
 * Keys and ids are 1..64 characters of [0-9a-z] (the engine checks them before any call, so a
 * backend never sees a path-like name).
 *
 * Threading: stage_commit() runs on the server's writer thread (it may fsync); every other
 * method runs on the loop thread and must be bounded: the engine reads and writes in chunks of
 * at most 64 KiB per call, and never asks for a whole object at once. libchat never calls one
 * method concurrently with another on the same key; stage_commit() of one key may run while
 * the loop thread uses other keys and ids.
 */
#ifndef CHAT_SYS_BLOB_H
#define CHAT_SYS_BLOB_H

#include "../common.h"
#include "../types.h"

CHAT_BEGIN_DECLS

#define CHAT_BLOB_OPS_VERSION 2

/**
 * ctl op: drop every staging object. The server calls it once when it starts, because
 * unfinished uploads live in its memory and do not survive a restart. arg is NULL. A backend
 * without ctl, or answering CHAT_ENOTSUP, keeps its orphans.
 */
#define CHAT_BLOB_CTL_CLEAR_STAGING 1

struct chat_blob_ops {
    unsigned int version; /**< CHAT_BLOB_OPS_VERSION */
    void (*destroy)(void *state);

    /**
     * Open the staging object of key for appending, creating it (empty) when create is 1.
     * @param size_out receives the bytes already staged.
     * @param handle_out receives the backend's handle, for stage_write() and stage_close().
     * @return CHAT_OK, CHAT_ENOTFOUND (absent and create 0), CHAT_EIO.
     */
    int (*stage_open)(void *state, const char *key, int create, uint64_t *size_out,
                      void **handle_out);
    /** Append len bytes; all or an error (then the staged size is unspecified: the engine
     *  removes the staging object). @return CHAT_OK, CHAT_EIO. */
    int (*stage_write)(void *state, void *handle, const void *buf, size_t len);
    /** Close a handle of stage_open(); the staged bytes stay for a later stage_open(). */
    void (*stage_close)(void *state, void *handle);
    /**
     * Publish the staged bytes of key under id, durably and atomically, and drop the staging
     * object. When id already exists, its bytes are kept and the staged copy is dropped
     * (identical content: stored once). [writer thread]
     * @return CHAT_OK, CHAT_ENOTFOUND (nothing staged), CHAT_EIO.
     */
    int (*stage_commit)(void *state, const char *key, const char *id);
    /** Drop the staging object of key; CHAT_OK when absent. */
    int (*stage_remove)(void *state, const char *key);

    /** Open a published object. @return CHAT_OK, CHAT_ENOTFOUND, CHAT_EIO. */
    int (*open)(void *state, const char *id, uint64_t *size_out, void **handle_out);
    /** Read up to len bytes at offset; *got is 0 only at the end. @return CHAT_OK, CHAT_EIO. */
    int (*read)(void *state, void *handle, uint64_t offset, void *buf, size_t len,
                size_t *got);
    /** Close a handle of open(). */
    void (*close)(void *state, void *handle);

    /** Optional escape hatch; ops below 1000 are libchat's. Unknown ops: CHAT_ENOTSUP. */
    int (*ctl)(void *state, int op, void *arg);

    /* ---- version 2 ---- */

    /**
     * Remove the published object id: the last message that referred to it was erased (deleted
     * for everyone, expired, or its author's account deleted). Optional: without it (or with a
     * version-1 backend) such objects stay in the blob store, unreachable. Called on a libchat
     * worker thread, never concurrently with itself. @return CHAT_OK, CHAT_ENOTFOUND, CHAT_EIO.
     * @since 0.2
     */
    int (*remove)(void *state, const char *id);
};

/**
 * The filesystem blob store rooted at dir (created if missing, mode 0700): objects in
 * dir/objects/<2 hex>/<2 hex>/<id>, staging in dir/staging/<key>. Publishing fsyncs the file,
 * renames it into place and fsyncs the directory.
 * @param state_out receives the state for chat_blob_fs_ops(); owned by the caller until
 *        registered, then by libchat.
 * @return CHAT_OK, CHAT_EINVAL, CHAT_EIO (cannot create the directories), CHAT_ENOMEM.
 * [any thread] @since 0.2
 */
CHAT_API int chat_blob_fs_new(void **state_out, const char *dir);
/**
 * The filesystem blob store at dir for one of several servers sharing it (the nodes of a
 * cluster on a shared or network filesystem): objects as with chat_blob_fs_new(), so an
 * upload through one server downloads through any other, but uploads in progress staged in
 * dir/staging/<instance>. A server clears its staging when it starts (its unfinished uploads
 * live in its memory), and so drops only its own: each server sharing dir needs an instance
 * name of its own, its node id for example.
 * @param instance 1-64 of [A-Za-z0-9_-].
 * @return CHAT_OK, CHAT_EINVAL (a NULL or bad argument), CHAT_EIO (cannot create the
 *         directories), CHAT_ENOMEM. [any thread] @since 0.2
 */
CHAT_API int chat_blob_fs_new_shared(void **state_out, const char *dir, const char *instance);
/** The filesystem blob store's vtable, static. @since 0.2 */
CHAT_API const chat_blob_ops *chat_blob_fs_ops(void);

CHAT_END_DECLS

#endif /* CHAT_SYS_BLOB_H */
