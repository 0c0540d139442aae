/* The server engine's internal structures, shared by the files of lib/server. The engine
 * reaches sockets, its loop and its timers only through the transport seam
 * (transport/transport.h). Nothing here is installed. */
#ifndef CHAT_SERVER_INTERNAL_H
#define CHAT_SERVER_INTERNAL_H

#include "chat/errors.h"
#include "chat/server.h"
#include "chat/sys/auth.h"
#include "chat/sys/blob.h"
#include "chat/sys/bus.h"
#include "chat/sys/clock.h"
#include "chat/sys/push.h"
#include "chat/sys/store.h"
#include "auth/keyring.h"
#include "core/presgate.h"
#include "core/ratelimit.h"
#include "core/strmap.h"
#include "core/typing.h"
#include "server/affinity.h"
#include "server/cluster.h"
#include "server/frame.h"
#include "server/hint.h"
#include "server/stats.h"
#include "server/worker.h"
#include "transport/transport.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#define CHAT__LIMIT_MAX 39 /* one past the highest chat_limit */
#define CHAT__PATH_MAX 1024   /* TLS certificate and key paths */
#define CHAT__ORIGINS_MAX 16  /* allowed Origin values */
#define CHAT__ORIGIN_MAX 256  /* bytes of one, with the NUL */

struct chat_server_config {
    char *address;
    int port;
    char *data_dir;
    unsigned int store_flags;
    unsigned int flags;
    int64_t limits[CHAT__LIMIT_MAX];
    chat_log_cb log_cb;
    chat_log_kv_cb log_kv;    /* set instead of log_cb: lines with their fields */
    int log_level;
    void *log_ud;
    chat_clock_fn clock;
    void *clock_ud;
    chat__keyring keys;
    /* TLS and the handshake: fixed arrays, so copying the config copies them. */
    char tls_cert[CHAT__PATH_MAX], tls_key[CHAT__PATH_MAX]; /* both empty: plain ws:// */
    char origins[CHAT__ORIGINS_MAX][CHAT__ORIGIN_MAX];
    int n_origins; /* 0: any Origin */
    const chat_store_ops *store_ops;
    void *store_state;
    const chat_bus_ops *bus_ops;
    void *bus_state;
    const chat_push_ops *push_ops;
    void *push_state;
    const chat_blob_ops *blob_ops;
    void *blob_state;
    const chat_auth_ops *auth_ops; /* NULL: the built-in verifier over keys */
    void *auth_state;
    char *media_base_url; /* NULL: URLs are paths */
    /* The reactions offered (chat_server_config_set_reactions); fixed arrays: copied with
     * the config. */
    char reactions[CHAT_REACTIONS_MAX][CHAT_REACTION_MAX + 1];
    int n_reactions;
    /* The transport: NULL for the native one; the loopback in tests. */
    const chat__transport_ops *transport;
    void *transport_arg;
};

typedef struct chat__conn chat__conn;
typedef struct chat__call chat__call;

/* One WebSocket connection. Freed when the transport closed it and no job refers to it. */
struct chat__conn {
    chat_server *srv;
    chat__tconn *tc;          /* NULL once the transport closed the connection */
    uint64_t id;              /* unique in this server, from 1: logs and the admin API */
    int refs;
    chat__conn *prev, *next;  /* all connections */
    chat__conn *next_of_user; /* connections of the same user (authenticated only) */

    int authed;
    int auth_pending;         /* an auth or login is being checked */
    /* "" until authenticated, then into ids: "user\0device\0session\0" in one allocation of
     * their length, not three CHAT_ID_MAX arrays (idle memory per connection). */
    const char *user, *device, *session;
    char *ids;
    int64_t session_exp_ms;   /* expiry of the token that authenticated it (for logout) */

    /* Outbound queue, bounded in frames and bytes. */
    chat__frame **q;
    size_t q_head, q_count, q_cap, q_bytes;

    int close_code;           /* non-zero: close once the queue is flushed */
    const char *close_reason; /* a static string */
    int64_t close_ms;         /* when the close was decided (chat__loop_ms) */

    chat__bucket send_bucket, typing_bucket;
    chat__bucket presence_bucket, settings_bucket; /* presence.c */
    chat__bucket search_bucket;                    /* search.c */
    int64_t err_window_ms;
    int err_count;
    /* Timers (conntimer.c): the FIFO of connections awaiting authentication, and what the
     * idle sweep reads. Times are chat__loop_ms(). */
    chat__conn *authq_prev, *authq_next;
    int64_t born_ms, last_rx_ms;
    unsigned in_authq : 1, ping_due : 1, ping_sent : 1, hung_up : 1;
    uint8_t held; /* holds on the output until other nodes caught up (cluster.c) */
};

