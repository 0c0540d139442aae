package org.libchat;

/** Kinds of message ({@code chat_msg_kind}). */
public enum MessageKind {
    UNKNOWN(0),
    /** UTF-8 text. */
    TEXT(1),
    /** A media reference ({@link Media}). */
    MEDIA(2),
    /** A membership or title change (JSON). */
    EVENT(3),
    /** An edit of an earlier message (the kind of an {@link EventType#UPDATED} event). */
    EDIT(4),
    /** A delete for everyone (the kind of an {@link EventType#UPDATED} event). */
    DELETE(5),
    /** A reaction put on or taken off (the kind of an {@link EventType#UPDATED} event). */
    REACT(6);

    private final int code;

    MessageKind(int code) {
        this.code = code;
    }

    /** The number of the C API. */
    public int code() {
        return code;
    }

    /** The constant of a code; {@link #UNKNOWN} for a code newer than this binding. */
    public static MessageKind fromCode(int code) {
        for (MessageKind v : VALUES)
            if (v.code == code)
                return v;
        return UNKNOWN;
    }

    private static final MessageKind[] VALUES = values();
}
