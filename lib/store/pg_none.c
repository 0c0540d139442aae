/* The PostgreSQL store's entry points in a libchat built without libpq (-Dpostgres=disabled, or
 * no libpq found): the ABI stays the same, the store says it is not there. */
#include "chat/sys/store.h"

#include "core/error.h"

int chat_store_postgres_open(void **state_out, const char *conninfo, unsigned int flags)
{
    (void)state_out;
    (void)conninfo;
    (void)flags;
    return chat__error_set(CHAT_ENOTSUP, 0,
                           "postgres store: libchat was built without PostgreSQL (libpq)");
}

const chat_store_ops *chat_store_postgres_ops(void)
{
    return NULL;
}
