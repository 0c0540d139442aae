/*
 * The push service: one lane per configured provider (APNs, FCM, a webhook), each with a
 * persistent queue (queue.h) and a thread of its own.
 *
 * notify() and notify_device() run on the server's loop thread: they only serialize the event
 * and append it to the lane's inbox under a mutex. The lane's thread moves the inbox into the
 * queue (one transaction), takes what is due (up to a batch), sends it through the provider
 * concurrently over one connection, and settles each answer: delivered, retried later, dropped
 * with its token, or failed. A provider that is down or throttling (no connection, 5xx, 429)
 * holds the whole lane back: exponential backoff with jitter, or its Retry-After, so an outage
 * costs one probe per backoff step, not one request per notification; the notifications wait in
 * the queue and go when it answers again. A clean stop first delivers what it can within the
 * flush time, then leaves the rest in the queue file for the next start.
 */
#include "chat/sys/push.h"

#include "auth/keyring.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/monowait.h"
#include "core/thread.h"
#include "push/provider.h"
#include "push/queue.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define N_LIMITS 10
#define STATS_EVERY_MS 60000

static const struct {
    const char *name;
    int64_t def, min, max;
} limit_info[N_LIMITS] = {
    [CHAT_PUSH_LIMIT_QUEUE] = {"queue", 100000, 1, 100000000},
    [CHAT_PUSH_LIMIT_COALESCE_MS] = {"coalesce_ms", 1000, 0, 3600000},
    [CHAT_PUSH_LIMIT_DEDUPE_MS] = {"dedupe_ms", 600000, 0, 7 * 86400000LL},
    [CHAT_PUSH_LIMIT_TTL_MS] = {"ttl_ms", 86400000, 1000, 28 * 86400000LL},
    [CHAT_PUSH_LIMIT_BACKOFF_MS] = {"backoff_ms", 1000, 10, 3600000},
    [CHAT_PUSH_LIMIT_BACKOFF_MAX_MS] = {"backoff_max_ms", 300000, 10, 86400000},
    [CHAT_PUSH_LIMIT_TIMEOUT_MS] = {"timeout_ms", 10000, 100, 600000},
    [CHAT_PUSH_LIMIT_FLUSH_MS] = {"flush_ms", 5000, 0, 600000},
    [CHAT_PUSH_LIMIT_BATCH] = {"batch", 64, 1, 1000},
};

struct chat_push_config {
    char *queue_dir, *ca_file;
    char *apns_key_file, *apns_key_id, *apns_team_id, *apns_topic;
    char *apns_url, *apns_sandbox_url;
    char *fcm_file, *fcm_url, *fcm_token_uri;
    char *webhook_url;
    unsigned char *secret;
    size_t secret_len;
    int64_t limits[N_LIMITS];
};

/* ---- config ---- */

int chat_push_config_new(chat_push_config **out)
{
    if (!out)
        return chat__error_set(CHAT_EINVAL, 0, "chat_push_config_new: out is NULL");
    chat_push_config *c = chat__calloc(1, sizeof *c);
    if (!c)
        return chat__error_set(CHAT_ENOMEM, 0, "push config: out of memory");
    for (int i = 1; i < N_LIMITS; i++)
        c->limits[i] = limit_info[i].def;
    *out = c;
    return CHAT_OK;
}

static void free_secret(chat_push_config *c)
{
    if (c->secret) {
        sodium_memzero(c->secret, c->secret_len);
        chat__free(c->secret);
    }
    c->secret = NULL;
    c->secret_len = 0;
}

void chat_push_config_free(chat_push_config *c)
{
    if (!c)
        return;
    char **strs[] = {&c->queue_dir, &c->ca_file, &c->apns_key_file, &c->apns_key_id,
                     &c->apns_team_id, &c->apns_topic, &c->apns_url, &c->apns_sandbox_url,
                     &c->fcm_file, &c->fcm_url, &c->fcm_token_uri, &c->webhook_url};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        chat__free(*strs[i]);
    free_secret(c);
    chat__free(c);
}

/* Replace *dst with a copy of src (NULL clears it). */
static int set_str(char **dst, const char *src)
{
    char *copy = NULL;
    if (src && !(copy = chat__strdup(src)))
        return chat__error_set(CHAT_ENOMEM, 0, "push config: out of memory");
    chat__free(*dst);
    *dst = copy;
    return CHAT_OK;
}

static int need(const chat_push_config *c, const char *what)
{
    return c ? CHAT_OK : chat__error_set(CHAT_EINVAL, 0, "%s: config is NULL", what);
}

int chat_push_config_set_queue_dir(chat_push_config *c, const char *dir)
{
    int rc = need(c, "chat_push_config_set_queue_dir");
    return rc ? rc : set_str(&c->queue_dir, dir);
}

int chat_push_config_set_ca_file(chat_push_config *c, const char *path)
{
    int rc = need(c, "chat_push_config_set_ca_file");
    return rc ? rc : set_str(&c->ca_file, path);
}

int chat_push_config_set_apns(chat_push_config *c, const char *key_file, const char *key_id,
                              const char *team_id, const char *topic)
{
    int rc = need(c, "chat_push_config_set_apns");
    if (rc)
        return rc;
    if (!key_file || !key_id || !team_id || !key_id[0] || !team_id[0])
        return chat__error_set(CHAT_EINVAL, 0, "APNs: the key file, key id and team id are "
                                               "required");
    if ((rc = set_str(&c->apns_key_file, key_file)) || (rc = set_str(&c->apns_key_id, key_id)) ||
        (rc = set_str(&c->apns_team_id, team_id)) || (rc = set_str(&c->apns_topic, topic)))
        return rc;
    return CHAT_OK;
}

