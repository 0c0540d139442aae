/* Allocation-failure injection across the server engine.
 *
 * The test is the host here. It installs one counting allocator as libchat's process default
 * (chat_set_default_allocator) and as cJSON's hooks (cJSON_InitHooks). libchat itself never
 * changes cJSON's hooks, because its host may share cJSON; routing cJSON's allocations through
 * the host's allocator is the host's decision, made here so that every allocation along a
 * request's path can fail: libchat's own and cJSON's. The allocator counts allocations, keeps
 * every live block on a list (a leak shows as soon as a server is freed, without valgrind), and
 * while armed fails exactly the Nth allocation made by a thread other than the test's own (the
 * test's side of the loopback transport and its JSON parsing never fail). A failing allocation
 * sets errno to ENOMEM, as malloc does. Blocks remember which of the two allocated them, and
 * freeing one through the other aborts: libchat never mixes them, so a host may give cJSON an
 * allocator of its own.
 *
 * A scenario is one operation on a server running on the loopback transport with the memory
 * store, a still clock and, for media, a filesystem blob store in a temporary directory: a 1:1
 * send, a group send, a history page, the conversation list, group create, add, remove and
 * rename, media_url, an HTTP upload, and token authentication. Each runs once unarmed (the
 * reference: the frames every party receives, the state before and after, and how many
 * allocations the operation makes), then armed for N = 1, 2, ... until a run ends without
 * reaching its Nth allocation: once failing the Nth allocation alone (the engine recovers and
 * answers), once failing the Nth and every later one (what handles a failure fails too: the
 * error frame, the close, the cleanup). After each run:
 *  - nothing crashed, and every frame any party received parses and has its type's fields;
 *  - the requester got the reference answer, a clean error (ENOMEM or EIO, reason "internal"
 *    or "storage", echoing its request id) or a close with 1011; every other party got exactly
 *    the reference frames, or a prefix of them and a close with 1011, or nothing when the
 *    operation did not happen: never a frame missing or changed;
 *  - the store, read back unarmed through fresh connections, is exactly the state before or
 *    after the operation: after an answer, before an error; after a close, resending the
 *    request (where a client id makes that safe) leads to the state after;
 *  - after auth, the connection is authenticated exactly when auth_ok came, and a presence
 *    announcement that failed reaches the contact once its retry is due (the clock moves);
 *  - once the server is freed, every block allocated since the run began is free again.
 *
 * One case alone: OOM_SCENARIO=<name> OOM_N=<n> OOM_FROM=<0|1> OOM_VERBOSE=1
 * build/tests/fault/test_oom (OOM_N=0 runs the reference only; OOM_FROM picks the pass, 1 for
 * the Nth and later; OOM_TRACE=1 records a backtrace per allocation and prints those of leaked
 * blocks). */
#define _XOPEN_SOURCE 700 /* nftw */
#define _DEFAULT_SOURCE
#include "server/internal.h"
#include "transport/loopback.h"

#include "core/alloc.h"
#include "core/presgate.h"

#include <chat/chat.h>
#include <cjson/cJSON.h>

#include <errno.h>
#include <execinfo.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the counting, failing allocator ---- */

typedef struct blk {
    struct blk *prev, *next;
    int owner;             /* OWN_CHAT or OWN_CJSON */
    size_t size;
    unsigned long seq;     /* the allocation's number in the process */
    unsigned long armed_n; /* its number among an armed run's counted allocations, else 0 */
    int nbt;
    void *bt[14];
} blk;

#define HDR ((sizeof(blk) + 15) / 16 * 16)

static pthread_mutex_t a_mu = PTHREAD_MUTEX_INITIALIZER;
static blk a_live = {&a_live, &a_live, 0, 0, 0, 0, 0, {0}};
static const int OWN_CHAT = 1, OWN_CJSON = 2;
static unsigned long a_seq;
static atomic_int a_armed;
static atomic_ulong a_counted;
static atomic_ulong a_fail_at; /* 0: count only */
static atomic_int a_from;      /* fail the Nth allocation and every one after it */
static atomic_int a_hit;
static int a_trace;
static _Thread_local int a_harness; /* the test's own thread: never fails, never counted */

/* The number of this allocation among the armed run's (0: not counted); fail it? */
static unsigned long count_one(int *fail)
{
    *fail = 0;
    if (a_harness || !atomic_load(&a_armed))
        return 0;
    unsigned long n = atomic_fetch_add(&a_counted, 1) + 1;
    unsigned long at = atomic_load(&a_fail_at);
    if (at && (n == at || (n > at && atomic_load(&a_from)))) {
        atomic_store(&a_hit, 1);
        *fail = 1;
    }
    return n;
}

static void link_blk(blk *b, int owner, size_t size, unsigned long armed_n)
{
    b->owner = owner;
    b->size = size;
    b->armed_n = armed_n;
    b->nbt = a_trace ? backtrace(b->bt, 14) : 0;
    pthread_mutex_lock(&a_mu);
    b->seq = ++a_seq;
    b->next = &a_live;
    b->prev = a_live.prev;
    a_live.prev->next = b;
    a_live.prev = b;
    pthread_mutex_unlock(&a_mu);
}

static void unlink_blk(blk *b)
{
    pthread_mutex_lock(&a_mu);
    b->prev->next = b->next;
    b->next->prev = b->prev;
    pthread_mutex_unlock(&a_mu);
}

/* ud: &OWN_CHAT or &OWN_CJSON */
static void *t_malloc(size_t size, void *ud)
{
    int fail;
    unsigned long n = count_one(&fail);
    if (fail) {
        errno = ENOMEM;
        return NULL;
    }
    blk *b = malloc(HDR + size);
    if (!b)
        return NULL;
    link_blk(b, *(const int *)ud, size, n);
    return (char *)b + HDR;
}

