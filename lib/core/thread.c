/* libchat's own threads: see thread.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np */
#endif
#include "core/thread.h"

#include <string.h>
#include <time.h>

void chat__thread_name(const char *name)
{
#if defined(__linux__) && defined(__GLIBC__)
    char buf[16]; /* the kernel keeps 15 bytes and a NUL; longer names fail with ERANGE */
    size_t n = strlen(name);
    if (n > sizeof buf - 1)
        n = sizeof buf - 1;
    memcpy(buf, name, n);
    buf[n] = '\0';
    pthread_setname_np(pthread_self(), buf);
#else
    (void)name;
#endif
}

int chat__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    /* A new thread inherits its creator's mask: block around the create, then restore. */
    sigset_t pipe, old;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    int rc = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void chat__sigpipe_block(chat__sigpipe_hold *h)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigpending(&pending);
    h->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe, &h->old);
}

void chat__sigpipe_release(chat__sigpipe_hold *h)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    if (!h->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
        /* Ours: a write on this thread raised it. Thread-directed, so this thread takes it. */
        struct timespec now = {0, 0};
        while (sigtimedwait(&pipe, NULL, &now) == SIGPIPE) {
        }
    }
    pthread_sigmask(SIG_SETMASK, &h->old, NULL);
}
