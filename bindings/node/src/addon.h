/* Shared pieces of the Node-API addon: argument conversion, errors, the native client. */
#ifndef CHAT_NODE_ADDON_H
#define CHAT_NODE_ADDON_H

/* N-API 8 (Node 12.22, 14.17, 15.12 and later): type tags, thread-safe functions, cleanup
 * hooks. Every Node and Electron an app ships today has it. */
#define NAPI_VERSION 8
#include <node_api.h>

#include <chat/chat.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The type of a conversation id, taken from the header so that this file follows it. */
typedef __typeof__(chat_conv_list_id((const chat_conv_list *)0, 0)) node_conv_id;

#define MAX_SAFE_INTEGER 9007199254740991ULL /* 2^53 - 1: the largest exact JS number */

/* Per-environment data (a Worker has its own): the JS constructors the addon calls. */
struct node_env {
    napi_ref error_ctor; /* ChatError, from init(); NULL until then */
    napi_ref event_ctor; /* makeEvent(...), from init() */
};

struct transfer;

/* One Client. Owned by its holders: the JS wrapper (until its finalizer), the event thread-safe
 * function (until it is finalized) and each running transfer; freed when the last lets go. */
struct nclient {
    chat_client *c;            /* NULL once freed */
    napi_env env;
    int holders;
    int closed;
    int refed;
    int teardown;              /* the environment is going away: no more JS, no napi refs */
    napi_ref dispatch;         /* function(events[]): strong while refed, else weak */
    napi_threadsafe_function tsfn;
    int tsfn_released;
    pthread_t pump;
    int pump_started;
    int wake_fd;               /* eventfd that stops the pump */
    atomic_int stopping;
    struct transfer *transfers; /* running uploads and downloads */
    int cleanup_hook;
};

/* ---- helpers (addon.c) ---- */

struct node_env *node_env_get(napi_env env);
/* Throw a ChatError(code, reason) prefixed by what; always returns NULL. */
napi_value node_throw(napi_env env, int code, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Throw for a failed libchat call rc on this thread (chat_error_last() when it matches). */
napi_value node_throw_rc(napi_env env, int rc, const char *what);
napi_value node_error_value(napi_env env, int code, const char *what, const char *reason);

napi_value node_undefined(napi_env env);
napi_value node_str(napi_env env, const char *s);
napi_value node_strn(napi_env env, const char *s, size_t len);
napi_value node_bool(napi_env env, int b);
napi_value node_num(napi_env env, double d);
napi_value node_id(napi_env env, uint64_t v);
napi_value node_conv(napi_env env, node_conv_id v);

/* Argument readers: 0 on success; on failure a ChatError EINVAL is pending and -1 returned. */
int node_get_str(napi_env env, napi_value v, const char *what, const char *name, int optional,
                 char **out, size_t *len);
int node_get_id(napi_env env, napi_value v, const char *what, const char *name, uint64_t max,
                uint64_t *out);
int node_get_conv(napi_env env, napi_value v, const char *what, node_conv_id *out);
int node_get_int(napi_env env, napi_value v, const char *what, const char *name, int64_t min,
                 int64_t max, int64_t *out);
int node_get_bool(napi_env env, napi_value v, const char *what, const char *name, int *out);
int node_get_strv(napi_env env, napi_value v, const char *what, const char *name, char ***out,
                  size_t *n);
void node_strv_free(char **v, size_t n);
int node_get_func(napi_env env, napi_value v, const char *what, const char *name, int optional,
                  napi_value *out);
int node_is_nullish(napi_env env, napi_value v);

/* ---- the client (client.c) ---- */

napi_value node_client_class(napi_env env);
void nclient_release(struct nclient *nc);
/* Free the chat_client when closed and no transfer uses it any more. */
void nclient_maybe_free(struct nclient *nc);

/* ---- transfers (transfer.c) ---- */

napi_value node_client_upload(napi_env env, struct nclient *nc, napi_value this_v,
                              napi_value *argv);
napi_value node_client_download(napi_env env, struct nclient *nc, napi_value this_v,
                                napi_value *argv);
/* close(): make every running transfer end (ECLOSED) at its next progress callback. */
void node_transfers_abort(struct nclient *nc);
void node_transfer_abort_id(struct nclient *nc, uint32_t id);
/* Environment teardown: abort and join every transfer thread, free them. */
void node_transfers_join_all(struct nclient *nc);

#endif
