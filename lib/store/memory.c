/* Memory store: lifecycle, transactions and the undo log. A transaction logs the first change
 * of each record (or its creation); rollback replays the log backwards, so its cost follows
 * the changes since begin(), not the size of the store.
 *
 * The store assumes valid arguments and a legal call order (no begin() inside a transaction,
 * no commit() or rollback() outside one, no re-entry from a row callback but the single-row
 * lookups): the checking layer (store/checked.h) that every caller goes through refuses the
 * rest. */
#include "store/memory_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <sodium.h>
#include <string.h>

void *chat__mem_grow(void *items, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return items;
    size_t n = *cap ? *cap : 4;
    while (n < need)
        n *= 2;
    void *p = chat__realloc(items, n * elem);
    if (p)
        *cap = n;
    return p;
}

static int eq_conv(const void *item, const void *key)
{
    return ((const chat__mconv *)item)->row.id == *(const int64_t *)key;
}

chat__mconv *chat__mem_conv(const chat__mem *s, int64_t id)
{
    return chat__hmap_get(&s->convs, chat__hash_u64((uint64_t)id), eq_conv, &id);
}

uint64_t chat__mem_str_hash(const char *str)
{
    return chat__hash_bytes(CHAT__HASH_SEED, str, strlen(str));
}

/* Where key is in items[0..n) sorted by key_of, or where it would go (*found 0). */
static size_t key_pos(void *const *items, size_t n, const char *(*key_of)(const void *),
                      const char *key, int *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(key_of(items[mid]), key);
        if (d == 0) {
            *found = 1;
            return mid;
        }
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

static const char *member_user(const void *m)
{
    return ((const chat__mmember *)m)->row.user;
}

size_t chat__mem_member_pos(const chat__mconv *c, const char *user, int *found)
{
    return key_pos((void *const *)c->members, c->n_members, member_user, user, found);
}

size_t chat__mem_msg_pos(const chat__mconv *c, uint64_t seq, int *found)
{
    /* Appends come in seq order: check the tail before searching. */
    if (!c->n_msgs || c->msgs[c->n_msgs - 1]->seq < seq) {
        *found = 0;
        return c->n_msgs;
    }
    size_t lo = 0, hi = c->n_msgs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->msgs[mid]->seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < c->n_msgs && c->msgs[lo]->seq == seq;
    return lo;
}

int chat__mem_undo_reserve(chat__mem *s)
{
    if (!s->in_tx)
        return CHAT_OK;
    chat__undo *log = chat__mem_grow(s->log, &s->cap_log, s->n_log + 1, sizeof *s->log);
    if (!log)
        return chat__error_set(CHAT_ENOMEM, 0, "memory store: out of memory");
    s->log = log;
    return CHAT_OK;
}

void chat__mem_undo_push(chat__mem *s, int op, void *obj, void *old, int64_t i)
{
    if (!s->in_tx) {
        chat__free(old);
        return;
    }
    s->log[s->n_log++] = (chat__undo){op, obj, old, i};
}

int chat__mem_save_old(chat__mem *s, uint64_t *saved_gen, const void *row, size_t size,
                       void **old)
{
    *old = NULL;
    if (!s->in_tx || *saved_gen == s->tx_gen)
        return CHAT_OK;
    void *copy = chat__malloc(size);
    if (!copy || chat__mem_undo_reserve(s)) {
        chat__free(copy);
        return chat__error_set(CHAT_ENOMEM, 0, "memory store: out of memory");
    }
    memcpy(copy, row, size);
    *old = copy;
    *saved_gen = s->tx_gen;
    return CHAT_OK;
}

static const char *reg_device(const void *r)
{
    return ((const chat__mreg *)r)->v.row.device;
}

size_t chat__mem_reg_pos(const chat__mperson *p, const char *device, int *found)
{
    return key_pos((void *const *)p->regs, p->n_regs, reg_device, device, found);
}

static void undo_reg_insert(chat__mreg *r)
{
    chat__mperson *p = r->person;
    int found;
    size_t pos = chat__mem_reg_pos(p, r->v.row.device, &found);
    memmove(&p->regs[pos], &p->regs[pos + 1], (p->n_regs - pos - 1) * sizeof r);
    p->n_regs--;
    chat__free(r);
}

static void undo_member_insert(chat__mmember *m)
{
    chat__mconv *c = m->conv;
    int found;
    size_t pos = chat__mem_member_pos(c, m->row.user, &found);
    memmove(&c->members[pos], &c->members[pos + 1], (c->n_members - pos - 1) * sizeof m);
    c->n_members--;
    chat__mperson *p = m->person;
    for (size_t i = p->n_convs; i-- > 0;)
        if (p->convs[i] == m) {
            p->convs[i] = p->convs[--p->n_convs];
            break;
        }
    chat__free(m);
}

static void undo_msg_insert(chat__mem *s, chat__mmsg *msg)
{
    chat__mconv *c = chat__mem_conv(s, msg->conv);
    int found;
    size_t pos = chat__mem_msg_pos(c, msg->seq, &found);
    memmove(&c->msgs[pos], &c->msgs[pos + 1], (c->n_msgs - pos - 1) * sizeof msg);
    c->n_msgs--;
    if (msg->has_cmid)
        chat__hmap_del(&s->cmids, msg->hash, msg);
    chat__free(msg);
}

void chat__mem_msg_free_wiped(chat__mmsg *m)
{
    if (!m)
        return;
    sodium_memzero(m->data, (size_t)m->sender_len + m->device_len + m->cmid_len + 3 +
                                m->body_len);
    chat__free(m);
}

/* Put message m where the message of its seq is (old, in its conversation and the dedupe
 * map). */
static void msg_swap(chat__mem *s, chat__mmsg *old, chat__mmsg *m)
{
    chat__mconv *c = chat__mem_conv(s, old->conv);
    int found;
    size_t pos = chat__mem_msg_pos(c, old->seq, &found);
    c->msgs[pos] = m;
    if (old->has_cmid) {
        chat__hmap_del(&s->cmids, old->hash, old);
        chat__hmap_put(&s->cmids, m->hash, m); /* the room old had */
    }
}

void chat__mem_msg_replace(chat__mem *s, chat__mmsg *old, chat__mmsg *m)
{
    msg_swap(s, old, m);
}

static void react_remove(chat__mconv *c, chat__mreact *r)
{
    for (size_t i = 0; i < c->n_reacts; i++)
        if (c->reacts[i] == r) {
            memmove(&c->reacts[i], &c->reacts[i + 1], (c->n_reacts - i - 1) * sizeof r);
            c->n_reacts--;
            return;
        }
}

/* Put r back into its conversation, in order (room is there: it was taken out). */
static void react_restore(chat__mem *s, chat__mreact *r)
{
    chat__mconv *c = chat__mem_conv(s, r->row.conv);
    int found;
    size_t at;
    size_t pos = chat__mem_react_pos(c, &r->row, &found, &at);
    memmove(&c->reacts[pos + 1], &c->reacts[pos], (c->n_reacts - pos) * sizeof r);
    c->reacts[pos] = r;
    c->n_reacts++;
}

static void undo(chat__mem *s, chat__undo *u)
{
    switch (u->op) {
    case CHAT__U_CONV_INSERT: {
        chat__mconv *c = u->obj;
        if (c->row.dm_key[0])
            chat__hmap_del(&s->dm, chat__mem_str_hash(c->row.dm_key), c);
        c->present = 0;
        s->max_conv_id = u->i;
        break;
    }
    case CHAT__U_CONV_UPDATE:
        ((chat__mconv *)u->obj)->row = *(const chat_store_conv *)u->old;
        break;
    case CHAT__U_MEMBER_INSERT:
        undo_member_insert(u->obj);
        break;
    case CHAT__U_MEMBER_UPDATE:
        ((chat__mmember *)u->obj)->row = *(const chat_store_member *)u->old;
        break;
    case CHAT__U_MSG_INSERT:
        undo_msg_insert(s, u->obj);
        break;
    case CHAT__U_USER_INSERT:
        ((chat__mperson *)u->obj)->has_user = 0;
        break;
    case CHAT__U_USER_UPDATE:
        ((chat__mperson *)u->obj)->user = *(const chat_store_user *)u->old;
        break;
    case CHAT__U_REVOKED_INSERT:
    case CHAT__U_META_INSERT: {
        chat__mkv *kv = u->obj;
        chat__hmap_del(u->op == CHAT__U_META_INSERT ? &s->meta : &s->revoked, kv->hash, kv);
        chat__free(kv);
        break;
    }
    case CHAT__U_KV_UPDATE:
        ((chat__mkv *)u->obj)->value = u->i;
        break;
    case CHAT__U_MEDIA_INSERT: {
        chat__mmedia *m = u->obj;
        chat__hmap_del(&s->media, m->hash, m);
        chat__free(m);
        break;
    }
    case CHAT__U_GRANT_INSERT:
    case CHAT__U_MUTE_INSERT:
    case CHAT__U_DELETED_INSERT: {
        chat__mkv *kv = u->obj;
        chat__hmap *map = u->op == CHAT__U_GRANT_INSERT  ? &s->grants
                          : u->op == CHAT__U_MUTE_INSERT ? &s->mutes
                                                         : &s->deleted;
        chat__hmap_del(map, kv->hash, kv);
        chat__free(kv);
        break;
    }
    case CHAT__U_MSG_UPDATE:
        msg_swap(s, u->obj, u->old);
        chat__free(u->obj);
        u->old = NULL; /* back in place: not the log's to free */
        break;
    case CHAT__U_REACT_INSERT: {
        chat__mreact *r = u->obj;
        react_remove(chat__mem_conv(s, r->row.conv), r);
        chat__free(r);
        break;
    }
    case CHAT__U_REACT_DELETE:
        react_restore(s, u->obj);
        u->obj = NULL;
        break;
    case CHAT__U_USER_DELETE: {
        chat__mperson *p = u->obj;
        p->user = *(const chat_store_user *)u->old;
        p->has_user = 1;
        break;
    }
    case CHAT__U_MEDIA_REFS:
        ((chat__mmedia *)u->obj)->refs = u->i;
        break;
    case CHAT__U_MEDIA_DELETE: {
        chat__mmedia *m = u->obj;
        chat__hmap_put(&s->media, m->hash, m); /* its slot is free: nothing took it since */
        u->obj = NULL;
        break;
    }
    case CHAT__U_GRANT_DELETE: {
        chat__mkv *kv = u->obj;
        chat__hmap_put(&s->grants, kv->hash, kv);
        u->obj = NULL;
        break;
    }
    case CHAT__U_REG_INSERT:
        undo_reg_insert(u->obj);
        break;
    case CHAT__U_REG_UPDATE:
        ((chat__mreg *)u->obj)->v = *(const struct chat__mreg_val *)u->old;
        break;
    }
}

/* Let go of the log: what it kept of replaced or removed rows is freed (and wiped). */
static void clear_log(chat__mem *s)
{
    for (size_t i = 0; i < s->n_log; i++) {
        chat__undo *u = &s->log[i];
        switch (u->op) {
        case CHAT__U_MSG_UPDATE:
            chat__mem_msg_free_wiped(u->old);
            break;
        case CHAT__U_USER_DELETE:
            if (u->old)
                sodium_memzero(u->old, sizeof(chat_store_user));
            chat__free(u->old);
            break;
        case CHAT__U_REACT_DELETE:
        case CHAT__U_MEDIA_DELETE:
        case CHAT__U_GRANT_DELETE:
            chat__free(u->obj); /* removed for good (NULL when undone) */
            break;
        default:
            chat__free(u->old);
        }
    }
    s->n_log = 0;
}

static int begin(void *state)
{
    chat__mem *s = state;
    s->in_tx = 1;
    s->tx_gen++;
    return CHAT_OK;
}

static int commit(void *state)
{
    chat__mem *s = state;
    clear_log(s);
    s->in_tx = 0;
    return CHAT_OK;
}

static int rollback(void *state)
{
    chat__mem *s = state;
    for (size_t i = s->n_log; i-- > 0;)
        undo(s, &s->log[i]);
    clear_log(s);
    s->in_tx = 0;
    return CHAT_OK;
}

static void free_kvs(chat__hmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        chat__free(m->slots[i].item);
    chat__hmap_free(m);
}

static void destroy(void *state)
{
    chat__mem *s = state;
    if (!s)
        return;
    clear_log(s);
    chat__free(s->log);
    for (size_t i = 0; i < s->convs.cap; i++) {
        chat__mconv *c = s->convs.slots[i].item;
        if (!c)
            continue;
        for (size_t j = 0; j < c->n_members; j++)
            chat__free(c->members[j]);
        for (size_t j = 0; j < c->n_msgs; j++)
            chat__free(c->msgs[j]);
        for (size_t j = 0; j < c->n_reacts; j++)
            chat__free(c->reacts[j]);
        chat__free(c->members);
        chat__free(c->msgs);
        chat__free(c->reacts);
        chat__free(c);
    }
    for (size_t i = 0; i < s->people.cap; i++) {
        chat__mperson *p = s->people.slots[i].item;
        if (p) {
            chat__free(p->convs);
            for (size_t j = 0; j < p->n_regs; j++)
                chat__free(p->regs[j]);
            chat__free(p->regs);
        }
        chat__free(p);
    }
    chat__hmap_free(&s->convs);
    chat__hmap_free(&s->dm);
    chat__hmap_free(&s->people);
    chat__hmap_free(&s->cmids);
    free_kvs(&s->revoked);
    free_kvs(&s->meta);
    free_kvs(&s->media);
    free_kvs(&s->grants);
    free_kvs(&s->deleted);
    free_kvs(&s->mutes);
    chat__free(s->scratch);
    chat__free(s);
}

static int ctl(void *state, int op, void *arg)
{
    (void)state;
    (void)arg;
    return chat__error_set(CHAT_ENOTSUP, 0, "memory store: unknown ctl op %d", op);
}

int chat_store_memory_new(void **state_out)
{
    if (!state_out)
        return chat__error_set(CHAT_EINVAL, 0, "memory store: NULL state_out");
    chat__mem *s = chat__calloc(1, sizeof *s);
    if (!s)
        return chat__error_set(CHAT_ENOMEM, 0, "memory store: out of memory");
    *state_out = s;
    return CHAT_OK;
}

static const chat_store_ops memory_ops = {
    .version = CHAT_STORE_OPS_VERSION,
    .destroy = destroy,
    .begin = begin,
    .commit = commit,
    .rollback = rollback,
    .conv_insert = chat__mem_conv_insert,
    .conv_get = chat__mem_conv_get,
    .conv_find_direct = chat__mem_conv_find_direct,
    .conv_update = chat__mem_conv_update,
    .member_get = chat__mem_member_get,
    .member_put = chat__mem_member_put,
    .member_list = chat__mem_member_list,
    .msg_insert = chat__mem_msg_insert,
    .msg_find_cmid = chat__mem_msg_find_cmid,
    .msg_range = chat__mem_msg_range,
    .user_convs = chat__mem_user_convs,
    .contacts = chat__mem_contacts,
    .user_get = chat__mem_user_get,
    .user_put = chat__mem_user_put,
    .revoked_put = chat__mem_revoked_put,
    .revoked_list = chat__mem_revoked_list,
    .meta_get = chat__mem_meta_get,
    .meta_set = chat__mem_meta_set,
    .ctl = ctl,
    .media_put = chat__mem_media_put,
    .media_get = chat__mem_media_get,
    .media_grant = chat__mem_media_grant,
    .media_grants = chat__mem_media_grants,
    .msg_get = chat__mem_msg_get,
    .msg_update = chat__mem_msg_update,
    .msg_related = chat__mem_msg_related,
    .msg_thread = chat__mem_msg_thread,
    .msg_count = chat__mem_msg_count,
    .msg_expired = chat__mem_msg_expired,
    .msg_by_sender = chat__mem_msg_by_sender,
    .msg_search = chat__mem_msg_search,
    .reaction_set = chat__mem_reaction_set,
    .reaction_list = chat__mem_reaction_list,
    .reaction_clear = chat__mem_reaction_clear,
    .user_delete = chat__mem_user_delete,
    .user_deleted = chat__mem_user_deleted,
    .media_refs = chat__mem_media_refs,
    .media_delete = chat__mem_media_delete,
    .push_reg_put = chat__mem_push_reg_put,
    .push_reg_del = chat__mem_push_reg_del,
    .push_reg_del_token = chat__mem_push_reg_del_token,
    .push_reg_list = chat__mem_push_reg_list,
    .push_mute_put = chat__mem_push_mute_put,
    .push_mute_get = chat__mem_push_mute_get,
};

const chat_store_ops *chat_store_memory_ops(void)
{
    return &memory_ops;
}
