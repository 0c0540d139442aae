/* Push registrations and mutes of the PostgreSQL store (store version 3): one row per
 * (user, device) in push_regs, one per (user, conversation) in push_mutes. Writes that only
 * succeed or fail are deferred in a transaction, as the other row methods' (pg.c); a delete
 * that must say whether it found its row is a round trip.
 *
 * Arguments are checked by the layer every caller goes through (store/checked.h). */
#include "store/pg_internal.h"

#include "core/error.h"

#include <string.h>

static void read_reg(const PGresult *r, int i, chat_store_push_reg *reg)
{
    memset(reg, 0, sizeof *reg);
    chat__pg_col_copy(r, i, 0, reg->user, sizeof reg->user);
    chat__pg_col_copy(r, i, 1, reg->device, sizeof reg->device);
    reg->platform = (int)chat__pg_col_i64(r, i, 2);
    reg->sandbox = (int)chat__pg_col_i64(r, i, 3);
    chat__pg_col_copy(r, i, 4, reg->token, sizeof reg->token);
    chat__pg_col_copy(r, i, 5, reg->topic, sizeof reg->topic);
    reg->updated_ms = chat__pg_col_i64(r, i, 6);
}

int chat__pg_push_reg_put(void *state, const chat_store_push_reg *reg)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, reg->user);
    chat__pg_text(&p, reg->device);
    chat__pg_i64(&p, reg->platform);
    chat__pg_i64(&p, reg->sandbox);
    chat__pg_text(&p, reg->token);
    chat__pg_text(&p, reg->topic);
    chat__pg_i64(&p, reg->updated_ms);
    return chat__pg_exec(state, CHAT__PG_PUSH_REG_PUT, &p, "push_reg_put");
}

int chat__pg_push_reg_del(void *state, const char *user, const char *device)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, user);
    chat__pg_text(&p, device);
    PGresult *r;
    int rc = chat__pg_query(state, CHAT__PG_PUSH_REG_DEL, &p, &r, "push_reg_del");
    if (rc != CHAT_OK)
        return rc;
    int deleted = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return deleted ? CHAT_OK
                   : chat__error_set(CHAT_ENOTFOUND, 0, "postgres store: push_reg_del: not found");
}

int chat__pg_push_reg_del_token(void *state, int platform, const char *token)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, token);
    chat__pg_i64(&p, platform);
    return chat__pg_exec(state, CHAT__PG_PUSH_REG_DEL_TOKEN, &p, "push_reg_del_token");
}

int chat__pg_push_reg_list(void *state, const char *user, chat_store_push_reg_cb cb,
                           void *user_data)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, user);
    PGresult *r;
    int rc = chat__pg_query(state, CHAT__PG_PUSH_REG_LIST, &p, &r, "push_reg_list");
    if (rc != CHAT_OK)
        return rc;
    /* Read whole: the callback may call the store again. */
    int n = PQntuples(r);
    for (int i = 0; i < n && rc == 0; i++) {
        chat_store_push_reg reg;
        read_reg(r, i, &reg);
        rc = cb(&reg, user_data);
    }
    PQclear(r);
    return rc;
}

int chat__pg_push_mute_put(void *state, const char *user, int64_t conv, int64_t until_ms)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, user);
    chat__pg_i64(&p, conv);
    if (until_ms) /* 0 unmutes: the row goes */
        chat__pg_i64(&p, until_ms);
    return chat__pg_exec(state, until_ms ? CHAT__PG_PUSH_MUTE_PUT : CHAT__PG_PUSH_MUTE_DEL, &p,
                         "push_mute_put");
}

int chat__pg_push_mute_get(void *state, const char *user, int64_t conv, int64_t *until_ms)
{
    chat__pg_params p = {0};
    chat__pg_text(&p, user);
    chat__pg_i64(&p, conv);
    PGresult *r;
    int rc = chat__pg_query(state, CHAT__PG_PUSH_MUTE_GET, &p, &r, "push_mute_get");
    if (rc != CHAT_OK)
        return rc;
    int found = PQntuples(r) == 1;
    if (found)
        *until_ms = chat__pg_col_i64(r, 0, 0);
    PQclear(r);
    return found ? CHAT_OK
                 : chat__error_set(CHAT_ENOTFOUND, 0, "postgres store: push_mute_get: not found");
}
