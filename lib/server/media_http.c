/* Media over HTTP on the server's own port (doc/media.md), through the transport's HTTP
 * side (transport/transport.h):
 *
 *   POST   /media/uploads          create an upload (Upload-Length, Upload-Metadata), and
 *                                  optionally carry its first bytes
 *   PATCH  /media/uploads/<key>    append at Upload-Offset
 *   HEAD   /media/uploads/<key>    where to resume (Upload-Offset)
 *   DELETE /media/uploads/<key>    give up: the staged bytes are removed
 *   GET    /media/<id>?<signed>    download (Range, If-None-Match); HEAD likewise
 *
 * Uploads authenticate with the chat token (Authorization: Bearer). Bytes go to the blob
 * store's staging object as they arrive, one bounded write per body chunk, and into a
 * streaming BLAKE2b state kept with the upload, so an upload resumed after a dropped
 * connection hashes on from where it stopped. The last byte ends the hash; the writer thread
 * publishes the blob (fsync + rename) and records the metadata, then the response goes out.
 * Downloads read at most CHUNK bytes from the blob store per writeable callback. Upload
 * sessions live in memory: they survive dropped connections, not a server restart. */
#include "server/media.h"

#include "core/alloc.h"
#include "core/error.h"

#include <inttypes.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHUNK (32 * 1024)       /* download bytes per blob read and write */
#define CHUNKS_PER_WRITEABLE 8  /* at most this many per writeable callback (256 KiB) */
#define KEY_LEN 32        /* upload key: 16 random bytes in hex */
#define MAX_HDRS 10

enum { UP_OPEN, UP_FINISHING, UP_DONE };

typedef struct upload {
    char key[KEY_LEN + 1];
    char user[CHAT_ID_MAX + 1];
    char mime[CHAT_MEDIA_STR_MAX + 1];
    char name[CHAT_MEDIA_STR_MAX + 1];
    uint64_t length, offset;
    int state;
    int busy; /* a request is appending right now */
    int64_t touched_ms;
    char id[CHAT__MEDIA_ID_LEN + 1]; /* UP_DONE */
    crypto_generichash_state *hash;  /* points into hash_mem, aligned */
    unsigned char hash_mem[sizeof(crypto_generichash_state) + 64];
} upload;

enum { PH_NONE, PH_BODY, PH_WAIT, PH_RESPOND, PH_DOWNLOAD };

typedef struct http {
    chat_server *srv;
    chat__thttp *hx; /* NULL once the transaction or connection ended */
    void **slot;     /* the connection's pointer to this */
    int refs;        /* the transaction and a pending writer job */
    int phase;
    /* the response */
    int status;
    char ctype[CHAT_MEDIA_STR_MAX + 1];
    struct {
        char name[32];
        char value[160];
    } hdr[MAX_HDRS];
    int nhdr;
    char *body;      /* on the heap, or small */
    size_t body_len;
    char small[512]; /* short bodies (errors, an upload's creation): no allocation to fail */
    int close_after; /* a request body is left unread: close instead of keep-alive */
    /* an upload in progress */
    upload *up;
    void *stage;
    uint64_t remaining;
    /* a download */
    void *blob_h;
    uint64_t pos, end;
    int head, headers_sent;
    int created; /* this request created the upload (POST): answers 201 */
    unsigned char *buf;
} http;

static const chat__transport_ops *TP(const http *h)
{
    return h->srv->tp;
}

/* ---- upload sessions ---- */

static void upload_drop(chat_server *srv, upload *up, int remove_staged)
{
    chat__strmap_del(&srv->uploads, up->key);
    if (remove_staged)
        srv->blob->stage_remove(srv->blob_st, up->key);
    sodium_memzero(up->hash_mem, sizeof up->hash_mem);
    chat__free(up);
}

/* A finished upload is kept this long (at most) so that a client whose connection dropped
 * before the answer can learn its media id with HEAD. */
#define DONE_KEEP_MS (10 * 60 * 1000)

typedef struct sweep {
    int64_t now, ttl;
    int force;        /* at capacity: every finished upload goes, whatever its age */
    const char *user; /* count this user's unfinished uploads */
    size_t user_open;
    upload *expired[256];
    int n;
} sweep;

