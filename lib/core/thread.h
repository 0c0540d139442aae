/* libchat's own threads: their names, and a signal mask that keeps SIGPIPE away from the host.
 *
 * Names: top -H, perf and /proc/PID/task show which thread is the server's loop, its writer, the
 * store's checkpointer... instead of the host's name for each.
 *
 * SIGPIPE: a write into a socket whose peer reset it raises SIGPIPE, whose default action ends
 * the process. libuv writes with write(), OpenSSL and other libraries may too, and a library
 * must not make its host ignore a signal process-wide. So every thread the library starts
 * blocks SIGPIPE (the write then just fails with EPIPE), and a loop the host runs on its own
 * thread holds it blocked for as long as it runs. */
#ifndef CHAT_CORE_THREAD_H
#define CHAT_CORE_THREAD_H

#include <pthread.h>
#include <signal.h>

/* Name the calling thread (at most 15 characters are kept); does nothing where the system has
 * no thread names. */
void chat__thread_name(const char *name);

/* pthread_create with SIGPIPE blocked in the new thread (other signals as the caller has them).
 * Returns pthread_create's result. */
int chat__thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

/* Blocks SIGPIPE on the calling thread until chat__sigpipe_release(). */
typedef struct chat__sigpipe_hold {
    sigset_t old;    /* the thread's mask before */
    int was_pending; /* a SIGPIPE was already pending: it is the host's, left alone */
} chat__sigpipe_hold;

void chat__sigpipe_block(chat__sigpipe_hold *h);

/* Restores the mask; a SIGPIPE raised meanwhile is consumed first so that it is never delivered
 * late to the host. */
void chat__sigpipe_release(chat__sigpipe_hold *h);

#endif /* CHAT_CORE_THREAD_H */
