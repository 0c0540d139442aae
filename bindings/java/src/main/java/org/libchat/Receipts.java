package org.libchat;

/** Delivered and read counts of one message among the other members ({@link ChatClient#messageReceipts}). */
public final class Receipts {
    private final long delivered;
    private final long read;
    private final long others;

    Receipts(long delivered, long read, long others) {
        this.delivered = delivered;
        this.read = read;
        this.others = others;
    }

    public long delivered() {
        return delivered;
    }

    public long read() {
        return read;
    }

    /** How many other members there are (the M of "read by K of M"). */
    public long others() {
        return others;
    }

    @Override
    public String toString() {
        return "Receipts{delivered " + delivered + ", read " + read + " of " + others + "}";
    }
}
