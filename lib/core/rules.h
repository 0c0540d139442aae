/* The engine's pure rules, kept apart from storage and I/O so they are unit-tested alone:
 * receipt watermarks and group permissions. */
#ifndef CHAT_CORE_RULES_H
#define CHAT_CORE_RULES_H

#include <stdint.h>

/* A member's receipt watermarks in one conversation. */
typedef struct chat__marks {
    uint64_t delivered;
    uint64_t read;
} chat__marks;

/* Apply a report (has_delivered/has_read say which fields it carries) to m, for a conversation
 * whose last seq is head. Watermarks only move forward; read implies delivered; a stale value
 * changes nothing. Returns 1 when m moved, 0 when not, CHAT_EINVAL (m untouched) when a value
 * is beyond head. */
int chat__marks_apply(chat__marks *m, uint64_t head, int has_delivered, uint64_t delivered,
                      int has_read, uint64_t read);

/* Group operations that need a role. */
typedef enum chat__group_action {
    CHAT__GROUP_RENAME = 1,
    CHAT__GROUP_ADD = 2,
    CHAT__GROUP_REMOVE = 3, /* target_role is the removed member's */
    CHAT__GROUP_SET_ROLE = 4
} chat__group_action;

/* 1 when a member with actor_role may do action (to a member with target_role), else 0.
 * Owners do everything; admins rename, add, and remove plain members; members none of it. */
int chat__group_may(int actor_role, int action, int target_role);

#endif
