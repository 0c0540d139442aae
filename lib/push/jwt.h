/* JSON Web Tokens for the push providers (RFC 7515/7519, compact form): base64url of the JSON
 * header and claims, signed with OpenSSL. ES256 (an EC P-256 key: APNs's .p8 key) gives the
 * raw r||s signature JWS asks for, not OpenSSL's DER; RS256 (an RSA key: a Google service
 * account) the PKCS#1 v1.5 one. Keys never leave the EVP_PKEY; the PEM text read from a file
 * is wiped. */
#ifndef CHAT_PUSH_JWT_H
#define CHAT_PUSH_JWT_H

#include <openssl/evp.h>
#include <stddef.h>

/* A private key from PEM text (PKCS#8 "PRIVATE KEY", or the traditional EC/RSA forms).
 * what names it in errors. @return CHAT_OK, CHAT_EINVAL (not a private key). */
int chat__key_from_pem(EVP_PKEY **out, const char *pem, size_t len, const char *what);
/* The same from a file. @return CHAT_OK, CHAT_EIO (unreadable), CHAT_EINVAL. */
int chat__key_from_file(EVP_PKEY **out, const char *path);
/* 1 for an EC P-256 key (ES256), 2 for an RSA key of at least 2048 bits (RS256), else 0. */
int chat__key_kind(EVP_PKEY *key);

/* base64url without padding, from the libchat allocator (chat__free). NULL on ENOMEM. */
char *chat__b64url(const void *data, size_t len);

/* header.claims.signature, signed with key (ES256 or RS256 by the key's kind), into *out
 * (chat__free). @return CHAT_OK, CHAT_EINVAL (unusable key), CHAT_ENOMEM, CHAT_ERROR. */
int chat__jwt_sign(char **out, EVP_PKEY *key, const char *header_json, const char *claims_json);

#endif
