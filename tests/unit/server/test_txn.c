/* The store helpers of requests (req.h), run directly over a memory store: sequence
 * assignment, the sender's watermarks, the change counter, membership checks, fan-out lists,
 * events, and the msg encoding of doc/protocol.md. */
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/errors.h"
#include "chat/sys/store.h"
#include "server/req.h"

#include <stdlib.h>
#include <string.h>

#define NOW 1764331200123

typedef struct fixture {
    const chat_store_ops *ops;
    void *st;
    chat__txn tx;
    chat__req *r;
    chat_store_conv conv; /* a group: alice owner, bob member, carol left */
} fixture;

static void put_member(fixture *fx, const char *user, int role, uint64_t read_seq)
{
    chat_store_member m = {0};
    m.conv = fx->conv.id;
    strcpy(m.user, user);
    m.role = role;
    m.delivered_seq = m.read_seq = read_seq;
    assert_int_equal(fx->ops->member_put(fx->st, &m), CHAT_OK);
}

static chat__req *new_req(const char *user, const char *device)
{
    chat__req *r = calloc(1, sizeof *r);
    assert_non_null(r);
    strcpy(r->user, user);
    strcpy(r->device, device);
    return r;
}

static void free_req(chat__req *r)
{
    if (!r)
        return;
    chat__frame_unref(r->reply);
    chat__frame_unref(r->fanout);
    chat__frame_unref(r->fanout2);
    chat__userlist_free(&r->to);
    free(r);
}

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    fx->ops = chat_store_memory_ops();
    assert_int_equal(chat_store_memory_new(&fx->st), CHAT_OK);
    fx->tx = (chat__txn){.ops = fx->ops, .st = fx->st, .now_ms = NOW};
    fx->conv.kind = CHAT_CONV_GROUP;
    strcpy(fx->conv.title, "Team");
    fx->conv.created_ms = NOW - 1000;
    fx->conv.member_count = 2;
    assert_int_equal(fx->ops->conv_insert(fx->st, &fx->conv), CHAT_OK);
    assert_true(fx->conv.id > 0);
    put_member(fx, "alice", CHAT_ROLE_OWNER, 0);
    put_member(fx, "bob", CHAT_ROLE_MEMBER, 0);
    put_member(fx, "carol", CHAT_ROLE_NONE, 0);
    fx->r = new_req("alice", "laptop");
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    free_req(fx->r);
    fx->ops->destroy(fx->st);
    free(fx);
    return 0;
}

static int append_text(fixture *fx, chat__req *r, const char *cmid, const char *text,
                       chat_store_msg *out)
{
    chat_store_msg m = {0};
    m.sender = r->user;
    m.device = r->device;
    m.cmid = cmid;
    m.kind = CHAT_MSG_TEXT;
    m.body = text;
    m.body_len = strlen(text);
    int rc = chat__txn_append(&fx->tx, r, &fx->conv, &m);
    if (out)
        *out = m;
    return rc;
}

static int collect_seq(const chat_store_msg *m, void *ud)
{
    uint64_t *seqs = ud;
    seqs[++seqs[0]] = m->seq;
    return 0;
}

static chat_store_member get_member(fixture *fx, const char *user)
{
    chat_store_member m;
    assert_int_equal(fx->ops->member_get(fx->st, fx->conv.id, user, &m), CHAT_OK);
    return m;
}

static cJSON *frame_json(chat__frame *f)
{
    assert_non_null(f);
    cJSON *o = cJSON_ParseWithLength((const char *)chat__frame_data(f), f->len);
    assert_non_null(o);
    return o;
}

