/*
 * The engine's side of a bus between nodes (cluster.h).
 *
 * Held output. A device that connects here is announced to the other nodes, which route a
 * frame for its user here only once the announcement arrived. Until then a message sent on
 * another node would reach the device only through a position hint seconds later, though the
 * client already had its auth_ok: the order a client sees would not be the order of events.
 * So the connection's output (auth_ok first) waits for the bus's settle ticket: every live
 * node applied the announcement, or the bus stopped waiting (a bound of its own, ~250 ms).
 * The connection is served meanwhile; its frames queue under the usual limits. A logout's
 * answer waits the same way for the revocation to reach the other nodes, so that once the
 * client has it, the token is refused everywhere.
 *
 * Messages between engines are small JSON objects with a type "t":
 *   {"t":"keys","ring":"1:0123456789abcdef* 2:..."}  to a node that appeared: our token keys
 *   {"t":"revoke","session":S,"exp":MS}              to all: a session revoked here
 * An engine ignores types it does not know, so newer nodes may add some.
 */
#include "server/cluster.h"

#include "server/internal.h"

#include "core/alloc.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define FP_LABEL "libchat token key fingerprint v1"
#define FP_BYTES 8

static int bus_v3(const chat_server *srv)
{
    return srv->bus->version >= 3;
}

/* ---- token keys ---- */

/* A key's fingerprint: a keyed hash of a label, which says nothing of the key. */
static void fingerprint(const unsigned char *key, char hex[2 * FP_BYTES + 1])
{
    unsigned char fp[FP_BYTES];
    crypto_generichash(fp, sizeof fp, (const unsigned char *)FP_LABEL, strlen(FP_LABEL), key,
                       CHAT__KEY_BYTES);
    sodium_bin2hex(hex, 2 * FP_BYTES + 1, fp, sizeof fp);
}

void chat__cluster_init(chat_server *srv)
{
    const chat__keyring *kr = &srv->cfg.keys;
    char *p = srv->cluster.ring;
    size_t left = sizeof srv->cluster.ring;
    p[0] = '\0';
    for (int i = 0; i < kr->n; i++) {
        char hex[2 * FP_BYTES + 1];
        fingerprint(kr->keys[i].key, hex);
        int n = snprintf(p, left, "%s%u:%s%s", i ? " " : "", kr->keys[i].id, hex,
                         i == kr->current ? "*" : "");
        if (n < 0 || (size_t)n >= left)
            break;
        p += n;
        left -= (size_t)n;
    }
}

typedef struct ring {
    int n;
    unsigned id[CHAT__KEYRING_MAX];
    char fp[CHAT__KEYRING_MAX][2 * FP_BYTES + 1];
    int current; /* index, -1: none */
} ring;

/* Parse a ring text; 0 when malformed. */
static int ring_parse(const char *s, ring *r)
{
    r->n = 0;
    r->current = -1;
    while (*s) {
        unsigned id;
        char fp[2 * FP_BYTES + 1];
        int used = 0;
        if (r->n == CHAT__KEYRING_MAX ||
            sscanf(s, "%3u:%16[0-9a-f]%n", &id, fp, &used) != 2 || strlen(fp) != 2 * FP_BYTES)
            return 0;
        s += used;
        if (*s == '*') {
            r->current = r->n;
            s++;
        }
        r->id[r->n] = id;
        memcpy(r->fp[r->n], fp, sizeof fp);
        r->n++;
        if (*s == ' ')
            s++;
        else if (*s)
            return 0;
    }
    return 1;
}

static int ring_find(const ring *r, unsigned id)
{
    for (int i = 0; i < r->n; i++)
        if (r->id[i] == id)
            return i;
    return -1;
}

/* Append " <id>" to list (a fixed buffer). */
static void list_add(char *list, size_t size, unsigned id)
{
    size_t len = strlen(list);
    snprintf(list + len, size - len, "%s%u", len ? ", " : "", id);
}

/* Compare node's ring with ours and say what an operator must know. */
static void compare_keys(chat_server *srv, const char *node, const char *text)
{
    ring mine, theirs;
    if (!ring_parse(srv->cluster.ring, &mine) || !ring_parse(text, &theirs)) {
        chat__log(srv, CHAT_LOG_WARN, "node '%s' sent token key fingerprints this node cannot "
                                      "read", node);
        return;
    }
    char differ[96] = "", only_here[96] = "", only_there[96] = "";
    for (int i = 0; i < mine.n; i++) {
        int k = ring_find(&theirs, mine.id[i]);
        if (k < 0)
            list_add(only_here, sizeof only_here, mine.id[i]);
        else if (strcmp(mine.fp[i], theirs.fp[k]) != 0)
            list_add(differ, sizeof differ, mine.id[i]);
    }
    for (int k = 0; k < theirs.n; k++)
        if (ring_find(&mine, theirs.id[k]) < 0)
            list_add(only_there, sizeof only_there, theirs.id[k]);
    int problem = 0;
    if (differ[0]) {
        chat__log(srv, CHAT_LOG_WARN,
                  "token keys differ from node '%s': key id(s) %s hold another key there, so "
                  "tokens and media URLs signed with them on one node fail on the other; give "
                  "every node the same key file", node, differ);
        problem = 1;
    }
    if (theirs.current >= 0 && ring_find(&mine, theirs.id[theirs.current]) < 0) {
        chat__log(srv, CHAT_LOG_WARN,
                  "node '%s' signs with token key %u, which this node lacks: tokens and media "
                  "URLs issued there fail here; give every node the same key file", node,
                  theirs.id[theirs.current]);
        problem = 1;
    }
    if (mine.current >= 0 && ring_find(&theirs, mine.id[mine.current]) < 0) {
        chat__log(srv, CHAT_LOG_WARN,
                  "this node signs with token key %u, which node '%s' lacks: tokens and media "
                  "URLs issued here fail there; give every node the same key file",
                  mine.id[mine.current], node);
        problem = 1;
    }
    if (!problem && (only_here[0] || only_there[0]))
        chat__log(srv, CHAT_LOG_INFO,
                  "node '%s' has token keys this node lacks (%s) or lacks some of ours (%s); "
                  "none of them signs new tokens", node, only_there[0] ? only_there : "none",
                  only_here[0] ? only_here : "none");
    else if (!problem)
        chat__log(srv, CHAT_LOG_INFO, "node '%s' has the same token keys", node);
}

