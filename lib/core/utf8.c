/* UTF-8 validation; see utf8.h. The state packs the continuation bytes still expected (bits
 * 0-7) with the range allowed for the next one (bits 8-15 and 16-23): only the first
 * continuation byte after E0, ED, F0 and F4 has a narrower range, which is how overlong
 * forms, surrogates and code points above U+10FFFF are refused without decoding. */
#include "core/utf8.h"

#include "core/swar.h"

#include <string.h>

#define PACK(need, lo, hi) ((uint32_t)(need) | (uint32_t)(lo) << 8 | (uint32_t)(hi) << 16)

int chat__utf8_feed(uint32_t *state, const unsigned char *p, size_t n)
{
    uint32_t st = *state;
    size_t i = 0;
    while (i < n) {
        if (st == 0) {
            /* ASCII runs eight bytes at a time (the common case for chat text). */
            while (i + 8 <= n && !(chat__swar_load(p + i) & CHAT__SWAR_HIGH))
                i += 8;
            if (i == n)
                break;
            unsigned char c = p[i++];
            if (c < 0x80)
                continue;
            if (c >= 0xC2 && c <= 0xDF)
                st = PACK(1, 0x80, 0xBF);
            else if (c == 0xE0)
                st = PACK(2, 0xA0, 0xBF);
            else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF)
                st = PACK(2, 0x80, 0xBF);
            else if (c == 0xED)
                st = PACK(2, 0x80, 0x9F); /* no UTF-16 surrogates */
            else if (c == 0xF0)
                st = PACK(3, 0x90, 0xBF);
            else if (c >= 0xF1 && c <= 0xF3)
                st = PACK(3, 0x80, 0xBF);
            else if (c == 0xF4)
                st = PACK(3, 0x80, 0x8F); /* nothing above U+10FFFF */
            else
                return -1;
            continue;
        }
        unsigned char c = p[i++];
        if (c < ((st >> 8) & 0xFF) || c > (st >> 16))
            return -1;
        uint32_t need = (st & 0xFF) - 1;
        st = need ? PACK(need, 0x80, 0xBF) : 0;
    }
    *state = st;
    return 0;
}

int chat__utf8_valid(const unsigned char *p, size_t n)
{
    uint32_t st = 0;
    return chat__utf8_feed(&st, p, n) == 0 && chat__utf8_complete(st);
}
