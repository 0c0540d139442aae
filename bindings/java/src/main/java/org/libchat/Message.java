package org.libchat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A message of the cache or the outbox ({@code chat_msg_list} row), copied out of the library.
 * Receipt counts count the other members: in a group, "delivered to N, read by K of M".
 */
public final class Message {
    private final long conv;
    private final long seq;
    private final long tsMs;
    private final String sender;
    private final String cmid;
    private final int kind;
    private final String text;
    private final String json;
    private final int status;
    private final long deliveredCount;
    private final long readCount;
    private final long others;
    private final long editedMs;
    private final boolean deleted;
    private final long expiresMs;
    private final long replyTo;
    private final long thread;
    private final Map<String, List<String>> reactions;

    /* Called by the native layer only. */
    Message(long conv, long seq, long tsMs, String sender, String cmid, int kind, String text,
            String json, int status, long deliveredCount, long readCount, long others,
            long editedMs, boolean deleted, long expiresMs, long replyTo, long thread,
            String reactions) {
        this.conv = conv;
        this.seq = seq;
        this.tsMs = tsMs;
        this.sender = sender;
        this.cmid = cmid;
        this.kind = kind;
        this.text = text;
        this.json = json;
        this.status = status;
        this.deliveredCount = deliveredCount;
        this.readCount = readCount;
        this.others = others;
        this.editedMs = editedMs;
        this.deleted = deleted;
        this.expiresMs = expiresMs;
        this.replyTo = replyTo;
        this.thread = thread;
        this.reactions = parseReactions(reactions);
    }

    /* The C API's [{"emoji":"👍","users":["bob"]}] ("" when none) as emoji -> users. */
    private static Map<String, List<String>> parseReactions(String js) {
        if (js.isEmpty())
            return Collections.emptyMap();
        Map<String, List<String>> out = new LinkedHashMap<>();
        for (Object g : (List<?>) Json.parse(js)) {
            Map<String, Object> o = Json.object(g);
            List<String> users = new ArrayList<>();
            for (Object u : (List<?>) o.get("users"))
                users.add((String) u);
            out.put(Json.string(o, "emoji"), Collections.unmodifiableList(users));
        }
        return Collections.unmodifiableMap(out);
    }

    /** The conversation; 0 for an outbox message sent to a user whose conversation is not known yet. */
    public long conv() {
        return conv;
    }

    /** The seq in the conversation; 0 in the outbox. */
    public long seq() {
        return seq;
    }

    public long tsMs() {
        return tsMs;
    }

    /** The sender's user id. */
    public String sender() {
        return sender;
    }

    public String cmid() {
        return cmid;
    }

    public MessageKind kind() {
        return MessageKind.fromCode(kind);
    }

    /** Text of a text message ("" for others). */
    public String text() {
        return text;
    }

    /** The message as its JSON wire object (media and event payloads), "" in the outbox. */
    public String json() {
        return json;
    }

    /** The media of a media message, or null. */
    public Media media() {
        return Media.ofMessage(kind, json);
    }

    /** Status of my messages; {@link MessageStatus#NONE} for others'. */
    public MessageStatus status() {
        return MessageStatus.fromCode(status);
    }

    /** How many other members have it delivered. */
    public long deliveredCount() {
        return deliveredCount;
    }

    /** How many other members have read it. */
    public long readCount() {
        return readCount;
    }

    /** How many other members there are. */
    public long others() {
        return others;
    }

    /** When it was last edited (ms since the epoch), 0 when never: text() is the latest text. */
    public long editedMs() {
        return editedMs;
    }

    /** Deleted for everyone: a tombstone that keeps its seq, with no text and no media. */
    public boolean deleted() {
        return deleted;
    }

    /** When it expires (disappearing messages), 0 never. */
    public long expiresMs() {
        return expiresMs;
    }

    /** The seq of the message it replies to, 0 none. */
    public long replyTo() {
        return replyTo;
    }

    /** The seq of its thread's root, 0 when it is in the main conversation. */
    public long thread() {
        return thread;
    }

    /** Its reactions: emoji to the users who put it, in the order they did; unmodifiable. */
    public Map<String, List<String>> reactions() {
        return reactions;
    }

    @Override
    public String toString() {
        return "Message{conv=" + conv + " seq=" + seq + " from=" + sender + " status=" + status()
               + " text=\"" + text + "\"}";
    }
}
