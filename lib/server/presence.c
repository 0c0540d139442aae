/* Presence (online, last seen) among contacts, the last-seen privacy setting, and typing.
 * All of it is ephemeral except last_seen and the setting, which are written on change only. */
#include "server/req.h"

#include "core/alloc.h"
#include "core/array.h"
#include "core/ids.h"
#include "core/json.h"

#include <stdio.h>
#include <string.h>

/* A contact's stored presence: last seen and whether it is hidden. */
typedef struct contact {
    char user[CHAT_ID_MAX + 1];
    int64_t last_seen_ms;
    int hide;
} contact;

typedef struct contacts {
    contact *v;
    size_t n, cap;
    chat__txn *tx;
    int64_t left_ms; /* presence changes: when the last device left (the last seen) */
} contacts;

static void contacts_free(void *p)
{
    contacts *cs = p;
    if (cs)
        chat__free(cs->v);
    chat__free(cs);
}

static int add_contact(const char *name, void *ud)
{
    contacts *cs = ud;
    contact *nv = chat__array_reserve(cs->v, cs->n, &cs->cap, sizeof *nv);
    if (!nv)
        return CHAT_ENOMEM;
    cs->v = nv;
    contact *ct = &cs->v[cs->n++];
    memset(ct, 0, sizeof *ct);
    strncpy(ct->user, name, CHAT_ID_MAX);
    return 0;
}

static int fill_contact(chat__txn *tx, contact *ct)
{
    chat_store_user u;
    int rc = tx->ops->user_get(tx->st, ct->user, &u);
    if (rc == CHAT_OK) {
        ct->last_seen_ms = u.last_seen_ms;
        ct->hide = u.hide_last_seen;
    }
    return rc == CHAT_OK || rc == CHAT_ENOTFOUND ? CHAT_OK : rc;
}

static int shown_online(chat_server *srv, const char *user);

/* Append {"user","online"[,"last_seen"]} to the array users; 0 when out of memory. */
static int add_presence(cJSON *users, const char *user, int online, int64_t last_seen, int hide)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "user", user) &&
             cJSON_AddBoolToObject(o, "online", online) &&
             (online || hide || last_seen <= 0 ||
              cJSON_AddNumberToObject(o, "last_seen", (double)last_seen));
    if (!ok) {
        cJSON_Delete(o);
        return 0;
    }
    cJSON_AddItemToArray(users, o); /* allocates nothing */
    return 1;
}

/* ---- my contacts' state, after auth_ok or on request ---- */

static int contacts_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    contacts *cs = r->extra;
    int rc = tx->ops->contacts(tx->st, r->user, add_contact, cs);
    for (size_t i = 0; rc == CHAT_OK && i < cs->n; i++)
        rc = fill_contact(tx, &cs->v[i]);
    if (rc != CHAT_OK)
        return chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                              "cannot read contacts");
    return CHAT_OK;
}

/* A snapshot whose job failed (its batch rolled back: a store failure, or memory) is made
 * again, this many times in all. */
#define SNAPSHOT_TRIES 3

static void start_contacts(chat__conn *c, cJSON *f, cJSON *re, int tries);

/* The presence answer (re) or the snapshot after auth_ok (no re) cannot be made: the error,
 * or for the snapshot, which the client waits for without a request id, a close. */
static void contacts_failed(chat__conn *c, const cJSON *re)
{
    if (re)
        chat__conn_decline(c, re, CHAT_ENOMEM, "internal", "out of memory", 0);
    else
        chat__conn_close(c, 1011, "out of memory");
}

/* Answer with the state of the requested users who are contacts (all contacts without a
 * request list); the rest are "unknown". Online state is read here, on the loop thread. */
