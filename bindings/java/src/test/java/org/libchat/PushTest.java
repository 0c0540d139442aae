package org.libchat;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPairGenerator;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.libchat.TestSupport.client;
import static org.libchat.TestSupport.eventually;
import static org.libchat.TestSupport.get;

/**
 * Push through the binding end to end: bob's phone registers an APNs token, goes away, and
 * alice's message reaches a local APNs stand-in for that token; after bob mutes the
 * conversation, and after he unregisters, it does not (a later push to carol is the barrier).
 */
@Timeout(120)
class PushTest extends ChatdTest {
    static final String BOB_PHONE = hex("b0");
    static final String CAROL_PHONE = hex("c3");

    /* One accepted push: the device token from the path and the payload's libchat fields. */
    static final class Push {
        final String token;
        final long conv;
        final long seq;
        final String sender;

        Push(String token, long conv, long seq, String sender) {
            this.token = token;
            this.conv = conv;
            this.seq = seq;
            this.sender = sender;
        }
    }

    /*
     * APNs over cleartext HTTP/1.1 (chatd's client speaks HTTP/2 only over TLS): records
     * POST /3/device/<token> and answers 200. What APNs itself checks (the provider token,
     * the headers) is tested against tests/wire/pushfakes.py; this checks who got what.
     */
    HttpServer apns;
    final List<Push> pushes = new ArrayList<>();

    private static String hex(String pair) {
        StringBuilder b = new StringBuilder();
        for (int i = 0; i < 32; i++)
            b.append(pair);
        return b.toString();
    }