static void t_free(void *p, void *ud)
{
    if (!p)
        return;
    blk *b = (blk *)(void *)((char *)p - HDR);
    if (b->owner != *(const int *)ud) {
        fprintf(stderr, "a block of %zu bytes allocated by %s freed by %s\n", b->size,
                b->owner == OWN_CHAT ? "libchat" : "cJSON",
                *(const int *)ud == OWN_CHAT ? "libchat" : "cJSON");
        abort();
    }
    unlink_blk(b);
    free(b);
}

static void *t_realloc(void *p, size_t size, void *ud)
{
    if (!p)
        return t_malloc(size, ud);
    int fail;
    unsigned long n = count_one(&fail);
    if (fail) {
        errno = ENOMEM;
        return NULL;
    }
    blk *old = (blk *)(void *)((char *)p - HDR);
    if (old->owner != *(const int *)ud) {
        fprintf(stderr, "a block cJSON allocated reallocated by libchat\n");
        abort();
    }
    unlink_blk(old);
    blk *b = realloc(old, HDR + size);
    if (!b) {
        link_blk(old, old->owner, old->size, old->armed_n);
        return NULL;
    }
    link_blk(b, b->owner, size, n);
    return (char *)b + HDR;
}

static void *t_cjson_malloc(size_t size)
{
    return t_malloc(size, (void *)&OWN_CJSON);
}

static void t_cjson_free(void *p)
{
    t_free(p, (void *)&OWN_CJSON);
}

static unsigned long alloc_mark(void)
{
    pthread_mutex_lock(&a_mu);
    unsigned long s = a_seq;
    pthread_mutex_unlock(&a_mu);
    return s;
}

/* Blocks allocated after mark and still live: printed, and counted. */
static int alloc_leaks(unsigned long mark)
{
    int n = 0;
    pthread_mutex_lock(&a_mu);
    for (blk *b = a_live.next; b != &a_live; b = b->next) {
        if (b->seq <= mark)
            continue;
        n++;
        fprintf(stderr, "leak: %zu bytes, allocation %lu of the armed run\n", b->size,
                b->armed_n);
        if (b->nbt)
            backtrace_symbols_fd(b->bt, b->nbt, 2);
    }
    pthread_mutex_unlock(&a_mu);
    return n;
}

static void arm(unsigned long fail_at, int from)
{
    atomic_store(&a_from, from);
    atomic_store(&a_counted, 0);
    atomic_store(&a_hit, 0);
    atomic_store(&a_fail_at, fail_at);
    atomic_store(&a_armed, 1);
}

static void disarm(void)
{
    atomic_store(&a_armed, 0);
}

/* ---- libc strings (they outlive runs, so they stay out of the leak accounting) ---- */

static char *dup_s(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort();
    return d;
}

typedef struct strv {
    char **v;
    int n;
} strv;

static void strv_add(strv *l, const char *s)
{
    char **nv = realloc(l->v, (size_t)(l->n + 1) * sizeof *nv);
    if (!nv)
        abort();
    l->v = nv;
    l->v[l->n++] = dup_s(s);
}

static void strv_free(strv *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
}

/* A growing libc string. */
typedef struct sbuf {
    char *s;
    size_t len;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *ns = realloc(b->s, b->len + (size_t)n + 1);
    if (!ns)
        abort();
    va_start(ap, fmt);
    vsnprintf(ns + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->s = ns;
    b->len += (size_t)n;
}

/* ---- frames: every frame any party receives has its type's fields ---- */

#define WAIT_MS 3000
#define NOW_MS 1700000000000LL

static const char *scenario_name = "";
static unsigned long run_n;
static int from_mode; /* the runs fail every allocation from the Nth on */

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            char m_[512];                                                                     \
            snprintf(m_, sizeof m_, __VA_ARGS__);                                             \
            fail_msg("%s, N=%lu%s: %s", scenario_name, run_n, from_mode ? " and on" : "", m_); \
        }                                                                                     \
    } while (0)

static int has(const cJSON *o, const char *key, int (*is)(const cJSON *))
{
    return is(cJSON_GetObjectItemCaseSensitive(o, key)) != 0;
}

static int is_str(const cJSON *x) { return cJSON_IsString(x); }
static int is_num(const cJSON *x) { return cJSON_IsNumber(x); }
static int is_bool(const cJSON *x) { return cJSON_IsBool(x); }
static int is_obj(const cJSON *x) { return cJSON_IsObject(x); }
static int is_arr(const cJSON *x) { return cJSON_IsArray(x); }
static int is_obj_or_null(const cJSON *x) { return cJSON_IsObject(x) || cJSON_IsNull(x); }

/* "key:t,key:t,...": each key present with its type (s string, n number, b bool, o object,
 * a array, O object or null). */
static const char *fields_missing(const cJSON *o, const char *spec)
{
    static _Thread_local char bad[64];
    char buf[256];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *save = NULL, *f = strtok_r(buf, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(f, ':');
        *colon = '\0';
        int (*is)(const cJSON *) = colon[1] == 's' ? is_str : colon[1] == 'n' ? is_num
                                   : colon[1] == 'b' ? is_bool : colon[1] == 'o' ? is_obj
                                   : colon[1] == 'a' ? is_arr : is_obj_or_null;
        if (!has(o, f, is)) {
            snprintf(bad, sizeof bad, "%s", f);
            return bad;
        }
    }
    return NULL;
}

static const char *msg_missing(const cJSON *m)
{
    const char *bad = fields_missing(m, "type:s,conv:n,seq:n,ts:n,from:s,device:s,cmid:s,kind:s");
    if (bad)
        return bad;
    const char *kind = cJSON_GetObjectItemCaseSensitive(m, "kind")->valuestring;
    if (strcmp(kind, "text") == 0)
        return fields_missing(m, "text:s");
    if (strcmp(kind, "media") == 0)
        return fields_missing(cJSON_GetObjectItemCaseSensitive(m, "media"), "id:s,mime:s,name:s,size:n");
    if (!has(m, "event", is_obj))
        return "event";
    return fields_missing(cJSON_GetObjectItemCaseSensitive(m, "event"), "type:s,by:s");
}