static const char *str_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double num_field(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* ---- tests ---- */

static void test_txn_append_assigns_contiguous_seqs(void **state)
{
    fixture *fx = *state;
    enum { N = 20 };
    char cmid[16];
    for (int i = 0; i < N; i++) {
        chat_store_msg m;
        snprintf(cmid, sizeof cmid, "c-%d", i);
        assert_int_equal(append_text(fx, fx->r, cmid, "hi", &m), CHAT_OK);
        assert_int_equal(m.seq, (uint64_t)i + 1);
        assert_int_equal(m.conv, fx->conv.id);
        assert_int_equal(m.ts_ms, NOW);
        assert_int_equal(fx->conv.head_seq, (uint64_t)i + 1);
    }
    chat_store_conv c;
    assert_int_equal(fx->ops->conv_get(fx->st, fx->conv.id, &c), CHAT_OK);
    assert_int_equal(c.head_seq, N);
    assert_string_equal(c.title, "Team"); /* the rest of the row is kept */
    uint64_t seqs[N + 2] = {0};
    assert_int_equal(fx->ops->msg_range(fx->st, fx->conv.id, 0, 0, N + 1, 0, collect_seq, seqs),
                     CHAT_OK);
    assert_int_equal(seqs[0], N);
    for (int i = 1; i <= N; i++)
        assert_int_equal(seqs[i], (uint64_t)i);
}

static void test_txn_append_failure_keeps_head(void **state)
{
    fixture *fx = *state;
    assert_int_equal(append_text(fx, fx->r, "c-1", "one", NULL), CHAT_OK);
    /* the same (sender, device, cmid) again: the store refuses and nothing moves; the append
     * says CHAT_EEXISTS, not EIO, so send can answer the resend instead of failing it */
    assert_int_equal(append_text(fx, fx->r, "c-1", "again", NULL), CHAT_EEXISTS);
    assert_int_equal(fx->r->job.status, CHAT_EEXISTS);
    assert_int_equal(fx->conv.head_seq, 1);
    chat_store_conv c;
    assert_int_equal(fx->ops->conv_get(fx->st, fx->conv.id, &c), CHAT_OK);
    assert_int_equal(c.head_seq, 1);
    uint64_t seqs[3] = {0};
    assert_int_equal(fx->ops->msg_range(fx->st, fx->conv.id, 0, 0, 2, 0, collect_seq, seqs),
                     CHAT_OK);
    assert_int_equal(seqs[0], 1);
}

static void test_txn_append_marks_sender_read(void **state)
{
    fixture *fx = *state;
    chat_store_msg m;
    assert_int_equal(append_text(fx, fx->r, "c-1", "hello", &m), CHAT_OK);
    assert_int_equal(append_text(fx, fx->r, "c-2", "again", &m), CHAT_OK);
    chat_store_member a = get_member(fx, "alice");
    assert_int_equal(a.delivered_seq, 2);
    assert_int_equal(a.read_seq, 2);
    assert_int_equal(a.delivered_ms, NOW);
    assert_int_equal(a.read_ms, NOW);
    assert_int_equal(a.role, CHAT_ROLE_OWNER);
    assert_int_equal(a.change, fx->conv.change);
    /* the others' watermarks do not move */
    chat_store_member b = get_member(fx, "bob");
    assert_int_equal(b.delivered_seq, 0);
    assert_int_equal(b.read_seq, 0);

    /* bob answers: his row moves, alice's stays */
    chat__req *rb = new_req("bob", "phone");
    assert_int_equal(append_text(fx, rb, "c-1", "hey", &m), CHAT_OK);
    assert_int_equal(m.seq, 3);
    b = get_member(fx, "bob");
    assert_int_equal(b.read_seq, 3);
    assert_int_equal(b.delivered_seq, 3);
    assert_int_equal(get_member(fx, "alice").read_seq, 2);
    free_req(rb);
}

static void test_txn_append_by_former_member_leaves_row(void **state)
{
    fixture *fx = *state;
    /* e.g. the "left" event of a member who just left: stored, but the row stays as it is */
    chat__req *rc = new_req("carol", "tab");
    chat_store_msg m;
    assert_int_equal(append_text(fx, rc, "c-1", "bye", &m), CHAT_OK);
    assert_int_equal(m.seq, 1);
    chat_store_member c = get_member(fx, "carol");
    assert_int_equal(c.role, CHAT_ROLE_NONE);
    assert_int_equal(c.read_seq, 0);
    assert_int_equal(c.delivered_seq, 0);
    free_req(rc);
}

static void test_txn_change_counter_bumps_every_change(void **state)
{
    fixture *fx = *state;
    fx->tx.change = 41;
    char cmid[16];
    for (int i = 0; i < 5; i++) {
        uint64_t before = fx->tx.change;
        snprintf(cmid, sizeof cmid, "c-%d", i);
        assert_int_equal(append_text(fx, fx->r, cmid, "x", NULL), CHAT_OK);
        assert_int_equal(fx->tx.change, before + 1);
        assert_int_equal(fx->conv.change, fx->tx.change);
        chat_store_conv c;
        assert_int_equal(fx->ops->conv_get(fx->st, fx->conv.id, &c), CHAT_OK);
        assert_int_equal(c.change, fx->tx.change);
        assert_int_equal(get_member(fx, "alice").change, fx->tx.change);
    }
    assert_int_equal(fx->tx.change, 46);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "renamed");
    assert_int_equal(chat__txn_event(&fx->tx, fx->r, &fx->conv, ev, NULL), CHAT_OK); /* takes ev */
    assert_int_equal(fx->tx.change, 47);
}

