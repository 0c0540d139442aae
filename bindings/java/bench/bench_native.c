/* The C side of the Java binding's bench (EventBench.java): the same workloads driven from C
 * alone, as the baseline the binding is compared with in the same run, and the frame feeder
 * both runs share.
 *
 * Workloads, all over the loopback transport (no socket, no server; the cache in memory):
 * - events: a C thread feeds N server frames into the engine (typing frames, or new messages
 *   of one conversation, which the engine stores in its cache), and the consumer counts the
 *   TYPING or MESSAGE events they produce;
 * - sends: N chat_client_send_text calls on a client that is not started (outbox writes).
 */
#include <chat/chat.h>
#include <chat/sys/client_transport.h>
#include <chat/testing.h>
#include <cjson/cJSON.h>
#include <jni.h>

#include "org_libchat_EventBench.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 10000

/* The first member of the shim's jc_loopback (bindings/java/jni/chat_jni.c): the bench reaches
 * the peer of a Java Loopback through it, so that both runs use the same C feeder. */
typedef struct shim_loopback {
    chat_loopback *peer;
} shim_loopback;

static int64_t now_ns(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void throw_msg(JNIEnv *env, const char *msg)
{
    jclass c = (*env)->FindClass(env, "java/lang/IllegalStateException");
    if (c)
        (*env)->ThrowNew(env, c, msg);
}

/* ---- the feeder -------------------------------------------------------------------------- */

typedef struct feeder {
    chat_loopback *peer;
    int n;
    int messages;
    int sent;
    pthread_t thread;
} feeder;

static void *feed(void *arg)
{
    feeder *f = arg;
    char buf[512];
    for (int i = 0; i < f->n; i++) {
        int len;
        if (f->messages)
            len = snprintf(buf, sizeof buf,
                           "{\"type\":\"msg\",\"conv\":12,\"seq\":%d,\"ts\":1764331200000,"
                           "\"from\":\"bob\",\"device\":\"phone\",\"cmid\":\"b-%d\","
                           "\"kind\":\"text\",\"text\":\"message number %d\"}",
                           i + 1, i + 1, i);
        else
            len = snprintf(buf, sizeof buf,
                           "{\"type\":\"typing\",\"conv\":12,\"user\":\"bob\",\"state\":\"%s\","
                           "\"ttl_ms\":5000}",
                           (i & 1) ? "stop" : "start");
        if (chat_loopback_send(f->peer, buf, (size_t)len) != CHAT_OK)
            break;
        f->sent++;
    }
    return NULL;
}

static feeder *feeder_start(chat_loopback *peer, int n, int messages)
{
    feeder *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->peer = peer;
    f->n = n;
    f->messages = messages;
    if (pthread_create(&f->thread, NULL, feed, f) != 0) {
        free(f);
        return NULL;
    }
    return f;
}

/* Joins the feeder; returns how many frames it delivered. */
static int feeder_join(feeder *f)
{
    pthread_join(f->thread, NULL);
    int sent = f->sent;
    free(f);
    return sent;
}

JNIEXPORT jlong JNICALL Java_org_libchat_EventBench_feedStart(JNIEnv *env, jclass cls,
                                                               jlong loopback, jint n,
                                                               jboolean messages)
{
    (void)cls;
    feeder *f = feeder_start(((shim_loopback *)(intptr_t)loopback)->peer, n, messages);
    if (!f)
        throw_msg(env, "feeder: cannot start a thread");
    return (jlong)(intptr_t)f;
}

JNIEXPORT jint JNICALL Java_org_libchat_EventBench_feedJoin(JNIEnv *env, jclass cls, jlong f)
{
    (void)env, (void)cls;
    return feeder_join((feeder *)(intptr_t)f);
}

/* ---- the C baseline ---------------------------------------------------------------------- */

/* The server's half of a connect: auth_ok, then the sync's convs with conversation 12 (empty). */
static int handshake(chat_loopback *peer)
{
    if (chat_loopback_wait_open(peer, WAIT_MS) != CHAT_OK)
        return -1;
    for (int answered = 0; answered < 2;) {
        char *frame = NULL;
        if (chat_loopback_recv(&frame, peer, WAIT_MS) != CHAT_OK)
            return -1;
        cJSON *o = cJSON_Parse(frame);
        chat_string_free(frame);
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "type"));
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
        char buf[1024];
        int len = 0;
        if (type && id && strcmp(type, "auth") == 0)
            len = snprintf(buf, sizeof buf,
                           "{\"type\":\"auth_ok\",\"re\":\"%s\",\"v\":1,\"user\":\"alice\","
                           "\"device\":\"d1\",\"ts\":1764331200000,\"cursor\":0}",
                           id);
        else if (type && id && strcmp(type, "convs") == 0)
            len = snprintf(buf, sizeof buf, "%s%s%s", "{\"type\":\"convs\",\"re\":\"", id,
                           "\",\"cursor\":1,\"more\":false,\"convs\":[{\"conv\":12,\"kind\":"
                           "\"direct\",\"title\":\"\",\"role\":\"member\",\"head\":0,"
                           "\"delivered\":0,\"read\":0,\"unread\":0,\"joined\":0,\"members\":["
                           "{\"user\":\"alice\",\"role\":\"member\",\"delivered\":0,\"read\":0},"
                           "{\"user\":\"bob\",\"role\":\"member\",\"delivered\":0,\"read\":0}"
                           "]}]}");
        cJSON_Delete(o);
        if (len > 0) {
            if (chat_loopback_send(peer, buf, (size_t)len) != CHAT_OK)
                return -1;
            answered++;
        }
    }
    return 0;
}

