/* Store contract: every test_store_* runs once against each backend, with identical
 * expectations: the memory store, the SQLite store (a fresh file in a fresh temp dir per test)
 * and, when `test_store postgres` runs under tests/lib/pgtemp.py, the PostgreSQL store (a fresh
 * database per test). Each backend is used through the checking layer (store/checked.h), as
 * the server uses it: the layer refuses bad arguments and misuse for every backend alike. The
 * test_store_sqlite_* tests cover what only a file-backed store has, the test_store_postgres_*
 * tests (store_postgres.c) what only a shared database has; the test_store_checked_* tests run
 * the layer over a minimal fake backend. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chat/errors.h"
#include "chat/sys/store.h"
#include "store/checked.h"
#include "store/sqlite_internal.h"
#include "store_fx.h"

static backend memory_backend = {"memory", BE_MEMORY};
static backend sqlite_backend = {"sqlite", BE_SQLITE};
#ifdef CHAT_TEST_POSTGRES
static backend postgres_backend = {"postgres", BE_POSTGRES};
#endif

int wrap_store(fx *f, int rc)
{
    return rc ? rc : chat__store_checked_new(&f->ops, &f->st);
}

int open_store(fx *f)
{
    switch (f->be->kind) {
    case BE_SQLITE:
        f->ops = chat_store_sqlite_ops();
        return wrap_store(f, chat_store_sqlite_open(&f->st, f->path, 0, NULL));
    case BE_POSTGRES:
        f->ops = chat_store_postgres_ops();
        return wrap_store(f, chat_store_postgres_open(&f->st, f->conninfo, 0));
    default:
        f->ops = chat_store_memory_ops();
        return wrap_store(f, chat_store_memory_new(&f->st));
    }
}

void close_store(fx *f)
{
    if (f->st)
        f->ops->destroy(f->st);
    f->st = NULL;
}

static int fx_setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->be = *state;
    strcpy(f->dir, "/tmp/chat-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/store.db", f->dir);
#ifdef CHAT_TEST_POSTGRES
    if (f->be->kind == BE_POSTGRES)
        pg_fx_create(f);
#endif
    assert_int_equal(open_store(f), CHAT_OK);
    *state = f;
    return 0;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

static int fx_teardown(void **state)
{
    fx *f = *state;
    close_store(f);
#ifdef CHAT_TEST_POSTGRES
    if (f->be->kind == BE_POSTGRES)
        pg_fx_drop(f);
#endif
    rm_dir(f->dir);
    free(f);
    return 0;
}

/* Allocation failure injection: the process allocator (installed before any libchat call)
 * fails once this many more allocations have succeeded; -1 never fails. */
static long alloc_countdown = -1;

static void *t_malloc(size_t n, void *ud)
{
    (void)ud;
    if (alloc_countdown == 0)
        return NULL;
    if (alloc_countdown > 0)
        alloc_countdown--;
    return malloc(n);
}

static void *t_realloc(void *p, size_t n, void *ud)
{
    (void)ud;
    if (alloc_countdown == 0)
        return NULL;
    if (alloc_countdown > 0)
        alloc_countdown--;
    return realloc(p, n);
}

static void t_free(void *p, void *ud)
{
    (void)ud;
    free(p);
}

/* ---- helpers ---- */

static int64_t add_conv(fx *f, int kind, const char *title, const char *dm_key, uint64_t change)
{
    chat_store_conv c = {0};
    c.kind = kind;
    c.change = change;
    c.created_ms = 1000;
    snprintf(c.title, sizeof c.title, "%s", title);
    snprintf(c.dm_key, sizeof c.dm_key, "%s", dm_key);
    assert_int_equal(f->ops->conv_insert(f->st, &c), CHAT_OK);
    assert_true(c.id > 0);
    return c.id;
}

static void put_member(fx *f, int64_t conv, const char *user, int role, uint64_t change)
{
    chat_store_member m = {0};
    m.conv = conv;
    snprintf(m.user, sizeof m.user, "%s", user);
    m.role = role;
    m.change = change;
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
}

static int set_conv_change(fx *f, int64_t id, uint64_t change)
{
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, id, &c), CHAT_OK);
    c.change = change;
    return f->ops->conv_update(f->st, &c);
}

static int add_msg(fx *f, int64_t conv, uint64_t seq, const char *sender, const char *device,
                   const char *cmid, const char *body)
{
    chat_store_msg m = {0};
    m.conv = conv;
    m.seq = seq;
    m.ts_ms = 5000 + (int64_t)seq;
    m.sender = sender;
    m.device = device;
    m.cmid = cmid;
    m.kind = CHAT_MSG_TEXT;
    m.body = body;
    m.body_len = body ? strlen(body) : 0;
    return f->ops->msg_insert(f->st, &m);
}

/* Collects what callbacks see, as one string ("1,2,3," or "ann,bob,"). */
typedef struct rec {
    char buf[1024];
    int n;
    int stop_after; /* return 42 after this many rows when > 0 */
    fx *f;          /* for re-entry tests */
    int reentry_rc;
    int point_rc;
} rec;

static int rec_row(rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int rec_row(rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len = strlen(r->buf);
    vsnprintf(r->buf + len, sizeof r->buf - len, fmt, ap);
    va_end(ap);
    r->n++;
    return r->stop_after > 0 && r->n >= r->stop_after ? 42 : 0;
}

static int rec_seq(const chat_store_msg *m, void *ud)
{
    return rec_row(ud, "%llu,", (unsigned long long)m->seq);
}

static int rec_hit(const chat_store_msg *m, uint64_t cursor, void *ud)
{
    (void)cursor;
    return rec_row(ud, "%llu,", (unsigned long long)m->seq);
}

static int rec_member(const chat_store_member *m, void *ud)
{
    return rec_row(ud, "%lld:%s,", (long long)m->conv, m->user);
}

static int rec_name(const char *name, void *ud)
{
    return rec_row(ud, "%s,", name);
}

static int rec_revoked(const char *sid, int64_t exp_ms, void *ud)
{
    return rec_row(ud, "%s=%lld,", sid, (long long)exp_ms);
}

static const char *range(fx *f, int64_t conv, uint64_t after, uint64_t before, int limit,
                         int desc, rec *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(f->ops->msg_range(f->st, conv, after, before, limit, desc, rec_seq, r),
                     CHAT_OK);
    return r->buf;
}

static const char *members(fx *f, int64_t conv, int only_active, rec *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(f->ops->member_list(f->st, conv, only_active, rec_member, r), CHAT_OK);
    return r->buf;
}

static const char *inbox(fx *f, const char *user, uint64_t since, int limit, rec *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(f->ops->user_convs(f->st, user, since, limit, rec_member, r), CHAT_OK);
    return r->buf;
}

static const char *contacts(fx *f, const char *user, rec *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(f->ops->contacts(f->st, user, rec_name, r), CHAT_OK);
    return r->buf;
}

static const char *revoked(fx *f, int64_t now, rec *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(f->ops->revoked_list(f->st, now, rec_revoked, r), CHAT_OK);
    return r->buf;
}

/* ---- conversations ---- */

static void test_store_conv_insert_get(void **state)
{
    fx *f = *state;
    chat_store_conv c = {0}, out;
    c.kind = CHAT_CONV_GROUP;
    c.head_seq = 7;
    c.change = 3;
    c.created_ms = 123456789012;
    c.member_count = 4;
    strcpy(c.title, "team");
    c.id = 999; /* ignored */
    assert_int_equal(f->ops->conv_insert(f->st, &c), CHAT_OK);
    assert_true(c.id > 0 && c.id != 999);
    assert_int_equal(f->ops->conv_get(f->st, c.id, &out), CHAT_OK);
    assert_int_equal(out.id, c.id);
    assert_int_equal(out.kind, CHAT_CONV_GROUP);
    assert_int_equal(out.head_seq, 7);
    assert_int_equal(out.change, 3);
    assert_int_equal(out.created_ms, 123456789012);
    assert_int_equal(out.member_count, 4);
    assert_string_equal(out.title, "team");
    assert_string_equal(out.dm_key, "");
    int64_t second = add_conv(f, CHAT_CONV_GROUP, "other", "", 0);
    assert_true(second != c.id);
}

static void test_store_conv_get_absent(void **state)
{
    fx *f = *state;
    chat_store_conv out;
    assert_int_equal(f->ops->conv_get(f->st, 42, &out), CHAT_ENOTFOUND);
    assert_int_equal(chat_error_last()->code, CHAT_ENOTFOUND);
}

static void test_store_conv_find_direct(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_DIRECT, "", "ann\nbob", 0);
    chat_store_conv out;
    assert_int_equal(f->ops->conv_find_direct(f->st, "ann\nbob", &out), CHAT_OK);
    assert_int_equal(out.id, id);
    assert_int_equal(out.kind, CHAT_CONV_DIRECT);
    assert_string_equal(out.dm_key, "ann\nbob");
    assert_int_equal(f->ops->conv_find_direct(f->st, "ann\ncid", &out), CHAT_ENOTFOUND);
    /* Groups have no dm_key and are never found by the empty one. */
    add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    assert_int_equal(f->ops->conv_find_direct(f->st, "", &out), CHAT_ENOTFOUND);
}

static void test_store_conv_duplicate_dm_key(void **state)
{
    fx *f = *state;
    add_conv(f, CHAT_CONV_DIRECT, "", "ann\nbob", 0);
    chat_store_conv c = {0};
    c.kind = CHAT_CONV_DIRECT;
    strcpy(c.dm_key, "ann\nbob");
    assert_int_equal(f->ops->conv_insert(f->st, &c), CHAT_EEXISTS);
    /* Many groups may share the empty dm_key. */
    add_conv(f, CHAT_CONV_GROUP, "a", "", 0);
    add_conv(f, CHAT_CONV_GROUP, "b", "", 0);
}

static void test_store_conv_update(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_DIRECT, "old", "ann\nbob", 1);
    chat_store_conv c, out;
    assert_int_equal(f->ops->conv_get(f->st, id, &c), CHAT_OK);
    strcpy(c.title, "new");
    c.head_seq = 10;
    c.change = 11;
    c.member_count = 2;
    c.kind = CHAT_CONV_GROUP;    /* not updated */
    strcpy(c.dm_key, "zzz");     /* not updated */
    c.created_ms = 1;            /* not updated */
    assert_int_equal(f->ops->conv_update(f->st, &c), CHAT_OK);
    assert_int_equal(f->ops->conv_get(f->st, id, &out), CHAT_OK);
    assert_string_equal(out.title, "new");
    assert_int_equal(out.head_seq, 10);
    assert_int_equal(out.change, 11);
    assert_int_equal(out.member_count, 2);
    assert_int_equal(out.kind, CHAT_CONV_DIRECT);
    assert_string_equal(out.dm_key, "ann\nbob");
    assert_int_equal(out.created_ms, 1000);
    c.id = id + 100;
    assert_int_equal(f->ops->conv_update(f->st, &c), CHAT_ENOTFOUND);
}

static void test_store_conv_rejects_bad_input(void **state)
{
    fx *f = *state;
    chat_store_conv c = {0};
    memset(c.title, 'x', sizeof c.title); /* no NUL */
    assert_int_equal(f->ops->conv_insert(f->st, &c), CHAT_EINVAL);
    memset(&c, 0, sizeof c);
    c.head_seq = (uint64_t)INT64_MAX + 1;
    assert_int_equal(f->ops->conv_insert(f->st, &c), CHAT_EINVAL);
}

/* ---- members ---- */

static void test_store_member_put_get(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    chat_store_member m = {0}, out;
    m.conv = id;
    strcpy(m.user, "ann");
    m.role = CHAT_ROLE_OWNER;
    m.delivered_seq = 5;
    m.read_seq = 4;
    m.delivered_ms = 111;
    m.read_ms = 222;
    m.joined_seq = 1;
    m.change = 9;
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->member_get(f->st, id, "ann", &out), CHAT_OK);
    assert_int_equal(out.conv, id);
    assert_string_equal(out.user, "ann");
    assert_int_equal(out.role, CHAT_ROLE_OWNER);
    assert_int_equal(out.delivered_seq, 5);
    assert_int_equal(out.read_seq, 4);
    assert_int_equal(out.delivered_ms, 111);
    assert_int_equal(out.read_ms, 222);
    assert_int_equal(out.joined_seq, 1);
    assert_int_equal(out.change, 9);
    m.role = CHAT_ROLE_NONE;
    m.read_seq = 5;
    m.change = 10;
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->member_get(f->st, id, "ann", &out), CHAT_OK);
    assert_int_equal(out.role, CHAT_ROLE_NONE);
    assert_int_equal(out.read_seq, 5);
    assert_int_equal(out.change, 10);
    assert_int_equal(f->ops->member_get(f->st, id, "bob", &out), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->member_get(f->st, id + 1, "ann", &out), CHAT_ENOTFOUND);
}

