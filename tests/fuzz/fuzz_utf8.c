/* Fuzz target: UTF-8 validation (lib/core/utf8.c), whole and streamed.
 *
 * Input: byte 0 seeds the cutting of the rest, the text, into pieces of 0-16 bytes.
 *
 * Invariants, against the decoding model in fuzz.h:
 *  - chat__utf8_valid agrees with fuzz_utf8_valid;
 *  - fed in those pieces, and a byte at a time, chat__utf8_feed gives the same verdict;
 *  - it refuses at the first byte that cannot lead to valid text: a piece is refused exactly
 *    when the text up to its end can no longer be completed (fuzz_utf8_completable), and a
 *    text all of whose pieces were taken can be. */
#include "fuzz.h"

#include "core/utf8.h"

#include <string.h>

/* Feed s[0..n) in pieces of sizes drawn from seed (a piece of 0 bytes is fed as NULL). Returns
 * the verdict; *bad_from and *bad_to delimit the refused piece, if any (else both are n). */
static int streamed(const unsigned char *s, size_t n, unsigned seed, size_t *bad_from,
                    size_t *bad_to)
{
    uint32_t x = seed * 2654435761u + 1;
    uint32_t st = 0;
    size_t at = 0;
    *bad_from = *bad_to = n;
    while (at < n) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        size_t k = x % 17;
        if (k > n - at)
            k = n - at;
        /* an exact copy, so that ASan sees a read past the piece */
        unsigned char *piece = k ? malloc(k) : NULL;
        if (k) {
            FUZZ_CHECK(piece != NULL);
            memcpy(piece, s + at, k);
        }
        int rc = chat__utf8_feed(&st, piece, k);
        free(piece);
        FUZZ_CHECK(rc == 0 || rc == -1);
        if (rc != 0) {
            *bad_from = at;
            *bad_to = at + k;
            return 0;
        }
        at += k;
    }
    return chat__utf8_complete(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const unsigned char *s = data + 1;
    size_t n = size - 1;
    int whole = chat__utf8_valid(s, n);
    FUZZ_CHECK(whole == fuzz_utf8_valid(s, n));

    size_t bad_from, bad_to;
    int pieces = streamed(s, n, data[0], &bad_from, &bad_to);
    FUZZ_CHECK(pieces == whole);
    if (bad_from < bad_to) { /* refused: the text stops being completable inside the piece */
        FUZZ_CHECK(fuzz_utf8_completable(s, bad_from));
        FUZZ_CHECK(!fuzz_utf8_completable(s, bad_to));
    } else {
        FUZZ_CHECK(fuzz_utf8_completable(s, n));
    }

    uint32_t st = 0;
    size_t i = 0;
    while (i < n && chat__utf8_feed(&st, s + i, 1) == 0)
        i++;
    FUZZ_CHECK((i == n && chat__utf8_complete(st)) == whole);
    if (i < n) /* refused at byte i: the first that cannot lead to valid text */
        FUZZ_CHECK(fuzz_utf8_completable(s, i) && !fuzz_utf8_completable(s, i + 1));
    return 0;
}
