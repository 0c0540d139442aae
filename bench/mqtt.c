/* See mqtt.h. Strings are a 2-byte big-endian length and the bytes; the fixed header is the
 * packet type and flags in one byte, then the remaining length in 1-4 bytes of 7 bits each. */
#include "mqtt.h"

#include <string.h>

static unsigned char *put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return p + 2;
}

static unsigned char *put_str(unsigned char *p, const char *s, size_t n)
{
    p = put16(p, (unsigned)n);
    memcpy(p, s, n);
    return p + n;
}

/* The fixed header for a remaining length of rem: its length. */
static size_t fixed(unsigned char *p, int type, int flags, size_t rem)
{
    size_t i = 0;
    p[i++] = (unsigned char)(type << 4 | flags);
    do {
        unsigned char b = rem & 0x7f;
        rem >>= 7;
        p[i++] = (unsigned char)(rem ? b | 0x80 : b);
    } while (rem);
    return i;
}

static size_t header_len(size_t rem)
{
    return 1 + (rem < 128 ? 1 : rem < 16384 ? 2 : rem < 2097152 ? 3 : 4);
}

size_t mqtt_connect(unsigned char out[256], const char *client_id, unsigned keepalive_s)
{
    size_t idl = strnlen(client_id, 200), rem = 10 + 2 + idl;
    unsigned char *p = out + fixed(out, MQTT_CONNECT, 0, rem);
    p = put_str(p, "MQTT", 4);
    *p++ = 4;    /* protocol level: 3.1.1 */
    *p++ = 0x02; /* clean session, no will, no user name or password */
    p = put16(p, keepalive_s);
    p = put_str(p, client_id, idl);
    return (size_t)(p - out);
}

size_t mqtt_subscribe(unsigned char out[256], unsigned pid, const char *topic, int qos)
{
    size_t tl = strnlen(topic, 200), rem = 2 + 2 + tl + 1;
    unsigned char *p = out + fixed(out, MQTT_SUBSCRIBE, 0x2, rem); /* flags 0010, required */
    p = put16(p, pid);
    p = put_str(p, topic, tl);
    *p++ = (unsigned char)qos;
    return (size_t)(p - out);
}

size_t mqtt_publish(unsigned char *out, size_t cap, const char *topic, int qos, unsigned pid,
                    const void *payload, size_t len)
{
    size_t tl = strlen(topic), rem = 2 + tl + (qos ? 2 : 0) + len;
    if (tl > 65535 || rem > 268435455 || header_len(rem) + rem > cap)
        return 0;
    unsigned char *p = out + fixed(out, MQTT_PUBLISH, qos << 1, rem);
    p = put_str(p, topic, tl);
    if (qos)
        p = put16(p, pid);
    memcpy(p, payload, len);
    return (size_t)(p + len - out);
}

size_t mqtt_puback(unsigned char out[4], unsigned pid)
{
    out[0] = MQTT_PUBACK << 4;
    out[1] = 2;
    put16(out + 2, pid);
    return 4;
}

size_t mqtt_disconnect(unsigned char out[2])
{
    out[0] = MQTT_DISCONNECT << 4;
    out[1] = 0;
    return 2;
}

long mqtt_parse(const unsigned char *p, size_t n, mqtt_pkt *pkt)
{
    size_t rem = 0, i = 1;
    for (int shift = 0;; shift += 7) {
        if (i >= n)
            return 0;
        if (shift > 21)
            return -1;
        rem |= (size_t)(p[i] & 0x7f) << shift;
        if (!(p[i++] & 0x80))
            break;
    }
    if (n - i < rem)
        return 0;
    memset(pkt, 0, sizeof *pkt);
    pkt->type = p[0] >> 4;
    pkt->flags = p[0] & 0x0f;
    const unsigned char *b = p + i, *end = b + rem;
    switch (pkt->type) {
    case MQTT_PUBLISH: {
        if (rem < 2)
            return -1;
        size_t tl = (size_t)b[0] << 8 | b[1];
        int qos = pkt->flags >> 1 & 3;
        if (qos == 3 || rem < 2 + tl + (qos ? 2 : 0))
            return -1;
        pkt->topic = (const char *)b + 2;
        pkt->topic_len = tl;
        b += 2 + tl;
        if (qos) {
            pkt->pid = (unsigned)b[0] << 8 | b[1];
            b += 2;
        }
        break;
    }
    case MQTT_PUBACK:
    case MQTT_SUBACK:
        if (rem < 2)
            return -1;
        pkt->pid = (unsigned)b[0] << 8 | b[1];
        b += 2;
        break;
    default:
        break;
    }
    pkt->body = b;
    pkt->body_len = (size_t)(end - b);
    return (long)(i + rem);
}
