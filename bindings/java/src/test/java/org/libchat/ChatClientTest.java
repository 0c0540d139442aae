package org.libchat;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.libchat.TestSupport.client;
import static org.libchat.TestSupport.eventually;
import static org.libchat.TestSupport.failure;
import static org.libchat.TestSupport.get;

/** Two and three users through a real chatd: messages, receipts, typing, presence, groups. */
@Timeout(90)
class ChatClientTest extends ChatdTest {
    static Conversation conv(ChatClient c, long id) {
        for (Conversation x : c.conversations())
            if (x.id() == id)
                return x;
        return null;
    }

    @Test
    void twoUsersExchangeMessagesReceiptsTypingAndPresence() throws Exception {
        Recorder ra = new Recorder(), rb = new Recorder();
        ChatClient bob = client(srv, "bob", rb, null);
        try (ChatClient alice = client(srv, "alice", ra, null)) {
            ra.await(EventType.SYNCED);
            rb.await(EventType.SYNCED);
            assertEquals("alice", alice.user());
            assertEquals(ConnectionState.ONLINE, alice.state());

            // text outside the BMP crosses as real UTF-8 both ways
            String hi = "hi bob \u2713 \uD83D\uDC4B";
            Outgoing out = alice.sendTo("bob", hi);
            assertEquals(27, out.cmid().length());
            Sent sent = get(out.sent());
            long conv = sent.conv(), seq = sent.seq();
            assertTrue(conv > 0 && seq >= 1, sent.toString());
            assertEquals(out.cmid(), sent.cmid());
            Event got = rb.await(EventType.MESSAGE, e -> e.user().equals("alice"));
            assertEquals(hi, got.text());
            assertEquals(conv, got.conv());
            assertEquals(seq, got.seq());
            assertEquals(MessageKind.TEXT, got.kind());

            // bob's client sends delivered by itself: ✓✓ on alice's side
            ra.await(EventType.RECEIPT, e -> e.user().equals("bob") && e.delivered() >= seq);
            MessageState st = alice.messageStatus(out.cmid());
            assertEquals(MessageStatus.DELIVERED, st.status());
            assertEquals(conv, st.conv());
            assertEquals(seq, st.seq());

            // a live message of a new conversation may come before its members are synced
            eventually("bob knows the conversation's peer", () -> {
                Conversation c = conv(bob, conv);
                return c != null && c.peer().equals("alice");
            });
            Conversation bc = conv(bob, conv);
            assertEquals(ConversationKind.DIRECT, bc.kind());
            assertEquals(1, bc.unread());
            assertEquals(1, bob.totalUnread());

            bob.markRead(conv, seq);
            assertEquals(0, conv(bob, conv).unread());
            ra.await(EventType.RECEIPT, e -> e.user().equals("bob") && e.read() >= seq);
            assertEquals(MessageStatus.READ, alice.messageStatus(out.cmid()).status());
            Receipts r = alice.messageReceipts(conv, seq);
            assertEquals(1, r.delivered());
            assertEquals(1, r.read());
            assertEquals(1, r.others());

            // the other way, by conversation id
            Outgoing back = bob.send(conv, "hello alice");
            get(back.sent());
            Event m = ra.await(EventType.MESSAGE, e -> e.user().equals("bob"));
            assertEquals("hello alice", m.text());
            assertEquals(conv, m.conv());

            // typing reaches the peer
            bob.typing(conv, true);
            Event t = ra.await(EventType.TYPING, e -> e.user().equals("bob"));
            assertEquals(conv, t.conv());
            assertTrue(t.active());

            // presence: a query completes with bob online
            Map<String, Presence> p = get(alice.presence(Collections.singletonList("bob")));
            assertTrue(p.get("bob").online(), p.toString());

            // history from the cache, with my statuses
            History h = get(alice.history(conv, 0, 50));
            List<Message> msgs = h.messages();
            assertTrue(h.complete());
            assertEquals(2, msgs.size(), msgs.toString());
            assertEquals(hi, msgs.get(0).text());
            assertEquals("alice", msgs.get(0).sender());
            assertEquals(MessageStatus.READ, msgs.get(0).status());
            assertEquals("hello alice", msgs.get(1).text());
            assertEquals(MessageStatus.NONE, msgs.get(1).status());

            // bob goes away: alice sees him offline
            bob.close();
            Event off = ra.await(EventType.PRESENCE, e -> e.user().equals("bob") && !e.active());
            assertTrue(off.lastSeenMs() >= 0);
        } finally {
            bob.close();
        }
    }

    @Test
    void groupsCreateRenameRolesMembersAndRefusals() throws Exception {
        Recorder ra = new Recorder(), rc = new Recorder();
        try (ChatClient alice = client(srv, "alice", ra, null); ChatClient carol = client(srv, "carol", rc, null)) {
            ra.await(EventType.SYNCED);
            rc.await(EventType.SYNCED);
            long gid = get(alice.createGroup("Team", Arrays.asList("bob", "carol")));
            assertTrue(gid > 0);
            // with a client id, a repeated create answers the same group
            long once = get(alice.createGroup("g1", "Once", Collections.singletonList("carol")));
            assertEquals(once, (long) get(alice.createGroup("g1", "Once", Collections.singletonList("carol"))));
            assertNotEquals(gid, once);

            get(alice.renameGroup(gid, "Team 2"));
            Outgoing o = alice.send(gid, "hi team");
            get(o.sent());
            rc.await(EventType.MESSAGE, e -> e.text().equals("hi team") && e.conv() == gid);
            eventually("carol sees the new title", () -> {
                Conversation c = conv(carol, gid);
                return c != null && c.title().equals("Team 2");
            });
            assertEquals(ConversationKind.GROUP, conv(carol, gid).kind());
            assertEquals(3, conv(carol, gid).memberCount());

            // a refused request fails its future with the server's status
            ChatException ex = failure(carol.addMembers(gid, Collections.singletonList("nobody-at-all")));
            assertTrue(ex.code() < 0);
            assertEquals(Native.errorName(ex.code()), ex.statusName());
            assertFalse(ex.reason().isEmpty());

            get(alice.setRole(gid, "carol", Role.ADMIN));
            eventually("carol is admin", () -> conv(carol, gid).role() == Role.ADMIN);
            get(carol.removeMembers(gid, Collections.singletonList("bob")));
            eventually("bob is gone for alice", () -> conv(alice, gid).memberCount() == 2);
            get(carol.leaveGroup(gid));
            eventually("carol left", () -> conv(carol, gid).role() == Role.NONE);
            eventually("alice sees her leave", () -> conv(alice, gid).memberCount() == 1);
        }
    }

    @Test
    void loginWithPasswordKeepsTheToken() throws Exception {
        Recorder r = new Recorder();
        try (ChatClient c = ChatClient.builder(srv.url()).login("carol", Chatd.PASSWORD, "tablet")
                                      .listener(r).build()) {
            c.start();
            Event on = r.await(EventType.ONLINE);
            assertEquals("carol", on.user());
            assertEquals("tablet", on.device());
            assertFalse(c.token().isEmpty());
        }
        Recorder bad = new Recorder();
        try (ChatClient c = ChatClient.builder(srv.url()).login("carol", "wrong", "tablet")
                                      .listener(bad).build()) {
            c.start();
            Event f = bad.await(EventType.AUTH_FAILED);
            assertEquals(ChatStatus.EAUTH, f.error().status());
        }
    }
}
