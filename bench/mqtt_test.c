/* chat-bench's MQTT codec (mqtt.c): packets as the standard lays them out byte for byte, a
 * stream cut anywhere, the remaining length past one byte, and malformed input refused. */
#include "mqtt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;
#define CHECK(c)                                                                                  \
    do {                                                                                          \
        if (!(c)) {                                                                               \
            fprintf(stderr, "mqtt_test:%d: %s\n", __LINE__, #c);                                  \
            failures++;                                                                           \
        }                                                                                         \
    } while (0)

int main(void)
{
    unsigned char b[1024];
    mqtt_pkt k;

    /* CONNECT: type 1, remaining 14: "MQTT", level 4, clean session, keep-alive 60, "u1" */
    static const unsigned char connect[] = {0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60,
                                            0, 2, 'u', '1'};
    CHECK(mqtt_connect(b, "u1", 60) == sizeof connect && !memcmp(b, connect, sizeof connect));

    /* SUBSCRIBE: flags 0010, packet id 1, "u/u1", QoS 1 */
    static const unsigned char sub[] = {0x82, 9, 0, 1, 0, 4, 'u', '/', 'u', '1', 1};
    CHECK(mqtt_subscribe(b, 1, "u/u1", 1) == sizeof sub && !memcmp(b, sub, sizeof sub));

    static const unsigned char puback[] = {0x40, 2, 0x12, 0x34};
    CHECK(mqtt_puback(b, 0x1234) == 4 && !memcmp(b, puback, 4));

    /* A PUBLISH at QoS 1 with a 200-byte payload: a two-byte remaining length (2+3+2+200). */
    char payload[200];
    memset(payload, 'x', sizeof payload);
    size_t n = mqtt_publish(b, sizeof b, "g/1", 1, 7, payload, sizeof payload);
    CHECK(n == 3 + 207 && b[0] == 0x32 && b[1] == ((207 & 0x7f) | 0x80) && b[2] == 207 >> 7);
    CHECK(mqtt_parse(b, n, &k) == (long)n);
    CHECK(k.type == MQTT_PUBLISH && (k.flags >> 1 & 3) == 1 && k.pid == 7);
    CHECK(k.topic_len == 3 && !memcmp(k.topic, "g/1", 3));
    CHECK(k.body_len == sizeof payload && !memcmp(k.body, payload, sizeof payload));
    /* every cut short of the whole packet is incomplete, never an error */
    for (size_t cut = 0; cut < n; cut++)
        CHECK(mqtt_parse(b, cut, &k) == 0);
    CHECK(mqtt_publish(b, n - 1, "g/1", 1, 7, payload, sizeof payload) == 0);

    /* two packets in one buffer come out one at a time */
    static const unsigned char two[] = {0x20, 2, 0, 0, 0x90, 3, 0, 1, 1};
    CHECK(mqtt_parse(two, sizeof two, &k) == 4 && k.type == MQTT_CONNACK && k.body_len == 2 &&
          k.body[1] == 0);
    CHECK(mqtt_parse(two + 4, sizeof two - 4, &k) == 5 && k.type == MQTT_SUBACK && k.pid == 1 &&
          k.body_len == 1 && k.body[0] == 1);

    /* malformed: a topic longer than the packet, QoS 3, a remaining length of five bytes */
    static const unsigned char long_topic[] = {0x30, 4, 0, 9, 'a', 'b'};
    CHECK(mqtt_parse(long_topic, sizeof long_topic, &k) == -1);
    static const unsigned char qos3[] = {0x36, 5, 0, 1, 'a', 0, 1};
    CHECK(mqtt_parse(qos3, sizeof qos3, &k) == -1);
    static const unsigned char huge[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0x01};
    CHECK(mqtt_parse(huge, sizeof huge, &k) == -1);
    static const unsigned char short_ack[] = {0x40, 1, 0};
    CHECK(mqtt_parse(short_ack, sizeof short_ack, &k) == -1);

    if (failures)
        return 1;
    printf("mqtt_test: ok\n");
    return 0;
}