static void test_store_member_rejects_bad_input(void **state)
{
    fx *f = *state;
    chat_store_member m = {0}, out;
    m.conv = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_EINVAL); /* empty user */
    memset(m.user, 'u', sizeof m.user);
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_EINVAL); /* no NUL */
    char long_user[CHAT_ID_MAX + 2];
    memset(long_user, 'u', sizeof long_user - 1);
    long_user[sizeof long_user - 1] = '\0';
    assert_int_equal(f->ops->member_get(f->st, m.conv, long_user, &out), CHAT_EINVAL);
}

static void test_store_member_list_order_and_filter(void **state)
{
    fx *f = *state;
    rec r;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    int64_t other = add_conv(f, CHAT_CONV_GROUP, "h", "", 0);
    put_member(f, id, "dan", CHAT_ROLE_MEMBER, 1);
    put_member(f, id, "ann", CHAT_ROLE_OWNER, 1);
    put_member(f, id, "cid", CHAT_ROLE_NONE, 1);
    put_member(f, id, "bob", CHAT_ROLE_ADMIN, 1);
    put_member(f, other, "eve", CHAT_ROLE_MEMBER, 1);
    char want[128];
    snprintf(want, sizeof want, "%lld:ann,%lld:bob,%lld:cid,%lld:dan,", (long long)id,
             (long long)id, (long long)id, (long long)id);
    assert_string_equal(members(f, id, 0, &r), want);
    snprintf(want, sizeof want, "%lld:ann,%lld:bob,%lld:dan,", (long long)id, (long long)id,
             (long long)id);
    assert_string_equal(members(f, id, 1, &r), want);
    assert_string_equal(members(f, id + 100, 0, &r), "");
    /* A callback's non-zero result stops the walk and is returned. */
    memset(&r, 0, sizeof r);
    r.stop_after = 2;
    assert_int_equal(f->ops->member_list(f->st, id, 0, rec_member, &r), 42);
    assert_int_equal(r.n, 2);
}

/* ---- messages ---- */

static int check_msg(const chat_store_msg *m, void *ud)
{
    int *calls = ud;
    (*calls)++;
    assert_int_equal(m->seq, 3);
    assert_int_equal(m->ts_ms, 77);
    assert_string_equal(m->sender, "ann");
    assert_string_equal(m->device, "phone");
    assert_string_equal(m->cmid, "c-1");
    assert_int_equal(m->kind, CHAT_MSG_MEDIA);
    assert_int_equal(m->body_len, 5);
    assert_memory_equal(m->body, "a\0b\0c", 5);
    return 0;
}

static void test_store_msg_insert_find_cmid(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    chat_store_msg m = {0};
    m.conv = id;
    m.seq = 3;
    m.ts_ms = 77;
    m.sender = "ann";
    m.device = "phone";
    m.cmid = "c-1";
    m.kind = CHAT_MSG_MEDIA;
    m.body = "a\0b\0c"; /* bodies are bytes */
    m.body_len = 5;
    assert_int_equal(f->ops->msg_insert(f->st, &m), CHAT_OK);
    int calls = 0;
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "phone", "c-1", check_msg, &calls),
                     CHAT_OK);
    assert_int_equal(calls, 1);
    rec r = {0};
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "phone", "c-2", rec_seq, &r),
                     CHAT_ENOTFOUND);
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "laptop", "c-1", rec_seq, &r),
                     CHAT_ENOTFOUND);
    assert_int_equal(f->ops->msg_find_cmid(f->st, id + 1, "ann", "phone", "c-1", rec_seq, &r),
                     CHAT_ENOTFOUND);
    assert_int_equal(r.n, 0);
}

static int check_empty_body(const chat_store_msg *m, void *ud)
{
    (void)ud;
    assert_non_null(m->body);
    assert_int_equal(m->body_len, 0);
    assert_string_equal(m->cmid, "");
    return 0;
}

static void test_store_msg_empty_body_and_no_cmid(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    /* No client id (NULL or ""): never deduplicated, never found by cmid. */
    assert_int_equal(add_msg(f, id, 1, "ann", "d", NULL, NULL), CHAT_OK);
    assert_int_equal(add_msg(f, id, 2, "ann", "d", NULL, ""), CHAT_OK);
    assert_int_equal(add_msg(f, id, 3, "ann", "d", "", ""), CHAT_OK);
    assert_int_equal(f->ops->msg_range(f->st, id, 0, 0, 10, 0, check_empty_body, NULL), CHAT_OK);
    rec r = {0};
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "d", "", rec_seq, &r),
                     CHAT_ENOTFOUND);
}

static void test_store_msg_duplicate(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    int64_t other = add_conv(f, CHAT_CONV_GROUP, "h", "", 0);
    assert_int_equal(add_msg(f, id, 1, "ann", "phone", "c-1", "hi"), CHAT_OK);
    /* Same (conv, seq). */
    assert_int_equal(add_msg(f, id, 1, "bob", "pc", "c-9", "x"), CHAT_EEXISTS);
    /* Same (conv, sender, device, cmid). */
    assert_int_equal(add_msg(f, id, 2, "ann", "phone", "c-1", "hi"), CHAT_EEXISTS);
    /* The same cmid elsewhere is a different message. */
    assert_int_equal(add_msg(f, other, 1, "ann", "phone", "c-1", "hi"), CHAT_OK);
    assert_int_equal(add_msg(f, id, 2, "ann", "laptop", "c-1", "hi"), CHAT_OK);
    assert_int_equal(add_msg(f, id, 3, "bob", "phone", "c-1", "hi"), CHAT_OK);
    rec r;
    assert_string_equal(range(f, id, 0, 0, 10, 0, &r), "1,2,3,");
}

static void test_store_msg_rejects_bad_input(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    char long_id[CHAT_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    assert_int_equal(add_msg(f, id, 1, long_id, "d", "c", "b"), CHAT_EINVAL);
    assert_int_equal(add_msg(f, id, 1, "ann", long_id, "c", "b"), CHAT_EINVAL);
    assert_int_equal(add_msg(f, id, 1, "ann", "d", long_id, "b"), CHAT_EINVAL);
    assert_int_equal(add_msg(f, id, 1, NULL, "d", "c", "b"), CHAT_EINVAL);
    assert_int_equal(add_msg(f, id, (uint64_t)INT64_MAX + 1, "ann", "d", "c", "b"), CHAT_EINVAL);
    long_id[CHAT_ID_MAX] = '\0'; /* exactly CHAT_ID_MAX is fine */
    assert_int_equal(add_msg(f, id, 1, long_id, long_id, long_id, "b"), CHAT_OK);
    rec r;
    assert_string_equal(range(f, id, 0, 0, 10, 0, &r), "1,");
}

static void test_store_msg_range(void **state)
{
    fx *f = *state;
    rec r;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    int64_t other = add_conv(f, CHAT_CONV_GROUP, "h", "", 0);
    char cmid[16];
    for (uint64_t seq = 1; seq <= 10; seq++) {
        snprintf(cmid, sizeof cmid, "c%llu", (unsigned long long)seq);
        assert_int_equal(add_msg(f, id, seq, "ann", "d", cmid, "body"), CHAT_OK);
    }
    assert_int_equal(add_msg(f, other, 1, "ann", "d", "x", "body"), CHAT_OK);
    assert_string_equal(range(f, id, 0, 0, 100, 0, &r), "1,2,3,4,5,6,7,8,9,10,");
    assert_string_equal(range(f, id, 0, 0, 3, 0, &r), "1,2,3,");
    assert_string_equal(range(f, id, 0, 0, 3, 1, &r), "10,9,8,");
    assert_string_equal(range(f, id, 3, 7, 100, 0, &r), "4,5,6,");
    assert_string_equal(range(f, id, 3, 7, 100, 1, &r), "6,5,4,");
    assert_string_equal(range(f, id, 3, 7, 2, 0, &r), "4,5,");
    assert_string_equal(range(f, id, 3, 7, 2, 1, &r), "6,5,");
    assert_string_equal(range(f, id, 8, 0, 100, 0, &r), "9,10,");
    assert_string_equal(range(f, id, 0, 2, 100, 1, &r), "1,");
    assert_string_equal(range(f, id, 10, 0, 100, 0, &r), "");
    assert_string_equal(range(f, id, 5, 6, 100, 0, &r), "");
    assert_string_equal(range(f, id, 7, 3, 100, 0, &r), "");
    assert_string_equal(range(f, id, 0, 1, 100, 0, &r), "");
    assert_string_equal(range(f, id, 0, 0, 0, 0, &r), "");
    assert_string_equal(range(f, id + 100, 0, 0, 10, 0, &r), "");
    assert_string_equal(range(f, id, 0, UINT64_MAX, 2, 1, &r), "10,9,");
    assert_int_equal(f->ops->msg_range(f->st, id, 0, 0, -1, 0, rec_seq, &r), CHAT_EINVAL);
    memset(&r, 0, sizeof r);
    r.stop_after = 3;
    assert_int_equal(f->ops->msg_range(f->st, id, 0, 0, 100, 1, rec_seq, &r), 42);
    assert_string_equal(r.buf, "10,9,8,");
}

static void test_store_msg_range_out_of_order_inserts(void **state)
{
    fx *f = *state;
    rec r;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    static const uint64_t seqs[] = {5, 1, 9, 3, 7, 2};
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++)
        assert_int_equal(add_msg(f, id, seqs[i], "ann", "d", NULL, "b"), CHAT_OK);
    assert_string_equal(range(f, id, 0, 0, 100, 0, &r), "1,2,3,5,7,9,");
    assert_string_equal(range(f, id, 2, 9, 100, 1, &r), "7,5,3,");
    assert_int_equal(add_msg(f, id, 3, "ann", "d", NULL, "b"), CHAT_EEXISTS);
}

/* ---- inbox and contacts ---- */

static void test_store_user_convs_since_and_order(void **state)
{
    fx *f = *state;
    rec r;
    char want[256];
    int64_t a = add_conv(f, CHAT_CONV_GROUP, "a", "", 5);
    int64_t b = add_conv(f, CHAT_CONV_GROUP, "b", "", 1);
    int64_t c = add_conv(f, CHAT_CONV_GROUP, "c", "", 2);
    int64_t d = add_conv(f, CHAT_CONV_GROUP, "d", "", 0);
    put_member(f, a, "ann", CHAT_ROLE_MEMBER, 1);  /* key max(1, 5) = 5 */
    put_member(f, b, "ann", CHAT_ROLE_MEMBER, 8);  /* key max(8, 1) = 8 */
    put_member(f, c, "ann", CHAT_ROLE_NONE, 3);    /* key 3; left rows are listed too */
    put_member(f, d, "bob", CHAT_ROLE_MEMBER, 9);  /* someone else's row */
    snprintf(want, sizeof want, "%lld:ann,%lld:ann,%lld:ann,", (long long)c, (long long)a,
             (long long)b);
    assert_string_equal(inbox(f, "ann", 0, 100, &r), want);
    snprintf(want, sizeof want, "%lld:ann,%lld:ann,", (long long)a, (long long)b);
    assert_string_equal(inbox(f, "ann", 3, 100, &r), want);
    assert_string_equal(inbox(f, "ann", 4, 100, &r), want);
    snprintf(want, sizeof want, "%lld:ann,", (long long)b);
    assert_string_equal(inbox(f, "ann", 5, 100, &r), want);
    assert_string_equal(inbox(f, "ann", 8, 100, &r), "");
    snprintf(want, sizeof want, "%lld:ann,", (long long)c);
    assert_string_equal(inbox(f, "ann", 0, 1, &r), want);
    assert_string_equal(inbox(f, "nobody", 0, 100, &r), "");
    assert_string_equal(inbox(f, "ann", 0, 0, &r), "");

    /* A conversation change moves an active member's row, never a row of a member who left. */
    assert_int_equal(set_conv_change(f, c, 10), CHAT_OK);
    snprintf(want, sizeof want, "%lld:ann,", (long long)b);
    assert_string_equal(inbox(f, "ann", 5, 100, &r), want);
    assert_int_equal(set_conv_change(f, a, 10), CHAT_OK);
    snprintf(want, sizeof want, "%lld:ann,%lld:ann,", (long long)b, (long long)a);
    assert_string_equal(inbox(f, "ann", 5, 100, &r), want);
    /* A member change moves the row too, left or not. */
    put_member(f, c, "ann", CHAT_ROLE_NONE, 12);
    put_member(f, a, "ann", CHAT_ROLE_MEMBER, 11);
    snprintf(want, sizeof want, "%lld:ann,%lld:ann,%lld:ann,", (long long)b, (long long)a,
             (long long)c);
    assert_string_equal(inbox(f, "ann", 5, 100, &r), want);
    /* Ties are ordered by conversation id. */
    assert_int_equal(set_conv_change(f, b, 11), CHAT_OK);
    snprintf(want, sizeof want, "%lld:ann,%lld:ann,%lld:ann,", (long long)a, (long long)b,
             (long long)c);
    assert_string_equal(inbox(f, "ann", 10, 100, &r), want);
    assert_int_equal(f->ops->user_convs(f->st, "ann", 0, -1, rec_member, &r), CHAT_EINVAL);
}