/* A request names its conversation to the writer, which locks those of a batch first. */
static void test_txn_request_names_its_conv(void **state)
{
    (void)state;
    static const struct {
        const char *frame;
        chat_conv_id conv;
    } cases[] = {
        {"{\"type\":\"send\",\"conv\":42,\"text\":\"hi\"}", 42},
        {"{\"type\":\"send\",\"to\":\"bob\",\"text\":\"hi\"}", 0},
        {"{\"type\":\"history\",\"conv\":\"42\"}", 0},
        {"{\"type\":\"history\",\"conv\":-3}", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        chat__req *r = chat__req_new(NULL, cJSON_Parse(cases[i].frame), NULL);
        assert_non_null(r);
        assert_int_equal(r->job.lock_conv, cases[i].conv);
        cJSON_Delete(r->args);
        free_req(r);
    }
}

static void test_txn_member_refuses_non_members(void **state)
{
    fixture *fx = *state;
    chat_store_conv c;
    chat_store_member m;

    assert_int_equal(chat__txn_member(&fx->tx, fx->r, fx->conv.id, "alice", &c, &m), CHAT_OK);
    assert_int_equal(c.id, fx->conv.id);
    assert_string_equal(m.user, "alice");
    assert_int_equal(m.role, CHAT_ROLE_OWNER);

    fx->r->job.status = CHAT_OK;
    assert_int_equal(chat__txn_member(&fx->tx, fx->r, fx->conv.id, "dave", &c, &m), CHAT_EPERM);
    assert_int_equal(fx->r->job.status, CHAT_EPERM);
    assert_string_equal(fx->r->job.reason, "not_member");

    /* a row with role none (left or removed) is not a member */
    fx->r->job.status = CHAT_OK;
    fx->r->job.reason = NULL;
    assert_int_equal(chat__txn_member(&fx->tx, fx->r, fx->conv.id, "carol", &c, &m), CHAT_EPERM);
    assert_int_equal(fx->r->job.status, CHAT_EPERM);
    assert_string_equal(fx->r->job.reason, "not_member");

    fx->r->job.status = CHAT_OK;
    fx->r->job.reason = NULL;
    assert_int_equal(chat__txn_member(&fx->tx, fx->r, fx->conv.id + 1000, "alice", &c, &m),
                     CHAT_ENOTFOUND);
    assert_int_equal(fx->r->job.status, CHAT_ENOTFOUND);
    assert_string_equal(fx->r->job.reason, "not_found");
}

static void test_txn_fanout_lists_active_members(void **state)
{
    fixture *fx = *state;
    assert_int_equal(append_text(fx, fx->r, "c-1", "one", NULL), CHAT_OK);
    assert_int_equal(append_text(fx, fx->r, "c-2", "two", NULL), CHAT_OK);
    put_member(fx, "bob", CHAT_ROLE_MEMBER, 1);

    assert_int_equal(chat__txn_fanout_members(&fx->tx, fx->r, fx->conv.id), CHAT_OK);
    assert_int_equal(fx->r->to.n, 2);
    /* ordered by user id, with each one's read watermark */
    assert_string_equal(fx->r->to.users[0], "alice");
    assert_int_equal(fx->r->to.read_seq[0], 2);
    assert_string_equal(fx->r->to.users[1], "bob");
    assert_int_equal(fx->r->to.read_seq[1], 1);
    assert_true(chat__userlist_has(&fx->r->to, "alice"));
    assert_false(chat__userlist_has(&fx->r->to, "carol")); /* left */
    assert_false(chat__userlist_has(&fx->r->to, "dave"));
}

static void test_txn_member_fanout_checks_and_lists(void **state)
{
    fixture *fx = *state;
    assert_int_equal(append_text(fx, fx->r, "c-1", "one", NULL), CHAT_OK);
    put_member(fx, "bob", CHAT_ROLE_MEMBER, 1);
    chat__userlist_free(&fx->r->to);

    /* a member: its own full row, and every active member to fan out to */
    chat_store_member m;
    memset(&m, 0, sizeof m);
    assert_int_equal(chat__txn_member_fanout(&fx->tx, fx->r, &fx->conv, "bob", &m), CHAT_OK);
    assert_string_equal(m.user, "bob");
    assert_int_equal(m.conv, fx->conv.id);
    assert_int_equal(m.role, CHAT_ROLE_MEMBER);
    assert_int_equal(m.read_seq, 1);
    assert_int_equal(fx->r->to.n, 2);
    assert_string_equal(fx->r->to.users[0], "alice");
    assert_int_equal(fx->r->to.read_seq[0], 1);
    assert_string_equal(fx->r->to.users[1], "bob");
    chat__userlist_free(&fx->r->to);

    /* a former member (role none) and a stranger are refused, and nobody is left to fan out to */
    const char *refused[] = {"carol", "dave"};
    for (int i = 0; i < 2; i++) {
        fx->r->job.status = CHAT_OK;
        fx->r->job.reason = NULL;
        assert_int_equal(chat__txn_member_fanout(&fx->tx, fx->r, &fx->conv, refused[i], &m),
                         CHAT_EPERM);
        assert_int_equal(fx->r->job.status, CHAT_EPERM);
        assert_string_equal(fx->r->job.reason, "not_member");
        assert_int_equal(fx->r->to.n, 0);
    }
}

static void test_txn_fanout_of_many_members(void **state)
{
    fixture *fx = *state;
    /* more members than the list's first allocation: both arrays grow together */
    enum { N = 100 };
    char user[16];
    for (int i = 0; i < N; i++) {
        snprintf(user, sizeof user, "m%03d", i);
        put_member(fx, user, CHAT_ROLE_MEMBER, (uint64_t)i);
    }
    assert_int_equal(chat__txn_fanout_members(&fx->tx, fx->r, fx->conv.id), CHAT_OK);
    assert_int_equal(fx->r->to.n, N + 2);
    for (size_t i = 0; i < fx->r->to.n; i++) {
        const char *u = fx->r->to.users[i];
        if (u[0] == 'm')
            assert_int_equal(fx->r->to.read_seq[i], (uint64_t)atoi(u + 1));
    }
}

static void test_txn_event_is_stored_and_encoded(void **state)
{
    fixture *fx = *state;
    assert_int_equal(append_text(fx, fx->r, "c-1", "before", NULL), CHAT_OK);

    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "renamed");
    cJSON_AddStringToObject(ev, "title", "Ops");
    chat_store_msg out;
    memset(&out, 0xa5, sizeof out);
    assert_int_equal(chat__txn_event(&fx->tx, fx->r, &fx->conv, ev, &out), CHAT_OK); /* takes ev */
    assert_int_equal(out.seq, 2);
    assert_int_equal(out.kind, CHAT_MSG_EVENT);
    assert_null(out.body); /* the body was freed: out must not point at it */
    assert_null(out.cmid);
    assert_int_equal(fx->conv.head_seq, 2);
    assert_int_equal(get_member(fx, "alice").read_seq, 2); /* the author has read it */
    assert_int_equal(get_member(fx, "bob").read_seq, 0);   /* unread for the others */

    cJSON *f = frame_json(fx->r->fanout);
    assert_int_equal(fx->r->fanout_all_devices, 1);
    assert_string_equal(str_field(f, "type"), "msg");
    assert_int_equal(num_field(f, "conv"), fx->conv.id);
    assert_int_equal(num_field(f, "seq"), 2);
    assert_int_equal(num_field(f, "ts"), NOW);
    assert_string_equal(str_field(f, "from"), "alice");
    assert_string_equal(str_field(f, "device"), "");
    assert_string_equal(str_field(f, "cmid"), "");
    assert_string_equal(str_field(f, "kind"), "event");
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f, "event");
    assert_true(cJSON_IsObject(e));
    assert_string_equal(str_field(e, "type"), "renamed");
    assert_string_equal(str_field(e, "title"), "Ops");
    assert_string_equal(str_field(e, "by"), "alice");
    assert_null(cJSON_GetObjectItemCaseSensitive(f, "text"));
    cJSON_Delete(f);
}

