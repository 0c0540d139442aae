/* The checking layer: one chat_store_ops that validates every call, then forwards it to the
 * backend it wraps. It is the only place that checks store arguments, so the built-in backends
 * (and any third-party one) may assume valid arguments and a legal call order.
 *
 * What it refuses, with the same codes for every backend:
 * - CHAT_EINVAL: a NULL out pointer or callback, a negative limit, a string that is NULL, empty
 *   where not allowed, or longer than its bound, a row field without its NUL, a counter above
 *   INT64_MAX (see store/check.h);
 * - CHAT_EMISUSE: begin() inside a transaction, commit(), rollback() or lock_convs() outside
 *   one, and from inside a listing callback any method but the single-row lookups conv_get,
 *   member_get, user_get, meta_get, push_mute_get, conv_find_direct, msg_get and msg_count
 *   (the wrapper passes its own trampoline callback to the inner listing methods and counts
 *   the depth).
 * - CHAT_ENOTSUP: a version-2 media method or a version-5 method of a backend without them.
 * lock_convs() also refuses ids that are not positive, ascending and distinct (CHAT_EINVAL),
 * and succeeds doing nothing when the backend has no such method.
 *
 * It also zeroes the version-5 and version-6 fields of what an older backend reads into
 * libchat's rows (conv_get, conv_find_direct, every message listed), as those backends do
 * not know them.
 *
 * Transaction state as the wrapper sees it: a successful begin() opens a transaction; a
 * successful commit() closes it; a failed commit() leaves it open, so the caller's rollback()
 * reaches the backend (store.h: a failing method leaves the transaction usable for rollback);
 * rollback() closes it whatever the backend answers. */
#ifndef CHAT_STORE_CHECKED_H
#define CHAT_STORE_CHECKED_H

#include "chat/sys/store.h"

/* Wrap the backend (*ops_inout, *state_inout) into the checking layer. The inner ops must have
 * passed registration (chat_server_config_set_store: version and required methods); ctl is
 * optional and answers CHAT_ENOTSUP when the inner backend has none.
 *
 * On success, *ops_inout is the checking vtable (static) and *state_inout the wrapper, which
 * owns the inner backend: its destroy() destroys the inner backend, then frees the wrapper.
 * Wrapping an already-wrapped backend changes nothing and succeeds.
 *
 * On failure (CHAT_ENOMEM) the inner backend is destroyed at once (STYLE.md §6, ownership) and
 * both *ops_inout and *state_inout are set to NULL: nothing is left to use or to destroy.
 * CHAT_EINVAL when ops_inout, state_inout or *ops_inout is NULL; then nothing is touched. */
int chat__store_checked_new(const chat_store_ops **ops_inout, void **state_inout);

/* 1 when the backend answered CHAT_EAGAIN to a call since the last begin(): the transaction
 * failed for a reason that may pass (a database unreachable or restarting, a deadlock victim),
 * so what it carried may be retried. */
int chat__store_checked_transient(const chat_store_ops *ops, void *state);

/* 1 when the store behind the checking layer keeps media (version-2 methods). */
int chat__store_checked_has_media(const chat_store_ops *ops, void *state);
/* 1 when the store behind the checking layer keeps push registrations (version-3 methods). */
int chat__store_checked_has_push(const chat_store_ops *ops, void *state);
/* 1 when it keeps the message lifecycle (version-5 methods). */
int chat__store_checked_has_lifecycle(const chat_store_ops *ops, void *state);
/* 1 when, besides, the messages it lists carry their reactions (version 6). */
int chat__store_checked_row_reactions(const chat_store_ops *ops, void *state);

#endif
