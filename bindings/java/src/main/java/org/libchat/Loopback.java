package org.libchat;

import java.util.Objects;

/**
 * An in-process far end for a client instead of a server ({@code chat_loopback} of
 * {@code include/chat/testing.h}), to test an app without a network: build a client
 * with {@link ChatClient.Builder#loopback}, then play the server here, reading the frames the
 * engine sends ({@link #recv}) and answering with any frame of the protocol ({@link #send}).
 * One loopback serves one client. It stays usable after its client is closed; {@link #close()}
 * releases it. It is libchat's test-support API: with a libchat built without it (the default,
 * {@code -Dtesting_api=false}) the constructor throws {@link ChatException} ENOTSUP.
 */
public final class Loopback implements AutoCloseable {
    final Handle handle;
    private final NativeCleaner.Ref cleanable;

    public Loopback() {
        handle = new Handle("loopback", Native.loopbackNew());
        Handle h = handle;
        cleanable = NativeCleaner.register(this, () -> {
            h.close(null);
            long p = h.drain();
            if (p != 0)
                Native.loopbackFree(p);
        });
    }

    /** While refuse is true, connects fail (the engine sees close code 1006). */
    public void setRefuse(boolean refuse) {
        long p = handle.enter();
        try {
            Native.loopbackSetRefuse(p, refuse);
        } finally {
            handle.leave();
        }
    }

    /** Waits up to timeoutMs until the engine connected; returns whether it did. */
    public boolean waitOpen(int timeoutMs) {
        long p = handle.enter();
        try {
            return Native.loopbackWaitOpen(p, timeoutMs);
        } finally {
            handle.leave();
        }
    }

    /** The next frame the engine sent, waiting up to timeoutMs; null when none came. */
    public String recv(int timeoutMs) {
        long p = handle.enter();
        try {
            return Native.loopbackRecv(p, timeoutMs);
        } finally {
            handle.leave();
        }
    }

    /** Delivers one text frame to the engine; ECLOSED when no connection is open. */
    public void send(String frame) {
        Objects.requireNonNull(frame, "frame");
        long p = handle.enter();
        try {
            Native.loopbackSend(p, frame);
        } finally {
            handle.leave();
        }
    }

    /** Closes the connection from the far end with a WebSocket close code (1000..4999). */
    public void disconnect(int code, String reason) {
        long p = handle.enter();
        try {
            Native.loopbackClose(p, code, reason == null ? "" : reason);
        } finally {
            handle.leave();
        }
    }

    /** Connects the engine attempted so far (refused ones included). */
    public int connects() {
        long p = handle.enter();
        try {
            return Native.loopbackConnects(p);
        } finally {
            handle.leave();
        }
    }

    /** Releases the far end (idempotent); waits for a {@link #recv} in progress. */
    @Override
    public void close() {
        cleanable.clean();
    }
}