static const char *conv_missing(const cJSON *c)
{
    const char *bad = fields_missing(c, "conv:n,kind:s,title:s,role:s,head:n,delivered:n,read:n,"
                                        "unread:n,joined:n,last:O");
    if (bad)
        return bad;
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(c, "last");
    if (cJSON_IsObject(last) && (bad = msg_missing(last)))
        return bad;
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(c, "members");
    if (!cJSON_IsArray(members))
        return "members";
    const cJSON *m;
    cJSON_ArrayForEach(m, members)
    {
        if ((bad = fields_missing(m, "user:s,role:s,delivered:n,read:n,delivered_ts:n,read_ts:n")))
            return bad;
    }
    return NULL;
}

/* NULL when frame (parsed) has every field its type needs, else the first one missing. */
static const char *frame_missing(const cJSON *f)
{
    if (!cJSON_IsObject(f) || !has(f, "type", is_str))
        return "type";
    const char *t = cJSON_GetObjectItemCaseSensitive(f, "type")->valuestring;
    const cJSON *x;
    const char *bad;
    if (strcmp(t, "msg") == 0)
        return msg_missing(f);
    if (strcmp(t, "ack") == 0)
        return fields_missing(f, "re:s,conv:n,cmid:s,seq:n,ts:n,dup:b");
    if (strcmp(t, "error") == 0)
        return fields_missing(f, "code:s,reason:s,message:s");
    if (strcmp(t, "ok") == 0)
        return fields_missing(f, "re:s,conv:n,seq:n");
    if (strcmp(t, "auth_ok") == 0)
        return fields_missing(f, "re:s,v:n,user:s,device:s,ts:n,cursor:n");
    if (strcmp(t, "media_url") == 0)
        return fields_missing(f, "re:s,media:s,url:s,expires:n,mime:s,size:n,name:s");
    if (strcmp(t, "pong") == 0)
        return fields_missing(f, "ts:n");
    if (strcmp(t, "conv") == 0)
        return fields_missing(f, "re:s,conv:o") ? "conv"
                                                 : conv_missing(cJSON_GetObjectItemCaseSensitive(f, "conv"));
    if (strcmp(t, "history") == 0) {
        if ((bad = fields_missing(f, "re:s,conv:n,more:b,messages:a")))
            return bad;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(f, "messages"))
        {
            if ((bad = msg_missing(x)))
                return bad;
        }
        return NULL;
    }
    if (strcmp(t, "convs") == 0) {
        if ((bad = fields_missing(f, "re:s,cursor:n,more:b,convs:a")))
            return bad;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(f, "convs"))
        {
            if ((bad = conv_missing(x)))
                return bad;
        }
        return NULL;
    }
    if (strcmp(t, "presence") == 0) {
        if ((bad = fields_missing(f, "users:a")))
            return bad;
        cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(f, "users"))
        {
            if ((bad = fields_missing(x, "user:s,online:b")))
                return bad;
        }
        return NULL;
    }
    return "a known type";
}

/* Parse and check one received frame; fails the test when it is malformed. */
static cJSON *parse_frame(const char *who, const char *s)
{
    cJSON *f = cJSON_Parse(s);
    CHECK(f != NULL, "%s received a frame that does not parse: %s", who, s);
    const char *bad = frame_missing(f);
    CHECK(!bad, "%s received a frame without '%s': %s", who, bad, s);
    return f;
}

static const char *type_of(const cJSON *f)
{
    return cJSON_GetObjectItemCaseSensitive(f, "type")->valuestring;
}

static int re_is(const cJSON *f, const char *id)
{
    const cJSON *re = cJSON_GetObjectItemCaseSensitive(f, "re");
    return cJSON_IsString(re) && strcmp(re->valuestring, id) == 0;
}

/* ---- a server on the loopback transport ---- */

static int verbose;

static void log_cb(int level, const char *msg, void *ud)
{
    (void)level;
    (void)ud;
    if (verbose)
        fprintf(stderr, "  [server] %s\n", msg);
}

/* The server's clock: still, so that every run sees the same times, except where a check
 * moves it on purpose (retries of presence announcements). */
static _Atomic int64_t clock_ms = NOW_MS;

static int64_t test_clock(void *ud)
{
    (void)ud;
    return atomic_load(&clock_ms);
}

enum { MAX_PEERS = 4 };

typedef struct peer {
    const char *user;
    chat__lb_conn *c;
    strv frames; /* received while the operation ran */
    int close_code;
} peer;

typedef struct ctx {
    chat__lb *lb;
    chat_server *srv;
    char dir[256]; /* the blob store's, or "" */
    peer p[MAX_PEERS];
    int n;
    char req[1024];     /* the operation's request frame, id "op" */
    int64_t conv;       /* a conversation the setup made */
    char media[80];     /* a media id the setup uploaded */
    int chk;            /* checker connections so far (request ids) */
} ctx;

