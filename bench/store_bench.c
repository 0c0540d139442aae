/* store-bench: what group commit buys. Appends chat messages the way the engine's writer does
 * (conv_get, msg_insert, conv_update, member_put per message) in transactions of 1..1024
 * messages, on the memory store and on SQLite with synchronous=NORMAL and FULL. Every figure is
 * printed as messages/s and as a ratio to the memory store measured in the same run.
 *
 *   store-bench [DIR] [SECONDS_PER_CASE]
 */
#include <chat/chat.h>
#include <chat/sys/store.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Append messages in batches of `batch` for about `secs`; returns messages per second. */
static double run_case(const chat_store_ops *ops, void *st, int batch, double secs)
{
    chat_store_conv conv = {0};
    conv.kind = CHAT_CONV_DIRECT;
    snprintf(conv.dm_key, sizeof conv.dm_key, "a%d\nb", batch);
    conv.member_count = 2;
    if (ops->conv_insert(st, &conv) != CHAT_OK)
        return -1;
    chat_store_member me = {0};
    me.conv = conv.id;
    strcpy(me.user, "alice");
    me.role = CHAT_ROLE_MEMBER;
    ops->member_put(st, &me);

    const char body[] = "a typical short chat message, about sixty bytes of text....";
    long n = 0;
    double start = now_s(), end = start + secs;
    while (now_s() < end) {
        if (ops->begin(st) != CHAT_OK)
            return -1;
        for (int i = 0; i < batch; i++) {
            char cmid[32];
            snprintf(cmid, sizeof cmid, "c%ld", n);
            ops->conv_get(st, conv.id, &conv);
            chat_store_msg m = {conv.id, conv.head_seq + 1, 0, "alice", "phone", cmid,
                                CHAT_MSG_TEXT, body, sizeof body - 1, 0, 0, 0, 0, 0, NULL, 0};
            if (ops->msg_insert(st, &m) != CHAT_OK)
                return -1;
            conv.head_seq = m.seq;
            conv.change++;
            ops->conv_update(st, &conv);
            me.read_seq = me.delivered_seq = m.seq;
            ops->member_put(st, &me);
            n++;
        }
        if (ops->commit(st) != CHAT_OK)
            return -1;
    }
    return (double)n / (now_s() - start);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    double secs = argc > 2 ? atof(argv[2]) : 1.0;
    static const int batches[] = {1, 16, 128, 1024};
    char path[4096];
    printf("store-bench: %.1f s per case, appends per second (ratio to the memory store)\n", secs);
    printf("%-22s %10s %10s %10s %10s\n", "store", "batch 1", "batch 16", "batch 128",
           "batch 1024");
    double base[4] = {0};
    for (int mode = 0; mode < 3; mode++) {
        void *st;
        const chat_store_ops *ops;
        const char *name = mode == 0 ? "memory" : mode == 1 ? "sqlite NORMAL" : "sqlite FULL";
        if (mode == 0) {
            chat_store_memory_new(&st);
            ops = chat_store_memory_ops();
        } else {
            snprintf(path, sizeof path, "%s/store-bench-%d-%d.db", dir, (int)getpid(), mode);
            if (chat_store_sqlite_open(&st, path, mode == 2 ? CHAT_STORE_SQLITE_SYNC_FULL : 0,
                                       NULL) != CHAT_OK) {
                fprintf(stderr, "store-bench: cannot open %s: %s\n", path,
                        chat_error_last()->message);
                return 1;
            }
            ops = chat_store_sqlite_ops();
        }
        printf("%-22s", name);
        for (int b = 0; b < 4; b++) {
            double rate = run_case(ops, st, batches[b], secs);
            if (mode == 0)
                base[b] = rate;
            if (rate < 0)
                printf(" %10s", "failed");
            else if (mode == 0)
                printf(" %10.0f", rate);
            else
                printf(" %6.0f (%.3f)", rate, rate / base[b]);
            fflush(stdout);
        }
        printf("\n");
        ops->destroy(st);
        static const char *suffixes[] = {"", "-wal", "-shm"};
        for (int i = 0; mode && i < 3; i++) {
            char p2[4200];
            snprintf(p2, sizeof p2, "%s%s", path, suffixes[i]);
            unlink(p2);
        }
    }
    return 0;
}