static void contacts_after(chat_server *srv, chat__req *r)
{
    contacts *cs = r->extra;
    if (!r->conn || !r->conn->tc)
        return;
    if (r->job.status != CHAT_OK) {
        /* The snapshot after auth_ok has no request id for an error to echo: it is made again
         * (a batch that another job's store failure rolled back takes it along). When it keeps
         * failing, the error says so without an id, and the connection stays: a store failure
         * is no reason to drop one. */
        if (!r->re && !r->args && r->state < SNAPSHOT_TRIES)
            start_contacts(r->conn, NULL, NULL, r->state + 1);
        else if (!r->re)
            chat__conn_decline(r->conn, NULL, r->job.status,
                               r->job.reason ? r->job.reason : "internal",
                               r->job.message[0] ? r->job.message : "presence failed", 0);
        return;
    }
    const cJSON *want = chat__json_get(r->args, "users");
    cJSON *o = r->re ? chat__req_reply(r, "presence") : cJSON_CreateObject();
    int ok = o && (r->re || cJSON_AddStringToObject(o, "type", "presence"));
    cJSON *users = ok ? cJSON_AddArrayToObject(o, "users") : NULL;
    ok = users != NULL;
    if (ok && !want) {
        for (size_t i = 0; ok && i < cs->n; i++)
            ok = add_presence(users, cs->v[i].user, shown_online(srv, cs->v[i].user),
                              cs->v[i].last_seen_ms, cs->v[i].hide);
    } else if (ok) {
        cJSON *unknown = cJSON_AddArrayToObject(o, "unknown");
        ok = unknown != NULL;
        const cJSON *u;
        cJSON_ArrayForEach(u, want)
        {
            const contact *found = NULL;
            for (size_t i = 0; i < cs->n && !found; i++)
                if (strcmp(cs->v[i].user, u->valuestring) == 0)
                    found = &cs->v[i];
            cJSON *name = !found && ok ? cJSON_CreateString(u->valuestring) : NULL;
            if (found && ok)
                ok = add_presence(users, found->user, shown_online(srv, found->user),
                                  found->last_seen_ms, found->hide);
            else if (ok)
                ok = cJSON_AddItemToArray(unknown, name);
        }
    }
    chat__frame *f = ok ? chat__frame_json(o) : NULL;
    cJSON_Delete(o);
    if (f) {
        chat__conn_send(r->conn, f);
        chat__frame_unref(f);
    } else {
        contacts_failed(r->conn, r->re);
    }
}

/* tries: this is the snapshot's how manyth attempt (1 for the first). */
static void start_contacts(chat__conn *c, cJSON *f, cJSON *re, int tries)
{
    contacts *cs = chat__calloc(1, sizeof *cs);
    chat__req *r = cs ? chat__req_new(c, NULL, contacts_run) : NULL;
    if (!r) {
        contacts_failed(c, re);
        chat__free(cs);
        cJSON_Delete(f);
        cJSON_Delete(re);
        return;
    }
    r->args = f;
    r->re = re;
    r->extra = cs;
    r->extra_free = contacts_free;
    r->after = contacts_after;
    r->own_errors = !re;
    r->state = tries;
    chat__req_submit(c->srv, r);
}

void chat__presence_snapshot(chat__conn *c)
{
    start_contacts(c, NULL, NULL, 1);
}

void chat__handle_presence(chat__conn *c, cJSON *f, cJSON *re)
{
    const cJSON *users = chat__json_get(f, "users");
    int n = cJSON_IsArray(users) ? cJSON_GetArraySize(users) : -1;
    const cJSON *u;
    int ok = n >= 1 && n <= 1024;
    if (ok) {
        cJSON_ArrayForEach(u, users)
        {
            if (!cJSON_IsString(u) || !chat__id_valid(u->valuestring, strlen(u->valuestring)))
                ok = 0;
        }
    }
    if (!ok) {
        chat__conn_error(c, re, CHAT_EINVAL, users ? "bad_field" : "missing_field",
                         "'users' must be an array of 1-1024 user ids", 0);
        cJSON_Delete(re);
        cJSON_Delete(f);
        return;
    }
    int64_t retry = 0;
    double rate = (double)chat__limit(c->srv, CHAT_LIMIT_PRESENCE_RATE);
    if (!chat__bucket_take(&c->presence_bucket, rate, rate, chat__now_ms(c->srv), &retry)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited", "presence queries too fast", retry);
        cJSON_Delete(re);
        cJSON_Delete(f);
        return;
    }
    start_contacts(c, f, re, 1);
}

/* ---- a user came online or went offline anywhere: tell the contacts ---- */

