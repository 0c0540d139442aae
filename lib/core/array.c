/* Growing arrays; see array.h. */
#include "core/array.h"

#include "core/alloc.h"

#include <stdint.h>

void *chat__array_reserve(void *v, size_t n, size_t *cap, size_t elem)
{
    if (n < *cap)
        return v;
    size_t ncap = *cap ? *cap : 16;
    while (ncap <= n)
        ncap *= 2;
    if (ncap > SIZE_MAX / elem)
        return NULL;
    void *nv = chat__realloc(v, ncap * elem);
    if (nv)
        *cap = ncap;
    return nv;
}
