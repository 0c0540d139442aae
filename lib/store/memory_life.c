/* Row methods of the memory store, version 5: the message lifecycle, reactions, search,
 * account deletion and media references. As in memory_tables.c, each allocates what it needs
 * before it changes anything, arguments were checked by the checking layer, and the listings
 * that sort use the one scratch buffer. The listings scan: the memory store is for tests and
 * ephemeral servers, not for large histories. */
#include "store/check.h"
#include "store/memory_internal.h"
#include "store/sqlite_fts.h"

#include "core/alloc.h"
#include "core/error.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int oom(void)
{
    chat__error_set(CHAT_ENOMEM, 0, "memory store: out of memory");
    return CHAT_ENOMEM;
}

static int not_found(const char *what)
{
    return chat__error_set(CHAT_ENOTFOUND, 0, "memory store: %s: not found", what);
}

/* Room for k more undo entries (none needed outside a transaction). */
static int reserve_undo(chat__mem *s, size_t k)
{
    if (!s->in_tx)
        return CHAT_OK;
    chat__undo *log = chat__mem_grow(s->log, &s->cap_log, s->n_log + k, sizeof *s->log);
    if (!log)
        return oom();
    s->log = log;
    return CHAT_OK;
}

static uint64_t upper_of(uint64_t before_seq)
{
    return before_seq == 0 || before_seq > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX
                                                               : before_seq - 1;
}

static int erased(const chat__mmsg *m)
{
    return (m->flags & CHAT_STORE_MSG_ERASED) != 0;
}

static chat__mmsg *msg_at(const chat__mem *s, int64_t conv, uint64_t seq)
{
    const chat__mconv *c = chat__mem_conv(s, conv);
    int found = 0;
    size_t pos = c ? chat__mem_msg_pos(c, seq, &found) : 0;
    return found ? c->msgs[pos] : NULL;
}

int chat__mem_msg_get(void *state, int64_t conv, uint64_t seq, chat_store_msg_cb cb,
                      void *user_data)
{
    const chat__mmsg *m = msg_at(state, conv, seq);
    return m ? chat__mem_emit_msg(state, m, cb, user_data) : not_found("msg_get");
}

int chat__mem_msg_update(void *state, const chat_store_msg *msg)
{
    chat__mem *s = state;
    chat__mmsg *old = msg_at(s, msg->conv, msg->seq);
    if (!old)
        return not_found("msg_update");
    size_t ids = (size_t)old->sender_len + old->device_len + old->cmid_len + 3;
    chat__mmsg *m = chat__malloc(sizeof *m + ids + msg->body_len);
    if (!m || chat__mem_undo_reserve(s)) {
        chat__free(m);
        return oom();
    }
    *m = *old;
    memcpy(m->data, old->data, ids);
    m->kind = msg->kind;
    m->body_len = msg->body_len;
    if (msg->body_len)
        memcpy(m->data + ids, msg->body, msg->body_len);
    m->flags = msg->flags;
    m->edited_ms = msg->edited_ms;
    m->expires_ms = msg->expires_ms;
    chat__mem_msg_replace(s, old, m);
    if (s->in_tx)
        chat__mem_undo_push(s, CHAT__U_MSG_UPDATE, m, old, 0);
    else
        chat__mem_msg_free_wiped(old);
    return CHAT_OK;
}

int chat__mem_msg_related(void *state, int64_t conv, uint64_t target_seq, int kind,
                          chat_store_msg_cb cb, void *user_data)
{
    chat__mem *s = state;
    const chat__mconv *c = chat__mem_conv(s, conv);
    if (!c || target_seq == 0)
        return CHAT_OK;
    int found, r;
    for (size_t i = chat__mem_msg_pos(c, target_seq + 1, &found); i < c->n_msgs; i++) {
        const chat__mmsg *m = c->msgs[i];
        if (m->target_seq == target_seq && m->kind == kind &&
            (r = chat__mem_emit_msg(s, m, cb, user_data)))
            return r;
    }
    return CHAT_OK;
}

int chat__mem_msg_thread(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                         uint64_t before_seq, int limit, int descending, chat_store_msg_cb cb,
                         void *user_data)
{
    chat__mem *s = state;
    uint64_t upper = upper_of(before_seq);
    const chat__mconv *c = chat__mem_conv(s, conv);
    if (!c || limit == 0 || after_seq >= upper || thread_seq == 0)
        return CHAT_OK;
    int found, n = 0, r;
    size_t lo = chat__mem_msg_pos(c, after_seq + 1, &found);
    size_t hi = chat__mem_msg_pos(c, upper + 1, &found);
    for (size_t k = 0; k < hi - lo && n < limit; k++) {
        const chat__mmsg *m = c->msgs[descending ? hi - 1 - k : lo + k];
        if (m->thread_seq != thread_seq)
            continue;
        if ((r = chat__mem_emit_msg(s, m, cb, user_data)))
            return r;
        n++;
    }
    return CHAT_OK;
}

