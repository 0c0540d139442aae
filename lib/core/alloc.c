/* The process-wide allocator and the chat__ allocation wrappers. */
#include "core/alloc.h"

#include "chat/common.h"
#include "chat/errors.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static void *libc_malloc(size_t size, void *ud) { (void)ud; return malloc(size); }
static void *libc_realloc(void *p, size_t size, void *ud) { (void)ud; return realloc(p, size); }
static void libc_free(void *p, void *ud) { (void)ud; free(p); }

static chat_allocator current = {libc_malloc, libc_realloc, libc_free, NULL};
/* Set once the first allocation happened: the allocator can no longer change. */
static atomic_int used;

int chat_set_default_allocator(const chat_allocator *alloc)
{
    if (!alloc || !alloc->malloc || !alloc->realloc || !alloc->free)
        return CHAT_EINVAL;
    if (atomic_load(&used))
        return CHAT_EBUSY;
    current = *alloc;
    return CHAT_OK;
}

void *chat__malloc(size_t size)
{
    atomic_store_explicit(&used, 1, memory_order_relaxed);
    return current.malloc(size ? size : 1, current.user_data);
}

void *chat__calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = chat__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *chat__realloc(void *ptr, size_t size)
{
    atomic_store_explicit(&used, 1, memory_order_relaxed);
    return current.realloc(ptr, size ? size : 1, current.user_data);
}

void chat__free(void *ptr)
{
    if (ptr)
        current.free(ptr, current.user_data);
}

char *chat__strndup(const char *s, size_t n)
{
    char *d = chat__malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *chat__strdup(const char *s)
{
    return s ? chat__strndup(s, strlen(s)) : NULL;
}

void chat_string_free(char *s)
{
    chat__free(s);
}
