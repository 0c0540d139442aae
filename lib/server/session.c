/* Authentication: a token in the first frame, or a login with a standalone account. */
#include "server/req.h"

#include "auth/password.h"
#include "auth/token.h"
#include "chat/version.h"
#include "core/alloc.h"
#include "core/ids.h"
#include "core/json.h"

#include <stdio.h>
#include <string.h>

#define LOGIN_TOKEN_TTL_MS (30LL * 24 * 3600 * 1000)

static int check_version(chat__conn *c, const cJSON *f, const cJSON *re)
{
    uint64_t v = CHAT_PROTOCOL_VERSION;
    int rc = chat__json_u64(f, "v", &v);
    if (rc == CHAT_ENOTFOUND || (rc == CHAT_OK && v == CHAT_PROTOCOL_VERSION))
        return 1;
    chat__conn_error(c, re, CHAT_EVERSION, "bad_version", "this server speaks protocol version 1",
                     0);
    chat__conn_close(c, 1002, "unsupported protocol version");
    return 0;
}

/* auth_ok carries the inbox cursor, which lives in the store: it goes through the writer, so
 * it also reaches the client before the answer to anything sent after it. */
static int auth_ok_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    cJSON *o = chat__req_reply(r, "auth_ok");
    int ok = o && cJSON_AddNumberToObject(o, "v", CHAT_PROTOCOL_VERSION) &&
             cJSON_AddStringToObject(o, "user", r->user) &&
             cJSON_AddStringToObject(o, "device", r->device) &&
             cJSON_AddNumberToObject(o, "ts", (double)tx->now_ms) &&
             cJSON_AddNumberToObject(o, "cursor", (double)tx->horizon) &&
             (!r->extra || cJSON_AddStringToObject(o, "token", r->extra));
    r->reply = ok ? chat__frame_json(o) : NULL;
    cJSON_Delete(o);
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

static void auth_ok_after(chat_server *srv, chat__req *r)
{
    if (r->job.status == CHAT_OK && r->conn && r->conn->authed)
        chat__presence_snapshot(r->conn);
    else if (r->conn)
        /* The connection is authenticated but the client cannot be told: it must not stay
         * so (an error would have it retry, refused as a second auth). */
        chat__conn_close(r->conn, 1011, "out of memory");
}

/* The connection is now (user, device): register it and answer. token may be NULL. */
static void authenticated(chat__conn *c, cJSON *re, const chat_auth_identity *t, char *token)
{
    /* The connection ends when its token expires: the idle sweep checks (conntimer.c). */
    chat__conn_set_authed(c, t->user, t->device, t->session);
    c->session_exp_ms = t->exp_ms;
    chat__req *r = chat__req_new(c, NULL, auth_ok_run);
    if (!r) {
        chat__free(token);
        cJSON_Delete(re);
        chat__conn_close(c, 1011, "out of memory");
        return;
    }
    r->re = re;
    r->extra = token;
    r->extra_free = chat__free;
    r->after = auth_ok_after;
    r->own_errors = 1;
    chat__req_submit(c->srv, r);
}

void chat__handle_auth(chat__conn *c, cJSON *f, cJSON *re)
{
    chat_server *srv = c->srv;
    const char *tok;
    size_t len;
    if (!check_version(c, f, re) || !chat__arg_str(c, f, re, "token", 1, &tok, &len))
        goto fail;
    chat_auth_identity t;
    int rc = chat__server_verify(srv, tok, len, &t);
    if (rc == CHAT_OK && chat__server_revoked(srv, t.session)) {
        chat__log(srv, CHAT_LOG_INFO, "token refused: session revoked");
        rc = CHAT_EAUTH;
    }
    if (rc != CHAT_OK) {
        chat__conn_error(c, re, CHAT_EAUTH, "auth_failed", "authentication failed", 0);
        chat__conn_close(c, 1008, "authentication failed");
        goto fail;
    }
    cJSON_Delete(f);
    authenticated(c, re, &t, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}

/* ---- login: fetch the hash (writer), verify it (hasher), then issue a token ---- */

typedef struct login_state {
    char hash[CHAT_PWHASH_MAX];
    int unknown; /* no such account (or none with a password): hash is the dummy one */
} login_state;

static int verify_run(chat__job *job, chat__txn *tx)
{
    (void)tx;
    chat__req *r = (chat__req *)job;
    login_state *ls = r->extra;
    size_t len;
    const char *pw = chat__json_str(r->args, "password", &len);
    /* An unknown account is verified too, against the dummy hash, and then refused whatever
     * the outcome: the same work and the same answer as a wrong password. */
    if (!pw || chat__password_verify(ls->hash, pw, len) != CHAT_OK || ls->unknown)
        return chat__req_fail(r, CHAT_EAUTH, "auth_failed", "wrong user or password");
    return CHAT_OK;
}

/* A login left the pending set (every path of a login ends in exactly one call). */
static void login_finished(chat_server *srv)
{
    srv->logins_pending--;
}

static void verify_after(chat_server *srv, chat__req *r)
{
    chat__conn *c = r->conn;
    c->auth_pending = 0;
    login_finished(srv);
    if (r->job.status == CHAT_OK)
        chat__user_login_refund(srv, r->user); /* only failed attempts count */
    if (r->job.status != CHAT_OK || !c->tc)
        return;
    /* Login is refused up front with a host auth backend, so srv->auth is the built-in one
     * here, and the token issued goes through the one verification path. */
    chat_auth_identity t;
    char *token = NULL;
    if (chat__token_issue(&srv->cfg.keys, r->user, r->device, chat__now_ms(srv),
                          LOGIN_TOKEN_TTL_MS, &token) != CHAT_OK ||
        chat__server_verify(srv, token, strlen(token), &t) != CHAT_OK) {
        chat__free(token);
        chat__conn_decline(c, r->re, CHAT_ERROR, "internal", "cannot issue a token", 0);
        return;
    }
    cJSON *re = r->re;
    r->re = NULL;
    authenticated(c, re, &t, token);
}

static int lookup_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    login_state *ls = r->extra;
    chat_store_user u;
    int rc = tx->ops->user_get(tx->st, r->user, &u);
    if (rc == CHAT_ENOTFOUND || (rc == CHAT_OK && !u.pwhash[0])) {
        /* Not refused here: answering before the hash would tell in ~0.2 ms instead of ~100
         * that the account does not exist. */
        ls->unknown = 1;
        snprintf(ls->hash, sizeof ls->hash, "%s", chat__password_dummy_hash());
        return CHAT_OK;
    }
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot read the account");
    memcpy(ls->hash, u.pwhash, sizeof ls->hash);
    return CHAT_OK;
}

