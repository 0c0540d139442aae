/* The built-in auth backend over the keyring (see builtin.h). */
#include "auth/builtin.h"

#include "auth/token.h"
#include "chat/errors.h"

#include <stdio.h>
#include <string.h>

static void builtin_destroy(void *state)
{
    (void)state; /* the keyring belongs to the server */
}

static int builtin_verify(void *state, const char *token, size_t len, int64_t now_ms,
                          chat_auth_identity *out)
{
    chat__token t;
    int rc = chat__token_verify((const chat__keyring *)state, token, len, now_ms, &t);
    if (rc != CHAT_OK) {
        const chat_error_info *e = chat_error_last();
        snprintf(out->reason, sizeof out->reason, "%s",
                 e && e->message ? e->message : "invalid token");
        return rc;
    }
    snprintf(out->user, sizeof out->user, "%s", t.user);
    snprintf(out->device, sizeof out->device, "%s", t.device);
    snprintf(out->session, sizeof out->session, "%s", t.session);
    out->exp_ms = t.exp_ms;
    out->iat_ms = t.iat_ms;
    return CHAT_OK;
}

static const chat_auth_ops builtin_ops = {
    .version = CHAT_AUTH_OPS_VERSION,
    .destroy = builtin_destroy,
    .verify = builtin_verify,
};

const chat_auth_ops *chat__auth_builtin_ops(void)
{
    return &builtin_ops;
}
