/* Full-text search in SQLite without keeping words: an FTS5 tokenizer ("chat") that splits text
 * as FTS5's unicode61 does (case folded, diacritics removed) and hands FTS5 a keyed 64-bit hash
 * of each word (SipHash, 16 hex digits) instead of the word. The index (a contentless FTS5
 * table) then holds hashes and positions, never text, so erasing a message's body also erases
 * its words: what may linger in old index segments until FTS5 merges them are hashes under a
 * key of the database's own (doc/security.md). Whole words only: a hash has no prefixes.
 *
 * Used by the SQLite store (lib/store) and the client's cache (lib/client/cache.c). */
#ifndef CHAT_STORE_SQLITE_FTS_H
#define CHAT_STORE_SQLITE_FTS_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the hashing key. */
#define CHAT__FTS_KEY_BYTES 16

typedef struct chat__fts chat__fts;

/* Register the tokenizer "chat" on db (before any statement uses a table built with it).
 * Its key is all zeros until chat__fts_set_key(). *out is owned by db: freed when db closes.
 * @return CHAT_OK, CHAT_ENOTSUP (SQLite without FTS5), CHAT_ENOMEM, CHAT_EIO. */
int chat__fts_register(sqlite3 *db, chat__fts **out);
void chat__fts_set_key(chat__fts *f, const unsigned char key[CHAT__FTS_KEY_BYTES]);

/* The text a message contributes to the index: a text message's text, a media message's file
 * name (from its JSON body); *len 0 (and NULL) when it contributes nothing. The result points
 * into body or into *owned (freed by the caller with chat__free). */
const char *chat__fts_doc(int kind, const char *body, size_t body_len, size_t *len,
                          char **owned);

/* A MATCH expression for the words of text, each word a quoted phrase (all must occur) in
 * column t, restricted to the conversations convs[0..n) through column c when n > 0. NULL in
 * *out when text has no word. *out from chat__malloc. @return CHAT_OK, CHAT_ENOMEM, CHAT_EIO. */
int chat__fts_match(chat__fts *f, const char *text, const int64_t *convs, size_t n, char **out);

#endif
