/* life-bench: what the message lifecycle costs the reads, in-process (no server, no socket).
 *
 *   life-bench history DIR [MESSAGES (200000)] [CONVS (10)] [PAGES (20000)] [CHANGED_PCT (50)]
 *                          [LAG (100)]
 *     A fresh SQLite store DIR/chat.db: CONVS plain direct conversations (ids 1..CONVS, user h0
 *     with p1..pC) and CONVS lifecycle ones (ids CONVS+1..2*CONVS, h0 with q1..qC), each with
 *     MESSAGES/CONVS text messages. In a lifecycle conversation CHANGED_PCT % of the messages
 *     are edited once and get three reactions, LAG messages later, stored as the engine stores
 *     them (an edit row carrying the new text, CHAT_STORE_MSG_CURRENT, and msg_update of the
 *     text; reaction_set and a react row each). Then pages of 50 (before = a random seq) of a
 *     plain and of a lifecycle conversation in turn, each with the store calls the engine
 *     makes for a history page: msg_range (51 rows, descending; a store of version 6 hands
 *     each row's reactions over with it), reaction_list over the page for an older store,
 *     msg_get of each target outside the page (a reply's; an edit's only without the flag).
 *     Prints p50/p99 of both and their ratio (lifecycle / plain). JSON encoding is not in it:
 *     chat-bench --mode history --history-first measures the whole request over the wire,
 *     against chatd run --data-dir DIR serving this store.
 *
 *   life-bench search DIR [MESSAGES (1000000)] [CONVS (100)] [QUERIES (2000)] [WHERE (both)]
 *     MESSAGES text messages of 8 words (a 20000-word vocabulary drawn with a Zipf-like skew,
 *     every 1000th message holding the word "needle") in CONVS direct conversations of user
 *     h0, written to the SQLite store DIR/chat.db (WHERE store or both) and to a client cache
 *     DIR/cache.db (cache or both; through the cache's own insert, as messages arrive from
 *     the wire, 10000 to a transaction). Then QUERIES searches of each class (a rare word, a common word, a common and
 *     a middling word, the planted word), in every conversation of h0 and in one: the store's
 *     msg_search as the engine calls it (21 hits: the default page and one), and
 *     chat_client_search_local (20 hits) on a client opened on the cache. p50/p99 per class and
 *     over all queries. The planted word's hit count is checked (exit 1 when wrong).
 *
 *   life-bench expire-fill DIR [MESSAGES (200000)] [CONVS (1000)] [DUE_IN_MS (15000)]
 *                          [SPREAD_MS (0)]
 *     A fresh SQLite store DIR/chat.db of MESSAGES text messages in CONVS direct conversations
 *     (users e1..eC with f1..fC) that expire DUE_IN_MS after the fill started, spread evenly
 *     over SPREAD_MS; DUE_IN_MS 0: they never expire (the control). chatd run --data-dir DIR
 *     then sweeps them while chat-bench runs live traffic; bench/expiry-bench.sh does both.
 *
 * Every mode ends with a RESULT line (key=value). Sizes are small for a smoke test
 * (meson test --suite bench) and default to the sizes doc/performance.md reports.
 */
#include "client/cache.h"

#include <chat/chat.h>
#include <chat/sys/store.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 50

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng = 42;

static uint64_t rnd(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return rng >> 11;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Latencies in ms; q() sorts. */
typedef struct lat {
    double *v;
    size_t n, cap;
} lat;

static void lat_add(lat *l, double ms)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
        if (!l->v) {
            fprintf(stderr, "life-bench: out of memory\n");
            exit(1);
        }
    }
    l->v[l->n++] = ms;
}

static double q(lat *l, double p)
{
    if (!l->n)
        return 0;
    qsort(l->v, l->n, sizeof *l->v, cmp_double);
    size_t i = (size_t)(p * (double)l->n);
    return l->v[i < l->n ? i : l->n - 1];
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        perror(dir);
        return -1;
    }
    return 0;
}

/* A fresh SQLite store DIR/chat.db (an existing one is refused: the ids would clash). */
static int open_store(const char *dir, void **st)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/chat.db", dir);
    if (make_dir(dir) != 0)
        return -1;
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "life-bench: %s exists (give an empty DIR)\n", path);
        return -1;
    }
    if (chat_store_sqlite_open(st, path, 0, NULL) != CHAT_OK) {
        fprintf(stderr, "life-bench: cannot open %s: %s\n", path, chat_error_last()->message);
        return -1;
    }
    return 0;
}

