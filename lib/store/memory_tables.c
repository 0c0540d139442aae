/* Row methods of the memory store. Each allocates everything it needs before changing
 * anything, so a failure (ENOMEM included) leaves the store, and any open transaction, as it
 * was.
 *
 * Arguments are not checked here: the store is used through the checking layer
 * (store/checked.h), which validates them (store/check.h) and refuses every call but the
 * single-row lookups from inside a row callback, so the iterators may share one scratch
 * buffer. */
#include "store/check.h"
#include "store/memory_internal.h"

#include "core/alloc.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns the constant, not chat__error_set's result, so the compiler sees that a failed
 * *_slot() call never falls through to use its unset output. */
static int oom(void)
{
    chat__error_set(CHAT_ENOMEM, 0, "memory store: out of memory");
    return CHAT_ENOMEM;
}

static int not_found(const char *what)
{
    return chat__error_set(CHAT_ENOTFOUND, 0, "memory store: %s: not found", what);
}

/* Conversations and people are created on first reference and never freed before destroy. */
static int conv_slot(chat__mem *s, int64_t id, chat__mconv **out)
{
    chat__mconv *c = chat__mem_conv(s, id);
    if (!c) {
        if (chat__hmap_reserve(&s->convs, 1) || !(c = chat__calloc(1, sizeof *c)))
            return oom();
        c->row.id = id;
        chat__hmap_put(&s->convs, chat__hash_u64((uint64_t)id), c);
    }
    *out = c;
    return CHAT_OK;
}

static int eq_person(const void *item, const void *key)
{
    return strcmp(((const chat__mperson *)item)->user.name, key) == 0;
}

chat__mperson *chat__mem_person(const chat__mem *s, const char *name)
{
    return chat__hmap_get(&s->people, chat__mem_str_hash(name), eq_person, name);
}

static int person_slot(chat__mem *s, const char *name, chat__mperson **out)
{
    chat__mperson *p = chat__mem_person(s, name);
    if (!p) {
        if (chat__hmap_reserve(&s->people, 1) || !(p = chat__calloc(1, sizeof *p)))
            return oom();
        chat__store_copy(p->user.name, sizeof p->user.name, name, strlen(name));
        chat__hmap_put(&s->people, chat__mem_str_hash(name), p);
    }
    *out = p;
    return CHAT_OK;
}

static int eq_dm(const void *item, const void *key)
{
    return strcmp(((const chat__mconv *)item)->row.dm_key, key) == 0;
}

int chat__mem_conv_insert(void *state, chat_store_conv *conv)
{
    chat__mem *s = state;
    int rc;
    uint64_t dh = 0;
    if (conv->dm_key[0]) {
        dh = chat__mem_str_hash(conv->dm_key);
        if (chat__hmap_get(&s->dm, dh, eq_dm, conv->dm_key))
            return chat__error_set(CHAT_EEXISTS, 0, "memory store: dm_key taken");
        if (chat__hmap_reserve(&s->dm, 1))
            return oom();
    }
    int64_t id = s->max_conv_id + 1;
    chat__mconv *c;
    if ((rc = conv_slot(s, id, &c)) || (rc = chat__mem_undo_reserve(s)))
        return rc;
    c->row = *conv;
    c->row.id = id;
    c->present = 1;
    c->saved_gen = s->tx_gen; /* created in this transaction: updates need no undo */
    if (conv->dm_key[0])
        chat__hmap_put(&s->dm, dh, c);
    chat__mem_undo_push(s, CHAT__U_CONV_INSERT, c, NULL, s->max_conv_id);
    s->max_conv_id = id;
    conv->id = id;
    return CHAT_OK;
}

int chat__mem_conv_get(void *state, int64_t id, chat_store_conv *out)
{
    chat__mem *s = state;
    chat__mconv *c = chat__mem_conv(s, id);
    if (!c || !c->present)
        return not_found("conv_get");
    *out = c->row;
    return CHAT_OK;
}

