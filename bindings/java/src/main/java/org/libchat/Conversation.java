package org.libchat;

/** A cached conversation ({@code chat_conv_list} row), copied out of the library. */
public final class Conversation {
    private final long id;
    private final int kind;
    private final String title;
    private final String peer;
    private final int role;
    private final long head;
    private final long read;
    private final long unread;
    private final long memberCount;
    private final long mutedUntil;

    /* Called by the native layer only. */
    Conversation(long id, int kind, String title, String peer, int role, long head, long read,
                 long unread, long memberCount, long mutedUntil) {
        this.id = id;
        this.kind = kind;
        this.title = title;
        this.peer = peer;
        this.role = role;
        this.head = head;
        this.read = read;
        this.unread = unread;
        this.memberCount = memberCount;
        this.mutedUntil = mutedUntil;
    }

    public long id() {
        return id;
    }

    public ConversationKind kind() {
        return ConversationKind.fromCode(kind);
    }

    /** Group title ("" for direct conversations). */
    public String title() {
        return title;
    }

    /** Direct conversations: the other user; groups: "". */
    public String peer() {
        return peer;
    }

    /** My role ({@link Role#NONE} after I left or was removed). */
    public Role role() {
        return Role.fromCode(role);
    }

    /** The newest seq. */
    public long head() {
        return head;
    }

    /** My read watermark. */
    public long read() {
        return read;
    }

    /** Messages of others after my read watermark. */
    public long unread() {
        return unread;
    }

    public long memberCount() {
        return memberCount;
    }

    /**
     * My mute of this conversation ({@link ChatClient#mute}): 0 not muted, -1 until unmuted,
     * else when it ends (ms since the epoch).
     */
    public long mutedUntil() {
        return mutedUntil;
    }

    /** Whether a mute is in force (muted until unmuted, or until a time not yet past). */
    public boolean isMuted() {
        return mutedUntil == -1 || mutedUntil > System.currentTimeMillis();
    }

    @Override
    public String toString() {
        return "Conversation{" + id + " " + kind() + (title.isEmpty() ? "" : " \"" + title + "\"")
               + (peer.isEmpty() ? "" : " with " + peer) + " head=" + head + " unread=" + unread
               + (mutedUntil != 0 ? " mutedUntil=" + mutedUntil : "") + "}";
    }
}