static void sweep_one(const char *key, void *value, void *ud)
{
    (void)key;
    sweep *s = ud;
    upload *up = value;
    int64_t idle = s->now - up->touched_ms;
    int expired = up->state == UP_DONE ? s->force || idle > DONE_KEEP_MS || idle > s->ttl
                  : up->state == UP_OPEN ? !up->busy && idle > s->ttl
                                         : 0;
    if (expired && s->n < (int)(sizeof s->expired / sizeof s->expired[0]))
        s->expired[s->n++] = up;
    else if (s->user && up->state != UP_DONE && strcmp(up->user, s->user) == 0)
        s->user_open++;
}

/* Forget uploads idle past the upload TTL (and their staged bytes), and finished ones;
 * returns how many unfinished uploads user (may be NULL) still has. */
static size_t uploads_sweep(chat_server *srv, int force, const char *user)
{
    sweep s = {chat__now_ms(srv), chat__limit(srv, CHAT_LIMIT_UPLOAD_TTL_MS), force, user, 0,
               {0}, 0};
    chat__strmap_each(&srv->uploads, sweep_one, &s);
    for (int i = 0; i < s.n; i++)
        upload_drop(srv, s.expired[i], s.expired[i]->state != UP_DONE);
    return s.user_open;
}

static void free_one(const char *key, void *value, void *ud)
{
    (void)key;
    (void)ud;
    chat__free(value);
}

void chat__media_free(chat_server *srv)
{
    /* Unfinished uploads keep their staged bytes on disk; their sessions end here. */
    chat__strmap_each(&srv->uploads, free_one, NULL);
    chat__strmap_clear(&srv->uploads);
    if (srv->blob)
        srv->blob->destroy(srv->blob_st);
    srv->blob = NULL;
}

/* ---- transactions ---- */

static void http_unref(http *h)
{
    if (--h->refs > 0)
        return;
    if (h->stage)
        h->srv->blob->stage_close(h->srv->blob_st, h->stage);
    if (h->blob_h)
        h->srv->blob->close(h->srv->blob_st, h->blob_h);
    if (h->body != h->small)
        chat__free(h->body);
    chat__free(h->buf);
    chat__free(h);
}

/* The upload this transaction was appending to stops appending (bytes stay staged). */
static void release_upload(http *h)
{
    if (h->stage) {
        h->srv->blob->stage_close(h->srv->blob_st, h->stage);
        h->stage = NULL;
    }
    if (h->up && h->phase == PH_BODY)
        h->up->busy = 0;
    h->up = NULL;
}

/* Detach from the connection: the transaction is over (answered or the peer is gone). */
static void http_end(http *h)
{
    if (h->phase == PH_BODY)
        release_upload(h);
    if (h->slot)
        *h->slot = NULL;
    h->slot = NULL;
    h->hx = NULL;
    http_unref(h);
}