/* http(s)://host[:port][/path]: a host, no user info (credentials in a URL end up in logs),
 * no space or control character. */
static int check_url(const char *url, const char *what)
{
    size_t scheme = !url ? 0 : strncasecmp(url, "https://", 8) == 0 ? 8
                             : strncasecmp(url, "http://", 7) == 0  ? 7
                                                                     : 0;
    if (!scheme)
        return chat__error_set(CHAT_EINVAL, 0, "%s must be an https:// (or http://) URL", what);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return chat__error_set(CHAT_EINVAL, 0, "%s has a space or control character", what);
    size_t auth = strcspn(url + scheme, "/?#");
    if (auth == 0 || memchr(url + scheme, '@', auth) || url[scheme] == ':')
        return chat__error_set(CHAT_EINVAL, 0, "%s needs a host (and no user info)", what);
    return CHAT_OK;
}

int chat_push_config_set_apns_endpoints(chat_push_config *c, const char *production_url,
                                        const char *sandbox_url)
{
    int rc = need(c, "chat_push_config_set_apns_endpoints");
    if (!rc && production_url)
        rc = check_url(production_url, "the APNs endpoint");
    if (!rc && sandbox_url)
        rc = check_url(sandbox_url, "the APNs sandbox endpoint");
    if (!rc)
        rc = set_str(&c->apns_url, production_url);
    if (!rc)
        rc = set_str(&c->apns_sandbox_url, sandbox_url);
    return rc;
}

int chat_push_config_set_fcm(chat_push_config *c, const char *service_account_file)
{
    int rc = need(c, "chat_push_config_set_fcm");
    if (rc)
        return rc;
    if (!service_account_file)
        return chat__error_set(CHAT_EINVAL, 0, "FCM: the service account file is required");
    return set_str(&c->fcm_file, service_account_file);
}

int chat_push_config_set_fcm_endpoints(chat_push_config *c, const char *send_url,
                                       const char *token_uri)
{
    int rc = need(c, "chat_push_config_set_fcm_endpoints");
    if (!rc && send_url)
        rc = check_url(send_url, "the FCM endpoint");
    if (!rc && token_uri)
        rc = check_url(token_uri, "the FCM token URI");
    if (!rc)
        rc = set_str(&c->fcm_url, send_url);
    if (!rc)
        rc = set_str(&c->fcm_token_uri, token_uri);
    return rc;
}

int chat_push_config_set_webhook(chat_push_config *c, const char *url, const void *secret,
                                 size_t secret_len)
{
    int rc = need(c, "chat_push_config_set_webhook");
    if (!rc)
        rc = check_url(url, "the webhook URL");
    if (!rc && secret && secret_len < 16)
        rc = chat__error_set(CHAT_EINVAL, 0, "the webhook secret must have at least 16 bytes");
    if (!rc && !secret && secret_len)
        rc = chat__error_set(CHAT_EINVAL, 0, "webhook secret: NULL with a length");
    if (rc)
        return rc;
    unsigned char *copy = NULL;
    if (secret && !(copy = chat__malloc(secret_len)))
        return chat__error_set(CHAT_ENOMEM, 0, "push config: out of memory");
    if ((rc = set_str(&c->webhook_url, url))) {
        chat__free(copy);
        return rc;
    }
    free_secret(c);
    if (copy)
        memcpy(copy, secret, secret_len);
    c->secret = copy;
    c->secret_len = copy ? secret_len : 0;
    return CHAT_OK;
}

int chat_push_config_set_limit(chat_push_config *c, int limit, int64_t value)
{
    int rc = need(c, "chat_push_config_set_limit");
    if (rc)
        return rc;
    if (limit < 1 || limit >= N_LIMITS || !limit_info[limit].name)
        return chat__error_set(CHAT_EINVAL, 0, "unknown push limit %d", limit);
    if (value < limit_info[limit].min || value > limit_info[limit].max)
        return chat__error_set(CHAT_EINVAL, 0, "push limit %s must be %" PRId64 "..%" PRId64,
                               limit_info[limit].name, limit_info[limit].min,
                               limit_info[limit].max);
    c->limits[limit] = value;
    return CHAT_OK;
}

int chat_push_limit_by_name(const char *name)
{
    for (int i = 1; name && i < N_LIMITS; i++)
        if (limit_info[i].name && strcmp(limit_info[i].name, name) == 0)
            return i;
    return chat__error_set(CHAT_EINVAL, 0, "unknown push limit '%s'", name ? name : "(null)");
}

/* ---- lanes ---- */

typedef struct inbox_item {
    struct inbox_item *next;
    uint64_t seq;
    int64_t ms;
    char *key, *target, *ev; /* one allocation each */
} inbox_item;

typedef struct lane_stats {
    uint64_t queued, sent, failed, retried, dropped, coalesced, deduped, invalid_tokens;
    int64_t pending;
} lane_stats;

typedef struct service service;

