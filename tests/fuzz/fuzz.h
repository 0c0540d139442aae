/* Shared bits of the libFuzzer harnesses. Each fuzz_<name>.c defines LLVMFuzzerTestOneInput;
 * libFuzzer links it into a fuzzer (clang, -Dfuzz=enabled), replay.c into a plain program that
 * runs the seed corpus as a test in every build. A broken invariant aborts with a message, so
 * both report it as a crash. */
#ifndef CHAT_TESTS_FUZZ_H
#define CHAT_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                       \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);      \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* 1 if s[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
static inline int fuzz_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        for (size_t j = 1; j <= k; j++) {
            if (i + j >= n || (s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* 1 if s[0..n) can still be completed to well-formed UTF-8 (what a streaming check may accept
 * before the text ends). Valid UTF-8 is whole characters of at most 4 bytes, so s + c is valid
 * only if some k >= n - 3 splits it into a valid s[0..k) and one character s[k..n) + c; that
 * character is tried with every 0-3 byte completion c built from the ends of the ranges RFC
 * 3629's syntax allows after a lead byte (80-8F, 80-9F, 90-BF, A0-BF, 80-BF each hold one of
 * 80, 8F, 90, 9F, A0, BF). */
static inline int fuzz_utf8_completable(const unsigned char *s, size_t n)
{
    static const unsigned char ends[] = {0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF};
    for (size_t k = n >= 3 ? n - 3 : 0; k <= n; k++) {
        if (!fuzz_utf8_valid(s, k))
            continue;
        size_t t = n - k;
        unsigned char ch[7];
        for (size_t i = 0; i < t; i++)
            ch[i] = s[k + i];
        if (fuzz_utf8_valid(ch, t))
            return 1;
        for (size_t add = 1; t + add <= 4; add++) {
            /* every combination of `add` bytes from ends */
            size_t combos = 1;
            for (size_t i = 0; i < add; i++)
                combos *= sizeof ends;
            for (size_t c = 0; c < combos; c++) {
                size_t x = c;
                for (size_t i = 0; i < add; i++, x /= sizeof ends)
                    ch[t + i] = ends[x % sizeof ends];
                if (fuzz_utf8_valid(ch, t + add))
                    return 1;
            }
        }
    }
    return 0;
}

#endif
