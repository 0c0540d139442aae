package org.libchat;

/** Event types ({@code chat_client_event_type}); {@link #UNKNOWN} for a type newer than this binding. */
public enum EventType {
    UNKNOWN(0),
    /** A connection attempt started. */
    CONNECTING(1),
    /** Authenticated: {@link Event#user()}, {@link Event#device()}; the sync starts. */
    ONLINE(2),
    /** The connection failed or dropped: code, message, {@link Event#retryMs()}. */
    OFFLINE(3),
    /** Credentials refused: no retry until {@link ChatClient#setToken} or {@link ChatClient#reconnectNow}. */
    AUTH_FAILED(4),
    /** The resume after a connect finished; the outbox flushes. */
    SYNCED(5),
    /** A new message is in the cache (live or synced): conv, seq, user (sender), text, json... */
    MESSAGE(6),
    /** An outbox message was acked: cmid, conv, seq. */
    SENT(7),
    /** The server refused an outbox message for good: cmid, code, message. */
    SEND_FAILED(8),
    /** A member's watermark moved: conv, user, delivered, read. */
    RECEIPT(9),
    /** A conversation's metadata or my unread count changed: conv. */
    CONV(10),
    /** conv, user, active. */
    TYPING(11),
    /** user, active (online), lastSeenMs. */
    PRESENCE(12),
    /** A history fetch finished: request, conv, code, count, more. */
    HISTORY(13),
    /** A request completed: request, code, message, conv, seq. */
    RESULT(14),
    /**
     * A cached message changed: conv, seq, user (who changed it), kind: EDIT (text: the new
     * text), DELETE (a tombstone now), REACT (text: the emoji, active: on or off); EVENT with
     * seq 0: every message of user in conv was erased (the account was deleted).
     */
    UPDATED(15),
    /** A message expired (disappearing messages, retention) and left the cache: conv, seq. */
    EXPIRED(16);

    private final int code;

    EventType(int code) {
        this.code = code;
    }

    public int code() {
        return code;
    }

    public static EventType fromCode(int code) {
        return code > 0 && code < VALUES.length ? VALUES[code] : UNKNOWN;
    }

    private static final EventType[] VALUES = values();
}
