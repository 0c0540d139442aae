/* history-fill: fill a SQLite store directly (chat_store_sqlite_open + its ops, no server) with
 * N messages in C direct conversations between user "h0" and users p1..pC (conversation ids
 * 1..C in a fresh store), then measure the store-level cost of a 50-message history page
 * (msg_range descending from a random seq, what the engine runs for `history before`), warm.
 * chatd can then serve the same store (chatd run --data-dir DIR) to chat-bench --mode history.
 *
 *   history-fill DIR [MESSAGES (1000000)] [CONVS (10)] [QUERIES (20000)]
 */
#include <chat/chat.h>
#include <chat/sys/store.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int count_cb(const chat_store_msg *m, void *ud)
{
    (void)m;
    ++*(int *)ud;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: history-fill DIR [MESSAGES] [CONVS] [QUERIES]\n");
        return 2;
    }
    const char *dir = argv[1];
    long long total = argc > 2 ? atoll(argv[2]) : 1000000;
    int nconv = argc > 3 ? atoi(argv[3]) : 10;
    int queries = argc > 4 ? atoi(argv[4]) : 20000;
    if (total < nconv || nconv < 1 || queries < 1)
        return 2;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        perror(dir);
        return 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/chat.db", dir);
    void *st;
    if (chat_store_sqlite_open(&st, path, 0, NULL) != CHAT_OK) {
        fprintf(stderr, "history-fill: cannot open %s: %s\n", path, chat_error_last()->message);
        return 1;
    }
    const chat_store_ops *ops = chat_store_sqlite_ops();
    const char body[] = "a typical short chat message, about sixty bytes of text....";
    long long per = total / nconv;
    double t0 = now_s();
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    uint64_t change = 0;
    ops->meta_get(st, "change", (int64_t *)&change);
    for (int c = 0; c < nconv; c++) {
        chat_store_conv conv = {0};
        conv.kind = CHAT_CONV_DIRECT;
        snprintf(conv.dm_key, sizeof conv.dm_key, "h0\np%d", c + 1);
        conv.member_count = 2;
        conv.created_ms = now_ms;
        ops->begin(st);
        if (ops->conv_insert(st, &conv) != CHAT_OK) {
            fprintf(stderr, "history-fill: conv_insert failed (use an empty DIR): %s\n",
                    chat_error_last()->message);
            return 1;
        }
        ops->commit(st);
        char peer[16];
        snprintf(peer, sizeof peer, "p%d", c + 1);
        long long done = 0;
        while (done < per) {
            ops->begin(st);
            for (int i = 0; i < 10000 && done < per; i++, done++) {
                char cmid[32];
                /* shaped like the client core's ids: time first, then a unique part */
                snprintf(cmid, sizeof cmid, "%011llx%016llx", (unsigned long long)now_ms,
                         (unsigned long long)done);
                const char *from = (done & 1) ? "h0" : peer;
                chat_store_msg m = {conv.id, (uint64_t)done + 1, now_ms, from, "d", cmid,
                                    CHAT_MSG_TEXT, body, sizeof body - 1, 0, 0, 0, 0, 0, NULL, 0};
                if (ops->msg_insert(st, &m) != CHAT_OK) {
                    fprintf(stderr, "history-fill: insert failed\n");
                    return 1;
                }
            }
            conv.head_seq = (uint64_t)done;
            conv.change = ++change;
            ops->conv_update(st, &conv);
            if (done >= per) {
                for (int u = 0; u < 2; u++) {
                    chat_store_member mb = {0};
                    mb.conv = conv.id;
                    snprintf(mb.user, sizeof mb.user, "%s", u ? peer : "h0");
                    mb.role = CHAT_ROLE_MEMBER;
                    mb.delivered_seq = mb.read_seq = conv.head_seq;
                    mb.change = change;
                    ops->member_put(st, &mb);
                }
                ops->meta_set(st, "change", (int64_t)change);
            }
            if (ops->commit(st) != CHAT_OK) {
                fprintf(stderr, "history-fill: commit failed\n");
                return 1;
            }
        }
        printf("conv %lld (h0, %s): %lld messages, %.1f s so far\n", (long long)conv.id, peer, per,
               now_s() - t0);
        fflush(stdout);
    }
    double fill = now_s() - t0;
    printf("filled %lld messages in %d conversations in %.1f s (%.0f/s)\n", per * nconv, nconv,
           fill, (double)(per * nconv) / fill);

    /* page queries: warm-up pass, then the measured pass */
    double *lat = malloc(sizeof *lat * (size_t)queries);
    unsigned long long seed = 42;
    int short_pages = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (int q = 0; q < queries; q++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            int64_t conv = 1 + (int64_t)((seed >> 33) % (unsigned long long)nconv);
            uint64_t before = 2 + (seed >> 11) % (unsigned long long)(per - 1);
            int got = 0;
            double a = now_s();
            ops->begin(st);
            ops->msg_range(st, conv, 0, before, 50, 1, count_cb, &got);
            ops->commit(st);
            lat[q] = (now_s() - a) * 1e3;
            if (got != (before - 1 < 50 ? (int)before - 1 : 50))
                short_pages++;
        }
        qsort(lat, (size_t)queries, sizeof *lat, cmp_double);
        printf("%s: %d pages of 50 (random conv, random 'before'): p50 %.3f ms, p99 %.3f ms, "
               "p99.9 %.3f ms, max %.3f ms\n",
               pass ? "warm" : "first pass (SQLite cache cold, OS cache as left by the fill)",
               queries, lat[queries / 2], lat[(int)(queries * 0.99)],
               lat[(int)(queries * 0.999)], lat[queries - 1]);
    }
    if (short_pages) {
        fprintf(stderr, "history-fill: %d pages returned the wrong number of messages\n",
                short_pages);
        return 1;
    }
    printf("RESULT mode=history-store messages=%lld convs=%d p50_ms=%.3f p99_ms=%.3f\n",
           per * nconv, nconv, lat[queries / 2], lat[(int)(queries * 0.99)]);
    free(lat);
    ops->destroy(st);
    return 0;
}
