/* Internal allocation entry points: every libchat allocation goes through these, so a host
 * allocator (chat_set_default_allocator) and failure-injection tests see all of them. */
#ifndef CHAT_CORE_ALLOC_H
#define CHAT_CORE_ALLOC_H

#include <stddef.h>

void *chat__malloc(size_t size);
void *chat__calloc(size_t n, size_t size);
void *chat__realloc(void *ptr, size_t size);
void chat__free(void *ptr);
char *chat__strdup(const char *s);
char *chat__strndup(const char *s, size_t n);

#endif
