/* Receipt watermarks and group permissions; see rules.h. */
#include "core/rules.h"

#include "chat/errors.h"
#include "chat/sys/store.h"

int chat__marks_apply(chat__marks *m, uint64_t head, int has_delivered, uint64_t delivered,
                      int has_read, uint64_t read)
{
    uint64_t d = has_delivered ? delivered : 0;
    uint64_t r = has_read ? read : 0;
    if (d > head || r > head)
        return CHAT_EINVAL;
    if (r > d)
        d = r;
    int moved = 0;
    if (d > m->delivered) {
        m->delivered = d;
        moved = 1;
    }
    if (r > m->read) {
        m->read = r;
        moved = 1;
    }
    return moved;
}

int chat__group_may(int actor_role, int action, int target_role)
{
    switch (action) {
    case CHAT__GROUP_RENAME:
    case CHAT__GROUP_ADD:
    case CHAT__GROUP_TIMER:
        return actor_role >= CHAT_ROLE_ADMIN;
    case CHAT__GROUP_REMOVE:
        return actor_role == CHAT_ROLE_OWNER ||
               (actor_role == CHAT_ROLE_ADMIN && target_role == CHAT_ROLE_MEMBER);
    case CHAT__GROUP_SET_ROLE:
        return actor_role == CHAT_ROLE_OWNER;
    default:
        return 0;
    }
}

int chat__may_edit(int is_author, int64_t age_ms, int64_t window_ms)
{
    if (!is_author)
        return CHAT__LIFE_FORBIDDEN;
    return age_ms <= window_ms ? CHAT__LIFE_OK : CHAT__LIFE_TOO_LATE;
}

int chat__may_delete(int is_author, int is_group, int actor_role, int64_t age_ms,
                     int64_t window_ms)
{
    if (is_group && actor_role >= CHAT_ROLE_ADMIN)
        return CHAT__LIFE_OK;
    if (!is_author)
        return CHAT__LIFE_FORBIDDEN;
    return age_ms <= window_ms ? CHAT__LIFE_OK : CHAT__LIFE_TOO_LATE;
}
