/* Open-addressing hash table for the memory store. */
#include "store/hmap.h"

#include "chat/errors.h"
#include "core/alloc.h"

uint64_t chat__hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull; /* FNV-1a */
    return h;
}

uint64_t chat__hash_u64(uint64_t x)
{
    /* splitmix64 finaliser: sequential ids must not cluster under linear probing. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t home(const chat__hmap *m, uint64_t hash)
{
    /* FNV's low bits are weak; fold the high half in. */
    return (size_t)(hash ^ (hash >> 32)) & (m->cap - 1);
}

static void place(chat__hmap *m, uint64_t hash, void *item)
{
    size_t i = home(m, hash);
    while (m->slots[i].item)
        i = (i + 1) & (m->cap - 1);
    m->slots[i].hash = hash;
    m->slots[i].item = item;
}

int chat__hmap_reserve(chat__hmap *m, size_t extra)
{
    size_t need = m->len + extra;
    if (need * 4 <= m->cap * 3) /* load factor at most 3/4 */
        return CHAT_OK;
    size_t cap = m->cap ? m->cap : 16;
    while (need * 4 > cap * 3)
        cap *= 2;
    chat__hslot *old = m->slots;
    size_t old_cap = m->cap;
    chat__hslot *slots = chat__calloc(cap, sizeof *slots);
    if (!slots)
        return CHAT_ENOMEM;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].item)
            place(m, old[i].hash, old[i].item);
    chat__free(old);
    return CHAT_OK;
}

void *chat__hmap_get(const chat__hmap *m, uint64_t hash, chat__hmap_eq eq, const void *key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = home(m, hash); m->slots[i].item; i = (i + 1) & (m->cap - 1))
        if (m->slots[i].hash == hash && eq(m->slots[i].item, key))
            return m->slots[i].item;
    return NULL;
}

void chat__hmap_put(chat__hmap *m, uint64_t hash, void *item)
{
    place(m, hash, item);
    m->len++;
}

void chat__hmap_del(chat__hmap *m, uint64_t hash, const void *item)
{
    if (!m->cap)
        return;
    size_t mask = m->cap - 1, i = home(m, hash);
    while (m->slots[i].item != item) {
        if (!m->slots[i].item)
            return;
        i = (i + 1) & mask;
    }
    /* Backward shift: pull later members of the probe run into the hole when the hole lies
     * between their home slot and where they sit. */
    for (size_t j = i;;) {
        j = (j + 1) & mask;
        if (!m->slots[j].item)
            break;
        size_t k = home(m, m->slots[j].hash);
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        m->slots[i] = m->slots[j];
        i = j;
    }
    m->slots[i].item = NULL;
    m->len--;
}

void chat__hmap_free(chat__hmap *m)
{
    chat__free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}
