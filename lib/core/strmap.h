/* A string-keyed hash map (open addressing, linear probing) for the engine's hot lookups:
 * user id -> connections. Keys are copied; values are borrowed pointers. Not thread-safe. */
#ifndef CHAT_CORE_STRMAP_H
#define CHAT_CORE_STRMAP_H

#include <stddef.h>

typedef struct chat__strmap_slot {
    char *key;   /* NULL: empty; CHAT__STRMAP_TOMBSTONE: deleted */
    void *value;
} chat__strmap_slot;

typedef struct chat__strmap {
    chat__strmap_slot *slots;
    size_t cap;   /* power of two, or 0 */
    size_t used;  /* live keys */
    size_t dead;  /* tombstones */
} chat__strmap;

void chat__strmap_init(chat__strmap *m);
/* Free the keys and the table (values are the caller's). */
void chat__strmap_clear(chat__strmap *m);
/* The value for key, or NULL. */
void *chat__strmap_get(const chat__strmap *m, const char *key);
/* Insert or replace; returns CHAT_OK or CHAT_ENOMEM. */
int chat__strmap_put(chat__strmap *m, const char *key, void *value);
/* Remove key; returns its value, or NULL when absent. */
void *chat__strmap_del(chat__strmap *m, const char *key);
/* Call fn for every entry; fn must not modify the map. */
void chat__strmap_each(const chat__strmap *m, void (*fn)(const char *key, void *value, void *ud),
                       void *ud);

#endif