static void add_hdr(http *h, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_hdr(http *h, const char *name, const char *fmt, ...)
{
    if (h->nhdr >= MAX_HDRS)
        return;
    snprintf(h->hdr[h->nhdr].name, sizeof h->hdr[0].name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->hdr[h->nhdr].value, sizeof h->hdr[0].value, fmt, ap);
    va_end(ap);
    h->nhdr++;
}

/* body: on the heap (owned from here on), h->small, or NULL. */
static void set_body(http *h, int status, const char *ctype, char *body)
{
    h->status = status;
    snprintf(h->ctype, sizeof h->ctype, "%s", ctype);
    if (h->body != h->small)
        chat__free(h->body);
    h->body = body;
    h->body_len = body ? strlen(body) : 0;
}

static void set_small(http *h, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_small(http *h, int status, const char *fmt, ...)
{
    if (h->body != h->small)
        chat__free(h->body);
    h->body = NULL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->small, sizeof h->small, fmt, ap);
    va_end(ap);
    set_body(h, status, "application/json", h->small);
}

/* An error answer in the engine's error model: {"code","reason","message"}. */
static void set_error(http *h, int status, int code, const char *reason, const char *message)
{
    set_small(h, status, "{\"code\":\"%s\",\"reason\":\"%s\",\"message\":\"%s\"}\n",
              chat_error_name(code), reason, message);
}

static int write_headers(http *h, int status, const char *ctype, uint64_t len, int with_len)
{
    chat__http_hdr hdr[MAX_HDRS];
    for (int i = 0; i < h->nhdr; i++) {
        hdr[i].name = h->hdr[i].name;
        hdr[i].value = h->hdr[i].value;
    }
    return TP(h)->http_respond(h->hx, status, ctype, with_len ? (int64_t)len : -1, hdr, h->nhdr,
                               h->close_after);
}

/* Write the prepared small response and end the transaction. Returns what the transport's
 * http callback returns. */
static int respond(http *h)
{
    chat__thttp *hx = h->hx;
    const chat__transport_ops *tp = TP(h);
    int close_after = h->close_after;
    /* The body's buffer first: without it the connection ends before a response has begun,
     * never in the middle of one. */
    unsigned char *b = NULL;
    int rc = 0;
    if (h->body_len && !h->head && !(b = chat__malloc(CHAT__TRANSPORT_PRE + h->body_len)))
        rc = -1;
    if (rc == 0)
        rc = write_headers(h, h->status, h->ctype, h->body_len, 1);
    if (rc == 0 && b) {
        memcpy(b + CHAT__TRANSPORT_PRE, h->body, h->body_len);
        rc = tp->http_write(hx, b + CHAT__TRANSPORT_PRE, h->body_len, 1);
    }
    chat__free(b);
    http_end(h);
    if (rc || close_after)
        return -1;
    return tp->http_complete(hx);
}

static int fail_now(http *h, int status, int code, const char *reason, const char *message)
{
    set_error(h, status, code, reason, message);
    return respond(h);
}

/* ---- request helpers ---- */

/* A request header (lower-case name): its length, or CHAT__HDR_ABSENT, _TOO_LONG, _REPEATED. */
static int header(http *h, const char *name, char *buf, size_t size)
{
    return TP(h)->http_header(h->hx, name, buf, size);
}

/* The bearer token's user, or 0 after answering 401. */
static int authenticate(http *h, char *user)
{
    char buf[CHAT_AUTH_TOKEN_MAX + 16];
    int n = header(h, "authorization", buf, sizeof buf);
    chat_auth_identity tok;
    if (n <= 7 || strncasecmp(buf, "Bearer ", 7) != 0 ||
        chat__server_verify(h->srv, buf + 7, (size_t)n - 7, &tok) != CHAT_OK ||
        chat__server_revoked(h->srv, tok.session)) {
        add_hdr(h, "www-authenticate", "Bearer");
        set_error(h, 401, CHAT_EAUTH, "auth_failed", "a valid bearer token is required");
        return 0;
    }
    strcpy(user, tok.user);
    return 1;
}

/* Content-Length: 1 with *len set, 0 when absent, -1 when malformed or repeated. */
static int content_length(http *h, uint64_t *len)
{
    char buf[32];
    int n = header(h, "content-length", buf, sizeof buf);
    if (n == CHAT__HDR_ABSENT)
        return 0;
    return n < 0 || chat__media_parse_u64(buf, len) ? -1 : 1;
}

static void upload_headers(http *h, const upload *up)
{
    add_hdr(h, "upload-offset", "%" PRIu64, up->offset);
    add_hdr(h, "upload-length", "%" PRIu64, up->length);
    add_hdr(h, "cache-control", "no-store");
}

/* The answer to a finished upload, or NULL (out of memory). */
static char *media_json(const upload *up)
{
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "media", up->id) &&
             cJSON_AddNumberToObject(o, "size", (double)up->length) &&
             cJSON_AddStringToObject(o, "mime", up->mime) &&
             cJSON_AddStringToObject(o, "name", up->name);
    char *s = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    char *copy = s ? chat__strdup(s) : NULL;
    cJSON_free(s);
    return copy;
}

/* ---- finishing an upload on the writer thread ---- */

typedef struct finish_job {
    chat__job job;
    http *h;
    upload *up;
    chat_store_media meta;
    char *answer; /* made before the commit: once the media is stored, nothing can fail */
} finish_job;

static int finish_run(chat__job *job, chat__txn *tx)
{
    finish_job *f = (finish_job *)job;
    chat_server *srv = tx->srv;
    /* Publish the bytes first: metadata never names a blob that is not there. */
    int rc = srv->blob->stage_commit(srv->blob_st, f->up->key, f->meta.id);
    if (rc != CHAT_OK)
        return chat__job_fail(job, CHAT_ERROR, "blob", "cannot publish the upload");
    f->meta.created_ms = tx->now_ms;
    rc = tx->ops->media_put(tx->st, &f->meta);
    if (rc != CHAT_OK && rc != CHAT_EEXISTS)
        return chat__job_fail(job, CHAT_EIO, "storage", "cannot record the media");
    if (tx->ops->media_grant(tx->st, f->meta.id, 0, f->up->user) != CHAT_OK)
        return chat__job_fail(job, CHAT_EIO, "storage", "cannot record the media");
    return CHAT_OK;
}

