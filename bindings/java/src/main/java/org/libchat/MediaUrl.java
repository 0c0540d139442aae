package org.libchat;

import java.util.Map;

/** A signed download URL of a media id ({@link ChatClient#mediaUrl}), as the server answered it. */
public final class MediaUrl {
    private final String url;
    private final long expiresMs;
    private final String mime;
    private final long size;
    private final String name;

    private MediaUrl(String url, long expiresMs, String mime, long size, String name) {
        this.url = url;
        this.expiresMs = expiresMs;
        this.mime = mime;
        this.size = size;
        this.name = name;
    }

    static MediaUrl fromJson(String json) {
        Map<String, Object> o = Json.object(Json.parse(json));
        if (o == null || Json.string(o, "url").isEmpty())
            throw new ChatException(ChatStatus.EPROTO, "media_url answer without a url: " + json);
        return new MediaUrl(Json.string(o, "url"), Json.number(o, "expires"),
                            Json.string(o, "mime"), Json.number(o, "size"),
                            Json.string(o, "name"));
    }

    /** The URL, relative to the server ("/media/..."); {@link ChatClient#download} takes it. */
    public String url() {
        return url;
    }

    /** When the URL stops working, ms since the epoch. */
    public long expiresMs() {
        return expiresMs;
    }

    public String mime() {
        return mime;
    }

    public long size() {
        return size;
    }

    public String name() {
        return name;
    }

    @Override
    public String toString() {
        return "MediaUrl{" + url + "}";
    }
}
