/* The few MQTT 3.1.1 packets a QoS 1 client needs (OASIS MQTT 3.1.1, chapter 3), for
 * chat-bench's --mqtt mode: encoded into the caller's buffer, decoded from a byte stream. */
#ifndef CHAT_BENCH_MQTT_H
#define CHAT_BENCH_MQTT_H

#include <stddef.h>

enum {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14
};

typedef struct mqtt_pkt {
    int type, flags;           /* the fixed header's two halves; PUBLISH's QoS is flags >> 1 & 3 */
    unsigned pid;              /* PUBLISH at QoS > 0, PUBACK, SUBACK */
    const char *topic;         /* PUBLISH */
    size_t topic_len;
    const unsigned char *body; /* PUBLISH: the payload; CONNACK: flags, code; SUBACK: codes */
    size_t body_len;
} mqtt_pkt;

/* The encoders return the packet's length; out must hold it (mqtt_publish: 0 when over cap). */
size_t mqtt_connect(unsigned char out[256], const char *client_id, unsigned keepalive_s);
size_t mqtt_subscribe(unsigned char out[256], unsigned pid, const char *topic, int qos);
size_t mqtt_publish(unsigned char *out, size_t cap, const char *topic, int qos, unsigned pid,
                    const void *payload, size_t len);
size_t mqtt_puback(unsigned char out[4], unsigned pid);
size_t mqtt_disconnect(unsigned char out[2]);

/* The packet at p[0..n): its whole length, with *pkt pointing into p; 0 when it is not all
 * there yet; -1 when it is malformed. */
long mqtt_parse(const unsigned char *p, size_t n, mqtt_pkt *pkt);

#endif