static int fail(const char *what)
{
    fprintf(stderr, "life-bench: %s failed: %s\n", what, chat_error_last()->message);
    return -1;
}

/* Writes of one fill: the conversations made, the inbox change counter, batched commits. */
typedef struct filler {
    const chat_store_ops *ops;
    void *st;
    uint64_t change;
    int64_t now_ms;
    int in_txn, writes;
} filler;

static int fill_tick(filler *f)
{
    if (!f->in_txn) {
        if (f->ops->begin(f->st) != CHAT_OK)
            return fail("begin");
        f->in_txn = 1;
    }
    if (++f->writes % 10000 == 0) {
        f->in_txn = 0;
        if (f->ops->commit(f->st) != CHAT_OK)
            return fail("commit");
    }
    return 0;
}

static int fill_end(filler *f)
{
    if (f->in_txn && f->ops->commit(f->st) != CHAT_OK)
        return fail("commit");
    f->in_txn = 0;
    return 0;
}

/* A direct conversation of a and b with both as members, at head 0. */
static int new_direct(filler *f, const char *a, const char *b, chat_store_conv *conv)
{
    memset(conv, 0, sizeof *conv);
    conv->kind = CHAT_CONV_DIRECT;
    snprintf(conv->dm_key, sizeof conv->dm_key, "%s\n%s", strcmp(a, b) < 0 ? a : b,
             strcmp(a, b) < 0 ? b : a);
    conv->member_count = 2;
    conv->created_ms = f->now_ms;
    conv->change = ++f->change;
    if (fill_tick(f) || f->ops->conv_insert(f->st, conv) != CHAT_OK)
        return fail("conv_insert");
    for (int u = 0; u < 2; u++) {
        chat_store_member m = {0};
        m.conv = conv->id;
        snprintf(m.user, sizeof m.user, "%s", u ? b : a);
        m.role = CHAT_ROLE_MEMBER;
        m.change = f->change;
        if (fill_tick(f) || f->ops->member_put(f->st, &m) != CHAT_OK)
            return fail("member_put");
    }
    return 0;
}

/* Append a message at the conversation's head (conv->head_seq moves; written by fill_head). */
static int append(filler *f, chat_store_conv *conv, chat_store_msg *m)
{
    char cmid[40];
    m->conv = conv->id;
    m->seq = ++conv->head_seq;
    m->ts_ms = f->now_ms;
    m->device = "d";
    if (!m->cmid) {
        /* shaped like the client core's ids: time first, then a unique part */
        snprintf(cmid, sizeof cmid, "%011llx%016llx", (unsigned long long)f->now_ms,
                 (unsigned long long)m->seq);
        m->cmid = cmid;
    }
    if (fill_tick(f) || f->ops->msg_insert(f->st, m) != CHAT_OK)
        return fail("msg_insert");
    return 0;
}

/* The conversation's head, and both members caught up to it. */
static int fill_head(filler *f, chat_store_conv *conv, const char *a, const char *b)
{
    conv->change = ++f->change;
    if (fill_tick(f) || f->ops->conv_update(f->st, conv) != CHAT_OK)
        return fail("conv_update");
    for (int u = 0; u < 2; u++) {
        chat_store_member m = {0};
        m.conv = conv->id;
        snprintf(m.user, sizeof m.user, "%s", u ? b : a);
        m.role = CHAT_ROLE_MEMBER;
        m.delivered_seq = m.read_seq = conv->head_seq;
        m.change = f->change;
        if (fill_tick(f) || f->ops->member_put(f->st, &m) != CHAT_OK)
            return fail("member_put");
    }
    return 0;
}

static int fill_done(filler *f)
{
    if (fill_tick(f) || f->ops->meta_set(f->st, CHAT_STORE_CHANGE_KEY, (int64_t)f->change))
        return fail("meta_set");
    return fill_end(f);
}

/* ---------------- history ---------------- */

static const char body[] = "a typical short chat message, about sixty bytes of text....";
static const char edited[] = "a typical short chat message, about sixty bytes, now edited";
static const char *const emoji[3] = {"\xf0\x9f\x91\x8d", "\xf0\x9f\x91\x8d", "\xe2\x9d\xa4"};

static int changed(uint64_t i, int pct)
{
    return (int)((i * 37) % 100) < pct; /* spread evenly, the same in every run */
}

