/* JWT signing for APNs (ES256) and FCM's OAuth assertion (RS256); see jwt.h. */
#include "push/jwt.h"

#include "chat/errors.h"
#include "core/alloc.h"
#include "core/error.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define KEY_FILE_MAX (64 * 1024)

/* Fail with code, "push: <what> (<OpenSSL's reason>)". */
static int ssl_fail(int code, const char *what)
{
    char detail[160];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, detail, sizeof detail);
    ERR_clear_error();
    return chat__error_set(code, (int)e, "push: %s (%s)", what, e ? detail : "no detail");
}

int chat__key_from_pem(EVP_PKEY **out, const char *pem, size_t len, const char *what)
{
    if (len > INT32_MAX)
        return chat__error_set(CHAT_EINVAL, 0, "push: %s: too long", what);
    BIO *b = BIO_new_mem_buf(pem, (int)len);
    if (!b)
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    /* A NULL password callback with an empty password: an encrypted key fails, it is never
     * prompted for on a terminal. */
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
    BIO_free(b);
    if (!k) {
        char msg[1200];
        snprintf(msg, sizeof msg, "%s holds no unencrypted PEM private key", what);
        return ssl_fail(CHAT_EINVAL, msg);
    }
    *out = k;
    return CHAT_OK;
}

int chat__key_from_file(EVP_PKEY **out, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return chat__error_set(CHAT_EIO, 0, "push: cannot read key file %s", path);
    char *buf = chat__malloc(KEY_FILE_MAX);
    if (!buf) {
        fclose(f);
        return chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    }
    size_t n = fread(buf, 1, KEY_FILE_MAX, f);
    int toolong = n == KEY_FILE_MAX;
    fclose(f);
    int rc = toolong ? chat__error_set(CHAT_EINVAL, 0, "push: key file %s is too large", path)
                     : chat__key_from_pem(out, buf, n, path);
    sodium_memzero(buf, KEY_FILE_MAX);
    chat__free(buf);
    return rc;
}

static int is_p256(EVP_PKEY *key)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    char name[64];
    size_t len = 0;
    return EVP_PKEY_get_group_name(key, name, sizeof name, &len) == 1 &&
           (strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0);
#else
    const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(key);
    return ec && EC_GROUP_get_curve_name(EC_KEY_get0_group(ec)) == NID_X9_62_prime256v1;
#endif
}

int chat__key_kind(EVP_PKEY *key)
{
    int id = EVP_PKEY_base_id(key);
    if (id == EVP_PKEY_EC && is_p256(key))
        return 1;
    if (id == EVP_PKEY_RSA && EVP_PKEY_bits(key) >= 2048)
        return 2;
    return 0;
}

char *chat__b64url(const void *data, size_t len)
{
    const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
    size_t cap = sodium_base64_ENCODED_LEN(len, variant);
    char *out = chat__malloc(cap);
    if (out)
        sodium_bin2base64(out, cap, data, len, variant);
    return out;
}

/* ECDSA's DER SEQUENCE { r, s } into the 64 bytes of r||s that JWS's ES256 is. */
static int der_to_raw(const unsigned char *der, size_t len, unsigned char raw[64])
{
    const unsigned char *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (!sig)
        return -1;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    int ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok ? 0 : -1;
}

int chat__jwt_sign(char **out, EVP_PKEY *key, const char *header_json, const char *claims_json)
{
    int kind = chat__key_kind(key);
    if (!kind)
        return chat__error_set(CHAT_EINVAL, 0, "push: the key is neither EC P-256 nor RSA-2048+");
    char *h = chat__b64url(header_json, strlen(header_json));
    char *c = chat__b64url(claims_json, strlen(claims_json));
    size_t hl = h ? strlen(h) : 0, cl = c ? strlen(c) : 0;
    char *input = h && c ? chat__malloc(hl + cl + 2) : NULL;
    unsigned char *sig = NULL;
    char *sig64 = NULL, *jwt = NULL;
    int rc = CHAT_ENOMEM;
    if (!input)
        goto done;
    memcpy(input, h, hl);
    input[hl] = '.';
    memcpy(input + hl + 1, c, cl + 1);

    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t sig_len = 0;
    if (!md) {
        rc = chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
        goto done;
    }
    if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, NULL, &sig_len, (const unsigned char *)input, hl + 1 + cl) != 1 ||
        !(sig = chat__malloc(sig_len)) ||
        EVP_DigestSign(md, sig, &sig_len, (const unsigned char *)input, hl + 1 + cl) != 1) {
        EVP_MD_CTX_free(md);
        rc = sig ? ssl_fail(CHAT_ERROR, kind == 1 ? "ES256 signing failed" : "RS256 signing failed")
                 : CHAT_ENOMEM;
        goto done;
    }
    EVP_MD_CTX_free(md);
    if (kind == 1) {
        unsigned char raw[64];
        if (der_to_raw(sig, sig_len, raw) != 0) {
            rc = chat__error_set(CHAT_ERROR, 0, "push: ES256 signature is not a DER ECDSA one");
            goto done;
        }
        sig64 = chat__b64url(raw, sizeof raw);
    } else {
        sig64 = chat__b64url(sig, sig_len);
    }
    if (!sig64)
        goto done;
    size_t sl = strlen(sig64), il = hl + 1 + cl;
    jwt = chat__malloc(il + sl + 2);
    if (!jwt)
        goto done;
    memcpy(jwt, input, il);
    jwt[il] = '.';
    memcpy(jwt + il + 1, sig64, sl + 1);
    *out = jwt;
    jwt = NULL;
    rc = CHAT_OK;
done:
    if (rc == CHAT_ENOMEM)
        chat__error_set(CHAT_ENOMEM, 0, "push: out of memory");
    chat__free(h);
    chat__free(c);
    chat__free(input);
    chat__free(sig);
    chat__free(sig64);
    chat__free(jwt);
    return rc;
}
