/* Identifier validation. Ids end up in SQL keys, log lines and token bytes, so the alphabet is
 * deliberately narrow: no spaces, no separators beyond "_.@-", no non-ASCII look-alikes. */
#include "core/ids.h"

static int id_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '@' || c == '-';
}

int chat__id_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > CHAT__ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!id_byte((unsigned char)s[i]))
            return 0;
    return 1;
}

int chat__cmid_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > CHAT__ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e)
            return 0;
    }
    return 1;
}

int chat__b64url_chars_valid(const char *s, size_t len)
{
    if (!s && len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}
