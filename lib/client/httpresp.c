/* HTTP/1.1 response heads of the client's media transfers; see httpresp.h. */
#include "client/httpresp.h"

#include "chat/errors.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void chat__http_head_init(chat__http_head *h)
{
    h->status = 0;
    h->len = 0;
    h->head[0] = 0;
}

int chat__http_head_feed(chat__http_head *h, const char *p, size_t n, size_t *used)
{
    int rc = CHAT_EAGAIN;
    size_t i = 0;
    while (i < n) {
        if (h->len + 1 >= sizeof h->head) {
            rc = chat__error_set(CHAT_EPROTO, 0, "response headers too long");
            break;
        }
        h->head[h->len++] = p[i++];
        h->head[h->len] = 0;
        if (h->len >= 4 && memcmp(h->head + h->len - 4, "\r\n\r\n", 4) == 0) {
            rc = sscanf(h->head, "HTTP/1.%*d %d", &h->status) == 1
                     ? CHAT_OK
                     : chat__error_set(CHAT_EPROTO, 0, "not an HTTP response");
            break;
        }
    }
    *used = i;
    return rc;
}

const char *chat__http_header(const chat__http_head *h, const char *name, char *out,
                              size_t size)
{
    size_t n = strlen(name);
    for (const char *line = strstr(h->head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            l += n + 1;
            while (*l == ' ')
                l++;
            size_t len = strcspn(l, "\r\n");
            snprintf(out, size, "%.*s", (int)len, l);
            return out;
        }
    }
    return NULL;
}

uint64_t chat__http_header_u64(const chat__http_head *h, const char *name, int *found)
{
    char v[32];
    *found = chat__http_header(h, name, v, sizeof v) != NULL;
    return *found ? strtoull(v, NULL, 10) : 0;
}

uint64_t chat__http_range_total(const chat__http_head *h, uint64_t fallback)
{
    char cr[96];
    const char *slash =
        chat__http_header(h, "content-range", cr, sizeof cr) ? strchr(cr, '/') : NULL;
    return slash ? strtoull(slash + 1, NULL, 10) : fallback;
}
