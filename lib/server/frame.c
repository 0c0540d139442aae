/* Shared outbound frames; see frame.h. */
#include "server/frame.h"

#include "core/alloc.h"
#include "core/swar.h"

#include <string.h>

chat__frame *chat__frame_new(const char *text, size_t len)
{
    chat__frame *f = chat__buf_alloc(len);
    if (f)
        memcpy(chat__frame_data(f), text, len);
    return f;
}

chat__frame *chat__frame_json(const cJSON *obj)
{
    /* Print straight into the frame: size from a first guess, grown once if too small. */
    size_t cap = 256;
    for (int attempt = 0; attempt < 8; attempt++) {
        chat__frame *f = chat__buf_alloc(cap - 1);
        if (!f)
            return NULL;
        char *out = (char *)chat__frame_data(f);
        if (cJSON_PrintPreallocated((cJSON *)obj, out, (int)cap, 0)) {
            f->len = strlen(out);
            return f;
        }
        chat__frame_unref(f);
        cap *= 4;
    }
    return NULL;
}

chat__frame *chat__frame_take_json(cJSON *obj)
{
    if (!obj)
        return NULL;
    chat__frame *f = chat__frame_json(obj);
    cJSON_Delete(obj);
    return f;
}

/* ---- direct encoding ---- */

void chat__fb_raw(chat__fb *b, const char *s, size_t n)
{
    if (b->out)
        memcpy(b->out + b->len, s, n);
    b->len += n;
}

void chat__fb_str(chat__fb *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    unsigned char *p = b->out ? b->out + b->len : NULL;
    size_t len = 2;
    if (p)
        *p++ = '"';
    for (size_t i = 0; i < n;) {
        size_t run = chat__swar_json_plain(s + i, n - i);
        if (p) {
            memcpy(p, s + i, run);
            p += run;
        }
        len += run;
        i += run;
        if (i == n)
            break;
        unsigned char ch = s[i++];
        char short_esc = ch == '"' ? '"' : ch == '\\' ? '\\' : ch == '\b' ? 'b' : ch == '\f' ? 'f'
                         : ch == '\n' ? 'n' : ch == '\r' ? 'r' : ch == '\t' ? 't' : 0;
        len += short_esc ? 2 : 6;
        if (!p)
            continue;
        *p++ = '\\';
        if (short_esc) {
            *p++ = (unsigned char)short_esc;
        } else {
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = (unsigned char)hex[ch >> 4];
            *p++ = (unsigned char)hex[ch & 15];
        }
    }
    if (p)
        *p = '"';
    b->len += len;
}

/* Every frame carries a few numbers (seq, ts, conv), each written twice (sized, then written):
 * the sizing pass only counts digits, the writing pass makes two digits per division. */
void chat__fb_u64(chat__fb *b, uint64_t v)
{
    if (!b->out) { /* digits by comparison: a division costs tens of cycles */
        size_t n = 1;
        for (uint64_t p = 10; n < 20 && v >= p; p *= 10)
            n++;
        b->len += n;
        return;
    }
    static const char pairs[] = "0001020304050607080910111213141516171819"
                                "2021222324252627282930313233343536373839"
                                "4041424344454647484950515253545556575859"
                                "6061626364656667686970717273747576777879"
                                "8081828384858687888990919293949596979899";
    char tmp[20];
    char *p = tmp + sizeof tmp;
    while (v >= 100) {
        const char *d = pairs + (v % 100) * 2;
        v /= 100;
        *--p = d[1];
        *--p = d[0];
    }
    if (v >= 10) {
        *--p = pairs[v * 2 + 1];
        *--p = pairs[v * 2];
    } else {
        *--p = (char)('0' + v);
    }
    chat__fb_raw(b, p, (size_t)(tmp + sizeof tmp - p));
}

void chat__fb_i64(chat__fb *b, int64_t v)
{
    if (v < 0) {
        chat__fb_raw(b, "-", 1);
        chat__fb_u64(b, (uint64_t)0 - (uint64_t)v);
    } else {
        chat__fb_u64(b, (uint64_t)v);
    }
}

void chat__fb_id(chat__fb *b, const cJSON *id)
{
    if (cJSON_IsString(id))
        chat__fb_str(b, id->valuestring, strlen(id->valuestring));
    else if (cJSON_IsNumber(id) && id->valuedouble >= 0 && id->valuedouble <= 9007199254740992.0)
        chat__fb_u64(b, (uint64_t)id->valuedouble); /* ids are validated integers */
    else
        chat__fb_raw(b, "null", 4);
}

chat__frame *chat__fb_alloc(chat__fb *b)
{
    chat__frame *f = chat__buf_alloc(b->len);
    if (!f)
        return NULL;
    b->out = chat__frame_data(f);
    b->len = 0;
    return f;
}
