package org.libchat;

import java.util.Map;

/**
 * The media object of a media message: the id {@link ChatClient#uploadFile} returned, its type,
 * size and file name, and optionally its dimensions and duration (0 when absent).
 */
public final class Media {
    private final String id;
    private final String mime;
    private final long size;
    private final String name;
    private final long width;
    private final long height;
    private final long durationMs;

    public Media(String id, String mime, long size, String name) {
        this(id, mime, size, name, 0, 0, 0);
    }

    public Media(String id, String mime, long size, String name, long width, long height,
                 long durationMs) {
        if (id == null || mime == null || name == null)
            throw new NullPointerException("Media: id, mime and name must not be null");
        this.id = id;
        this.mime = mime;
        this.size = size;
        this.name = name;
        this.width = width;
        this.height = height;
        this.durationMs = durationMs;
    }

    public String id() {
        return id;
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

    public long width() {
        return width;
    }

    public long height() {
        return height;
    }

    public long durationMs() {
        return durationMs;
    }

    /** The protocol's media object, {"id","mime","size","name"[,"width","height","duration_ms"]}. */
    public String toJson() {
        StringBuilder b = new StringBuilder("{\"id\":");
        Json.quote(b, id);
        b.append(",\"mime\":");
        Json.quote(b, mime);
        b.append(",\"size\":").append(size).append(",\"name\":");
        Json.quote(b, name);
        if (width > 0)
            b.append(",\"width\":").append(width);
        if (height > 0)
            b.append(",\"height\":").append(height);
        if (durationMs > 0)
            b.append(",\"duration_ms\":").append(durationMs);
        return b.append('}').toString();
    }

    /* The media of a message of that kind and JSON wire object; null unless it is media. */
    static Media ofMessage(int kind, String json) {
        return kind == MessageKind.MEDIA.code() ? fromMessageJson(json) : null;
    }

    /* The "media" member of a message's JSON wire object, or null when there is none. */
    static Media fromMessageJson(String json) {
        if (json == null || json.isEmpty())
            return null;
        Map<String, Object> msg = Json.object(Json.parse(json));
        Map<String, Object> m = msg == null ? null : Json.object(msg.get("media"));
        if (m == null)
            return null;
        return new Media(Json.string(m, "id"), Json.string(m, "mime"), Json.number(m, "size"),
                         Json.string(m, "name"), Json.number(m, "width"),
                         Json.number(m, "height"), Json.number(m, "duration_ms"));
    }

    @Override
    public boolean equals(Object o) {
        if (!(o instanceof Media))
            return false;
        Media m = (Media) o;
        return id.equals(m.id) && mime.equals(m.mime) && size == m.size && name.equals(m.name)
               && width == m.width && height == m.height && durationMs == m.durationMs;
    }

    @Override
    public int hashCode() {
        return id.hashCode();
    }

    @Override
    public String toString() {
        return "Media{" + id + " " + mime + " " + size + " bytes \"" + name + "\"}";
    }
}
