package org.libchat;

import java.util.Collections;
import java.util.List;

/** A page of a conversation's messages, ascending by seq ({@link ChatClient#history}). */
public final class History {
    private final List<Message> messages;
    private final boolean complete;
    private final long request;

    /* Called by the native layer only. */
    History(Message[] messages, boolean complete, long request) {
        this.messages = Collections.unmodifiableList(java.util.Arrays.asList(messages));
        this.complete = complete;
        this.request = request;
    }

    /** The messages, ascending; unmodifiable. */
    public List<Message> messages() {
        return messages;
    }

    /**
     * True when the page covers the whole range asked for (or reaches the conversation's
     * start). False when the cache held only the newest part of it and the server had nothing
     * more to give, or the fetch was not answered.
     */
    public boolean complete() {
        return complete;
    }

    /* The id of the fetch the engine started for the missing part, 0 when none. */
    long request() {
        return request;
    }

    @Override
    public String toString() {
        return "History{" + messages.size() + " messages" + (complete ? "" : ", incomplete") + "}";
    }
}