static void server_start(ctx *x, int media)
{
    chat_server_config *cfg = NULL;
    assert_int_equal(chat_server_config_new(&cfg), CHAT_OK);
    unsigned char k[32];
    for (int i = 0; i < 32; i++)
        k[i] = (unsigned char)(i * 7 + 1);
    assert_int_equal(chat_server_config_add_token_key(cfg, 1, k, sizeof k), CHAT_OK);
    atomic_store(&clock_ms, NOW_MS);
    assert_int_equal(chat_server_config_set_clock(cfg, test_clock, NULL), CHAT_OK);
    /* No offline announcement while a check moves the clock past a presence retry. */
    assert_int_equal(chat_server_config_set_limit(cfg, CHAT_LIMIT_PRESENCE_GRACE_MS,
                                                  10 * CHAT__PRESGATE_RETRY_MS),
                     CHAT_OK);
    assert_int_equal(chat_server_config_set_log(cfg, log_cb, CHAT_LOG_DEBUG, NULL), CHAT_OK);
    x->dir[0] = '\0';
    if (media) {
        const char *tmp = getenv("TMPDIR");
        snprintf(x->dir, sizeof x->dir, "%s/chat-oom-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        assert_non_null(mkdtemp(x->dir));
        void *blob = NULL;
        assert_int_equal(chat_blob_fs_new(&blob, x->dir), CHAT_OK);
        assert_int_equal(chat_server_config_set_blob(cfg, chat_blob_fs_ops(), blob), CHAT_OK);
    }
    assert_int_equal(chat__lb_new(&x->lb), CHAT_OK);
    chat__server_config_set_transport(cfg, chat__transport_loopback(), x->lb);
    assert_int_equal(chat_server_new(&x->srv, cfg), CHAT_OK);
    chat_server_config_free(cfg);
    assert_int_equal(chat_server_start(x->srv), CHAT_OK);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void server_stop(ctx *x)
{
    chat_server_free(x->srv);
    chat__lb_free(x->lb);
    if (x->dir[0])
        nftw(x->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    for (int i = 0; i < x->n; i++)
        strv_free(&x->p[i].frames);
}

/* Queue empty everywhere: the loop idle, no job on the writer or the hasher, none posted back. */
static int workers_idle(chat_server *srv)
{
    int idle = 1;
    chat__worker *ws[2] = {&srv->writer, &srv->hasher};
    for (int i = 0; i < 2; i++) {
        pthread_mutex_lock(&ws[i]->lock);
        idle &= !ws[i]->head && !ws[i]->busy;
        pthread_mutex_unlock(&ws[i]->lock);
    }
    pthread_mutex_lock(&srv->done_lock);
    idle &= !srv->done_head;
    pthread_mutex_unlock(&srv->done_lock);
    return idle;
}

static void quiesce(ctx *x)
{
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(chat__lb_settle(x->lb, WAIT_MS), CHAT_OK);
        if (workers_idle(x->srv)) {
            assert_int_equal(chat__lb_settle(x->lb, WAIT_MS), CHAT_OK);
            if (workers_idle(x->srv))
                return;
        }
        usleep(200);
    }
    fail_msg("the server never went idle");
}

static void send_text(chat__lb_conn *c, const char *text)
{
    assert_int_equal(chat__lb_send(c, text, strlen(text)), CHAT_OK);
}

/* Unarmed: the answer to the request id (other frames skipped), of type type. */
static cJSON *request(chat__lb_conn *c, const char *text, const char *id, const char *type)
{
    send_text(c, text);
    for (;;) {
        char *s = NULL;
        int rc = chat__lb_recv(c, &s, WAIT_MS);
        CHECK(rc == CHAT_OK, "no answer to %s: %s", text, chat_error_name(rc));
        cJSON *f = parse_frame("a setup connection", s);
        chat__free(s);
        if (re_is(f, id)) {
            if (type)
                CHECK(strcmp(type_of(f), type) == 0, "%s answered %s", text,
                      cJSON_PrintUnformatted(f));
            return f;
        }
        cJSON_Delete(f);
    }
}

static chat__lb_conn *connect_as(ctx *x, const char *user, const char *device, int auth)
{
    chat__lb_conn *c = NULL;
    assert_int_equal(chat__lb_connect(x->lb, &c, "/", NULL, NULL, WAIT_MS), CHAT_OK);
    if (!auth)
        return c;
    char *tok = NULL, buf[1024];
    assert_int_equal(chat_server_issue_token(x->srv, user, device, 3600000, &tok), CHAT_OK);
    snprintf(buf, sizeof buf, "{\"type\":\"auth\",\"id\":\"a\",\"token\":\"%s\"}", tok);
    chat_string_free(tok);
    cJSON_Delete(request(c, buf, "a", "auth_ok"));
    return c;
}

static void drain(chat__lb_conn *c)
{
    char *s = NULL;
    while (chat__lb_pending(c) && chat__lb_recv(c, &s, 0) == CHAT_OK)
        chat__free(s);
}

static int64_t num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return (int64_t)v->valuedouble;
}

/* Unarmed request by peer i whose answer has a "conv" number; returns it. */
static int64_t request_conv(ctx *x, int i, const char *text, const char *type)
{
    cJSON *f = request(x->p[i].c, text, "s", type);
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(f, "conv");
    int64_t id = cJSON_IsObject(conv) ? num(conv, "conv") : num(f, "conv");
    cJSON_Delete(f);
    return id;
}

/* ---- HTTP ---- */

#define UPLOAD_BODY "hello"

static int upload(ctx *x, const char *user, chat__lb_http_resp *resp)
{
    char *tok = NULL, auth[1024];
    assert_int_equal(chat_server_issue_token(x->srv, user, "phone", 3600000, &tok), CHAT_OK);
    snprintf(auth, sizeof auth, "Bearer %s", tok);
    chat_string_free(tok);
    const char *hdrs[] = {"authorization", auth, "upload-length", "5", "content-length", "5",
                          /* hello.txt, text/plain */
                          "upload-metadata", "name aGVsbG8udHh0,type dGV4dC9wbGFpbg==", NULL};
    chat__lb_http_req req = {CHAT__HTTP_POST, "/media/uploads", NULL, hdrs, UPLOAD_BODY, 5, 0};
    return chat__lb_http(x->lb, &req, resp, WAIT_MS);
}

/* GET a download path "/media/<id>?<query>": "status body". */
static void download(ctx *x, const char *url, sbuf *out)
{
    char path[1024];
    snprintf(path, sizeof path, "%s", url);
    char *q = strchr(path, '?');
    assert_non_null(q);
    *q++ = '\0';
    chat__lb_http_req req = {CHAT__HTTP_GET, path, q, NULL, NULL, 0, 0};
    chat__lb_http_resp r;
    assert_int_equal(chat__lb_http(x->lb, &req, &r, WAIT_MS), CHAT_OK);
    sb_add(out, "GET %d %s\n", r.status, r.body ? r.body : "");
    chat__free(r.body);
}

/* ---- the state, read back ---- */

/* What user's fresh connection reads: the conversation list, each conversation's history,
 * and with media the media_url answer for x->media and the bytes it leads to. */
static void snapshot_user(ctx *x, const char *user, int media, sbuf *out)
{
    chat__lb_conn *c = connect_as(x, user, "chk", 1);
    cJSON *convs = request(c, "{\"type\":\"convs\",\"id\":\"s\"}", "s", "convs");
    char *p = cJSON_PrintUnformatted(convs);
    sb_add(out, "%s convs %s\n", user, p);
    cJSON_free(p);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(convs, "convs"))
    {
        char buf[128];
        snprintf(buf, sizeof buf, "{\"type\":\"history\",\"id\":\"s\",\"conv\":%lld,\"limit\":200}",
                 (long long)num(e, "conv"));
        cJSON *h = request(c, buf, "s", NULL);
        p = cJSON_PrintUnformatted(h);
        sb_add(out, "%s history %s\n", user, p);
        cJSON_free(p);
        cJSON_Delete(h);
    }
    cJSON_Delete(convs);
    if (media && x->media[0]) {
        char buf[256];
        snprintf(buf, sizeof buf, "{\"type\":\"media_url\",\"id\":\"s\",\"media\":\"%s\"}",
                 x->media);
        cJSON *m = request(c, buf, "s", NULL);
        p = cJSON_PrintUnformatted(m);
        sb_add(out, "%s media_url %s\n", user, p);
        cJSON_free(p);
        if (strcmp(type_of(m), "media_url") == 0)
            download(x, cJSON_GetObjectItemCaseSensitive(m, "url")->valuestring, out);
        cJSON_Delete(m);
    }
    chat__lb_hangup(c);
}

