package org.libchat;

/** Status of one of my messages ({@code chat_msg_status}). */
public enum MessageStatus {
    /** Not mine (or unknown). */
    NONE(0),
    /** In the outbox. */
    SENDING(1),
    /** Acked by the server (stored). */
    SENT(2),
    /** Every other member's delivered watermark reached it. */
    DELIVERED(3),
    /** Every other member's read watermark reached it. */
    READ(4),
    /** Refused by the server for good (see {@link EventType#SEND_FAILED}). */
    FAILED(5);

    private final int code;

    MessageStatus(int code) {
        this.code = code;
    }

    /** The number of the C API. */
    public int code() {
        return code;
    }

    /** The constant of a code; {@link #NONE} for a code newer than this binding. */
    public static MessageStatus fromCode(int code) {
        for (MessageStatus v : VALUES)
            if (v.code == code)
                return v;
        return NONE;
    }

    private static final MessageStatus[] VALUES = values();
}
