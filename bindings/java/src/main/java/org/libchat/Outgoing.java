package org.libchat;

import java.util.concurrent.CompletableFuture;

/**
 * A message written to the outbox. It is durable (with a cache file) from the moment the send
 * call returned; {@link #sent()} completes when the server acks it, or fails with the server's
 * refusal ({@link EventType#SEND_FAILED}). If the client is closed first, the future fails with
 * {@link ChatStatus#ECLOSED} while the message stays in the outbox and goes out after the next
 * start (its ack then arrives as a {@link EventType#SENT} event).
 */
public final class Outgoing {
    private final String cmid;
    private final CompletableFuture<Sent> sent;

    Outgoing(String cmid, CompletableFuture<Sent> sent) {
        this.cmid = cmid;
        this.sent = sent;
    }

    /** The client message id (see {@link ChatClient#messageStatus}). */
    public String cmid() {
        return cmid;
    }

    public CompletableFuture<Sent> sent() {
        return sent;
    }

    @Override
    public String toString() {
        return "Outgoing{" + cmid + "}";
    }
}