/* Edit text message seq of conv and put three reactions on it, as the engine stores them. */
static int change_msg(filler *f, chat_store_conv *conv, uint64_t seq, const char *author,
                      const char *other)
{
    chat_store_msg e = {0};
    e.sender = author;
    e.kind = CHAT_MSG_EDIT;
    e.body = edited; /* the target's current text, which the page shows from the row */
    e.body_len = sizeof edited - 1;
    e.edited_ms = f->now_ms;
    e.flags = CHAT_STORE_MSG_CURRENT;
    e.target_seq = seq;
    if (append(f, conv, &e))
        return -1;
    chat_store_msg t = {conv->id, seq, f->now_ms, author, "d", "", CHAT_MSG_TEXT, edited,
                        sizeof edited - 1, 0, 0, f->now_ms, 0, 0, NULL, 0};
    if (fill_tick(f) || f->ops->msg_update(f->st, &t) != CHAT_OK)
        return fail("msg_update");
    for (int r = 0; r < 3; r++) {
        chat_store_reaction x = {0};
        x.conv = conv->id;
        x.seq = seq;
        snprintf(x.user, sizeof x.user, "%s", r == 0 ? author : other);
        snprintf(x.emoji, sizeof x.emoji, "%s", emoji[r]);
        x.ts_ms = f->now_ms;
        if (fill_tick(f) || f->ops->reaction_set(f->st, &x, 1) != CHAT_OK)
            return fail("reaction_set");
        char rb[CHAT_REACTION_MAX + 2];
        snprintf(rb, sizeof rb, "+%s", emoji[r]);
        chat_store_msg m = {0};
        m.sender = x.user;
        m.kind = CHAT_MSG_REACT;
        m.body = rb;
        m.body_len = strlen(rb);
        m.target_seq = seq;
        if (append(f, conv, &m))
            return -1;
    }
    return 0;
}

/* One conversation: per text messages; in a lifecycle one (pct > 0) the chosen ones are
 * changed lag messages later (or at the end, for the last lag). */
static int fill_conv(filler *f, const char *peer, uint64_t per, int pct, uint64_t lag,
                     chat_store_conv *conv)
{
    if (new_direct(f, "h0", peer, conv))
        return -1;
    uint64_t *seqs = malloc(per * sizeof *seqs);
    if (!seqs)
        return -1;
    for (uint64_t i = 0; i < per + (pct ? lag : 0); i++) {
        if (i < per) {
            chat_store_msg m = {0};
            m.sender = (i & 1) ? "h0" : peer;
            m.kind = CHAT_MSG_TEXT;
            m.body = body;
            m.body_len = sizeof body - 1;
            if (append(f, conv, &m)) {
                free(seqs);
                return -1;
            }
            seqs[i] = m.seq;
        }
        uint64_t k = i - lag;
        if (pct && i >= lag && changed(k, pct) &&
            change_msg(f, conv, seqs[k], (k & 1) ? "h0" : peer, (k & 1) ? peer : "h0")) {
            free(seqs);
            return -1;
        }
    }
    free(seqs);
    return fill_head(f, conv, "h0", peer);
}

/* One page as the engine reads it: what it found. */
typedef struct page {
    uint64_t seq[PAGE + 1], target[PAGE + 1];
    int kind[PAGE + 1];
    unsigned int flags[PAGE + 1];
    char body[PAGE + 1][128];
    int n_reacts[PAGE + 1];
    chat_store_reaction reacts[PAGE + 1][4]; /* the first few a row carries (version 6) */
    int n, reactions, fetched;
} page;

static int page_row(const chat_store_msg *m, void *ud)
{
    page *p = ud;
    if (p->n > PAGE)
        return 0;
    p->seq[p->n] = m->seq;
    p->target[p->n] = m->target_seq;
    p->kind[p->n] = m->kind;
    p->flags[p->n] = m->flags;
    size_t len = m->body_len < sizeof p->body[0] ? m->body_len : sizeof p->body[0] - 1;
    memcpy(p->body[p->n], m->body, len); /* the engine copies every row it keeps */
    p->body[p->n][len] = '\0';
    /* A store of version 6 hands the reactions over with the row; the engine copies them. */
    size_t nr = m->n_reactions < 4 ? m->n_reactions : 4;
    if (nr)
        memcpy(p->reacts[p->n], m->reactions, nr * sizeof *m->reactions);
    p->n_reacts[p->n] = (int)m->n_reactions;
    p->n++;
    return 0;
}

static int page_reaction(const chat_store_reaction *r, void *ud)
{
    (void)r;
    ((page *)ud)->reactions++;
    return 0;
}

