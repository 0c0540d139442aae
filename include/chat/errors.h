/**
 * @file errors.h
 * @brief Status codes, their names, and the thread-local last-error record.
 *
 * Every fallible call returns CHAT_OK (0) or a negative ::chat_status. Codes are only ever
 * appended; the wire protocol's error frames carry the same names ("EINVAL", "EPERM", ...).
 */
#ifndef CHAT_ERRORS_H
#define CHAT_ERRORS_H

#include "common.h"

CHAT_BEGIN_DECLS

typedef enum chat_status {
    CHAT_OK = 0,
    CHAT_ERROR = -1,     /**< unexpected failure */
    CHAT_EINVAL = -2,    /**< invalid argument or field */
    CHAT_ENOMEM = -3,    /**< out of memory */
    CHAT_ENOTFOUND = -4, /**< no such object */
    CHAT_EEXISTS = -5,   /**< already exists */
    CHAT_EBUSY = -6,     /**< resource busy, or too late for this call */
    CHAT_EAGAIN = -7,    /**< try again later (rate limit, full queue) */
    CHAT_ECLOSED = -8,   /**< connection or instance closed */
    CHAT_EAUTH = -9,     /**< authentication failed or missing */
    CHAT_EPERM = -10,    /**< authenticated but not allowed */
    CHAT_ELIMIT = -11,   /**< a configured limit was exceeded */
    CHAT_EPROTO = -12,   /**< malformed protocol data */
    CHAT_EIO = -13,      /**< storage or system I/O failed */
    CHAT_ETIMEDOUT = -14,/**< deadline passed */
    CHAT_ENOTSUP = -15,  /**< operation not supported */
    CHAT_EVERSION = -16, /**< version mismatch (protocol or vtable) */
    CHAT_EMISUSE = -17,  /**< API called in the wrong state or thread */
    CHAT_EUSER = -18     /**< a host callback aborted the operation; never produced by libchat */
} chat_status;

/**
 * Static human-readable text for a code; unknown codes give "unknown error". [any thread]
 * @since 0.1
 */
CHAT_API const char *chat_strerror(int code);

/**
 * Static name of a code without the CHAT_ prefix ("EINVAL"); "ERROR" for unknown. [any thread]
 * @since 0.1
 */
CHAT_API const char *chat_error_name(int code);

/**
 * Parse a name produced by chat_error_name() back into its code.
 * @return the code, or CHAT_ERROR for an unknown name. [any thread]
 * @since 0.1
 */
CHAT_API int chat_error_from_name(const char *name);

/** Detail of the last failure on this thread. The return value decides success, not this. */
typedef struct chat_error_info {
    int code;            /**< a ::chat_status */
    const char *message; /**< valid until the next libchat call on this thread */
    int backend_code;    /**< backend-specific detail (an SQLite code, an errno), or 0 */
} chat_error_info;

/** The calling thread's last error record; never NULL. [any thread] @since 0.1 */
CHAT_API const chat_error_info *chat_error_last(void);

CHAT_END_DECLS

#endif /* CHAT_ERRORS_H */