typedef struct lane {
    service *svc;
    const char *name;
    int platform; /* the device lanes: CHAT_PUSH_APNS / CHAT_PUSH_FCM; 0: users (webhook) */
    const chat__push_provider *prov;
    void *pst;
    chat__pq *q;
    chat__http *http;
    pthread_t thread;
    int started;

    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    /* guarded by mu */
    inbox_item *in_head, *in_tail;
    int64_t n_in;
    int stop;
    int64_t flush_until; /* a flush waits for the lane to deliver until then; 0: none */
    int is_idle;         /* nothing due before flush_until (or the lane is held back past it) */
    lane_stats st;

    /* the lane's thread only */
    int64_t held_until;  /* the provider is backed off until then (ms since the epoch) */
    int fails;           /* consecutive batches the provider failed */
    int reauthed;        /* the last batch renewed the credentials for a REAUTH answer */
    chat__pq_item *items; /* a batch's worth */
    int64_t next_stats_ms, logged_sent;
} lane;

struct service {
    int64_t limits[N_LIMITS];
    pthread_mutex_t sink_mu; /* the sink may come (attach) while a lane already runs */
    chat_push_sink sink;
    lane *lanes[3]; /* apns, fcm, webhook: NULL when not configured */
    chat__push_env env;
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The engine's sink as it stands (zeroed before attach). */
static chat_push_sink sink_of(service *s)
{
    pthread_mutex_lock(&s->sink_mu);
    chat_push_sink k = s->sink;
    pthread_mutex_unlock(&s->sink_mu);
    return k;
}

static void svc_log(void *ud, int level, const char *fmt, ...)
{
    chat_push_sink k = sink_of(ud);
    if (!k.log)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    k.log(level, buf, k.user_data);
}

#define LOG(l, level, ...) svc_log((l)->svc, level, __VA_ARGS__)

static void inbox_free(inbox_item *it)
{
    while (it) {
        inbox_item *next = it->next;
        chat__free(it->key);
        chat__free(it->target);
        chat__free(it->ev);
        chat__free(it);
        it = next;
    }
}

/* Move the inbox into the queue, in one transaction. */
static void absorb(lane *l, inbox_item *in)
{
    if (!in)
        return;
    int64_t now = wall_ms();
    lane_stats d = {0};
    int tx = chat__pq_begin(l->q) == CHAT_OK;
    for (inbox_item *it = in; it; it = it->next) {
        int rc = chat__pq_add(l->q, it->key, it->target, it->ev, it->seq, now);
        if (rc == CHAT__PQ_QUEUED)
            d.queued++;
        else if (rc == CHAT__PQ_COALESCED)
            d.coalesced++;
        else if (rc == CHAT__PQ_DEDUPED)
            d.deduped++;
        else {
            d.dropped++;
            LOG(l, CHAT_LOG_WARN, "push %s: notification dropped: %s", l->name,
                rc == CHAT__PQ_FULL ? "the queue is full" : chat_error_last()->message);
        }
    }
    if (tx && chat__pq_commit(l->q) != CHAT_OK)
        LOG(l, CHAT_LOG_ERROR, "push %s: queue commit failed: %s", l->name,
            chat_error_last()->message);
    int64_t pending = chat__pq_count(l->q);
    pthread_mutex_lock(&l->mu);
    l->st.queued += d.queued;
    l->st.coalesced += d.coalesced;
    l->st.deduped += d.deduped;
    l->st.dropped += d.dropped;
    l->st.pending = pending;
    pthread_mutex_unlock(&l->mu);
    inbox_free(in);
}

static int64_t backoff_ms(const lane *l)
{
    int64_t base = l->svc->limits[CHAT_PUSH_LIMIT_BACKOFF_MS];
    int64_t max = l->svc->limits[CHAT_PUSH_LIMIT_BACKOFF_MAX_MS];
    int64_t d = base;
    for (int i = 1; i < l->fails && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    /* Full jitter over the upper half: many servers recovering together do not retry in step. */
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 + 1));
}

typedef struct slot {
    chat__http_req req;
    chat__push_out out;
    const char *hdrs[9];
    int ready;
} slot;

static void slot_clear(slot *s)
{
    chat__free(s->out.url);
    chat__free(s->out.body);
    for (int i = 0; i < 8; i++)
        chat__free(s->out.headers[i]);
    memset(&s->out, 0, sizeof s->out);
}

/* The device a queued event is for, for logs: "user/device", never the token. */
static void who(const cJSON *ev, char *buf, size_t size)
{
    const char *dev = chat__push_str(ev, "device");
    snprintf(buf, size, "%s%s%s", chat__push_str(ev, "user"), dev[0] ? "/" : "", dev);
}

static void token_invalid(lane *l, const chat__pq_item *it, const cJSON *ev)
{
    int64_t n = 0;
    chat__pq_drop_target(l->q, it->target, &n);
    char w[160];
    who(ev, w, sizeof w);
    LOG(l, CHAT_LOG_INFO, "push %s: the token of %s is invalid: dropped with %" PRId64
        " more notification%s", l->name, w, n, n == 1 ? "" : "s");
    pthread_mutex_lock(&l->mu);
    l->st.invalid_tokens++;
    l->st.dropped += (uint64_t)n;
    pthread_mutex_unlock(&l->mu);
    chat_push_sink k = sink_of(l->svc);
    if (l->platform && k.token_invalid)
        k.token_invalid(l->platform, it->target, k.user_data);
}

