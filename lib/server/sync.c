/* convs: the conversation list and the resume after a reconnect, by inbox cursor. */
#include "server/req.h"

#include "core/alloc.h"
#include "core/array.h"
#include "core/json.h"

typedef struct convs_args {
    uint64_t since;
    int limit;
} convs_args;

/* The store forbids listing from inside a listing callback: collect the rows first. */
typedef struct rows {
    chat_store_member *v;
    size_t n, cap;
} rows;

static int keep_row(const chat_store_member *m, void *ud)
{
    rows *rs = ud;
    chat_store_member *nv = chat__array_reserve(rs->v, rs->n, &rs->cap, sizeof *nv);
    if (!nv)
        return CHAT_ENOMEM;
    rs->v = nv;
    rs->v[rs->n++] = *m;
    return 0;
}

static int convs_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    convs_args *a = r->extra;
    rows rs = {0};
    int rc = tx->ops->user_convs(tx->st, r->user, a->since, a->limit + 1, keep_row, &rs);
    if (rc != CHAT_OK) {
        chat__free(rs.v);
        return chat__req_fail(r, rc == CHAT_ENOMEM ? CHAT_ENOMEM : CHAT_EIO, "storage",
                              "cannot list conversations");
    }
    int more = rs.n > (size_t)a->limit;
    if (more)
        rs.n = (size_t)a->limit;
    /* The cursor is where this page ends: the last row's change when more follow, else the
     * transaction's horizon. Never above the horizon: a change above it may be this
     * transaction's own, which a store shared by several servers renumbers above changes
     * committed meanwhile that this listing did not see (a client re-receives such a row,
     * which is harmless; skipping the others would not be). */
    uint64_t cursor = more ? a->since : tx->horizon;
    cJSON *o = chat__req_reply(r, "convs");
    cJSON *list = cJSON_CreateArray();
    for (size_t i = 0; o && list && i < rs.n; i++) {
        cJSON *e = chat__txn_conv_json(tx, &rs.v[i]);
        if (!e)
            break;
        cJSON_AddItemToArray(list, e);
        if (more) {
            chat_store_conv conv;
            if (tx->ops->conv_get(tx->st, rs.v[i].conv, &conv) == CHAT_OK) {
                /* The inbox change the listing ordered by: a member who left, its own row's.
                 * A conversation that changed since the listing (another server committed
                 * meanwhile) reads above the horizon here and is not used. */
                uint64_t ch = rs.v[i].change;
                if (rs.v[i].role != CHAT_ROLE_NONE && conv.change > ch)
                    ch = conv.change;
                if (ch > cursor && ch <= tx->horizon)
                    cursor = ch;
            }
        }
    }
    chat__free(rs.v);
    if (!o || !list || cJSON_GetArraySize(list) != (int)rs.n) {
        cJSON_Delete(o);
        cJSON_Delete(list);
        return chat__req_fail(r, CHAT_ENOMEM, "internal", "cannot build the list");
    }
    int ok = cJSON_AddNumberToObject(o, "cursor", (double)cursor) &&
             cJSON_AddBoolToObject(o, "more", more);
    ok = chat__json_add(ok ? o : NULL, "convs", list) && ok; /* list is consumed either way */
    r->reply = ok ? chat__frame_json(o) : NULL;
    cJSON_Delete(o);
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

void chat__handle_convs(chat__conn *c, cJSON *f, cJSON *re)
{
    convs_args a = {0};
    int rc = chat__json_u64(f, "since", &a.since);
    if (rc != CHAT_OK && rc != CHAT_ENOTFOUND) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field", "'since' must be a cursor", 0);
        goto fail;
    }
    if (!chat__arg_limit(c, f, re, (int)chat__limit(c->srv, CHAT_LIMIT_PAGE_MAX), &a.limit))
        goto fail;
    chat__req_start(c, f, re, convs_run, &a, sizeof a, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