int chat__mem_conv_find_direct(void *state, const char *dm_key, chat_store_conv *out)
{
    chat__mem *s = state;
    chat__mconv *c = chat__hmap_get(&s->dm, chat__mem_str_hash(dm_key), eq_dm, dm_key);
    if (!c)
        return not_found("conv_find_direct");
    *out = c->row;
    return CHAT_OK;
}

int chat__mem_conv_update(void *state, const chat_store_conv *conv)
{
    chat__mem *s = state;
    int rc;
    chat__mconv *c = chat__mem_conv(s, conv->id);
    if (!c || !c->present)
        return not_found("conv_update");
    void *old;
    if ((rc = chat__mem_save_old(s, &c->saved_gen, &c->row, sizeof c->row, &old)))
        return rc;
    memcpy(c->row.title, conv->title, sizeof c->row.title);
    c->row.head_seq = conv->head_seq;
    c->row.change = conv->change;
    c->row.member_count = conv->member_count;
    c->row.msg_ttl_ms = conv->msg_ttl_ms;
    if (old)
        chat__mem_undo_push(s, CHAT__U_CONV_UPDATE, c, old, 0);
    return CHAT_OK;
}

int chat__mem_member_get(void *state, int64_t conv, const char *user, chat_store_member *out)
{
    chat__mem *s = state;
    chat__mconv *c = chat__mem_conv(s, conv);
    int found = 0;
    size_t pos = c ? chat__mem_member_pos(c, user, &found) : 0;
    if (!found)
        return not_found("member_get");
    *out = c->members[pos]->row;
    return CHAT_OK;
}

int chat__mem_member_put(void *state, const chat_store_member *m)
{
    chat__mem *s = state;
    int rc;
    chat__mconv *c;
    if ((rc = conv_slot(s, m->conv, &c)))
        return rc;
    int found;
    size_t pos = chat__mem_member_pos(c, m->user, &found);
    if (found) {
        chat__mmember *mm = c->members[pos];
        void *old;
        if ((rc = chat__mem_save_old(s, &mm->saved_gen, &mm->row, sizeof mm->row, &old)))
            return rc;
        mm->row = *m;
        if (old)
            chat__mem_undo_push(s, CHAT__U_MEMBER_UPDATE, mm, old, 0);
        return CHAT_OK;
    }
    chat__mperson *p;
    if ((rc = person_slot(s, m->user, &p)))
        return rc;
    void *members = chat__mem_grow(c->members, &c->cap_members, c->n_members + 1,
                                   sizeof *c->members);
    if (!members)
        return oom();
    c->members = members;
    void *convs = chat__mem_grow(p->convs, &p->cap_convs, p->n_convs + 1, sizeof *p->convs);
    if (!convs)
        return oom();
    p->convs = convs;
    chat__mmember *mm = chat__malloc(sizeof *mm);
    if (!mm || chat__mem_undo_reserve(s)) {
        chat__free(mm);
        return oom();
    }
    mm->saved_gen = s->tx_gen;
    mm->conv = c;
    mm->person = p;
    mm->row = *m;
    memmove(&c->members[pos + 1], &c->members[pos], (c->n_members - pos) * sizeof mm);
    c->members[pos] = mm;
    c->n_members++;
    p->convs[p->n_convs++] = mm;
    chat__mem_undo_push(s, CHAT__U_MEMBER_INSERT, mm, NULL, 0);
    return CHAT_OK;
}

int chat__mem_member_list(void *state, int64_t conv, int only_active, chat_store_member_cb cb,
                          void *user_data)
{
    chat__mem *s = state;
    chat__mconv *c = chat__mem_conv(s, conv);
    for (size_t i = 0; c && i < c->n_members; i++) {
        const chat_store_member *row = &c->members[i]->row;
        if (only_active && row->role <= CHAT_ROLE_NONE)
            continue;
        int r = cb(row, user_data);
        if (r)
            return r;
    }
    return CHAT_OK;
}