/* Turn the due items into requests (slots[i].ready), dropping the expired and the unusable. */
static size_t prepare_all(lane *l, chat__pq_item *items, size_t n, cJSON **evs, slot *slots,
                          int refreshed, int64_t now, lane_stats *d)
{
    int64_t ttl = l->svc->limits[CHAT_PUSH_LIMIT_TTL_MS];
    size_t live = 0;
    for (size_t i = 0; i < n; i++) {
        chat__pq_item *it = &items[i];
        evs[i] = cJSON_Parse(it->ev);
        if (it->created_ms + ttl <= now || !evs[i]) {
            chat__pq_drop(l->q, it->id);
            d->dropped++;
            LOG(l, CHAT_LOG_WARN, "push %s: notification %s, dropped", l->name,
                evs[i] ? "expired before it could be delivered" : "unreadable");
            cJSON_Delete(evs[i]);
            evs[i] = NULL;
            continue;
        }
        if (!refreshed)
            continue;
        slot *s = &slots[i];
        if (l->prov->prepare(l->pst, evs[i], it->ev, it->count, it->created_ms, &s->out, now) !=
            CHAT_OK) {
            chat__pq_drop(l->q, it->id);
            d->failed++;
            LOG(l, CHAT_LOG_WARN, "push %s: cannot make a request: %s", l->name,
                chat_error_last()->message);
            slot_clear(s);
            continue;
        }
        for (int h = 0; h < 8 && s->out.headers[h]; h++)
            s->hdrs[h] = s->out.headers[h];
        s->req.url = s->out.url;
        s->req.headers = s->hdrs;
        s->req.body = s->out.body;
        s->req.body_len = strlen(s->out.body);
        s->req.content_type = s->out.content_type;
        s->ready = 1;
        live++;
    }
    return live;
}

/* Send items[0..n) together and settle each answer. */
static void run_batch(lane *l, chat__pq_item *items, size_t n)
{
    int64_t now = wall_ms();
    slot *slots = chat__calloc(n, sizeof *slots);
    cJSON **evs = chat__calloc(n, sizeof *evs);
    chat__http_req *reqs = chat__calloc(n, sizeof *reqs);
    if (!slots || !evs || !reqs) {
        chat__free(slots);
        chat__free(evs);
        chat__free(reqs);
        l->held_until = now + backoff_ms(l); /* out of memory: try again later */
        return;
    }
    lane_stats d = {0};
    int refreshed = l->prov->refresh(l->pst, l->http, now) == CHAT_OK;
    chat__pq_begin(l->q); /* failing costs only the grouping of the writes into one commit */
    size_t live = prepare_all(l, items, n, evs, slots, refreshed, now, &d);
    chat__pq_commit(l->q);

    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (slots[i].ready)
            reqs[k++] = slots[i].req;
    int aborted = live && chat__http_run(l->http, reqs, live) == CHAT_ECLOSED;

    int retry = !refreshed, reauth = 0;
    int64_t retry_after = -1;
    now = wall_ms();
    k = 0;
    chat__pq_begin(l->q);
    for (size_t i = 0; i < n; i++) {
        chat__pq_item *it = &items[i];
        if (!slots[i].ready) {
            if (!refreshed && evs[i]) { /* the credentials could not be had: all wait */
                chat__pq_retry(l->q, it, now);
                d.retried++;
            }
            continue;
        }
        chat__http_req *r = &reqs[k++];
        if (aborted && r->error != CHAT_OK)
            continue; /* stopping: it stays queued as it was */
        int outcome = l->prov->classify(l->pst, r);
        char w[160];
        who(evs[i], w, sizeof w);
        if (outcome == CHAT__PUSH_SENT) {
            chat__pq_done(l->q, it, now);
            d.sent++;
            LOG(l, CHAT_LOG_DEBUG, "push %s: sent to %s (conv %" PRId64 ", seq %" PRIu64
                ", %" PRId64 " event%s)", l->name, w, chat__push_int(evs[i], "conv"), it->seq,
                it->count, it->count == 1 ? "" : "s");
        } else if (outcome == CHAT__PUSH_TOKEN) {
            chat__pq_drop(l->q, it->id);
            token_invalid(l, it, evs[i]);
        } else if (outcome == CHAT__PUSH_FAILED) {
            chat__pq_drop(l->q, it->id);
            d.failed++;
            LOG(l, CHAT_LOG_WARN, "push %s: refused for %s: HTTP %d %.200s", l->name, w,
                r->status, r->resp);
        } else {
            /* RETRY, or REAUTH: again at once with new credentials, unless new ones were
             * refused just before too (a clock far off, a revoked key): then it backs off. */
            if (outcome == CHAT__PUSH_REAUTH && !l->reauthed)
                reauth = 1;
            else
                retry = 1;
            if (r->retry_after_ms > retry_after)
                retry_after = r->retry_after_ms;
            chat__pq_retry(l->q, it, now);
            d.retried++;
            LOG(l, CHAT_LOG_DEBUG, "push %s: retry for %s: %s %d %.120s", l->name, w,
                r->error == CHAT_OK ? "HTTP" : chat_error_name(r->error), r->status,
                r->error == CHAT_OK ? r->resp : r->detail);
        }
    }
    l->reauthed = reauth;
    if (reauth)
        l->prov->expire(l->pst);
    if (retry) {
        /* The whole lane waits: the provider's Retry-After, or the backoff. */
        l->fails++;
        int64_t delay = retry_after >= 0 ? retry_after : backoff_ms(l);
        l->held_until = now + delay;
        if (l->fails == 1 || l->fails % 10 == 0)
            LOG(l, CHAT_LOG_WARN, "push %s: the provider is unavailable (%d failed attempt%s), "
                "retrying in %" PRId64 " ms", l->name, l->fails, l->fails == 1 ? "" : "s", delay);
    } else if (d.sent) {
        if (l->fails)
            LOG(l, CHAT_LOG_INFO, "push %s: the provider answers again", l->name);
        l->fails = 0;
    }
    chat__pq_commit(l->q);
    int64_t pending = chat__pq_count(l->q);
    pthread_mutex_lock(&l->mu);
    l->st.sent += d.sent;
    l->st.failed += d.failed;
    l->st.retried += d.retried;
    l->st.dropped += d.dropped;
    l->st.pending = pending;
    pthread_mutex_unlock(&l->mu);
    for (size_t i = 0; i < n; i++) {
        cJSON_Delete(evs[i]);
        slot_clear(&slots[i]);
    }
    chat__free(reqs);
    chat__free(evs);
    chat__free(slots);
}