typedef struct stored_msg {
    int n;
    int kind;
    char device[CHAT_ID_MAX + 1];
    char sender[CHAT_ID_MAX + 1];
    char cmid[CHAT_ID_MAX + 1];
    cJSON *body;
} stored_msg;

static int keep_msg(const chat_store_msg *m, void *ud)
{
    stored_msg *s = ud;
    s->n++;
    s->kind = m->kind;
    snprintf(s->device, sizeof s->device, "%s", m->device);
    snprintf(s->sender, sizeof s->sender, "%s", m->sender);
    snprintf(s->cmid, sizeof s->cmid, "%s", m->cmid);
    cJSON_Delete(s->body);
    s->body = cJSON_ParseWithLength(m->body, m->body_len);
    return 0;
}

static void test_txn_event_row_has_kind_event_and_no_device(void **state)
{
    fixture *fx = *state;
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddStringToObject(ev, "type", "added");
    cJSON *users = cJSON_AddArrayToObject(ev, "users");
    cJSON_AddItemToArray(users, cJSON_CreateString("dave"));
    assert_int_equal(chat__txn_event(&fx->tx, fx->r, &fx->conv, ev, NULL), CHAT_OK); /* takes ev */

    stored_msg s = {0};
    assert_int_equal(fx->ops->msg_range(fx->st, fx->conv.id, 0, 0, 10, 0, keep_msg, &s), CHAT_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.kind, CHAT_MSG_EVENT);
    assert_string_equal(s.device, "");
    assert_string_equal(s.sender, "alice");
    assert_true(s.cmid[0] != '\0'); /* a server id, never sent to clients */
    assert_non_null(s.body);
    assert_string_equal(str_field(s.body, "type"), "added");
    assert_string_equal(str_field(s.body, "by"), "alice");
    assert_true(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(s.body, "users")));
    cJSON_Delete(s.body);

    /* a client message with the same cmid from a device of alice is no collision */
    char cmid[CHAT_ID_MAX + 1];
    snprintf(cmid, sizeof cmid, "%s", s.cmid);
    assert_int_equal(append_text(fx, fx->r, cmid, "hi", NULL), CHAT_OK);
    assert_int_equal(fx->conv.head_seq, 2);
}