/* Dedupe key of a message: (conv, sender, device, cmid). */
struct cmid_key {
    int64_t conv;
    const char *sender, *device, *cmid;
    size_t sender_len, device_len, cmid_len;
};

static uint64_t cmid_hash(const struct cmid_key *k)
{
    uint64_t h = chat__hash_bytes(CHAT__HASH_SEED, &k->conv, sizeof k->conv);
    h = chat__hash_bytes(h, k->sender, k->sender_len + 1); /* the NULs separate the fields */
    h = chat__hash_bytes(h, k->device, k->device_len + 1);
    return chat__hash_bytes(h, k->cmid, k->cmid_len);
}

static const char *msg_device(const chat__mmsg *m)
{
    return m->data + m->sender_len + 1;
}

static const char *msg_cmid(const chat__mmsg *m)
{
    return msg_device(m) + m->device_len + 1;
}

const char *chat__mem_msg_body(const chat__mmsg *m)
{
    return msg_cmid(m) + m->cmid_len + 1;
}

static int eq_cmid(const void *item, const void *key)
{
    const chat__mmsg *m = item;
    const struct cmid_key *k = key;
    return m->conv == k->conv && m->sender_len == k->sender_len &&
           m->device_len == k->device_len && m->cmid_len == k->cmid_len &&
           memcmp(m->data, k->sender, k->sender_len) == 0 &&
           memcmp(msg_device(m), k->device, k->device_len) == 0 &&
           memcmp(msg_cmid(m), k->cmid, k->cmid_len) == 0;
}

void chat__mem_msg_view(const chat__mmsg *m, chat_store_msg *v)
{
    v->conv = m->conv;
    v->seq = m->seq;
    v->ts_ms = m->ts_ms;
    v->sender = m->data;
    v->device = msg_device(m);
    v->cmid = msg_cmid(m); /* "" when none */
    v->kind = m->kind;
    v->body = chat__mem_msg_body(m);
    v->body_len = m->body_len;
    v->target_seq = m->target_seq;
    v->thread_seq = m->thread_seq;
    v->edited_ms = m->edited_ms;
    v->expires_ms = m->expires_ms;
    v->flags = m->flags;
}

int chat__mem_emit_msg(const chat__mem *s, const chat__mmsg *m, chat_store_msg_cb cb,
                       void *user_data)
{
    chat_store_msg v;
    chat__store_reacts r;
    chat__mem_msg_view(m, &v);
    int rc = chat__mem_msg_reacts(s, &v, &r);
    if (rc)
        return rc;
    rc = cb(&v, user_data);
    chat__store_reacts_free(&r);
    return rc;
}

