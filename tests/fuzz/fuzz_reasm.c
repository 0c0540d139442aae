/* Fuzz target: WebSocket message reassembly (lib/transport/reasm.c).
 *
 * Input: byte 0 and 1 pick the caps (message bytes, frames without FIN) and the chunk size
 * lws would use; the rest is a list of frames, each a header byte (bit 7 FIN, bits 0-3 the
 * opcode), a length byte, then that much payload. The harness plays lws: control frames never
 * reach the reassembler, reserved opcodes and bad continuations close the connection (as lws
 * does, before our code), and data frames are cut into chunks flagged as lws flags them.
 * With byte 0's top bit set it instead feeds the flag bits raw (a transport that does not
 * filter), checking only memory safety and the caps.
 *
 * Invariants (lws mode), against a plain model of RFC 6455 messages:
 *  - a message is complete exactly when the model's is, with the same bytes and type, and
 *    NUL-terminated;
 *  - TOO_BIG exactly when the model's message exceeds the byte cap, and already at the first
 *    chunk of the frame that makes it exceed (the frame header tells its length); TOO_MANY
 *    exactly when its frames without FIN reach the fragment cap; nothing is ever held over the
 *    byte cap. */
#include "fuzz.h"

#include "transport/reasm.h"

#include <string.h>

static int run_raw(const uint8_t *data, size_t size, size_t max_bytes, int64_t max_frags)
{
    chat__reasm r = {0};
    size_t i = 0;
    while (i + 2 <= size) {
        unsigned flags = data[i] & 15;
        size_t n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = size - i;
        uint64_t remaining = flags & CHAT__REASM_MORE ? data[i - 1] : 0;
        int rc = chat__reasm_feed(&r, n ? data + i : NULL, n, flags, remaining, max_bytes,
                                  max_frags);
        i += n;
        FUZZ_CHECK(r.len <= max_bytes);
        FUZZ_CHECK(rc >= CHAT__REASM_PROTOCOL && rc <= CHAT__REASM_COMPLETE);
        if (rc == CHAT__REASM_COMPLETE) {
            FUZZ_CHECK(r.buf && r.buf[r.len] == '\0');
            chat__reasm_consumed(&r);
        }
        if (rc < 0)
            break;
    }
    chat__reasm_free(&r);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_bytes = 1 + (size_t)(data[0] & 0x3f) * 8; /* 1..505 */
    int64_t max_frags = 1 + (data[1] & 7);               /* 1..8 */
    size_t chunk = 1 + (size_t)(data[1] >> 3) * 9;       /* lws rx buffer: 1..280 */
    if (data[0] & 0x80)
        return run_raw(data + 2, size - 2, max_bytes, max_frags);

    chat__reasm r = {0};
    /* The model. */
    unsigned char *msg = malloc(size + 1);
    size_t msg_len = 0;
    int open = 0, binary = 0;
    int64_t frags = 0;
    int first_pending = 0; /* lws's first_fragment flag */
    size_t i = 2;
    while (i + 2 <= size && msg) {
        int fin = data[i] >> 7, op = data[i] & 15;
        size_t n = data[i + 1];
        i += 2;
        if (n > size - i)
            n = size - i;
        const uint8_t *payload = data + i;
        i += n;
        if (op >= 8)
            continue; /* control frames: lws answers them itself */
        if (op == 0 && !open)
            break;    /* lws: "bad cont", connection closed */
        if ((op == 1 || op == 2) && open)
            break;    /* lws: "bad cont" / "owed a FIN", connection closed */
        if (op > 2)
            break;    /* lws: "bad opc" */
        if (op != 0) {
            open = 1;
            binary = op == 2;
            msg_len = 0;
            frags = 0;
            first_pending = 1;
        }
        int too_big = 0;
        if (msg_len + n > max_bytes)
            too_big = 1;
        memcpy(msg + msg_len, payload, n);
        msg_len += n;
        /* lws's delivery: chunks of at most `chunk` bytes; an empty frame is one empty chunk. */
        size_t off = 0;
        int rc = CHAT__REASM_PARTIAL;
        do {
            size_t k = n - off < chunk ? n - off : chunk;
            int more = off + k < n;
            unsigned flags = (first_pending ? CHAT__REASM_FIRST : 0) |
                             (more ? CHAT__REASM_MORE : 0) |
                             (fin && !more ? CHAT__REASM_FINAL : 0) |
                             (binary ? CHAT__REASM_BINARY : 0);
            first_pending = 0;
            rc = chat__reasm_feed(&r, k ? payload + off : NULL, k, flags, n - off - k, max_bytes,
                                  max_frags);
            FUZZ_CHECK(r.len <= max_bytes);
            off += k;
            if (rc != CHAT__REASM_PARTIAL)
                break;
        } while (off < n);
        if (too_big) {
            FUZZ_CHECK(rc == CHAT__REASM_TOO_BIG);
            FUZZ_CHECK(off == (n < chunk ? n : chunk)); /* at the frame's first chunk */
            break;
        }
        FUZZ_CHECK(rc != CHAT__REASM_TOO_BIG && rc != CHAT__REASM_PROTOCOL &&
                   rc != CHAT__REASM_NOMEM);
        if (!fin) {
            if (++frags >= max_frags) {
                FUZZ_CHECK(rc == CHAT__REASM_TOO_MANY);
                break;
            }
            FUZZ_CHECK(rc == CHAT__REASM_PARTIAL);
            continue;
        }
        FUZZ_CHECK(rc == CHAT__REASM_COMPLETE);
        FUZZ_CHECK(r.len == msg_len && r.binary == binary);
        FUZZ_CHECK(r.buf && memcmp(r.buf, msg, msg_len) == 0 && r.buf[r.len] == '\0');
        chat__reasm_consumed(&r);
        open = 0;
    }
    chat__reasm_free(&r);
    free(msg);
    return 0;
}
