/* Deadlines in a binary min-heap: the engine's timers (presence, typing) find what is due in
 * O(log n) per entry instead of walking every entry that has a deadline. Intrusive: an entry
 * embeds a chat__timenode and the heap holds pointers to those, each node knowing its slot,
 * so an entry's deadline can be moved or dropped without a search. Not thread-safe. */
#ifndef CHAT_CORE_TIMEHEAP_H
#define CHAT_CORE_TIMEHEAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat__timenode {
    int64_t at;  /* the deadline, while queued */
    size_t slot; /* 0: not queued; else the heap index + 1 */
} chat__timenode;

typedef struct chat__timeheap {
    chat__timenode **v;
    size_t n, cap;
} chat__timeheap;

void chat__timeheap_init(chat__timeheap *h);
/* Drop the heap's array. The nodes are the caller's and are not touched (they may have been
 * freed already): a node still queued must not be used with another heap. */
void chat__timeheap_free(chat__timeheap *h);
/* Make room for n nodes in all, so that queueing any of them cannot fail: reserve when an entry
 * is created and chat__timeheap_set never needs memory. CHAT_OK or CHAT_ENOMEM. */
int chat__timeheap_reserve(chat__timeheap *h, size_t n);
/* Queue node for at, or move it there if queued. Room must have been reserved. */
void chat__timeheap_set(chat__timeheap *h, chat__timenode *node, int64_t at);
/* Unqueue node; no-op when it is not queued. */
void chat__timeheap_del(chat__timeheap *h, chat__timenode *node);
/* The node with the earliest deadline, or NULL. */
static inline chat__timenode *chat__timeheap_top(const chat__timeheap *h)
{
    return h->n ? h->v[0] : NULL;
}
static inline int chat__timenode_queued(const chat__timenode *node)
{
    return node->slot != 0;
}
/* The entry of type that embeds node as its member. */
#define CHAT__TIMENODE_ENTRY(node, type, member) \
    ((type *)(void *)((char *)(node) - offsetof(type, member)))

#endif