int chat__mem_msg_insert(void *state, const chat_store_msg *msg)
{
    chat__mem *s = state;
    int rc;
    const char *cmid = chat__store_cmid(msg);
    struct cmid_key k = {msg->conv, msg->sender, msg->device, cmid ? cmid : "",
                         strlen(msg->sender), strlen(msg->device), cmid ? strlen(cmid) : 0};
    chat__mconv *c;
    if ((rc = conv_slot(s, msg->conv, &c)))
        return rc;
    int found;
    size_t pos = chat__mem_msg_pos(c, msg->seq, &found);
    if (found)
        return chat__error_set(CHAT_EEXISTS, 0, "memory store: seq %llu exists",
                               (unsigned long long)msg->seq);
    uint64_t h = cmid_hash(&k);
    if (cmid) {
        if (chat__hmap_get(&s->cmids, h, eq_cmid, &k))
            return chat__error_set(CHAT_EEXISTS, 0, "memory store: cmid exists");
        if (chat__hmap_reserve(&s->cmids, 1))
            return oom();
    }
    void *msgs = chat__mem_grow(c->msgs, &c->cap_msgs, c->n_msgs + 1, sizeof *c->msgs);
    if (!msgs)
        return oom();
    c->msgs = msgs;
    chat__mmsg *m = chat__malloc(sizeof *m + k.sender_len + k.device_len + k.cmid_len + 3 +
                                 msg->body_len);
    if (!m || chat__mem_undo_reserve(s)) {
        chat__free(m);
        return oom();
    }
    m->conv = msg->conv;
    m->seq = msg->seq;
    m->ts_ms = msg->ts_ms;
    m->hash = h;
    m->body_len = msg->body_len;
    m->kind = msg->kind;
    m->has_cmid = cmid != NULL;
    m->sender_len = (unsigned char)k.sender_len; /* all <= CHAT_ID_MAX */
    m->device_len = (unsigned char)k.device_len;
    m->cmid_len = (unsigned char)k.cmid_len;
    m->target_seq = msg->target_seq;
    m->thread_seq = msg->thread_seq;
    m->edited_ms = msg->edited_ms;
    m->expires_ms = msg->expires_ms;
    m->flags = msg->flags;
    m->sid = ++s->next_sid;
    memcpy(m->data, k.sender, k.sender_len + 1);
    memcpy((char *)msg_device(m), k.device, k.device_len + 1);
    memcpy((char *)msg_cmid(m), k.cmid, k.cmid_len + 1);
    if (msg->body_len)
        memcpy((char *)chat__mem_msg_body(m), msg->body, msg->body_len);
    memmove(&c->msgs[pos + 1], &c->msgs[pos], (c->n_msgs - pos) * sizeof m);
    c->msgs[pos] = m;
    c->n_msgs++;
    if (cmid)
        chat__hmap_put(&s->cmids, h, m);
    chat__mem_undo_push(s, CHAT__U_MSG_INSERT, m, NULL, 0);
    return CHAT_OK;
}

int chat__mem_msg_find_cmid(void *state, int64_t conv, const char *sender, const char *device,
                            const char *cmid, chat_store_msg_cb cb, void *user_data)
{
    chat__mem *s = state;
    struct cmid_key k = {conv, sender, device, cmid, strlen(sender), strlen(device),
                         strlen(cmid)};
    const chat__mmsg *m = cmid[0] ? chat__hmap_get(&s->cmids, cmid_hash(&k), eq_cmid, &k) : NULL;
    if (!m)
        return not_found("msg_find_cmid");
    return chat__mem_emit_msg(s, m, cb, user_data);
}

int chat__mem_msg_range(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                        int limit, int descending, chat_store_msg_cb cb, void *user_data)
{
    chat__mem *s = state;
    /* Same bounds as the SQLite store: seqs are at most INT64_MAX, upper is inclusive. */
    uint64_t upper = before_seq == 0 || before_seq > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX
                                                                         : before_seq - 1;
    chat__mconv *c = chat__mem_conv(s, conv);
    if (!c || limit == 0 || after_seq >= upper)
        return CHAT_OK;
    int found, n = 0, r;
    if (!descending) {
        for (size_t i = chat__mem_msg_pos(c, after_seq + 1, &found);
             i < c->n_msgs && c->msgs[i]->seq <= upper && n < limit; i++, n++)
            if ((r = chat__mem_emit_msg(s, c->msgs[i], cb, user_data)))
                return r;
    } else {
        for (size_t i = chat__mem_msg_pos(c, upper + 1, &found);
             i-- > 0 && c->msgs[i]->seq > after_seq && n < limit; n++)
            if ((r = chat__mem_emit_msg(s, c->msgs[i], cb, user_data)))
                return r;
    }
    return CHAT_OK;
}

int chat__mem_grow_scratch(chat__mem *s, size_t need)
{
    if (!need)
        return CHAT_OK;
    void *p = chat__mem_grow(s->scratch, &s->cap_scratch, need, sizeof *s->scratch);
    if (!p)
        return oom();
    s->scratch = p;
    return CHAT_OK;
}

/* A member who left sees no change of the conversation after leaving: only its own row. */
static uint64_t inbox_change(const chat__mmember *m)
{
    if (m->row.role == CHAT_ROLE_NONE)
        return m->row.change;
    return m->row.change > m->conv->row.change ? m->row.change : m->conv->row.change;
}