static void finish_done(chat_server *srv, chat__job *job)
{
    finish_job *f = (finish_job *)job;
    http *h = f->h;
    upload *up = f->up;
    if (job->status == CHAT_OK) {
        up->state = UP_DONE;
        up->touched_ms = chat__now_ms(srv);
    }
    if (h->hx) {
        h->nhdr = 0;
        h->close_after = 0; /* the last byte ended the body */
        if (job->status == CHAT_OK) {
            upload_headers(h, up);
            add_hdr(h, "location", "/media/uploads/%s", up->key);
            set_body(h, 201, "application/json", f->answer);
            f->answer = NULL;
        } else {
            set_error(h, 500, job->status, job->reason ? job->reason : "internal",
                      "the upload could not be stored; start it again");
        }
        h->phase = PH_RESPOND;
        TP(h)->http_want_write(h->hx);
    }
    if (job->status != CHAT_OK)
        upload_drop(srv, up, 1);
    http_unref(h);
    chat__free(f->answer);
    chat__free(f);
}

/* The last byte is in: end the hash, then publish and record on the writer thread. */
static void upload_complete(http *h, upload *up)
{
    unsigned char digest[32];
    crypto_generichash_final(up->hash, digest, sizeof digest);
    sodium_bin2hex(up->id, sizeof up->id, digest, sizeof digest);
    up->state = UP_FINISHING;
    up->busy = 0;
    if (h->stage) {
        h->srv->blob->stage_close(h->srv->blob_st, h->stage);
        h->stage = NULL;
    }
    h->phase = PH_WAIT;
    finish_job *f = chat__calloc(1, sizeof *f);
    if (f && !(f->answer = media_json(up))) {
        chat__free(f);
        f = NULL;
    }
    if (!f) {
        upload_drop(h->srv, up, 1);
        h->up = NULL;
        set_error(h, 500, CHAT_ENOMEM, "internal", "out of memory");
        h->phase = PH_RESPOND;
        TP(h)->http_want_write(h->hx);
        return;
    }
    f->job.run = finish_run;
    f->job.done = finish_done;
    f->h = h;
    f->up = up;
    strcpy(f->meta.id, up->id);
    strcpy(f->meta.uploader, up->user);
    strcpy(f->meta.mime, up->mime);
    strcpy(f->meta.name, up->name);
    f->meta.size = up->length;
    h->refs++;
    chat__worker_submit(&h->srv->writer, &f->job);
}

/* Start appending the request body of h at up->offset; the body brings len bytes. */
static int start_append(http *h, upload *up, uint64_t len)
{
    uint64_t staged = 0;
    int rc = h->srv->blob->stage_open(h->srv->blob_st, up->key, 0, &staged, &h->stage);
    if (rc != CHAT_OK || staged != up->offset) {
        /* The staged bytes and the session disagree (lost file): the upload is void. */
        upload_drop(h->srv, up, 1);
        h->close_after = 1;
        return fail_now(h, 500, CHAT_EIO, "storage", "the staged upload was lost");
    }
    h->up = up;
    up->busy = 1;
    up->touched_ms = chat__now_ms(h->srv);
    h->remaining = len;
    h->phase = PH_BODY;
    /* A client that waits for the go-ahead (curl does for large bodies) gets it now that the
     * request is accepted, instead of sending blind after its timeout. */
    char expect[32];
    if (header(h, "expect", expect, sizeof expect) > 0 &&
        strcasecmp(expect, "100-continue") == 0 && TP(h)->http_continue(h->hx))
        return -1;
    return 0;
}

