/* The wire form of a message as it is now, encoded directly (frame.h's builder, no cJSON tree):
 * its row (text or media, or a tombstone once erased; an event; an edit, delete or reaction
 * naming its target) and what the engine looks up for it (the reply's target with a preview,
 * the edit's current text unless its row carries it, the reactions unless the rows carry
 * them). And pages of messages: copied out of the store's
 * callbacks, then looked up and encoded in one pass. */
#include "server/lifecycle.h"

#include "core/alloc.h"
#include "core/array.h"
#include "core/error.h"
#include "core/json.h"
#include "store/sqlite_fts.h"

#include <string.h>

/* Longest reply preview, in bytes (cut at a character boundary). */
#define PREVIEW_MAX 100

static const char *kind_name(int kind)
{
    switch (kind) {
    case CHAT_MSG_MEDIA: return "media";
    case CHAT_MSG_EVENT: return "event";
    case CHAT_MSG_EDIT: return "edit";
    case CHAT_MSG_DELETE: return "delete";
    case CHAT_MSG_REACT: return "react";
    default: return "text";
    }
}

static int erased(const chat_store_msg *m)
{
    return (m->flags & CHAT_STORE_MSG_ERASED) != 0;
}

/* A message and what its encoding needs, worked out once before the builder's two passes. */
typedef struct enc {
    const chat_store_msg *m;
    const chat__msg_view *v;
    int body_json;           /* media, event: the stored body is one JSON value (else null) */
    const char *text;        /* a text body up to its first NUL (as cJSON would stop) */
    size_t text_len;
    int reply;               /* 0: none; 1: seq only; 2: with the target; 3: target gone */
    const chat_store_msg *t; /* reply or edit target (an edit carrying its text: itself) */
    const char *preview;     /* of a reply: the target's text or file name, cut */
    size_t preview_len;
    char *owned;             /* a media target's name */
    int edit_text;           /* an edit: t's text and edited time are shown */
    int oom;                 /* out of memory: nothing to encode */
} enc;