static int cmp_inbox(const void *a, const void *b)
{
    const chat__mmember *x = *(const chat__mmember *const *)a;
    const chat__mmember *y = *(const chat__mmember *const *)b;
    uint64_t kx = inbox_change(x), ky = inbox_change(y);
    if (kx != ky)
        return kx < ky ? -1 : 1;
    return x->row.conv < y->row.conv ? -1 : x->row.conv > y->row.conv;
}

int chat__mem_user_convs(void *state, const char *user, uint64_t since_change, int limit,
                         chat_store_member_cb cb, void *user_data)
{
    chat__mem *s = state;
    chat__mperson *p = chat__mem_person(s, user);
    if (!p || limit == 0)
        return CHAT_OK;
    int rc = chat__mem_grow_scratch(s, p->n_convs);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < p->n_convs; i++) {
        chat__mmember *m = p->convs[i];
        /* Rows of a conversation that has no row are skipped, like the SQLite join does. */
        if (m->conv->present && inbox_change(m) > since_change)
            s->scratch[n++] = m;
    }
    if (n > 1)
        qsort(s->scratch, n, sizeof *s->scratch, cmp_inbox);
    for (size_t i = 0; i < n && i < (size_t)limit; i++) {
        int r = cb(&((chat__mmember *)s->scratch[i])->row, user_data);
        if (r)
            return r;
    }
    return CHAT_OK;
}

static int cmp_user(const void *a, const void *b)
{
    return strcmp((*(const chat__mmember *const *)a)->row.user,
                  (*(const chat__mmember *const *)b)->row.user);
}

int chat__mem_contacts(void *state, const char *user, chat_store_name_cb cb, void *user_data)
{
    chat__mem *s = state;
    chat__mperson *p = chat__mem_person(s, user);
    if (!p)
        return CHAT_OK;
    size_t total = 0, n = 0;
    for (size_t i = 0; i < p->n_convs; i++)
        if (p->convs[i]->row.role > CHAT_ROLE_NONE)
            total += p->convs[i]->conv->n_members;
    int rc = chat__mem_grow_scratch(s, total);
    if (rc)
        return rc;
    for (size_t i = 0; i < p->n_convs; i++) {
        const chat__mconv *c = p->convs[i]->conv;
        if (p->convs[i]->row.role <= CHAT_ROLE_NONE)
            continue;
        for (size_t j = 0; j < c->n_members; j++)
            if (c->members[j]->person != p && c->members[j]->row.role > CHAT_ROLE_NONE)
                s->scratch[n++] = c->members[j];
    }
    if (n > 1)
        qsort(s->scratch, n, sizeof *s->scratch, cmp_user);
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *name = ((chat__mmember *)s->scratch[i])->row.user;
        if (prev && strcmp(prev, name) == 0)
            continue;
        prev = name;
        int r = cb(name, user_data);
        if (r)
            return r;
    }
    return CHAT_OK;
}

int chat__mem_user_get(void *state, const char *name, chat_store_user *out)
{
    chat__mem *s = state;
    chat__mperson *p = chat__mem_person(s, name);
    if (!p || !p->has_user)
        return not_found("user_get");
    *out = p->user;
    return CHAT_OK;
}

int chat__mem_user_put(void *state, const chat_store_user *u)
{
    chat__mem *s = state;
    int rc;
    chat__mperson *p;
    if ((rc = person_slot(s, u->name, &p)))
        return rc;
    if (!p->has_user) {
        if ((rc = chat__mem_undo_reserve(s)))
            return rc;
        p->user = *u;
        p->has_user = 1;
        p->saved_gen = s->tx_gen;
        chat__mem_undo_push(s, CHAT__U_USER_INSERT, p, NULL, 0);
        return CHAT_OK;
    }
    void *old;
    if ((rc = chat__mem_save_old(s, &p->saved_gen, &p->user, sizeof p->user, &old)))
        return rc;
    p->user = *u;
    if (old)
        chat__mem_undo_push(s, CHAT__U_USER_UPDATE, p, old, 0);
    return CHAT_OK;
}

