package org.libchat;

/** The server's ack of one of my messages: where it was stored. */
public final class Sent {
    private final String cmid;
    private final long conv;
    private final long seq;
    private final long tsMs;

    Sent(String cmid, long conv, long seq, long tsMs) {
        this.cmid = cmid;
        this.conv = conv;
        this.seq = seq;
        this.tsMs = tsMs;
    }

    public String cmid() {
        return cmid;
    }

    public long conv() {
        return conv;
    }

    public long seq() {
        return seq;
    }

    public long tsMs() {
        return tsMs;
    }

    @Override
    public String toString() {
        return "Sent{" + cmid + " conv=" + conv + " seq=" + seq + "}";
    }
}