static int check_inbox_row(const chat_store_member *m, void *ud)
{
    (void)ud;
    assert_string_equal(m->user, "ann");
    assert_int_equal(m->role, CHAT_ROLE_ADMIN);
    assert_int_equal(m->delivered_seq, 4);
    assert_int_equal(m->read_seq, 3);
    assert_int_equal(m->joined_seq, 2);
    assert_int_equal(m->change, 6);
    return 0;
}

static void test_store_user_convs_row_fields(void **state)
{
    fx *f = *state;
    int64_t a = add_conv(f, CHAT_CONV_GROUP, "a", "", 5);
    chat_store_member m = {0};
    m.conv = a;
    strcpy(m.user, "ann");
    m.role = CHAT_ROLE_ADMIN;
    m.delivered_seq = 4;
    m.read_seq = 3;
    m.joined_seq = 2;
    m.change = 6;
    assert_int_equal(f->ops->member_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->user_convs(f->st, "ann", 0, 10, check_inbox_row, NULL), CHAT_OK);
}

static void test_store_contacts(void **state)
{
    fx *f = *state;
    rec r;
    int64_t g1 = add_conv(f, CHAT_CONV_GROUP, "g1", "", 0);
    int64_t g2 = add_conv(f, CHAT_CONV_GROUP, "g2", "", 0);
    int64_t g3 = add_conv(f, CHAT_CONV_GROUP, "g3", "", 0);
    int64_t dm = add_conv(f, CHAT_CONV_DIRECT, "", "ann\nzed", 0);
    put_member(f, g1, "ann", CHAT_ROLE_OWNER, 1);
    put_member(f, g1, "dan", CHAT_ROLE_MEMBER, 1);
    put_member(f, g1, "bob", CHAT_ROLE_MEMBER, 1);
    put_member(f, g1, "eve", CHAT_ROLE_NONE, 1);   /* left: not a contact through g1 */
    put_member(f, g2, "ann", CHAT_ROLE_MEMBER, 1);
    put_member(f, g2, "bob", CHAT_ROLE_ADMIN, 1);  /* shared twice, listed once */
    put_member(f, g2, "cid", CHAT_ROLE_MEMBER, 1);
    put_member(f, g3, "ann", CHAT_ROLE_NONE, 1);   /* ann left g3 */
    put_member(f, g3, "fay", CHAT_ROLE_MEMBER, 1);
    put_member(f, dm, "ann", CHAT_ROLE_MEMBER, 1);
    put_member(f, dm, "zed", CHAT_ROLE_MEMBER, 1);
    put_member(f, g3, "gus", CHAT_ROLE_MEMBER, 1);
    assert_string_equal(contacts(f, "ann", &r), "bob,cid,dan,zed,");
    assert_string_equal(contacts(f, "fay", &r), "gus,");
    assert_string_equal(contacts(f, "eve", &r), "");
    assert_string_equal(contacts(f, "nobody", &r), "");
    memset(&r, 0, sizeof r);
    r.stop_after = 1;
    assert_int_equal(f->ops->contacts(f->st, "ann", rec_name, &r), 42);
    assert_string_equal(r.buf, "bob,");
}

/* ---- users, revoked sessions, meta ---- */

static void test_store_user_put_get(void **state)
{
    fx *f = *state;
    chat_store_user u = {0}, out;
    strcpy(u.name, "ann");
    strcpy(u.pwhash, "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA");
    u.hide_last_seen = 1;
    u.last_seen_ms = 55;
    u.created_ms = 44;
    assert_int_equal(f->ops->user_get(f->st, "ann", &out), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->user_put(f->st, &u), CHAT_OK);
    assert_int_equal(f->ops->user_get(f->st, "ann", &out), CHAT_OK);
    assert_string_equal(out.name, "ann");
    assert_string_equal(out.pwhash, u.pwhash);
    assert_int_equal(out.hide_last_seen, 1);
    assert_int_equal(out.last_seen_ms, 55);
    assert_int_equal(out.created_ms, 44);
    u.pwhash[0] = '\0';
    u.hide_last_seen = 0;
    u.last_seen_ms = 66;
    assert_int_equal(f->ops->user_put(f->st, &u), CHAT_OK);
    assert_int_equal(f->ops->user_get(f->st, "ann", &out), CHAT_OK);
    assert_string_equal(out.pwhash, "");
    assert_int_equal(out.hide_last_seen, 0);
    assert_int_equal(out.last_seen_ms, 66);
    /* A member who never registered is not a user. */
    put_member(f, add_conv(f, CHAT_CONV_GROUP, "g", "", 0), "bob", CHAT_ROLE_MEMBER, 1);
    assert_int_equal(f->ops->user_get(f->st, "bob", &out), CHAT_ENOTFOUND);
    memset(&u, 0, sizeof u);
    assert_int_equal(f->ops->user_put(f->st, &u), CHAT_EINVAL);
}

static void test_store_revoked_put_list(void **state)
{
    fx *f = *state;
    rec r;
    assert_string_equal(revoked(f, 0, &r), "");
    assert_int_equal(f->ops->revoked_put(f->st, "s2", 200), CHAT_OK);
    assert_int_equal(f->ops->revoked_put(f->st, "s1", 100), CHAT_OK);
    assert_int_equal(f->ops->revoked_put(f->st, "s3", 300), CHAT_OK);
    assert_string_equal(revoked(f, 0, &r), "s1=100,s2=200,s3=300,");
    assert_string_equal(revoked(f, 100, &r), "s2=200,s3=300,"); /* exp_ms > now_ms */
    assert_string_equal(revoked(f, 299, &r), "s3=300,");
    assert_string_equal(revoked(f, 300, &r), "");
    assert_int_equal(f->ops->revoked_put(f->st, "s1", 400), CHAT_OK); /* overwrite */
    assert_string_equal(revoked(f, 300, &r), "s1=400,");
    assert_int_equal(f->ops->revoked_put(f->st, "", 400), CHAT_EINVAL);
}

static void test_store_meta_get_set(void **state)
{
    fx *f = *state;
    int64_t v = 0;
    assert_int_equal(f->ops->meta_get(f->st, "change", &v), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->meta_set(f->st, "change", 17), CHAT_OK);
    assert_int_equal(f->ops->meta_set(f->st, "other", -5), CHAT_OK);
    assert_int_equal(f->ops->meta_get(f->st, "change", &v), CHAT_OK);
    assert_int_equal(v, 17);
    assert_int_equal(f->ops->meta_set(f->st, "change", INT64_MAX), CHAT_OK);
    assert_int_equal(f->ops->meta_get(f->st, "change", &v), CHAT_OK);
    assert_true(v == INT64_MAX);
    assert_int_equal(f->ops->meta_get(f->st, "other", &v), CHAT_OK);
    assert_int_equal(v, -5);
    assert_int_equal(f->ops->meta_set(f->st, NULL, 1), CHAT_EINVAL);
}

/* ---- media (version 2) ---- */

static chat_store_media media_row(const char *id, const char *uploader, uint64_t size)
{
    chat_store_media m;
    memset(&m, 0, sizeof m);
    snprintf(m.id, sizeof m.id, "%s", id);
    snprintf(m.uploader, sizeof m.uploader, "%s", uploader);
    snprintf(m.mime, sizeof m.mime, "image/png");
    snprintf(m.name, sizeof m.name, "cat.png");
    m.size = size;
    m.created_ms = 1234;
    return m;
}

static int collect_grant(int64_t conv, const char *user, void *ud)
{
    char *buf = ud;
    size_t n = strlen(buf);
    snprintf(buf + n, 256 - n, "%lld:%s,", (long long)conv, user);
    return 0;
}

static void test_store_media_put_get(void **state)
{
    fx *f = *state;
    chat_store_media m = media_row("ab01", "alice", 5 * 1024 * 1024), out;
    assert_int_equal(f->ops->media_get(f->st, "ab01", &out), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->media_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->media_get(f->st, "ab01", &out), CHAT_OK);
    assert_string_equal(out.id, "ab01");
    assert_string_equal(out.uploader, "alice");
    assert_string_equal(out.mime, "image/png");
    assert_string_equal(out.name, "cat.png");
    assert_true(out.size == 5 * 1024 * 1024);
    assert_int_equal(out.created_ms, 1234);
    /* content-addressed: a second put of the same id changes nothing */
    chat_store_media m2 = media_row("ab01", "bob", 1);
    assert_int_equal(f->ops->media_put(f->st, &m2), CHAT_EEXISTS);
    assert_int_equal(f->ops->media_get(f->st, "ab01", &out), CHAT_OK);
    assert_string_equal(out.uploader, "alice");
    m2.name[0] = 0;
    snprintf(m2.id, sizeof m2.id, "cd02");
    assert_int_equal(f->ops->media_put(f->st, &m2), CHAT_OK); /* empty name is fine */
    m2.mime[0] = 0;
    snprintf(m2.id, sizeof m2.id, "cd03");
    assert_int_equal(f->ops->media_put(f->st, &m2), CHAT_EINVAL); /* mime required */
    assert_int_equal(f->ops->media_get(f->st, "", &out), CHAT_EINVAL);
    assert_int_equal(f->ops->media_get(f->st, NULL, &out), CHAT_EINVAL);
}

static void test_store_media_grants(void **state)
{
    fx *f = *state;
    char buf[256] = "";
    assert_int_equal(f->ops->media_grants(f->st, "ab01", collect_grant, buf), CHAT_OK);
    assert_string_equal(buf, "");
    assert_int_equal(f->ops->media_grant(f->st, "ab01", 7, ""), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "ab01", 0, "bob"), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "ab01", 0, "alice"), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "ab01", 3, ""), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "ab01", 3, ""), CHAT_OK); /* kept once */
    assert_int_equal(f->ops->media_grant(f->st, "ab011", 3, ""), CHAT_OK); /* other id */
    assert_int_equal(f->ops->media_grants(f->st, "ab01", collect_grant, buf), CHAT_OK);
    assert_string_equal(buf, "0:alice,0:bob,3:,7:,");
    /* a grant is a conversation or a user, never both or neither */
    assert_int_equal(f->ops->media_grant(f->st, "ab01", 3, "bob"), CHAT_EINVAL);
    assert_int_equal(f->ops->media_grant(f->st, "ab01", 0, ""), CHAT_EINVAL);
    assert_int_equal(f->ops->media_grant(f->st, "a\nb", 0, "bob"), CHAT_EINVAL);
}

static void test_store_media_rollback(void **state)
{
    fx *f = *state;
    chat_store_media m = media_row("ef09", "alice", 10), out;
    char buf[256] = "";
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->media_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "ef09", 0, "alice"), CHAT_OK);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    assert_int_equal(f->ops->media_get(f->st, "ef09", &out), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->media_grants(f->st, "ef09", collect_grant, buf), CHAT_OK);
    assert_string_equal(buf, "");
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->media_put(f->st, &m), CHAT_OK);
    assert_int_equal(f->ops->media_grant(f->st, "ef09", 0, "alice"), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_int_equal(f->ops->media_get(f->st, "ef09", &out), CHAT_OK);
    assert_int_equal(f->ops->media_grants(f->st, "ef09", collect_grant, buf), CHAT_OK);
    assert_string_equal(buf, "0:alice,");
}

/* ---- transactions ---- */

/* A fixed data set touching every table, for the rollback and commit tests. */
/* ---- push registrations and mutes (version 3) ---- */

static chat_store_push_reg push_reg(const char *user, const char *device, int platform,
                                    const char *token)
{
    chat_store_push_reg r;
    memset(&r, 0, sizeof r);
    snprintf(r.user, sizeof r.user, "%s", user);
    snprintf(r.device, sizeof r.device, "%s", device);
    r.platform = platform;
    snprintf(r.token, sizeof r.token, "%s", token);
    r.updated_ms = 1000;
    return r;
}

static int rec_reg(const chat_store_push_reg *r, void *ud)
{
    return rec_row(ud, "%s/%s:%d:%d:%s:%s:%lld;", r->user, r->device, r->platform, r->sandbox,
                   r->token, r->topic, (long long)r->updated_ms);
}