static char *snapshot(ctx *x, int media)
{
    sbuf out = {NULL, 0};
    sb_add(&out, "%s", "");
    for (int i = 0; i < x->n; i++)
        snapshot_user(x, x->p[i].user, media, &out);
    quiesce(x);
    return out.s;
}

/* ---- scenarios ---- */

enum { OUT_ANSWER, OUT_ERROR, OUT_CLOSED };
static const char *out_name[] = {"answer", "error", "close"};

typedef struct scenario {
    const char *name;
    const char *users[MAX_PEERS]; /* users[0] makes the request */
    int media;                    /* with a blob store; the state includes x->media */
    int unauthed;                 /* users[0] connects without authenticating */
    int resend;                   /* after a close, resending the request is safe */
    void (*setup)(ctx *x);        /* unarmed: the state the operation works on, and x->req */
    int http;                     /* the operation is an upload, not x->req */
} scenario;

static void setup_send_direct(ctx *x)
{
    snprintf(x->req, sizeof x->req,
             "{\"type\":\"send\",\"id\":\"op\",\"to\":\"bob\",\"cmid\":\"c1\",\"text\":\"hello\"}");
}

static int64_t make_group(ctx *x, const char *members)
{
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"type\":\"group_create\",\"id\":\"s\",\"title\":\"team\",\"members\":%s}", members);
    return request_conv(x, 0, buf, "conv");
}

static void setup_send_group(ctx *x)
{
    x->conv = make_group(x, "[\"bob\",\"carol\",\"dave\"]");
    snprintf(x->req, sizeof x->req,
             "{\"type\":\"send\",\"id\":\"op\",\"conv\":%lld,\"cmid\":\"c1\",\"text\":\"hi all\"}",
             (long long)x->conv);
}

static void setup_history(ctx *x)
{
    for (int i = 0; i < 3; i++) {
        char buf[256];
        snprintf(buf, sizeof buf,
                 "{\"type\":\"send\",\"id\":\"s\",\"to\":\"bob\",\"cmid\":\"h%d\",\"text\":\"m%d\"}",
                 i, i);
        x->conv = request_conv(x, i == 1 ? 1 : 0, i == 1 ? "{\"type\":\"send\",\"id\":\"s\","
                                                           "\"to\":\"alice\",\"cmid\":\"b1\","
                                                           "\"text\":\"from bob\"}"
                                                         : buf,
                               "ack");
    }
    snprintf(x->req, sizeof x->req,
             "{\"type\":\"history\",\"id\":\"op\",\"conv\":%lld,\"limit\":10}",
             (long long)x->conv);
}

static void setup_convs(ctx *x)
{
    request_conv(x, 0, "{\"type\":\"send\",\"id\":\"s\",\"to\":\"bob\",\"cmid\":\"d1\","
                       "\"text\":\"direct\"}", "ack");
    int64_t g = make_group(x, "[\"bob\",\"carol\"]");
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"type\":\"group_update\",\"id\":\"s\",\"conv\":%lld,\"title\":\"renamed\"}",
             (long long)g);
    request_conv(x, 0, buf, "ok");
    snprintf(x->req, sizeof x->req, "{\"type\":\"convs\",\"id\":\"op\"}");
}

static void setup_group_create(ctx *x)
{
    snprintf(x->req, sizeof x->req,
             "{\"type\":\"group_create\",\"id\":\"op\",\"title\":\"new group\","
             "\"members\":[\"bob\",\"carol\",\"dave\"],\"cmid\":\"g1\"}");
}

static void setup_group_add(ctx *x)
{
    x->conv = make_group(x, "[\"bob\"]");
    snprintf(x->req, sizeof x->req,
             "{\"type\":\"group_add\",\"id\":\"op\",\"conv\":%lld,\"users\":[\"carol\",\"dave\"]}",
             (long long)x->conv);
}

static void setup_group_remove(ctx *x)
{
    x->conv = make_group(x, "[\"bob\",\"carol\",\"dave\"]");
    snprintf(x->req, sizeof x->req,
             "{\"type\":\"group_remove\",\"id\":\"op\",\"conv\":%lld,\"users\":[\"carol\"]}",
             (long long)x->conv);
}

static void setup_group_rename(ctx *x)
{
    x->conv = make_group(x, "[\"bob\",\"carol\"]");
    snprintf(x->req, sizeof x->req,
             "{\"type\":\"group_update\",\"id\":\"op\",\"conv\":%lld,\"title\":\"new title\"}",
             (long long)x->conv);
}

/* The media id of the upload's body: the reference upload reports it. */
static char upload_id[80];

