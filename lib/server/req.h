/* A client request on its way through the engine: parsed on the loop thread, run as a job
 * on the writer (or hasher) thread, finished on the loop thread, where its outputs go out:
 * a reply to the requesting connection, one fan-out frame to the members of a conversation
 * through the bus, and push events for members with no device online. */
#ifndef CHAT_SERVER_REQ_H
#define CHAT_SERVER_REQ_H

#include "server/internal.h"
#include "server/media_parse.h"

/* Users a frame goes to, with each one's read watermark (for the unread count of a push).
 * The first few live inside the list itself, so a direct conversation's fan-out allocates
 * nothing; a list must not be copied by value. */
#define CHAT__USERLIST_INLINE 4
typedef struct chat__userlist {
    char **users;
    uint64_t *read_seq;
    size_t n, cap;
    char *inline_users[CHAT__USERLIST_INLINE];
    uint64_t inline_seq[CHAT__USERLIST_INLINE];
    char inline_names[CHAT__USERLIST_INLINE][CHAT_ID_MAX + 1];
} chat__userlist;

int chat__userlist_add(chat__userlist *l, const char *user, uint64_t read_seq);
int chat__userlist_has(const chat__userlist *l, const char *user);
void chat__userlist_free(chat__userlist *l);

typedef struct chat__req chat__req;

/* Publish f on the bus to every user of to, except one device. [loop thread] */
void chat__publish(chat_server *srv, const chat__userlist *to, const char *except_user,
                   const char *except_device, chat__frame *f);

struct chat__req {
    chat__job job;
    chat__conn *conn;       /* requester (a reference), or NULL for internal requests */
    cJSON *re;              /* the request id to echo, or NULL */
    cJSON *args;            /* the parsed frame */
    char user[CHAT_ID_MAX + 1];
    char device[CHAT_ID_MAX + 1];

    /* Outputs, filled by run(). */
    chat__frame *reply;
    chat__frame *fanout;
    chat__frame *fanout2;   /* a second frame to the same users, after the first */
    chat__userlist to;
    int fanout_all_devices; /* also to the requesting device */
    int fanout_local;       /* to the devices connected here only, not through the bus */

    /* Push for the recipients with no device online (the requester excluded). */
    int push;
    chat_push_event pev;
    char *pev_title;        /* NULL: none; both only made when the server has push */
    char *pev_preview;
    uint64_t head;          /* unread = head - read_seq */
    /* The last message appended (conv, seq), for the position hint after the fan-out. */
    int64_t hint_conv;
    uint64_t hint_seq;

    /* Optional loop-thread step after the outputs went out; also called on failure (after
     * the error frame), so it must check req->job.status. */
    void (*after)(chat_server *srv, chat__req *req);
    int own_errors;         /* a failure gets no error frame: after() deals with it */
    void *extra;
    void (*extra_free)(void *extra);
    int64_t conv;
    int state;
    int counted;            /* counted in srv->writer_backlog */
    int ack;                /* the reply is a send's ack (its latency is measured) */
    uint64_t recv_us;       /* when the request arrived (stats.h), 0: not measured */
};

/* A request from conn; args is consumed. NULL on ENOMEM (args deleted). */
chat__req *chat__req_new(chat__conn *conn, cJSON *args,
                         int (*run)(chat__job *job, chat__txn *tx));
/* Make a request of c's frame f with a copy of args (size bytes) as extra, and submit it.
 * f and re are consumed either way; returns CHAT_OK or CHAT_ENOMEM (then the error was
 * answered, and extra_free was not called: the caller still owns what args points to). */
int chat__req_start(chat__conn *c, cJSON *f, cJSON *re, int (*run)(chat__job *job, chat__txn *tx),
                    const void *args, size_t size, void (*extra_free)(void *extra));
/* A request of c's frame f (may be NULL) holding extra, not yet submitted: the caller may set
 * more of it, then submits it. f and re are consumed either way, extra only on success (freed
 * with extra_free, chat__free if NULL). NULL on ENOMEM, answered. */
chat__req *chat__req_make(chat__conn *c, cJSON *f, cJSON *re,
                          int (*run)(chat__job *job, chat__txn *tx), void *extra,
                          void (*extra_free)(void *extra));
/* Submit to the writer. */
void chat__req_submit(chat_server *srv, chat__req *req);
/* Fail r with a code; returns the code (for run functions). */
#define chat__req_fail(r, code, reason, ...) chat__job_fail(&(r)->job, code, reason, __VA_ARGS__)
/* Start a reply object {"type": type, "re": <id>}. */
cJSON *chat__req_reply(const chat__req *r, const char *type);

/* Store helpers used by several requests; all fail r on error. [writer thread] */
int chat__txn_conv(chat__txn *tx, chat__req *r, int64_t conv, chat_store_conv *out);
/* conv must exist and user must be an active member. */
int chat__txn_member(chat__txn *tx, chat__req *r, int64_t conv, const char *user,
                     chat_store_conv *conv_out, chat_store_member *m_out);
/* Active members of conv into r->to. */
int chat__txn_fanout_members(chat__txn *tx, chat__req *r, int64_t conv);
/* Both at once, for a request that fans out to the members of a conversation it must belong
 * to: the active members into r->to, and user's row among them into m_out. One listing instead
 * of a lookup and a listing; a refused request costs no more than an accepted one. */