static int changed_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    contacts *cs = r->extra;
    chat_store_user u;
    int rc = tx->ops->user_get(tx->st, r->user, &u);
    if (rc == CHAT_ENOTFOUND) {
        memset(&u, 0, sizeof u);
        strcpy(u.name, r->user);
        u.created_ms = tx->now_ms;
        rc = CHAT_OK;
    }
    if (rc != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot read the user");
    if (!r->state) {
        u.last_seen_ms = cs->left_ms ? cs->left_ms : tx->now_ms;
        if (tx->ops->user_put(tx->st, &u) != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "cannot store last seen");
    }
    if (tx->ops->contacts(tx->st, r->user, add_contact, cs) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot read contacts");
    for (size_t i = 0; i < cs->n; i++)
        if (chat__userlist_add(&r->to, cs->v[i].user, 0) != CHAT_OK)
            return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    cJSON *o = cJSON_CreateObject();
    cJSON *users = o && cJSON_AddStringToObject(o, "type", "presence")
                       ? cJSON_AddArrayToObject(o, "users")
                       : NULL;
    if (users && add_presence(users, r->user, r->state, u.last_seen_ms, u.hide_last_seen))
        r->fanout = chat__frame_json(o);
    cJSON_Delete(o);
    r->fanout_all_devices = 1;
    /* Every node hears of the change from its bus and tells its own devices: through the bus,
     * contacts elsewhere would hear it once per node. */
    r->fanout_local = 1;
    return r->fanout ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

static void pres_arm(chat_server *srv, int64_t at, int64_t now, int64_t min_wait);

/* The announcement did not reach the contacts (out of memory, the store failed): the gate
 * tries it again, unless the server is stopping. */
static void announce_failed(chat_server *srv, const char *user, int online, int64_t left_ms)
{
    int64_t now = chat__now_ms(srv), due = 0;
    if (!srv->stopping)
        due = chat__presgate_failed(&srv->presence, user, online, left_ms, now);
    if (due > 0)
        pres_arm(srv, due, now, 1);
    else if (due < 0 || srv->stopping)
        chat__log(srv, CHAT_LOG_WARN, "presence change of %s dropped: out of memory", user);
}

static void announce_after(chat_server *srv, chat__req *r)
{
    contacts *cs = r->extra;
    if (r->job.status != CHAT_OK)
        announce_failed(srv, r->user, r->state, cs->left_ms);
}

/* Tell user's contacts that user is online or offline (last seen left_ms). Non-zero when it
 * cannot be started. */
static int announce(chat_server *srv, const char *user, int online, int64_t left_ms)
{
    contacts *cs = chat__calloc(1, sizeof *cs);
    chat__req *r = cs ? chat__req_new(NULL, NULL, changed_run) : NULL;
    if (!r) {
        chat__free(cs);
        return CHAT_ENOMEM;
    }
    snprintf(r->user, sizeof r->user, "%s", user);
    r->state = online;
    cs->left_ms = online ? 0 : left_ms;
    r->extra = cs;
    r->extra_free = contacts_free;
    r->after = announce_after;
    chat__req_submit(srv, r);
    return CHAT_OK;
}

/* ---- coalescing (core/presgate.h): what the bus says vs. what contacts were told ----
 * Presence answers and snapshots show the announced state, consistent with the frames. */

static int shown_online(chat_server *srv, const char *user)
{
    int shown = chat__presgate_shown(&srv->presence, user);
    return shown >= 0 ? shown : srv->bus->online(srv->bus_st, user);
}

static int gate_announce(const char *user, int online, int64_t last_seen_ms, void *ud)
{
    return announce(ud, user, online, last_seen_ms);
}

/* The timer fires at most every PRES_TICK_MS, so deadlines close together (users in their grace,
 * users whose bucket is refilling: offline for less than a minute, by default) are served by one
 * firing; a firing visits only the entries that are due. */
#define PRES_TICK_MS 25

static void pres_timer_cb(chat__timer *t)
{
    chat_server *srv = CHAT__SERVER_OF_TIMER(t, presence_timer);
    int64_t now = chat__now_ms(srv);
    srv->pres_armed_ms = 0;
    int64_t first = chat__presgate_run(&srv->presence, now, gate_announce, srv);
    if (first)
        pres_arm(srv, first, now, PRES_TICK_MS);
}

/* Arm the timer for at, unless it is armed for a time as early already. */
static void pres_arm(chat_server *srv, int64_t at, int64_t now, int64_t min_wait)
{
    if (!srv->timers_ready || (srv->pres_armed_ms && srv->pres_armed_ms <= at))
        return;
    int64_t wait = at - now;
    if (wait < min_wait)
        wait = min_wait;
    srv->pres_armed_ms = now + wait;
    srv->tp->timer_start(&srv->presence_timer, wait);
}

void chat__presence_changed(chat_server *srv, const char *user, int online)
{
    int64_t now = chat__now_ms(srv), due = 0;
    /* Stopping: pending changes were flushed; announce at once (last seen gets stored). */
    if (srv->stopping ||
        chat__presgate_change(&srv->presence, user, online, now, gate_announce, srv, &due) !=
            CHAT_OK) {
        if (announce(srv, user, online, now) != CHAT_OK) /* uncoalesced, but still correct */
            chat__log(srv, CHAT_LOG_WARN, "presence change of %s dropped: out of memory", user);
        return;
    }
    if (due)
        pres_arm(srv, due, now, 1);
}

void chat__presence_flush(chat_server *srv)
{
    chat__presgate_flush(&srv->presence, chat__now_ms(srv), gate_announce, srv);
    srv->pres_armed_ms = 0; /* the transport's timers go with it */
}

void chat__presence_init(chat_server *srv)
{
    chat__presgate_init(&srv->presence, chat__limit(srv, CHAT_LIMIT_PRESENCE_GRACE_MS),
                        (double)chat__limit(srv, CHAT_LIMIT_PRESENCE_USER_RATE));
}

void chat__presence_free(chat_server *srv)
{
    chat__presgate_free(&srv->presence);
}

/* ---- settings ---- */

static int settings_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    chat_store_user u;
    int rc = tx->ops->user_get(tx->st, r->user, &u);
    if (rc == CHAT_ENOTFOUND) {
        memset(&u, 0, sizeof u);
        strcpy(u.name, r->user);
        u.created_ms = tx->now_ms;
    } else if (rc != CHAT_OK) {
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot read the user");
    }
    u.hide_last_seen = r->state;
    if (tx->ops->user_put(tx->st, &u) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the setting");
    r->reply = chat__frame_take_json(chat__req_reply(r, "ok"));
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

void chat__handle_settings(chat__conn *c, cJSON *f, cJSON *re)
{
    int hide = 0;
    int rc = chat__json_bool(f, "hide_last_seen", &hide);
    if (rc != CHAT_OK) {
        chat__conn_error(c, re, CHAT_EINVAL, rc == CHAT_ENOTFOUND ? "missing_field" : "bad_field",
                         "'hide_last_seen' must be true or false", 0);
        cJSON_Delete(re);
        cJSON_Delete(f);
        return;
    }
    int64_t retry = 0;
    double per_min = (double)chat__limit(c->srv, CHAT_LIMIT_SETTINGS_RATE);
    if (!chat__bucket_take(&c->settings_bucket, per_min / 60.0, per_min, chat__now_ms(c->srv),
                           &retry)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited", "settings changes too fast", retry);
        cJSON_Delete(re);
        cJSON_Delete(f);
        return;
    }
    chat__req *r = chat__req_new(c, f, settings_run);
    if (!r) {
        chat__conn_decline(c, re, CHAT_ENOMEM, "internal", "out of memory", 0);
        cJSON_Delete(re);
        return;
    }
    r->re = re;
    r->state = hide;
    chat__req_submit(c->srv, r);
}

/* ---- typing ---- */

static int typing_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    chat_store_conv conv;
    chat_store_member me;
    int rc = chat__txn_conv(tx, r, r->conv, &conv);
    if (rc == CHAT_OK)
        rc = chat__txn_member_fanout(tx, r, &conv, r->user, &me);
    return rc;
}

static chat__frame *typing_frame(chat_server *srv, int64_t conv, const char *user, int start)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "type", "typing") &&
             cJSON_AddNumberToObject(o, "conv", (double)conv) &&
             cJSON_AddStringToObject(o, "user", user) &&
             cJSON_AddStringToObject(o, "state", start ? "start" : "stop") &&
             (!start || cJSON_AddNumberToObject(o, "ttl_ms", (double)chat__limit(
                                                               srv, CHAT_LIMIT_TYPING_TTL_MS)));
    chat__frame *f = ok ? chat__frame_json(o) : NULL;
    cJSON_Delete(o);
    return f;
}