static size_t cut_utf8(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

static void prepare(enc *e, const chat_store_msg *m, const chat__msg_view *v)
{
    static const chat__msg_view none = {0};
    memset(e, 0, sizeof *e);
    e->m = m;
    e->v = v ? v : &none;
    if (m->kind == CHAT_MSG_MEDIA || m->kind == CHAT_MSG_EVENT) {
        /* A stored body that is not JSON reads as null; one that could not be parsed for want
         * of memory fails the message. */
        cJSON *j = erased(m) ? NULL : chat__json_parse(m->body, m->body_len, &e->oom);
        e->body_json = j != NULL;
        cJSON_Delete(j);
    }
    if (m->kind == CHAT_MSG_TEXT || m->kind == CHAT_MSG_REACT) {
        e->text = m->body;
        e->text_len = strnlen(m->body, m->body_len);
    }
    const chat_store_msg *t = e->v->target;
    if (m->target_seq && (m->kind == CHAT_MSG_TEXT || m->kind == CHAT_MSG_MEDIA)) {
        e->reply = e->v->target_missing || (t && erased(t)) ? 3 : t ? 2 : 1;
        if (e->reply == 2) {
            e->t = t;
            size_t len = 0;
            const char *doc = chat__fts_doc(t->kind, t->body, t->body_len, &len, &e->owned);
            if (doc && t->kind == CHAT_MSG_TEXT)
                len = strnlen(doc, len);
            e->preview = doc ? doc : "";
            e->preview_len = doc ? cut_utf8(doc, len, PREVIEW_MAX) : 0;
        }
    }
    if (m->kind == CHAT_MSG_EDIT && (m->flags & CHAT_STORE_MSG_CURRENT)) {
        /* The row holds what its target shows; emptied once the target is erased. */
        if (m->body_len && !erased(m)) {
            e->t = m;
            e->edit_text = 1;
        }
    } else if (m->kind == CHAT_MSG_EDIT && t && t->kind == CHAT_MSG_TEXT && !erased(t)) {
        e->t = t;
        e->edit_text = 1;
    }
}

static void enc_fb(chat__fb *b, const enc *e)
{
#define LIT(s) chat__fb_raw(b, s, sizeof s - 1)
#define STR(s) chat__fb_str(b, s, strlen(s))
    const chat_store_msg *m = e->m;
    LIT("{\"type\":\"msg\",\"conv\":");
    chat__fb_i64(b, m->conv);
    LIT(",\"seq\":");
    chat__fb_u64(b, m->seq);
    LIT(",\"ts\":");
    chat__fb_i64(b, m->ts_ms);
    LIT(",\"from\":");
    STR(m->sender);
    LIT(",\"device\":");
    STR(m->device);
    LIT(",\"cmid\":");
    STR(m->kind == CHAT_MSG_EVENT || !m->cmid ? "" : m->cmid);
    LIT(",\"kind\":\"");
    chat__fb_raw(b, kind_name(m->kind), strlen(kind_name(m->kind))); /* plain ASCII */
    LIT("\"");
    switch (m->kind) {
    case CHAT_MSG_TEXT:
        if (!erased(m)) {
            LIT(",\"text\":");
            chat__fb_str(b, e->text, e->text_len);
        }
        break;
    case CHAT_MSG_MEDIA:
    case CHAT_MSG_EVENT:
        if (!erased(m) || m->kind == CHAT_MSG_EVENT) {
            if (m->kind == CHAT_MSG_MEDIA)
                LIT(",\"media\":");
            else
                LIT(",\"event\":");
            if (e->body_json)
                chat__fb_raw(b, m->body, m->body_len);
            else
                LIT("null");
        }
        break;
    case CHAT_MSG_EDIT:
        LIT(",\"target\":");
        chat__fb_u64(b, m->target_seq);
        if (e->edit_text) {
            LIT(",\"text\":");
            chat__fb_str(b, e->t->body, strnlen(e->t->body, e->t->body_len));
            LIT(",\"edited\":");
            chat__fb_i64(b, e->t->edited_ms);
        }
        break;
    case CHAT_MSG_DELETE:
        LIT(",\"target\":");
        chat__fb_u64(b, m->target_seq);
        break;
    case CHAT_MSG_REACT:
        LIT(",\"target\":");
        chat__fb_u64(b, m->target_seq);
        LIT(",\"emoji\":");
        chat__fb_str(b, e->text_len ? e->text + 1 : "", e->text_len ? e->text_len - 1 : 0);
        if (e->text_len && e->text[0] == '+')
            LIT(",\"on\":true");
        else
            LIT(",\"on\":false");
        break;
    default:
        break;
    }
    if (m->kind == CHAT_MSG_TEXT || m->kind == CHAT_MSG_MEDIA) {
        if (e->reply) {
            LIT(",\"reply\":{\"seq\":");
            chat__fb_u64(b, m->target_seq);
            if (e->reply == 3) {
                LIT(",\"deleted\":true");
            } else if (e->reply == 2) {
                LIT(",\"from\":");
                STR(e->t->sender);
                LIT(",\"kind\":\"");
                chat__fb_raw(b, kind_name(e->t->kind), strlen(kind_name(e->t->kind)));
                LIT("\",\"preview\":");
                chat__fb_str(b, e->preview, e->preview_len);
            }
            LIT("}");
        }
        if (m->thread_seq) {
            LIT(",\"thread\":");
            chat__fb_u64(b, m->thread_seq);
        }
        if (m->edited_ms) {
            LIT(",\"edited\":");
            chat__fb_i64(b, m->edited_ms);
        }
        if (m->flags & CHAT_STORE_MSG_DELETED)
            LIT(",\"deleted\":true");
        else if (m->flags & CHAT_STORE_MSG_EXPIRED)
            LIT(",\"expired\":true");
        if (m->expires_ms) {
            LIT(",\"expires\":");
            chat__fb_i64(b, m->expires_ms);
        }
        const chat_store_reaction *r = e->v->reactions;
        size_t n = e->v->n_reactions;
        if (n && !erased(m)) {
            /* One entry per emoji, its users in the order they reacted. */
            LIT(",\"reactions\":[");
            for (size_t i = 0; i < n; i++) {
                int first = i == 0 || strcmp(r[i].emoji, r[i - 1].emoji) != 0;
                if (first) {
                    if (i)
                        LIT("]},");
                    LIT("{\"emoji\":");
                    STR(r[i].emoji);
                    LIT(",\"users\":[");
                } else {
                    LIT(",");
                }
                STR(r[i].user);
            }
            LIT("]}]");
        }
    }
    LIT("}");
#undef STR
#undef LIT
}

/* prepare(), and 0 when it ran out of memory (nothing left to free). */
static int prepared(enc *e, const chat_store_msg *m, const chat__msg_view *view)
{
    prepare(e, m, view);
    if (!e->oom)
        return 1;
    chat__free(e->owned);
    return 0;
}

chat__frame *chat__msg_frame(const chat_store_msg *m, const chat__msg_view *view)
{
    enc e;
    if (!prepared(&e, m, view))
        return NULL;
    chat__fb b = {NULL, 0};
    enc_fb(&b, &e);
    chat__frame *f = chat__fb_alloc(&b);
    if (f)
        enc_fb(&b, &e);
    chat__free(e.owned);
    return f;
}

cJSON *chat__msg_item(const chat_store_msg *m, const chat__msg_view *view)
{
    /* Encoded directly and carried as a raw item: a history page costs no cJSON tree and no
     * number printing per message (the reconnect storm's main cost). */
    enc e;
    if (!prepared(&e, m, view))
        return NULL;
    chat__fb b = {NULL, 0};
    enc_fb(&b, &e);
    /* Written straight into the item's own string (cJSON's allocator, which cJSON_Delete
     * frees), not into a buffer that cJSON_CreateRaw would copy. */
    cJSON *item = cJSON_CreateNull();
    char *text = item ? cJSON_malloc(b.len + 1) : NULL;
    if (!text) {
        cJSON_Delete(item);
        chat__free(e.owned);
        return NULL;
    }
    b.out = (unsigned char *)text;
    b.len = 0;
    enc_fb(&b, &e);
    text[b.len] = '\0';
    item->type = cJSON_Raw;
    item->valuestring = text;
    chat__free(e.owned);
    return item;
}

/* ---- pages ---- */

int chat__msg_copy(chat_store_msg *dst, const chat_store_msg *m)
{
    size_t ls = strlen(m->sender), ld = strlen(m->device), lc = m->cmid ? strlen(m->cmid) : 0;
    /* The row's reactions (a store of version 6) follow the body, aligned. */
    size_t strs = ls + ld + lc + 3 + m->body_len + 1, nr = m->reactions ? m->n_reactions : 0;
    size_t at = (strs + _Alignof(chat_store_reaction) - 1) & ~(_Alignof(chat_store_reaction) - 1);
    char *buf = chat__malloc(nr ? at + nr * sizeof *m->reactions : strs);
    if (!buf)
        return CHAT_ENOMEM;
    *dst = *m;
    dst->reactions = nr ? memcpy(buf + at, m->reactions, nr * sizeof *m->reactions) : NULL;
    dst->n_reactions = nr;
    memcpy(buf, m->sender, ls + 1);
    memcpy(buf + ls + 1, m->device, ld + 1);
    memcpy(buf + ls + ld + 2, m->cmid ? m->cmid : "", lc + 1);
    char *body = buf + ls + ld + lc + 3;
    if (m->body_len)
        memcpy(body, m->body, m->body_len);
    body[m->body_len] = '\0';
    dst->sender = buf;
    dst->device = buf + ls + 1;
    dst->cmid = buf + ls + ld + 2;
    dst->body = body;
    return CHAT_OK;
}

void chat__msg_free(chat_store_msg *m)
{
    if (m)
        chat__free((void *)m->sender); /* the one allocation of chat__msg_copy */
}

int chat__page_add(const chat_store_msg *m, void *ud)
{
    chat__page *p = ud;
    chat_store_msg *v = chat__array_reserve(p->v, p->n, &p->cap, sizeof *v);
    if (!v)
        return CHAT_ENOMEM;
    p->v = v;
    if (chat__msg_copy(&p->v[p->n], m) != CHAT_OK)
        return CHAT_ENOMEM;
    p->n++;
    return 0;
}

static int add_reaction(const chat_store_reaction *r, void *ud)
{
    chat__page *p = ud;
    chat_store_reaction *v = chat__array_reserve(p->reactions, p->n_reactions,
                                                 &p->cap_reactions, sizeof *v);
    if (!v)
        return CHAT_ENOMEM;
    p->reactions = v;
    p->reactions[p->n_reactions++] = *r;
    return 0;
}

/* The page's row with this seq in conversation conv, if the page holds it. */
static const chat_store_msg *in_page(const chat__page *p, int64_t conv, uint64_t seq)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->v[i].conv == conv && p->v[i].seq == seq)
            return &p->v[i];
    return NULL;
}