static void log_stats(lane *l, int level)
{
    pthread_mutex_lock(&l->mu);
    lane_stats s = l->st;
    pthread_mutex_unlock(&l->mu);
    LOG(l, level, "push %s: %" PRIu64 " sent, %" PRIu64 " failed, %" PRIu64 " retried, %" PRIu64
        " dropped, %" PRIu64 " coalesced, %" PRIu64 " invalid tokens, %" PRId64 " pending",
        l->name, s.sent, s.failed, s.retried, s.dropped, s.coalesced, s.invalid_tokens,
        s.pending);
    l->logged_sent = (int64_t)s.sent;
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    char name[16];
    snprintf(name, sizeof name, "chat-%s", l->name);
    chat__thread_name(name);
    size_t batch = (size_t)l->svc->limits[CHAT_PUSH_LIMIT_BATCH];
    chat__pq_item *items = l->items;
    int64_t next_due = chat__pq_next_due(l->q);
    l->next_stats_ms = wall_ms() + STATS_EVERY_MS;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        for (;;) {
            int64_t now = wall_ms();
            int64_t horizon = l->flush_until > now ? l->flush_until : now;
            int64_t wake = next_due > l->held_until ? next_due : l->held_until;
            if (l->in_head || l->stop || wake <= horizon)
                break;
            if (l->flush_until && !l->is_idle) {
                l->is_idle = 1; /* nothing to deliver before the flush ends */
                pthread_cond_broadcast(&l->idle);
            }
            if (now >= l->next_stats_ms)
                break;
            int64_t wait = wake - now;
            if (wait > l->next_stats_ms - now)
                wait = l->next_stats_ms - now;
            struct timespec until = chat__mono_deadline((int)(wait > 60000 ? 60000 : wait));
            pthread_cond_timedwait(&l->wake, &l->mu, &until);
        }
        inbox_item *in = l->in_head;
        l->in_head = l->in_tail = NULL;
        l->n_in = 0;
        int stop = l->stop;
        int64_t horizon = l->flush_until;
        pthread_mutex_unlock(&l->mu);

        absorb(l, in);
        if (stop)
            break;
        int64_t now = wall_ms();
        if (now >= l->next_stats_ms) {
            if (l->st.sent != (uint64_t)l->logged_sent)
                log_stats(l, CHAT_LOG_INFO);
            chat__pq_prune(l->q, now);
            l->next_stats_ms = now + STATS_EVERY_MS;
        }
        if (horizon < now)
            horizon = now;
        size_t n = 0;
        if (l->held_until <= now) {
            if (chat__pq_take(l->q, horizon, items, batch, &n) != CHAT_OK) {
                /* the queue cannot be read now: wait instead of spinning on it */
                LOG(l, CHAT_LOG_ERROR, "push %s: %s", l->name, chat_error_last()->message);
                l->fails++;
                l->held_until = now + backoff_ms(l);
            } else if (n) {
                run_batch(l, items, n);
                for (size_t i = 0; i < n; i++)
                    chat__pq_item_clear(&items[i]);
            }
        }
        next_due = chat__pq_next_due(l->q);
    }
    /* Stopping: the inbox went into the queue above; what is queued stays for the next start
     * (in memory: lost, and said so). */
    int64_t left = chat__pq_count(l->q);
    pthread_mutex_lock(&l->mu);
    l->st.pending = left;
    pthread_mutex_unlock(&l->mu);
    log_stats(l, CHAT_LOG_INFO);
    return NULL;
}

static void lane_stop(lane *l)
{
    if (!l)
        return;
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->wake);
        pthread_mutex_unlock(&l->mu);
        chat__http_abort(l->http);
        pthread_join(l->thread, NULL);
        l->started = 0;
    }
}

static void lane_free(lane *l)
{
    if (!l)
        return;
    lane_stop(l);
    inbox_free(l->in_head);
    if (l->prov)
        l->prov->free(l->pst);
    chat__http_free(l->http);
    chat__pq_close(l->q);
    chat__free(l->items);
    pthread_cond_destroy(&l->wake);
    pthread_cond_destroy(&l->idle);
    pthread_mutex_destroy(&l->mu);
    chat__free(l);
}

static int lane_start(lane *l)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old); /* the host's signals stay on its threads */
    int rc = chat__thread_start(&l->thread, lane_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return chat__error_set(CHAT_ERROR, rc, "push %s: cannot start its thread", l->name);
    l->started = 1;
    return CHAT_OK;
}