struct chat_server {
    struct chat_server_config cfg;

    const chat_store_ops *store;
    void *store_st;
    const chat_bus_ops *bus;
    void *bus_st;
    const chat_push_ops *push;
    void *push_st;
    const chat_blob_ops *blob; /* NULL: media off */
    void *blob_st;
    const chat_auth_ops *auth; /* never NULL once built: the host's or the built-in */
    void *auth_st;
    int auth_custom;           /* the host's: no login, no issue_token */
    pthread_mutex_t auth_lock; /* verify() runs on the loop and in revoke_token's caller */
    chat__strmap uploads;      /* upload key -> unfinished upload (media_http.c) [loop] */

    chat__worker writer;  /* store transactions, group-committed */
    chat__worker hasher;  /* password hashing, capped to one at a time */

    /* Loop thread state. The transport runs the loop; tp_st is non-NULL while it is open. */
    const chat__transport_ops *tp;
    void *tp_st;
    int loop_ready;           /* wake() may be called (under done_lock) */
    int timers_ready;         /* the timers below are initialised */
    pthread_t thread;
    int thread_started;
    atomic_int port;
    atomic_int stop_requested;
    atomic_int running;
    atomic_int bus_wake;  /* the bus asked for poll() */
    int stopping;

    /* Completed jobs and posted tasks, handed to the loop thread. */
    pthread_mutex_t done_lock;
    chat__job *done_head, *done_tail;

    chat__conn *conns;
    size_t n_conns;
    chat__strmap users;   /* user id -> chat__conn list (next_of_user) */

    /* Per-user limits (userlimit.c) and logins waiting for their password check. */
    chat__strmap user_limits; /* user id -> its buckets */
    int64_t logins_pending;

    pthread_mutex_t revoked_lock;
    chat__strmap revoked; /* session id -> (void *)1 */

    chat__typing typing;
    chat__timer typing_timer;
    chat__timer sweep_timer, authq_timer; /* conntimer.c */
    chat__conn *authq_head, *authq_tail;         /* oldest first */
    chat__conn *sweep_next;                      /* where the sweep's next tick starts */

    /* The message lifecycle: whether the store has it; the expiry sweep (expiry.c); deleted
     * accounts and when (account.c), read by the token check on any thread. */
    int lifecycle;
    int row_reactions; /* and the messages it lists carry their reactions (version 6) */
    chat__timer expiry_timer;
    int expiry_running; /* a sweep job is out [loop] */
    pthread_mutex_t deleted_lock;
    chat__strmap deleted; /* user -> (int64_t *) deletion time */

    /* Presence announcements per user, coalesced (presence.c). [loop] */
    chat__presgate presence;
    int64_t pres_armed_ms;              /* presence_timer's deadline, 0: not armed */
    chat__timer presence_timer;

    /* Position hints and catch-up prompts over a bus that may lose frames (hint.c). [loop] */
    chat__hints hints;

    /* What a bus between nodes adds (cluster.c). [loop] */
    chat__cluster cluster;
    chat__affinity affinity; /* affinity.c [loop] */

    /* Requests of this loop iteration, handed to the writer in one batch (one lock, one
     * wake-up) when the transport's iteration ends (its flush) instead of one by one. */
    int sub_ready;            /* the loop runs and flushes; otherwise submit at once */
    int store_here;           /* the store never blocks: its jobs may run on the loop */
    int here_depth;           /* a job is running on the loop (its done() included) */
    chat__job *sub_head, *sub_tail;
    /* Requests submitted to the writer whose done() has not run yet (loop thread). */
    size_t writer_backlog;

    struct chat__push_srv *pushs; /* push.c: tokens reported invalid, waiting for the writer */
    /* Operability (stats.c, admin.c). */
    chat__loop_stats stats;       /* counters of the loop thread (stats.h) */
    uint64_t next_conn_id;        /* [loop] */
    chat__call *calls_head, *calls_tail; /* chat__loop_call() requests, under done_lock */
    pthread_t loop_tid;           /* the loop thread, while loop_tid_set (under done_lock) */
    int loop_tid_set;
    /* Draining (admin.c): requested from any thread, carried out by the loop. */
    atomic_int draining;          /* 1 from chat_server_drain() on; never cleared */
    int64_t drain_ms;             /* its deadline, from the request (under done_lock) */
    int drain_phase;              /* [loop] CHAT__DRAIN_* */
    int drain_done, drain_rc;     /* the outcome, under done_lock; drain_cond broadcasts it */
    pthread_cond_t drain_cond;
    chat__timer drain_timer;
    int drain_timer_on;
    /* Revoked devices: "user:device" -> (chat__revoked_dev *), under revoked_lock. */
    chat__strmap revoked_devices;
};

