package org.libchat;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The little JSON the binding needs (media objects, media_url answers) without a dependency:
 * a strict parser into Map/List/String/Long/Double/Boolean/null, and string quoting.
 */
final class Json {
    private final String s;
    private int i;

    private Json(String s) {
        this.s = s;
    }

    /** Parses one JSON value; throws ChatException(EPROTO) on malformed input. */
    static Object parse(String text) {
        Json p = new Json(text);
        p.ws();
        Object v = p.value(0);
        p.ws();
        if (p.i != p.s.length())
            throw p.error("trailing characters");
        return v;
    }

    /** The object at key of a parsed object, or null when absent or of another type. */
    @SuppressWarnings("unchecked")
    static Map<String, Object> object(Object v) {
        return v instanceof Map ? (Map<String, Object>) v : null;
    }

    static String string(Map<String, Object> o, String key) {
        Object v = o.get(key);
        return v instanceof String ? (String) v : "";
    }

    static long number(Map<String, Object> o, String key) {
        Object v = o.get(key);
        return v instanceof Number ? ((Number) v).longValue() : 0;
    }

    /** s as a JSON string literal. */
    static void quote(StringBuilder b, String s) {
        b.append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            switch (c) {
            case '"': b.append("\\\""); break;
            case '\\': b.append("\\\\"); break;
            case '\n': b.append("\\n"); break;
            case '\r': b.append("\\r"); break;
            case '\t': b.append("\\t"); break;
            default:
                if (c < 0x20)
                    b.append(String.format("\\u%04x", (int) c));
                else
                    b.append(c); // surrogates are checked when the string crosses into C
            }
        }
        b.append('"');
    }

    private ChatException error(String what) {
        return new ChatException(ChatStatus.EPROTO, "JSON: " + what + " at offset " + i);
    }

    private void ws() {
        while (i < s.length() && " \t\r\n".indexOf(s.charAt(i)) >= 0)
            i++;
    }

    private Object value(int depth) {
        if (depth > 32)
            throw error("nested too deep");
        if (i >= s.length())
            throw error("unexpected end");
        char c = s.charAt(i);
        switch (c) {
        case '{': return obj(depth);
        case '[': return arr(depth);
        case '"': return str();
        case 't': return lit("true", Boolean.TRUE);
        case 'f': return lit("false", Boolean.FALSE);
        case 'n': return lit("null", null);
        default:
            if (c == '-' || (c >= '0' && c <= '9'))
                return num();
            throw error("unexpected '" + c + "'");
        }
    }

    private Object lit(String word, Object v) {
        if (!s.startsWith(word, i))
            throw error("bad literal");
        i += word.length();
        return v;
    }

    private Map<String, Object> obj(int depth) {
        Map<String, Object> m = new LinkedHashMap<>();
        i++;
        ws();
        if (i < s.length() && s.charAt(i) == '}') {
            i++;
            return m;
        }
        for (;;) {
            ws();
            if (i >= s.length() || s.charAt(i) != '"')
                throw error("expected a key");
            String k = str();
            ws();
            expect(':');
            ws();
            m.put(k, value(depth + 1));
            ws();
            if (i < s.length() && s.charAt(i) == ',') {
                i++;
                continue;
            }
            expect('}');
            return m;
        }
    }

    private List<Object> arr(int depth) {
        List<Object> l = new ArrayList<>();
        i++;
        ws();
        if (i < s.length() && s.charAt(i) == ']') {
            i++;
            return l;
        }
        for (;;) {
            ws();
            l.add(value(depth + 1));
            ws();
            if (i < s.length() && s.charAt(i) == ',') {
                i++;
                continue;
            }
            expect(']');
            return l;
        }
    }

    private void expect(char c) {
        if (i >= s.length() || s.charAt(i) != c)
            throw error("expected '" + c + "'");
        i++;
    }

    private String str() {
        i++; // the opening quote
        StringBuilder b = new StringBuilder();
        for (;;) {
            if (i >= s.length())
                throw error("unterminated string");
            char c = s.charAt(i++);
            if (c == '"')
                return b.toString();
            if (c < 0x20)
                throw error("control character in a string");
            if (c != '\\') {
                b.append(c);
                continue;
            }
            if (i >= s.length())
                throw error("unterminated escape");
            char e = s.charAt(i++);
            switch (e) {
            case '"': b.append('"'); break;
            case '\\': b.append('\\'); break;
            case '/': b.append('/'); break;
            case 'b': b.append('\b'); break;
            case 'f': b.append('\f'); break;
            case 'n': b.append('\n'); break;
            case 'r': b.append('\r'); break;
            case 't': b.append('\t'); break;
            case 'u':
                if (i + 4 > s.length())
                    throw error("short \\u escape");
                try {
                    b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                } catch (NumberFormatException x) {
                    throw error("bad \\u escape");
                }
                i += 4;
                break;
            default:
                throw error("bad escape");
            }
        }
    }

    private Object num() {
        int start = i;
        if (s.charAt(i) == '-')
            i++;
        boolean frac = false;
        while (i < s.length()) {
            char c = s.charAt(i);
            if (c >= '0' && c <= '9') {
                i++;
            } else if (c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
                frac = true;
                i++;
            } else {
                break;
            }
        }
        String t = s.substring(start, i);
        try {
            if (!frac)
                return Long.parseLong(t);
            return Double.parseDouble(t);
        } catch (NumberFormatException x) {
            i = start;
            throw error("bad number");
        }
    }
}
