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
    CHAT__GROUP_SET_ROLE = 4,
    CHAT__GROUP_TIMER = 5   /* set the disappearing-messages timer */
} chat__group_action;

/* 1 when a member with actor_role may do action (to a member with target_role), else 0.
 * Owners do everything; admins rename, add, remove plain members and set the timer; members
 * none of it. */
int chat__group_may(int actor_role, int action, int target_role);

/* Who may change a message after it was sent. */
typedef enum chat__life_verdict {
    CHAT__LIFE_OK = 0,
    CHAT__LIFE_FORBIDDEN = 1, /* not this actor, ever */
    CHAT__LIFE_TOO_LATE = 2   /* this actor, but the window has passed */
} chat__life_verdict;

/* An edit: by the author only, at most window_ms after the message was sent (age_ms). */
int chat__may_edit(int is_author, int64_t age_ms, int64_t window_ms);
/* A delete for everyone: by the author within window_ms, or in a group by an owner or an admin
 * at any time (actor_role), whoever the author. */
int chat__may_delete(int is_author, int is_group, int actor_role, int64_t age_ms,
                     int64_t window_ms);

#endif
