/* The JNI shim of the Java binding (bindings/java): one function per native method of
 * org.libchat.Native, over the client API of include/chat/client.h.
 *
 * - Handles are addresses of jc_client / jc_loopback as jlong; the Java side guarantees that a
 *   handle is not used after it was freed (org.libchat.Handle), the shim still refuses 0.
 * - Strings cross as real UTF-8 both ways, converted here: JNI's own "modified UTF-8" encodes
 *   characters outside the BMP as two 3-byte surrogates and NUL as two bytes, which is not the
 *   UTF-8 libchat speaks. A Java string with an unpaired surrogate is refused (EINVAL), never
 *   mangled; invalid UTF-8 from the library would become U+FFFD.
 * - No native thread calls into the VM: events are pulled by a Java thread (nextEvent), and
 *   the only callback, transfer progress, runs on the Java thread that made the call.
 * - Every libchat failure becomes an org.libchat.ChatException(code, name, reason).
 * - The loopback transport is libchat's test-support API (chat/testing.h), exported only by a
 *   libchat built with it: this shim has it when compiled with CHAT_JNI_TESTING against such a
 *   library (the test suite's libchatjni-testing); otherwise org.libchat.Loopback throws
 *   ENOTSUP.
 */
#include <chat/chat.h>
#ifdef CHAT_JNI_TESTING
#include <chat/sys/client_transport.h>
#include <chat/testing.h>
#endif
#include <jni.h>

#include "org_libchat_Native.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The conversation id type of client.h: the one place to change if it changes. */
typedef chat_conv_id jc_conv;

typedef struct jc_client {
    chat_client *c;
    int wake[2];        /* written once by interrupt: nextEvent returns for good */
    atomic_int closing; /* set by interrupt: transfers abort at their next progress call */
} jc_client;

#ifdef CHAT_JNI_TESTING
typedef struct jc_loopback {
    chat_loopback *peer;
    _Atomic(void *) state; /* the transport state, until a client takes it */
} jc_loopback;
#endif

/* Classes and members resolved once in JNI_OnLoad (global references). */
static struct {
    jclass chat_exception, npe, oom, string, event, message, conversation, history;
    jmethodID chat_exception_init, event_init, message_init, conversation_init, history_init;
    jmethodID transfer_progress;
    jstring empty;
} J;

/* ---- exceptions ----------------------------------------------------------------------------- */