static void setup_media_url(ctx *x)
{
    chat__lb_http_resp r;
    assert_int_equal(upload(x, "alice", &r), CHAT_OK);
    assert_int_equal(r.status, 201);
    cJSON *b = cJSON_Parse(r.body);
    chat__free(r.body);
    assert_non_null(b);
    snprintf(x->media, sizeof x->media, "%s",
             cJSON_GetObjectItemCaseSensitive(b, "media")->valuestring);
    cJSON_Delete(b);
    snprintf(x->req, sizeof x->req, "{\"type\":\"media_url\",\"id\":\"op\",\"media\":\"%s\"}",
             x->media);
}

static void setup_upload(ctx *x)
{
    snprintf(x->media, sizeof x->media, "%s", upload_id);
}

static void setup_auth(ctx *x)
{
    /* alice has a contact online (bob), so her presence snapshot lists someone. */
    request_conv(x, 1, "{\"type\":\"send\",\"id\":\"s\",\"to\":\"alice\",\"cmid\":\"b1\","
                       "\"text\":\"hi alice\"}", "ack");
    char *tok = NULL;
    assert_int_equal(chat_server_issue_token(x->srv, "alice", "phone", 3600000, &tok), CHAT_OK);
    snprintf(x->req, sizeof x->req, "{\"type\":\"auth\",\"id\":\"op\",\"token\":\"%s\"}", tok);
    chat_string_free(tok);
}

static const scenario scenarios[] = {
    {"send_direct", {"alice", "bob"}, 0, 0, 1, setup_send_direct, 0},
    {"send_group", {"alice", "bob", "carol", "dave"}, 0, 0, 1, setup_send_group, 0},
    {"history", {"alice", "bob"}, 0, 0, 0, setup_history, 0},
    {"convs", {"alice", "bob", "carol"}, 0, 0, 0, setup_convs, 0},
    {"group_create", {"alice", "bob", "carol", "dave"}, 0, 0, 1, setup_group_create, 0},
    {"group_add", {"alice", "bob", "carol", "dave"}, 0, 0, 0, setup_group_add, 0},
    {"group_remove", {"alice", "bob", "carol", "dave"}, 0, 0, 0, setup_group_remove, 0},
    {"group_rename", {"alice", "bob", "carol"}, 0, 0, 0, setup_group_rename, 0},
    {"media_url", {"alice", "bob"}, 1, 0, 0, setup_media_url, 0},
    {"upload", {"alice"}, 1, 0, 0, setup_upload, 1},
    {"auth", {"alice", "bob"}, 0, 1, 0, setup_auth, 0},
};

/* ---- one run ---- */

typedef struct result {
    int outcome;
    char *answer;          /* the answer frame, or "status body" of an upload */
    strv frames[MAX_PEERS];
    int close[MAX_PEERS];
    char *before;          /* the reference's state before the operation */
    char *after;           /* the state after the run */
    char *resent;          /* after a close and a resend, or NULL */
    unsigned long allocs;  /* counted while armed */
    int hit;               /* the Nth allocation was reached */
} result;

static void result_free(result *r)
{
    free(r->answer);
    for (int i = 0; i < MAX_PEERS; i++)
        strv_free(&r->frames[i]);
    free(r->before);
    free(r->after);
    free(r->resent);
    memset(r, 0, sizeof *r);
}

/* Read what peer p has (without waiting), keeping each frame. */
static void collect(peer *p)
{
    char *s = NULL;
    while (chat__lb_pending(p->c) && chat__lb_recv(p->c, &s, 0) == CHAT_OK) {
        cJSON_Delete(parse_frame(p->user, s));
        strv_add(&p->frames, s);
        chat__free(s);
    }
    p->close_code = chat__lb_close_code(p->c);
}

/* The requester's outcome over WebSocket: its answer, an error, or a close. */
static int ws_outcome(peer *p, char **answer)
{
    for (;;) {
        char *s = NULL;
        int rc = chat__lb_recv(p->c, &s, WAIT_MS);
        if (rc == CHAT_ECLOSED)
            return OUT_CLOSED;
        CHECK(rc == CHAT_OK, "the request was neither answered nor its connection closed (%s)",
              chat_error_name(rc));
        cJSON *f = parse_frame(p->user, s);
        strv_add(&p->frames, s);
        chat__free(s);
        if (re_is(f, "op")) {
            int out = strcmp(type_of(f), "error") == 0 ? OUT_ERROR : OUT_ANSWER;
            *answer = dup_s(p->frames.v[p->frames.n - 1]);
            if (out == OUT_ERROR) {
                const char *code = cJSON_GetObjectItemCaseSensitive(f, "code")->valuestring;
                const char *reason = cJSON_GetObjectItemCaseSensitive(f, "reason")->valuestring;
                CHECK((!strcmp(code, "ENOMEM") || !strcmp(code, "EIO")) &&
                          (!strcmp(reason, "internal") || !strcmp(reason, "storage")),
                      "not an out-of-memory error: %s", *answer);
            }
            cJSON_Delete(f);
            return out;
        }
        cJSON_Delete(f);
    }
}

/* The upload's outcome: 201 (its body), a 500 error, or a connection that ended without a
 * whole response (the body shorter than its Content-Length, or none). */
