/* The part of doc/protocol.md the bench relays speak, whatever carries their bytes (relay.c on
 * libwebsockets, native-relay.c on libchat's native transport), so that chat-bench drives them
 * as it drives chatd (with --relay-tokens). It parses no JSON: a few string searches.
 *
 *   auth          the token is the user name; answers {"type":"auth_ok",...}
 *   send "to"     the frame as received goes to that user's connection
 *   send "conv"   the frame goes to every member of the one group except the sender
 *   group_create  remembers the members list (strings) as group 1; answers {"type":"conv",...}
 *   every send is answered {"type":"ack","re":ID} unless acks are off (chatd acks every send)
 *   anything else is answered with an ENOTSUP error frame
 */
#ifndef CHAT_BENCH_RELAY_PROTO_H
#define CHAT_BENCH_RELAY_PROTO_H

#include <stddef.h>

/* The protocol's view of a connection: the first member of each relay's own. */
typedef struct rp_conn {
    char user[65];
    int authed;
} rp_conn;

typedef struct rp_io {
    /* Answer c alone (auth_ok, ack, conv, error). */
    void (*reply)(rp_conn *c, const char *data, size_t len);
    /* The frame as it came, to each of the n connections (n >= 1). */
    void (*forward)(rp_conn *const *to, int n, const char *data, size_t len);
} rp_io;

void rp_setup(const rp_io *io, int ack);
/* One whole message from c. */
void rp_message(rp_conn *c, const char *m, size_t len);
/* c is gone: its user no longer receives. */
void rp_closed(rp_conn *c);

#endif