static void send_json(chat_server *srv, const char *node, cJSON *o)
{
    char *text = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!text) {
        chat__log(srv, CHAT_LOG_WARN, "a message to %s was dropped: out of memory",
                  node ? node : "the other nodes");
        return;
    }
    int rc = srv->bus->send(srv->bus_st, node, text, strlen(text));
    if (rc != CHAT_OK && rc != CHAT_ENOTFOUND)
        chat__log(srv, CHAT_LOG_WARN, "a message to %s was not sent (%s)",
                  node ? node : "the other nodes", chat_error_name(rc));
    cJSON_free(text);
}

void chat__cluster_node(chat_server *srv, const char *node, int up)
{
    chat__log(srv, CHAT_LOG_INFO, "node '%s' %s", node, up ? "joined" : "left");
    if (!up || !bus_v3(srv) || !srv->bus->send)
        return;
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "t", "keys");
        cJSON_AddStringToObject(o, "ring", srv->cluster.ring);
    }
    send_json(srv, node, o);
}

/* ---- revoked sessions ---- */

void chat__cluster_revoked(chat_server *srv, const char *session, int64_t exp_ms)
{
    if (!bus_v3(srv) || !srv->bus->send)
        return;
    cJSON *o = cJSON_CreateObject();
    if (o) {
        cJSON_AddStringToObject(o, "t", "revoke");
        cJSON_AddStringToObject(o, "session", session);
        cJSON_AddNumberToObject(o, "exp", (double)exp_ms);
    }
    send_json(srv, NULL, o);
}

void chat__cluster_message(chat_server *srv, const char *from, const void *msg, size_t len)
{
    cJSON *o = cJSON_ParseWithLength(msg, len);
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "t"));
    if (t && strcmp(t, "keys") == 0) {
        const char *keys = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "ring"));
        if (keys)
            compare_keys(srv, from, keys);
    } else if (t && strcmp(t, "revoke") == 0) {
        const char *session =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "session"));
        if (session && strlen(session) <= CHAT_ID_MAX)
            chat__server_revoked_elsewhere(srv, session);
    }
    cJSON_Delete(o);
}

/* ---- held output ---- */

static void release(chat__held *h)
{
    chat__conn *c = h->conn;
    if (--c->held == 0 && c->tc && (c->q_count || c->close_code))
        c->srv->tp->want_write(c->tc);
    chat__conn_unref(c);
}

void chat__cluster_hold(chat__conn *c)
{
    chat_server *srv = c->srv;
    uint64_t ticket = 0;
    if (!bus_v3(srv) || !srv->bus->settle || srv->bus->settle(srv->bus_st, &ticket) != CHAT_OK ||
        ticket <= srv->cluster.settled || c->held == UINT8_MAX)
        return;
    chat__cluster *cl = &srv->cluster;
    if (cl->held_n == cl->held_cap) {
        size_t cap = cl->held_cap ? cl->held_cap * 2 : 16;
        chat__held *nh = chat__malloc(cap * sizeof *nh);
        if (!nh)
            return; /* served at once: a hint covers what the first moment misses */
        for (size_t i = 0; i < cl->held_n; i++)
            nh[i] = cl->held[(cl->held_head + i) % cl->held_cap];
        chat__free(cl->held);
        cl->held = nh;
        cl->held_cap = cap;
        cl->held_head = 0;
    }
    cl->held[(cl->held_head + cl->held_n++) % cl->held_cap] =
        (chat__held){chat__conn_ref(c), ticket};
    c->held++;
}

void chat__cluster_settled(chat_server *srv, uint64_t ticket)
{
    chat__cluster *cl = &srv->cluster;
    if (ticket > cl->settled)
        cl->settled = ticket;
    /* Tickets were handed out in order: the ring is sorted. */
    while (cl->held_n && cl->held[cl->held_head].ticket <= cl->settled) {
        chat__held h = cl->held[cl->held_head];
        cl->held_head = (cl->held_head + 1) % cl->held_cap;
        cl->held_n--;
        release(&h);
    }
}

void chat__cluster_free(chat_server *srv)
{
    chat__cluster *cl = &srv->cluster;
    while (cl->held_n) {
        chat__held h = cl->held[cl->held_head];
        cl->held_head = (cl->held_head + 1) % cl->held_cap;
        cl->held_n--;
        release(&h);
    }
    chat__free(cl->held);
    cl->held = NULL;
    cl->held_cap = 0;
}