int chat__txn_member_fanout(chat__txn *tx, chat__req *r, const chat_store_conv *conv,
                            const char *user, chat_store_member *m_out);
/* Append a message at head+1 (conv is updated in place and in the store). CHAT_EEXISTS, with
 * nothing written, when the sender's device already stored msg->cmid in conv. */
int chat__txn_append(chat__txn *tx, chat__req *r, chat_store_conv *conv, chat_store_msg *msg);
/* The same, with the sender's member row as read in this transaction (saves reading it again);
 * sender may be NULL. */
int chat__txn_append_as(chat__txn *tx, chat__req *r, chat_store_conv *conv, chat_store_msg *msg,
                        const chat_store_member *sender);
/* Append an event {"type": type, "by": r->user, ...fields} as the requester. event is
 * consumed; NULL (it could not be built) fails r with CHAT_ENOMEM. */
int chat__txn_event(chat__txn *tx, chat__req *r, chat_store_conv *conv, cJSON *event,
                    chat_store_msg *out);

/* group.c: member me (its row as read in this transaction) leaves conv: an event of type event
 * ("left") appended as me, my role none, and a group whose owner left gets the next owner (a
 * second event in r->fanout2); *left_seq the first event's seq. r->to gets the members before
 * the departure (so the leaver hears of it). */
int chat__txn_leave(chat__txn *tx, chat__req *r, chat_store_conv *conv, chat_store_member *me,
                    const char *event, uint64_t *left_seq);

/* The msg object of a plain message (text, media, event) through cJSON: the reference the
 * direct encoder (lifecycle.h: chat__msg_frame, chat__msg_item) is tested against. */
cJSON *chat__msg_json(const chat_store_msg *m);
const char *chat__role_name(int role);
/* A member_list callback: add m to the cJSON array ud as the protocol shows a member ({"user",
 * "role", "delivered", "read", "delivered_ts", "read_ts"}). */
int chat__member_json_add(const chat_store_member *m, void *ud);
int chat__role_parse(const char *s);
/* The conversation entry of convs and conv replies, as seen by member m. */
cJSON *chat__txn_conv_json(chat__txn *tx, const chat_store_member *m);

/* Request handlers, by frame type. [loop thread] */
void chat__handle_send(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_history(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_receipt(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_convs(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_group(chat__conn *c, cJSON *f, cJSON *re, const char *type);
void chat__handle_presence(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_settings(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_typing(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_auth(chat__conn *c, cJSON *f, cJSON *re);
void chat__handle_login(chat__conn *c, cJSON *f, cJSON *re);
/* server.c: revoke this connection's session (persisted), answer ok, close its connections. */
void chat__handle_logout(chat__conn *c, cJSON *f, cJSON *re);

/* A send's arguments, as parsed from its frame (msg.c). */
typedef struct chat__send_args {
    int64_t conv;       /* 0 when sending by "to" */
    const char *to;
    const char *cmid;
    int kind;
    const char *body;   /* text (into args) or the media JSON (owned, in extra) */
    size_t body_len;
    char media_id[CHAT__MEDIA_ID_LEN + 1]; /* a media id of this server's, else "" */
    uint64_t reply;     /* the seq replied to, 0: none */
    uint64_t thread;    /* the thread's root, 0: the main conversation */
} chat__send_args;

/* A send's job: r->extra is a chat__send_args (first in whatever holds it). [writer thread] */
int chat__send_run(chat__job *job, chat__txn *tx);
/* A send in a flat frame (core/flat.h), taken without a cJSON tree when it is a text send with
 * every field valid on a server that writes it here: 1 when taken (submitted, or answered),
 * 0 when the frame must go through chat__handle_send, which then answers what is wrong. */
struct chat__flat;
int chat__send_flat(chat__conn *c, const struct chat__flat *fl);
/* Submit c's send to this server's writer; f, re and a media body are consumed. */
void chat__send_start(chat__conn *c, cJSON *f, cJSON *re, const chat__send_args *a);
/* Answer a request that failed with status the way every request's failure is answered. */
void chat__req_answer_error(chat__conn *c, const cJSON *re, int status, const char *reason,
                            const char *message, int64_t retry_after_ms);
/* 1 if status is a failure of the server's own (the store, memory, shutdown), not a refusal. */
int chat__req_failed_on_our_side(int status);

/* A send, or anything counted as one (edits, deletes, reactions): within the connection's and
 * the user's send rates, with room in the writer's queue. 0 when refused (answered). */
int chat__send_admit(chat__conn *c, const cJSON *re);

/* Field readers that answer the error frame themselves; they return 0 when they did. */
int chat__arg_conv(chat__conn *c, const cJSON *f, const cJSON *re, int64_t *out);
/* Page size from 'limit' (default def), clamped to the page limit. */
int chat__arg_limit(chat__conn *c, const cJSON *f, const cJSON *re, int def, int *out);
int chat__arg_str(chat__conn *c, const cJSON *f, const cJSON *re, const char *key, int required,
                  const char **out, size_t *len);

#endif
