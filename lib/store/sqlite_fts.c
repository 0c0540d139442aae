/* The hashing FTS5 tokenizer and the MATCH expressions built for it; see sqlite_fts.h. */
#include "store/sqlite_fts.h"

#include "chat/errors.h"
#include "chat/sys/store.h"
#include "core/alloc.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

/* Longest word hashed; a longer run of letters is cut (no one searches for it whole). */
#define WORD_MAX 256

struct chat__fts {
    fts5_api *api;
    fts5_tokenizer base;  /* unicode61's methods */
    void *base_ctx;       /* its context, for xCreate */
    unsigned char key[CHAT__FTS_KEY_BYTES];
};

/* One instance of the tokenizer: an instance of unicode61 behind it. */
typedef struct hash_tok {
    chat__fts *f;
    Fts5Tokenizer *inner;
} hash_tok;

/* Not const itself: xCreate takes a (const char **). */
static const char *unicode61_args[] = {"remove_diacritics", "2"};

static int tok_create(void *ctx, const char **argv, int argc, Fts5Tokenizer **out)
{
    (void)argv;
    (void)argc;
    chat__fts *f = ctx;
    hash_tok *t = sqlite3_malloc(sizeof *t);
    if (!t)
        return SQLITE_NOMEM;
    t->f = f;
    int rc = f->base.xCreate(f->base_ctx, unicode61_args, 2, &t->inner);
    if (rc != SQLITE_OK) {
        sqlite3_free(t);
        return rc;
    }
    *out = (Fts5Tokenizer *)t;
    return SQLITE_OK;
}

static void tok_delete(Fts5Tokenizer *p)
{
    hash_tok *t = (hash_tok *)p;
    if (t) {
        t->f->base.xDelete(t->inner);
        sqlite3_free(t);
    }
}

struct hash_ctx {
    const chat__fts *f;
    void *ctx;
    int (*xToken)(void *, int, const char *, int, int, int);
};

/* Hash one word of unicode61's and hand the hash to FTS5 in its place. */
static int hash_token(void *p, int tflags, const char *tok, int n, int start, int end)
{
    struct hash_ctx *h = p;
    unsigned char digest[crypto_shorthash_BYTES];
    crypto_shorthash(digest, (const unsigned char *)tok, (unsigned long long)(n < WORD_MAX ? n : WORD_MAX),
                     h->f->key);
    char hex[2 * crypto_shorthash_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
    return h->xToken(h->ctx, tflags, hex, (int)(sizeof hex - 1), start, end);
}

static int tok_tokenize(Fts5Tokenizer *p, void *ctx, int flags, const char *text, int n,
                        int (*xToken)(void *, int, const char *, int, int, int))
{
    hash_tok *t = (hash_tok *)p;
    struct hash_ctx h = {t->f, ctx, xToken};
    return t->f->base.xTokenize(t->inner, &h, flags, text, n, hash_token);
}

static fts5_api *api_of(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
        sqlite3_step(st);
    }
    sqlite3_finalize(st);
    return api;
}

static void fts_free(void *p)
{
    chat__fts *f = p;
    if (f)
        sodium_memzero(f->key, sizeof f->key);
    chat__free(f);
}

int chat__fts_register(sqlite3 *db, chat__fts **out)
{
    fts5_api *api = api_of(db);
    if (!api || api->iVersion < 2)
        return chat__error_set(CHAT_ENOTSUP, 0, "sqlite: this SQLite has no FTS5");
    chat__fts *f = chat__calloc(1, sizeof *f);
    if (!f)
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    f->api = api;
    if (api->xFindTokenizer(api, "unicode61", &f->base_ctx, &f->base) != SQLITE_OK) {
        chat__free(f);
        return chat__error_set(CHAT_ENOTSUP, 0, "sqlite: FTS5 has no unicode61 tokenizer");
    }
    static fts5_tokenizer methods = {tok_create, tok_delete, tok_tokenize};
    int rc = api->xCreateTokenizer(api, "chat", f, &methods, fts_free);
    if (rc != SQLITE_OK) {
        /* xCreateTokenizer calls the destructor itself only on success. */
        chat__free(f);
        return chat__error_set(rc == SQLITE_NOMEM ? CHAT_ENOMEM : CHAT_EIO, rc,
                               "sqlite: cannot register the search tokenizer");
    }
    *out = f;
    return CHAT_OK;
}

void chat__fts_set_key(chat__fts *f, const unsigned char key[CHAT__FTS_KEY_BYTES])
{
    memcpy(f->key, key, CHAT__FTS_KEY_BYTES);
}

const char *chat__fts_doc(int kind, const char *body, size_t body_len, size_t *len,
                          char **owned)
{
    *len = 0;
    *owned = NULL;
    if (kind == CHAT_MSG_TEXT) {
        *len = body_len;
        return body_len ? body : NULL;
    }
    if (kind != CHAT_MSG_MEDIA || !body_len)
        return NULL;
    cJSON *m = cJSON_ParseWithLength(body, body_len);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(m, "name");
    if (cJSON_IsString(name) && name->valuestring[0])
        *owned = chat__strdup(name->valuestring);
    cJSON_Delete(m);
    if (!*owned)
        return NULL;
    *len = strlen(*owned);
    return *owned;
}

/* ---- MATCH expressions ---- */

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = chat__realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void puts_(sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* A word as an FTS5 string: in double quotes, a quote inside doubled. */
static void put_quoted(sbuf *b, const char *s, size_t n)
{
    put(b, "\"", 1);
    size_t from = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '"') {
            put(b, s + from, i + 1 - from);
            put(b, "\"", 1);
            from = i + 1;
        }
    put(b, s + from, n - from);
    put(b, "\"", 1);
}

struct words {
    sbuf *b;
    int n;
};

/* One word of unicode61's (not hashed: FTS5 hashes the query's words itself). */
static int add_word(void *p, int tflags, const char *tok, int n, int start, int end)
{
    (void)tflags;
    (void)start;
    (void)end;
    struct words *w = p;
    if (w->n++)
        put(w->b, " AND ", 5);
    put_quoted(w->b, tok, (size_t)n);
    return w->b->oom ? SQLITE_NOMEM : SQLITE_OK;
}

int chat__fts_match(chat__fts *f, const char *text, const int64_t *convs, size_t n, char **out)
{
    *out = NULL;
    sbuf b = {0};
    Fts5Tokenizer *inner = NULL;
    int rc = f->base.xCreate(f->base_ctx, unicode61_args, 2, &inner);
    if (rc != SQLITE_OK)
        return chat__error_set(rc == SQLITE_NOMEM ? CHAT_ENOMEM : CHAT_EIO, rc,
                               "sqlite: cannot make a search tokenizer");
    puts_(&b, "t : (");
    struct words w = {&b, 0};
    rc = f->base.xTokenize(inner, &w, FTS5_TOKENIZE_QUERY, text, (int)strlen(text), add_word);
    f->base.xDelete(inner);
    puts_(&b, ")");
    if (n) {
        puts_(&b, " AND c : (");
        for (size_t i = 0; i < n; i++) {
            char num[24];
            int len = snprintf(num, sizeof num, "%s\"%lld\"", i ? " OR " : "", (long long)convs[i]);
            put(&b, num, (size_t)len);
        }
        puts_(&b, ")");
    }
    if (rc != SQLITE_OK || b.oom) {
        chat__free(b.p);
        return chat__error_set(CHAT_ENOMEM, 0, "out of memory");
    }
    if (w.n == 0) {
        chat__free(b.p);
        return CHAT_OK;
    }
    *out = b.p;
    return CHAT_OK;
}