static int keep_target(const chat_store_msg *m, void *ud)
{
    return chat__msg_copy(ud, m) == CHAT_OK ? 0 : CHAT_ENOMEM;
}

/* What one row of the page shows: its target and its reactions (those it carries, by_row, or
 * its run of the page's). *fetched is a copy to free. */
static int view_of(chat__txn *tx, const chat__page *p, const chat_store_msg *m, int by_row,
                   size_t *next_reaction, chat__msg_view *v, chat_store_msg *fetched,
                   int *have_fetched)
{
    memset(v, 0, sizeof *v);
    *have_fetched = 0;
    /* An edit row that carries its target's current text needs no lookup; one without the
     * flag (written with CHAT_SERVER_KEEP_EDITS, or before edits carried it) does. */
    int edit_lookup = m->kind == CHAT_MSG_EDIT && !(m->flags & CHAT_STORE_MSG_CURRENT);
    if (m->target_seq && (m->kind == CHAT_MSG_TEXT || m->kind == CHAT_MSG_MEDIA || edit_lookup)) {
        v->target = in_page(p, m->conv, m->target_seq);
        if (!v->target) {
            int rc = tx->ops->msg_get(tx->st, m->conv, m->target_seq, keep_target, fetched);
            if (rc == CHAT_OK) {
                v->target = fetched;
                *have_fetched = 1;
            } else if (rc == CHAT_ENOTFOUND) {
                v->target_missing = 1;
            } else {
                return rc;
            }
        }
    }
    if (by_row) {
        v->reactions = m->reactions;
        v->n_reactions = m->n_reactions;
        return CHAT_OK;
    }
    /* Reactions come ordered by seq, as the page does. */
    size_t i = *next_reaction;
    while (i < p->n_reactions && p->reactions[i].seq < m->seq)
        i++;
    size_t j = i;
    while (j < p->n_reactions && p->reactions[j].seq == m->seq)
        j++;
    v->reactions = j > i ? &p->reactions[i] : NULL;
    v->n_reactions = j - i;
    *next_reaction = j;
    return CHAT_OK;
}