static const char *regs(fx *f, const char *user, rec *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(f->ops->push_reg_list(f->st, user, rec_reg, r), CHAT_OK);
    return r->buf;
}

/* Push registrations are optional (version 3): a backend without them skips these tests. */
static void need_push(const fx *f)
{
    if (!chat__store_checked_has_push(f->ops, f->st))
        skip();
}

static void test_store_push_reg_put_list_del(void **state)
{
    fx *f = *state;
    need_push(f);
    rec r;
    assert_string_equal(regs(f, "bob", &r), "");
    chat_store_push_reg a = push_reg("bob", "phone", CHAT_PUSH_APNS, "aa01");
    chat_store_push_reg b = push_reg("bob", "android", CHAT_PUSH_FCM, "fcm:B-1");
    chat_store_push_reg c = push_reg("carol", "phone", CHAT_PUSH_APNS, "cc02");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_OK);
    assert_int_equal(f->ops->push_reg_put(f->st, &b), CHAT_OK);
    assert_int_equal(f->ops->push_reg_put(f->st, &c), CHAT_OK);
    assert_string_equal(regs(f, "bob", &r), "bob/android:2:0:fcm:B-1::1000;"
                                            "bob/phone:1:0:aa01::1000;");
    /* Overwritten as a whole by (user, device). */
    a = push_reg("bob", "phone", CHAT_PUSH_APNS, "aa03");
    a.sandbox = 1;
    a.updated_ms = 2000;
    snprintf(a.topic, sizeof a.topic, "com.example.chat");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_OK);
    assert_string_equal(regs(f, "bob", &r), "bob/android:2:0:fcm:B-1::1000;"
                                            "bob/phone:1:1:aa03:com.example.chat:2000;");
    assert_int_equal(f->ops->push_reg_del(f->st, "bob", "android"), CHAT_OK);
    assert_int_equal(f->ops->push_reg_del(f->st, "bob", "android"), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->push_reg_del(f->st, "dave", "phone"), CHAT_ENOTFOUND);
    assert_string_equal(regs(f, "bob", &r), "bob/phone:1:1:aa03:com.example.chat:2000;");
    assert_string_equal(regs(f, "carol", &r), "carol/phone:1:0:cc02::1000;");
    /* A deleted registration can come back. */
    assert_int_equal(f->ops->push_reg_put(f->st, &b), CHAT_OK);
    assert_string_equal(regs(f, "bob", &r), "bob/android:2:0:fcm:B-1::1000;"
                                            "bob/phone:1:1:aa03:com.example.chat:2000;");
    /* A token of the longest length round-trips whole. */
    chat_store_push_reg l = push_reg("erin", "phone", CHAT_PUSH_FCM, "");
    memset(l.token, 'k', CHAT_PUSH_TOKEN_MAX);
    l.token[CHAT_PUSH_TOKEN_MAX] = '\0';
    assert_int_equal(f->ops->push_reg_put(f->st, &l), CHAT_OK);
    assert_int_equal(strlen(regs(f, "erin", &r)), strlen("erin/phone:2:0:::1000;") +
                                                      CHAT_PUSH_TOKEN_MAX);
}

static void test_store_push_reg_del_token(void **state)
{
    fx *f = *state;
    need_push(f);
    rec r;
    chat_store_push_reg a = push_reg("bob", "phone", CHAT_PUSH_APNS, "abcd");
    chat_store_push_reg b = push_reg("carol", "ipad", CHAT_PUSH_APNS, "abcd");
    chat_store_push_reg c = push_reg("carol", "pixel", CHAT_PUSH_FCM, "abcd");
    chat_store_push_reg d = push_reg("carol", "phone", CHAT_PUSH_APNS, "abcde");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_OK);
    assert_int_equal(f->ops->push_reg_put(f->st, &b), CHAT_OK);
    assert_int_equal(f->ops->push_reg_put(f->st, &c), CHAT_OK);
    assert_int_equal(f->ops->push_reg_put(f->st, &d), CHAT_OK);
    /* Every holder of (platform, token), and only those. */
    assert_int_equal(f->ops->push_reg_del_token(f->st, CHAT_PUSH_APNS, "abcd"), CHAT_OK);
    assert_string_equal(regs(f, "bob", &r), "");
    assert_string_equal(regs(f, "carol", &r), "carol/phone:1:0:abcde::1000;"
                                              "carol/pixel:2:0:abcd::1000;");
    assert_int_equal(f->ops->push_reg_del_token(f->st, CHAT_PUSH_APNS, "abcd"), CHAT_OK);
    assert_int_equal(f->ops->push_reg_del_token(f->st, CHAT_PUSH_FCM, "nobody"), CHAT_OK);
}

static void test_store_push_mute(void **state)
{
    fx *f = *state;
    need_push(f);
    int64_t until = -1;
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 7, &until), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 7, 0), CHAT_OK); /* unmute: no-op */
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 7, &until), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 7, 1700000000000), CHAT_OK);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 8, INT64_MAX), CHAT_OK);
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 7, &until), CHAT_OK);
    assert_true(until == 1700000000000);
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 8, &until), CHAT_OK);
    assert_true(until == INT64_MAX);
    assert_int_equal(f->ops->push_mute_get(f->st, "carol", 7, &until), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 7, 0), CHAT_OK);
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 7, &until), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 7, 5), CHAT_OK); /* muted again */
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 7, &until), CHAT_OK);
    assert_true(until == 5);
}

static void test_store_push_rejects_bad_input(void **state)
{
    fx *f = *state;
    need_push(f);
    int64_t until;
    char long_token[CHAT_PUSH_TOKEN_MAX + 2];
    memset(long_token, 't', sizeof long_token - 1);
    long_token[sizeof long_token - 1] = '\0';
    chat_store_push_reg a = push_reg("bob", "phone", 3, "aa");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_EINVAL);
    a = push_reg("bob", "phone", CHAT_PUSH_APNS, "");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_EINVAL);
    a = push_reg("bob", "", CHAT_PUSH_APNS, "aa");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_EINVAL);
    a = push_reg("bob", "phone", CHAT_PUSH_APNS, "aa");
    a.sandbox = 2;
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_EINVAL);
    assert_int_equal(f->ops->push_reg_put(f->st, NULL), CHAT_EINVAL);
    assert_int_equal(f->ops->push_reg_del_token(f->st, 0, "aa"), CHAT_EINVAL);
    assert_int_equal(f->ops->push_reg_del_token(f->st, CHAT_PUSH_FCM, long_token), CHAT_EINVAL);
    assert_int_equal(f->ops->push_reg_del_token(f->st, CHAT_PUSH_FCM, ""), CHAT_EINVAL);
    assert_int_equal(f->ops->push_reg_del(f->st, "bob", NULL), CHAT_EINVAL);
    assert_int_equal(f->ops->push_reg_list(f->st, "bob", NULL, NULL), CHAT_EINVAL);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 0, 5), CHAT_EINVAL);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 7, -1), CHAT_EINVAL);
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 7, NULL), CHAT_EINVAL);
    assert_int_equal(f->ops->push_mute_get(f->st, "", 7, &until), CHAT_EINVAL);
    rec r;
    assert_string_equal(regs(f, "bob", &r), "");
}

static void test_store_push_rollback(void **state)
{
    fx *f = *state;
    need_push(f);
    rec r;
    int64_t until;
    chat_store_push_reg a = push_reg("bob", "phone", CHAT_PUSH_APNS, "aa01");
    chat_store_push_reg b = push_reg("bob", "tablet", CHAT_PUSH_APNS, "bb02");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_OK);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 3, 99), CHAT_OK);
    const char *before = "bob/phone:1:0:aa01::1000;";

    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->push_reg_put(f->st, &b), CHAT_OK);
    a = push_reg("bob", "phone", CHAT_PUSH_FCM, "new");
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_OK);
    assert_int_equal(f->ops->push_reg_del(f->st, "bob", "phone"), CHAT_OK);
    assert_int_equal(f->ops->push_reg_put(f->st, &a), CHAT_OK);
    assert_int_equal(f->ops->push_reg_del_token(f->st, CHAT_PUSH_FCM, "new"), CHAT_OK);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 3, 0), CHAT_OK);
    assert_int_equal(f->ops->push_mute_put(f->st, "bob", 4, 1), CHAT_OK);
    assert_string_equal(regs(f, "bob", &r), "bob/tablet:1:0:bb02::1000;");
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);

    assert_string_equal(regs(f, "bob", &r), before);
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 3, &until), CHAT_OK);
    assert_true(until == 99);
    assert_int_equal(f->ops->push_mute_get(f->st, "bob", 4, &until), CHAT_ENOTFOUND);

    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->push_reg_del(f->st, "bob", "phone"), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_string_equal(regs(f, "bob", &r), "");
}

struct base {
    int64_t conv, dm;
};

static struct base seed(fx *f)
{
    struct base b;
    b.conv = add_conv(f, CHAT_CONV_GROUP, "before", "", 1);
    b.dm = add_conv(f, CHAT_CONV_DIRECT, "", "ann\nbob", 1);
    put_member(f, b.conv, "ann", CHAT_ROLE_OWNER, 1);
    put_member(f, b.dm, "ann", CHAT_ROLE_MEMBER, 1);
    put_member(f, b.dm, "bob", CHAT_ROLE_MEMBER, 1);
    assert_int_equal(add_msg(f, b.conv, 1, "ann", "d", "c1", "one"), CHAT_OK);
    chat_store_user u = {0};
    strcpy(u.name, "ann");
    u.last_seen_ms = 1;
    assert_int_equal(f->ops->user_put(f->st, &u), CHAT_OK);
    assert_int_equal(f->ops->revoked_put(f->st, "s1", 100), CHAT_OK);
    assert_int_equal(f->ops->meta_set(f->st, "k", 1), CHAT_OK);
    return b;
}

#define TRY(x)                \
    do {                      \
        int rc_ = (x);        \
        if (rc_)              \
            return rc_;       \
    } while (0)

static int try_conv(fx *f, int kind, const char *dm_key)
{
    chat_store_conv c = {0};
    c.kind = kind;
    c.change = 2;
    snprintf(c.dm_key, sizeof c.dm_key, "%s", dm_key);
    return f->ops->conv_insert(f->st, &c);
}

static int try_member(fx *f, int64_t conv, const char *user, int role, uint64_t change)
{
    chat_store_member m = {0};
    m.conv = conv;
    snprintf(m.user, sizeof m.user, "%s", user);
    m.role = role;
    m.change = change;
    return f->ops->member_put(f->st, &m);
}

/* Change every table: inserts and updates of each kind, several updates of one row. Returns
 * the first failure, for the allocation-failure test. */
static int try_mutate(fx *f, const struct base *b)
{
    TRY(try_conv(f, CHAT_CONV_DIRECT, "ann\ncid"));
    TRY(try_conv(f, CHAT_CONV_GROUP, ""));
    chat_store_conv c;
    TRY(f->ops->conv_get(f->st, b->conv, &c));
    for (int i = 0; i < 3; i++) {
        snprintf(c.title, sizeof c.title, "after%d", i);
        c.head_seq = 2 + (uint64_t)i;
        c.change = 5 + (uint64_t)i;
        c.member_count = 9;
        TRY(f->ops->conv_update(f->st, &c));
    }
    TRY(try_member(f, b->conv, "ann", CHAT_ROLE_NONE, 7));
    TRY(try_member(f, b->conv, "ann", CHAT_ROLE_ADMIN, 8));
    TRY(try_member(f, b->conv, "cid", CHAT_ROLE_MEMBER, 7));
    TRY(try_member(f, b->conv, "bob", CHAT_ROLE_MEMBER, 7));
    TRY(add_msg(f, b->conv, 2, "ann", "d", "c2", "two"));
    TRY(add_msg(f, b->conv, 3, "ann", "d", "c3", "three"));
    TRY(add_msg(f, b->dm, 1, "bob", "d", "c1", "dm"));
    chat_store_user u = {0};
    strcpy(u.name, "ann");
    u.last_seen_ms = 2;
    TRY(f->ops->user_put(f->st, &u));
    u.last_seen_ms = 3;
    TRY(f->ops->user_put(f->st, &u));
    strcpy(u.name, "cid");
    TRY(f->ops->user_put(f->st, &u));
    TRY(f->ops->revoked_put(f->st, "s1", 500));
    TRY(f->ops->revoked_put(f->st, "s2", 500));
    TRY(f->ops->meta_set(f->st, "k", 2));
    TRY(f->ops->meta_set(f->st, "k", 3));
    TRY(f->ops->meta_set(f->st, "k2", 2));
    return CHAT_OK;
}

static void mutate(fx *f, const struct base *b)
{
    assert_int_equal(try_mutate(f, b), CHAT_OK);
}

