/* Receipts: delivered/read watermarks per (conversation, user), forward-only. */
#include "server/lifecycle.h"
#include "server/req.h"

#include "core/alloc.h"
#include "core/json.h"
#include "core/rules.h"

#include <inttypes.h>
#include <string.h>

typedef struct receipt_args {
    int64_t conv;
    uint64_t delivered, read;
    int has_delivered, has_read;
} receipt_args;

static int receipt_run(chat__job *job, chat__txn *tx)
{
    chat__req *r = (chat__req *)job;
    receipt_args *a = r->extra;
    chat_store_conv conv;
    chat_store_member me;
    /* A lookup, and the member list only when a watermark moves: a repeated receipt in a
     * large group would otherwise read every member for nothing. */
    int rc = chat__txn_member(tx, r, a->conv, r->user, &conv, &me);
    if (rc != CHAT_OK)
        return rc;
    chat__marks marks = {me.delivered_seq, me.read_seq};
    int moved = chat__marks_apply(&marks, conv.head_seq, a->has_delivered, a->delivered,
                                  a->has_read, a->read);
    if (moved < 0)
        return chat__req_fail(r, CHAT_EINVAL, "bad_field",
                              "receipt beyond the last message (seq %" PRIu64 ")", conv.head_seq);
    if (marks.delivered != me.delivered_seq)
        me.delivered_ms = tx->now_ms;
    if (marks.read != me.read_seq)
        me.read_ms = tx->now_ms;
    me.delivered_seq = marks.delivered;
    me.read_seq = marks.read;
    if (moved) {
        /* Both rows change: my own sync sees the new watermark, the others' sync sees it
         * through the conversation. */
        conv.change = chat__txn_bump(tx);
        me.change = conv.change;
        if (tx->ops->member_put(tx->st, &me) != CHAT_OK ||
            tx->ops->conv_update(tx->st, &conv) != CHAT_OK)
            return chat__req_fail(r, CHAT_EIO, "storage", "cannot store the receipt");
        rc = chat__txn_fanout_members(tx, r, conv.id);
        if (rc != CHAT_OK)
            return rc;
        cJSON *b = cJSON_CreateObject();
        int ok = b && cJSON_AddStringToObject(b, "type", "receipt") &&
                 cJSON_AddNumberToObject(b, "conv", (double)conv.id) &&
                 cJSON_AddStringToObject(b, "user", r->user) &&
                 cJSON_AddNumberToObject(b, "delivered", (double)me.delivered_seq) &&
                 cJSON_AddNumberToObject(b, "read", (double)me.read_seq) &&
                 cJSON_AddNumberToObject(b, "delivered_ts", (double)me.delivered_ms) &&
                 cJSON_AddNumberToObject(b, "read_ts", (double)me.read_ms);
        r->fanout = ok ? chat__frame_json(b) : NULL;
        cJSON_Delete(b);
        if (!r->fanout)
            return chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
    }
    cJSON *o = chat__req_reply(r, "ok");
    int ok = o && cJSON_AddNumberToObject(o, "conv", (double)conv.id) &&
             cJSON_AddNumberToObject(o, "delivered", (double)me.delivered_seq) &&
             cJSON_AddNumberToObject(o, "read", (double)me.read_seq);
    r->reply = ok ? chat__frame_json(o) : NULL;
    cJSON_Delete(o);
    return r->reply ? CHAT_OK : chat__req_fail(r, CHAT_ENOMEM, "internal", "out of memory");
}

void chat__handle_receipt(chat__conn *c, cJSON *f, cJSON *re)
{
    if (chat__json_get(f, "thread")) { /* a thread's own watermark */
        chat__handle_thread_receipt(c, f, re);
        return;
    }
    receipt_args a = {0};
    if (!chat__arg_conv(c, f, re, &a.conv))
        goto fail;
    int rd = chat__json_u64(f, "delivered", &a.delivered);
    int rr = chat__json_u64(f, "read", &a.read);
    if ((rd != CHAT_OK && rd != CHAT_ENOTFOUND) || (rr != CHAT_OK && rr != CHAT_ENOTFOUND)) {
        chat__conn_error(c, re, CHAT_EINVAL, "bad_field",
                         "'delivered' and 'read' must be non-negative integers", 0);
        goto fail;
    }
    if (rd == CHAT_ENOTFOUND && rr == CHAT_ENOTFOUND) {
        chat__conn_error(c, re, CHAT_EINVAL, "missing_field",
                         "one of 'delivered' and 'read' is required", 0);
        goto fail;
    }
    a.has_delivered = rd == CHAT_OK;
    a.has_read = rr == CHAT_OK;
    chat__req_start(c, f, re, receipt_run, &a, sizeof a, NULL);
    return;
fail:
    cJSON_Delete(re);
    cJSON_Delete(f);
}