int chat__mem_eq_kv(const void *item, const void *key)
{
    return strcmp(((const chat__mkv *)item)->key, key) == 0;
}

int chat__mem_kv_put(chat__mem *s, chat__hmap *map, int insert_op, const char *key,
                     int64_t value)
{
    uint64_t h = chat__mem_str_hash(key);
    chat__mkv *kv = chat__hmap_get(map, h, chat__mem_eq_kv, key);
    int rc;
    if (kv) {
        if (s->in_tx && kv->saved_gen != s->tx_gen) {
            if ((rc = chat__mem_undo_reserve(s)))
                return rc;
            chat__mem_undo_push(s, CHAT__U_KV_UPDATE, kv, NULL, kv->value);
            kv->saved_gen = s->tx_gen;
        }
        kv->value = value;
        return CHAT_OK;
    }
    size_t len = strlen(key);
    if (chat__hmap_reserve(map, 1))
        return oom();
    kv = chat__malloc(sizeof *kv + len + 1);
    if (!kv || chat__mem_undo_reserve(s)) {
        chat__free(kv);
        return oom();
    }
    kv->saved_gen = s->tx_gen;
    kv->hash = h;
    kv->value = value;
    memcpy(kv->key, key, len + 1);
    chat__hmap_put(map, h, kv);
    chat__mem_undo_push(s, insert_op, kv, NULL, 0);
    return CHAT_OK;
}

int chat__mem_revoked_put(void *state, const char *session_id, int64_t exp_ms)
{
    chat__mem *s = state;
    return chat__mem_kv_put(s, &s->revoked, CHAT__U_REVOKED_INSERT, session_id, exp_ms);
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const chat__mkv *const *)a)->key, (*(const chat__mkv *const *)b)->key);
}

int chat__mem_revoked_list(void *state, int64_t now_ms,
                           int (*cb)(const char *session_id, int64_t exp_ms, void *user_data),
                           void *user_data)
{
    chat__mem *s = state;
    int rc = chat__mem_grow_scratch(s, s->revoked.len);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < s->revoked.cap; i++) {
        chat__mkv *kv = s->revoked.slots[i].item;
        if (kv && kv->value > now_ms)
            s->scratch[n++] = kv;
    }
    if (n > 1)
        qsort(s->scratch, n, sizeof *s->scratch, cmp_key);
    for (size_t i = 0; i < n; i++) {
        const chat__mkv *kv = s->scratch[i];
        int r = cb(kv->key, kv->value, user_data);
        if (r)
            return r;
    }
    return CHAT_OK;
}

int chat__mem_meta_get(void *state, const char *key, int64_t *value)
{
    chat__mem *s = state;
    const chat__mkv *kv = chat__hmap_get(&s->meta, chat__mem_str_hash(key), chat__mem_eq_kv, key);
    if (!kv)
        return not_found("meta_get");
    *value = kv->value;
    return CHAT_OK;
}

int chat__mem_meta_set(void *state, const char *key, int64_t value)
{
    chat__mem *s = state;
    return chat__mem_kv_put(s, &s->meta, CHAT__U_META_INSERT, key, value);
}

/* ---- media ---- */

int chat__mem_eq_media(const void *item, const void *key)
{
    return strcmp(((const chat__mmedia *)item)->row.id, key) == 0;
}

int chat__mem_media_put(void *state, const chat_store_media *m)
{
    chat__mem *s = state;
    uint64_t h = chat__mem_str_hash(m->id);
    if (chat__hmap_get(&s->media, h, chat__mem_eq_media, m->id))
        return chat__error_set(CHAT_EEXISTS, 0, "memory store: media_put: %s exists", m->id);
    if (chat__hmap_reserve(&s->media, 1))
        return oom();
    chat__mmedia *item = chat__malloc(sizeof *item);
    if (!item || chat__mem_undo_reserve(s)) {
        chat__free(item);
        return oom();
    }
    item->hash = h;
    item->refs = 0;
    item->row = *m;
    chat__hmap_put(&s->media, h, item);
    chat__mem_undo_push(s, CHAT__U_MEDIA_INSERT, item, NULL, 0);
    return CHAT_OK;
}

