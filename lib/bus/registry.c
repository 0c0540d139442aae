/* Chained hash map keyed by user id; each user holds a short list of its devices. Users have
 * few devices, so a list beats a second map. */
#include "bus/registry.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdint.h>
#include <string.h>

struct device {
    struct device *next;
    unsigned int refs; /* connections of this device id */
    char id[];
};

struct user {
    struct user *next;
    uint64_t hash;
    size_t n_devices;
    struct device *devices;
    char id[];
};

struct chat__bus_registry {
    struct user **buckets;
    size_t n_buckets; /* power of two */
    size_t n_users;
};

#define INITIAL_BUCKETS 64

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

int chat__bus_registry_new(chat__bus_registry **out)
{
    chat__bus_registry *r = chat__calloc(1, sizeof(*r));
    if (r)
        r->buckets = chat__calloc(INITIAL_BUCKETS, sizeof(*r->buckets));
    if (!r || !r->buckets) {
        chat__free(r);
        return chat__error_set(CHAT_ENOMEM, 0, "bus registry: out of memory");
    }
    r->n_buckets = INITIAL_BUCKETS;
    *out = r;
    return CHAT_OK;
}

static void free_user(struct user *u)
{
    struct device *d = u->devices;
    while (d) {
        struct device *next = d->next;
        chat__free(d);
        d = next;
    }
    chat__free(u);
}

void chat__bus_registry_free(chat__bus_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->buckets && i < r->n_buckets; i++) {
        struct user *u = r->buckets[i];
        while (u) {
            struct user *next = u->next;
            free_user(u);
            u = next;
        }
    }
    chat__free(r->buckets);
    chat__free(r);
}

/* Returns the link that points at user's entry (or at the NULL ending its chain). */
static struct user **find(const chat__bus_registry *r, const char *user, uint64_t h)
{
    struct user **link = &r->buckets[h & (r->n_buckets - 1)];
    while (*link && ((*link)->hash != h || strcmp((*link)->id, user) != 0))
        link = &(*link)->next;
    return link;
}

/* Doubling keeps chains short; failing to grow only costs speed, so it is not an error. */
static void maybe_grow(chat__bus_registry *r)
{
    if (r->n_users < r->n_buckets || r->n_buckets > SIZE_MAX / 2 / sizeof(struct user *))
        return;
    size_t n = r->n_buckets * 2;
    struct user **b = chat__calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < r->n_buckets; i++) {
        struct user *u = r->buckets[i];
        while (u) {
            struct user *next = u->next;
            u->next = b[u->hash & (n - 1)];
            b[u->hash & (n - 1)] = u;
            u = next;
        }
    }
    chat__free(r->buckets);
    r->buckets = b;
    r->n_buckets = n;
}

static struct device *new_device(const char *device)
{
    size_t len = strlen(device);
    struct device *d = chat__malloc(sizeof(*d) + len + 1);
    if (!d)
        return NULL;
    d->next = NULL;
    d->refs = 1;
    memcpy(d->id, device, len + 1);
    return d;
}

int chat__bus_registry_up(chat__bus_registry *r, const char *user, const char *device)
{
    uint64_t h = hash_str(user);
    struct user **link = find(r, user, h);
    struct user *u = *link;
    if (u) {
        for (struct device *d = u->devices; d; d = d->next) {
            if (strcmp(d->id, device) == 0) {
                d->refs++;
                return 0;
            }
        }
        struct device *d = new_device(device);
        if (!d)
            return chat__error_set(CHAT_ENOMEM, 0, "bus registry: out of memory");
        d->next = u->devices;
        u->devices = d;
        u->n_devices++;
        return 0;
    }
    size_t len = strlen(user);
    u = chat__malloc(sizeof(*u) + len + 1);
    struct device *d = u ? new_device(device) : NULL;
    if (!d) {
        chat__free(u);
        return chat__error_set(CHAT_ENOMEM, 0, "bus registry: out of memory");
    }
    u->next = NULL;
    u->hash = h;
    u->n_devices = 1;
    u->devices = d;
    memcpy(u->id, user, len + 1);
    *link = u;
    r->n_users++;
    maybe_grow(r);
    return 1;
}

int chat__bus_registry_down(chat__bus_registry *r, const char *user, const char *device)
{
    struct user **link = find(r, user, hash_str(user));
    struct user *u = *link;
    struct device **dl = u ? &u->devices : NULL;
    while (dl && *dl && strcmp((*dl)->id, device) != 0)
        dl = &(*dl)->next;
    if (!dl || !*dl)
        return chat__error_set(CHAT_ENOTFOUND, 0, "bus: device '%s' of user '%s' is not up",
                               device, user);
    struct device *d = *dl;
    if (--d->refs > 0)
        return 0;
    *dl = d->next;
    chat__free(d);
    if (--u->n_devices > 0)
        return 0;
    *link = u->next;
    chat__free(u);
    r->n_users--;
    return 1;
}

size_t chat__bus_registry_devices(const chat__bus_registry *r, const char *user)
{
    struct user *u = *find(r, user, hash_str(user));
    return u ? u->n_devices : 0;
}

size_t chat__bus_registry_users(const chat__bus_registry *r)
{
    return r->n_users;
}

int chat__bus_registry_each(const chat__bus_registry *r, int (*fn)(const char *user, void *ud),
                            void *ud)
{
    for (size_t i = 0; i < r->n_buckets; i++)
        for (struct user *u = r->buckets[i]; u; u = u->next) {
            int rc = fn(u->id, ud);
            if (rc)
                return rc;
        }
    return 0;
}
