/* See relay_proto.h. Users are found in an open-addressing table keyed by name (a user's slot
 * stays once taken; its connection is cleared when it leaves). */
#define _GNU_SOURCE
#include "relay_proto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAP_SLOTS (1u << 16)
#define GROUP_MAX 2048

static struct {
    char *user;
    rp_conn *c;
} map[MAP_SLOTS];

static char **group;
static int group_n;
static rp_conn *targets[GROUP_MAX];
static rp_io io;
static int opt_ack = 1;

void rp_setup(const rp_io *ops, int ack)
{
    io = *ops;
    opt_ack = ack;
}

static uint32_t hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static unsigned slot_of(const char *u, size_t n)
{
    unsigned i = hash(u, n) & (MAP_SLOTS - 1);
    while (map[i].user && !(strlen(map[i].user) == n && !memcmp(map[i].user, u, n)))
        i = (i + 1) & (MAP_SLOTS - 1);
    return i;
}

static rp_conn *lookup(const char *u, size_t n)
{
    unsigned i = slot_of(u, n);
    return map[i].user ? map[i].c : NULL;
}

/* The string value of "key":"..." in a frame, as a pointer and length into it. */
static const char *str_field(const char *m, size_t len, const char *key, size_t *out_len)
{
    char pat[32];
    int pl = snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = memmem(m, len, pat, (size_t)pl);
    if (!p)
        return NULL;
    p += pl;
    const char *e = memchr(p, '"', len - (size_t)(p - m));
    if (!e)
        return NULL;
    *out_len = (size_t)(e - p);
    return p;
}

static void auth(rp_conn *c, const char *m, size_t len, const char *id, int il)
{
    size_t ul;
    const char *u = str_field(m, len, "token", &ul);
    if (!u || ul == 0 || ul > 64)
        return;
    memcpy(c->user, u, ul);
    c->user[ul] = '\0';
    c->authed = 1;
    unsigned s = slot_of(u, ul);
    if (!map[s].user)
        map[s].user = strdup(c->user);
    map[s].c = c;
    char out[256];
    int n = snprintf(out, sizeof out,
                     "{\"type\":\"auth_ok\",\"re\":\"%.*s\",\"v\":1,\"user\":\"%s\","
                     "\"device\":\"d\",\"ts\":0,\"cursor\":0}",
                     il, id, c->user);
    io.reply(c, out, (size_t)n);
}

static void group_create(rp_conn *c, const char *m, size_t len)
{
    for (int i = 0; i < group_n; i++)
        free(group[i]);
    free(group);
    group_n = 0;
    group = malloc(sizeof *group * GROUP_MAX);
    if (!group)
        return;
    group[group_n++] = strdup(c->user);
    const char *p = memmem(m, len, "\"members\":[", 11);
    const char *end = m + len;
    if (!p)
        return;
    p += 11;
    while (p < end && *p != ']' && group_n < GROUP_MAX) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (!q)
            break;
        const char *e = memchr(q + 1, '"', (size_t)(end - q - 1));
        if (!e)
            break;
        group[group_n++] = strndup(q + 1, (size_t)(e - q - 1));
        p = e + 1;
        while (p < end && (*p == ',' || *p == ' '))
            p++;
    }
}

void rp_message(rp_conn *c, const char *m, size_t len)
{
    size_t tl = 0, il = 0;
    const char *type = str_field(m, len, "type", &tl);
    const char *id = str_field(m, len, "id", &il);
    char out[512];
    if (!id)
        id = "";
    if (il > 64)
        il = 64;
    if (!type)
        return;
    if (!c->authed) {
        if (tl == 4 && !memcmp(type, "auth", 4))
            auth(c, m, len, id, (int)il);
        return;
    }
    if (tl == 4 && !memcmp(type, "send", 4)) {
        size_t tol;
        const char *to = str_field(m, len, "to", &tol);
        int n = 0;
        if (to) {
            rp_conn *t = lookup(to, tol);
            if (t)
                targets[n++] = t;
        } else {
            for (int i = 0; i < group_n; i++) {
                rp_conn *t = strcmp(group[i], c->user) ? lookup(group[i], strlen(group[i])) : NULL;
                if (t)
                    targets[n++] = t;
            }
        }
        if (n)
            io.forward(targets, n, m, len);
        if (opt_ack) {
            n = snprintf(out, sizeof out, "{\"type\":\"ack\",\"re\":\"%.*s\"}", (int)il, id);
            io.reply(c, out, (size_t)n);
        }
        return;
    }
    int n;
    if (tl == 12 && !memcmp(type, "group_create", 12)) {
        group_create(c, m, len);
        n = snprintf(out, sizeof out,
                     "{\"type\":\"conv\",\"re\":\"%.*s\",\"conv\":{\"conv\":1,\"kind\":\"group\"}}",
                     (int)il, id);
    } else {
        n = snprintf(out, sizeof out,
                     "{\"type\":\"error\",\"re\":\"%.*s\",\"code\":\"ENOTSUP\",\"reason\":"
                     "\"unknown_type\",\"message\":\"the relay does not do that\"}",
                     (int)il, id);
    }
    io.reply(c, out, (size_t)n);
}

void rp_closed(rp_conn *c)
{
    if (!c->authed)
        return;
    unsigned s = slot_of(c->user, strlen(c->user));
    if (map[s].c == c)
        map[s].c = NULL;
}
