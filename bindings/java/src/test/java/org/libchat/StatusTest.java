package org.libchat;

import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The binding's constants agree with the loaded library; the JSON helper. */
class StatusTest {
    @Test
    void statusCodesAndNamesAgreeWithTheLibrary() {
        for (ChatStatus s : ChatStatus.values()) {
            if (s == ChatStatus.OK)
                continue;
            assertEquals(s.code(), Native.errorFromName(s.name()), s.name());
            assertEquals(s.name(), Native.errorName(s.code()));
            assertSame(s, ChatStatus.fromCode(s.code()));
        }
        assertSame(ChatStatus.ERROR, ChatStatus.fromCode(-1000));
        assertSame(EventType.UNKNOWN, EventType.fromCode(1000));
        assertTrue(ChatClient.libraryVersion().matches("\\d+\\.\\d+\\.\\d+.*"), ChatClient.libraryVersion());
    }

    @Test
    void jsonParsesWhatTheProtocolSends() {
        Map<String, Object> o = Json.object(Json.parse(
            "{\"url\":\"/media/x?e=1&s=\\u00e9\",\"expires\":1764334800000,\"a\":[1,2.5,true,null,{}],\"n\":-3}"));
        assertEquals("/media/x?e=1&s=\u00e9", o.get("url"));
        assertEquals(1764334800000L, o.get("expires"));
        assertEquals(-3L, o.get("n"));
        List<?> a = (List<?>) o.get("a");
        assertEquals(2.5, a.get(1));
        assertNull(a.get(3));
        for (String bad : new String[] {"{", "{\"a\":}", "[1,]", "\"x", "{} x", "tru", "{\"a\" 1}"}) {
            ChatException e = assertThrows(ChatException.class, () -> Json.parse(bad), bad);
            assertSame(ChatStatus.EPROTO, e.status());
        }
        Media m = new Media("id\"1", "image/png", 5, "a\\b\n\u00e9.png", 1, 2, 3);
        assertEquals(m, Media.fromMessageJson("{\"media\":" + m.toJson() + "}"));
    }
}
