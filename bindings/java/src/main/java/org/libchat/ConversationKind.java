package org.libchat;

/** Kinds of conversation ({@code chat_conv_kind}). */
public enum ConversationKind {
    UNKNOWN(0),
    /** Exactly two users, one conversation per pair. */
    DIRECT(1),
    GROUP(2);

    private final int code;

    ConversationKind(int code) {
        this.code = code;
    }

    /** The number of the C API. */
    public int code() {
        return code;
    }

    /** The constant of a code; {@link #UNKNOWN} for a code newer than this binding. */
    public static ConversationKind fromCode(int code) {
        for (ConversationKind v : VALUES)
            if (v.code == code)
                return v;
        return UNKNOWN;
    }

    private static final ConversationKind[] VALUES = values();
}
