/* Deadlines in a binary min-heap; see timeheap.h. */
#include "core/timeheap.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/array.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

void chat__timeheap_init(chat__timeheap *h)
{
    memset(h, 0, sizeof *h);
}

void chat__timeheap_free(chat__timeheap *h)
{
    chat__free(h->v); /* the nodes may be freed already: never touched here */
    chat__timeheap_init(h);
}

int chat__timeheap_reserve(chat__timeheap *h, size_t n)
{
    if (n <= h->cap)
        return CHAT_OK;
    chat__timenode **v = chat__array_reserve(h->v, n - 1, &h->cap, sizeof *v);
    if (!v)
        return CHAT_ENOMEM;
    h->v = v;
    return CHAT_OK;
}

static void place(chat__timeheap *h, size_t i, chat__timenode *node)
{
    h->v[i] = node;
    node->slot = i + 1;
}

/* Move the node at i up or down until the heap order holds around it. */
static void fix(chat__timeheap *h, size_t i)
{
    chat__timenode *node = h->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->v[parent]->at <= node->at)
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->v[child + 1]->at < h->v[child]->at)
            child++;
        if (node->at <= h->v[child]->at)
            break;
        place(h, i, h->v[child]);
        i = child;
    }
    place(h, i, node);
}

void chat__timeheap_set(chat__timeheap *h, chat__timenode *node, int64_t at)
{
    node->at = at;
    if (!node->slot) {
        assert(h->n < h->cap); /* the caller reserved room */
        place(h, h->n++, node);
    }
    fix(h, node->slot - 1);
}

void chat__timeheap_del(chat__timeheap *h, chat__timenode *node)
{
    if (!node->slot)
        return;
    size_t i = node->slot - 1;
    node->slot = 0;
    chat__timenode *last = h->v[--h->n];
    if (i < h->n) {
        place(h, i, last);
        fix(h, i);
    }
}