static int lane_new(lane **out, service *s, const chat_push_config *c, const char *name,
                    int platform)
{
    lane *l = chat__calloc(1, sizeof *l);
    if (!l)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    l->svc = s;
    l->name = name;
    l->platform = platform;
    pthread_mutex_init(&l->mu, NULL);
    chat__cond_init_mono(&l->wake);
    chat__cond_init_mono(&l->idle);
    chat__pq_limits lim = {s->limits[CHAT_PUSH_LIMIT_QUEUE], s->limits[CHAT_PUSH_LIMIT_COALESCE_MS],
                           s->limits[CHAT_PUSH_LIMIT_DEDUPE_MS]};
    char path[4096];
    if (c->queue_dir &&
        (size_t)snprintf(path, sizeof path, "%s/push-%s.db", c->queue_dir, name) >= sizeof path) {
        lane_free(l);
        return chat__error_set(CHAT_EINVAL, 0, "push: queue directory path too long");
    }
    chat__http_opts ho = {c->ca_file, (int)s->limits[CHAT_PUSH_LIMIT_TIMEOUT_MS]};
    int rc = chat__pq_open(&l->q, c->queue_dir ? path : NULL, &lim);
    if (rc == CHAT_OK)
        rc = chat__http_new(&l->http, &ho);
    if (rc == CHAT_OK &&
        !(l->items = chat__calloc((size_t)s->limits[CHAT_PUSH_LIMIT_BATCH], sizeof *l->items)))
        rc = chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    if (rc != CHAT_OK) {
        lane_free(l);
        return rc;
    }
    *out = l;
    return CHAT_OK;
}

/* Queue one event on l. [loop thread: never blocks but for the mutex] */
static int lane_push(lane *l, char *key, char *target, char *ev, uint64_t seq)
{
    inbox_item *it = chat__malloc(sizeof *it);
    if (!it || !key || !target || !ev) {
        chat__free(it);
        chat__free(key);
        chat__free(target);
        chat__free(ev);
        pthread_mutex_lock(&l->mu);
        l->st.dropped++;
        pthread_mutex_unlock(&l->mu);
        return chat__error_set(CHAT_ENOMEM, 0, "push %s: out of memory", l->name);
    }
    it->next = NULL;
    it->seq = seq;
    it->key = key;
    it->target = target;
    it->ev = ev;
    pthread_mutex_lock(&l->mu);
    int full = l->n_in >= l->svc->limits[CHAT_PUSH_LIMIT_QUEUE] || l->stop;
    if (!full) {
        if (l->in_tail)
            l->in_tail->next = it;
        else
            l->in_head = it;
        l->in_tail = it;
        l->n_in++;
        if (l->n_in == 1)
            pthread_cond_signal(&l->wake);
    } else {
        l->st.dropped++;
    }
    pthread_mutex_unlock(&l->mu);
    if (full) {
        it->next = NULL;
        inbox_free(it);
        return chat__error_set(CHAT_EAGAIN, 0, "push %s: too many notifications waiting, one "
                                               "dropped", l->name);
    }
    return CHAT_OK;
}

/* ---- events as JSON ---- */

static int add_raw_int(cJSON *o, const char *key, long long v, int is_unsigned)
{
    char buf[24];
    if (is_unsigned)
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    else
        snprintf(buf, sizeof buf, "%lld", v);
    /* 64-bit ids and counters go out as integer literals: a double would round them. */
    return cJSON_AddRawToObject(o, key, buf) != NULL;
}

