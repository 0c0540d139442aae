package org.libchat;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.libchat.TestSupport.client;
import static org.libchat.TestSupport.failure;
import static org.libchat.TestSupport.get;

/** A media file goes up (with progress, interrupted and resumed) and down again. */
@Timeout(90)
class MediaTest extends ChatdTest {
    static final class Stop extends RuntimeException {
        private static final long serialVersionUID = 1L;
    }

    /* Records progress and throws once done passed n (after letting the server take it in). */
    static ProgressListener stopAfter(long n, List<long[]> seen) {
        return (done, total) -> {
            seen.add(new long[] {done, total});
            if (done >= n && done < total) {
                try {
                    Thread.sleep(300);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                throw new Stop();
            }
        };
    }

    @Test
    void mediaGoesUpAndDownWithProgressAndResume() throws Exception {
        byte[] data = new byte[2 * 1024 * 1024 + 5];
        new Random(7).nextBytes(data);
        Path src = tmp.resolve("photo.jpg");
        Files.write(src, data);

        Recorder ra = new Recorder(), rb = new Recorder();
        String id;
        Media media;
        try (ChatClient alice = client(srv, "alice", ra, tmp.resolve("a.db"));
             ChatClient bob = client(srv, "bob", rb, null)) {
            ra.await(EventType.SYNCED);
            rb.await(EventType.SYNCED);

            // a throwing progress listener aborts the upload with its own exception
            List<long[]> seen = new ArrayList<>();
            assertThrows(Stop.class, () -> alice.uploadFile(src.toString(), "image/jpeg", stopAfter(700000, seen)));
            assertEquals(data.length, seen.get(seen.size() - 1)[1]);
            long stoppedAt = seen.get(seen.size() - 1)[0];

            // the next upload of the same file resumes where the server stood
            List<long[]> seen2 = new ArrayList<>();
            id = alice.uploadFile(src.toString(), "image/jpeg", (d, t) -> seen2.add(new long[] {d, t}));
            assertTrue(id.matches("[0-9a-f]{64}"), id);
            assertTrue(seen2.get(0)[0] > 0 && seen2.get(0)[0] <= stoppedAt,
                       seen2.get(0)[0] + " vs " + stoppedAt);
            assertArrayEquals(new long[] {data.length, data.length}, seen2.get(seen2.size() - 1));

            media = new Media(id, "image/jpeg", data.length, "photo.jpg", 640, 480, 0);
            Outgoing o = alice.sendMediaTo("bob", media);
            get(o.sent());
            Event m = rb.await(EventType.MESSAGE, e -> e.user().equals("alice"));
            assertEquals(MessageKind.MEDIA, m.kind());
            assertEquals(media, m.media());

            MediaUrl u = get(bob.mediaUrl(id));
            assertEquals(data.length, u.size());
            assertEquals("image/jpeg", u.mime());
            assertEquals("photo.jpg", u.name());
            assertTrue(u.url().startsWith("/media/"), u.url());
            assertTrue(u.expiresMs() > System.currentTimeMillis());

            // an interrupted download leaves only its .part, and the next one continues it
            Path dst = tmp.resolve("got.jpg");
            assertThrows(Stop.class, () -> bob.download(u.url(), id, dst.toString(), stopAfter(900000, new ArrayList<>())));
            assertFalse(Files.exists(dst));
            List<Long> seen3 = new ArrayList<>();
            bob.download(u.url(), id, dst.toString(), (d, t) -> seen3.add(d));
            assertTrue(seen3.get(0) >= 900000, seen3.toString());
            assertArrayEquals(data, Files.readAllBytes(dst));

            // the asynchronous form, on the client's transfer threads
            Path dst2 = tmp.resolve("again.jpg");
            get(bob.downloadAsync(id, dst2.toString(), null));
            assertArrayEquals(data, Files.readAllBytes(dst2));

            // cancelling the future aborts the transfer
            CompletableFuture<?>[] box = new CompletableFuture<?>[1];
            Object lock = new Object();
            synchronized (lock) {
                box[0] = bob.uploadFileAsync(dst2.toString(), null, (d, t) -> {
                    synchronized (lock) {
                        box[0].cancel(true);
                    }
                });
            }
            CompletableFuture<?> f = box[0];
            ExecutionException ignored = null;
            try {
                f.get(TestSupport.WAIT_S, TimeUnit.SECONDS);
            } catch (CancellationException e) {
                // expected
            } catch (ExecutionException e) {
                ignored = e;
            }
            assertTrue(f.isCancelled(), "not cancelled: " + ignored);
        }

        // someone who shares no conversation with the file is refused a URL
        Recorder rc = new Recorder();
        try (ChatClient carol = client(srv, "carol", rc, null)) {
            rc.await(EventType.SYNCED);
            assertEquals(ChatStatus.EPERM, failure(carol.mediaUrl(id)).status());
        }
    }

    @Test
    void closeAbortsATransferInProgress() throws Exception {
        byte[] data = new byte[4 * 1024 * 1024];
        Path src = tmp.resolve("big.bin");
        Files.write(src, data);
        Recorder ra = new Recorder();
        ChatClient alice = client(srv, "alice", ra, null);
        ra.await(EventType.SYNCED);
        // the first progress call holds the transfer until close() has begun, so the
        // transfer is still running when the client closes
        CompletableFuture<Void> started = new CompletableFuture<>();
        CompletableFuture<String> f = alice.uploadFileAsync(src.toString(), null, (d, t) -> {
            started.complete(null);
            long deadline = System.currentTimeMillis() + 15000;
            while (!alice.isClosed() && System.currentTimeMillis() < deadline)
                java.util.concurrent.locks.LockSupport.parkNanos(1000000);
        });
        get(started);
        alice.close(); // waits for the transfer, which aborts at its next progress call
        ChatException ex = failure(f);
        assertSame(ChatStatus.ECLOSED, ex.status(), ex.toString());
    }
}
