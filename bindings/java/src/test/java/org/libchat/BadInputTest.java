package org.libchat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.libchat.TestSupport.client;
import static org.libchat.TestSupport.eventually;
import static org.libchat.TestSupport.get;

/** Closed clients, nulls, strings that are not valid Unicode: clear Java exceptions, no crash. */
@Timeout(60)
class BadInputTest extends ChatdTest {
    static ChatException chatError(ChatStatus want, Executable call) {
        ChatException e = assertThrows(ChatException.class, call);
        assertSame(want, e.status(), e.toString());
        assertEquals(want.name(), e.statusName());
        return e;
    }

    @Test
    void everyCallOnAClosedClientThrowsEclosed() throws Exception {
        ChatClient c = ChatClient.builder(srv.url()).token(srv.token("alice", "java")).build();
        c.close();
        c.close(); // idempotent
        assertTrue(c.isClosed());
        assertEquals(ConnectionState.STOPPED, c.state());
        List<Executable> calls = Arrays.asList(
            c::start, c::stop, c::reconnectNow, c::disconnect, c::user, c::token,
            () -> c.setToken("t"), () -> c.send(1, "x"), () -> c.sendTo("bob", "x"),
            () -> c.sendMedia(1, new Media("id", "a/b", 1, "n")), c::outboxCount, c::outbox,
            () -> c.uploadFile("/nonexistent", null, null), () -> c.uploadFileAsync("/x", null, null),
            () -> c.mediaUrl("id"), () -> c.download("/media/x", null, tmp.resolve("d").toString(), null),
            () -> c.markRead(1, 1), () -> c.typing(1, true), () -> c.presence(Collections.singletonList("bob")),
            () -> c.messageReceipts(1, 1), () -> c.messageStatus("cmid"),
            () -> c.createGroup("t", Collections.<String>emptyList()), () -> c.addMembers(1, Collections.singletonList("bob")),
            () -> c.removeMembers(1, Collections.singletonList("bob")), () -> c.leaveGroup(1),
            () -> c.renameGroup(1, "t"), () -> c.setRole(1, "bob", Role.ADMIN), c::conversations,
            c::totalUnread, () -> c.cachedHistory(1, 0, 10), () -> c.history(1, 0, 10),
            () -> c.pushRegister("fcm", "t"), c::pushUnregister, () -> c.mute(1), () -> c.unmute(1));
        for (Executable call : calls)
            chatError(ChatStatus.ECLOSED, call);
    }

    @Test
    void nullsAreNullPointerExceptions() throws Exception {
        assertThrows(NullPointerException.class, () -> ChatClient.builder(null));
        try (ChatClient c = ChatClient.builder(srv.url()).token(srv.token("alice", "java")).build()) {
            assertThrows(NullPointerException.class, () -> c.send(1, null));
            assertThrows(NullPointerException.class, () -> c.sendTo(null, "x"));
            assertThrows(NullPointerException.class, () -> c.sendMediaTo("bob", null));
            assertThrows(NullPointerException.class, () -> c.createGroup("t", Arrays.asList("bob", null)));
            assertThrows(NullPointerException.class, () -> c.presence(null));
            assertThrows(NullPointerException.class, () -> c.pushRegister(null, "t"));
            assertThrows(NullPointerException.class, () -> c.uploadFile(null, null, null));
            // and the client still works afterwards
            assertEquals(0, c.outboxCount());
        }
    }

    @Test
    void stringsThatAreNotUnicodeAreRefusedNotMangled() throws Exception {
        try (ChatClient c = ChatClient.builder(srv.url()).token(srv.token("alice", "java")).build()) {
            // an unpaired high surrogate, a lone low one, one at the very end
            for (String bad : new String[] {"bad \uD83D end", "\uDC00", "x\uD800"}) {
                ChatException e = chatError(ChatStatus.EINVAL, () -> c.sendTo("bob", bad));
                assertTrue(e.reason().contains("unpaired surrogate"), e.reason());
            }
            chatError(ChatStatus.EINVAL, () -> c.sendTo("b\uD800ob", "x"));
            chatError(ChatStatus.EINVAL, () -> c.createGroup("T\uDFFF", Collections.singletonList("bob")));
            chatError(ChatStatus.EINVAL, () -> c.presence(Arrays.asList("bob", "\uD800")));
            // a NUL would cut a C string short: refused where the C API takes one
            ChatException nul = chatError(ChatStatus.EINVAL, () -> c.sendTo("bo\0b", "x"));
            assertTrue(nul.reason().contains("NUL"), nul.reason());
            chatError(ChatStatus.EINVAL, () -> c.messageStatus("a\0b"));
            // negative ids are caller mistakes, not huge unsigned numbers
            chatError(ChatStatus.EINVAL, () -> c.send(-1, "x"));
            chatError(ChatStatus.EINVAL, () -> c.markRead(1, -5));
            // nothing reached the outbox
            assertEquals(0, c.outboxCount());
            // a valid pair is fine, and an unknown cmid is ENOTFOUND
            c.sendTo("bob", "ok \uD83D\uDE00");
            assertEquals(1, c.outboxCount());
            assertEquals("ok \uD83D\uDE00", c.outbox().get(0).text());
            chatError(ChatStatus.ENOTFOUND, () -> c.messageStatus("0000"));
        }
    }

    @Test
    void badConfigurationIsAChatException() throws Exception {
        chatError(ChatStatus.EINVAL, () -> ChatClient.builder(srv.url()).build()); // no credentials
        chatError(ChatStatus.EINVAL, () -> ChatClient.builder("x\uD800").token("t").build());
        assertThrows(IllegalArgumentException.class, () -> ChatClient.builder(srv.url()).backoff(10, 5));
        Loopback lb = new Loopback();
        try (ChatClient c = ChatClient.builder("ws://loopback/").token("t").loopback(lb).build()) {
            // one loopback serves one client
            ChatException e = chatError(ChatStatus.EINVAL,
                () -> ChatClient.builder("ws://loopback/").token("t").loopback(lb).build());
            assertTrue(e.reason().contains("loopback"), e.reason());
            assertEquals(ConnectionState.STOPPED, c.state());
        }
        lb.close();
        chatError(ChatStatus.ECLOSED, () -> lb.send("{}"));
    }

    @Test
    void callsRacingCloseEitherWorkOrThrowEclosed() throws Exception {
        Recorder r = new Recorder();
        ChatClient c = client(srv, "alice", r, null);
        r.await(EventType.SYNCED);
        AtomicInteger ok = new AtomicInteger(), closed = new AtomicInteger();
        List<Throwable> other = Collections.synchronizedList(new ArrayList<Throwable>());
        List<Thread> threads = new ArrayList<>();
        for (int t = 0; t < 4; t++) {
            Thread th = new Thread(() -> {
                for (int i = 0; i < 100000; i++) {
                    try {
                        c.sendTo("bob", "race " + i);
                        c.conversations();
                        c.cachedHistory(1, 0, 5);
                        ok.incrementAndGet();
                    } catch (ChatException e) {
                        if (e.status() == ChatStatus.ECLOSED) {
                            closed.incrementAndGet();
                            return;
                        }
                        other.add(e);
                    } catch (Throwable e) {
                        other.add(e);
                    }
                }
            });
            threads.add(th);
            th.start();
        }
        eventually("the threads are sending", () -> ok.get() > 20);
        c.close();
        for (Thread th : threads)
            th.join(15000);
        assertTrue(other.isEmpty(), other.toString());
        assertEquals(4, closed.get());
    }
}