static int http_outcome(ctx *x, char **answer)
{
    chat__lb_http_resp r;
    int rc = upload(x, "alice", &r);
    if (rc == CHAT_ECLOSED) {
        chat__free(r.body);
        return OUT_CLOSED;
    }
    CHECK(rc == CHAT_OK, "the upload was neither answered nor closed (%s)", chat_error_name(rc));
    char len[32];
    const char *cl = chat__lb_http_header(&r, "content-length", len, sizeof len);
    if (r.closed && (!cl || strtoull(cl, NULL, 10) != r.body_len)) {
        chat__free(r.body);
        return OUT_CLOSED;
    }
    CHECK(cl && strtoull(cl, NULL, 10) == r.body_len, "a response of %zu bytes says %s",
          r.body_len, cl ? cl : "no length");
    sbuf a = {NULL, 0};
    sb_add(&a, "%d %s", r.status, r.body ? r.body : "");
    *answer = a.s;
    int out = OUT_ANSWER;
    if (r.status != 201) {
        cJSON *e = cJSON_Parse(r.body ? r.body : "");
        CHECK(r.status == 500 && e && !fields_missing(e, "code:s,reason:s,message:s"),
              "the upload got %s", a.s);
        const char *code = cJSON_GetObjectItemCaseSensitive(e, "code")->valuestring;
        const char *reason = cJSON_GetObjectItemCaseSensitive(e, "reason")->valuestring;
        CHECK((!strcmp(code, "ENOMEM") || !strcmp(code, "EIO")) &&
                  (!strcmp(reason, "internal") || !strcmp(reason, "storage")),
              "not an out-of-memory error: %s", a.s);
        cJSON_Delete(e);
        out = OUT_ERROR;
    }
    chat__free(r.body);
    return out;
}

static void ctx_connect(ctx *x, const scenario *s)
{
    for (x->n = 0; x->n < MAX_PEERS && s->users[x->n]; x->n++) {
        x->p[x->n].user = s->users[x->n];
        x->p[x->n].c = connect_as(x, s->users[x->n], "phone", !(x->n == 0 && s->unauthed));
    }
}

/* Run s once, failing allocation n (0: none, the reference), and with from every one after
 * it too. */
static void run_once(const scenario *s, unsigned long n, int from, result *out)
{
    ctx x;
    memset(&x, 0, sizeof x);
    memset(out, 0, sizeof *out);
    unsigned long mark = alloc_mark();
    server_start(&x, s->media);
    ctx_connect(&x, s);
    s->setup(&x);
    quiesce(&x);
    for (int i = 0; i < x.n; i++)
        drain(x.p[i].c);
    if (n == 0 && !s->unauthed) {
        out->before = snapshot(&x, s->media);
        for (int i = 0; i < x.n; i++)
            drain(x.p[i].c);
    }

    arm(n, from);
    if (s->http)
        out->outcome = http_outcome(&x, &out->answer);
    else {
        send_text(x.p[0].c, x.req);
        out->outcome = ws_outcome(&x.p[0], &out->answer);
    }
    quiesce(&x);
    disarm();
    out->allocs = atomic_load(&a_counted);
    out->hit = atomic_load(&a_hit);
    if (s->unauthed) {
        /* An announcement of alice's presence that failed is tried again: contacts must end
         * up told. */
        atomic_fetch_add(&clock_ms, 2 * CHAT__PRESGATE_RETRY_MS);
        chat__lb_advance(x.lb, 2 * CHAT__PRESGATE_RETRY_MS);
        quiesce(&x);
    }
    for (int i = 0; i < x.n; i++) {
        collect(&x.p[i]);
        out->frames[i] = x.p[i].frames;
        memset(&x.p[i].frames, 0, sizeof x.p[i].frames);
        out->close[i] = x.p[i].close_code;
    }
    if (verbose)
        fprintf(stderr, "%s N=%lu: %s%s%s, %lu allocations\n", s->name, n, out_name[out->outcome],
                out->answer ? " " : "", out->answer ? out->answer : "", out->allocs);

    if (s->unauthed) {
        /* Authenticated exactly when it answered auth_ok: a ping is answered, and a message to
         * alice reaches the connection. */
        if (out->close[0] == 0) {
            cJSON *f = request(x.p[0].c, "{\"type\":\"ping\",\"id\":\"p\"}", "p", NULL);
            int authed = strcmp(type_of(f), "pong") == 0;
            cJSON_Delete(f);
            CHECK(authed == (out->outcome == OUT_ANSWER),
                  "after a%s auth the connection is%s authenticated",
                  out->outcome == OUT_ANSWER ? "n answered" : "n unanswered", authed ? "" : " not");
            if (!authed)
                cJSON_Delete(request(x.p[0].c, x.req, "op", "auth_ok")); /* a retry works */
            chat__lb_conn *bob = connect_as(&x, "bob", "chk", 1); /* bob's own may be closed */
            cJSON_Delete(request(bob, "{\"type\":\"send\",\"id\":\"s\",\"to\":\"alice\","
                                      "\"cmid\":\"b2\",\"text\":\"again\"}", "s", "ack"));
            quiesce(&x);
            int got = 0;
            char *str = NULL;
            while (chat__lb_pending(x.p[0].c) && chat__lb_recv(x.p[0].c, &str, 0) == CHAT_OK) {
                cJSON *f2 = parse_frame("alice", str);
                got |= strcmp(type_of(f2), "msg") == 0;
                cJSON_Delete(f2);
                chat__free(str);
            }
            CHECK(got, "an authenticated connection is not registered for its user's messages");
        }
    } else {
        out->after = snapshot(&x, s->media);
        if (n && out->outcome == OUT_CLOSED && s->resend) {
            chat__lb_conn *c = connect_as(&x, s->users[0], "phone", 1);
            cJSON_Delete(request(c, x.req, "op", NULL));
            quiesce(&x);
            out->resent = snapshot(&x, s->media);
        }
    }
    server_stop(&x);
    int leaks = alloc_leaks(mark);
    CHECK(leaks == 0, "%d blocks leaked (see above)", leaks);
}

/* ---- the checks against the reference ---- */

/* What a party other than the requester may receive: the reference frames, or a prefix of
 * them and a close with 1011; nothing when the operation did not happen (applied 0); either
 * when that cannot be told (applied -1). */
static void check_peer(const char *who, const strv *got, int close, const strv *ref, int applied)
{
    CHECK(close == 0 || close == 1011, "%s was closed with %d", who, close);
    if (applied == 0 || (applied < 0 && got->n == 0)) {
        CHECK(got->n == 0, "%s received %s for an operation that did not happen", who,
              got->v[0]);
        return;
    }
    for (int i = 0; i < got->n && i < ref->n; i++)
        CHECK(strcmp(got->v[i], ref->v[i]) == 0, "%s received\n  %s\ninstead of\n  %s", who,
              got->v[i], ref->v[i]);
    CHECK(got->n <= ref->n, "%s received an extra frame %s", who, got->v[ref->n]);
    CHECK(got->n == ref->n || close == 1011, "%s never received %s and is still connected", who,
          ref->v[got->n]);
}

