/* Reassembly of one WebSocket message from the chunks the transport hands over, under a byte
 * cap and a fragment cap. Pure: no lws, no I/O, so it is unit-tested and fuzzed on its own; the
 * transport describes each chunk with the flags below (what lws reports about it).
 *
 * lws delivers a frame's payload in chunks of at most its rx buffer size. Per chunk it tells
 * whether this is the first chunk of a message (lws_is_first_fragment, set by a text or binary
 * opcode and cleared after the first delivery), whether payload of the same frame is still to
 * come (lws_remaining_packet_payload), whether the message ends with it
 * (lws_is_final_fragment) and whether the message is binary (lws_frame_is_binary). */
#ifndef CHAT_TRANSPORT_REASM_H
#define CHAT_TRANSPORT_REASM_H

#include <stddef.h>
#include <stdint.h>

#define CHAT__REASM_FIRST 1u  /* first chunk of a message (a text or binary opcode) */
#define CHAT__REASM_MORE 2u   /* more payload of this frame follows (remaining > 0) */
#define CHAT__REASM_FINAL 4u  /* the message is complete with this chunk */
#define CHAT__REASM_BINARY 8u /* the message is binary */

/* Results of chat__reasm_feed. */
#define CHAT__REASM_PARTIAL 0        /* need more chunks */
#define CHAT__REASM_COMPLETE 1       /* buf[0..len) is a whole message, NUL-terminated */
#define CHAT__REASM_TOO_BIG (-1)     /* over max_bytes: close with 1009 */
#define CHAT__REASM_TOO_MANY (-2)    /* max_frags frames without FIN: close with 1009 */
#define CHAT__REASM_NOMEM (-3)       /* close with 1011 */
#define CHAT__REASM_PROTOCOL (-4)    /* continuation without a start, or a new message while
                                      * one is open: close with 1002 */

/* Buffers above this size are freed once their message is consumed. */
#define CHAT__REASM_KEEP_BYTES 4096

typedef struct chat__reasm {
    char *buf;
    size_t len, cap;
    int frags;  /* frames of the open message completed without FIN */
    int open;   /* a message has started and not yet completed */
    int binary; /* the open (or complete) message is binary */
} chat__reasm;

/*
 * Add len bytes of one chunk (in may be NULL when len is 0) described by flags; remaining is
 * what the frame header announced beyond this chunk (lws_remaining_packet_payload), so a
 * message that cannot fit is refused at its first chunk, not after max_bytes were buffered
 * (a frame may announce up to 2^63 bytes). max_bytes caps the whole message, max_frags the
 * frames without FIN in it.
 * After any negative result the state is reset (no message open); the caller closes the
 * connection and feeds nothing more. After CHAT__REASM_COMPLETE, call chat__reasm_consumed
 * once the message has been used.
 */
int chat__reasm_feed(chat__reasm *r, const void *in, size_t len, unsigned int flags,
                     uint64_t remaining, size_t max_bytes, int64_t max_frags);

/* The complete message was used: start afresh, freeing a buffer over CHAT__REASM_KEEP_BYTES. */
void chat__reasm_consumed(chat__reasm *r);

/* Free the buffer; r is left empty and reusable. */
void chat__reasm_free(chat__reasm *r);

#endif
