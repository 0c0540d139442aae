/* A fault-injecting TCP relay for tests, loopback only: every accepted connection is relayed
 * to 127.0.0.1:target_port and cut (both sockets closed, with a FIN or an RST) once a random
 * number of bytes has passed in one direction or the other. A fraction of the connections gets
 * a budget 8 times the largest, so any sync page gets through. Of the rest, half the budgets
 * are small (log-uniform up to
 * 1 KiB: cuts in the HTTP upgrade or the auth), half large (up to budget_max: cuts in the
 * traffic). Runs on its own thread. */
#ifndef CHAT_TEST_CUTPROXY_H
#define CHAT_TEST_CUTPROXY_H

typedef struct cutproxy cutproxy;

typedef struct cutproxy_stats {
    long accepted;      /* connections relayed */
    long cut_up;        /* cut on the client -> server byte budget */
    long cut_down;      /* cut on the server -> client byte budget */
    long resets;        /* cuts done with an RST rather than a FIN */
    long cut_late;      /* cuts after more than 1 KiB came from the server (past the auth) */
    long long bytes_up, bytes_down;
} cutproxy_stats;

/* Listen on 127.0.0.1:0 and relay to target_port. budget_max: the largest byte budget of a
 * direction (above 1024); uncut_pct: percent of connections with an 8x budget. Returns NULL
 * on failure. */
cutproxy *cutproxy_start(int target_port, unsigned int seed, int budget_max, int uncut_pct);
int cutproxy_port(const cutproxy *p);
/* Stop cutting new connections (existing ones keep their budgets). */
void cutproxy_calm(cutproxy *p);
void cutproxy_stats_get(cutproxy *p, cutproxy_stats *out);
/* Close everything and join. Accepts NULL. */
void cutproxy_stop(cutproxy *p);

#endif