static void expect_base(fx *f, const struct base *b)
{
    rec r;
    chat_store_conv c;
    chat_store_member m;
    chat_store_user u;
    int64_t v;
    char want[128];
    assert_int_equal(f->ops->conv_get(f->st, b->conv, &c), CHAT_OK);
    assert_string_equal(c.title, "before");
    assert_int_equal(c.head_seq, 0);
    assert_int_equal(c.change, 1);
    assert_int_equal(c.member_count, 0);
    assert_int_equal(f->ops->conv_get(f->st, b->dm + 1, &c), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->conv_find_direct(f->st, "ann\ncid", &c), CHAT_ENOTFOUND);
    assert_int_equal(f->ops->conv_find_direct(f->st, "ann\nbob", &c), CHAT_OK);
    assert_int_equal(f->ops->member_get(f->st, b->conv, "ann", &m), CHAT_OK);
    assert_int_equal(m.role, CHAT_ROLE_OWNER);
    assert_int_equal(m.change, 1);
    assert_int_equal(f->ops->member_get(f->st, b->conv, "cid", &m), CHAT_ENOTFOUND);
    snprintf(want, sizeof want, "%lld:ann,", (long long)b->conv);
    assert_string_equal(members(f, b->conv, 0, &r), want);
    snprintf(want, sizeof want, "%lld:ann,%lld:ann,", (long long)b->conv, (long long)b->dm);
    assert_string_equal(inbox(f, "ann", 0, 100, &r), want);
    assert_string_equal(inbox(f, "cid", 0, 100, &r), "");
    assert_string_equal(contacts(f, "ann", &r), "bob,");
    assert_string_equal(range(f, b->conv, 0, 0, 100, 0, &r), "1,");
    assert_string_equal(range(f, b->dm, 0, 0, 100, 0, &r), "");
    assert_int_equal(f->ops->msg_find_cmid(f->st, b->conv, "ann", "d", "c2", rec_seq, &r),
                     CHAT_ENOTFOUND);
    assert_int_equal(f->ops->user_get(f->st, "ann", &u), CHAT_OK);
    assert_int_equal(u.last_seen_ms, 1);
    assert_int_equal(f->ops->user_get(f->st, "cid", &u), CHAT_ENOTFOUND);
    assert_string_equal(revoked(f, 0, &r), "s1=100,");
    assert_int_equal(f->ops->meta_get(f->st, "k", &v), CHAT_OK);
    assert_int_equal(v, 1);
    assert_int_equal(f->ops->meta_get(f->st, "k2", &v), CHAT_ENOTFOUND);
}

static void expect_mutated(fx *f, const struct base *b)
{
    rec r;
    chat_store_conv c;
    chat_store_member m;
    chat_store_user u;
    int64_t v;
    assert_int_equal(f->ops->conv_get(f->st, b->conv, &c), CHAT_OK);
    assert_string_equal(c.title, "after2");
    assert_int_equal(c.head_seq, 4);
    assert_int_equal(f->ops->conv_find_direct(f->st, "ann\ncid", &c), CHAT_OK);
    assert_int_equal(f->ops->member_get(f->st, b->conv, "ann", &m), CHAT_OK);
    assert_int_equal(m.role, CHAT_ROLE_ADMIN);
    assert_string_equal(contacts(f, "ann", &r), "bob,cid,");
    assert_string_equal(range(f, b->conv, 0, 0, 100, 0, &r), "1,2,3,");
    assert_string_equal(range(f, b->dm, 0, 0, 100, 0, &r), "1,");
    assert_int_equal(f->ops->user_get(f->st, "ann", &u), CHAT_OK);
    assert_int_equal(u.last_seen_ms, 3);
    assert_int_equal(f->ops->user_get(f->st, "cid", &u), CHAT_OK);
    assert_string_equal(revoked(f, 0, &r), "s1=500,s2=500,");
    assert_int_equal(f->ops->meta_get(f->st, "k", &v), CHAT_OK);
    assert_int_equal(v, 3);
    assert_int_equal(f->ops->meta_get(f->st, "k2", &v), CHAT_OK);
}

static void test_store_rollback_undoes_everything(void **state)
{
    fx *f = *state;
    struct base b = seed(f);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    mutate(f, &b);
    expect_mutated(f, &b); /* visible inside the transaction */
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    expect_base(f, &b);
    /* The store is fully usable afterwards, ids and keys included. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    mutate(f, &b);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    expect_mutated(f, &b);
}

static void test_store_rollback_of_seeded_transaction(void **state)
{
    fx *f = *state;
    /* Inserts of rows that did not exist at all, then their rollback. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    struct base b = seed(f);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    rec r;
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, b.conv, &c), CHAT_ENOTFOUND);
    assert_string_equal(inbox(f, "ann", 0, 100, &r), "");
    assert_string_equal(contacts(f, "bob", &r), "");
    assert_string_equal(members(f, b.dm, 0, &r), "");
    assert_string_equal(range(f, b.conv, 0, 0, 10, 0, &r), "");
    assert_string_equal(revoked(f, 0, &r), "");
    /* Conversation ids are reused, as SQLite reuses rowids. */
    int64_t again = add_conv(f, CHAT_CONV_GROUP, "again", "", 0);
    assert_int_equal(again, b.conv);
    struct base b2 = seed(f);
    assert_int_equal(b2.conv, b.dm);
}

static void test_store_commit_keeps_changes(void **state)
{
    fx *f = *state;
    struct base b = seed(f);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    mutate(f, &b);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    expect_mutated(f, &b);
    /* A later rollback does not reach back past the commit. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->meta_set(f->st, "k", 99), CHAT_OK);
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    expect_mutated(f, &b);
}

static void test_store_failed_method_keeps_transaction(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    assert_int_equal(add_msg(f, id, 1, "ann", "d", "c1", "one"), CHAT_OK);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(add_msg(f, id, 2, "ann", "d", "c2", "two"), CHAT_OK);
    assert_int_equal(add_msg(f, id, 1, "ann", "d", "c9", "dup"), CHAT_EEXISTS);
    assert_int_equal(add_msg(f, id, 3, "ann", "d", "c1", "dup"), CHAT_EEXISTS);
    assert_int_equal(add_msg(f, id, 3, "ann", "d", "c3", "three"), CHAT_OK);
    rec r;
    assert_string_equal(range(f, id, 0, 0, 10, 0, &r), "1,2,3,");
    assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
    assert_string_equal(range(f, id, 0, 0, 10, 0, &r), "1,");
    /* And the same in a transaction that commits. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(add_msg(f, id, 1, "ann", "d", "c9", "dup"), CHAT_EEXISTS);
    assert_int_equal(add_msg(f, id, 2, "ann", "d", "c2", "two"), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_string_equal(range(f, id, 0, 0, 10, 0, &r), "1,2,");
}

static void test_store_transaction_misuse(void **state)
{
    fx *f = *state;
    assert_int_equal(f->ops->commit(f->st), CHAT_EMISUSE);
    assert_int_equal(f->ops->rollback(f->st), CHAT_EMISUSE);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->begin(f->st), CHAT_EMISUSE);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_EMISUSE);
}

/* lock_convs: in a transaction only, with ids ascending and distinct; an id with no
 * conversation is skipped; the transaction goes on as before. */
static void test_store_lock_convs(void **state)
{
    fx *f = *state;
    int64_t a = add_conv(f, CHAT_CONV_GROUP, "a", "", 0);
    int64_t b = add_conv(f, CHAT_CONV_GROUP, "b", "", 0);
    chat_conv_id ids[] = {a, b, b + 100}, down[] = {b, a}, twice[] = {a, a}, zero[] = {0, a};
    assert_int_equal(f->ops->lock_convs(f->st, ids, 3), CHAT_EMISUSE);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->lock_convs(f->st, down, 2), CHAT_EINVAL);
    assert_int_equal(f->ops->lock_convs(f->st, twice, 2), CHAT_EINVAL);
    assert_int_equal(f->ops->lock_convs(f->st, zero, 2), CHAT_EINVAL);
    assert_int_equal(f->ops->lock_convs(f->st, ids, 0), CHAT_EINVAL);
    assert_int_equal(f->ops->lock_convs(f->st, NULL, 1), CHAT_EINVAL);
    assert_int_equal(f->ops->lock_convs(f->st, ids, 3), CHAT_OK);
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, b, &c), CHAT_OK);
    c.head_seq = 5;
    assert_int_equal(f->ops->conv_update(f->st, &c), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_int_equal(f->ops->conv_get(f->st, b, &c), CHAT_OK);
    assert_int_equal(c.head_seq, 5);
}

static void test_store_many_messages_in_one_transaction(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    char cmid[32];
    for (int round = 0; round < 2; round++) {
        assert_int_equal(f->ops->begin(f->st), CHAT_OK);
        chat_store_conv c;
        assert_int_equal(f->ops->conv_get(f->st, id, &c), CHAT_OK);
        for (uint64_t seq = 1; seq <= 5000; seq++) {
            snprintf(cmid, sizeof cmid, "c%llu", (unsigned long long)seq);
            assert_int_equal(add_msg(f, id, seq, "ann", "d", cmid, "body"), CHAT_OK);
            c.head_seq = seq;
            assert_int_equal(f->ops->conv_update(f->st, &c), CHAT_OK);
        }
        assert_int_equal(round ? f->ops->commit(f->st) : f->ops->rollback(f->st), CHAT_OK);
    }
    rec r;
    assert_string_equal(range(f, id, 4997, 0, 10, 0, &r), "4998,4999,5000,");
    assert_string_equal(range(f, id, 0, 0, 2, 0, &r), "1,2,");
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, id, &c), CHAT_OK);
    assert_int_equal(c.head_seq, 5000);
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "d", "c4321", rec_seq, &r), CHAT_OK);
}

/* ---- callbacks ---- */

static int reenter(const chat_store_msg *m, void *ud)
{
    rec *r = ud;
    chat_store_conv c;
    r->point_rc = r->f->ops->conv_get(r->f->st, m->conv, &c);
    r->reentry_rc = add_msg(r->f, m->conv, 99, "x", "y", "z", "w");
    if (r->reentry_rc == CHAT_EMISUSE)
        r->reentry_rc = r->f->ops->begin(r->f->st);
    if (r->reentry_rc == CHAT_EMISUSE)
        r->reentry_rc = r->f->ops->msg_range(r->f->st, m->conv, 0, 0, 1, 0, rec_seq, r);
    return 0;
}

static void test_store_callback_reentry(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    assert_int_equal(add_msg(f, id, 1, "ann", "d", "c1", "one"), CHAT_OK);
    rec r = {0};
    r.f = f;
    assert_int_equal(f->ops->msg_range(f->st, id, 0, 0, 10, 0, reenter, &r), CHAT_OK);
    assert_int_equal(r.point_rc, CHAT_OK);        /* point reads are allowed */
    assert_int_equal(r.reentry_rc, CHAT_EMISUSE); /* writes, tx control, iterators are not */
    assert_string_equal(range(f, id, 0, 0, 10, 0, &r), "1,");
}

static void test_store_ctl_unknown(void **state)
{
    fx *f = *state;
    assert_int_equal(f->ops->version, CHAT_STORE_OPS_VERSION);
    assert_int_equal(f->ops->ctl(f->st, 12345, NULL), CHAT_ENOTSUP);
}

static void test_store_rows_of_missing_conv(void **state)
{
    fx *f = *state;
    rec r;
    /* The store keeps no foreign keys: members and messages may name a conversation that has
     * no row. They are listed by conversation, but the inbox (a join) skips them. */
    put_member(f, 77, "ann", CHAT_ROLE_MEMBER, 5);
    put_member(f, 77, "bob", CHAT_ROLE_MEMBER, 5);
    assert_int_equal(add_msg(f, 77, 1, "ann", "d", "c1", "x"), CHAT_OK);
    assert_string_equal(members(f, 77, 1, &r), "77:ann,77:bob,");
    assert_string_equal(range(f, 77, 0, 0, 10, 0, &r), "1,");
    assert_string_equal(inbox(f, "ann", 0, 10, &r), "");
    assert_string_equal(contacts(f, "ann", &r), "bob,");
    chat_store_conv c;
    assert_int_equal(f->ops->conv_get(f->st, 77, &c), CHAT_ENOTFOUND);
}

static void test_store_memory_alloc_failure_is_atomic(void **state)
{
    fx *f = *state;
    struct base b = seed(f);
    int failures = 0;
    for (long n = 0;; n++) {
        assert_int_equal(f->ops->begin(f->st), CHAT_OK);
        alloc_countdown = n;
        int rc = try_mutate(f, &b);
        alloc_countdown = -1;
        if (rc == CHAT_OK) {
            expect_mutated(f, &b);
            assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
            expect_base(f, &b);
            break;
        }
        /* Whatever failed, the transaction rolls back to exactly the state at begin(). */
        assert_int_equal(rc, CHAT_ENOMEM);
        failures++;
        assert_int_equal(f->ops->rollback(f->st), CHAT_OK);
        expect_base(f, &b);
    }
    assert_true(failures > 0);
}

