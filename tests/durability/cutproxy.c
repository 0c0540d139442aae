/* cutproxy: see cutproxy.h. One thread, poll(2) over the listener, a wake pipe and every relayed
 * pair; blocking connect to loopback (immediate). */
#define _GNU_SOURCE
#include "cutproxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PAIRS 64

typedef struct pair {
    int fd[2];          /* 0: client side, 1: server side; -1 when free */
    long budget[2];     /* bytes that may still flow from fd[i] to fd[1-i]; -1: unlimited */
    long long down;     /* bytes relayed server -> client */
} pair;

struct cutproxy {
    int listen_fd, wake[2], port, target;
    unsigned int rng;
    int budget_max, uncut_pct, calm, stop;
    pair pairs[MAX_PAIRS];
    cutproxy_stats st;
    pthread_mutex_t lock;
    pthread_t thread;
};

static unsigned int rnd(cutproxy *p)
{
    p->rng = p->rng * 1103515245u + 12345u;
    return (p->rng >> 8) & 0xffffff;
}

static long pick_budget(cutproxy *p)
{
    /* Half early (log-uniform in 1..1024: inside the HTTP upgrade, the auth, the first sync
     * frames), half late (uniform in 1024..budget_max: inside the traffic). */
    if (rnd(p) % 2 || p->budget_max <= 1024) {
        double u = (double)rnd(p) / 0xffffff;
        long max = p->budget_max < 1024 ? p->budget_max : 1024;
        return 1 + (long)exp(u * log((double)max));
    }
    return 1024 + (long)(rnd(p) % (unsigned)(p->budget_max - 1024));
}

static void close_pair(cutproxy *p, pair *q, int rst)
{
    for (int i = 0; i < 2; i++) {
        if (rst) {
            struct linger l = {1, 0};
            setsockopt(q->fd[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(q->fd[i]);
        q->fd[i] = -1;
    }
    if (rst)
        p->st.resets++;
}

static void accept_one(cutproxy *p)
{
    int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
        return;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p->target)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c);
        if (s >= 0)
            close(s);
        return;
    }
    int one = 1;
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int i = 0; i < MAX_PAIRS; i++) {
        pair *q = &p->pairs[i];
        if (q->fd[0] >= 0)
            continue;
        q->fd[0] = c;
        q->fd[1] = s;
        /* "uncut" connections get a budget 8 times the largest: long enough for any sync
         * page, and still cut in the end, so no client escapes the cuts for good. */
        int big = (int)(rnd(p) % 100) < p->uncut_pct;
        q->budget[0] = p->calm ? -1 : big ? 8L * p->budget_max : pick_budget(p);
        q->budget[1] = p->calm ? -1 : big ? 8L * p->budget_max : pick_budget(p);
        q->down = 0;
        p->st.accepted++;
        return;
    }
    close(c);
    close(s);
}

/* Move what is readable on q->fd[from] to the other side, within the budget. */
static void relay(cutproxy *p, pair *q, int from)
{
    char buf[16384];
    size_t want = sizeof buf;
    if (q->budget[from] >= 0 && (size_t)q->budget[from] < want)
        want = (size_t)q->budget[from];
    ssize_t n = want ? read(q->fd[from], buf, want) : 0;
    if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            return;
        close_pair(p, q, 0); /* a side closed (or a zero budget): close both */
        return;
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(q->fd[1 - from], buf + off, (size_t)(n - off));
        if (w < 0) {
            if (errno == EINTR)
                continue;
            close_pair(p, q, 0);
            return;
        }
        off += w;
    }
    if (from == 0) {
        p->st.bytes_up += n;
    } else {
        p->st.bytes_down += n;
        q->down += n;
    }
    if (q->budget[from] >= 0) {
        q->budget[from] -= n;
        if (q->budget[from] == 0) {
            if (from == 0)
                p->st.cut_up++;
            else
                p->st.cut_down++;
            if (q->down > 1024)
                p->st.cut_late++;
            close_pair(p, q, (int)(rnd(p) % 2));
        }
    }
}

static void *run(void *arg)
{
    cutproxy *p = arg;
    for (;;) {
        struct pollfd fds[2 + 2 * MAX_PAIRS];
        pair *owner[2 + 2 * MAX_PAIRS];
        int side[2 + 2 * MAX_PAIRS];
        int n = 0;
        fds[n++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
        fds[n++] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (int i = 0; i < MAX_PAIRS; i++)
            for (int j = 0; j < 2 && p->pairs[i].fd[0] >= 0; j++) {
                owner[n] = &p->pairs[i];
                side[n] = j;
                fds[n++] = (struct pollfd){.fd = p->pairs[i].fd[j], .events = POLLIN};
            }
        if (poll(fds, (nfds_t)n, 1000) < 0 && errno != EINTR)
            break;
        pthread_mutex_lock(&p->lock);
        int stop = p->stop;
        if (!stop) {
            if (fds[1].revents & POLLIN)
                accept_one(p);
            for (int i = 2; i < n; i++)
                if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && owner[i]->fd[0] >= 0)
                    relay(p, owner[i], side[i]);
        }
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;
    }
    return NULL;
}

cutproxy *cutproxy_start(int target_port, unsigned int seed, int budget_max, int uncut_pct)
{
    cutproxy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->target = target_port;
    p->rng = seed;
    p->budget_max = budget_max > 1 ? budget_max : 2;
    p->uncut_pct = uncut_pct;
    for (int i = 0; i < MAX_PAIRS; i++)
        p->pairs[i].fd[0] = p->pairs[i].fd[1] = -1;
    pthread_mutex_init(&p->lock, NULL);
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (p->listen_fd < 0 || bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(p->listen_fd, 64) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) != 0 ||
        pipe2(p->wake, O_CLOEXEC) != 0) {
        if (p->listen_fd >= 0)
            close(p->listen_fd);
        free(p);
        return NULL;
    }
    p->port = ntohs(a.sin_port);
    if (pthread_create(&p->thread, NULL, run, p) != 0) {
        close(p->listen_fd);
        close(p->wake[0]);
        close(p->wake[1]);
        free(p);
        return NULL;
    }
    return p;
}

int cutproxy_port(const cutproxy *p)
{
    return p->port;
}

void cutproxy_calm(cutproxy *p)
{
    pthread_mutex_lock(&p->lock);
    p->calm = 1;
    pthread_mutex_unlock(&p->lock);
}

void cutproxy_stats_get(cutproxy *p, cutproxy_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    pthread_mutex_unlock(&p->lock);
}

void cutproxy_stop(cutproxy *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_mutex_unlock(&p->lock);
    ssize_t w = write(p->wake[1], "x", 1);
    (void)w;
    pthread_join(p->thread, NULL);
    for (int i = 0; i < MAX_PAIRS; i++)
        if (p->pairs[i].fd[0] >= 0)
            close_pair(p, &p->pairs[i], 0);
    close(p->listen_fd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