int chat__mem_msg_count(void *state, int64_t conv, uint64_t thread_seq, uint64_t after_seq,
                        uint64_t upto_seq, uint64_t *out)
{
    chat__mem *s = state;
    *out = 0;
    const chat__mconv *c = chat__mem_conv(s, conv);
    if (!c || after_seq >= upto_seq)
        return CHAT_OK;
    int found;
    for (size_t i = chat__mem_msg_pos(c, after_seq + 1, &found);
         i < c->n_msgs && c->msgs[i]->seq <= upto_seq; i++) {
        const chat__mmsg *m = c->msgs[i];
        if (m->thread_seq == thread_seq && m->kind <= CHAT_MSG_EVENT && !erased(m))
            ++*out;
    }
    return CHAT_OK;
}

static int cmp_expiry(const void *a, const void *b)
{
    const chat__mmsg *x = *(const chat__mmsg *const *)a, *y = *(const chat__mmsg *const *)b;
    if (x->expires_ms != y->expires_ms)
        return x->expires_ms < y->expires_ms ? -1 : 1;
    if (x->conv != y->conv)
        return x->conv < y->conv ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Every message of the store that keep() accepts, into the scratch buffer; *n how many. */
static int collect_all(chat__mem *s, int (*keep)(const chat__mmsg *m, const void *arg),
                       const void *arg, size_t *n)
{
    size_t total = 0;
    for (size_t i = 0; i < s->convs.cap; i++) {
        const chat__mconv *c = s->convs.slots[i].item;
        if (c)
            total += c->n_msgs;
    }
    int rc = chat__mem_grow_scratch(s, total);
    if (rc)
        return rc;
    *n = 0;
    for (size_t i = 0; i < s->convs.cap; i++) {
        const chat__mconv *c = s->convs.slots[i].item;
        for (size_t j = 0; c && j < c->n_msgs; j++)
            if (keep(c->msgs[j], arg))
                s->scratch[(*n)++] = c->msgs[j];
    }
    return CHAT_OK;
}

static int keep_expired(const chat__mmsg *m, const void *arg)
{
    int64_t now_ms = *(const int64_t *)arg;
    return m->expires_ms > 0 && m->expires_ms <= now_ms && !erased(m);
}

int chat__mem_msg_expired(void *state, int64_t now_ms, int limit, chat_store_msg_cb cb,
                          void *user_data)
{
    chat__mem *s = state;
    size_t n = 0;
    if (limit == 0)
        return CHAT_OK;
    int rc = collect_all(s, keep_expired, &now_ms, &n);
    if (rc)
        return rc;
    if (n > 1)
        qsort(s->scratch, n, sizeof *s->scratch, cmp_expiry);
    for (size_t i = 0; i < n && i < (size_t)limit; i++)
        if ((rc = chat__mem_emit_msg(s, s->scratch[i], cb, user_data)))
            return rc;
    return CHAT_OK;
}

int chat__mem_msg_by_sender(void *state, int64_t conv, const char *sender, uint64_t after_seq,
                            int limit, chat_store_msg_cb cb, void *user_data)
{
    chat__mem *s = state;
    const chat__mconv *c = chat__mem_conv(s, conv);
    if (!c || limit == 0)
        return CHAT_OK;
    int found, n = 0, r;
    for (size_t i = chat__mem_msg_pos(c, after_seq + 1, &found); i < c->n_msgs && n < limit;
         i++) {
        const chat__mmsg *m = c->msgs[i];
        if (erased(m) || strcmp(m->data, sender) != 0)
            continue;
        if ((r = chat__mem_emit_msg(s, m, cb, user_data)))
            return r;
        n++;
    }
    return CHAT_OK;
}

/* ---- search: whole words, ASCII case folded (a byte above 0x7f is part of a word) ---- */

static int word_byte(unsigned char ch)
{
    return ch >= 0x80 || (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') ||
           (ch >= 'A' && ch <= 'Z');
}

static unsigned char fold(unsigned char ch)
{
    return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch - 'A' + 'a') : ch;
}

/* The next word of t[*i..n): its start in *w and length returned; 0 at the end. */
static size_t next_word(const char *t, size_t n, size_t *i, size_t *w)
{
    while (*i < n && !word_byte((unsigned char)t[*i]))
        (*i)++;
    *w = *i;
    while (*i < n && word_byte((unsigned char)t[*i]))
        (*i)++;
    return *i - *w;
}

static int has_word(const char *doc, size_t n, const char *word, size_t len)
{
    size_t i = 0, w, l;
    while ((l = next_word(doc, n, &i, &w)) > 0) {
        if (l != len)
            continue;
        size_t k = 0;
        while (k < len && fold((unsigned char)doc[w + k]) == fold((unsigned char)word[k]))
            k++;
        if (k == len)
            return 1;
    }
    return 0;
}

struct search_arg {
    const chat_store_search *q;
    int64_t conv;
    uint64_t after;
};

static int doc_matches(const chat__mmsg *m, const char *text)
{
    size_t len, tn = strlen(text), i = 0, w, l;
    char *owned;
    const char *doc = chat__fts_doc(m->kind, chat__mem_msg_body(m), m->body_len, &len, &owned);
    int ok = doc != NULL, words = 0;
    while (ok && (l = next_word(text, tn, &i, &w)) > 0) {
        words++;
        ok = has_word(doc, len, text + w, l);
    }
    chat__free(owned);
    return ok && words > 0;
}

static int cmp_sid_desc(const void *a, const void *b)
{
    uint64_t x = (*(const chat__mmsg *const *)a)->sid, y = (*(const chat__mmsg *const *)b)->sid;
    return x > y ? -1 : x < y;
}

int chat__mem_msg_search(void *state, const chat_store_search *q, chat_store_hit_cb cb,
                         void *user_data)
{
    chat__mem *s = state;
    if (q->limit == 0 || q->n_convs == 0)
        return CHAT_OK;
    size_t total = 0;
    for (size_t i = 0; i < q->n_convs; i++) {
        const chat__mconv *c = chat__mem_conv(s, q->convs[i]);
        if (c)
            total += c->n_msgs;
    }
    int rc = chat__mem_grow_scratch(s, total);
    if (rc)
        return rc;
    size_t n = 0;
    uint64_t before = q->before ? q->before : UINT64_MAX;
    for (size_t i = 0; i < q->n_convs; i++) {
        const chat__mconv *c = chat__mem_conv(s, q->convs[i]);
        int found;
        for (size_t j = c ? chat__mem_msg_pos(c, q->after[i] + 1, &found) : 0;
             c && j < c->n_msgs; j++) {
            const chat__mmsg *m = c->msgs[j];
            if (!erased(m) && m->sid < before && doc_matches(m, q->text))
                s->scratch[n++] = c->msgs[j];
        }
    }
    if (n > 1)
        qsort(s->scratch, n, sizeof *s->scratch, cmp_sid_desc);
    for (size_t i = 0; i < n && i < (size_t)q->limit; i++) {
        const chat__mmsg *m = s->scratch[i];
        chat_store_msg v;
        chat__store_reacts r;
        chat__mem_msg_view(m, &v);
        if ((rc = chat__mem_msg_reacts(s, &v, &r)))
            return rc;
        rc = cb(&v, m->sid, user_data);
        chat__store_reacts_free(&r);
        if (rc)
            return rc;
    }
    return CHAT_OK;
}

/* ---- reactions ---- */

static int react_cmp(const chat_store_reaction *a, const chat_store_reaction *b)
{
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    int d = strcmp(a->emoji, b->emoji);
    if (d)
        return d;
    if (a->ts_ms != b->ts_ms)
        return a->ts_ms < b->ts_ms ? -1 : 1;
    return strcmp(a->user, b->user);
}

/* The first reaction at or after seq (emoji NULL) or at or after (seq, emoji). */
static size_t react_lower(const chat__mconv *c, uint64_t seq, const char *emoji)
{
    size_t lo = 0, hi = c->n_reacts;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const chat_store_reaction *r = &c->reacts[mid]->row;
        int before = r->seq < seq || (r->seq == seq && emoji && strcmp(r->emoji, emoji) < 0);
        if (before)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

size_t chat__mem_react_pos(const chat__mconv *c, const chat_store_reaction *r, int *found,
                           size_t *at)
{
    *found = 0;
    size_t i = react_lower(c, r->seq, r->emoji), pos = c->n_reacts;
    int placed = 0;
    for (; i < c->n_reacts; i++) {
        const chat_store_reaction *x = &c->reacts[i]->row;
        if (x->seq != r->seq || strcmp(x->emoji, r->emoji) != 0)
            break;
        if (!*found && strcmp(x->user, r->user) == 0) {
            *found = 1;
            *at = i;
        }
        if (!placed && react_cmp(r, x) < 0) {
            pos = i;
            placed = 1;
        }
    }
    return placed ? pos : i;
}

int chat__mem_reaction_set(void *state, const chat_store_reaction *r, int on)
{
    chat__mem *s = state;
    chat__mconv *c = chat__mem_conv(s, r->conv);
    int found = 0;
    size_t at = 0, pos = c ? chat__mem_react_pos(c, r, &found, &at) : 0;
    if (on && found)
        return chat__error_set(CHAT_EEXISTS, 0, "memory store: reaction_set: already on");
    if (!on && !found)
        return chat__error_set(CHAT_ENOTFOUND, 0, "memory store: reaction_set: not on");
    if (!on) {
        chat__mreact *x = c->reacts[at];
        if (chat__mem_undo_reserve(s))
            return oom();
        memmove(&c->reacts[at], &c->reacts[at + 1], (c->n_reacts - at - 1) * sizeof x);
        c->n_reacts--;
        if (s->in_tx)
            chat__mem_undo_push(s, CHAT__U_REACT_DELETE, x, NULL, 0);
        else
            chat__free(x);
        return CHAT_OK;
    }
    if (!c) /* reactions to messages of an unknown conversation: nothing to attach them to */
        return not_found("reaction_set");
    void *v = chat__mem_grow(c->reacts, &c->cap_reacts, c->n_reacts + 1, sizeof *c->reacts);
    if (!v)
        return oom();
    c->reacts = v;
    chat__mreact *x = chat__malloc(sizeof *x);
    if (!x || chat__mem_undo_reserve(s)) {
        chat__free(x);
        return oom();
    }
    x->row = *r;
    memmove(&c->reacts[pos + 1], &c->reacts[pos], (c->n_reacts - pos) * sizeof x);
    c->reacts[pos] = x;
    c->n_reacts++;
    chat__mem_undo_push(s, CHAT__U_REACT_INSERT, x, NULL, 0);
    return CHAT_OK;
}

int chat__mem_msg_reacts(const chat__mem *s, chat_store_msg *v, chat__store_reacts *r)
{
    const chat__mconv *c = chat__mem_conv(s, v->conv);
    size_t lo = c ? react_lower(c, v->seq, NULL) : 0, hi = lo;
    while (c && hi < c->n_reacts && c->reacts[hi]->row.seq == v->seq)
        hi++;
    r->v = r->local;
    r->n = hi - lo;
    if (r->n > CHAT__STORE_REACTS_LOCAL && !(r->v = chat__malloc(r->n * sizeof *r->v))) {
        r->v = r->local;
        r->n = 0;
        return oom();
    }
    for (size_t i = 0; i < r->n; i++)
        r->v[i] = c->reacts[lo + i]->row;
    v->reactions = r->n ? r->v : NULL;
    v->n_reactions = r->n;
    return CHAT_OK;
}

int chat__mem_reaction_list(void *state, int64_t conv, uint64_t after_seq, uint64_t before_seq,
                            chat_store_reaction_cb cb, void *user_data)
{
    chat__mem *s = state;
    const chat__mconv *c = chat__mem_conv(s, conv);
    uint64_t upper = upper_of(before_seq);
    if (!c || after_seq >= upper)
        return CHAT_OK;
    int r;
    for (size_t i = react_lower(c, after_seq + 1, NULL);
         i < c->n_reacts && c->reacts[i]->row.seq <= upper; i++)
        if ((r = cb(&c->reacts[i]->row, user_data)))
            return r;
    return CHAT_OK;
}

int chat__mem_reaction_clear(void *state, int64_t conv, uint64_t seq, const char *user)
{
    chat__mem *s = state;
    chat__mconv *c = chat__mem_conv(s, conv);
    if (!c)
        return CHAT_OK;
    size_t lo = seq ? react_lower(c, seq, NULL) : 0, hi = seq ? react_lower(c, seq + 1, NULL)
                                                              : c->n_reacts;
    size_t n = 0;
    for (size_t i = lo; i < hi; i++)
        n += !user[0] || strcmp(c->reacts[i]->row.user, user) == 0;
    if (reserve_undo(s, n))
        return oom();
    size_t keep = lo;
    for (size_t i = lo; i < hi; i++) {
        chat__mreact *x = c->reacts[i];
        if (user[0] && strcmp(x->row.user, user) != 0) {
            c->reacts[keep++] = x;
            continue;
        }
        if (s->in_tx)
            chat__mem_undo_push(s, CHAT__U_REACT_DELETE, x, NULL, 0);
        else
            chat__free(x);
    }
    memmove(&c->reacts[keep], &c->reacts[hi], (c->n_reacts - hi) * sizeof *c->reacts);
    c->n_reacts -= hi - keep;
    return CHAT_OK;
}

/* ---- accounts ---- */

int chat__mem_user_delete(void *state, const char *name, int64_t deleted_ms)
{
    chat__mem *s = state;
    chat__mperson *p = chat__mem_person(s, name);
    chat_store_user *old = NULL;
    if (p && p->has_user && !(old = chat__malloc(sizeof *old)))
        return oom();
    int rc = chat__mem_kv_put(s, &s->deleted, CHAT__U_DELETED_INSERT, name, deleted_ms);
    if (rc == CHAT_OK && old && chat__mem_undo_reserve(s))
        rc = oom();
    if (rc != CHAT_OK) {
        chat__free(old);
        return rc;
    }
    if (!old)
        return CHAT_OK;
    *old = p->user;
    p->has_user = 0;
    /* The name stays: memberships still refer to the person. */
    sodium_memzero(p->user.pwhash, sizeof p->user.pwhash);
    if (s->in_tx) {
        chat__mem_undo_push(s, CHAT__U_USER_DELETE, p, old, 0);
    } else {
        sodium_memzero(old, sizeof *old);
        chat__free(old);
    }
    return CHAT_OK;
}

static int cmp_key(const void *a, const void *b)
{
    return strcmp((*(const chat__mkv *const *)a)->key, (*(const chat__mkv *const *)b)->key);
}

int chat__mem_user_deleted(void *state, chat_store_deleted_cb cb, void *user_data)
{
    chat__mem *s = state;
    int rc = chat__mem_grow_scratch(s, s->deleted.len);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < s->deleted.cap; i++)
        if (s->deleted.slots[i].item)
            s->scratch[n++] = s->deleted.slots[i].item;
    if (n > 1)
        qsort(s->scratch, n, sizeof *s->scratch, cmp_key);
    for (size_t i = 0; i < n; i++) {
        const chat__mkv *kv = s->scratch[i];
        if ((rc = cb(kv->key, kv->value, user_data)))
            return rc;
    }
    return CHAT_OK;
}

/* ---- media references ---- */

static chat__mmedia *media_of(const chat__mem *s, const char *id)
{
    return chat__hmap_get(&s->media, chat__mem_str_hash(id), chat__mem_eq_media, id);
}

int chat__mem_media_refs(void *state, const char *id, int delta, int64_t *refs_out)
{
    chat__mem *s = state;
    chat__mmedia *m = media_of(s, id);
    if (!m)
        return not_found("media_refs");
    if (chat__mem_undo_reserve(s))
        return oom();
    chat__mem_undo_push(s, CHAT__U_MEDIA_REFS, m, NULL, m->refs);
    m->refs += delta;
    if (refs_out)
        *refs_out = m->refs;
    return CHAT_OK;
}

int chat__mem_media_delete(void *state, const char *id)
{
    chat__mem *s = state;
    chat__mmedia *m = media_of(s, id);
    if (!m)
        return not_found("media_delete");
    size_t idlen = strlen(id), n = 0;
    for (size_t i = 0; i < s->grants.cap; i++) {
        const chat__mkv *kv = s->grants.slots[i].item;
        n += kv && strncmp(kv->key, id, idlen) == 0 && kv->key[idlen] == '\n';
    }
    if (reserve_undo(s, n + 1))
        return oom();
    chat__hmap_del(&s->media, m->hash, m);
    if (s->in_tx)
        chat__mem_undo_push(s, CHAT__U_MEDIA_DELETE, m, NULL, 0);
    else
        chat__free(m);
    /* Deleting shifts later slots back: restart the scan after each one. */
    for (size_t i = 0; i < s->grants.cap;) {
        chat__mkv *kv = s->grants.slots[i].item;
        if (kv && strncmp(kv->key, id, idlen) == 0 && kv->key[idlen] == '\n') {
            chat__hmap_del(&s->grants, kv->hash, kv);
            if (s->in_tx)
                chat__mem_undo_push(s, CHAT__U_GRANT_DELETE, kv, NULL, 0);
            else
                chat__free(kv);
            i = 0;
            continue;
        }
        i++;
    }
    return CHAT_OK;
}