    @Override
    String[] chatdArgs() {
        try {
            KeyPairGenerator g = KeyPairGenerator.getInstance("EC");
            g.initialize(new ECGenParameterSpec("secp256r1"));
            String pem = "-----BEGIN PRIVATE KEY-----\n"
                         + Base64.getMimeEncoder(64, new byte[] {'\n'})
                                 .encodeToString(g.generateKeyPair().getPrivate().getEncoded())
                         + "\n-----END PRIVATE KEY-----\n";
            Path key = tmp.resolve("AuthKey.p8");
            Files.write(key, pem.getBytes(StandardCharsets.US_ASCII));
            apns = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
            apns.createContext("/3/device/", this::accept);
            apns.start();
            return new String[] {"--apns-key-file", key.toString(), "--apns-key-id", "KEY1234567",
                                 "--apns-team-id", "TEAM123456", "--apns-topic", "com.example.chat",
                                 "--apns-endpoint", "http://127.0.0.1:" + apns.getAddress().getPort(),
                                 "--push-limit", "coalesce_ms=0", "--push-limit", "backoff_ms=50"};
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    @AfterEach
    void stopApns() {
        if (apns != null)
            apns.stop(0);
    }

    private void accept(HttpExchange x) throws IOException {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        try (InputStream in = x.getRequestBody()) {
            byte[] b = new byte[4096];
            int n;
            while ((n = in.read(b)) > 0)
                body.write(b, 0, n);
        }
        String path = x.getRequestURI().getPath();
        Map<String, Object> data = Json.object(Json.object(Json.parse(body.toString("UTF-8"))).get("libchat"));
        synchronized (pushes) {
            pushes.add(new Push(path.substring(path.lastIndexOf('/') + 1), Json.number(data, "conv"),
                                Json.number(data, "seq"), Json.string(data, "sender")));
            pushes.notifyAll();
        }
        x.sendResponseHeaders(200, -1);
        x.close();
    }

    /* The first push for token with seq >= seq, waiting up to ms for it; null when none came. */
    private Push awaitPush(String token, long seq, long ms) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(ms);
        synchronized (pushes) {
            while (true) {
                for (Push p : pushes)
                    if (p.token.equals(token) && p.seq >= seq)
                        return p;
                long left = TimeUnit.NANOSECONDS.toMillis(end - System.nanoTime());
                if (left <= 0)
                    return null;
                pushes.wait(left);
            }
        }
    }

    private ChatClient device(String user, String device, Recorder rec) throws Exception {
        ChatClient c = ChatClient.builder(srv.url()).token(srv.token(user, device)).backoff(100, 1000)
                                 .listener(rec).build();
        c.start();
        rec.await(EventType.SYNCED);
        return c;
    }

    /* Sends text to user until a push for token answers one of them (the server learns of a
     * closed connection on its own schedule); the push for the last of them. */
    private Push sendUntilPushed(ChatClient alice, String user, String token) throws Exception {
        long deadline = System.currentTimeMillis() + TestSupport.WAIT_S * 1000;
        while (true) {
            Sent s = get(alice.sendTo(user, "are you there?").sent());
            Push p = awaitPush(token, s.seq(), 500);
            if (p != null)
                return p;
            if (System.currentTimeMillis() > deadline)
                fail("no push for " + user + "\n" + srv.stderrTail());
        }
    }

    /* alice writes to bob, then to carol: once carol's push came, bob's would have come first. */
    private void assertNoPushToBob(ChatClient alice, String why) throws Exception {
        long bobSeq = get(alice.sendTo("bob", "quiet, " + why).sent()).seq();
        long carolSeq = get(alice.sendTo("carol", "barrier after " + why).sent()).seq();
        assertTrue(awaitPush(CAROL_PHONE, carolSeq, TestSupport.WAIT_S * 1000) != null,
                   "no barrier push to carol\n" + srv.stderrTail());
        assertEquals(null, awaitPush(BOB_PHONE, bobSeq, 0), "bob's phone was pushed " + why);
    }

    @Test
    void registeredDeviceIsPushedUntilMutedOrUnregistered() throws Exception {
        Recorder rb = new Recorder();
        ChatClient bob = device("bob", "phone", rb);
        // malformed registrations fail at once with the library's status
        ChatException bad = assertThrows(ChatException.class, () -> bob.pushRegister("webos", BOB_PHONE));
        assertEquals(ChatStatus.EINVAL, bad.status());
        assertEquals("EINVAL", bad.statusName());
        bad = assertThrows(ChatException.class, () -> bob.pushRegister("apns", "not hex"));
        assertEquals("EINVAL", bad.statusName());
        get(bob.pushRegister("apns", BOB_PHONE, "com.example.chat", false));
        bob.close();

        Recorder rc = new Recorder();
        try (ChatClient carol = device("carol", "phone", rc)) {
            get(carol.pushRegister("apns", CAROL_PHONE));
        }

        try (ChatClient alice = client(srv, "alice", new Recorder(), null)) {
            Push p = sendUntilPushed(alice, "bob", BOB_PHONE);
            assertEquals("alice", p.sender);
            long conv = p.conv;
            assertTrue(conv > 0);
            sendUntilPushed(alice, "carol", CAROL_PHONE);

            // muted on the phone: the tablet's cache shows it, and the phone hears nothing
            Recorder rp = new Recorder(), rt = new Recorder();
            try (ChatClient phone = device("bob", "phone", rp); ChatClient tablet = device("bob", "tablet", rt)) {
                assertEquals(0, ChatClientTest.conv(tablet, conv).mutedUntil());
                get(phone.mute(conv));
                eventually("the tablet sees the mute", () -> ChatClientTest.conv(tablet, conv).mutedUntil() == -1);
                assertTrue(ChatClientTest.conv(tablet, conv).isMuted());
                ChatException neg = assertThrows(ChatException.class, () -> phone.mute(conv, -5));
                assertEquals("EINVAL", neg.statusName());
            }
            assertNoPushToBob(alice, "while muted");

            // unmuted: pushed again; unregistered: not
            Recorder ru = new Recorder();
            try (ChatClient phone = device("bob", "phone", ru)) {
                get(phone.unmute(conv));
                eventually("the phone sees the unmute", () -> ChatClientTest.conv(phone, conv).mutedUntil() == 0);
            }
            sendUntilPushed(alice, "bob", BOB_PHONE);
            Recorder rr = new Recorder();
            try (ChatClient phone = device("bob", "phone", rr)) {
                get(phone.pushUnregister());
            }
            sendUntilPushed(alice, "carol", CAROL_PHONE);
            assertNoPushToBob(alice, "after unregistering");
        }
    }
}
