package org.libchat;

import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** A client against an in-process Loopback peer that plays the server frame by frame. */
@Timeout(30)
class LoopbackTest {
    static Map<String, Object> frame(Loopback lb, String type) {
        for (;;) {
            String f = lb.recv(10000);
            assertNotNull(f, "no " + type + " frame");
            Map<String, Object> o = Json.object(Json.parse(f));
            if (type.equals(o.get("type")))
                return o;
            // receipts and the like are not what this test looks at
        }
    }

    @Test
    void theEnginePlaysAgainstAScriptedServer() throws Exception {
        Recorder r = new Recorder();
        try (Loopback lb = new Loopback();
             ChatClient c = ChatClient.builder("ws://loopback/").token("tok-alice").loopback(lb).listener(r).build()) {
            c.start();
            assertTrue(lb.waitOpen(10000));
            Map<String, Object> auth = frame(lb, "auth");
            assertEquals("tok-alice", auth.get("token"));
            lb.send("{\"type\":\"auth_ok\",\"re\":\"" + auth.get("id") + "\",\"v\":1,\"user\":\"alice\","
                    + "\"device\":\"d1\",\"ts\":1764331200000,\"cursor\":0}");
            assertEquals("alice", r.await(EventType.ONLINE).user());
            Map<String, Object> convs = frame(lb, "convs");
            lb.send("{\"type\":\"convs\",\"re\":\"" + convs.get("id") + "\",\"cursor\":1,\"more\":false,\"convs\":[]}");
            r.await(EventType.SYNCED);

            lb.send("{\"type\":\"typing\",\"conv\":12,\"user\":\"bob\",\"state\":\"start\",\"ttl_ms\":5000}");
            Event t = r.await(EventType.TYPING);
            assertEquals("bob", t.user());
            assertEquals(12, t.conv());

            // text outside the BMP, escaped or not, decodes to the same Java string
            String msg1 = "{\"type\":\"msg\",\"conv\":12,\"seq\":1,\"ts\":1764331200000,\"from\":\"bob\","
                          + "\"device\":\"phone\",\"cmid\":\"b-1\",\"kind\":\"text\","
                          + "\"text\":\"caf\u00e9 \uD83D\uDE00 \\ud83d\\ude00\"}";
            lb.send(msg1);
            Event m = r.await(EventType.MESSAGE);
            assertEquals("caf\u00e9 \uD83D\uDE00 \uD83D\uDE00", m.text());
            assertEquals(1, m.seq());

            // the engine sends what the app queues, once it has synced the new conversation
            Outgoing o = c.send(12, "answer \u2713");
            Map<String, Object> send = null;
            while (send == null) {
                String f = lb.recv(10000);
                assertNotNull(f, "no send frame");
                Map<String, Object> fr = Json.object(Json.parse(f));
                Object type = fr.get("type"), id = fr.get("id");
                if ("convs".equals(type))
                    lb.send("{\"type\":\"convs\",\"re\":\"" + id + "\",\"cursor\":2,\"more\":false,\"convs\":["
                            + "{\"conv\":12,\"kind\":\"direct\",\"title\":\"\",\"role\":\"member\",\"head\":1,"
                            + "\"delivered\":0,\"read\":0,\"unread\":1,\"joined\":0,\"members\":["
                            + "{\"user\":\"alice\",\"role\":\"member\",\"delivered\":0,\"read\":0},"
                            + "{\"user\":\"bob\",\"role\":\"member\",\"delivered\":1,\"read\":1}]}]}");
                else if ("history".equals(type))
                    lb.send("{\"type\":\"history\",\"re\":\"" + id + "\",\"conv\":12,\"more\":false,\"messages\":["
                            + msg1 + "]}");
                else if ("send".equals(type))
                    send = fr;
            }
            assertEquals("answer \u2713", send.get("text"));
            assertEquals(o.cmid(), send.get("cmid"));
            lb.send("{\"type\":\"ack\",\"re\":\"" + send.get("id") + "\",\"cmid\":\"" + o.cmid()
                    + "\",\"conv\":12,\"seq\":2,\"ts\":1764331201000}");
            assertEquals(2, TestSupport.get(o.sent()).seq());

            lb.disconnect(1001, "going away");
            Event off = r.await(EventType.OFFLINE);
            assertTrue(off.code() < 0);
            assertTrue(lb.connects() >= 1);
        }
    }
}