/* ---- SQLite only ---- */

static void test_store_sqlite_reopen_persists(void **state)
{
    fx *f = *state;
    struct base b = seed(f);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    mutate(f, &b);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    /* An open transaction at close is lost. */
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->meta_set(f->st, "lost", 1), CHAT_OK);
    close_store(f);
    assert_int_equal(open_store(f), CHAT_OK);
    expect_mutated(f, &b);
    int64_t v;
    assert_int_equal(f->ops->meta_get(f->st, "lost", &v), CHAT_ENOTFOUND);
}

static void test_store_sqlite_wal_and_version(void **state)
{
    fx *f = *state;
    close_store(f);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int version = sqlite3_column_int(st, 0);
    assert_true(version >= 1);
    sqlite3_finalize(st);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", version + 1);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    void *st2 = (void *)&st2;
    assert_int_equal(chat_store_sqlite_open(&st2, f->path, 0, NULL), CHAT_EVERSION);
    assert_ptr_equal(st2, (void *)&st2); /* untouched on failure */
    assert_int_equal(chat_error_last()->code, CHAT_EVERSION);
}

/* A database at schema version `version`, built with the migrations of this library, with
 * rows inserted by sql (raw SQL of that version's tables). */
static void make_old_db(const char *path, int version, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL), SQLITE_OK);
    for (int v = 1; v <= version; v++)
        assert_int_equal(sqlite3_exec(db, chat__sqlite_migration(v), NULL, NULL, NULL),
                         SQLITE_OK);
    char pragma[48];
    snprintf(pragma, sizeof pragma, "PRAGMA user_version=%d", version);
    assert_int_equal(sqlite3_exec(db, pragma, NULL, NULL, NULL), SQLITE_OK);
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("make_old_db: %s", err ? err : "?");
    sqlite3_close(db);
}

/* A version-2 database (dedupe index keyed by conversation first) is upgraded at open to the
 * cmid-first index, keeps its messages, and still refuses a taken cmid. */
static void test_store_sqlite_upgrade_from_v2(void **state)
{
    fx *f = *state;
    close_store(f);
    unlink(f->path);
    make_old_db(f->path, 2,
                "INSERT INTO conversations (id, kind, title) VALUES (1, 2, 'g');"
                "INSERT INTO messages VALUES (1, 1, 5001, 'ann', 'phone', '0190000000001', 1,"
                "  CAST('one' AS BLOB));"
                "INSERT INTO messages VALUES (1, 2, 5002, 'ann', 'phone', '0190000000002', 1,"
                "  CAST('two' AS BLOB));");
    int64_t id = 1;

    assert_int_equal(open_store(f), CHAT_OK);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT sql FROM sqlite_master WHERE name = "
                                            "'messages_cmid'", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    const char *sql = (const char *)sqlite3_column_text(st, 0);
    assert_non_null(strstr(sql, "(cmid, conv, sender, device)"));
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_true(sqlite3_column_int(st, 0) >= 3);
    sqlite3_finalize(st);
    sqlite3_close(db);

    rec r = {0};
    assert_string_equal(range(f, id, 0, 0, 10, 0, &r), "1,2,");
    memset(&r, 0, sizeof r);
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "phone", "0190000000002", rec_seq,
                                           &r), CHAT_OK);
    assert_string_equal(r.buf, "2,");
    assert_int_equal(add_msg(f, id, 3, "ann", "phone", "0190000000001", "again"), CHAT_EEXISTS);
    assert_int_equal(add_msg(f, id, 3, "ann", "laptop", "0190000000001", "other"), CHAT_OK);
    /* The later migrations ran too: push registrations work. */
    chat_store_push_reg reg = push_reg("ann", "phone", CHAT_PUSH_APNS, "aa");
    assert_int_equal(f->ops->push_reg_put(f->st, &reg), CHAT_OK);
    assert_string_equal(regs(f, "ann", &r), "ann/phone:1:0:aa::1000;");
}

/* A version-4 database (before the message lifecycle) is upgraded: its text and media
 * messages are found by search, media references are counted. */
static void test_store_sqlite_upgrade_from_v4(void **state)
{
    fx *f = *state;
    close_store(f);
    unlink(f->path);
    make_old_db(f->path, 4,
                "INSERT INTO conversations (id, kind, title, head_seq) VALUES (1, 2, 'g', 3);"
                "INSERT INTO messages VALUES (1, 1, 5001, 'ann', 'p', 'c1', 1,"
                "  CAST('hello old world' AS BLOB));"
                "INSERT INTO messages VALUES (1, 2, 5002, 'ann', 'p', 'c2', 2,"
                "  CAST('{\"id\":\"aa11\",\"mime\":\"image/png\",\"size\":1,"
                "\"name\":\"old cat.png\"}' AS BLOB));"
                "INSERT INTO messages VALUES (1, 3, 5003, 'ann', 'p', 'c3', 2,"
                "  CAST('{\"id\":\"aa11\",\"mime\":\"image/png\",\"size\":1,"
                "\"name\":\"again.png\"}' AS BLOB));"
                "INSERT INTO media VALUES ('aa11', 'ann', 'image/png', 'cat.png', 1, 1);"
                "INSERT INTO media VALUES ('bb22', 'ann', 'image/png', 'dog.png', 1, 1);");
    assert_int_equal(open_store(f), CHAT_OK);
    int64_t convs[1] = {1};
    uint64_t after[1] = {0};
    chat_store_search q = {"old", convs, after, 1, 0, 10};
    rec r = {0};
    assert_int_equal(f->ops->msg_search(f->st, &q, rec_hit, &r), CHAT_OK);
    assert_string_equal(r.buf, "2,1,");
    int64_t refs;
    assert_int_equal(f->ops->media_refs(f->st, "aa11", 0, &refs), CHAT_OK);
    assert_int_equal(refs, 2);
    assert_int_equal(f->ops->media_refs(f->st, "bb22", 0, &refs), CHAT_OK);
    assert_int_equal(refs, 0);
    /* and a new message after them is found too */
    assert_int_equal(add_msg(f, 1, 4, "bob", "p", "c4", "old news"), CHAT_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(f->ops->msg_search(f->st, &q, rec_hit, &r), CHAT_OK);
    assert_string_equal(r.buf, "4,2,1,");
}

static int rec_reacts(const chat_store_msg *m, void *ud)
{
    rec *r = ud;
    size_t len = strlen(r->buf);
    snprintf(r->buf + len, sizeof r->buf - len, "%llu[", (unsigned long long)m->seq);
    for (size_t i = 0; i < m->n_reactions; i++) {
        len = strlen(r->buf);
        snprintf(r->buf + len, sizeof r->buf - len, "%s %s %lld;", m->reactions[i].emoji,
                 m->reactions[i].user, (long long)m->reactions[i].ts_ms);
    }
    len = strlen(r->buf);
    snprintf(r->buf + len, sizeof r->buf - len, "],");
    return 0;
}

/* A version-5 database (reactions in their table only) is upgraded: each message's row gets
 * its reactions, in reaction_list's order, and keeps them in step afterwards. */
static void test_store_sqlite_upgrade_from_v5(void **state)
{
    fx *f = *state;
    close_store(f);
    /* Version 5 as this library left it (its migration needs the store's search tokenizer):
     * the store's schema without the column of version 6. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE messages DROP COLUMN reactions;"
                                      "PRAGMA user_version=5;"
                "INSERT INTO conversations (id, kind, title, head_seq) VALUES (1, 2, 'g', 3);"
                "INSERT INTO messages (conv, seq, ts_ms, sender, device, cmid, kind, body) "
                "  VALUES (1, 1, 5001, 'ann', 'p', 'c1', 1, CAST('one' AS BLOB)),"
                "  (1, 2, 5002, 'ann', 'p', 'c2', 1, CAST('two' AS BLOB)),"
                "  (1, 3, 5003, 'ann', 'p', 'c3', 1, CAST('three' AS BLOB));"
                "INSERT INTO reactions VALUES (1, 2, '👍', 'bob', 20), (1, 2, '👍', 'ann', 10),"
                "  (1, 2, '❤️', 'cat', 30), (1, 3, '😂', 'bob', 5), (1, 9, '👍', 'bob', 5);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(open_store(f), CHAT_OK);
    rec r = {0};
    assert_int_equal(f->ops->msg_range(f->st, 1, 0, 0, 10, 0, rec_reacts, &r), CHAT_OK);
    assert_string_equal(r.buf, "1[],2[❤️ cat 30;👍 ann 10;👍 bob 20;],3[😂 bob 5;],");
    assert_int_equal(react(f, 1, 1, "dan", "👍", 40, 1), CHAT_OK);
    assert_int_equal(f->ops->reaction_clear(f->st, 1, 0, "bob"), CHAT_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(f->ops->msg_range(f->st, 1, 0, 0, 10, 0, rec_reacts, &r), CHAT_OK);
    assert_string_equal(r.buf, "1[👍 dan 40;],2[❤️ cat 30;👍 ann 10;],3[],");
}

static long long file_size(const char *path);

/* Whether the bytes of s occur in the file at path (a missing file holds nothing). */
static int file_holds(const char *path, const char *s)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    size_t n = strlen(s), cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len, fp)) > 0) {
        len += got;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(fp);
    int found = 0;
    for (size_t i = 0; !found && n && i + n <= len; i++)
        found = memcmp(buf + i, s, n) == 0;
    free(buf);
    return found;
}

