/* Token MAC keys: a small fixed array embedded in the server config, so copying the config
 * copies the keys and there is nothing to free (only to wipe). Also the one-time sodium_init. */
#ifndef CHAT_AUTH_KEYRING_H
#define CHAT_AUTH_KEYRING_H

#include <stddef.h>

#define CHAT__KEYRING_MAX 16    /* keys held at once */
#define CHAT__KEY_BYTES 32      /* crypto_auth_KEYBYTES */
#define CHAT__KEY_ID_MAX 255u   /* ids travel in one token byte */

typedef struct chat__keyring {
    struct {
        unsigned id;                          /* 0..255 */
        unsigned char key[CHAT__KEY_BYTES];
    } keys[CHAT__KEYRING_MAX];
    int n;       /* keys in use: keys[0..n) */
    int current; /* index of the key that signs new tokens; meaningless while n == 0 */
} chat__keyring;

/* sodium_init() exactly once per process, through pthread_once; cheap after the first call.
 * @return CHAT_OK, CHAT_ERROR (libsodium could not initialise). [any thread] */
int chat__sodium_init(void);

/*
 * Add key (len must be 32) under key_id, or replace the key already under that id. Either
 * way it becomes the current key. A zeroed keyring is empty.
 * @return CHAT_OK, CHAT_EINVAL (NULL, id > 255, len != 32), CHAT_ELIMIT (a 17th id).
 */
int chat__keyring_add(chat__keyring *kr, unsigned key_id, const unsigned char *key, size_t len);

/* The key under key_id, borrowed from kr, or NULL. Not constant time in the id, which is
 * public (it is sent in clear in every token). */
const unsigned char *chat__keyring_find(const chat__keyring *kr, unsigned key_id);

/*
 * Add the keys of a key file, in file order, so its last key becomes current. Lines are
 * "<key_id> <64 hex digits>" (decimal id 0..255, blanks around fields allowed); blank lines
 * and lines starting with '#' are skipped. An id repeated within the file is a bad line; an id
 * already in kr is replaced. All or nothing: on failure kr is unchanged.
 * The file must be a regular file not accessible by group or others (0600 or stricter).
 * With create set and no file at path, one is created with O_EXCL and mode 0600 holding one
 * random key with id 1, then loaded.
 * @return CHAT_OK, CHAT_EINVAL (NULL), CHAT_EIO (cannot open, read or create; wrong mode),
 *         CHAT_EPROTO (bad line, with its number in the error message; no key in the file),
 *         CHAT_ELIMIT (more than 16 ids in all), CHAT_ENOMEM.
 */
int chat__keyring_load_file(chat__keyring *kr, const char *path, int create);

/* Zero every key and the counts (sodium_memzero, which the compiler cannot elide). */
void chat__keyring_wipe(chat__keyring *kr);

#endif