static int page_target(const chat_store_msg *m, void *ud)
{
    (void)m;
    ((page *)ud)->fetched++;
    return 0;
}

static int read_page(const chat_store_ops *ops, void *st, chat_conv_id conv, uint64_t before,
                     page *p)
{
    memset(p, 0, sizeof *p);
    int rc = ops->begin(st);
    if (rc == CHAT_OK)
        rc = ops->msg_range(st, conv, 0, before, PAGE + 1, 1, page_row, p);
    if (p->n > PAGE)
        p->n = PAGE; /* the extra row only says there is more */
    if (rc == CHAT_OK && p->n && ops->version < 6)
        rc = ops->reaction_list(st, conv, p->seq[p->n - 1] - 1, p->seq[0] + 1, page_reaction, p);
    for (int i = 0; ops->version >= 6 && i < p->n; i++)
        p->reactions += p->n_reacts[i];
    for (int i = 0; rc == CHAT_OK && i < p->n; i++) {
        /* a reply's target; an edit's only when its row does not carry the text */
        int edit_lookup = p->kind[i] == CHAT_MSG_EDIT && !(p->flags[i] & CHAT_STORE_MSG_CURRENT);
        if (!p->target[i] ||
            (p->kind[i] != CHAT_MSG_TEXT && p->kind[i] != CHAT_MSG_MEDIA && !edit_lookup))
            continue;
        int in = 0;
        for (int j = 0; j < p->n && !in; j++)
            in = p->seq[j] == p->target[i];
        if (!in)
            rc = ops->msg_get(st, conv, p->target[i], page_target, p);
    }
    int rc2 = ops->commit(st);
    return rc != CHAT_OK ? rc : rc2;
}

