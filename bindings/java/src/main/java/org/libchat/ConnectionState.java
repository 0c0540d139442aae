package org.libchat;

/** Connection states ({@code chat_conn_state}); {@link ChatClient#state()}. */
public enum ConnectionState {
    /** Not started, or stopped. */
    STOPPED(0),
    /** Waiting to (re)connect (backoff). */
    OFFLINE(1),
    /** Connecting or authenticating. */
    CONNECTING(2),
    /** Authenticated (the sync may still run). */
    ONLINE(3),
    /** Credentials refused; no retry until {@link ChatClient#setToken}. */
    AUTH_FAILED(4);

    private final int code;

    ConnectionState(int code) {
        this.code = code;
    }

    /** The number of the C API. */
    public int code() {
        return code;
    }

    /** The constant of a code; {@link #STOPPED} for a code newer than this binding. */
    public static ConnectionState fromCode(int code) {
        for (ConnectionState v : VALUES)
            if (v.code == code)
                return v;
        return STOPPED;
    }

    private static final ConnectionState[] VALUES = values();
}
