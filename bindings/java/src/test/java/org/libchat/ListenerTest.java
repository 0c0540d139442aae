package org.libchat;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.libchat.TestSupport.eventually;
import static org.libchat.TestSupport.get;

/** The event thread against listeners that throw, block or close their client; the cleaner. */
@Timeout(60)
class ListenerTest extends ChatdTest {
    ChatClient.Builder alice() throws Exception {
        return ChatClient.builder(srv.url()).token(srv.token("alice", "java")).backoff(100, 1000);
    }

    @Test
    void aListenerThatThrowsIsReportedAndKeepsGettingEvents() throws Exception {
        Recorder seen = new Recorder();
        List<Throwable> errors = Collections.synchronizedList(new ArrayList<Throwable>());
        List<Event> failedOn = Collections.synchronizedList(new ArrayList<Event>());
        try (ChatClient c = alice().listener(ev -> {
                 seen.onEvent(ev);
                 throw new IllegalStateException("listener bug on " + ev.type());
             }).listenerErrorHandler((ev, t) -> {
                 failedOn.add(ev);
                 errors.add(t);
             }).build()) {
            c.start();
            seen.await(EventType.CONNECTING);
            seen.await(EventType.ONLINE);
            seen.await(EventType.SYNCED);
            Outgoing o = c.sendTo("bob", "still works");
            get(o.sent());
            seen.await(EventType.SENT, e -> e.cmid().equals(o.cmid()));
            eventually("every event was reported", () -> failedOn.size() >= 4);
            assertEquals(EventType.CONNECTING, failedOn.get(0).type());
            assertTrue(errors.get(0) instanceof IllegalStateException);
        }
    }

    @Test
    void aListenerThatBlocksDelaysOnlyEvents() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        Recorder seen = new Recorder();
        try (ChatClient c = alice().listener(ev -> {
                 try {
                     release.await();
                 } catch (InterruptedException e) {
                     Thread.currentThread().interrupt();
                 }
                 seen.onEvent(ev);
             }).build()) {
            c.start();
            eventually("online", () -> c.state() == ConnectionState.ONLINE);
            // requests and their futures go on while the listener is stuck on the first event
            long gid = get(c.createGroup("While blocked", Collections.singletonList("bob")));
            Outgoing o = c.send(gid, "hello");
            Sent s = get(o.sent());
            assertEquals(gid, s.conv());
            assertTrue(get(c.history(gid, 0, 10)).messages().size() >= 1);
            assertEquals(ConnectionState.ONLINE, c.state());
            // then the events arrive, in order, none lost
            release.countDown();
            seen.await(EventType.CONNECTING);
            seen.await(EventType.SENT, e -> e.cmid().equals(o.cmid()));
        }
    }

    @Test
    void closeFromTheListenerOrAFutureDoesNotDeadlock() throws Exception {
        AtomicInteger after = new AtomicInteger();
        ChatClient[] box = new ChatClient[1];
        CountDownLatch closedIt = new CountDownLatch(1);
        box[0] = alice().listener(ev -> {
            if (ev.type() == EventType.SYNCED) {
                box[0].close();
                closedIt.countDown();
            } else if (box[0].isClosed()) {
                after.incrementAndGet();
            }
        }).build();
        box[0].start();
        closedIt.await();
        assertTrue(box[0].isClosed());
        assertEquals(0, after.get(), "no events after close");

        // a dependent stage runs on the event thread: close() there returns at once
        Recorder r = new Recorder();
        ChatClient c = alice().listener(r).build();
        c.start();
        r.await(EventType.SYNCED);
        CompletableFuture<Boolean> closed = c.presence(Collections.singletonList("bob")).handle((p, e) -> {
            c.close();
            return c.isClosed();
        });
        assertTrue(get(closed));
        c.close(); // and from here it waits until the event thread has freed it
        ChatException e = org.junit.jupiter.api.Assertions.assertThrows(ChatException.class, () -> c.mediaUrl("x"));
        assertSame(ChatStatus.ECLOSED, e.status());
    }

    @Test
    void anUnreachableClientIsClosedByTheCleaner() throws Exception {
        int before = ChatClient.CLEANED.get();
        dropAClient();
        long deadline = System.currentTimeMillis() + 20000;
        while (ChatClient.CLEANED.get() == before && System.currentTimeMillis() < deadline) {
            System.gc();
            Thread.sleep(50);
        }
        assertTrue(ChatClient.CLEANED.get() > before, "the cleaner did not close the dropped client");
        // a client that was closed is not counted by the cleaner
        int now = ChatClient.CLEANED.get();
        ChatClient c = alice().build();
        c.close();
        assertFalse(ChatClient.CLEANED.get() > now);
    }

    private void dropAClient() throws Exception {
        ChatClient c = alice().build();
        c.start();
        c.sendTo("bob", "then forgotten");
    }
}