static int run_history(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: life-bench history DIR [MESSAGES] [CONVS] [PAGES] [CHANGED_PCT] "
                        "[LAG]\n");
        return 2;
    }
    long long total = argc > 1 ? atoll(argv[1]) : 200000;
    int nconv = argc > 2 ? atoi(argv[2]) : 10;
    int pages = argc > 3 ? atoi(argv[3]) : 20000;
    int pct = argc > 4 ? atoi(argv[4]) : 50;
    long long lag = argc > 5 ? atoll(argv[5]) : 100;
    if (nconv < 1 || total / nconv < PAGE + 2 || pages < 1 || pct < 1 || pct > 100 || lag < 0)
        return 2;
    uint64_t per = (uint64_t)(total / nconv);
    void *st;
    if (open_store(argv[0], &st))
        return 1;
    filler f = {chat_store_sqlite_ops(), st, 0, wall_ms(), 0, 0};
    uint64_t *head = calloc(2 * (size_t)nconv, sizeof *head);
    double t0 = now_s();
    for (int life = 0; life < 2; life++)
        for (int c = 0; c < nconv; c++) {
            char peer[16];
            snprintf(peer, sizeof peer, "%c%d", life ? 'q' : 'p', c + 1);
            chat_store_conv conv;
            if (fill_conv(&f, peer, per, life ? pct : 0, (uint64_t)lag, &conv))
                return 1;
            if (conv.id != life * nconv + c + 1) {
                fprintf(stderr, "life-bench: conversation ids not 1..%d\n", 2 * nconv);
                return 1;
            }
            head[life * nconv + c] = conv.head_seq;
        }
    if (fill_done(&f))
        return 1;
    printf("filled %d plain conversations (1..%d, %llu messages each) and %d lifecycle ones "
           "(%d..%d, %llu rows each: %d %% edited and reacted to %lld messages later) in %.1f s\n",
           nconv, nconv, (unsigned long long)head[0], nconv, nconv + 1, 2 * nconv,
           (unsigned long long)head[nconv], pct, lag, now_s() - t0);

    lat l[2] = {{0}};
    long long reactions[2] = {0}, fetched[2] = {0}, wrong = 0;
    const chat_store_ops *ops = f.ops;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 2; i++) {
            l[i].n = 0;
            reactions[i] = fetched[i] = 0;
        }
        rng = 42;
        for (int n = 0; n < pages; n++) {
            int c = (int)(rnd() % (uint64_t)nconv);
            double at = (double)(rnd() % 1000000) / 1e6; /* the same place in both */
            for (int k = 0; k < 2; k++) {
                int life = (n & 1) ^ k; /* either first, in turn */
                uint64_t h = head[life * nconv + c];
                uint64_t before = 2 + (uint64_t)(at * (double)(h - 1));
                page p;
                double a = now_s();
                int rc = read_page(ops, st, life * nconv + c + 1, before, &p);
                lat_add(&l[life], (now_s() - a) * 1e3);
                reactions[life] += p.reactions;
                fetched[life] += p.fetched;
                if (rc != CHAT_OK || p.n != (int)(before - 1 < PAGE ? before - 1 : PAGE))
                    wrong++;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        printf("%-10s %d pages of %d: p50 %.3f ms, p99 %.3f ms, max %.3f ms; %.1f reactions "
               "and %.2f targets fetched per page\n",
               i ? "lifecycle" : "plain", pages, PAGE, q(&l[i], 0.5), q(&l[i], 0.99),
               q(&l[i], 1.0), (double)reactions[i] / pages, (double)fetched[i] / pages);
    int bad = wrong || reactions[0] || !reactions[1];
    if (bad)
        fprintf(stderr, "life-bench: %lld pages of the wrong size; %lld reactions in plain pages, "
                        "%lld in lifecycle ones\n", wrong, reactions[0], reactions[1]);
    printf("RESULT mode=history-life pages=%d changed_pct=%d lag=%lld plain_p50_ms=%.3f "
           "plain_p99_ms=%.3f life_p50_ms=%.3f life_p99_ms=%.3f ratio_p50=%.3f ratio_p99=%.3f "
           "reactions_per_page=%.1f fetched_per_page=%.2f\n",
           pages, pct, lag, q(&l[0], 0.5), q(&l[0], 0.99), q(&l[1], 0.5), q(&l[1], 0.99),
           q(&l[1], 0.5) / q(&l[0], 0.5), q(&l[1], 0.99) / q(&l[0], 0.99),
           (double)reactions[1] / pages, (double)fetched[1] / pages);
    free(l[0].v);
    free(l[1].v);
    free(head);
    ops->destroy(st);
    return bad;
}

/* ---------------- search ---------------- */

#define VOCAB 20000
#define WORDS_PER_MSG 8
#define NEEDLE_EVERY 1000

/* Word r of the vocabulary: distinct letters-only words ("wab", "wqzk"...). */
static void word(int r, char *out)
{
    int n = 0;
    out[n++] = 'w';
    do {
        out[n++] = (char)('a' + r % 26);
        r /= 26;
    } while (r);
    out[n] = '\0';
}

/* A rank with a Zipf-like skew: rank r is drawn 1/(r+1) as often as rank 0. */
static double cdf[VOCAB];

static int zipf(void)
{
    if (cdf[VOCAB - 1] == 0)
        for (int r = 0; r < VOCAB; r++)
            cdf[r] = (r ? cdf[r - 1] : 0) + 1.0 / (r + 1);
    double u = (double)(rnd() % 1000000) / 1e6 * cdf[VOCAB - 1];
    int lo = 0, hi = VOCAB - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Message i's text into out (the planted word in every NEEDLE_EVERY-th). */
static size_t text_of(uint64_t i, char *out, size_t cap)
{
    size_t n = 0;
    for (int w = 0; w < WORDS_PER_MSG; w++) {
        char wd[16];
        word(zipf(), wd);
        n += (size_t)snprintf(out + n, cap - n, "%s%s", w ? " " : "", wd);
    }
    if (i % NEEDLE_EVERY == 0)
        n += (size_t)snprintf(out + n, cap - n, " needle");
    return n;
}

enum { Q_RARE, Q_COMMON, Q_PAIR, Q_NEEDLE, N_CLASSES };
static const char *const class_name[N_CLASSES] = {"rare", "common", "pair", "needle"};

/* Query n of the run (the same in both targets): its class, text and scope (0: every
 * conversation of h0, else that one). */
static int query_of(int n, int nconv, char *text, size_t cap, chat_conv_id *conv)
{
    int cls = n % N_CLASSES;
    char a[16], b[16];
    switch (cls) {
    case Q_RARE:
        word(2000 + (int)(rnd() % (VOCAB - 2000)), a);
        snprintf(text, cap, "%s", a);
        break;
    case Q_COMMON:
        word((int)(rnd() % 10), a);
        snprintf(text, cap, "%s", a);
        break;
    case Q_PAIR:
        word((int)(rnd() % 10), a);
        word(10 + (int)(rnd() % 990), b);
        snprintf(text, cap, "%s %s", a, b);
        break;
    default:
        snprintf(text, cap, "needle");
    }
    *conv = (n / N_CLASSES) % 2 ? 1 + (chat_conv_id)(rnd() % (uint64_t)nconv) : 0;
    return cls;
}

/* Latencies of one target: per class and scope, and all. */
typedef struct search_lat {
    lat cls[N_CLASSES][2], all;
} search_lat;

static void report(const char *target, search_lat *s, long long total, int nconv, int queries)
{
    for (int c = 0; c < N_CLASSES; c++)
        for (int one = 0; one < 2; one++)
            printf("%-6s %-7s %-10s %zu queries: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n", target,
                   class_name[c], one ? "one conv" : "all convs", s->cls[c][one].n,
                   q(&s->cls[c][one], 0.5), q(&s->cls[c][one], 0.99), q(&s->cls[c][one], 1.0));
    printf("RESULT mode=search-%s messages=%lld convs=%d queries=%d p50_ms=%.3f p99_ms=%.3f "
           "max_ms=%.3f",
           target, total, nconv, queries, q(&s->all, 0.5), q(&s->all, 0.99), q(&s->all, 1.0));
    for (int c = 0; c < N_CLASSES; c++) {
        lat both = {0};
        for (int one = 0; one < 2; one++)
            for (size_t i = 0; i < s->cls[c][one].n; i++)
                lat_add(&both, s->cls[c][one].v[i]);
        printf(" %s_p99_ms=%.3f", class_name[c], q(&both, 0.99));
        free(both.v);
    }
    printf("\n");
    for (int c = 0; c < N_CLASSES; c++)
        for (int one = 0; one < 2; one++)
            free(s->cls[c][one].v);
    free(s->all.v);
}

/* How many hits the planted word must give: every NEEDLE_EVERY-th message, by conversation
 * (message i is in conversation 1 + i % nconv). */
static long long needles(long long total, int nconv, chat_conv_id conv)
{
    long long n = 0;
    for (long long i = 0; i < total; i += NEEDLE_EVERY)
        n += !conv || 1 + i % nconv == conv;
    return n;
}

static int store_hit(const chat_store_msg *m, uint64_t cursor, void *ud)
{
    (void)m;
    (void)cursor;
    ++*(int *)ud;
    return 0;
}

static int fill_search_store(const char *dir, long long total, int nconv)
{
    void *st;
    if (open_store(dir, &st))
        return -1;
    filler f = {chat_store_sqlite_ops(), st, 0, wall_ms(), 0, 0};
    chat_store_conv *convs = calloc((size_t)nconv, sizeof *convs);
    double t0 = now_s();
    int rc = convs ? 0 : -1;
    for (int c = 0; rc == 0 && c < nconv; c++) {
        char peer[16];
        snprintf(peer, sizeof peer, "s%d", c + 1);
        rc = new_direct(&f, "h0", peer, &convs[c]);
    }
    rng = 7;
    for (long long i = 0; rc == 0 && i < total; i++) {
        char text[256];
        chat_store_msg m = {0};
        m.sender = (i & 1) ? "h0" : "s";
        m.kind = CHAT_MSG_TEXT;
        m.body = text;
        m.body_len = text_of((uint64_t)i, text, sizeof text);
        rc = append(&f, &convs[i % nconv], &m);
    }
    for (int c = 0; rc == 0 && c < nconv; c++) {
        char peer[16];
        snprintf(peer, sizeof peer, "s%d", c + 1);
        rc = fill_head(&f, &convs[c], "h0", peer);
    }
    if (rc == 0)
        rc = fill_done(&f);
    if (rc == 0)
        printf("store: %lld messages in %d conversations in %.1f s\n", total, nconv,
               now_s() - t0);
    free(convs);
    f.ops->destroy(st);
    return rc;
}

static int fill_search_cache(const char *dir, long long total, int nconv)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    if (make_dir(dir) != 0)
        return -1;
    if (access(path, F_OK) == 0) {
        fprintf(stderr, "life-bench: %s exists (give an empty DIR)\n", path);
        return -1;
    }
    chat__cache *c;
    if (chat__cache_open(&c, path) != CHAT_OK)
        return fail("chat__cache_open");
    double t0 = now_s();
    int64_t ts = wall_ms();
    rng = 7;
    int rc = 0;
    for (long long i = 0; rc == 0 && i < total; i++) {
        /* in transactions of 10000 (chat__cache_bulk): a commit per message, as messages
         * arrive from the wire, takes minutes for 1M */
        if (i % 10000 == 0 && ((i && chat__cache_bulk(c, 0) != CHAT_OK) ||
                               chat__cache_bulk(c, 1) != CHAT_OK)) {
            rc = fail("chat__cache_bulk");
            break;
        }
        char text[256], cmid[40];
        text_of((uint64_t)i, text, sizeof text);
        snprintf(cmid, sizeof cmid, "%011llx%016llx", (unsigned long long)ts,
                 (unsigned long long)i);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddNumberToObject(m, "conv", (double)(1 + i % nconv));
        cJSON_AddNumberToObject(m, "seq", (double)(1 + i / nconv));
        cJSON_AddNumberToObject(m, "ts", (double)ts);
        cJSON_AddStringToObject(m, "from", (i & 1) ? "h0" : "s");
        cJSON_AddStringToObject(m, "cmid", cmid);
        cJSON_AddStringToObject(m, "kind", "text");
        cJSON_AddStringToObject(m, "text", text);
        if (chat__cache_msg_insert(c, m, "h0", NULL, NULL) != 1)
            rc = fail("chat__cache_msg_insert");
        cJSON_Delete(m);
    }
    if (chat__cache_bulk(c, 0) != CHAT_OK && rc == 0)
        rc = fail("chat__cache_bulk");
    chat__cache_close(c);
    if (rc == 0)
        printf("cache: %lld messages in %d conversations in %.1f s\n", total, nconv,
               now_s() - t0);
    return rc;
}

static int run_search(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: life-bench search DIR [MESSAGES] [CONVS] [QUERIES] "
                        "[store|cache|both]\n");
        return 2;
    }
    const char *dir = argv[0];
    long long total = argc > 1 ? atoll(argv[1]) : 1000000;
    int nconv = argc > 2 ? atoi(argv[2]) : 100;
    int queries = argc > 3 ? atoi(argv[3]) : 2000;
    const char *where = argc > 4 ? argv[4] : "both";
    int do_store = strcmp(where, "cache") != 0, do_cache = strcmp(where, "store") != 0;
    if (total < 1 || nconv < 1 || queries < 1 ||
        (strcmp(where, "both") && strcmp(where, "store") && strcmp(where, "cache")))
        return 2;
    if ((do_store && fill_search_store(dir, total, nconv)) ||
        (do_cache && fill_search_cache(dir, total, nconv)))
        return 1;
    long long wrong = 0;
    char path[4096];

    if (do_store) {
        void *st;
        snprintf(path, sizeof path, "%s/chat.db", dir);
        if (chat_store_sqlite_open(&st, path, 0, NULL) != CHAT_OK)
            return fail("reopening the store") ? 1 : 0;
        const chat_store_ops *ops = chat_store_sqlite_ops();
        chat_conv_id *ids = malloc((size_t)nconv * sizeof *ids);
        uint64_t *after = calloc((size_t)nconv, sizeof *after);
        for (int c = 0; c < nconv; c++)
            ids[c] = c + 1;
        search_lat s = {0};
        for (int pass = 0; pass < 2; pass++) { /* a warm-up pass, then the measured one */
            rng = 99;
            for (int n = 0; n < queries * N_CLASSES; n++) {
                char text[64];
                chat_conv_id conv;
                int cls = query_of(n, nconv, text, sizeof text, &conv);
                chat_store_search sq = {text, conv ? &ids[conv - 1] : ids, after,
                                        conv ? 1 : (size_t)nconv, 0, 21};
                int hits = 0;
                double a = now_s();
                int rc = ops->begin(st);
                if (rc == CHAT_OK)
                    rc = ops->msg_search(st, &sq, store_hit, &hits);
                ops->commit(st);
                double ms = (now_s() - a) * 1e3;
                long long want = needles(total, nconv, conv);
                if (rc != CHAT_OK || hits > 21 ||
                    (cls == Q_NEEDLE && hits != (want < 21 ? want : 21)))
                    wrong++;
                if (pass) {
                    lat_add(&s.cls[cls][conv != 0], ms);
                    lat_add(&s.all, ms);
                }
            }
        }
        report("store", &s, total, nconv, queries);
        free(ids);
        free(after);
        ops->destroy(st);
    }

    if (do_cache) {
        chat_client_config *cfg;
        chat_client *cl = NULL;
        snprintf(path, sizeof path, "%s/cache.db", dir);
        if (chat_client_config_new(&cfg) != CHAT_OK ||
            chat_client_config_set_server(cfg, "ws://127.0.0.1:9/") != CHAT_OK ||
            chat_client_config_set_token(cfg, "unused: the client never connects") != CHAT_OK ||
            chat_client_config_set_cache_path(cfg, path) != CHAT_OK ||
            chat_client_new(&cl, cfg) != CHAT_OK)
            return fail("opening a client on the cache") ? 1 : 0;
        chat_client_config_free(cfg);
        search_lat s = {0};
        for (int pass = 0; pass < 2; pass++) {
            rng = 99;
            for (int n = 0; n < queries * N_CLASSES; n++) {
                char text[64];
                chat_conv_id conv;
                int cls = query_of(n, nconv, text, sizeof text, &conv);
                chat_msg_list *l = NULL;
                double a = now_s();
                int rc = chat_client_search_local(&l, cl, text, conv, 20);
                double ms = (now_s() - a) * 1e3;
                size_t hits = rc == CHAT_OK ? chat_msg_list_count(l) : 0;
                long long want = needles(total, nconv, conv);
                if (rc != CHAT_OK || hits > 20 ||
                    (cls == Q_NEEDLE && (long long)hits != (want < 20 ? want : 20)))
                    wrong++;
                chat_msg_list_free(l);
                if (pass) {
                    lat_add(&s.cls[cls][conv != 0], ms);
                    lat_add(&s.all, ms);
                }
            }
        }
        report("cache", &s, total, nconv, queries);
        chat_client_free(cl);
    }
    if (wrong)
        fprintf(stderr, "life-bench: %lld searches failed or found the wrong number of hits\n",
                wrong);
    return wrong ? 1 : 0;
}

