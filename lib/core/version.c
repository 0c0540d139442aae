/* Runtime version, so a host can compare the header it built with to the library it loaded. */
#include "chat/common.h"
#include "chat/version.h"
#include "chat/sys/clock.h"

#include <time.h>

uint32_t chat_version(void)
{
    return CHAT_VERSION_NUMBER;
}

const char *chat_version_string(void)
{
    return CHAT_VERSION_STRING;
}

int64_t chat_clock_real_ms(void *user_data)
{
    (void)user_data;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
