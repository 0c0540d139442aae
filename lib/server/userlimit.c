/* Limits per user id rather than per connection: the send rate summed over all of a user's
 * connections (a user cannot multiply the per-connection rate by opening more), and failed
 * login attempts per account (guessing passwords from many connections). The table is keyed by
 * user id; entries whose buckets are full again are equivalent to absent, so the table is swept
 * of them when it reaches its cap instead of growing. [loop thread] */
#include "server/req.h"

#include "core/alloc.h"

#include <stdio.h>

typedef struct user_limit {
    chat__bucket send, login;
} user_limit;

/* Far above the connection limit's default: reached only by logins to many names at once. */
#define USER_LIMITS_MAX 65536

/* The per-user send limits; 0 (the default) means twice the per-connection value. */
static double user_send_rate(const chat_server *srv)
{
    int64_t v = chat__limit(srv, CHAT_LIMIT_USER_SEND_RATE);
    return (double)(v ? v : 2 * chat__limit(srv, CHAT_LIMIT_SEND_RATE));
}

static double user_send_burst(const chat_server *srv)
{
    int64_t v = chat__limit(srv, CHAT_LIMIT_USER_SEND_BURST);
    return (double)(v ? v : 2 * chat__limit(srv, CHAT_LIMIT_SEND_BURST));
}

static double login_rate_per_s(const chat_server *srv)
{
    return (double)chat__limit(srv, CHAT_LIMIT_LOGIN_RATE) / 60.0;
}

/* The bucket would be full at now_ms: nothing distinguishes it from a new one. */
static int bucket_full(const chat__bucket *b, double rate_per_s, double burst, int64_t now_ms)
{
    double dt = now_ms > b->last_ms ? (double)(now_ms - b->last_ms) : 0.0;
    return b->tokens + dt * rate_per_s / 1000.0 >= burst;
}

typedef struct sweep {
    chat_server *srv;
    int64_t now;
    char **keys;
    size_t n, cap;
} sweep;

static void collect_idle(const char *key, void *value, void *ud)
{
    sweep *s = ud;
    const user_limit *u = value;
    chat_server *srv = s->srv;
    if (s->n < s->cap &&
        bucket_full(&u->send, user_send_rate(srv), user_send_burst(srv), s->now) &&
        bucket_full(&u->login, login_rate_per_s(srv),
                    (double)chat__limit(srv, CHAT_LIMIT_LOGIN_RATE), s->now))
        s->keys[s->n++] = (char *)key;
}

/* Drop the entries that are full again. */
static void sweep_idle(chat_server *srv, int64_t now)
{
    sweep s = {srv, now, NULL, 0, srv->user_limits.used};
    s.keys = chat__calloc(s.cap ? s.cap : 1, sizeof *s.keys);
    if (!s.keys)
        return;
    chat__strmap_each(&srv->user_limits, collect_idle, &s);
    for (size_t i = 0; i < s.n; i++) {
        /* the key string belongs to the map: copy it before deleting */
        char key[CHAT_ID_MAX + 1];
        snprintf(key, sizeof key, "%s", s.keys[i]);
        chat__free(chat__strmap_del(&srv->user_limits, key));
    }
    chat__free(s.keys);
}

/* The user's entry, created full; NULL when the table is full of busy entries or on ENOMEM. */
static user_limit *entry(chat_server *srv, const char *user, int64_t now)
{
    user_limit *u = chat__strmap_get(&srv->user_limits, user);
    if (u)
        return u;
    if (srv->user_limits.used >= USER_LIMITS_MAX) {
        sweep_idle(srv, now);
        if (srv->user_limits.used >= USER_LIMITS_MAX)
            return NULL;
    }
    u = chat__calloc(1, sizeof *u);
    if (!u)
        return NULL;
    chat__bucket_init(&u->send, user_send_burst(srv), now);
    chat__bucket_init(&u->login, (double)chat__limit(srv, CHAT_LIMIT_LOGIN_RATE), now);
    if (chat__strmap_put(&srv->user_limits, user, u) != CHAT_OK) {
        chat__free(u);
        return NULL;
    }
    return u;
}

int chat__user_send_take(chat_server *srv, const char *user, int64_t *retry_after_ms)
{
    int64_t now = chat__now_ms(srv);
    user_limit *u = entry(srv, user, now);
    if (!u)
        return 1; /* no room to track: the per-connection limit still applies */
    return chat__bucket_take(&u->send, user_send_rate(srv), user_send_burst(srv), now,
                             retry_after_ms);
}

int chat__user_login_take(chat_server *srv, const char *user, int64_t *retry_after_ms)
{
    int64_t now = chat__now_ms(srv);
    user_limit *u = entry(srv, user, now);
    if (!u) {
        *retry_after_ms = 1000; /* a flood of names: refuse until the sweep frees room */
        return 0;
    }
    return chat__bucket_take(&u->login, login_rate_per_s(srv),
                             (double)chat__limit(srv, CHAT_LIMIT_LOGIN_RATE), now,
                             retry_after_ms);
}

void chat__user_login_refund(chat_server *srv, const char *user)
{
    user_limit *u = chat__strmap_get(&srv->user_limits, user);
    double burst = (double)chat__limit(srv, CHAT_LIMIT_LOGIN_RATE);
    if (u && u->login.tokens + 1.0 <= burst)
        u->login.tokens += 1.0;
}

static void free_entry(const char *key, void *value, void *ud)
{
    (void)key, (void)ud;
    chat__free(value);
}

void chat__user_limits_free(chat_server *srv)
{
    chat__strmap_each(&srv->user_limits, free_entry, NULL);
    chat__strmap_clear(&srv->user_limits);
}