/* ---------------- expire-fill ---------------- */

static int run_expire_fill(int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "usage: life-bench expire-fill DIR [MESSAGES] [CONVS] [DUE_IN_MS] "
                        "[SPREAD_MS]\n");
        return 2;
    }
    long long total = argc > 1 ? atoll(argv[1]) : 200000;
    int nconv = argc > 2 ? atoi(argv[2]) : 1000;
    long long due = argc > 3 ? atoll(argv[3]) : 15000;
    long long spread = argc > 4 ? atoll(argv[4]) : 0;
    if (total < 1 || nconv < 1 || due < 0 || spread < 0)
        return 2;
    void *st;
    if (open_store(argv[0], &st))
        return 1;
    filler f = {chat_store_sqlite_ops(), st, 0, wall_ms(), 0, 0};
    int64_t first = f.now_ms + due;
    chat_store_conv *convs = calloc((size_t)nconv, sizeof *convs);
    int rc = convs ? 0 : -1;
    double t0 = now_s();
    for (int c = 0; rc == 0 && c < nconv; c++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "e%d", c + 1);
        snprintf(b, sizeof b, "f%d", c + 1);
        rc = new_direct(&f, a, b, &convs[c]);
    }
    for (long long i = 0; rc == 0 && i < total; i++) {
        chat_store_msg m = {0};
        m.sender = "e";
        m.kind = CHAT_MSG_TEXT;
        m.body = body;
        m.body_len = sizeof body - 1;
        m.expires_ms = due ? first + (int64_t)(spread * i / total) : 0;
        rc = append(&f, &convs[i % nconv], &m);
    }
    for (int c = 0; rc == 0 && c < nconv; c++) {
        char a[16], b[16];
        snprintf(a, sizeof a, "e%d", c + 1);
        snprintf(b, sizeof b, "f%d", c + 1);
        rc = fill_head(&f, &convs[c], a, b);
    }
    if (rc == 0)
        rc = fill_done(&f);
    free(convs);
    f.ops->destroy(st);
    if (rc)
        return 1;
    long long left = due ? (long long)(first - wall_ms()) : -1;
    printf("filled %lld messages in %d conversations in %.1f s; %s\n", total, nconv,
           now_s() - t0, due ? "they expire from" : "they never expire");
    if (due)
        printf("  %lld ms from now, over %lld ms\n", left, spread);
    printf("RESULT mode=expire-fill messages=%lld convs=%d due_in_ms=%lld spread_ms=%lld "
           "first_expiry_epoch_ms=%lld\n",
           total, nconv, left, spread, due ? (long long)first : 0LL);
    if (due && left <= 0) {
        fprintf(stderr, "life-bench: the fill outlasted DUE_IN_MS: raise it\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "history"))
        return run_history(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "search"))
        return run_search(argc - 2, argv + 2);
    if (argc >= 2 && !strcmp(argv[1], "expire-fill"))
        return run_expire_fill(argc - 2, argv + 2);
    fprintf(stderr, "usage: life-bench history|search|expire-fill DIR [SIZES...] (see the "
                    "comment at the top of bench/life_bench.c)\n");
    return 2;
}