static int on_upload_create(http *h)
{
    chat_server *srv = h->srv;
    char user[CHAT_ID_MAX + 1], buf[1024];
    uint64_t length = 0, body = 0;
    int cl = content_length(h, &body);
    h->close_after = cl != 0 && body != 0;
    if (!authenticate(h, user))
        return respond(h);
    if (cl < 0)
        return fail_now(h, 400, CHAT_EINVAL, "bad_field", "bad Content-Length");
    int n = header(h, "upload-length", buf, sizeof buf);
    if (n == CHAT__HDR_REPEATED)
        return fail_now(h, 400, CHAT_EINVAL, "bad_field", "Upload-Length sent twice");
    if (n <= 0 || chat__media_parse_u64(buf, &length))
        return fail_now(h, 400, CHAT_EINVAL, "missing_field",
                        "Upload-Length (a byte count) is required");
    if ((int64_t)length > chat__limit(srv, CHAT_LIMIT_MEDIA_BYTES) || (int64_t)length < 0)
        return fail_now(h, 413, CHAT_ELIMIT, "too_large", "the upload is over the size limit");
    if (body > length)
        return fail_now(h, 413, CHAT_ELIMIT, "too_large", "the body is over Upload-Length");
    char name[CHAT_MEDIA_STR_MAX + 1] = "", mime[CHAT_MEDIA_STR_MAX + 1] = "";
    n = header(h, "upload-metadata", buf, sizeof buf);
    if (n < 0 || (n > 0 && chat__media_parse_metadata(buf, name, mime)))
        return fail_now(h, 400, CHAT_EINVAL, "bad_field", "bad Upload-Metadata");
    if (!mime[0])
        strcpy(mime, "application/octet-stream");
    if (!chat__media_mime_ok(mime))
        return fail_now(h, 400, CHAT_EINVAL, "bad_field", "bad media type");
    /* Each creation sweeps (a walk of at most `uploads` entries), so idle sessions go. */
    size_t mine = uploads_sweep(srv, 0, user);
    if (srv->uploads.used >= (size_t)chat__limit(srv, CHAT_LIMIT_UPLOADS))
        mine = uploads_sweep(srv, 1, user);
    if (mine >= (size_t)chat__limit(srv, CHAT_LIMIT_UPLOADS_PER_USER)) {
        add_hdr(h, "retry-after", "60");
        return fail_now(h, 429, CHAT_EAGAIN, "rate_limited",
                        "too many unfinished uploads of yours; finish or DELETE some");
    }
    if (srv->uploads.used >= (size_t)chat__limit(srv, CHAT_LIMIT_UPLOADS)) {
        add_hdr(h, "retry-after", "60");
        return fail_now(h, 503, CHAT_EAGAIN, "rate_limited", "too many uploads in progress");
    }

    upload *up = chat__calloc(1, sizeof *up);
    if (!up)
        return fail_now(h, 500, CHAT_ENOMEM, "internal", "out of memory");
    unsigned char rnd[KEY_LEN / 2];
    randombytes_buf(rnd, sizeof rnd);
    sodium_bin2hex(up->key, sizeof up->key, rnd, sizeof rnd);
    strcpy(up->user, user);
    strcpy(up->mime, mime);
    strcpy(up->name, name);
    up->length = length;
    up->touched_ms = chat__now_ms(srv);
    uintptr_t a = (uintptr_t)up->hash_mem;
    up->hash = (crypto_generichash_state *)(void *)(up->hash_mem + ((64 - a % 64) % 64));
    crypto_generichash_init(up->hash, NULL, 0, 32);
    void *stage = NULL;
    uint64_t staged = 0;
    if (srv->blob->stage_open(srv->blob_st, up->key, 1, &staged, &stage) != CHAT_OK) {
        chat__free(up);
        return fail_now(h, 500, CHAT_EIO, "storage", "cannot stage the upload");
    }
    srv->blob->stage_close(srv->blob_st, stage);
    if (chat__strmap_put(&srv->uploads, up->key, up) != CHAT_OK) {
        srv->blob->stage_remove(srv->blob_st, up->key);
        chat__free(up);
        return fail_now(h, 500, CHAT_ENOMEM, "internal", "out of memory");
    }
    add_hdr(h, "location", "/media/uploads/%s", up->key);
    if (length == 0) {
        h->up = up;
        upload_complete(h, up);
        return 0;
    }
    h->created = 1;
    if (body > 0)
        return start_append(h, up, body);
    upload_headers(h, up);
    set_small(h, 201, "{\"upload\":\"%s\",\"offset\":0,\"length\":%" PRIu64 "}\n", up->key,
              length);
    return respond(h);
}

static int key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n != KEY_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= '0' && k[i] <= '9') || (k[i] >= 'a' && k[i] <= 'f')))
            return 0;
    return 1;
}

