package org.libchat;

import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.libchat.TestSupport.client;
import static org.libchat.TestSupport.eventually;
import static org.libchat.TestSupport.failure;
import static org.libchat.TestSupport.get;

/** Replies, edits, deletes for everyone, reactions and search between two users through chatd. */
@Timeout(90)
class LifecycleTest extends ChatdTest {
    static Message find(ChatClient c, long conv, long seq) {
        for (Message m : c.cachedHistory(conv, 0, 50).messages())
            if (m.seq() == seq)
                return m;
        return null;
    }

    @Test
    void editsDeletesReactionsAndRepliesReachTheOtherCache() throws Exception {
        Recorder ra = new Recorder(), rb = new Recorder();
        try (ChatClient alice = client(srv, "alice", ra, null);
             ChatClient bob = client(srv, "bob", rb, null)) {
            ra.await(EventType.SYNCED);
            rb.await(EventType.SYNCED);
            Sent first = get(alice.sendTo("bob", "see you at noon").sent());
            long conv = first.conv();
            Sent second = get(alice.send(conv, "secret plans").sent());
            rb.await(EventType.MESSAGE, e -> e.seq() == second.seq());

            Sent reply = get(bob.reply(conv, "noon works", first.seq(), 0).sent());
            ra.await(EventType.MESSAGE, e -> e.seq() == reply.seq());
            assertEquals(first.seq(), find(alice, conv, reply.seq()).replyTo());

            get(alice.edit(conv, first.seq(), "see you at one"));
            Event up = rb.await(EventType.UPDATED, e -> e.kind() == MessageKind.EDIT);
            assertEquals(first.seq(), up.seq());
            assertEquals("see you at one", up.text());
            get(bob.react(conv, first.seq(), "\uD83D\uDC4D", true));
            ra.await(EventType.UPDATED, e -> e.kind() == MessageKind.REACT);
            get(alice.delete(conv, second.seq()));
            rb.await(EventType.UPDATED, e -> e.kind() == MessageKind.DELETE);

            eventually("bob's cache shows the edit and the reaction", () -> {
                Message m = find(bob, conv, first.seq());
                return m != null && m.editedMs() > 0 && !m.reactions().isEmpty();
            });
            Message m = find(bob, conv, first.seq());
            assertEquals("see you at one", m.text());
            assertEquals(Arrays.asList("bob"), m.reactions().get("\uD83D\uDC4D"));
            Message gone = find(bob, conv, second.seq());
            assertTrue(gone.deleted());
            assertEquals("", gone.text());
            Message am = find(alice, conv, first.seq());
            assertEquals(Arrays.asList("bob"), am.reactions().get("\uD83D\uDC4D"));

            // found as they are now, never as they were
            List<Message> hits = bob.searchLocal("one", conv, 10);
            assertEquals(1, hits.size());
            assertEquals(first.seq(), hits.get(0).seq());
            assertTrue(bob.searchLocal("noon see", 0, 10).isEmpty());
            assertTrue(bob.searchLocal("secret", 0, 10).isEmpty());
            String found = get(alice.search("one", 0, 0, 10));
            assertTrue(found.contains("\"see you at one\""), found);
            assertFalse(get(alice.search("secret", 0, 0, 10)).contains("secret plans"));

            // refusals come back as the future's ChatException
            ChatException e = failure(bob.edit(conv, first.seq(), "not mine"));
            assertEquals(ChatStatus.EPERM, e.status());
            e = failure(bob.react(conv, first.seq(), "not-an-emoji", true));
            assertEquals(ChatStatus.EINVAL, e.status());
        }
    }
}