static void throw_status(JNIEnv *env, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void throw_status(JNIEnv *env, int code, const char *fmt, ...)
{
    if ((*env)->ExceptionCheck(env))
        return; /* the first failure wins */
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    jstring jname = (*env)->NewStringUTF(env, chat_error_name(code));
    jstring jreason = (*env)->NewStringUTF(env, reason); /* see utf8_to_java for non-ASCII */
    if (!jname || !jreason)
        return; /* OutOfMemoryError pending */
    jobject ex = (*env)->NewObject(env, J.chat_exception, J.chat_exception_init, (jint)code,
                                   jname, jreason);
    if (ex)
        (*env)->Throw(env, (jthrowable)ex);
}

static jstring utf8_to_java(JNIEnv *env, const char *s, size_t len);

/* A failed call: the code with this thread's detail (chat_error_last) when it is about it. */
static void throw_rc(JNIEnv *env, int rc, const char *what)
{
    if ((*env)->ExceptionCheck(env))
        return;
    const chat_error_info *e = chat_error_last();
    const char *detail = (e->code == rc && e->message && *e->message) ? e->message
                                                                        : chat_strerror(rc);
    char reason[1024];
    snprintf(reason, sizeof reason, "%s: %s", what, detail);
    jstring jname = (*env)->NewStringUTF(env, chat_error_name(rc));
    /* the detail may quote a server's or a user's text: decode it as UTF-8 */
    jstring jreason = utf8_to_java(env, reason, strlen(reason));
    if (!jname || !jreason)
        return;
    jobject ex = (*env)->NewObject(env, J.chat_exception, J.chat_exception_init, (jint)rc, jname,
                                   jreason);
    if (ex)
        (*env)->Throw(env, (jthrowable)ex);
}

static void throw_npe(JNIEnv *env, const char *what)
{
    if (!(*env)->ExceptionCheck(env))
        (*env)->ThrowNew(env, J.npe, what);
}

static void throw_oom(JNIEnv *env)
{
    if (!(*env)->ExceptionCheck(env))
        (*env)->ThrowNew(env, J.oom, "libchat: out of native memory");
}

/* ---- strings -------------------------------------------------------------------------------- */

/* Decodes one UTF-8 sequence at s[*i]; invalid ones (overlong, surrogates, > U+10FFFF,
 * truncated) give U+FFFD and consume one byte. */
static uint32_t utf8_next(const unsigned char *s, size_t len, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp, min;
    size_t n;
    if (c < 0x80) {
        (*i)++;
        return c;
    } else if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F, n = 1, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F, n = 2, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        cp = c & 0x07, n = 3, min = 0x10000;
    } else {
        (*i)++;
        return 0xFFFD;
    }
    if (len - *i <= n) { /* fewer than n continuation bytes left */
        (*i)++;
        return 0xFFFD;
    }
    for (size_t k = 1; k <= n; k++) {
        unsigned char d = s[*i + k];
        if ((d & 0xC0) != 0x80) {
            (*i)++;
            return 0xFFFD;
        }
        cp = (cp << 6) | (d & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        (*i)++;
        return 0xFFFD;
    }
    *i += n + 1;
    return cp;
}

/* A Java string of len bytes of UTF-8 (NUL bytes included). NULL with an exception pending. */
static jstring utf8_to_java(JNIEnv *env, const char *s, size_t len)
{
    if (!s || len == 0)
        return (*env)->NewLocalRef(env, J.empty);
    jchar stackbuf[256];
    stackbuf[0] = 0; /* len > 0: the loop below writes at least one unit */
    jchar *u = len <= 256 ? stackbuf : malloc(len * sizeof *u); /* never more units than bytes */
    if (!u) {
        throw_oom(env);
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp = utf8_next((const unsigned char *)s, len, &i);
        if (cp >= 0x10000) {
            cp -= 0x10000;
            u[n++] = (jchar)(0xD800 + (cp >> 10));
            u[n++] = (jchar)(0xDC00 + (cp & 0x3FF));
        } else {
            u[n++] = (jchar)cp;
        }
    }
    jstring r = (*env)->NewString(env, u, (jsize)n);
    if (u != stackbuf)
        free(u);
    return r;
}

static jstring cstr_to_java(JNIEnv *env, const char *s)
{
    if (!s || !*s)
        return (*env)->NewLocalRef(env, J.empty);
    const char *p = s;
    while (*p && (unsigned char)*p < 0x80)
        p++;
    if (!*p)
        return (*env)->NewStringUTF(env, s); /* ASCII is also modified UTF-8: no copy here */
    return utf8_to_java(env, s, strlen(s));
}

/* A string the library handed over (char **out): converted, then chat_string_free'd. */
static jstring take_string(JNIEnv *env, char *s)
{
    jstring r = cstr_to_java(env, s);
    chat_string_free(s);
    return r;
}

enum { STR_REQUIRED = 0, STR_OPTIONAL = 1, STR_ALLOW_NUL = 2 };

/*
 * The UTF-8 of a Java string, malloc'd and NUL-terminated, its byte length in *len_out (may be
 * NULL). NULL when js is NULL and STR_OPTIONAL (no exception), or with an exception pending
 * (also one pending before the call, so that a chain of conversions stops at the first):
 * NullPointerException for a required NULL, ChatException(EINVAL) for an unpaired surrogate or
 * (without STR_ALLOW_NUL) a NUL character that would cut a C string short.
 */
static char *java_to_utf8(JNIEnv *env, jstring js, size_t *len_out, const char *what, int flags)
{
    if ((*env)->ExceptionCheck(env))
        return NULL; /* an earlier argument failed: no JNI calls with an exception pending */
    if (!js) {
        if (!(flags & STR_OPTIONAL))
            throw_npe(env, what);
        return NULL;
    }
    jsize n = (*env)->GetStringLength(env, js);
    jchar stackbuf[256];
    jchar *u = n <= 256 ? stackbuf : malloc((size_t)n * sizeof *u);
    char *out = malloc((size_t)n * 3 + 1); /* a UTF-16 unit never needs more than 3 bytes */
    if (!u || !out) {
        if (u != stackbuf)
            free(u);
        free(out);
        throw_oom(env);
        return NULL;
    }
    (*env)->GetStringRegion(env, js, 0, n, u);
    size_t o = 0;
    for (jsize i = 0; i < n; i++) {
        uint32_t c = u[i];
        if (c >= 0xD800 && c <= 0xDBFF && i + 1 < n && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF) {
            c = 0x10000 + ((c - 0xD800) << 10) + (u[i + 1] - 0xDC00);
            i++;
        } else if (c >= 0xD800 && c <= 0xDFFF) {
            throw_status(env, CHAT_EINVAL,
                         "%s: not valid Unicode: unpaired surrogate U+%04X at index %d", what,
                         (unsigned)c, (int)i);
            goto fail;
        } else if (c == 0 && !(flags & STR_ALLOW_NUL)) {
            throw_status(env, CHAT_EINVAL, "%s: contains a NUL character at index %d", what,
                         (int)i);
            goto fail;
        }
        if (c < 0x80) {
            out[o++] = (char)c;
        } else if (c < 0x800) {
            out[o++] = (char)(0xC0 | (c >> 6));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out[o++] = (char)(0xE0 | (c >> 12));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        } else {
            out[o++] = (char)(0xF0 | (c >> 18));
            out[o++] = (char)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (char)(0x80 | (c & 0x3F));
        }
    }
    out[o] = 0;
    if (u != stackbuf)
        free(u);
    if (len_out)
        *len_out = o;
    return out;
fail:
    if (u != stackbuf)
        free(u);
    free(out);
    return NULL;
}

/* A String[] as a malloc'd array of UTF-8 strings; NULL with an exception pending. */
static char **java_to_strv(JNIEnv *env, jobjectArray arr, size_t *n_out, const char *what)
{
    if ((*env)->ExceptionCheck(env))
        return NULL;
    if (!arr) {
        throw_npe(env, what);
        return NULL;
    }
    jsize n = (*env)->GetArrayLength(env, arr);
    char **v = calloc((size_t)n + 1, sizeof *v);
    if (!v) {
        throw_oom(env);
        return NULL;
    }
    for (jsize i = 0; i < n; i++) {
        jstring s = (jstring)(*env)->GetObjectArrayElement(env, arr, i);
        v[i] = java_to_utf8(env, s, NULL, what, STR_REQUIRED);
        (*env)->DeleteLocalRef(env, s);
        if (!v[i]) {
            for (jsize k = 0; k < i; k++)
                free(v[k]);
            free(v);
            return NULL;
        }
    }
    *n_out = (size_t)n;
    return v;
}

static void strv_free(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* ---- handles and numbers -------------------------------------------------------------------- */

static jc_client *client_of(JNIEnv *env, jlong h)
{
    jc_client *jc = (jc_client *)(intptr_t)h;
    if (!jc || !jc->c) {
        throw_status(env, CHAT_ECLOSED, "the client is closed (null handle)");
        return NULL;
    }
    return jc;
}

#ifdef CHAT_JNI_TESTING
static jc_loopback *loopback_of(JNIEnv *env, jlong h)
{
    jc_loopback *lb = (jc_loopback *)(intptr_t)h;
    if (!lb)
        throw_status(env, CHAT_ECLOSED, "the loopback is closed (null handle)");
    return lb;
}
#endif

/* Ids and seqs are unsigned in C and long in Java: a negative one is a caller's mistake. */
static int id_arg(JNIEnv *env, jlong v, const char *what, uint64_t *out)
{
    if (v < 0) {
        throw_status(env, CHAT_EINVAL, "%s must not be negative (%lld)", what, (long long)v);
        return 0;
    }
    *out = (uint64_t)v;
    return 1;
}

static int conv_arg(JNIEnv *env, jlong v, jc_conv *out)
{
    uint64_t u;
    if (!id_arg(env, v, "conv", &u))
        return 0;
    *out = (jc_conv)u;
    return 1;
}

/* ---- library load --------------------------------------------------------------------------- */

static jclass global_class(JNIEnv *env, const char *name)
{
    jclass local = (*env)->FindClass(env, name);
    if (!local)
        return NULL;
    jclass g = (jclass)(*env)->NewGlobalRef(env, local);
    (*env)->DeleteLocalRef(env, local);
    return g;
}

JNIEXPORT jint JNICALL JNI_OnLoad(JavaVM *vm, void *reserved)
{
    (void)reserved;
    JNIEnv *env;
    if ((*vm)->GetEnv(vm, (void **)&env, JNI_VERSION_1_6) != JNI_OK)
        return JNI_ERR;
    if (!(J.chat_exception = global_class(env, "org/libchat/ChatException")) ||
        !(J.npe = global_class(env, "java/lang/NullPointerException")) ||
        !(J.oom = global_class(env, "java/lang/OutOfMemoryError")) ||
        !(J.string = global_class(env, "java/lang/String")) ||
        !(J.event = global_class(env, "org/libchat/Event")) ||
        !(J.message = global_class(env, "org/libchat/Message")) ||
        !(J.conversation = global_class(env, "org/libchat/Conversation")) ||
        !(J.history = global_class(env, "org/libchat/History")))
        return JNI_ERR;
    jclass transfer = (*env)->FindClass(env, "org/libchat/Transfer");
    if (!transfer)
        return JNI_ERR;
    J.transfer_progress = (*env)->GetMethodID(env, transfer, "progress", "(JJ)Z");
    (*env)->DeleteLocalRef(env, transfer);
    J.chat_exception_init = (*env)->GetMethodID(env, J.chat_exception, "<init>",
                                                "(ILjava/lang/String;Ljava/lang/String;)V");
    J.event_init = (*env)->GetMethodID(
        env, J.event, "<init>",
        "(IJJJLjava/lang/String;Ljava/lang/String;Ljava/lang/String;ILjava/lang/String;"
        "Ljava/lang/String;ILjava/lang/String;JJJZJJJZ)V");
    J.message_init = (*env)->GetMethodID(
        env, J.message, "<init>",
        "(JJJLjava/lang/String;Ljava/lang/String;ILjava/lang/String;Ljava/lang/String;IJJJJZJJJ"
        "Ljava/lang/String;)V");
    J.conversation_init = (*env)->GetMethodID(
        env, J.conversation, "<init>", "(JILjava/lang/String;Ljava/lang/String;IJJJJJ)V");
    J.history_init = (*env)->GetMethodID(env, J.history, "<init>", "([Lorg/libchat/Message;ZJ)V");
    if (!J.transfer_progress || !J.chat_exception_init || !J.event_init || !J.message_init ||
        !J.conversation_init || !J.history_init)
        return JNI_ERR;
    jstring empty = (*env)->NewStringUTF(env, "");
    if (!empty || !(J.empty = (jstring)(*env)->NewGlobalRef(env, empty)))
        return JNI_ERR;
    (*env)->DeleteLocalRef(env, empty);
    return JNI_VERSION_1_6;
}

/* ---- errors and version --------------------------------------------------------------------- */

JNIEXPORT jstring JNICALL Java_org_libchat_Native_errorName(JNIEnv *env, jclass cls, jint code)
{
    (void)cls;
    return (*env)->NewStringUTF(env, chat_error_name(code));
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_strerror(JNIEnv *env, jclass cls, jint code)
{
    (void)cls;
    return (*env)->NewStringUTF(env, chat_strerror(code));
}

JNIEXPORT jint JNICALL Java_org_libchat_Native_errorFromName(JNIEnv *env, jclass cls,
                                                             jstring name)
{
    (void)cls;
    char *s = java_to_utf8(env, name, NULL, "name", STR_REQUIRED);
    if (!s)
        return CHAT_ERROR;
    int code = chat_error_from_name(s);
    free(s);
    return code;
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_versionString(JNIEnv *env, jclass cls)
{
    (void)cls;
    return (*env)->NewStringUTF(env, chat_version_string());
}

/* ---- client lifecycle ----------------------------------------------------------------------- */

JNIEXPORT jlong JNICALL Java_org_libchat_Native_create(
    JNIEnv *env, jclass cls, jstring jserver, jstring jtoken, jstring juser, jstring jpassword,
    jstring jdevice, jstring jcache, jstring jca, jlong backoff_base, jlong backoff_max,
    jlong hb_interval, jlong hb_timeout, jboolean auto_delivered, jlong jlb)
{
    (void)cls;
    jc_client *jc = NULL;
    chat_client_config *cfg = NULL;
    char *server = java_to_utf8(env, jserver, NULL, "server", STR_REQUIRED);
    char *token = java_to_utf8(env, jtoken, NULL, "token", STR_OPTIONAL);
    char *user = java_to_utf8(env, juser, NULL, "user", STR_OPTIONAL);
    char *password = java_to_utf8(env, jpassword, NULL, "password", STR_OPTIONAL);
    char *device = java_to_utf8(env, jdevice, NULL, "device", STR_OPTIONAL);
    char *cache = java_to_utf8(env, jcache, NULL, "cachePath", STR_OPTIONAL);
    char *ca = java_to_utf8(env, jca, NULL, "caFile", STR_OPTIONAL);
    if ((*env)->ExceptionCheck(env))
        goto out;
    int rc = chat_client_config_new(&cfg);
    const char *what = "config";
    if (rc == CHAT_OK)
        rc = chat_client_config_set_server(cfg, server), what = "server";
    if (rc == CHAT_OK && token)
        rc = chat_client_config_set_token(cfg, token), what = "token";
    if (rc == CHAT_OK && user)
        rc = chat_client_config_set_login(cfg, user, password, device), what = "login";
    if (rc == CHAT_OK && cache)
        rc = chat_client_config_set_cache_path(cfg, cache), what = "cachePath";
    if (rc == CHAT_OK && ca)
        rc = chat_client_config_set_ca_file(cfg, ca), what = "caFile";
    if (rc == CHAT_OK && backoff_base > 0)
        rc = chat_client_config_set_backoff(cfg, backoff_base, backoff_max), what = "backoff";
    if (rc == CHAT_OK && hb_interval > 0)
        rc = chat_client_config_set_heartbeat(cfg, hb_interval, hb_timeout), what = "heartbeat";
    if (rc == CHAT_OK)
        rc = chat_client_config_set_auto_delivered(cfg, auto_delivered ? 1 : 0),
        what = "autoDelivered";
    if (rc == CHAT_OK && jlb) {
#ifndef CHAT_JNI_TESTING
        chat_client_config_free(cfg);
        throw_status(env, CHAT_ENOTSUP, "loopback: libchat's test-support API is not built in");
        goto out;
#else
        jc_loopback *lb = (jc_loopback *)(intptr_t)jlb;
        void *state = atomic_exchange(&lb->state, NULL);
        what = "loopback";
        if (!state) {
            chat_client_config_free(cfg);
            throw_status(env, CHAT_EINVAL, "loopback: already used by another client");
            goto out;
        }
        rc = chat_client_config_set_transport(cfg, chat_client_transport_loopback_ops(), state);
#endif
    }
    if (rc != CHAT_OK) {
        throw_rc(env, rc, what);
        chat_client_config_free(cfg);
        goto out;
    }
    jc = calloc(1, sizeof *jc);
    if (!jc) {
        chat_client_config_free(cfg);
        throw_oom(env);
        goto out;
    }
    jc->wake[0] = jc->wake[1] = -1;
    if (pipe(jc->wake) != 0) {
        throw_status(env, CHAT_EIO, "pipe: %s", strerror(errno));
        chat_client_config_free(cfg);
        free(jc);
        jc = NULL;
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(jc->wake[i], F_SETFD, FD_CLOEXEC);
        fcntl(jc->wake[i], F_SETFL, O_NONBLOCK);
    }
    rc = chat_client_new(&jc->c, cfg);
    chat_client_config_free(cfg);
    if (rc != CHAT_OK) {
        throw_rc(env, rc, "create");
        close(jc->wake[0]);
        close(jc->wake[1]);
        free(jc);
        jc = NULL;
    }
out:
    free(server);
    free(token);
    free(user);
    if (password) {
        memset(password, 0, strlen(password)); /* do not leave it in freed memory */
        free(password);
    }
    free(device);
    free(cache);
    free(ca);
    return (jlong)(intptr_t)jc;
}

JNIEXPORT void JNICALL Java_org_libchat_Native_interrupt(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    if (!jc)
        return;
    atomic_store(&jc->closing, 1);
    ssize_t n;
    do
        n = write(jc->wake[1], "x", 1);
    while (n < 0 && errno == EINTR);
}

JNIEXPORT void JNICALL Java_org_libchat_Native_free(JNIEnv *env, jclass cls, jlong h)
{
    (void)env, (void)cls;
    jc_client *jc = (jc_client *)(intptr_t)h;
    if (!jc)
        return;
    chat_client_free(jc->c);
    close(jc->wake[0]);
    close(jc->wake[1]);
    free(jc);
}

/* The functions of one handle argument returning a status. */
#define SIMPLE(jname, cfunc)                                                                   \
    JNIEXPORT void JNICALL Java_org_libchat_Native_##jname(JNIEnv *env, jclass cls, jlong h)  \
    {                                                                                          \
        (void)cls;                                                                             \
        jc_client *jc = client_of(env, h);                                                     \
        int rc;                                                                                \
        if (jc && (rc = cfunc(jc->c)) < 0)                                                     \
            throw_rc(env, rc, #jname);                                                         \
    }

SIMPLE(start, chat_client_start)
SIMPLE(stop, chat_client_stop)
SIMPLE(reconnectNow, chat_client_reconnect_now)
SIMPLE(disconnect, chat_client_disconnect)

JNIEXPORT jint JNICALL Java_org_libchat_Native_state(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    return jc ? chat_client_state(jc->c) : CHAT_CONN_STOPPED;
}

JNIEXPORT void JNICALL Java_org_libchat_Native_setToken(JNIEnv *env, jclass cls, jlong h,
                                                        jstring jtoken)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    char *token = jc ? java_to_utf8(env, jtoken, NULL, "token", STR_REQUIRED) : NULL;
    if (!token)
        return;
    int rc = chat_client_set_token(jc->c, token);
    free(token);
    if (rc < 0)
        throw_rc(env, rc, "setToken");
}

/* A string out parameter: the converted string, or NULL with an exception. */
static jstring string_result(JNIEnv *env, int rc, char *s, const char *what)
{
    if (rc < 0) {
        chat_string_free(s);
        throw_rc(env, rc, what);
        return NULL;
    }
    return take_string(env, s);
}

/* A call of the form fn(&string, client): the string, or NULL with an exception. */
static jstring client_string(JNIEnv *env, jlong h, int (*fn)(char **, chat_client *),
                             const char *what)
{
    jc_client *jc = client_of(env, h);
    char *s = NULL;
    if (!jc)
        return NULL;
    int rc = fn(&s, jc->c); /* before reading s */
    return string_result(env, rc, s, what);
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_user(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    return client_string(env, h, chat_client_user, "user");
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_token(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    return client_string(env, h, chat_client_token, "token");
}

/* ---- sending -------------------------------------------------------------------------------- */

/* The four sends: to conversation jconv or (to_user) to user juser; text, which may hold NULs
 * as it goes with its length, or a media object. Returns the cmid. */
static jstring send_any(JNIEnv *env, jlong h, jlong jconv, int to_user, jstring juser,
                        jstring jbody, int media)
{
    jc_client *jc = client_of(env, h);
    jc_conv conv = 0;
    size_t len = 0;
    if (!jc || (!to_user && !conv_arg(env, jconv, &conv)))
        return NULL;
    char *user = to_user ? java_to_utf8(env, juser, NULL, "user", STR_REQUIRED) : NULL;
    char *body = java_to_utf8(env, jbody, &len, media ? "media" : "text",
                              media ? STR_REQUIRED : STR_ALLOW_NUL);
    jstring r = NULL;
    if (body && (user || !to_user)) {
        char *cmid = NULL;
        int rc;
        if (media)
            rc = to_user ? chat_client_send_media_to(&cmid, jc->c, user, body)
                         : chat_client_send_media(&cmid, jc->c, conv, body);
        else
            rc = to_user ? chat_client_send_text_to(&cmid, jc->c, user, body, len)
                         : chat_client_send_text(&cmid, jc->c, conv, body, len);
        r = string_result(env, rc, cmid, media ? "sendMedia" : "send");
    }
    free(user);
    free(body);
    return r;
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_sendText(JNIEnv *env, jclass cls, jlong h,
                                                           jlong conv, jstring text)
{
    (void)cls;
    return send_any(env, h, conv, 0, NULL, text, 0);
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_sendTextTo(JNIEnv *env, jclass cls, jlong h,
                                                             jstring user, jstring text)
{
    (void)cls;
    return send_any(env, h, 0, 1, user, text, 0);
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_sendMedia(JNIEnv *env, jclass cls, jlong h,
                                                            jlong conv, jstring json)
{
    (void)cls;
    return send_any(env, h, conv, 0, NULL, json, 1);
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_sendMediaTo(JNIEnv *env, jclass cls, jlong h,
                                                              jstring user, jstring json)
{
    (void)cls;
    return send_any(env, h, 0, 1, user, json, 1);
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_outboxCount(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    size_t n = 0;
    int rc;
    if (jc && (rc = chat_client_outbox_count(&n, jc->c)) < 0)
        throw_rc(env, rc, "outboxCount");
    return (jlong)n;
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_sendReply(JNIEnv *env, jclass cls, jlong h,
                                                            jlong jconv, jlong jreply,
                                                            jlong jthread, jstring jtext)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    uint64_t reply, thread;
    if (!jc || !conv_arg(env, jconv, &conv) || !id_arg(env, jreply, "replyTo", &reply) ||
        !id_arg(env, jthread, "thread", &thread))
        return NULL;
    size_t len = 0;
    char *text = java_to_utf8(env, jtext, &len, "text", STR_ALLOW_NUL);
    jstring r = NULL;
    if (text) {
        char *cmid = NULL;
        int rc = chat_client_send_reply(&cmid, jc->c, conv, reply, thread, text, len);
        r = string_result(env, rc, cmid, "reply");
    }
    free(text);
    return r;
}

/* ---- changes to sent messages, timers, threads, search -------------------------------------- */

/* The request id *req a call that returned rc stored, or 0 with ChatException pending (a
 * pointer: the call's own argument list sets it). */
static jlong request_result(JNIEnv *env, int rc, const uint64_t *req, const char *what)
{
    if (rc < 0) {
        throw_rc(env, rc, what);
        return 0;
    }
    return (jlong)*req;
}

/* The client and the (conv, seq) a call names (what: the seq's name in errors); NULL with an
 * exception pending. */
static jc_client *msg_args(JNIEnv *env, jlong h, jlong jconv, jlong jseq, const char *what,
                           jc_conv *conv, uint64_t *seq)
{
    jc_client *jc = client_of(env, h);
    if (!jc || !conv_arg(env, jconv, conv) || !id_arg(env, jseq, what, seq))
        return NULL;
    return jc;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_edit(JNIEnv *env, jclass cls, jlong h, jlong jconv,
                                                     jlong jseq, jstring jtext)
{
    (void)cls;
    jc_conv conv;
    uint64_t seq, req = 0;
    jc_client *jc = msg_args(env, h, jconv, jseq, "seq", &conv, &seq);
    size_t len = 0;
    char *text = jc ? java_to_utf8(env, jtext, &len, "text", STR_ALLOW_NUL) : NULL;
    jlong r = 0;
    if (text)
        r = request_result(env, chat_client_edit(&req, jc->c, conv, seq, text, len), &req,
                           "edit");
    free(text);
    return r;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_delete(JNIEnv *env, jclass cls, jlong h,
                                                       jlong jconv, jlong jseq)
{
    (void)cls;
    jc_conv conv;
    uint64_t seq, req = 0;
    jc_client *jc = msg_args(env, h, jconv, jseq, "seq", &conv, &seq);
    if (!jc)
        return 0;
    return request_result(env, chat_client_delete(&req, jc->c, conv, seq), &req, "delete");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_react(JNIEnv *env, jclass cls, jlong h,
                                                      jlong jconv, jlong jseq, jstring jemoji,
                                                      jboolean on)
{
    (void)cls;
    jc_conv conv;
    uint64_t seq, req = 0;
    jc_client *jc = msg_args(env, h, jconv, jseq, "seq", &conv, &seq);
    char *emoji = jc ? java_to_utf8(env, jemoji, NULL, "emoji", STR_REQUIRED) : NULL;
    jlong r = 0;
    if (emoji)
        r = request_result(env, chat_client_react(&req, jc->c, conv, seq, emoji, on ? 1 : 0),
                           &req, "react");
    free(emoji);
    return r;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_setTimer(JNIEnv *env, jclass cls, jlong h,
                                                         jlong jconv, jlong ttl)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    uint64_t req = 0;
    if (!jc || !conv_arg(env, jconv, &conv))
        return 0;
    return request_result(env, chat_client_set_timer(&req, jc->c, conv, (int64_t)ttl), &req,
                          "setTimer");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_markThreadRead(JNIEnv *env, jclass cls, jlong h,
                                                               jlong jconv, jlong jroot,
                                                               jlong jseq)
{
    (void)cls;
    jc_conv conv;
    uint64_t seq, root, req = 0;
    jc_client *jc = msg_args(env, h, jconv, jseq, "seq", &conv, &seq);
    if (!jc || !id_arg(env, jroot, "root", &root))
        return 0;
    return request_result(env, chat_client_mark_thread_read(&req, jc->c, conv, root, seq), &req,
                          "markThreadRead");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_thread(JNIEnv *env, jclass cls, jlong h,
                                                       jlong jconv, jlong jroot, jlong jafter,
                                                       jint limit)
{
    (void)cls;
    jc_conv conv;
    uint64_t root, after, req = 0;
    jc_client *jc = msg_args(env, h, jconv, jroot, "root", &conv, &root);
    if (!jc || !id_arg(env, jafter, "afterSeq", &after))
        return 0;
    return request_result(env, chat_client_thread(&req, jc->c, conv, root, after, limit), &req,
                          "thread");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_search(JNIEnv *env, jclass cls, jlong h,
                                                       jstring jquery, jlong jconv,
                                                       jlong jbefore, jint limit)
{
    (void)cls;
    jc_conv conv;
    uint64_t before, req = 0;
    jc_client *jc = msg_args(env, h, jconv, jbefore, "before", &conv, &before);
    char *query = jc ? java_to_utf8(env, jquery, NULL, "query", STR_REQUIRED) : NULL;
    jlong r = 0;
    if (query)
        r = request_result(env, chat_client_search(&req, jc->c, query, conv, before, limit), &req,
                           "search");
    free(query);
    return r;
}

/* ---- media ---------------------------------------------------------------------------------- */

typedef struct progress_ctx {
    JNIEnv *env;
    jobject transfer;
    jc_client *jc;
} progress_ctx;

/* Runs on the thread of the Java call that started the transfer. */
static int progress_cb(uint64_t done, uint64_t total, void *user_data)
{
    progress_ctx *p = user_data;
    JNIEnv *env = p->env;
    if (atomic_load(&p->jc->closing) || (*env)->ExceptionCheck(env))
        return 1;
    if (!p->transfer)
        return 0;
    jboolean go = (*env)->CallBooleanMethod(env, p->transfer, J.transfer_progress, (jlong)done,
                                            (jlong)total);
    return ((*env)->ExceptionCheck(env) || !go) ? 1 : 0;
}

/* After a transfer: a pending Java exception wins; an abort by close() is ECLOSED. */
static void transfer_result(JNIEnv *env, jc_client *jc, int rc, const char *what)
{
    if (rc >= 0 || (*env)->ExceptionCheck(env))
        return;
    if (rc == CHAT_EUSER && atomic_load(&jc->closing))
        throw_status(env, CHAT_ECLOSED, "%s: aborted, the client was closed", what);
    else if (rc == CHAT_EUSER)
        throw_status(env, CHAT_EUSER, "%s: aborted by the progress listener", what);
    else
        throw_rc(env, rc, what);
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_uploadFile(JNIEnv *env, jclass cls, jlong h,
                                                             jstring jpath, jstring jmime,
                                                             jobject transfer)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    char *path = jc ? java_to_utf8(env, jpath, NULL, "path", STR_REQUIRED) : NULL;
    char *mime = path ? java_to_utf8(env, jmime, NULL, "mime", STR_OPTIONAL) : NULL;
    jstring r = NULL;
    if (path && !(*env)->ExceptionCheck(env)) {
        progress_ctx p = {env, transfer, jc};
        char *id = NULL;
        int rc = chat_client_upload_file(&id, jc->c, path, mime, progress_cb, &p);
        if (rc >= 0 && !(*env)->ExceptionCheck(env))
            r = take_string(env, id);
        else
            chat_string_free(id);
        transfer_result(env, jc, rc, "upload");
    }
    free(path);
    free(mime);
    return r;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_mediaUrl(JNIEnv *env, jclass cls, jlong h,
                                                         jstring jid)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    char *id = jc ? java_to_utf8(env, jid, NULL, "mediaId", STR_REQUIRED) : NULL;
    uint64_t req = 0;
    if (id) {
        int rc = chat_client_media_url(&req, jc->c, id);
        if (rc < 0)
            throw_rc(env, rc, "mediaUrl");
    }
    free(id);
    return (jlong)req;
}

JNIEXPORT void JNICALL Java_org_libchat_Native_download(JNIEnv *env, jclass cls, jlong h,
                                                        jstring jurl, jstring jid, jstring jpath,
                                                        jobject transfer)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    char *url = jc ? java_to_utf8(env, jurl, NULL, "url", STR_REQUIRED) : NULL;
    char *id = url ? java_to_utf8(env, jid, NULL, "mediaId", STR_OPTIONAL) : NULL;
    char *path = url && !(*env)->ExceptionCheck(env)
                     ? java_to_utf8(env, jpath, NULL, "path", STR_REQUIRED)
                     : NULL;
    if (path) {
        progress_ctx p = {env, transfer, jc};
        int rc = chat_client_download(jc->c, url, id, path, progress_cb, &p);
        transfer_result(env, jc, rc, "download");
    }
    free(url);
    free(id);
    free(path);
}

/* ---- receipts, typing, presence, groups ----------------------------------------------------- */

JNIEXPORT void JNICALL Java_org_libchat_Native_markRead(JNIEnv *env, jclass cls, jlong h,
                                                        jlong jconv, jlong jseq)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    uint64_t seq;
    int rc;
    if (jc && conv_arg(env, jconv, &conv) && id_arg(env, jseq, "seq", &seq) &&
        (rc = chat_client_mark_read(jc->c, conv, seq)) < 0)
        throw_rc(env, rc, "markRead");
}

JNIEXPORT void JNICALL Java_org_libchat_Native_typing(JNIEnv *env, jclass cls, jlong h,
                                                      jlong jconv, jboolean active)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    int rc;
    if (jc && conv_arg(env, jconv, &conv) &&
        (rc = chat_client_typing(jc->c, conv, active ? 1 : 0)) < 0)
        throw_rc(env, rc, "typing");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_presenceQuery(JNIEnv *env, jclass cls, jlong h,
                                                              jobjectArray jusers)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    size_t n = 0;
    char **users = jc ? java_to_strv(env, jusers, &n, "users") : NULL;
    uint64_t req = 0;
    if (users) {
        int rc = chat_client_presence_query(&req, jc->c, (const char *const *)users, n);
        if (rc < 0)
            throw_rc(env, rc, "presence");
    }
    strv_free(users, n);
    return (jlong)req;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_groupCreate(JNIEnv *env, jclass cls, jlong h,
                                                            jstring jcmid, jstring jtitle,
                                                            jobjectArray jmembers)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    char *cmid = jc ? java_to_utf8(env, jcmid, NULL, "clientId", STR_OPTIONAL) : NULL;
    char *title = jc && !(*env)->ExceptionCheck(env)
                      ? java_to_utf8(env, jtitle, NULL, "title", STR_REQUIRED)
                      : NULL;
    size_t n = 0;
    char **members = title ? java_to_strv(env, jmembers, &n, "members") : NULL;
    uint64_t req = 0;
    if (members) {
        int rc = chat_client_group_create_id(&req, jc->c, cmid, title,
                                             (const char *const *)members, n);
        if (rc < 0)
            throw_rc(env, rc, "createGroup");
    }
    free(cmid);
    free(title);
    strv_free(members, n);
    return (jlong)req;
}

typedef int (*group_users_fn)(uint64_t *, chat_client *, jc_conv, const char *const *, size_t);

static jlong group_users(JNIEnv *env, jlong h, jlong jconv, jobjectArray jusers,
                         group_users_fn fn, const char *what)
{
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    if (!jc || !conv_arg(env, jconv, &conv))
        return 0;
    size_t n = 0;
    char **users = java_to_strv(env, jusers, &n, "users");
    uint64_t req = 0;
    if (users) {
        int rc = fn(&req, jc->c, conv, (const char *const *)users, n);
        if (rc < 0)
            throw_rc(env, rc, what);
    }
    strv_free(users, n);
    return (jlong)req;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_groupAdd(JNIEnv *env, jclass cls, jlong h,
                                                         jlong conv, jobjectArray users)
{
    (void)cls;
    return group_users(env, h, conv, users, chat_client_group_add, "addMembers");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_groupRemove(JNIEnv *env, jclass cls, jlong h,
                                                            jlong conv, jobjectArray users)
{
    (void)cls;
    return group_users(env, h, conv, users, chat_client_group_remove, "removeMembers");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_groupLeave(JNIEnv *env, jclass cls, jlong h,
                                                           jlong jconv)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    uint64_t req = 0;
    int rc;
    if (jc && conv_arg(env, jconv, &conv) &&
        (rc = chat_client_group_leave(&req, jc->c, conv)) < 0)
        throw_rc(env, rc, "leaveGroup");
    return (jlong)req;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_groupRename(JNIEnv *env, jclass cls, jlong h,
                                                            jlong jconv, jstring jtitle)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    if (!jc || !conv_arg(env, jconv, &conv))
        return 0;
    char *title = java_to_utf8(env, jtitle, NULL, "title", STR_REQUIRED);
    uint64_t req = 0;
    if (title) {
        int rc = chat_client_group_rename(&req, jc->c, conv, title);
        if (rc < 0)
            throw_rc(env, rc, "renameGroup");
    }
    free(title);
    return (jlong)req;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_groupSetRole(JNIEnv *env, jclass cls, jlong h,
                                                             jlong jconv, jstring juser,
                                                             jint role)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    if (!jc || !conv_arg(env, jconv, &conv))
        return 0;
    char *user = java_to_utf8(env, juser, NULL, "user", STR_REQUIRED);
    uint64_t req = 0;
    if (user) {
        int rc = chat_client_group_set_role(&req, jc->c, conv, user, role);
        if (rc < 0)
            throw_rc(env, rc, "setRole");
    }
    free(user);
    return (jlong)req;
}

/* ---- push notifications --------------------------------------------------------------------- */

JNIEXPORT jlong JNICALL Java_org_libchat_Native_pushRegister(JNIEnv *env, jclass cls, jlong h,
                                                             jstring jplatform, jstring jtoken,
                                                             jstring jtopic, jboolean sandbox)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    char *platform = jc ? java_to_utf8(env, jplatform, NULL, "platform", STR_REQUIRED) : NULL;
    char *token = platform ? java_to_utf8(env, jtoken, NULL, "token", STR_REQUIRED) : NULL;
    char *topic = token ? java_to_utf8(env, jtopic, NULL, "topic", STR_OPTIONAL) : NULL;
    uint64_t req = 0;
    if (token && !(*env)->ExceptionCheck(env)) {
        int rc = chat_client_push_register(&req, jc->c, platform, token, topic, sandbox ? 1 : 0);
        if (rc < 0)
            throw_rc(env, rc, "pushRegister");
    }
    free(platform);
    free(token);
    free(topic);
    return (jlong)req;
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_pushUnregister(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    uint64_t req = 0;
    int rc;
    if (jc && (rc = chat_client_push_unregister(&req, jc->c)) < 0)
        throw_rc(env, rc, "pushUnregister");
    return (jlong)req;
}

/* untilMs: Long.MAX_VALUE (INT64_MAX) until unmuted, 0 unmutes; negative is EINVAL in the core. */
JNIEXPORT jlong JNICALL Java_org_libchat_Native_mute(JNIEnv *env, jclass cls, jlong h,
                                                     jlong jconv, jlong until_ms)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    uint64_t req = 0;
    int rc;
    if (jc && conv_arg(env, jconv, &conv) &&
        (rc = chat_client_mute(&req, jc->c, conv, (int64_t)until_ms)) < 0)
        throw_rc(env, rc, "mute");
    return (jlong)req;
}

/* ---- the cache ------------------------------------------------------------------------------ */

JNIEXPORT jobjectArray JNICALL Java_org_libchat_Native_convs(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    chat_conv_list *l = NULL;
    int rc;
    if (!jc)
        return NULL;
    if ((rc = chat_client_convs(&l, jc->c)) < 0) {
        throw_rc(env, rc, "conversations");
        return NULL;
    }
    size_t n = chat_conv_list_count(l);
    jobjectArray arr = (*env)->NewObjectArray(env, (jsize)n, J.conversation, NULL);
    for (size_t i = 0; arr && i < n; i++) {
        jstring title = cstr_to_java(env, chat_conv_list_title(l, i));
        jstring peer = title ? cstr_to_java(env, chat_conv_list_peer(l, i)) : NULL;
        jobject o = NULL;
        if (peer)
            o = (*env)->NewObject(env, J.conversation, J.conversation_init,
                                  (jlong)chat_conv_list_id(l, i), (jint)chat_conv_list_kind(l, i),
                                  title, peer, (jint)chat_conv_list_role(l, i),
                                  (jlong)chat_conv_list_head(l, i),
                                  (jlong)chat_conv_list_read(l, i),
                                  (jlong)chat_conv_list_unread(l, i),
                                  (jlong)chat_conv_list_member_count(l, i),
                                  (jlong)chat_conv_list_muted_until(l, i));
        if (o)
            (*env)->SetObjectArrayElement(env, arr, (jsize)i, o);
        (*env)->DeleteLocalRef(env, title);
        (*env)->DeleteLocalRef(env, peer);
        (*env)->DeleteLocalRef(env, o);
        if ((*env)->ExceptionCheck(env))
            arr = NULL;
    }
    chat_conv_list_free(l);
    return arr;
}

/* The rows of a message list as Message[]; NULL with an exception pending. */
static jobjectArray message_array(JNIEnv *env, const chat_msg_list *l)
{
    size_t n = chat_msg_list_count(l);
    jobjectArray arr = (*env)->NewObjectArray(env, (jsize)n, J.message, NULL);
    for (size_t i = 0; arr && i < n; i++) {
        size_t tlen = 0;
        const char *t = chat_msg_list_text(l, i, &tlen);
        jstring from = cstr_to_java(env, chat_msg_list_from(l, i));
        jstring cmid = from ? cstr_to_java(env, chat_msg_list_cmid(l, i)) : NULL;
        jstring text = cmid ? utf8_to_java(env, t, tlen) : NULL;
        jstring json = text ? cstr_to_java(env, chat_msg_list_json(l, i)) : NULL;
        jstring reactions = json ? cstr_to_java(env, chat_msg_list_reactions(l, i)) : NULL;
        jobject o = NULL;
        if (reactions)
            o = (*env)->NewObject(env, J.message, J.message_init, (jlong)chat_msg_list_conv(l, i),
                                  (jlong)chat_msg_list_seq(l, i),
                                  (jlong)chat_msg_list_ts_ms(l, i), from, cmid,
                                  (jint)chat_msg_list_kind(l, i), text, json,
                                  (jint)chat_msg_list_status(l, i),
                                  (jlong)chat_msg_list_delivered_count(l, i),
                                  (jlong)chat_msg_list_read_count(l, i),
                                  (jlong)chat_msg_list_others(l, i),
                                  (jlong)chat_msg_list_edited_ms(l, i),
                                  chat_msg_list_deleted(l, i) ? JNI_TRUE : JNI_FALSE,
                                  (jlong)chat_msg_list_expires_ms(l, i),
                                  (jlong)chat_msg_list_reply_to(l, i),
                                  (jlong)chat_msg_list_thread(l, i), reactions);
        if (o)
            (*env)->SetObjectArrayElement(env, arr, (jsize)i, o);
        (*env)->DeleteLocalRef(env, from);
        (*env)->DeleteLocalRef(env, cmid);
        (*env)->DeleteLocalRef(env, text);
        (*env)->DeleteLocalRef(env, json);
        (*env)->DeleteLocalRef(env, reactions);
        (*env)->DeleteLocalRef(env, o);
        if ((*env)->ExceptionCheck(env))
            arr = NULL;
    }
    return arr;
}

JNIEXPORT jobject JNICALL Java_org_libchat_Native_history(JNIEnv *env, jclass cls, jlong h,
                                                          jlong jconv, jlong jbefore, jint limit)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    uint64_t before, req = 0;
    if (!jc || !conv_arg(env, jconv, &conv) || !id_arg(env, jbefore, "beforeSeq", &before))
        return NULL;
    chat_msg_list *l = NULL;
    int rc = chat_client_history(&l, &req, jc->c, conv, before, limit);
    if (rc < 0) {
        throw_rc(env, rc, "history");
        return NULL;
    }
    jobjectArray arr = message_array(env, l);
    jobject r = NULL;
    if (arr)
        r = (*env)->NewObject(env, J.history, J.history_init, arr,
                              chat_msg_list_complete(l) ? JNI_TRUE : JNI_FALSE, (jlong)req);
    chat_msg_list_free(l);
    return r;
}

JNIEXPORT jobjectArray JNICALL Java_org_libchat_Native_outbox(JNIEnv *env, jclass cls, jlong h)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    chat_msg_list *l = NULL;
    int rc;
    if (!jc)
        return NULL;
    if ((rc = chat_client_outbox(&l, jc->c)) < 0) {
        throw_rc(env, rc, "outbox");
        return NULL;
    }
    jobjectArray arr = message_array(env, l);
    chat_msg_list_free(l);
    return arr;
}

JNIEXPORT jobjectArray JNICALL Java_org_libchat_Native_searchLocal(JNIEnv *env, jclass cls,
                                                               jlong h, jstring jquery,
                                                               jlong jconv, jint limit)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    if (!jc || !conv_arg(env, jconv, &conv))
        return NULL;
    char *query = java_to_utf8(env, jquery, NULL, "query", STR_REQUIRED);
    if (!query)
        return NULL;
    chat_msg_list *l = NULL;
    int rc = chat_client_search_local(&l, jc->c, query, conv, limit);
    free(query);
    if (rc < 0) {
        throw_rc(env, rc, "searchLocal");
        return NULL;
    }
    jobjectArray arr = message_array(env, l);
    chat_msg_list_free(l);
    return arr;
}

static jlongArray long_triple(JNIEnv *env, jlong a, jlong b, jlong c)
{
    jlongArray r = (*env)->NewLongArray(env, 3);
    if (r) {
        jlong v[3] = {a, b, c};
        (*env)->SetLongArrayRegion(env, r, 0, 3, v);
    }
    return r;
}

JNIEXPORT jlongArray JNICALL Java_org_libchat_Native_messageStatus(JNIEnv *env, jclass cls,
                                                                   jlong h, jstring jcmid)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    char *cmid = jc ? java_to_utf8(env, jcmid, NULL, "cmid", STR_REQUIRED) : NULL;
    if (!cmid)
        return NULL;
    int st = 0;
    jc_conv conv = 0;
    uint64_t seq = 0;
    int rc = chat_client_message_status(&st, &conv, &seq, jc->c, cmid);
    free(cmid);
    if (rc < 0) {
        throw_rc(env, rc, "messageStatus");
        return NULL;
    }
    return long_triple(env, st, (jlong)conv, (jlong)seq);
}

JNIEXPORT jlongArray JNICALL Java_org_libchat_Native_messageReceipts(JNIEnv *env, jclass cls,
                                                                     jlong h, jlong jconv,
                                                                     jlong jseq)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    jc_conv conv;
    uint64_t seq;
    if (!jc || !conv_arg(env, jconv, &conv) || !id_arg(env, jseq, "seq", &seq))
        return NULL;
    size_t d = 0, r = 0, o = 0;
    int rc = chat_client_message_receipts(&d, &r, &o, jc->c, conv, seq);
    if (rc < 0) {
        throw_rc(env, rc, "messageReceipts");
        return NULL;
    }
    return long_triple(env, (jlong)d, (jlong)r, (jlong)o);
}

/* ---- events --------------------------------------------------------------------------------- */

static jobject event_object(JNIEnv *env, const chat_event *ev)
{
    size_t tlen = 0;
    const char *t = chat_event_text(ev, &tlen);
    jstring user = cstr_to_java(env, chat_event_user(ev));
    jstring device = user ? cstr_to_java(env, chat_event_device(ev)) : NULL;
    jstring cmid = device ? cstr_to_java(env, chat_event_cmid(ev)) : NULL;
    jstring text = cmid ? utf8_to_java(env, t, tlen) : NULL;
    jstring json = text ? cstr_to_java(env, chat_event_json(ev)) : NULL;
    jstring msg = json ? cstr_to_java(env, chat_event_message(ev)) : NULL;
    jobject o = NULL;
    if (msg)
        o = (*env)->NewObject(
            env, J.event, J.event_init, (jint)chat_event_type(ev), (jlong)chat_event_conv(ev),
            (jlong)chat_event_seq(ev), (jlong)chat_event_ts_ms(ev), user, device, cmid,
            (jint)chat_event_kind(ev), text, json, (jint)chat_event_code(ev), msg,
            (jlong)chat_event_request(ev), (jlong)chat_event_delivered(ev),
            (jlong)chat_event_read(ev), chat_event_active(ev) ? JNI_TRUE : JNI_FALSE,
            (jlong)chat_event_last_seen_ms(ev), (jlong)chat_event_retry_ms(ev),
            (jlong)chat_event_count(ev), chat_event_more(ev) ? JNI_TRUE : JNI_FALSE);
    (*env)->DeleteLocalRef(env, user);
    (*env)->DeleteLocalRef(env, device);
    (*env)->DeleteLocalRef(env, cmid);
    (*env)->DeleteLocalRef(env, text);
    (*env)->DeleteLocalRef(env, json);
    (*env)->DeleteLocalRef(env, msg);
    return o;
}

/* Pops from the engine's queue; between events it polls the queue's fd together with the wake
 * pipe, so that close() ends the wait at once without any timer. */
JNIEXPORT jobject JNICALL Java_org_libchat_Native_nextEvent(JNIEnv *env, jclass cls, jlong h,
                                                            jint timeout_ms)
{
    (void)cls;
    jc_client *jc = client_of(env, h);
    if (!jc)
        return NULL;
    int efd = chat_client_event_fd(jc->c);
    if (efd < 0) {
        throw_rc(env, efd, "event queue");
        return NULL;
    }
    for (;;) {
        if (atomic_load(&jc->closing))
            return NULL;
        chat_event *ev = NULL;
        int rc = chat_client_next_event(&ev, jc->c);
        if (rc == CHAT_OK) {
            jobject o = event_object(env, ev);
            chat_event_free(ev);
            return o;
        }
        if (rc != CHAT_EAGAIN) {
            throw_rc(env, rc, "event queue");
            return NULL;
        }
        struct pollfd p[2] = {{.fd = efd, .events = POLLIN}, {.fd = jc->wake[0], .events = POLLIN}};
        int n = poll(p, 2, timeout_ms);
        if (n == 0)
            return NULL;
        if (n < 0 && errno != EINTR) {
            throw_status(env, CHAT_EIO, "event queue: poll: %s", strerror(errno));
            return NULL;
        }
    }
}

/* ---- loopback transport --------------------------------------------------------------------- */

#ifdef CHAT_JNI_TESTING

JNIEXPORT jlong JNICALL Java_org_libchat_Native_loopbackNew(JNIEnv *env, jclass cls)
{
    (void)cls;
    jc_loopback *lb = calloc(1, sizeof *lb);
    if (!lb) {
        throw_oom(env);
        return 0;
    }
    void *state = NULL;
    int rc = chat_client_transport_loopback_new(&state, &lb->peer);
    if (rc < 0) {
        free(lb);
        throw_rc(env, rc, "loopback");
        return 0;
    }
    atomic_init(&lb->state, state);
    return (jlong)(intptr_t)lb;
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackFree(JNIEnv *env, jclass cls, jlong h)
{
    (void)env, (void)cls;
    jc_loopback *lb = (jc_loopback *)(intptr_t)h;
    if (!lb)
        return;
    void *state = atomic_exchange(&lb->state, NULL);
    if (state) {
        /* never handed to a client: a config destroys a transport state it did not use */
        chat_client_config *cfg = NULL;
        if (chat_client_config_new(&cfg) == CHAT_OK) {
            chat_client_config_set_transport(cfg, chat_client_transport_loopback_ops(), state);
            chat_client_config_free(cfg);
        }
    }
    chat_loopback_free(lb->peer);
    free(lb);
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackSetRefuse(JNIEnv *env, jclass cls,
                                                                 jlong h, jboolean refuse)
{
    (void)cls;
    jc_loopback *lb = loopback_of(env, h);
    if (lb)
        chat_loopback_set_refuse(lb->peer, refuse ? 1 : 0);
}

JNIEXPORT jboolean JNICALL Java_org_libchat_Native_loopbackWaitOpen(JNIEnv *env, jclass cls,
                                                                    jlong h, jint timeout_ms)
{
    (void)cls;
    jc_loopback *lb = loopback_of(env, h);
    return lb && chat_loopback_wait_open(lb->peer, timeout_ms) == CHAT_OK;
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_loopbackRecv(JNIEnv *env, jclass cls, jlong h,
                                                               jint timeout_ms)
{
    (void)cls;
    jc_loopback *lb = loopback_of(env, h);
    if (!lb)
        return NULL;
    char *frame = NULL;
    int rc = chat_loopback_recv(&frame, lb->peer, timeout_ms);
    if (rc == CHAT_ETIMEDOUT)
        return NULL;
    return string_result(env, rc, frame, "loopback recv");
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackSend(JNIEnv *env, jclass cls, jlong h,
                                                            jstring jframe)
{
    (void)cls;
    jc_loopback *lb = loopback_of(env, h);
    size_t len;
    char *frame = lb ? java_to_utf8(env, jframe, &len, "frame", STR_ALLOW_NUL) : NULL;
    if (!frame)
        return;
    int rc = chat_loopback_send(lb->peer, frame, len);
    free(frame);
    if (rc < 0)
        throw_rc(env, rc, "loopback send");
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackClose(JNIEnv *env, jclass cls, jlong h,
                                                             jint code, jstring jreason)
{
    (void)cls;
    jc_loopback *lb = loopback_of(env, h);
    char *reason = lb ? java_to_utf8(env, jreason, NULL, "reason", STR_REQUIRED) : NULL;
    if (!reason)
        return;
    int rc = chat_loopback_close(lb->peer, code, reason);
    free(reason);
    if (rc < 0)
        throw_rc(env, rc, "loopback close");
}

JNIEXPORT jint JNICALL Java_org_libchat_Native_loopbackConnects(JNIEnv *env, jclass cls,
                                                                jlong h)
{
    (void)cls;
    jc_loopback *lb = loopback_of(env, h);
    return lb ? (jint)chat_loopback_connects(lb->peer) : 0;
}

#else /* no test-support API in this libchat: no loopback can be made */

static void no_loopback(JNIEnv *env)
{
    throw_status(env, CHAT_ENOTSUP, "loopback: libchat's test-support API is not built in "
                                    "(a libchat configured with -Dtesting_api=true has it)");
}

JNIEXPORT jlong JNICALL Java_org_libchat_Native_loopbackNew(JNIEnv *env, jclass cls)
{
    (void)cls;
    no_loopback(env);
    return 0;
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackFree(JNIEnv *env, jclass cls, jlong h)
{
    (void)env, (void)cls, (void)h;
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackSetRefuse(JNIEnv *env, jclass cls,
                                                                 jlong h, jboolean refuse)
{
    (void)cls, (void)h, (void)refuse;
    no_loopback(env);
}

JNIEXPORT jboolean JNICALL Java_org_libchat_Native_loopbackWaitOpen(JNIEnv *env, jclass cls,
                                                                    jlong h, jint timeout_ms)
{
    (void)cls, (void)h, (void)timeout_ms;
    no_loopback(env);
    return JNI_FALSE;
}

JNIEXPORT jstring JNICALL Java_org_libchat_Native_loopbackRecv(JNIEnv *env, jclass cls, jlong h,
                                                               jint timeout_ms)
{
    (void)cls, (void)h, (void)timeout_ms;
    no_loopback(env);
    return NULL;
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackSend(JNIEnv *env, jclass cls, jlong h,
                                                            jstring jframe)
{
    (void)cls, (void)h, (void)jframe;
    no_loopback(env);
}

JNIEXPORT void JNICALL Java_org_libchat_Native_loopbackClose(JNIEnv *env, jclass cls, jlong h,
                                                             jint code, jstring jreason)
{
    (void)cls, (void)h, (void)code, (void)jreason;
    no_loopback(env);
}

JNIEXPORT jint JNICALL Java_org_libchat_Native_loopbackConnects(JNIEnv *env, jclass cls,
                                                                jlong h)
{
    (void)cls, (void)h;
    no_loopback(env);
    return 0;
}
#endif