int chat__mem_media_get(void *state, const char *id, chat_store_media *out)
{
    chat__mem *s = state;
    const chat__mmedia *m = chat__hmap_get(&s->media, chat__mem_str_hash(id), chat__mem_eq_media, id);
    if (!m)
        return not_found("media_get");
    *out = m->row;
    return CHAT_OK;
}

static int grant_key(char *buf, size_t size, const char *id, int64_t conv, const char *user)
{
    int n = snprintf(buf, size, "%s\n%lld\n%s", id, (long long)conv, user);
    return n > 0 && (size_t)n < size ? CHAT_OK : CHAT_EINVAL;
}

int chat__mem_media_grant(void *state, const char *id, int64_t conv, const char *user)
{
    chat__mem *s = state;
    char key[CHAT_MEDIA_ID_MAX + CHAT_ID_MAX + 32];
    if (grant_key(key, sizeof key, id, conv, user))
        return chat__error_set(CHAT_EINVAL, 0, "memory store: media_grant: key too long");
    if (chat__hmap_get(&s->grants, chat__mem_str_hash(key), chat__mem_eq_kv, key))
        return CHAT_OK;
    return chat__mem_kv_put(s, &s->grants, CHAT__U_GRANT_INSERT, key, conv);
}

static int cmp_grant(const void *a, const void *b)
{
    const chat__mkv *x = *(const chat__mkv *const *)a, *y = *(const chat__mkv *const *)b;
    if (x->value != y->value)
        return x->value < y->value ? -1 : 1;
    return strcmp(x->key, y->key);
}

int chat__mem_media_grants(void *state, const char *id, chat_store_grant_cb cb, void *user_data)
{
    chat__mem *s = state;
    int rc = chat__mem_grow_scratch(s, s->grants.len);
    if (rc)
        return rc;
    size_t idlen = strlen(id), n = 0;
    for (size_t i = 0; i < s->grants.cap; i++) {
        chat__mkv *kv = s->grants.slots[i].item;
        if (kv && strncmp(kv->key, id, idlen) == 0 && kv->key[idlen] == '\n')
            s->scratch[n++] = kv;
    }
    if (n > 1)
        qsort(s->scratch, n, sizeof *s->scratch, cmp_grant);
    for (size_t i = 0; i < n; i++) {
        const chat__mkv *kv = s->scratch[i];
        const char *user = strchr(kv->key + idlen + 1, '\n');
        int r = cb(kv->value, user ? user + 1 : "", user_data);
        if (r)
            return r;
    }
    return CHAT_OK;
}

/* ---- push registrations and mutes ---- */

/* Overwrite r's value, logging the old one once per transaction. */
static int reg_set(chat__mem *s, chat__mreg *r, int present, const chat_store_push_reg *row)
{
    void *old;
    int rc = chat__mem_save_old(s, &r->saved_gen, &r->v, sizeof r->v, &old);
    if (rc)
        return rc;
    r->v.present = present;
    if (row)
        r->v.row = *row;
    if (old)
        chat__mem_undo_push(s, CHAT__U_REG_UPDATE, r, old, 0);
    return CHAT_OK;
}

