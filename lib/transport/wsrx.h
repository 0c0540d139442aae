/* Receiving RFC 6455 frames from a client, server side, as bytes arrive: frame headers parsed
 * incrementally, payloads unmasked, messages assembled under a byte cap and a fragment cap,
 * text validated as UTF-8 as it comes, control frames checked. Pure: no socket, no
 * allocation but the message buffer, so it is unit-tested and fuzzed on its own.
 *
 * A refusal comes as soon as it can be known: a frame whose header announces more than the
 * message cap allows is refused at its header, before any payload byte; invalid UTF-8 at the
 * first byte that cannot continue valid text. */
#ifndef CHAT_TRANSPORT_WSRX_H
#define CHAT_TRANSPORT_WSRX_H

#include <stddef.h>
#include <stdint.h>

#define CHAT__WS_OP_CONT 0x0
#define CHAT__WS_OP_TEXT 0x1
#define CHAT__WS_OP_BINARY 0x2
#define CHAT__WS_OP_CLOSE 0x8
#define CHAT__WS_OP_PING 0x9
#define CHAT__WS_OP_PONG 0xA

/* Results of chat__wsrx_feed besides CHAT__WSRX_OK. */
#define CHAT__WSRX_OK 0
#define CHAT__WSRX_PROTOCOL (-1) /* an RFC 6455 violation: close 1002 */
#define CHAT__WSRX_UTF8 (-2)     /* text that is not UTF-8: close 1007 */
#define CHAT__WSRX_TOO_BIG (-3)  /* over max_bytes: close 1009 */
#define CHAT__WSRX_TOO_MANY (-4) /* over max_frags frames in one message: close 1009 */
#define CHAT__WSRX_NOMEM (-5)    /* close 1011 */
#define CHAT__WSRX_STOP (-6)     /* a callback asked to stop */

/* What the receiver hands over. Each returns 0 to go on, non-zero to stop feeding. */
typedef struct chat__wsrx_cb {
    /* A whole message; buf[len] is a NUL (the buffer may be the caller's input, restored
     * after the call). binary: the message was a binary one. */
    int (*message)(void *ud, const char *buf, size_t len, int binary);
    /* A control frame: ping, pong or close (op), its payload (at most 125 bytes). A close's
     * payload is checked: empty, or a valid code and UTF-8 reason. */
    int (*control)(void *ud, int op, const unsigned char *payload, size_t len);
} chat__wsrx_cb;

typedef struct chat__wsrx {
    unsigned char h[14];    /* the frame header being read */
    unsigned hn;            /* bytes of it read */
    int in_payload;         /* the header is complete; left bytes of payload follow */
    int op, fin;
    uint64_t left;
    unsigned char mask[4];
    unsigned mpos;
    int msg_open, msg_binary; /* a data message has started and not ended */
    int64_t frags;          /* frames of it without FIN */
    uint32_t utf8;          /* validation state of the text so far */
    char *buf;              /* the message being assembled (only across frames or reads) */
    size_t len, cap;
    size_t msg_len;         /* payload bytes of the open message, buffered or not */
    unsigned char *ctl;     /* a control frame's payload (125 bytes at most), while it arrives */
    size_t ctl_len;
} chat__wsrx;

/* Buffers above this size are freed once their message was handed over. */
#define CHAT__WSRX_KEEP_BYTES 4096

/*
 * Feed in[0..len) (unmasked in place: the caller's bytes change). A message may have at most
 * max_bytes of payload and max_frags frames (refused at the header of its max_frags-th frame
 * without FIN). A whole frame found in in while no message is open is handed over from in
 * itself, without a copy; in must have one writable byte after len for the NUL. After any
 * negative result the receiver must not be fed again (except after chat__wsrx_reset).
 */
int chat__wsrx_feed(chat__wsrx *r, unsigned char *in, size_t len, size_t max_bytes,
                    int64_t max_frags, const chat__wsrx_cb *cb, void *ud);

/* Free the buffer and start afresh. */
void chat__wsrx_reset(chat__wsrx *r);

/* Write the header of an unmasked server frame (FIN set) of len payload bytes so that it ends
 * exactly at data: at most 10 bytes before it. Returns the header's first byte. */
unsigned char *chat__ws_header(unsigned char *data, int op, size_t len);

#endif
