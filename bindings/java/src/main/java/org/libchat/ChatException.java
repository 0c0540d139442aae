package org.libchat;

/**
 * Every failure libchat reports, synchronous or through a {@link java.util.concurrent.CompletableFuture}:
 * the {@code chat_status} (its number and its name, such as {@code "EPERM"}) and the reason the
 * library or the server gave.
 *
 * <p>It is unchecked: most calls fail only on programming errors (a closed client, a string that
 * is not valid Unicode) or conditions an app handles where it chooses. Requests that complete
 * later fail their future with it (wrapped in a {@link java.util.concurrent.CompletionException}
 * by {@code join()}, in an {@link java.util.concurrent.ExecutionException} by {@code get()}).
 */
public class ChatException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int code;
    private final String name;
    private final String reason;

    /** Built by the native layer (and the binding) with the library's name for the code. */
    public ChatException(int code, String name, String reason) {
        super(name + ": " + reason);
        this.code = code;
        this.name = name;
        this.reason = reason;
    }

    ChatException(ChatStatus status, String reason) {
        this(status.code(), status.name(), reason);
    }

    ChatException(ChatStatus status, String reason, Throwable cause) {
        this(status, reason);
        initCause(cause);
    }

    /** The raw {@code chat_status} number (negative). */
    public int code() {
        return code;
    }

    /** The status; {@link ChatStatus#ERROR} for a code newer than this binding. */
    public ChatStatus status() {
        return ChatStatus.fromCode(code);
    }

    /** The library's name of the code, as {@code chat_error_name()} gives it ("EAUTH"). */
    public String statusName() {
        return name;
    }

    /** Human-readable detail: the library's message or the server's reason. */
    public String reason() {
        return reason;
    }
}