static void erase_msg(fx *f, int64_t conv, uint64_t seq, const char *body, unsigned flags)
{
    chat_store_msg m = {0};
    m.conv = conv;
    m.seq = seq;
    m.sender = m.device = m.cmid = "";
    m.kind = CHAT_MSG_TEXT;
    m.body = body;
    m.body_len = strlen(body);
    m.flags = flags;
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(f->ops->msg_update(f->st, &m), CHAT_OK);
    if (flags & CHAT_STORE_MSG_ERASED) /* as the engine erases: the reactions go too */
        assert_int_equal(f->ops->reaction_clear(f->st, conv, seq, ""), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
}

/* Erased or replaced bodies leave the database file and its WAL: the pages are overwritten
 * (secure_delete), and after the commit the checkpoint thread checkpoints the WAL whole and
 * truncates it, so no page image from before the erasure is left in either file. */
static void test_store_sqlite_erasure_leaves_no_bytes(void **state)
{
    fx *f = *state;
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    /* long enough to take overflow pages too */
    char big[6000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    memcpy(big + 3000, "BIGSECRET-4b1d", 14);
    assert_int_equal(f->ops->begin(f->st), CHAT_OK);
    assert_int_equal(add_msg(f, id, 1, "ann", "p", "c1", "gone forever ERASED-7f3a9c"), CHAT_OK);
    assert_int_equal(add_msg(f, id, 2, "ann", "p", "c2", "first draft OLDTEXT-51e2"), CHAT_OK);
    assert_int_equal(add_msg(f, id, 3, "ann", "p", "c3", big), CHAT_OK);
    for (uint64_t s = 4; s < 200; s++) /* neighbours that share the pages */
        assert_int_equal(add_msg(f, id, s, "bob", "p", NULL, "filler text"), CHAT_OK);
    /* a reaction, kept in the reactions table and in its message's row */
    assert_int_equal(react(f, id, 1, "REACTOR-5e5e", "👍", 1, 1), CHAT_OK);
    assert_int_equal(f->ops->commit(f->st), CHAT_OK);
    assert_true(file_holds(wal, "ERASED-7f3a9c") || file_holds(f->path, "ERASED-7f3a9c"));
    assert_true(file_holds(wal, "REACTOR-5e5e") || file_holds(f->path, "REACTOR-5e5e"));

    erase_msg(f, id, 1, "", CHAT_STORE_MSG_DELETED);
    erase_msg(f, id, 2, "final text NEWTEXT-99aa", 0);
    erase_msg(f, id, 3, "", CHAT_STORE_MSG_EXPIRED);
    /* the checkpoint thread empties the WAL once it may */
    for (int i = 0; i < 300 && file_size(wal) > 0; i++)
        usleep(10000);
    assert_int_equal(file_size(wal), 0);
    assert_false(file_holds(f->path, "ERASED-7f3a9c"));
    assert_false(file_holds(f->path, "OLDTEXT-51e2"));
    assert_false(file_holds(f->path, "BIGSECRET-4b1d"));
    assert_false(file_holds(f->path, "REACTOR-5e5e"));
    assert_true(file_holds(f->path, "NEWTEXT-99aa"));
    /* the search index holds no words at all: only their keyed hashes */
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), sum(instr(block, 'filler') > 0) "
                                            "FROM search_fts_data", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_true(sqlite3_column_int(st, 0) > 0);
    assert_int_equal(sqlite3_column_int(st, 1), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    rec r = {0};
    assert_string_equal(range(f, id, 0, 4, 10, 0, &r), "1,2,3,");

    /* the same when the store closes right after */
    assert_int_equal(add_msg(f, id, 200, "ann", "p", "c200", "LASTSECRET-0c0c"), CHAT_OK);
    erase_msg(f, id, 200, "", CHAT_STORE_MSG_DELETED);
    close_store(f);
    assert_false(file_holds(f->path, "LASTSECRET-0c0c"));
    assert_false(file_holds(wal, "LASTSECRET-0c0c"));
}

static void test_store_sqlite_sync_full(void **state)
{
    fx *f = *state;
    close_store(f);
    f->ops = chat_store_sqlite_ops();
    assert_int_equal(
        wrap_store(f, chat_store_sqlite_open(&f->st, f->path, CHAT_STORE_SQLITE_SYNC_FULL, NULL)),
        CHAT_OK);
    add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    void *other;
    assert_int_equal(chat_store_sqlite_open(&other, f->path, 0x80, NULL), CHAT_EINVAL);
}

static long long file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : 0;
}

/* Commit n messages of ~3.5 KB (about a page each), per transactions of `per`; returns the
 * largest WAL file size seen after a commit. */
static long long commit_pages(fx *f, int64_t conv, uint64_t *seq, int n, int per)
{
    static char body[3500];
    memset(body, 'x', sizeof body - 1);
    char wal[160], cmid[32];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    long long max_wal = 0;
    for (int i = 0; i < n; i += per) {
        assert_int_equal(f->ops->begin(f->st), CHAT_OK);
        for (int k = 0; k < per; k++) {
            ++*seq;
            snprintf(cmid, sizeof cmid, "c%llu", (unsigned long long)*seq);
            assert_int_equal(add_msg(f, conv, *seq, "ann", "d", cmid, body), CHAT_OK);
        }
        assert_int_equal(f->ops->commit(f->st), CHAT_OK);
        long long w = file_size(wal);
        if (w > max_wal)
            max_wal = w;
    }
    return max_wal;
}

/* The default store checkpoints from its own thread: once the WAL has grown past ~1000 pages
 * the database file grows, while the store stays open and without a commit waiting for it. */
static void test_store_sqlite_checkpoint_thread(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    uint64_t seq = 0;
    long long before = file_size(f->path);
    commit_pages(f, id, &seq, 2000, 10);
    long long after = file_size(f->path);
    for (int i = 0; i < 500 && after < before + (2LL << 20); i++) {
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        after = file_size(f->path);
    }
    assert_true(after >= before + (2LL << 20));
    rec r;
    assert_string_equal(range(f, id, 1998, 0, 10, 0, &r), "1999,2000,");
}

/* Commits back to back give the checkpoint thread no moment where the whole WAL is copied, so
 * the WAL could not restart: past ~16000 pages the committing call checkpoints the rest, and the
 * WAL file stays bounded (~66 MiB at 4 KiB pages; 80 MiB allowed for a restart that a running
 * checkpoint delayed by a step or two). Reopened, every message is there. */
static void test_store_sqlite_checkpoint_bounds_wal(void **state)
{
    fx *f = *state;
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    uint64_t seq = 0;
    long long max_wal = commit_pages(f, id, &seq, 30000, 20);
    assert_true(max_wal > 0);
    assert_true(max_wal < (80LL << 20));
    close_store(f);
    assert_int_equal(open_store(f), CHAT_OK);
    rec r;
    assert_string_equal(range(f, id, 29998, 0, 10, 0, &r), "29999,30000,");
    assert_int_equal(f->ops->msg_find_cmid(f->st, id, "ann", "d", "c12345", rec_seq, &r),
                     CHAT_OK);
}

/* The inline mode (SQLite's auto-checkpoint on the committing call) is a valid flag, alone or
 * with SYNC_FULL. */
static void test_store_sqlite_inline_checkpoint(void **state)
{
    fx *f = *state;
    close_store(f);
    f->ops = chat_store_sqlite_ops();
    assert_int_equal(wrap_store(f, chat_store_sqlite_open(&f->st, f->path,
                                                          CHAT_STORE_SQLITE_INLINE_CHECKPOINT |
                                                              CHAT_STORE_SQLITE_SYNC_FULL,
                                                          NULL)),
                     CHAT_OK);
    int64_t id = add_conv(f, CHAT_CONV_GROUP, "g", "", 0);
    uint64_t seq = 0;
    commit_pages(f, id, &seq, 1500, 10);
    /* Auto-checkpoint ran inside a commit: the database file holds the data already. */
    assert_true(file_size(f->path) >= (2LL << 20));
}

static void test_store_sqlite_bad_path(void **state)
{
    fx *f = *state;
    void *st = NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/missing/dir/store.db", f->dir);
    assert_int_equal(chat_store_sqlite_open(&st, path, 0, NULL), CHAT_EIO);
    assert_null(st);
    assert_int_equal(chat_error_last()->code, CHAT_EIO);
    assert_int_not_equal(chat_error_last()->backend_code, 0);
    assert_int_equal(chat_store_sqlite_open(&st, f->path, 0, "no-such-vfs"), CHAT_EIO);
    /* A file that is not a database. */
    snprintf(path, sizeof path, "%s/junk.db", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 256; i++)
        fputs("this is not an sqlite database\n", fp);
    fclose(fp);
    assert_int_equal(chat_store_sqlite_open(&st, path, 0, NULL), CHAT_EIO);
    assert_int_equal(chat_error_last()->backend_code & 0xff, SQLITE_NOTADB);
    assert_null(st);
}

/* ---- the checking layer over a minimal fake backend ---- */

/* A backend that only records calls: every method counts itself and succeeds, and each listing
 * method reports one empty row. Whatever the checks refuse never reaches it. */
typedef struct fake {
    int calls;      /* every method but destroy */
    int destroyed;
    int commit_rc;  /* what commit() answers */
    const char *last;
} fake;

static int hit(void *st, const char *method)
{
    fake *k = st;
    k->calls++;
    k->last = method;
    return CHAT_OK;
}

static void fk_destroy(void *st) { ((fake *)st)->destroyed++; }
static int fk_begin(void *st) { return hit(st, "begin"); }
static int fk_commit(void *st)
{
    hit(st, "commit");
    return ((fake *)st)->commit_rc;
}
static int fk_rollback(void *st) { return hit(st, "rollback"); }
static int fk_conv_insert(void *st, chat_store_conv *c) { return hit(st, "conv_insert"); }
static int fk_conv_get(void *st, int64_t id, chat_store_conv *out) { return hit(st, "conv_get"); }
static int fk_conv_find_direct(void *st, const char *dm_key, chat_store_conv *out)
{
    return hit(st, "conv_find_direct");
}
static int fk_conv_update(void *st, const chat_store_conv *c) { return hit(st, "conv_update"); }
static int fk_member_get(void *st, int64_t conv, const char *user, chat_store_member *out)
{
    return hit(st, "member_get");
}
static int fk_member_put(void *st, const chat_store_member *m) { return hit(st, "member_put"); }
static int fk_member_list(void *st, int64_t conv, int only_active, chat_store_member_cb cb,
                          void *ud)
{
    chat_store_member m = {0};
    hit(st, "member_list");
    return cb(&m, ud);
}
static int fk_msg_insert(void *st, const chat_store_msg *m) { return hit(st, "msg_insert"); }
static int fk_msg_find_cmid(void *st, int64_t conv, const char *sender, const char *device,
                            const char *cmid, chat_store_msg_cb cb, void *ud)
{
    chat_store_msg m = {0};
    hit(st, "msg_find_cmid");
    return cb(&m, ud);
}
static int fk_msg_range(void *st, int64_t conv, uint64_t after, uint64_t before, int limit,
                        int desc, chat_store_msg_cb cb, void *ud)
{
    chat_store_msg m = {0};
    hit(st, "msg_range");
    return cb(&m, ud);
}
static int fk_user_convs(void *st, const char *user, uint64_t since, int limit,
                         chat_store_member_cb cb, void *ud)
{
    chat_store_member m = {0};
    hit(st, "user_convs");
    return cb(&m, ud);
}
static int fk_contacts(void *st, const char *user, chat_store_name_cb cb, void *ud)
{
    hit(st, "contacts");
    return cb("x", ud);
}
static int fk_user_get(void *st, const char *name, chat_store_user *out)
{
    return hit(st, "user_get");
}
static int fk_user_put(void *st, const chat_store_user *u) { return hit(st, "user_put"); }
static int fk_revoked_put(void *st, const char *sid, int64_t exp_ms)
{
    return hit(st, "revoked_put");
}
static int fk_revoked_list(void *st, int64_t now_ms,
                           int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                           void *ud)
{
    hit(st, "revoked_list");
    return cb("s", 1, ud);
}
static int fk_meta_get(void *st, const char *key, int64_t *value) { return hit(st, "meta_get"); }
static int fk_meta_set(void *st, const char *key, int64_t value) { return hit(st, "meta_set"); }

static const chat_store_ops fake_ops = {
    .version = CHAT_STORE_OPS_VERSION,
    .destroy = fk_destroy,
    .begin = fk_begin,
    .commit = fk_commit,
    .rollback = fk_rollback,
    .conv_insert = fk_conv_insert,
    .conv_get = fk_conv_get,
    .conv_find_direct = fk_conv_find_direct,
    .conv_update = fk_conv_update,
    .member_get = fk_member_get,
    .member_put = fk_member_put,
    .member_list = fk_member_list,
    .msg_insert = fk_msg_insert,
    .msg_find_cmid = fk_msg_find_cmid,
    .msg_range = fk_msg_range,
    .user_convs = fk_user_convs,
    .contacts = fk_contacts,
    .user_get = fk_user_get,
    .user_put = fk_user_put,
    .revoked_put = fk_revoked_put,
    .revoked_list = fk_revoked_list,
    .meta_get = fk_meta_get,
    .meta_set = fk_meta_set,
    /* no ctl: optional */
};

typedef struct wrapped {
    fake k;
    const chat_store_ops *ops;
    void *st;
    int point_rc, write_rc, iter_rc, tx_rc; /* what a callback's re-entry got */
} wrapped;

static void wrap_fake(wrapped *w)
{
    memset(w, 0, sizeof *w);
    w->ops = &fake_ops;
    w->st = &w->k;
    assert_int_equal(chat__store_checked_new(&w->ops, &w->st), CHAT_OK);
    assert_ptr_not_equal(w->ops, &fake_ops);
}

static void unwrap_fake(wrapped *w)
{
    w->ops->destroy(w->st);
    assert_int_equal(w->k.destroyed, 1);
}

static int fk_never(const chat_store_msg *m, void *ud)
{
    (void)m, (void)ud;
    fail_msg("a refused call reached the callback");
    return 0;
}

static void test_store_checked_refuses_before_backend(void **state)
{
    (void)state;
    wrapped w;
    wrap_fake(&w);
    char long_id[CHAT_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    chat_store_user u;
    chat_store_conv c = {0};
    int64_t v;
    assert_int_equal(w.ops->msg_range(w.st, 1, 0, 0, 10, 0, NULL, NULL), CHAT_EINVAL);
    assert_string_equal(chat_error_last()->message, "store: msg_range: NULL callback");
    assert_int_equal(w.ops->msg_range(w.st, 1, 0, 0, -1, 0, fk_never, NULL), CHAT_EINVAL);
    assert_int_equal(w.ops->user_get(w.st, long_id, &u), CHAT_EINVAL);
    assert_int_equal(w.ops->user_get(w.st, "ann", NULL), CHAT_EINVAL);
    assert_int_equal(w.ops->member_list(w.st, 1, 0, NULL, NULL), CHAT_EINVAL);
    assert_int_equal(w.ops->msg_find_cmid(w.st, 1, "ann", long_id, "c", fk_never, NULL),
                     CHAT_EINVAL);
    assert_int_equal(w.ops->user_convs(w.st, "", 0, 10, NULL, NULL), CHAT_EINVAL);
    assert_int_equal(w.ops->meta_get(w.st, NULL, &v), CHAT_EINVAL);
    c.change = (uint64_t)INT64_MAX + 1;
    assert_int_equal(w.ops->conv_insert(w.st, &c), CHAT_EINVAL);
    assert_int_equal(w.ops->msg_insert(w.st, NULL), CHAT_EINVAL);
    assert_int_equal(w.ops->commit(w.st), CHAT_EMISUSE);
    assert_int_equal(w.ops->rollback(w.st), CHAT_EMISUSE);
    assert_int_equal(w.k.calls, 0); /* none of it reached the backend */
    /* Valid calls are forwarded as they are; ctl is optional. */
    assert_int_equal(w.ops->user_get(w.st, "ann", &u), CHAT_OK);
    assert_string_equal(w.k.last, "user_get");
    assert_int_equal(w.ops->begin(w.st), CHAT_OK);
    assert_int_equal(w.ops->begin(w.st), CHAT_EMISUSE);
    assert_int_equal(w.ops->commit(w.st), CHAT_OK);
    assert_int_equal(w.k.calls, 3);
    assert_int_equal(w.ops->ctl(w.st, 12345, NULL), CHAT_ENOTSUP);
    /* A backend without the version-3 methods keeps no push registrations. */
    chat_store_push_reg reg = {.user = "ann", .device = "d", .platform = CHAT_PUSH_FCM,
                               .token = "t"};
    assert_int_equal(w.ops->push_reg_put(w.st, &reg), CHAT_ENOTSUP);
    assert_int_equal(w.ops->push_mute_get(w.st, "ann", 1, &v), CHAT_ENOTSUP);
    assert_int_equal(w.k.calls, 3);
    /* Wrapping twice adds no second layer. */
    const chat_store_ops *ops = w.ops;
    void *st = w.st;
    assert_int_equal(chat__store_checked_new(&ops, &st), CHAT_OK);
    assert_ptr_equal(ops, w.ops);
    assert_ptr_equal(st, w.st);
    unwrap_fake(&w);
}

static int fk_reenter(const chat_store_member *m, void *ud)
{
    (void)m;
    wrapped *w = ud;
    chat_store_conv c;
    int64_t v;
    w->point_rc = w->ops->conv_get(w->st, 1, &c);
    if (w->point_rc == CHAT_OK)
        w->point_rc = w->ops->meta_get(w->st, "k", &v);
    w->write_rc = w->ops->meta_set(w->st, "k", 1);
    w->iter_rc = w->ops->msg_range(w->st, 1, 0, 0, 1, 0, fk_never, NULL);
    w->tx_rc = w->ops->begin(w->st);
    return 7;
}

static void test_store_checked_callback_reentry(void **state)
{
    (void)state;
    wrapped w;
    wrap_fake(&w);
    /* The layer counts the depth through its own trampoline, whatever the backend does. */
    assert_int_equal(w.ops->user_convs(w.st, "ann", 0, 10, fk_reenter, &w), 7);
    assert_int_equal(w.point_rc, CHAT_OK);
    assert_int_equal(w.write_rc, CHAT_EMISUSE);
    assert_int_equal(w.iter_rc, CHAT_EMISUSE);
    assert_int_equal(w.tx_rc, CHAT_EMISUSE);
    assert_int_equal(w.k.calls, 3); /* user_convs, conv_get, meta_get */
    /* After the callback, writes pass again. */
    assert_int_equal(w.ops->meta_set(w.st, "k", 1), CHAT_OK);
    assert_string_equal(w.k.last, "meta_set");
    unwrap_fake(&w);
}

static void test_store_checked_failed_commit_allows_rollback(void **state)
{
    (void)state;
    wrapped w;
    wrap_fake(&w);
    w.k.commit_rc = CHAT_EIO;
    assert_int_equal(w.ops->begin(w.st), CHAT_OK);
    assert_int_equal(w.ops->commit(w.st), CHAT_EIO);
    /* The transaction stays open for the caller's rollback, which reaches the backend. */
    assert_int_equal(w.ops->rollback(w.st), CHAT_OK);
    assert_string_equal(w.k.last, "rollback");
    assert_int_equal(w.ops->rollback(w.st), CHAT_EMISUSE);
    assert_int_equal(w.ops->begin(w.st), CHAT_OK);
    unwrap_fake(&w);
}

/* A backend of store version 2 knows nothing of the version-3 fields: what it writes into
 * libchat's rows stops before them, and its rows are shorter. Callers read zeros there, and
 * the version-3 methods answer CHAT_ENOTSUP. */
static int v2_conv_get(void *st, int64_t id, chat_store_conv *out)
{
    (void)st;
    out->id = id; /* the version-2 prefix only: msg_ttl_ms left as it was */
    return CHAT_OK;
}

static int v2_msg_range(void *st, int64_t conv, uint64_t after, uint64_t before, int limit,
                        int desc, chat_store_msg_cb cb, void *ud)
{
    (void)st, (void)after, (void)before, (void)limit, (void)desc;
    chat_store_msg m;
    memset(&m, 0xAA, sizeof m); /* what follows a version-2 row in memory: anything */
    m.conv = conv;
    m.seq = 1;
    m.sender = m.device = m.cmid = m.body = "";
    m.body_len = 0;
    return cb(&m, ud);
}

static int see_v3_fields(const chat_store_msg *m, void *ud)
{
    *(int *)ud = m->target_seq == 0 && m->thread_seq == 0 && m->edited_ms == 0 &&
                 m->expires_ms == 0 && m->flags == 0;
    return 0;
}

static void test_store_checked_old_backend(void **state)
{
    (void)state;
    chat_store_ops v2 = fake_ops;
    v2.version = 2;
    v2.conv_get = v2_conv_get;
    v2.msg_range = v2_msg_range;
    fake k = {0};
    const chat_store_ops *ops = &v2;
    void *st = &k;
    assert_int_equal(chat__store_checked_new(&ops, &st), CHAT_OK);
    chat_store_conv c;
    memset(&c, 0xAA, sizeof c);
    assert_int_equal(ops->conv_get(st, 5, &c), CHAT_OK);
    assert_int_equal(c.id, 5);
    assert_int_equal(c.msg_ttl_ms, 0);
    int zero = 0;
    assert_int_equal(ops->msg_range(st, 5, 0, 0, 10, 0, see_v3_fields, &zero), CHAT_OK);
    assert_true(zero);
    assert_int_equal(ops->msg_get(st, 5, 1, see_v3_fields, &zero), CHAT_ENOTSUP);
    uint64_t n;
    assert_int_equal(ops->msg_count(st, 5, 0, 0, 1, &n), CHAT_ENOTSUP);
    assert_int_equal(ops->reaction_clear(st, 5, 1, ""), CHAT_ENOTSUP);
    assert_int_equal(ops->user_delete(st, "ann", 1), CHAT_ENOTSUP);
    assert_false(chat__store_checked_has_lifecycle(ops, st));
    ops->destroy(st);
}

static void test_store_checked_new_failure_destroys_inner(void **state)
{
    (void)state;
    fake k = {0};
    const chat_store_ops *ops = &fake_ops;
    void *st = &k;
    alloc_countdown = 0;
    int rc = chat__store_checked_new(&ops, &st);
    alloc_countdown = -1;
    assert_int_equal(rc, CHAT_ENOMEM);
    assert_int_equal(k.destroyed, 1); /* ownership passed: destroyed at once */
    assert_null(ops);
    assert_null(st);
    assert_int_equal(chat__store_checked_new(NULL, &st), CHAT_EINVAL);
    assert_int_equal(chat__store_checked_new(&ops, &st), CHAT_EINVAL); /* *ops is NULL */
}

#define STORE_TESTS(X)                                \
    X(test_store_conv_insert_get)                     \
    X(test_store_conv_get_absent)                     \
    X(test_store_conv_find_direct)                    \
    X(test_store_conv_duplicate_dm_key)               \
    X(test_store_conv_update)                         \
    X(test_store_conv_rejects_bad_input)              \
    X(test_store_member_put_get)                      \
    X(test_store_member_rejects_bad_input)            \
    X(test_store_member_list_order_and_filter)        \
    X(test_store_msg_insert_find_cmid)                \
    X(test_store_msg_empty_body_and_no_cmid)          \
    X(test_store_msg_duplicate)                       \
    X(test_store_msg_rejects_bad_input)               \
    X(test_store_msg_range)                           \
    X(test_store_msg_range_out_of_order_inserts)      \
    X(test_store_user_convs_since_and_order)          \
    X(test_store_user_convs_row_fields)               \
    X(test_store_contacts)                            \
    X(test_store_user_put_get)                        \
    X(test_store_revoked_put_list)                    \
    X(test_store_meta_get_set)                        \
    X(test_store_media_put_get)                       \
    X(test_store_media_grants)                        \
    X(test_store_media_rollback)                      \
    X(test_store_push_reg_put_list_del)               \
    X(test_store_push_reg_del_token)                  \
    X(test_store_push_mute)                           \
    X(test_store_push_rejects_bad_input)              \
    X(test_store_push_rollback)                       \
    X(test_store_rollback_undoes_everything)          \
    X(test_store_rollback_of_seeded_transaction)      \
    X(test_store_commit_keeps_changes)                \
    X(test_store_failed_method_keeps_transaction)     \
    X(test_store_transaction_misuse)                  \
    X(test_store_lock_convs)                          \
    X(test_store_many_messages_in_one_transaction)    \
    X(test_store_callback_reentry)                    \
    X(test_store_ctl_unknown)                         \
    X(test_store_rows_of_missing_conv)                \
    LIFE_TESTS(X)

#define MEMORY_TESTS(X)                               \
    X(test_store_memory_alloc_failure_is_atomic)

#define SQLITE_TESTS(X)                               \
    X(test_store_sqlite_reopen_persists)              \
    X(test_store_sqlite_wal_and_version)              \
    X(test_store_sqlite_upgrade_from_v2)              \
    X(test_store_sqlite_upgrade_from_v4)              \
    X(test_store_sqlite_upgrade_from_v5)              \
    X(test_store_sqlite_erasure_leaves_no_bytes)      \
    X(test_store_sqlite_sync_full)                    \
    X(test_store_sqlite_checkpoint_thread)            \
    X(test_store_sqlite_checkpoint_bounds_wal)        \
    X(test_store_sqlite_inline_checkpoint)            \
    X(test_store_sqlite_bad_path)

#define CHECKED_TESTS(X)                              \
    X(test_store_checked_refuses_before_backend)      \
    X(test_store_checked_callback_reentry)            \
    X(test_store_checked_failed_commit_allows_rollback) \
    X(test_store_checked_new_failure_destroys_inner)  \
    X(test_store_checked_old_backend)

#define ON_MEMORY(fn) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, \
                                                               &memory_backend),
#define ON_SQLITE(fn) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, \
                                                               &sqlite_backend),
