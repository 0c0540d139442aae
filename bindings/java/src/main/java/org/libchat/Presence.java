package org.libchat;

/** A contact's presence, as a {@link ChatClient#presence} query answers it. */
public final class Presence {
    private final String user;
    private final boolean online;
    private final long lastSeenMs;

    Presence(String user, boolean online, long lastSeenMs) {
        this.user = user;
        this.online = online;
        this.lastSeenMs = lastSeenMs;
    }

    public String user() {
        return user;
    }

    public boolean online() {
        return online;
    }

    /** Last seen, ms since the epoch; 0 when unknown. */
    public long lastSeenMs() {
        return lastSeenMs;
    }

    @Override
    public String toString() {
        return "Presence{" + user + (online ? " online" : " offline") + "}";
    }
}
