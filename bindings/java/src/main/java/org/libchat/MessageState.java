package org.libchat;

/** Where one of my messages stands ({@link ChatClient#messageStatus}). */
public final class MessageState {
    private final MessageStatus status;
    private final long conv;
    private final long seq;

    MessageState(MessageStatus status, long conv, long seq) {
        this.status = status;
        this.conv = conv;
        this.seq = seq;
    }

    public MessageStatus status() {
        return status;
    }

    /** The conversation it landed in; 0 while {@link MessageStatus#SENDING}. */
    public long conv() {
        return conv;
    }

    /** Its seq; 0 while {@link MessageStatus#SENDING}. */
    public long seq() {
        return seq;
    }

    @Override
    public String toString() {
        return "MessageState{" + status + " conv=" + conv + " seq=" + seq + "}";
    }
}