/* Membership is checked by the store; the transition is decided here, on the loop thread,
 * so a repeated "start" only extends the deadline and is not re-broadcast. */
static void typing_after(chat_server *srv, chat__req *r)
{
    int announce;
    if (r->job.status != CHAT_OK)
        return;
    if (r->state) {
        announce = chat__typing_start(&srv->typing, r->conv, r->user,
                                      chat__now_ms(srv) +
                                          chat__limit(srv, CHAT_LIMIT_TYPING_TTL_MS)) == 1;
        chat__typing_timer_arm(srv);
    } else {
        /* An internal stop (expiry) has no connection: it was removed from the table already. */
        announce = r->conn ? chat__typing_stop(&srv->typing, r->conv, r->user) : 1;
    }
    if (!announce)
        return;
    chat__frame *f = typing_frame(srv, r->conv, r->user, r->state);
    if (f) {
        chat__publish(srv, &r->to, r->conn ? r->user : NULL, r->conn ? r->device : NULL, f);
        chat__frame_unref(f);
    }
}

static void typing_submit(chat_server *srv, chat__conn *c, cJSON *f, cJSON *re, int64_t conv,
                          const char *user, int start)
{
    chat__req *r = chat__req_new(c, f, typing_run);
    if (!r) {
        if (c)
            chat__conn_decline(c, re, CHAT_ENOMEM, "internal", "out of memory", 0);
        cJSON_Delete(re);
        return;
    }
    r->re = re;
    r->conv = conv;
    r->state = start;
    r->after = typing_after;
    if (!c)
        snprintf(r->user, sizeof r->user, "%s", user);
    chat__req_submit(srv, r);
}