static void test_txn_msg_json_text(void **state)
{
    (void)state;
    static const char body[] = "hi Bob, and more"; /* not NUL-terminated at body_len */
    chat_store_msg m = {12, 5, 1764331200123, "alice", "laptop", "c-1764331200-1",
                        CHAT_MSG_TEXT, body, 6, 0, 0, 0, 0, 0, NULL, 0};
    cJSON *o = chat__msg_json(&m);
    assert_non_null(o);
    assert_string_equal(str_field(o, "type"), "msg");
    assert_int_equal(num_field(o, "conv"), 12);
    assert_int_equal(num_field(o, "seq"), 5);
    assert_int_equal(num_field(o, "ts"), 1764331200123);
    assert_string_equal(str_field(o, "from"), "alice");
    assert_string_equal(str_field(o, "device"), "laptop");
    assert_string_equal(str_field(o, "cmid"), "c-1764331200-1");
    assert_string_equal(str_field(o, "kind"), "text");
    assert_string_equal(str_field(o, "text"), "hi Bob");
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "media"));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "event"));
    cJSON_Delete(o);
}

static void test_txn_msg_json_media(void **state)
{
    (void)state;
    static const char body[] =
        "{\"id\":\"9f2c\",\"mime\":\"image/jpeg\",\"size\":48213,\"name\":\"cat.jpg\","
        "\"width\":800,\"height\":600}";
    chat_store_msg m = {12, 6, 1764331200200, "alice", "laptop", "c-1764331200-3",
                        CHAT_MSG_MEDIA, body, sizeof body - 1, 0, 0, 0, 0, 0, NULL, 0};
    cJSON *o = chat__msg_json(&m);
    assert_non_null(o);
    assert_string_equal(str_field(o, "type"), "msg");
    assert_int_equal(num_field(o, "seq"), 6);
    assert_string_equal(str_field(o, "cmid"), "c-1764331200-3");
    assert_string_equal(str_field(o, "kind"), "media");
    const cJSON *media = cJSON_GetObjectItemCaseSensitive(o, "media");
    assert_true(cJSON_IsObject(media));
    assert_string_equal(str_field(media, "id"), "9f2c");
    assert_string_equal(str_field(media, "mime"), "image/jpeg");
    assert_int_equal(num_field(media, "size"), 48213);
    assert_string_equal(str_field(media, "name"), "cat.jpg");
    assert_int_equal(num_field(media, "width"), 800);
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "text"));
    assert_null(cJSON_GetObjectItemCaseSensitive(o, "event"));
    cJSON_Delete(o);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_txn_append_assigns_contiguous_seqs),
        T(test_txn_append_failure_keeps_head),
        T(test_txn_append_marks_sender_read),
        T(test_txn_append_by_former_member_leaves_row),
        T(test_txn_change_counter_bumps_every_change),
        T(test_txn_request_names_its_conv),
        T(test_txn_member_refuses_non_members),
        T(test_txn_fanout_lists_active_members),
        T(test_txn_member_fanout_checks_and_lists),
        T(test_txn_fanout_of_many_members),
        T(test_txn_event_is_stored_and_encoded),
        T(test_txn_event_row_has_kind_event_and_no_device),
        T(test_txn_msg_json_text),
        T(test_txn_msg_json_media),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