int chat__page_encode(chat__txn *tx, chat__page *p, int64_t conv, cJSON *array)
{
    int life = tx->srv->lifecycle;
    /* A store of version 6 hands the reactions over with the rows: no second read. */
    int by_row = conv && tx->srv->row_reactions;
    int rc;
    if (life && conv && p->n && !by_row) {
        uint64_t lo = p->v[0].seq, hi = p->v[p->n - 1].seq;
        if ((rc = tx->ops->reaction_list(tx->st, conv, lo - 1, hi + 1, add_reaction, p)) !=
            CHAT_OK)
            return rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO;
    }
    size_t next = 0;
    for (size_t i = 0; i < p->n; i++) {
        chat__msg_view v = {0};
        chat_store_msg fetched;
        int have = 0;
        if (life && (rc = view_of(tx, p, &p->v[i], by_row, &next, &v, &fetched, &have)) !=
                        CHAT_OK)
            return rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO;
        cJSON *item = chat__msg_item(&p->v[i], &v);
        if (have)
            chat__msg_free(&fetched);
        if (!item)
            return CHAT_ENOMEM;
        cJSON_AddItemToArray(array, item);
    }
    return CHAT_OK;
}

void chat__page_free(chat__page *p)
{
    for (size_t i = 0; i < p->n; i++)
        chat__msg_free(&p->v[i]);
    chat__free(p->v);
    chat__free(p->reactions);
    memset(p, 0, sizeof *p);
}