static void lookup_after(chat_server *srv, chat__req *r)
{
    chat__conn *c = r->conn;
    if (r->job.status != CHAT_OK || !c->tc) {
        c->auth_pending = 0;
        login_finished(srv);
        return;
    }
    /* Hand the request's state to a hasher job; Argon2id takes ~100 ms and 64 MiB, so the
     * hasher runs one at a time and never on the loop or writer thread. */
    chat__req *v = chat__req_new(c, r->args, verify_run);
    r->args = NULL;
    if (!v) {
        c->auth_pending = 0;
        login_finished(srv);
        chat__user_login_refund(srv, r->user); /* the password was never checked */
        chat__conn_decline(c, r->re, CHAT_ENOMEM, "internal", "out of memory", 0);
        return;
    }
    strcpy(v->user, r->user);
    strcpy(v->device, r->device);
    v->re = r->re;
    r->re = NULL;
    v->extra = r->extra;
    v->extra_free = r->extra_free;
    r->extra = NULL;
    r->extra_free = NULL;
    v->after = verify_after;
    chat__worker_submit(&srv->hasher, &v->job);
}

void chat__handle_login(chat__conn *c, cJSON *f, cJSON *re)
{
    const char *user, *device, *pw;
    size_t ulen, dlen, plen;
    if (!check_version(c, f, re) || !chat__arg_str(c, f, re, "user", 1, &user, &ulen) ||
        !chat__arg_str(c, f, re, "device", 1, &device, &dlen) ||
        !chat__arg_str(c, f, re, "password", 1, &pw, &plen))
        goto fail;
    if (c->srv->auth_custom) {
        chat__conn_error(c, re, CHAT_ENOTSUP, "login_disabled",
                         "this server's host verifies tokens: authenticate with auth", 0);
        goto fail;
    }
    if (!chat__id_valid(user, ulen) || !chat__id_valid(device, dlen) || plen == 0 ||
        plen > 1024) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                         "'user' and 'device' must be ids, 'password' 1-1024 bytes", 0);
        goto fail;
    }
    /* Bounded: Argon2id runs one at a time (~100 ms each), so a queue longer than the limit
     * would only make every login wait; refuse at once instead. */
    chat_server *srv = c->srv;
    int64_t retry = 0;
    if (srv->logins_pending >= chat__limit(srv, CHAT_LIMIT_LOGINS_PENDING)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited", "too many logins in progress", 1000);
        goto fail;
    }
    if (!chat__user_login_take(srv, user, &retry)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited",
                           "too many failed logins for this account", retry);
        goto fail;
    }
    login_state *ls = chat__calloc(1, sizeof *ls);
    chat__req *r = ls ? chat__req_new(c, NULL, lookup_run) : NULL;
    if (!r) {
        chat__user_login_refund(srv, user); /* the attempt never happened */
        chat__conn_decline(c, re, CHAT_ENOMEM, "internal", "out of memory", 0);
        chat__free(ls);
        goto fail;
    }
    r->args = f;
    snprintf(r->user, sizeof r->user, "%s", user);
    snprintf(r->device, sizeof r->device, "%s", device);
    r->re = re;
    r->extra = ls;
    r->extra_free = chat__free;
    r->after = lookup_after;
    c->auth_pending = 1;
    srv->logins_pending++;
    chat__req_submit(c->srv, r);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