#define ON_POSTGRES(fn) cmocka_unit_test_prestate_setup_teardown(fn, fx_setup, fx_teardown, \
                                                                 &postgres_backend),

#define ON_NOTHING(fn) cmocka_unit_test(fn),

/* `test_store`: memory, SQLite and the checking layer. `test_store postgres`: PostgreSQL, on
 * the server tests/lib/pgtemp.py starts (CHAT_TEST_PG); skipped (77) without one. */
int main(int argc, char **argv)
{
    /* Before any other libchat call, or it is refused. */
    static const chat_allocator alloc = {t_malloc, t_realloc, t_free, NULL};
    if (chat_set_default_allocator(&alloc) != CHAT_OK)
        return 1;
    /* CHAT_TEST_FILTER=test_store_msg* runs a subset (cmocka globs: * and ?). */
    const char *filter = getenv("CHAT_TEST_FILTER");
    if (filter && *filter)
        cmocka_set_test_filter(filter);
    int failed = 0;
    if (argc > 1 && strcmp(argv[1], "postgres") == 0) {
#ifdef CHAT_TEST_POSTGRES
        if (!getenv("CHAT_TEST_PG")) {
            fprintf(stderr, "test_store postgres: CHAT_TEST_PG is not set (run it through "
                            "tests/lib/pgtemp.py run -- ...); skipped\n");
            return 77;
        }
        const struct CMUnitTest postgres_tests[] = {STORE_TESTS(ON_POSTGRES)
                                                        POSTGRES_TESTS(ON_POSTGRES)};
        failed = cmocka_run_group_tests_name("store/postgres", postgres_tests, NULL, NULL);
#else
        fprintf(stderr, "test_store postgres: built without libpq; skipped\n");
        return 77;
#endif
        return failed ? 1 : 0;
    }
    const struct CMUnitTest memory_tests[] = {STORE_TESTS(ON_MEMORY) MEMORY_TESTS(ON_MEMORY)};
    const struct CMUnitTest sqlite_tests[] = {STORE_TESTS(ON_SQLITE) SQLITE_TESTS(ON_SQLITE)};
    const struct CMUnitTest checked_tests[] = {CHECKED_TESTS(ON_NOTHING)};
    failed += cmocka_run_group_tests_name("store/memory", memory_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("store/sqlite", sqlite_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("store/checked", checked_tests, NULL, NULL);
    return failed ? 1 : 0;
}