static int on_upload(http *h, const char *key)
{
    chat_server *srv = h->srv;
    char user[CHAT_ID_MAX + 1], buf[64];
    uint64_t body = 0, offset = 0;
    int method = TP(h)->http_method(h->hx);
    int patch = method == CHAT__HTTP_PATCH;
    int head = method == CHAT__HTTP_HEAD;
    int del = method == CHAT__HTTP_DELETE;
    int cl = content_length(h, &body);
    h->close_after = cl != 0 && body != 0;
    h->head = head;
    if (!patch && !head && !del) {
        add_hdr(h, "allow", "PATCH, HEAD, DELETE");
        return fail_now(h, 405, CHAT_EINVAL, "bad_method", "use PATCH, HEAD or DELETE");
    }
    if (!authenticate(h, user))
        return respond(h);
    upload *up = key_valid(key) ? chat__strmap_get(&srv->uploads, key) : NULL;
    if (up && up->state != UP_FINISHING && !up->busy &&
        chat__now_ms(srv) - up->touched_ms > chat__limit(srv, CHAT_LIMIT_UPLOAD_TTL_MS)) {
        upload_drop(srv, up, up->state != UP_DONE);
        up = NULL;
    }
    if (!up)
        return fail_now(h, 404, CHAT_ENOTFOUND, "not_found", "no such upload");
    if (strcmp(up->user, user) != 0)
        return fail_now(h, 403, CHAT_EPERM, "forbidden", "this upload belongs to someone else");
    if (del) {
        if (up->busy || up->state == UP_FINISHING)
            return fail_now(h, 409, CHAT_EBUSY, "busy", "the upload is in use");
        upload_drop(srv, up, up->state != UP_DONE);
        set_body(h, 204, "", NULL);
        return respond(h);
    }
    upload_headers(h, up);
    if (up->state == UP_DONE) {
        char *json = media_json(up);
        if (!json)
            return fail_now(h, 500, CHAT_ENOMEM, "internal", "out of memory");
        add_hdr(h, "media-id", "%s", up->id);
        set_body(h, head ? 200 : 201, "application/json", json);
        return respond(h);
    }
    if (head) {
        if (up->busy || up->state == UP_FINISHING)
            add_hdr(h, "upload-busy", "1");
        set_body(h, 200, "", NULL);
        return respond(h);
    }
    if (up->busy || up->state == UP_FINISHING)
        return fail_now(h, 409, CHAT_EBUSY, "busy",
                        "another request is appending to this upload; retry shortly");
    int n = header(h, "upload-offset", buf, sizeof buf);
    if (n == CHAT__HDR_REPEATED)
        return fail_now(h, 400, CHAT_EINVAL, "bad_field", "Upload-Offset sent twice");
    if (n <= 0 || chat__media_parse_u64(buf, &offset))
        return fail_now(h, 400, CHAT_EINVAL, "missing_field", "Upload-Offset is required");
    if (offset != up->offset)
        return fail_now(h, 409, CHAT_EINVAL, "bad_offset",
                        "Upload-Offset is not where the upload stands (see Upload-Offset)");
    if (cl == 0) {
        h->close_after = 1;
        return fail_now(h, 411, CHAT_EINVAL, "missing_field", "Content-Length is required");
    }
    if (cl < 0)
        return fail_now(h, 400, CHAT_EINVAL, "bad_field", "bad Content-Length");
    if (body > up->length - up->offset)
        return fail_now(h, 413, CHAT_ELIMIT, "too_large", "the body runs past Upload-Length");
    if (body == 0) {
        set_body(h, 204, "", NULL);
        return respond(h);
    }
    return start_append(h, up, body);
}

static int on_body(http *h, const void *in, size_t len)
{
    if (h->phase != PH_BODY)
        return 0;
    upload *up = h->up;
    size_t n = len > h->remaining ? (size_t)h->remaining : len;
    /* One bounded write per body chunk (at most the transport's read buffer): the loop never
     * waits on the disk for more than that. */
    if (h->srv->blob->stage_write(h->srv->blob_st, h->stage, in, n) != CHAT_OK) {
        release_upload(h);
        upload_drop(h->srv, up, 1);
        h->phase = PH_NONE;
        h->close_after = 1;
        return fail_now(h, 500, CHAT_EIO, "storage", "cannot store the upload; start again");
    }
    crypto_generichash_update(up->hash, in, n);
    up->offset += n;
    up->touched_ms = chat__now_ms(h->srv);
    h->remaining -= n;
    if (up->offset == up->length)
        upload_complete(h, up);
    return 0;
}

