/* String-keyed open-addressing hash map; see strmap.h. */
#include "core/strmap.h"

#include "chat/errors.h"
#include "core/alloc.h"

#include <stdint.h>
#include <string.h>

static char tombstone;
#define TOMB (&tombstone)

/* FNV-1a: short ids, good enough spread, no seeding needed for trusted keys. */
static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s) {
        h ^= (unsigned char)*s++;
        h *= 1099511628211ull;
    }
    return (size_t)(h ^ (h >> 32));
}

void chat__strmap_init(chat__strmap *m)
{
    memset(m, 0, sizeof *m);
}

void chat__strmap_clear(chat__strmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            chat__free(m->slots[i].key);
    chat__free(m->slots);
    chat__strmap_init(m);
}

static chat__strmap_slot *find(const chat__strmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        chat__strmap_slot *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->key != TOMB && strcmp(s->key, key) == 0)
            return s;
    }
}

void *chat__strmap_get(const chat__strmap *m, const char *key)
{
    chat__strmap_slot *s = find(m, key);
    return s ? s->value : NULL;
}

static int grow(chat__strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    /* Rehash in place of growing when tombstones are the reason for the pressure. */
    if (m->cap && m->used * 2 < m->cap)
        ncap = m->cap;
    chat__strmap_slot *ns = chat__calloc(ncap, sizeof *ns);
    if (!ns)
        return CHAT_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        chat__strmap_slot *s = &m->slots[i];
        if (!s->key || s->key == TOMB)
            continue;
        size_t j = hash(s->key) & (ncap - 1);
        while (ns[j].key)
            j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    chat__free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    m->dead = 0;
    return CHAT_OK;
}

int chat__strmap_put(chat__strmap *m, const char *key, void *value)
{
    chat__strmap_slot *s = find(m, key);
    if (s) {
        s->value = value;
        return CHAT_OK;
    }
    if ((m->used + m->dead + 1) * 4 > m->cap * 3 && grow(m) != CHAT_OK)
        return CHAT_ENOMEM;
    char *k = chat__strdup(key);
    if (!k)
        return CHAT_ENOMEM;
    size_t mask = m->cap - 1;
    size_t i = hash(key) & mask;
    while (m->slots[i].key && m->slots[i].key != TOMB)
        i = (i + 1) & mask;
    if (m->slots[i].key == TOMB)
        m->dead--;
    m->slots[i].key = k;
    m->slots[i].value = value;
    m->used++;
    return CHAT_OK;
}

void *chat__strmap_del(chat__strmap *m, const char *key)
{
    chat__strmap_slot *s = find(m, key);
    if (!s)
        return NULL;
    void *v = s->value;
    chat__free(s->key);
    s->key = TOMB;
    s->value = NULL;
    m->used--;
    m->dead++;
    return v;
}

void chat__strmap_each(const chat__strmap *m, void (*fn)(const char *key, void *value, void *ud),
                       void *ud)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB)
            fn(m->slots[i].key, m->slots[i].value, ud);
}
