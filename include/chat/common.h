/**
 * @file common.h
 * @brief Export macro, C++ guards, allocator and log callback shared by every libchat header.
 */
#ifndef CHAT_COMMON_H
#define CHAT_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define CHAT_BEGIN_DECLS extern "C" {
#define CHAT_END_DECLS }
#else
#define CHAT_BEGIN_DECLS
#define CHAT_END_DECLS
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CHAT_API __attribute__((visibility("default")))
#define CHAT_DEPRECATED __attribute__((deprecated))
#else
#define CHAT_API
#define CHAT_DEPRECATED
#endif

CHAT_BEGIN_DECLS

/** Log levels passed to a ::chat_log_cb. */
typedef enum chat_log_level {
    CHAT_LOG_ERROR = 0,
    CHAT_LOG_WARN = 1,
    CHAT_LOG_INFO = 2,
    CHAT_LOG_DEBUG = 3
} chat_log_level;

/**
 * Log sink. libchat never prints; it reports through this callback.
 * @param level a ::chat_log_level value.
 * @param msg NUL-terminated, borrowed for the call.
 * @param user_data as registered.
 */
typedef void (*chat_log_cb)(int level, const char *msg, void *user_data);

/**
 * Structured log sink: the same lines as ::chat_log_cb, with their fields apart.
 * @param level a ::chat_log_level value.
 * @param msg the event, NUL-terminated, without the fields; borrowed for the call.
 * @param fields key, value, key, value, ..., NULL: NUL-terminated strings borrowed for the
 *        call. Keys are stable: "conn" (the connection's id, decimal), "user", "device",
 *        "req" (the request id the client chose), "code" (an error name such as "EINVAL", or
 *        a WebSocket close code such as "1001"). Each appears at most once and only when it
 *        applies. Message bodies and tokens never appear in a line or a field.
 * @param user_data as registered.
 * @since 0.2
 */
typedef void (*chat_log_kv_cb)(int level, const char *msg, const char *const *fields,
                               void *user_data);

/** A memory allocator. Every function must be thread-safe. */
typedef struct chat_allocator {
    void *(*malloc)(size_t size, void *user_data);
    void *(*realloc)(void *ptr, size_t size, void *user_data);
    void (*free)(void *ptr, void *user_data);
    void *user_data;
} chat_allocator;

/**
 * Replace libc as the process-wide allocator of libchat.
 * [before any other libchat call]
 * @return CHAT_OK, CHAT_EINVAL (a NULL function), CHAT_EBUSY (libchat already allocated).
 * @since 0.1
 */
CHAT_API int chat_set_default_allocator(const chat_allocator *alloc);

/**
 * Free a string that libchat returned through an `out` parameter. Accepts NULL. [any thread]
 * @since 0.1
 */
CHAT_API void chat_string_free(char *s);

/** Runtime version as CHAT_VERSION_NUMBER of the loaded library. [any thread] @since 0.1 */
CHAT_API uint32_t chat_version(void);

/** Runtime version string, static. [any thread] @since 0.1 */
CHAT_API const char *chat_version_string(void);

CHAT_END_DECLS

#endif /* CHAT_COMMON_H */