int chat__mem_push_reg_put(void *state, const chat_store_push_reg *reg)
{
    chat__mem *s = state;
    chat__mperson *p;
    int rc, found;
    if ((rc = person_slot(s, reg->user, &p)))
        return rc;
    size_t pos = chat__mem_reg_pos(p, reg->device, &found);
    if (found)
        return reg_set(s, p->regs[pos], 1, reg);
    void *regs = chat__mem_grow(p->regs, &p->cap_regs, p->n_regs + 1, sizeof *p->regs);
    if (!regs)
        return oom();
    p->regs = regs;
    chat__mreg *r = chat__malloc(sizeof *r);
    if (!r || chat__mem_undo_reserve(s)) {
        chat__free(r);
        return oom();
    }
    r->saved_gen = s->tx_gen;
    r->person = p;
    r->v.present = 1;
    r->v.row = *reg;
    memmove(&p->regs[pos + 1], &p->regs[pos], (p->n_regs - pos) * sizeof r);
    p->regs[pos] = r;
    p->n_regs++;
    chat__mem_undo_push(s, CHAT__U_REG_INSERT, r, NULL, 0);
    return CHAT_OK;
}

int chat__mem_push_reg_del(void *state, const char *user, const char *device)
{
    chat__mem *s = state;
    chat__mperson *p = chat__mem_person(s, user);
    int found = 0;
    size_t pos = p ? chat__mem_reg_pos(p, device, &found) : 0;
    if (!found || !p->regs[pos]->v.present)
        return not_found("push_reg_del");
    return reg_set(s, p->regs[pos], 0, NULL);
}

/* A scan of every registration: tokens are deleted rarely (a device re-registering, or a
 * provider calling one invalid), so they get no index of their own. */
int chat__mem_push_reg_del_token(void *state, int platform, const char *token)
{
    chat__mem *s = state;
    for (size_t i = 0; i < s->people.cap; i++) {
        chat__mperson *p = s->people.slots[i].item;
        for (size_t j = 0; p && j < p->n_regs; j++) {
            chat__mreg *r = p->regs[j];
            if (r->v.present && r->v.row.platform == platform &&
                strcmp(r->v.row.token, token) == 0) {
                int rc = reg_set(s, r, 0, NULL);
                if (rc)
                    return rc;
            }
        }
    }
    return CHAT_OK;
}

int chat__mem_push_reg_list(void *state, const char *user, chat_store_push_reg_cb cb,
                            void *user_data)
{
    chat__mem *s = state;
    chat__mperson *p = chat__mem_person(s, user);
    for (size_t i = 0; p && i < p->n_regs; i++) {
        if (!p->regs[i]->v.present)
            continue;
        int r = cb(&p->regs[i]->v.row, user_data);
        if (r)
            return r;
    }
    return CHAT_OK;
}

static int mute_key(char *buf, size_t size, const char *user, int64_t conv)
{
    int n = snprintf(buf, size, "%s\n%lld", user, (long long)conv);
    return n > 0 && (size_t)n < size ? CHAT_OK : CHAT_EINVAL;
}

/* An unmuted conversation keeps its row with until 0, so unmuting needs no deletion. */
int chat__mem_push_mute_put(void *state, const char *user, int64_t conv, int64_t until_ms)
{
    chat__mem *s = state;
    char key[CHAT_ID_MAX + 32];
    if (mute_key(key, sizeof key, user, conv))
        return chat__error_set(CHAT_EINVAL, 0, "memory store: push_mute_put: key too long");
    if (!until_ms && !chat__hmap_get(&s->mutes, chat__mem_str_hash(key), chat__mem_eq_kv, key))
        return CHAT_OK;
    return chat__mem_kv_put(s, &s->mutes, CHAT__U_MUTE_INSERT, key, until_ms);
}

int chat__mem_push_mute_get(void *state, const char *user, int64_t conv, int64_t *until_ms)
{
    chat__mem *s = state;
    char key[CHAT_ID_MAX + 32];
    const chat__mkv *kv = NULL;
    if (mute_key(key, sizeof key, user, conv) == CHAT_OK)
        kv = chat__hmap_get(&s->mutes, chat__mem_str_hash(key), chat__mem_eq_kv, key);
    if (!kv || !kv->value)
        return not_found("push_mute_get");
    *until_ms = kv->value;
    return CHAT_OK;
}