void chat__handle_typing(chat__conn *c, cJSON *f, cJSON *re)
{
    chat_server *srv = c->srv;
    int64_t conv;
    const char *state;
    if (!chat__arg_conv(c, f, re, &conv) || !chat__arg_str(c, f, re, "state", 1, &state, NULL))
        goto fail;
    int start = strcmp(state, "start") == 0;
    if (!start && strcmp(state, "stop") != 0) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'state' must be start or stop", 0);
        goto fail;
    }
    int64_t retry = 0;
    double rate = (double)chat__limit(srv, CHAT_LIMIT_TYPING_RATE);
    if (!chat__bucket_take(&c->typing_bucket, rate, rate, chat__now_ms(srv), &retry)) {
        chat__conn_decline(c, re, CHAT_EAGAIN, "rate_limited", "typing updates too fast", retry);
        goto fail;
    }
    typing_submit(srv, c, f, re, conv, NULL, start);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}

static void typing_expired(int64_t conv, const char *user, void *ud)
{
    typing_submit(ud, NULL, NULL, NULL, conv, user, 0);
}

static void typing_timer_cb(chat__timer *t)
{
    chat_server *srv = CHAT__SERVER_OF_TIMER(t, typing_timer);
    chat__typing_expire(&srv->typing, chat__now_ms(srv), typing_expired, srv);
    chat__typing_timer_arm(srv);
}

void chat__typing_timer_arm(chat_server *srv)
{
    int64_t next = chat__typing_next_deadline(&srv->typing);
    if (!srv->timers_ready || next == INT64_MAX)
        return;
    int64_t wait = next - chat__now_ms(srv);
    if (wait < 1)
        wait = 1;
    srv->tp->timer_start(&srv->typing_timer, wait);
}

int chat__presence_timers_start(chat_server *srv)
{
    srv->pres_armed_ms = 0;
    if (srv->tp->timer_init(srv->tp_st, &srv->presence_timer, pres_timer_cb) != CHAT_OK)
        return CHAT_ENOMEM;
    if (srv->tp->timer_init(srv->tp_st, &srv->typing_timer, typing_timer_cb) != CHAT_OK) {
        srv->tp->timer_close(&srv->presence_timer);
        return CHAT_ENOMEM;
    }
    return CHAT_OK;
}

void chat__presence_timers_stop(chat_server *srv)
{
    srv->tp->timer_close(&srv->presence_timer);
    srv->tp->timer_close(&srv->typing_timer);
    srv->pres_armed_ms = 0;
}
