package org.libchat;

/** A member's role in a conversation ({@code chat_role}). */
public enum Role {
    /** Left or removed. */
    NONE(0),
    MEMBER(1),
    ADMIN(2),
    OWNER(3);

    private final int code;

    Role(int code) {
        this.code = code;
    }

    /** The number of the C API. */
    public int code() {
        return code;
    }

    /** The constant of a code; {@link #NONE} for a code newer than this binding. */
    public static Role fromCode(int code) {
        for (Role v : VALUES)
            if (v.code == code)
                return v;
        return NONE;
    }

    private static final Role[] VALUES = values();
}