static chat_client *loopback_client(chat_loopback **peer)
{
    chat_client_config *cfg = NULL;
    chat_client *c = NULL;
    void *state = NULL;
    if (chat_client_transport_loopback_new(&state, peer) != CHAT_OK)
        return NULL;
    if (chat_client_config_new(&cfg) == CHAT_OK &&
        chat_client_config_set_server(cfg, "ws://loopback/") == CHAT_OK &&
        chat_client_config_set_token(cfg, "tok-alice") == CHAT_OK &&
        chat_client_config_set_auto_delivered(cfg, 0) == CHAT_OK &&
        chat_client_config_set_transport(cfg, chat_client_transport_loopback_ops(), state) ==
            CHAT_OK)
        chat_client_new(&c, cfg);
    chat_client_config_free(cfg);
    if (!c) {
        chat_loopback_free(*peer);
        *peer = NULL;
    }
    return c;
}

/* {elapsed ns from the first frame to the n-th event, consumer thread CPU ns} or NULL. */
JNIEXPORT jlongArray JNICALL Java_org_libchat_EventBench_cEvents(JNIEnv *env, jclass cls,
                                                                  jint n, jboolean messages)
{
    (void)cls;
    chat_loopback *peer = NULL;
    chat_client *c = loopback_client(&peer);
    if (!c) {
        throw_msg(env, "C run: cannot create a client");
        return NULL;
    }
    int want = messages ? CHAT_EVENT_MESSAGE : CHAT_EVENT_TYPING;
    const char *fail = NULL;
    if (chat_client_start(c) != CHAT_OK || handshake(peer) != 0)
        fail = "C run: the handshake failed";
    for (chat_event *ev = NULL; !fail;) { /* until SYNCED */
        if (chat_client_wait_event(&ev, c, WAIT_MS) != CHAT_OK)
            fail = "C run: no SYNCED event";
        else if (chat_event_type(ev) == CHAT_EVENT_SYNCED) {
            chat_event_free(ev);
            break;
        }
        chat_event_free(ev);
    }
    int64_t t0 = now_ns(CLOCK_MONOTONIC), cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID), t1 = t0,
            cpu1 = cpu0;
    feeder *f = fail ? NULL : feeder_start(peer, n, messages);
    if (!fail && !f)
        fail = "C run: cannot start the feeder";
    for (int got = 0; !fail && got < n;) {
        chat_event *ev = NULL;
        if (chat_client_wait_event(&ev, c, WAIT_MS) != CHAT_OK) {
            fail = "C run: events stopped coming";
            break;
        }
        if (chat_event_type(ev) == want)
            got++;
        chat_event_free(ev);
    }
    if (!fail) {
        t1 = now_ns(CLOCK_MONOTONIC);
        cpu1 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    }
    if (f && feeder_join(f) != n && !fail)
        fail = "C run: the feeder could not deliver every frame";
    chat_client_free(c);
    chat_loopback_free(peer);
    if (fail) {
        throw_msg(env, fail);
        return NULL;
    }
    jlongArray r = (*env)->NewLongArray(env, 2);
    jlong v[2] = {t1 - t0, cpu1 - cpu0};
    if (r)
        (*env)->SetLongArrayRegion(env, r, 0, 2, v);
    return r;
}

/* Elapsed ns of n sends to conversation 12 on a client that is not started. */
JNIEXPORT jlong JNICALL Java_org_libchat_EventBench_cSends(JNIEnv *env, jclass cls, jint n)
{
    (void)cls;
    chat_loopback *peer = NULL;
    chat_client *c = loopback_client(&peer);
    if (!c) {
        throw_msg(env, "C run: cannot create a client");
        return 0;
    }
    char text[64];
    int64_t t0 = now_ns(CLOCK_MONOTONIC);
    for (int i = 0; i < n; i++) {
        int len = snprintf(text, sizeof text, "message number %d", i);
        char *cmid = NULL;
        if (chat_client_send_text(&cmid, c, 12, text, (size_t)len) != CHAT_OK) {
            chat_client_free(c);
            chat_loopback_free(peer);
            throw_msg(env, "C run: a send failed");
            return 0;
        }
        chat_string_free(cmid);
    }
    int64_t t1 = now_ns(CLOCK_MONOTONIC);
    chat_client_free(c);
    chat_loopback_free(peer);
    return t1 - t0;
}
