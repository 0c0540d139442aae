/* The plain structs behind chat_conv_list and chat_msg_list (filled by cache.c, read by api.c). */
#ifndef CHAT_CLIENT_LISTS_H
#define CHAT_CLIENT_LISTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct chat__conv_item {
    chat_conv_id conv;
    uint64_t head, read, unread;
    int64_t muted_until;
    int kind, role;
    size_t members;
    char *title, *peer;
} chat__conv_item;

struct chat_conv_list {
    size_t n, cap;
    chat__conv_item *v;
};

typedef struct chat__msg_item {
    chat_conv_id conv;
    uint64_t seq;
    int64_t ts;
    int kind, status;
    size_t delivered, read, others;
    char *from, *cmid, *text, *json;
    size_t text_len;
    uint64_t reply, thread;
    int64_t edited, expires;
    int flags;        /* 1 deleted for everyone, 2 expired */
    char *reactions;  /* JSON array, NULL: none */
} chat__msg_item;

struct chat_msg_list {
    size_t n, cap;
    int complete;
    chat__msg_item *v;
};

#endif
