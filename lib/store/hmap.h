/* A small open-addressing hash table of item pointers for the memory store. Items carry their
 * own keys; the caller supplies the hash and an equality test, so one table type serves every
 * key shape. Linear probing with backward-shift deletion: no tombstones to sweep. */
#ifndef CHAT_STORE_HMAP_H
#define CHAT_STORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat__hslot {
    uint64_t hash;
    void *item; /* NULL: empty */
} chat__hslot;

typedef struct chat__hmap {
    chat__hslot *slots;
    size_t cap; /* 0 or a power of two */
    size_t len;
} chat__hmap;

typedef int (*chat__hmap_eq)(const void *item, const void *key);

/* Make room for extra more items, so the next puts cannot fail. CHAT_OK or CHAT_ENOMEM. */
int chat__hmap_reserve(chat__hmap *m, size_t extra);
void *chat__hmap_get(const chat__hmap *m, uint64_t hash, chat__hmap_eq eq, const void *key);
/* Add an item known to be absent; room must have been reserved. */
void chat__hmap_put(chat__hmap *m, uint64_t hash, void *item);
/* Remove exactly this item (compared by pointer); no-op when absent. */
void chat__hmap_del(chat__hmap *m, uint64_t hash, const void *item);
void chat__hmap_free(chat__hmap *m);

uint64_t chat__hash_bytes(uint64_t h, const void *p, size_t n);
uint64_t chat__hash_u64(uint64_t x);
#define CHAT__HASH_SEED 0xcbf29ce484222325ull

#endif