/* The server that embeds timer t as its member field. */
#define CHAT__SERVER_OF_TIMER(t, field) ((chat_server *)((char *)(t)-offsetof(chat_server, field)))

/* Logging through the host's callback. */
void chat__log(const chat_server *srv, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line about connection c (may be NULL) with its fields: conn, user, device, the request id
 * re (may be NULL) and code (an error name or a close code; may be NULL). Never pass message
 * bodies or tokens: only ids, static reasons and codes. */
void chat__logc(const chat_server *srv, int level, const chat__conn *c, const cJSON *re,
                const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static inline int chat__log_on(const chat_server *srv, int level)
{
    return (srv->cfg.log_cb || srv->cfg.log_kv) && level <= srv->cfg.log_level;
}
int64_t chat__now_ms(const chat_server *srv);
int64_t chat__limit(const chat_server *srv, int limit);

/* Queue a completed job for the loop thread and wake it. [any thread] */
void chat__server_post(chat_server *srv, chat__job *job);
/* Queue a linked list of completed jobs (head..tail) with one lock and one wake-up. */
void chat__server_post_list(chat_server *srv, chat__job *head, chat__job *tail);
/* Run every posted job's done() on the loop thread. */
void chat__server_drain(chat_server *srv);
/* Queue a job for the writer; it goes with this loop iteration's batch. [loop thread] */
void chat__server_submit(chat_server *srv, chat__job *job);
int chat__server_revoked(chat_server *srv, const char *session);
/* Another node revoked session: refuse it here too and close its connections. [loop thread] */
void chat__server_revoked_elsewhere(chat_server *srv, const char *session);
/* Verify tok[0..len) through the auth backend at the server's clock and check what it
 * returned (ids valid, not expired; exp_ms 0 becomes INT64_MAX). Not the revocation, which
 * the callers check. Logs why a token is refused.
 * @return CHAT_OK, CHAT_EAUTH (refused). [any thread, serialized] */
int chat__server_verify(chat_server *srv, const char *tok, size_t len, chat_auth_identity *id);

/* userlimit.c [loop thread]: take one send of user (all connections) or one login attempt on
 * account user; 1 taken, 0 refused with *retry_after_ms set. A successful login refunds its
 * attempt, so only failed attempts count. */
int chat__user_send_take(chat_server *srv, const char *user, int64_t *retry_after_ms);
int chat__user_login_take(chat_server *srv, const char *user, int64_t *retry_after_ms);
void chat__user_login_refund(chat_server *srv, const char *user);
void chat__user_limits_free(chat_server *srv);

/* conn.c: connection lifetime, output, registry. [loop thread] */
chat__conn *chat__conn_new(chat_server *srv, chat__tconn *tc);
void chat__conn_closed(chat__conn *c);
chat__conn *chat__conn_ref(chat__conn *c);
void chat__conn_unref(chat__conn *c);
/* Queue a frame (a reference is taken) for this connection; closes it with 1013 when its
 * queue is over the limit. */
void chat__conn_send(chat__conn *c, chat__frame *f);
/* reason must be a static string of at most 123 bytes (the close frame's limit). */
void chat__conn_close(chat__conn *c, int code, const char *reason);
/* The transport may write: send one queued frame. Returns -1 to close the connection. */
int chat__conn_writable(chat__conn *c);
/* Connection timers (conntimer.c). [loop thread] */
/* The loop's monotonic clock in ms, read once per loop iteration by the transport: no clock
 * call per frame on the receive path. */
static inline int64_t chat__loop_ms(chat_server *srv)
{
    return srv->tp->now_ms(srv->tp_st);
}
/* Make and arm the connection timers (CHAT_ENOMEM); close them (the loop is ending). */
int chat__conntimer_start(chat_server *srv);
void chat__conntimer_stop(chat_server *srv);
/* Join the authentication FIFO (closed with 1008 at the deadline); leave it. */
void chat__conn_auth_wait(chat__conn *c);
void chat__conn_auth_done(chat__conn *c);
/* Bytes arrived: the connection is alive. Not once its close is decided: a peer that keeps
 * sending but does not read must still be gone at the close deadline (conntimer.c). */
static inline void chat__conn_heard(chat__conn *c)
{
    if (c->close_code)
        return;
    c->last_rx_ms = chat__loop_ms(c->srv);
    c->ping_sent = 0;
}

void chat__conn_set_authed(chat__conn *c, const char *user, const char *device,
                           const char *session);
/* Error frame to c for input refused as malformed or forbidden (a bad frame, an unknown type,
 * a bad field, not a member, a failed authentication); counts towards the abuse limit. re may
 * be NULL. When the frame cannot be made (out of memory), c is closed with 1011 instead: a
 * request is answered or its connection ends. */
void chat__conn_error(chat__conn *c, const cJSON *re, int code, const char *reason,
                      const char *message, int64_t retry_after_ms);
/* The same frame for a refusal of the server's own making: back-pressure (busy, rate_limited),
 * its own failure (storage, internal), a feature it lacks. Not counted: a client that pipelines
 * under load meets these without fault, and closing it would drop answers already on the way
 * (acks of committed messages among them). Closes with 1011 likewise. */
void chat__conn_decline(chat__conn *c, const cJSON *re, int code, const char *reason,
                        const char *message, int64_t retry_after_ms);
/* Deliver f (shared, not consumed) to every local connection of user except device (may be
 * NULL). f NULL: the frame could not be made (out of memory), and those connections are closed
 * with 1011 instead. */
void chat__deliver_local(chat_server *srv, const char *user, const char *except_device,
                         chat__frame *f);

/* dispatch.c: one complete WebSocket text message from c. [loop thread] */
void chat__dispatch(chat__conn *c, const char *buf, size_t len);

/* presence.c [loop thread] */
void chat__presence_changed(chat_server *srv, const char *user, int online);
void chat__presence_snapshot(chat__conn *c);
/* Announce every pending presence change now (the server is stopping). */
void chat__presence_flush(chat_server *srv);
void chat__presence_init(chat_server *srv); /* after the config is copied */
void chat__presence_free(chat_server *srv);
void chat__typing_timer_arm(chat_server *srv);
/* Make the presence and typing timers (CHAT_ENOMEM); close them (the loop is ending). */
int chat__presence_timers_start(chat_server *srv);
void chat__presence_timers_stop(chat_server *srv);

/* transport_sink.c: the engine's side of the transport seam, for srv. */
void chat__server_sink(chat_server *srv, chat__transport_sink *out);
/* The loop was woken (sink.wake) / its iteration ends (sink.flush): server.c. */
void chat__server_on_wake(chat_server *srv);
void chat__server_flush(chat_server *srv);

/* The receive time of this loop iteration's messages, us of CLOCK_MONOTONIC: the clock is read
 * at the first request of an iteration only (stats.h). [loop thread] */
uint64_t chat__rx_us_read(chat_server *srv);
static inline uint64_t chat__rx_us(chat_server *srv)
{
    return srv->stats.rx_valid ? srv->stats.rx_us : chat__rx_us_read(srv);
}

/* Run fn(srv, arg) on the loop thread and wait for it: at once when called on the loop thread,
 * else through one hand-over. CHAT_OK (it ran), CHAT_ECLOSED (the loop is not running; it did
 * not run), CHAT_ETIMEDOUT (no answer within timeout_ms: arg now belongs to the request, which
 * frees it with arg_free once the loop is done with it; the caller must not touch it),
 * CHAT_ENOMEM. [any thread] */
int chat__loop_call(chat_server *srv, void (*fn)(chat_server *srv, void *arg), void *arg,
                    void (*arg_free)(void *arg), int timeout_ms);
/* 1 on the server's loop thread. [any thread] */
int chat__on_loop_thread(chat_server *srv);
/* Serve the pending loop calls (run: 1) or release them unrun (0). [loop thread] */
void chat__loop_calls_serve(chat_server *srv, int run);

/* admin.c: the drain, carried out by the loop. [loop thread] */
enum { CHAT__DRAIN_OFF, CHAT__DRAIN_INFLIGHT, CHAT__DRAIN_CLOSING, CHAT__DRAIN_DONE };
/* Start the drain once requested; advance it. Called on every wake-up and flush. */
void chat__drain_step(chat_server *srv);
/* The loop is stopping: a drain still running ends with CHAT_ECLOSED. */
void chat__drain_abort(chat_server *srv);
/* 1 when (user, device)'s tokens issued at iat_ms (0: unknown) are refused. [any thread] */
int chat__device_revoked(chat_server *srv, const char *user, const char *device, int64_t iat_ms);
/* A revocation record loaded from the store (its session key starts with "dev:"): 1 when it
 * was one and was taken (CHAT_ENOMEM as -1), 0 when it is a session's. [before start] */
int chat__device_revoked_load(chat_server *srv, const char *key);
void chat__revoked_devices_free(chat_server *srv);

/* Use a transport other than the native one (the loopback, in tests); arg is handed to its
 * open(). [before chat_server_new] */
void chat__server_config_set_transport(chat_server_config *cfg, const chat__transport_ops *ops,
                                       void *arg);

#endif