/* The event as the webhook gets it (and the device lanes store, with the device added). */
static cJSON *event_json(const chat_push_event *ev)
{
    const char *conv_kind = ev->conv_kind == CHAT_CONV_DIRECT ? "direct" : "group";
    const char *kind = ev->msg_kind == CHAT_MSG_TEXT    ? "text"
                       : ev->msg_kind == CHAT_MSG_MEDIA ? "media"
                                                        : "event";
    cJSON *o = cJSON_CreateObject();
    int ok = o && cJSON_AddStringToObject(o, "user", ev->user) &&
             add_raw_int(o, "conv", ev->conv, 0) &&
             cJSON_AddStringToObject(o, "conv_kind", conv_kind) &&
             cJSON_AddStringToObject(o, "title", ev->title ? ev->title : "") &&
             add_raw_int(o, "seq", (long long)ev->seq, 1) &&
             cJSON_AddStringToObject(o, "sender", ev->sender) &&
             cJSON_AddStringToObject(o, "kind", kind) &&
             (!ev->preview || cJSON_AddStringToObject(o, "preview", ev->preview)) &&
             add_raw_int(o, "unread", (long long)ev->unread, 1) &&
             add_raw_int(o, "ts", ev->ts_ms, 0);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static char *print(cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    char *copy = text ? chat__strdup(text) : NULL;
    cJSON_free(text);
    return copy;
}

/* ---- the notifier ---- */

static int svc_notify(void *state, const chat_push_event *ev)
{
    service *s = state;
    if (!s || !ev || !ev->user || !ev->sender)
        return chat__error_set(CHAT_EINVAL, 0, "push notify: event, user and sender are "
                                               "required");
    lane *l = s->lanes[2];
    if (!l)
        return CHAT_OK; /* no webhook: user events have nowhere to go */
    return lane_push(l, chat__push_fmt("%s\n%" PRId64, ev->user, ev->conv),
                     chat__strdup(ev->user), print(event_json(ev)), ev->seq);
}

static int svc_notify_device(void *state, const chat_push_event *ev,
                             const chat_store_push_reg *dev)
{
    service *s = state;
    if (!s || !ev || !ev->user || !ev->sender || !dev)
        return chat__error_set(CHAT_EINVAL, 0, "push notify_device: event and device are "
                                               "required");
    lane *l = dev->platform == CHAT_PUSH_APNS  ? s->lanes[0]
              : dev->platform == CHAT_PUSH_FCM ? s->lanes[1]
                                               : NULL;
    if (!l)
        return CHAT_OK; /* a platform this server has no credentials for */
    cJSON *o = event_json(ev);
    if (o && (!cJSON_AddStringToObject(o, "device", dev->device) ||
              !cJSON_AddStringToObject(o, "token", dev->token) ||
              !cJSON_AddStringToObject(o, "topic", dev->topic) ||
              !cJSON_AddBoolToObject(o, "sandbox", dev->sandbox))) {
        cJSON_Delete(o);
        o = NULL;
    }
    return lane_push(l, chat__push_fmt("%s\n%" PRId64, dev->token, ev->conv),
                     chat__strdup(dev->token), print(o), ev->seq);
}

static int svc_attach(void *state, const chat_push_sink *sink)
{
    service *s = state;
    if (!s || !sink)
        return chat__error_set(CHAT_EINVAL, 0, "push attach: sink is NULL");
    pthread_mutex_lock(&s->sink_mu);
    s->sink = *sink;
    pthread_mutex_unlock(&s->sink_mu);
    for (int i = 0; i < 3; i++) {
        int rc = s->lanes[i] && !s->lanes[i]->started ? lane_start(s->lanes[i]) : CHAT_OK;
        if (rc != CHAT_OK)
            return rc;
    }
    return CHAT_OK;
}

/* Deliver what is queued, for at most the flush time, in every lane together. */
static int flush(service *s)
{
    int64_t until = wall_ms() + s->limits[CHAT_PUSH_LIMIT_FLUSH_MS];
    for (int i = 0; i < 3; i++) {
        lane *l = s->lanes[i];
        if (!l || !l->started)
            continue;
        pthread_mutex_lock(&l->mu);
        l->flush_until = until;
        l->is_idle = 0;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->mu);
    }
    int rc = CHAT_OK;
    for (int i = 0; i < 3; i++) {
        lane *l = s->lanes[i];
        if (!l || !l->started)
            continue;
        pthread_mutex_lock(&l->mu);
        while (!l->is_idle) {
            int64_t left = until - wall_ms();
            if (left <= 0)
                break;
            struct timespec t = chat__mono_deadline((int)left);
            pthread_cond_timedwait(&l->idle, &l->mu, &t);
        }
        /* Delivered everything, or left some (the provider is down, or the time ran out):
         * those stay queued, in the file when there is one. */
        if (!l->is_idle || l->st.pending + l->n_in > 0)
            rc = chat__error_set(CHAT_ETIMEDOUT, 0, "push %s: %" PRId64 " notification%s left "
                                 "queued", l->name, l->st.pending + l->n_in,
                                 l->st.pending + l->n_in == 1 ? "" : "s");
        l->flush_until = 0;
        pthread_mutex_unlock(&l->mu);
    }
    return rc;
}

static void add_stats(cJSON *root, lane *l)
{
    pthread_mutex_lock(&l->mu);
    lane_stats st = l->st;
    int64_t waiting = l->n_in;
    pthread_mutex_unlock(&l->mu);
    cJSON *o = cJSON_AddObjectToObject(root, l->name);
    if (!o)
        return;
    add_raw_int(o, "pending", st.pending + waiting, 0);
    add_raw_int(o, "queued", (long long)st.queued, 1);
    add_raw_int(o, "sent", (long long)st.sent, 1);
    add_raw_int(o, "failed", (long long)st.failed, 1);
    add_raw_int(o, "retried", (long long)st.retried, 1);
    add_raw_int(o, "dropped", (long long)st.dropped, 1);
    add_raw_int(o, "coalesced", (long long)st.coalesced, 1);
    add_raw_int(o, "deduped", (long long)st.deduped, 1);
    add_raw_int(o, "invalid_tokens", (long long)st.invalid_tokens, 1);
}

int chat_push_service_stats(char **out_json, void *state)
{
    service *s = state;
    if (!out_json || !s)
        return chat__error_set(CHAT_EINVAL, 0, "chat_push_service_stats: NULL argument");
    cJSON *root = cJSON_CreateObject();
    for (int i = 0; root && i < 3; i++)
        if (s->lanes[i])
            add_stats(root, s->lanes[i]);
    char *text = print(root);
    if (!text)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    *out_json = text;
    return CHAT_OK;
}

static int svc_ctl(void *state, int op, void *arg)
{
    service *s = state;
    if (!s)
        return chat__error_set(CHAT_EINVAL, 0, "push ctl: state is NULL");
    if (op == CHAT_PUSH_CTL_FLUSH)
        return flush(s);
    return CHAT_ENOTSUP;
}

static void svc_destroy(void *state)
{
    service *s = state;
    if (!s)
        return;
    for (int i = 0; i < 3; i++)
        lane_free(s->lanes[i]);
    pthread_mutex_destroy(&s->sink_mu);
    chat__free(s);
}

