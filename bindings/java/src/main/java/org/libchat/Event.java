package org.libchat;

/**
 * One client event, copied out of the library's {@code chat_event} (which is freed at once), so
 * it may be kept, shared between threads and dropped in any order. Getters that do not apply to
 * the {@link #type()} return 0, {@code false} or {@code ""} (never {@code null}), as in the C API.
 *
 * <p>Conversation ids and seqs are {@code long}; seqs are positive and far below 2^63.
 */
public final class Event {
    private final EventType type;
    private final long conv;
    private final long seq;
    private final long tsMs;
    private final String user;
    private final String device;
    private final String cmid;
    private final int kind;
    private final String text;
    private final String json;
    private final int code;
    private final String message;
    private final long request;
    private final long delivered;
    private final long read;
    private final boolean active;
    private final long lastSeenMs;
    private final long retryMs;
    private final long count;
    private final boolean more;

    /* Called by the native layer only (one JNI call per event). */
    Event(int type, long conv, long seq, long tsMs, String user, String device, String cmid,
          int kind, String text, String json, int code, String message, long request,
          long delivered, long read, boolean active, long lastSeenMs, long retryMs, long count,
          boolean more) {
        this.type = EventType.fromCode(type);
        this.conv = conv;
        this.seq = seq;
        this.tsMs = tsMs;
        this.user = user;
        this.device = device;
        this.cmid = cmid;
        this.kind = kind;
        this.text = text;
        this.json = json;
        this.code = code;
        this.message = message;
        this.request = request;
        this.delivered = delivered;
        this.read = read;
        this.active = active;
        this.lastSeenMs = lastSeenMs;
        this.retryMs = retryMs;
        this.count = count;
        this.more = more;
    }

    public EventType type() {
        return type;
    }

    /** The conversation (MESSAGE, SENT, RECEIPT, CONV, TYPING, HISTORY, RESULT of a group op). */
    public long conv() {
        return conv;
    }

    /** The message's seq (MESSAGE, SENT; RESULT: the seq of a membership change). */
    public long seq() {
        return seq;
    }

    /** Server time of a MESSAGE or SENT, in ms since the epoch. */
    public long tsMs() {
        return tsMs;
    }

    /** The sender (MESSAGE), receipt owner, typist, presence user, or me (ONLINE). */
    public String user() {
        return user;
    }

    public String device() {
        return device;
    }

    /** Client message id (MESSAGE, SENT, SEND_FAILED). */
    public String cmid() {
        return cmid;
    }

    /** The kind of a MESSAGE. */
    public MessageKind kind() {
        return MessageKind.fromCode(kind);
    }

    /** Text of a text MESSAGE. */
    public String text() {
        return text;
    }

    /** The wire frame behind the event as JSON (media and event payloads, media_url answers), or "". */
    public String json() {
        return json;
    }

    /** The media of a media MESSAGE, or null. */
    public Media media() {
        return Media.ofMessage(kind, json);
    }

    /** A {@code chat_status}: 0 or the failure (OFFLINE, AUTH_FAILED, SEND_FAILED, HISTORY, RESULT). */
    public int code() {
        return code;
    }

    /** Human-readable detail, or the wire error's reason. */
    public String message() {
        return message;
    }

    /** The failure as an exception when {@link #code()} is negative, else null. */
    public ChatException error() {
        if (code >= 0)
            return null;
        return new ChatException(code, Native.errorName(code),
                                 message.isEmpty() ? Native.strerror(code) : message);
    }

    /** The request a RESULT or HISTORY completes. */
    public long request() {
        return request;
    }

    /** RECEIPT: the member's delivered watermark. */
    public long delivered() {
        return delivered;
    }

    /** RECEIPT: the member's read watermark. */
    public long read() {
        return read;
    }

    /** TYPING: true at start, false at stop. PRESENCE: true when online. */
    public boolean active() {
        return active;
    }

    /** PRESENCE: last seen, ms since the epoch (0: unknown). */
    public long lastSeenMs() {
        return lastSeenMs;
    }

    /** OFFLINE: milliseconds until the next attempt. */
    public long retryMs() {
        return retryMs;
    }

    /** HISTORY: messages stored by the fetch. */
    public long count() {
        return count;
    }

    /** HISTORY: true when the server has more in that direction. */
    public boolean more() {
        return more;
    }

    @Override
    public String toString() {
        StringBuilder b = new StringBuilder("Event{").append(type);
        if (conv != 0) b.append(" conv=").append(conv);
        if (seq != 0) b.append(" seq=").append(seq);
        if (!user.isEmpty()) b.append(" user=").append(user);
        if (!cmid.isEmpty()) b.append(" cmid=").append(cmid);
        if (!text.isEmpty()) b.append(" text=\"").append(text).append('"');
        if (code != 0) b.append(" code=").append(Native.errorName(code));
        if (!message.isEmpty()) b.append(" message=\"").append(message).append('"');
        if (request != 0) b.append(" request=").append(request);
        if (delivered != 0) b.append(" delivered=").append(delivered);
        if (read != 0) b.append(" read=").append(read);
        if (active) b.append(" active");
        return b.append('}').toString();
    }
}
