package org.libchat;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.libchat.TestSupport.client;
import static org.libchat.TestSupport.failure;
import static org.libchat.TestSupport.get;

/** History pages served from the cache and fetched from the server; the outbox across restarts. */
@Timeout(90)
class HistoryOutboxTest extends ChatdTest {
    /* Seventy quick sends: the per-connection and per-user rate limits out of the way. */
    @Override
    String[] chatdArgs() {
        return new String[] {"--limit", "send_rate=10000", "--limit", "send_burst=10000",
                             "--limit", "user_send_rate=10000", "--limit", "user_send_burst=10000"};
    }

    static List<Long> seqs(History h) {
        List<Long> out = new ArrayList<>();
        for (Message m : h.messages())
            out.add(m.seq());
        return out;
    }

    @Test
    void historyPagesComeFromTheCacheAndTheServer() throws Exception {
        Recorder ra = new Recorder(), rb = new Recorder();
        List<Long> sent = new ArrayList<>();
        long conv;
        try (ChatClient alice = client(srv, "alice", ra, null)) {
            ra.await(EventType.SYNCED);
            List<Outgoing> outs = new ArrayList<>();
            for (int i = 0; i < 70; i++)
                outs.add(alice.sendTo("bob", "m" + i));
            for (Outgoing o : outs)
                sent.add(get(o.sent()).seq());
            conv = get(outs.get(0).sent()).conv();
        }
        for (int i = 1; i < sent.size(); i++)
            assertTrue(sent.get(i) > sent.get(i - 1), "seqs ascend in outbox order: " + sent);

        // a fresh cache syncs only the newest 50 of a conversation; older pages come on demand
        try (ChatClient bob = client(srv, "bob", rb, tmp.resolve("bob.db"))) {
            rb.await(EventType.SYNCED);
            History newest = get(bob.history(conv, 0, 20));
            assertTrue(newest.complete());
            assertEquals(sent.subList(50, 70), seqs(newest));
            assertEquals("m69", newest.messages().get(19).text());

            History older = get(bob.history(conv, sent.get(50), 20));
            assertEquals(sent.subList(30, 50), seqs(older));

            // not in the cache: the cached page is incomplete, the future waits for the fetch
            History cached = bob.cachedHistory(conv, sent.get(20), 20);
            assertFalse(cached.complete());
            assertTrue(cached.messages().isEmpty(), cached.messages().toString());
            History fetched = get(bob.history(conv, sent.get(20), 20));
            assertTrue(fetched.complete());
            assertEquals(sent.subList(0, 20), seqs(fetched));
            assertEquals("m0", fetched.messages().get(0).text());
            assertEquals("alice", fetched.messages().get(0).sender());
            // and now it is cached
            assertTrue(bob.cachedHistory(conv, sent.get(20), 20).complete());
        }
    }

    @Test
    void theOutboxSurvivesClosingAndReopeningTheClient() throws Exception {
        Path aliceDb = tmp.resolve("alice.db"), bobDb = tmp.resolve("bob.db");
        Recorder rb = new Recorder();
        try (ChatClient bob = client(srv, "bob", rb, bobDb)) {
            rb.await(EventType.SYNCED);
            assertEquals("bob", bob.user());
        }

        // alice writes while never started (no network), then the "app" closes
        String cmid;
        ChatClient alice = ChatClient.builder(srv.url()).token(srv.token("alice", "java"))
                                     .cachePath(aliceDb.toString()).build();
        Outgoing o = alice.sendTo("bob", "while you were away");
        cmid = o.cmid();
        assertEquals(1, alice.outboxCount());
        assertEquals(MessageStatus.SENDING, alice.messageStatus(cmid).status());
        List<Message> box = alice.outbox();
        assertEquals(1, box.size());
        assertEquals("while you were away", box.get(0).text());
        assertEquals(cmid, box.get(0).cmid());
        alice.close();
        assertEquals(ChatStatus.ECLOSED, failure(o.sent()).status());

        // reopened on the same cache file, it sends the message, once
        Recorder ra = new Recorder();
        long conv, seq;
        try (ChatClient again = client(srv, "alice", ra, aliceDb)) {
            Event s = ra.await(EventType.SENT, e -> e.cmid().equals(cmid));
            conv = s.conv();
            seq = s.seq();
            assertEquals(0, again.outboxCount());
            assertEquals(MessageStatus.SENT, again.messageStatus(cmid).status());
        }

        rb = new Recorder();
        try (ChatClient bob = client(srv, "bob", rb, bobDb)) {
            rb.await(EventType.SYNCED);
            History h = get(bob.history(conv, 0, 50));
            int n = 0;
            for (Message m : h.messages())
                if (m.text().equals("while you were away")) {
                    n++;
                    assertEquals(seq, m.seq());
                    assertEquals(cmid, m.cmid());
                }
            assertEquals(1, n, h.messages().toString());
        }
    }
}