static const chat_push_ops service_ops = {
    .version = CHAT_PUSH_OPS_VERSION,
    .destroy = svc_destroy,
    .notify = svc_notify,
    .ctl = svc_ctl,
    .attach = svc_attach,
    .notify_device = svc_notify_device,
};

const chat_push_ops *chat_push_service_ops(void)
{
    return &service_ops;
}

int chat_push_service_new(void **state_out, const chat_push_config *c)
{
    if (!state_out || !c)
        return chat__error_set(CHAT_EINVAL, 0, "chat_push_service_new: NULL argument");
    if (!c->apns_key_file && !c->fcm_file && !c->webhook_url)
        return chat__error_set(CHAT_EINVAL, 0, "push: configure APNs, FCM or a webhook");
    if (chat__sodium_init() != CHAT_OK) /* the backoff's jitter, the webhook's HMAC */
        return chat__error_set(CHAT_ERROR, 0, "push: libsodium failed to initialize");
    service *s = chat__calloc(1, sizeof *s);
    if (!s)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    pthread_mutex_init(&s->sink_mu, NULL);
    memcpy(s->limits, c->limits, sizeof s->limits);
    s->env.ttl_ms = s->limits[CHAT_PUSH_LIMIT_TTL_MS];
    s->env.log = svc_log;
    s->env.log_ud = s;
    int rc = CHAT_OK;
    if (c->apns_key_file) {
        chat__push_apns_conf a = {c->apns_key_file, c->apns_key_id, c->apns_team_id,
                                  c->apns_topic, c->apns_url, c->apns_sandbox_url};
        rc = lane_new(&s->lanes[0], s, c, "apns", CHAT_PUSH_APNS);
        if (rc == CHAT_OK)
            rc = chat__push_apns_new(&s->lanes[0]->pst, &s->lanes[0]->prov, &a, &s->env);
    }
    if (rc == CHAT_OK && c->fcm_file) {
        chat__push_fcm_conf f = {c->fcm_file, c->fcm_url, c->fcm_token_uri};
        rc = lane_new(&s->lanes[1], s, c, "fcm", CHAT_PUSH_FCM);
        if (rc == CHAT_OK)
            rc = chat__push_fcm_new(&s->lanes[1]->pst, &s->lanes[1]->prov, &f, &s->env);
    }
    if (rc == CHAT_OK && c->webhook_url) {
        rc = lane_new(&s->lanes[2], s, c, "webhook", 0);
        if (rc == CHAT_OK)
            rc = chat__push_webhook_new(&s->lanes[2]->pst, &s->lanes[2]->prov, c->webhook_url,
                                        c->secret, c->secret_len, &s->env);
    }
    if (rc != CHAT_OK) {
        /* keep the message of the first failure across the cleanup */
        char msg[256];
        snprintf(msg, sizeof msg, "%s", chat_error_last()->message);
        svc_destroy(s);
        return chat__error_set(rc, 0, "%s", msg);
    }
    *state_out = s;
    return CHAT_OK;
}

/* The notifier of 0.1: a webhook, unsigned, its queue in memory. Its threads start at once
 * (the service's start when attached; this one may serve a server of any push version). */
int chat_push_webhook_new(void **state_out, const char *url)
{
    if (!state_out)
        return chat__error_set(CHAT_EINVAL, 0, "chat_push_webhook_new: state_out is NULL");
    chat_push_config *c = NULL;
    int rc = chat_push_config_new(&c);
    if (rc == CHAT_OK)
        rc = chat_push_config_set_webhook(c, url, NULL, 0);
    void *st = NULL;
    if (rc == CHAT_OK)
        rc = chat_push_service_new(&st, c);
    chat_push_config_free(c);
    if (rc == CHAT_OK) {
        service *s = st;
        rc = lane_start(s->lanes[2]);
        if (rc != CHAT_OK) {
            svc_destroy(s);
            return rc;
        }
        *state_out = s;
    }
    return rc;
}

const chat_push_ops *chat_push_webhook_ops(void)
{
    return &service_ops;
}

/* ---- helpers shared by the providers ---- */

const char *chat__push_str(const cJSON *ev, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int64_t chat__push_int(const cJSON *ev, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ev, key);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

char *chat__push_fmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = chat__malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void chat__push_alert(const cJSON *ev, int64_t count, char *title, size_t title_size, char *body,
                      size_t body_size)
{
    const char *sender = chat__push_str(ev, "sender");
    const char *group = chat__push_str(ev, "title");
    int is_group = strcmp(chat__push_str(ev, "conv_kind"), "group") == 0;
    snprintf(title, title_size, "%s", is_group && group[0] ? group : sender);
    const cJSON *preview = cJSON_GetObjectItemCaseSensitive(ev, "preview");
    if (cJSON_IsString(preview) && count <= 1)
        snprintf(body, body_size, "%s%s%s", is_group ? sender : "", is_group ? ": " : "",
                 preview->valuestring);
    else if (count > 1)
        snprintf(body, body_size, "%" PRId64 " new messages", count);
    else if (strcmp(chat__push_str(ev, "kind"), "media") == 0)
        snprintf(body, body_size, "%s%sSent an attachment", is_group ? sender : "",
                 is_group ? ": " : "");
    else
        snprintf(body, body_size, "%s%sNew message", is_group ? sender : "", is_group ? ": " : "");
}