static void check_run(const scenario *s, const result *ref, const result *r)
{
    int applied;
    if (s->unauthed) {
        applied = r->outcome == OUT_ANSWER ? 1 : r->outcome == OUT_ERROR ? 0 : -1;
    } else {
        int readonly = strcmp(ref->before, ref->after) == 0;
        int is_before = strcmp(r->after, ref->before) == 0;
        int is_after = strcmp(r->after, ref->after) == 0;
        CHECK(is_before || is_after, "the store holds neither the state before nor after:\n%s\n"
                                     "before:\n%s\nafter:\n%s", r->after, ref->before, ref->after);
        if (r->outcome == OUT_ANSWER)
            CHECK(is_after, "answered, yet the store holds the state before");
        if (r->outcome == OUT_ERROR)
            CHECK(is_before, "an error was answered, yet the operation happened");
        if (r->resent)
            CHECK(strcmp(r->resent, ref->after) == 0,
                  "resent after a close, the store holds\n%s\ninstead of\n%s", r->resent,
                  ref->after);
        if (readonly)
            applied = r->outcome == OUT_ANSWER ? 1 : r->outcome == OUT_ERROR ? 0 : -1;
        else
            applied = is_after;
    }
    if (r->outcome == OUT_ANSWER)
        CHECK(strcmp(r->answer, ref->answer) == 0, "answered\n  %s\ninstead of\n  %s", r->answer,
              ref->answer);
    for (int i = 0; i < MAX_PEERS && s->users[i]; i++) {
        char who[64];
        int requester = i == 0 && !s->http;
        snprintf(who, sizeof who, "%s (%s)", s->users[i], requester ? "the requester" : "a member");
        if (requester && r->outcome == OUT_ERROR) {
            /* The error, and at most a close after it. */
            CHECK(r->frames[0].n == 1, "%s received %d frames with its error", who,
                  r->frames[0].n);
            CHECK(r->close[0] == 0 || r->close[0] == 1011, "%s was closed with %d", who,
                  r->close[0]);
            continue;
        }
        if (requester && r->outcome == OUT_CLOSED)
            CHECK(r->close[0] == 1011, "%s was closed with %d", who, r->close[0]);
        check_peer(who, &r->frames[i], r->close[i], &ref->frames[i],
                   requester && r->outcome == OUT_ANSWER ? 1 : applied);
    }
}

static void run_scenario(const scenario *s)
{
    scenario_name = s->name;
    const char *only_n = getenv("OOM_N");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    result ref;
    run_n = 0;
    run_once(s, 0, 0, &ref);
    assert_int_equal(ref.outcome, OUT_ANSWER);
    for (int i = 0; i < MAX_PEERS; i++)
        assert_int_equal(ref.close[i], 0);
    if (s->http) {
        cJSON *b = cJSON_Parse(strchr(ref.answer, ' ') + 1);
        snprintf(upload_id, sizeof upload_id, "%s",
                 cJSON_GetObjectItemCaseSensitive(b, "media")->valuestring);
        cJSON_Delete(b);
        result_free(&ref);
        run_once(s, 0, 0, &ref); /* again, with the id in the state */
    }
    /* Two passes: the Nth allocation alone fails (the engine recovers and answers), then the
     * Nth and every later one (what handles a failure fails too: errors, closes, cleanups). */
    printf("# %-13s %3lu allocations on the path\n", s->name, ref.allocs);
    for (from_mode = 0; from_mode < 2; from_mode++) {
        if (getenv("OOM_FROM") && atoi(getenv("OOM_FROM")) != from_mode)
            continue;
        unsigned long n = only_n ? strtoul(only_n, NULL, 10) : 1, runs = 0;
        int outcomes[3] = {0, 0, 0};
        for (; n > 0; n++) {
            result r;
            run_n = n;
            run_once(s, n, from_mode, &r);
            runs++;
            check_run(s, &ref, &r);
            outcomes[r.outcome]++;
            int hit = r.hit;
            result_free(&r);
            if (!hit || only_n)
                break;
        }
        printf("#   %s: %3lu runs (%d answered, %d errors, %d closed)\n",
               from_mode ? "the Nth and later fail" : "the Nth fails        ", runs, outcomes[0],
               outcomes[1], outcomes[2]);
    }
    from_mode = 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("#   %.2f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    result_free(&ref);
}

static void test_oom_scenario(void **state)
{
    run_scenario(*state);
}

int main(void)
{
    const chat_allocator alloc = {t_malloc, t_realloc, t_free, (void *)&OWN_CHAT};
    if (chat_set_default_allocator(&alloc) != CHAT_OK)
        return 1;
    cJSON_Hooks hooks = {t_cjson_malloc, t_cjson_free};
    cJSON_InitHooks(&hooks);
    a_harness = 1;
    verbose = getenv("OOM_VERBOSE") && atoi(getenv("OOM_VERBOSE"));
    a_trace = getenv("OOM_TRACE") && atoi(getenv("OOM_TRACE"));
    const char *only = getenv("OOM_SCENARIO");

    enum { N_SCEN = sizeof scenarios / sizeof scenarios[0] };
    struct CMUnitTest tests[N_SCEN];
    size_t n = 0;
    for (size_t i = 0; i < N_SCEN; i++) {
        if (only && strcmp(only, scenarios[i].name) != 0)
            continue;
        tests[n] = (struct CMUnitTest){scenarios[i].name, test_oom_scenario, NULL, NULL,
                                       (void *)&scenarios[i]};
        n++;
    }
    if (n == 0) {
        fprintf(stderr, "no scenario named %s\n", only);
        return 1;
    }
    return _cmocka_run_group_tests("oom", tests, n, NULL, NULL);
}
