/* Growing arrays: one place for the doubling-and-realloc step every list in the engine needs. */
#ifndef CHAT_CORE_ARRAY_H
#define CHAT_CORE_ARRAY_H

#include <stddef.h>

/* Return v, grown (doubling from 16) so that it holds at least n + 1 elements of elem bytes;
 * *cap is updated. NULL when out of memory (v is then untouched and still valid). */
void *chat__array_reserve(void *v, size_t n, size_t *cap, size_t elem);

#endif
