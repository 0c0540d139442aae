/* Thread names: see threadname.h. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pthread_setname_np */
#endif
#include "core/threadname.h"

#include <pthread.h>
#include <string.h>

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
