package org.libchat;

/**
 * The status codes of libchat ({@code chat_status} in {@code include/chat/errors.h}). Codes are
 * only ever appended there, so a newer library may report a code this enum does not know:
 * {@link #fromCode(int)} maps it to {@link #ERROR}, and {@link ChatException#code()} keeps the
 * raw number.
 */
public enum ChatStatus {
    OK(0),
    /** Unexpected failure. */
    ERROR(-1),
    /** Invalid argument or field (also: a Java string that is not valid Unicode). */
    EINVAL(-2),
    ENOMEM(-3),
    /** No such object. */
    ENOTFOUND(-4),
    EEXISTS(-5),
    EBUSY(-6),
    /** Try again later (rate limit, full queue). */
    EAGAIN(-7),
    /** Connection or client closed (also: a call on a closed {@link ChatClient}). */
    ECLOSED(-8),
    /** Authentication failed or missing. */
    EAUTH(-9),
    /** Authenticated but not allowed. */
    EPERM(-10),
    /** A configured limit was exceeded. */
    ELIMIT(-11),
    EPROTO(-12),
    /** Storage, network or system I/O failed. */
    EIO(-13),
    ETIMEDOUT(-14),
    ENOTSUP(-15),
    EVERSION(-16),
    /** The API was called in the wrong state or from the wrong thread. */
    EMISUSE(-17),
    /** A host callback (a progress listener) aborted the operation. */
    EUSER(-18);

    private final int code;

    ChatStatus(int code) {
        this.code = code;
    }

    /** The negative number of the C API ({@code CHAT_EINVAL} is -2). */
    public int code() {
        return code;
    }

    /** The status of a code; unknown codes give {@link #ERROR}. */
    public static ChatStatus fromCode(int code) {
        if (code <= 0 && -code < VALUES.length)
            return VALUES[-code];
        return ERROR;
    }

    private static final ChatStatus[] VALUES = values(); // ordered by -code
}
