/* Groups: create, rename, add, remove, leave, roles. Every change is appended to the
 * conversation as an event message, so history and sync carry it in order. */
#include "server/req.h"

#include "core/alloc.h"
#include "core/ids.h"
#include "core/json.h"
#include "core/rules.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

enum group_op { OP_CREATE, OP_UPDATE, OP_ADD, OP_REMOVE, OP_LEAVE, OP_ROLE };

typedef struct group_args {
    int op;
    int64_t conv;
    const char *title;  /* into args */
    const char *user;   /* group_role target */
    int role;
    const cJSON *users; /* array of validated ids, into args */
    const char *cmid;   /* group_create's optional client id, into args */
} group_args;

static cJSON *users_json(const cJSON *users)
{
    return users ? cJSON_Duplicate(users, 1) : cJSON_CreateArray();
}

static int put_member(chat__txn *tx, chat__req *r, int64_t conv, const char *user, int role,
                      uint64_t joined)
{
    chat_store_member m = {0};
    m.conv = conv;
    snprintf(m.user, sizeof m.user, "%s", user);
    m.role = role;
    m.joined_seq = m.delivered_seq = m.read_seq = joined;
    m.change = chat__txn_bump(tx);
    if (tx->ops->member_put(tx->st, &m) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the member");
    return CHAT_OK;
}

static int set_role(chat__txn *tx, chat__req *r, chat_store_member *m, int role)
{
    if (role == CHAT_ROLE_NONE) {
        /* A departing member has seen the conversation up to the event that removed it: its
         * watermarks mark where its view of the conversation ends. */
        chat_store_conv conv;
        if (tx->ops->conv_get(tx->st, m->conv, &conv) != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
        m->delivered_seq = m->read_seq = conv.head_seq;
        m->delivered_ms = m->read_ms = tx->now_ms;
    }
    m->role = role;
    m->change = chat__txn_bump(tx);
    if (tx->ops->member_put(tx->st, m) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the member");
    return CHAT_OK;
}

/* Events are built in steps that each may fail: every step takes the event (or NULL) and
 * returns it, or NULL with it deleted; chat__txn_event fails the request on NULL. */
static cJSON *event_of(const char *type)
{
    cJSON *e = cJSON_CreateObject();
    if (e && cJSON_AddStringToObject(e, "type", type))
        return e;
    cJSON_Delete(e);
    return NULL;
}

static cJSON *with_str(cJSON *ev, const char *key, const char *s)
{
    if (ev && cJSON_AddStringToObject(ev, key, s))
        return ev;
    cJSON_Delete(ev);
    return NULL;
}

/* item is consumed. */
static cJSON *with_item(cJSON *ev, const char *key, cJSON *item)
{
    if (chat__json_add(ev, key, item))
        return ev;
    cJSON_Delete(ev);
    return NULL;
}

static int reply_ok(chat__req *r, int64_t conv, uint64_t seq)
{
    cJSON *o = chat__req_reply(r, "ok");
    int ok = o && cJSON_AddNumberToObject(o, "conv", (double)conv) &&
             cJSON_AddNumberToObject(o, "seq", (double)seq);
    r->reply = ok ? chat__frame_json(o) : NULL;
    cJSON_Delete(o);
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

/* Answer a group_create with the creator's view of the group. */
static int reply_conv(chat__req *r, chat__txn *tx, int64_t conv)
{
    chat_store_member me;
    if (tx->ops->member_get(tx->st, conv, r->user, &me) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot read the group back");
    cJSON *o = chat__req_reply(r, "conv");
    r->reply = o && chat__json_add(o, "conv", chat__txn_conv_json(tx, &me)) ? chat__frame_json(o)
                                                                            : NULL;
    cJSON_Delete(o);
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

static int create_run(chat__req *r, chat__txn *tx, group_args *a)
{
    /* A create retried with the same client id (after a lost answer or a reconnect) answers
     * the group it made the first time. The id is remembered in the store's metadata, in the
     * transaction that creates the group, so the two are durable together. User and device
     * ids hold no '/', so the key is unambiguous. */
    char key[3 + 3 * (CHAT_ID_MAX + 1)];
    if (a->cmid) {
        snprintf(key, sizeof key, "gc/%s/%s/%s", r->user, r->device, a->cmid);
        int64_t made = 0;
        int g = tx->ops->meta_get(tx->st, key, &made);
        if (g == CHAT_OK) {
            r->fanout_all_devices = 0;
            return reply_conv(r, tx, made);
        }
        if (g != CHAT_ENOTFOUND)
            return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    }
    int n = a->users ? cJSON_GetArraySize(a->users) : 0;
    chat_store_conv conv = {0};
    conv.kind = CHAT_CONV_GROUP;
    conv.created_ms = tx->now_ms;
    conv.member_count = n + 1;
    conv.change = chat__txn_bump(tx);
    snprintf(conv.title, sizeof conv.title, "%s", a->title);
    if (tx->ops->conv_insert(tx->st, &conv) != CHAT_OK)
        return chat__req_fail(r, CHAT_EIO, "storage", "cannot create the group");
    int rc = put_member(tx, r, conv.id, r->user, CHAT_ROLE_OWNER, 0);
    const cJSON *u;
    cJSON_ArrayForEach(u, a->users)
    {
        if (rc == CHAT_OK)
            rc = put_member(tx, r, conv.id, u->valuestring, CHAT_ROLE_MEMBER, 0);
    }
    if (rc != CHAT_OK)
        return rc;
    cJSON *all = users_json(a->users), *creator = cJSON_CreateString(r->user);
    if (!all || !creator || !cJSON_InsertItemInArray(all, 0, creator)) {
        cJSON_Delete(creator);
        cJSON_Delete(all);
        all = NULL;
    }
    cJSON *ev = with_item(with_str(event_of("created"), "title", conv.title), "users", all);
    rc = chat__txn_event(tx, r, &conv, ev, NULL);
    if (rc == CHAT_OK)
        rc = chat__txn_fanout_members(tx, r, conv.id);
    if (rc == CHAT_OK && a->cmid && tx->ops->meta_set(tx->st, key, conv.id) != CHAT_OK)
        rc = chat__req_fail(r, CHAT_EIO, "storage", "cannot store the client id");
    if (rc != CHAT_OK)
        return rc;
    /* The creating device has the reply; its other devices learn from the event. */
    r->fanout_all_devices = 0;
    return reply_conv(r, tx, conv.id);
}

/* The successor of a leaving owner: the oldest admin, else the oldest member. Oldest is a
 * member for longest (the smallest joined_seq), then the smallest user id, whatever order the
 * store lists members in (doc/protocol.md: Groups). */
typedef struct successor {
    chat_store_member best;
    int found;
    const char *leaving;
} successor;

static int pick_successor(const chat_store_member *m, void *ud)
{
    successor *s = ud;
    if (strcmp(m->user, s->leaving) == 0)
        return 0;
    if (!s->found || m->role > s->best.role ||
        (m->role == s->best.role &&
         (m->joined_seq < s->best.joined_seq ||
          (m->joined_seq == s->best.joined_seq && strcmp(m->user, s->best.user) < 0)))) {
        s->best = *m;
        s->found = 1;
    }
    return 0;
}

int chat__txn_leave(chat__txn *tx, chat__req *r, chat_store_conv *conv, chat_store_member *me,
                    const char *event, uint64_t *left_seq)
{
    int is_owner = me->role == CHAT_ROLE_OWNER;
    chat_store_msg ev_msg;
    int rc = chat__txn_event(tx, r, conv, event_of(event), &ev_msg);
    if (rc == CHAT_OK)
        rc = chat__txn_fanout_members(tx, r, conv->id);
    if (rc == CHAT_OK)
        rc = tx->ops->member_get(tx->st, conv->id, me->user, me) == CHAT_OK
                 ? set_role(tx, r, me, CHAT_ROLE_NONE)
                 : chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
    conv->member_count--;
    if (rc == CHAT_OK && tx->ops->conv_update(tx->st, conv) != CHAT_OK)
        rc = chat__req_fail(r, CHAT_EIO, "storage", "cannot update the group");
    if (rc != CHAT_OK)
        return rc;
    *left_seq = ev_msg.seq;
    if (is_owner && conv->kind == CHAT_CONV_GROUP && conv->member_count > 0) {
        successor s = {.found = 0, .leaving = me->user};
        if (tx->ops->member_list(tx->st, conv->id, 1, pick_successor, &s) != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "cannot list members");
        if (s.found) {
            rc = set_role(tx, r, &s.best, CHAT_ROLE_OWNER);
            chat__frame *first = r->fanout;
            r->fanout = NULL;
            if (rc == CHAT_OK)
                rc = chat__txn_event(
                    tx, r, conv,
                    with_str(with_str(event_of("role"), "user", s.best.user), "role", "owner"),
                    NULL);
            r->fanout2 = r->fanout;
            r->fanout = first;
            if (rc != CHAT_OK)
                return rc;
        }
    }
    return CHAT_OK;
}

static int group_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    group_args *a = r->extra;
    if (a->op == OP_CREATE)
        return create_run(r, tx, a);

    chat_store_conv conv;
    chat_store_member me;
    int rc = chat__txn_member(tx, r, a->conv, r->user, &conv, &me);
    if (rc != CHAT_OK)
        return rc;
    if (conv.kind != CHAT_CONV_GROUP)
        return chat__req_fail(r, CHAT_EINVAL, "bad_field", "conversation %" PRId64 " is not a group",
                              conv.id);
    chat_store_msg ev_msg;
    cJSON *ev = NULL;

    switch (a->op) {
    case OP_UPDATE:
        if (!chat__group_may(me.role, CHAT__GROUP_RENAME, 0))
            return chat__req_fail(r, CHAT_EPERM, "forbidden", "only owners and admins rename");
        snprintf(conv.title, sizeof conv.title, "%s", a->title);
        ev = with_str(event_of("renamed"), "title", conv.title);
        break;
    case OP_ADD: {
        if (!chat__group_may(me.role, CHAT__GROUP_ADD, 0))
            return chat__req_fail(r, CHAT_EPERM, "forbidden", "only owners and admins add members");
        int n = cJSON_GetArraySize(a->users);
        if (conv.member_count + n > (int)chat__limit(tx->srv, CHAT_LIMIT_GROUP_MEMBERS))
            return chat__req_fail(r, CHAT_ELIMIT, "group_full", "the group would exceed %d members",
                                  (int)chat__limit(tx->srv, CHAT_LIMIT_GROUP_MEMBERS));
        const cJSON *u;
        cJSON_ArrayForEach(u, a->users)
        {
            chat_store_member m;
            int g = tx->ops->member_get(tx->st, conv.id, u->valuestring, &m);
            if (g == CHAT_OK && m.role != CHAT_ROLE_NONE)
                return chat__req_fail(r, CHAT_EINVAL, "bad_field", "%s is already a member",
                                      u->valuestring);
            if (g != CHAT_OK && g != CHAT_ENOTFOUND)
                return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
        }
        /* New members see history from the "added" event on. */
        cJSON_ArrayForEach(u, a->users)
        {
            rc = put_member(tx, r, conv.id, u->valuestring, CHAT_ROLE_MEMBER, conv.head_seq);
            if (rc != CHAT_OK)
                return rc;
        }
        conv.member_count += n;
        ev = with_item(event_of("added"), "users", users_json(a->users));
        break;
    }
    case OP_REMOVE: {
        chat_store_member targets[64];
        int n = 0;
        const cJSON *u;
        cJSON_ArrayForEach(u, a->users)
        {
            chat_store_member *m = &targets[n];
            int g = tx->ops->member_get(tx->st, conv.id, u->valuestring, m);
            if (g == CHAT_ENOTFOUND || (g == CHAT_OK && m->role == CHAT_ROLE_NONE))
                return chat__req_fail(r, CHAT_EINVAL, "bad_field", "%s is not a member",
                                      u->valuestring);
            if (g != CHAT_OK)
                return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
            if (strcmp(m->user, r->user) == 0)
                return chat__req_fail(r, CHAT_EINVAL, "bad_field", "use group_leave to leave");
            if (!chat__group_may(me.role, CHAT__GROUP_REMOVE, m->role))
                return chat__req_fail(r, CHAT_EPERM, "forbidden", "not allowed to remove %s",
                                      m->user);
            n++;
        }
        ev = with_item(event_of("removed"), "users", users_json(a->users));
        /* The removed still receive this event, then nothing more. */
        rc = chat__txn_event(tx, r, &conv, ev, &ev_msg);
        if (rc == CHAT_OK)
            rc = chat__txn_fanout_members(tx, r, conv.id);
        for (int i = 0; i < n && rc == CHAT_OK; i++)
            rc = set_role(tx, r, &targets[i], CHAT_ROLE_NONE);
        conv.member_count -= n;
        if (rc == CHAT_OK && tx->ops->conv_update(tx->st, &conv) != CHAT_OK)
            rc = chat__req_fail(r, CHAT_EIO, "storage", "cannot update the group");
        return rc == CHAT_OK ? reply_ok(r, conv.id, ev_msg.seq) : rc;
    }
    case OP_LEAVE: {
        uint64_t left_seq = 0;
        rc = chat__txn_leave(tx, r, &conv, &me, "left", &left_seq);
        return rc == CHAT_OK ? reply_ok(r, conv.id, left_seq) : rc;
    }
    case OP_ROLE: {
        if (!chat__group_may(me.role, CHAT__GROUP_SET_ROLE, 0))
            return chat__req_fail(r, CHAT_EPERM, "forbidden", "only the owner changes roles");
        chat_store_member t;
        int g = tx->ops->member_get(tx->st, conv.id, a->user, &t);
        if (g == CHAT_ENOTFOUND || (g == CHAT_OK && t.role == CHAT_ROLE_NONE))
            return chat__req_fail(r, CHAT_EINVAL, "bad_field", "%s is not a member", a->user);
        if (g != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "the store failed");
        if (strcmp(t.user, r->user) == 0)
            return chat__req_fail(r, CHAT_EINVAL, "bad_field", "the owner cannot change own role");
        rc = set_role(tx, r, &t, a->role);
        if (rc == CHAT_OK && a->role == CHAT_ROLE_OWNER)
            rc = set_role(tx, r, &me, CHAT_ROLE_ADMIN);
        if (rc != CHAT_OK)
            return rc;
        ev = with_str(with_str(event_of("role"), "user", t.user), "role",
                      chat__role_name(a->role));
        break;
    }
    default:
        return chat__req_fail(r, CHAT_ERROR, "internal", "unknown group operation");
    }

    rc = chat__txn_event(tx, r, &conv, ev, &ev_msg);
    if (rc == CHAT_OK)
        rc = chat__txn_fanout_members(tx, r, conv.id);
    return rc == CHAT_OK ? reply_ok(r, conv.id, ev_msg.seq) : rc;
}

/* A list of distinct valid user ids (at most max), the requester excluded; key names the field
 * for the error message. */
static int arg_users(chat__conn *c, const cJSON *users, const cJSON *re, const char *key,
                     int required, int max, const cJSON **out)
{
    char msg[96];
    *out = NULL;
    if (!users) {
        snprintf(msg, sizeof msg, "field '%s' is required", key);
        if (required)
            chat__conn_error(c, re, CHAT_EINVAL, "missing_field", msg, 0);
        return !required;
    }
    int n = cJSON_IsArray(users) ? cJSON_GetArraySize(users) : -1;
    if (n < (required ? 1 : 0) || n > max) {
        snprintf(msg, sizeof msg, "'%s' must be an array of 1-%d user ids", key, max);
        chat__conn_error(c, re, n > max ? CHAT_ELIMIT : CHAT_EINVAL,
                         n > max ? "group_full" : "bad_field", msg, 0);
        return 0;
    }
    const cJSON *u;
    int i = 0;
    cJSON_ArrayForEach(u, users)
    {
        if (!cJSON_IsString(u) || !chat__id_valid(u->valuestring, strlen(u->valuestring)) ||
            strcmp(u->valuestring, c->user) == 0) {
            snprintf(msg, sizeof msg, "'%s' must hold other users' ids", key);
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field", msg, 0);
            return 0;
        }
        const cJSON *v = users->child;
        for (int j = 0; j < i; j++, v = v->next)
            if (strcmp(v->valuestring, u->valuestring) == 0) {
                snprintf(msg, sizeof msg, "'%s' repeats a user", key);
                chat__conn_error(c, re, CHAT_EINVAL, "bad_field", msg, 0);
                return 0;
            }
        i++;
    }
    *out = users;
    return 1;
}

void chat__handle_group(chat__conn *c, cJSON *f, cJSON *re, const char *op)
{
    group_args a = {0};
    int max_members = (int)chat__limit(c->srv, CHAT_LIMIT_GROUP_MEMBERS);
    size_t n = 0;
    if (strcmp(op, "create") == 0) {
        a.op = OP_CREATE;
        if (!arg_users(c, chat__json_get(f, "members"), re, "members", 0,
                       max_members - 1, &a.users))
            goto fail;
        if (!chat__arg_str(c, f, re, "cmid", 0, &a.cmid, &n))
            goto fail;
        if (a.cmid && !chat__cmid_valid(a.cmid, n)) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                             "'cmid' must be 1-64 printable ASCII characters, no space", 0);
            goto fail;
        }
    } else if (strcmp(op, "update") == 0) {
        a.op = OP_UPDATE;
    } else if (strcmp(op, "add") == 0) {
        a.op = OP_ADD;
    } else if (strcmp(op, "remove") == 0) {
        a.op = OP_REMOVE;
    } else if (strcmp(op, "leave") == 0) {
        a.op = OP_LEAVE;
    } else {
        a.op = OP_ROLE;
    }
    if (a.op == OP_CREATE || a.op == OP_UPDATE) {
        if (!chat__arg_str(c, f, re, "title", 1, &a.title, &n))
            goto fail;
        if (n == 0 || n > CHAT_TITLE_MAX) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'title' must be 1-256 bytes", 0);
            goto fail;
        }
    }
    if (a.op != OP_CREATE && !chat__arg_conv(c, f, re, &a.conv))
        goto fail;
    if ((a.op == OP_ADD || a.op == OP_REMOVE) &&
        !arg_users(c, chat__json_get(f, "users"), re, "users", 1,
                   a.op == OP_REMOVE ? 64 : max_members, &a.users))
        goto fail;
    if (a.op == OP_ROLE) {
        const char *role;
        if (!chat__arg_str(c, f, re, "user", 1, &a.user, &n) ||
            !chat__arg_str(c, f, re, "role", 1, &role, NULL))
            goto fail;
        a.role = chat__role_parse(role);
        if (!chat__id_valid(a.user, n) || a.role < 0) {
            chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                             "'user' must be a user id and 'role' member, admin or owner", 0);
            goto fail;
        }
    }
    chat__req_start(c, f, re, group_run, &a, sizeof a, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