static int on_body_done(http *h)
{
    if (h->phase != PH_BODY)
        return 0;
    upload *up = h->up;
    release_upload(h);
    h->phase = PH_NONE;
    h->close_after = 0;
    h->nhdr = 0;
    upload_headers(h, up);
    add_hdr(h, "location", "/media/uploads/%s", up->key);
    set_body(h, h->created ? 201 : 204, "", NULL);
    return respond(h);
}

/* ---- downloads ---- */

static int on_download(http *h, const char *id)
{
    chat_server *srv = h->srv;
    int method = TP(h)->http_method(h->hx);
    h->head = method == CHAT__HTTP_HEAD;
    if (!h->head && method != CHAT__HTTP_GET) {
        h->close_after = 1;
        add_hdr(h, "allow", "GET, HEAD");
        return fail_now(h, 405, CHAT_EINVAL, "bad_method", "use GET or HEAD");
    }
    if (!chat__media_id_valid(id, strlen(id)))
        return fail_now(h, 400, CHAT_EINVAL, "bad_field", "not a media id");
    char q[1024];
    chat__media_url u;
    int rc = TP(h)->http_query(h->hx, q, sizeof q);
    rc = rc < 0 ? CHAT_EAUTH
                : chat__media_verify(&srv->cfg.keys, chat__now_ms(srv), id, strlen(id), q,
                                     (size_t)rc, &u);
    if (rc == CHAT_ETIMEDOUT)
        return fail_now(h, 403, CHAT_EAUTH, "expired", "the URL has expired");
    if (rc != CHAT_OK)
        return fail_now(h, 403, CHAT_EAUTH, "bad_signature", "the URL signature is not valid");
    const char *mime = u.mime;
    uint64_t size = 0;
    rc = srv->blob->open(srv->blob_st, id, &size, &h->blob_h);
    if (rc == CHAT_ENOTFOUND)
        return fail_now(h, 404, CHAT_ENOTFOUND, "not_found", "no such media");
    if (rc != CHAT_OK)
        return fail_now(h, 500, CHAT_EIO, "storage", "cannot read the media");
    int64_t max_age = u.exp_s - chat__now_ms(srv) / 1000;
    add_hdr(h, "etag", "\"%s\"", id);
    add_hdr(h, "cache-control", "public, max-age=%lld, immutable",
            (long long)(max_age > 0 ? max_age : 0));
    add_hdr(h, "accept-ranges", "bytes");
    /* Only media a browser shows inline is served inline; anything else (text/html, SVG,
     * PDF, ...) is a download, so an upload cannot act as a page of this origin (the transport adds a
     * restrictive CSP and nosniff to every response as well). */
    int is_inline = (!strncmp(mime, "image/", 6) || !strncmp(mime, "video/", 6) ||
                     !strncmp(mime, "audio/", 6)) &&
                    !strstr(mime, "svg");
    if (!is_inline)
        add_hdr(h, "content-disposition", "attachment");
    char inm[100];
    int n = header(h, "if-none-match", inm, sizeof inm);
    if (n > 0 && (strstr(inm, id) || strcmp(inm, "*") == 0)) {
        set_body(h, 304, "", NULL);
        h->head = 1;
        h->status = 304;
        int r = write_headers(h, 304, "", 0, 0);
        chat__thttp *hx = h->hx;
        const chat__transport_ops *tp = TP(h);
        http_end(h);
        return r ? -1 : tp->http_complete(hx);
    }
    char range[100];
    uint64_t from = 0, to = size ? size - 1 : 0;
    n = header(h, "range", range, sizeof range);
    int ranged = n > 0 ? chat__media_parse_range(range, size, &from, &to) : 0;
    if (ranged < 0) {
        add_hdr(h, "content-range", "bytes */%" PRIu64, size);
        return fail_now(h, 416, CHAT_EINVAL, "bad_range", "the range is outside the media");
    }
    snprintf(h->ctype, sizeof h->ctype, "%s", mime);
    h->status = ranged ? 206 : 200;
    if (ranged)
        add_hdr(h, "content-range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, from, to, size);
    h->pos = from;
    h->end = size ? to + 1 : 0;
    h->phase = PH_DOWNLOAD;
    TP(h)->http_want_write(h->hx);
    return 0;
}

/* One step of a download: the headers, then one chunk per writeable callback. */
static int download_step(http *h)
{
    chat__thttp *hx = h->hx;
    const chat__transport_ops *tp = TP(h);
    if (!h->headers_sent) {
        h->headers_sent = 1;
        if (write_headers(h, h->status, h->ctype, h->end - h->pos, 1))
            return -1;
        if (h->head || h->pos == h->end) {
            http_end(h);
            return tp->http_complete(hx);
        }
        tp->http_want_write(hx);
        return 0;
    }
    if (!h->buf && !(h->buf = chat__malloc(CHAT__TRANSPORT_PRE + CHUNK)))
        return -1;
    /* A few chunks per callback while the socket takes them (each one bounded read and one
     * write): one chunk per poll cycle caps a download near 40 MB/s. */
    int last = 0;
    for (int i = 0; i < CHUNKS_PER_WRITEABLE && !last; i++) {
        if (i > 0 && tp->http_choked(hx))
            break;
        uint64_t want = h->end - h->pos;
        size_t n = want > CHUNK ? CHUNK : (size_t)want, got = 0;
        if (h->srv->blob->read(h->srv->blob_st, h->blob_h, h->pos,
                               h->buf + CHAT__TRANSPORT_PRE, n, &got) != CHAT_OK ||
            got == 0)
            return -1; /* the length is promised: a short object can only end the connection */
        h->pos += got;
        last = h->pos == h->end;
        if (tp->http_write(hx, h->buf + CHAT__TRANSPORT_PRE, got, last))
            return -1;
    }
    /* The transport's inactivity timeout runs from the request: a download that moves is
     * not idle, however long it takes. */
    tp->http_progress(hx);
    if (!last) {
        tp->http_want_write(hx);
        return 0;
    }
    http_end(h);
    return tp->http_complete(hx);
}

/* ---- the transport side ---- */

static int on_http(chat_server *srv, chat__thttp *hx, void **slot, const char *uri)
{
    http *h = chat__calloc(1, sizeof *h);
    if (!h)
        return -1;
    h->srv = srv;
    h->hx = hx;
    h->slot = slot;
    h->refs = 1;
    *slot = h;
    int method = TP(h)->http_method(hx);
    size_t plen = strlen(CHAT__MEDIA_PREFIX);
    if (strncmp(uri, CHAT__MEDIA_PREFIX, plen) != 0) {
        h->close_after = method == CHAT__HTTP_POST || method == CHAT__HTTP_PATCH ||
                         method == CHAT__HTTP_PUT;
        return fail_now(h, 404, CHAT_ENOTFOUND, "not_found", "only WebSocket and /media/ here");
    }
    if (!chat__media_enabled(srv)) {
        h->close_after = 1;
        return fail_now(h, 503, CHAT_ENOTSUP, "no_media", "this server keeps no media");
    }
    const char *rest = uri + plen;
    if (strcmp(rest, "uploads") == 0) {
        if (method != CHAT__HTTP_POST) {
            h->close_after = 1;
            add_hdr(h, "allow", "POST");
            return fail_now(h, 405, CHAT_EINVAL, "bad_method", "use POST to create an upload");
        }
        return on_upload_create(h);
    }
    if (strncmp(rest, "uploads/", 8) == 0)
        return on_upload(h, rest + 8);
    return on_download(h, rest);
}

int chat__media_http_event(chat_server *srv, chat__thttp *hx, int event, void **slot,
                           const void *in, size_t len)
{
    http *h = *slot;
    switch (event) {
    case CHAT__HTTP_REQUEST:
        if (h) /* a transaction left unanswered (keep-alive misuse): drop it */
            http_end(h);
        return on_http(srv, hx, slot, in ? (const char *)in : "/");
    case CHAT__HTTP_BODY:
        return h ? on_body(h, in, len) : 0;
    case CHAT__HTTP_BODY_DONE:
        return h ? on_body_done(h) : 0;
    case CHAT__HTTP_WRITABLE:
        if (!h)
            return 0;
        if (h->phase == PH_RESPOND)
            return respond(h);
        if (h->phase == PH_DOWNLOAD)
            return download_step(h);
        return 0;
    case CHAT__HTTP_CLOSED:
        if (h)
            http_end(h); /* a pending job keeps its reference and answers no one */
        return 0;
    default:
        return 0;
    }
}
