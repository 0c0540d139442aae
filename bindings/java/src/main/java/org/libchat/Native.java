package org.libchat;

/**
 * The JNI entry points (bindings/java/jni/chat_jni.c). Handles are the addresses of the shim's
 * own structs, as longs; only {@link ChatClient} and {@link Loopback} hold them, behind a
 * {@link Handle} that turns use after close into {@link ChatException} (ECLOSED). Every method
 * throws {@link ChatException} for a libchat failure; strings cross as UTF-8 converted by the
 * shim (a Java string with an unpaired surrogate is refused with EINVAL, never mangled).
 *
 * <p>The library loads from the system property {@code libchat.jni.path} (a file, relative to
 * the working directory or absolute) when set,
 * else through {@code System.loadLibrary("chatjni")} (an Android app's jniLibs, or
 * {@code java.library.path}).
 */
final class Native {
    private Native() {
    }

    static {
        String path = System.getProperty("libchat.jni.path");
        if (path != null && !path.isEmpty())
            System.load(new java.io.File(path).getAbsolutePath());
        else
            System.loadLibrary("chatjni");
    }

    /** Loads the library (the class initializer does the work). */
    static void load() {
    }

    static native String errorName(int code);

    static native String strerror(int code);

    static native int errorFromName(String name);

    static native String versionString();

    // ---- client lifecycle ----

    static native long create(String server, String token, String user, String password,
                              String device, String cachePath, String caFile, long backoffBaseMs,
                              long backoffMaxMs, long heartbeatIntervalMs,
                              long heartbeatTimeoutMs, boolean autoDelivered, long loopback);

    /** Any thread, while the handle lives: wakes nextEvent for good and aborts transfers. */
    static native void interrupt(long h);

    static native void free(long h);

    static native void start(long h);

    static native void stop(long h);

    static native int state(long h);

    static native void reconnectNow(long h);

    static native void disconnect(long h);

    static native void setToken(long h, String token);

    static native String user(long h);

    static native String token(long h);

    // ---- sending ----

    static native String sendText(long h, long conv, String text);

    static native String sendTextTo(long h, String user, String text);

    static native String sendMedia(long h, long conv, String mediaJson);

    static native String sendMediaTo(long h, String user, String mediaJson);

    static native long outboxCount(long h);

    static native String sendReply(long h, long conv, long replyTo, long thread, String text);

    // ---- changes to sent messages, timers, threads, search (each returns a request id) ----

    static native long edit(long h, long conv, long seq, String text);

    static native long delete(long h, long conv, long seq);

    static native long react(long h, long conv, long seq, String emoji, boolean on);

    static native long setTimer(long h, long conv, long ttlMs);

    static native long markThreadRead(long h, long conv, long root, long seq);

    static native long thread(long h, long conv, long root, long afterSeq, int limit);

    static native long search(long h, String query, long conv, long before, int limit);

    static native Message[] searchLocal(long h, String query, long conv, int limit);

    // ---- media ----

    static native String uploadFile(long h, String path, String mime, Transfer t);

    static native long mediaUrl(long h, String mediaId);

    static native void download(long h, String url, String mediaId, String path, Transfer t);

    // ---- receipts, typing, presence, groups ----

    static native void markRead(long h, long conv, long seq);

    static native void typing(long h, long conv, boolean active);

    static native long presenceQuery(long h, String[] users);

    static native long groupCreate(long h, String cmid, String title, String[] members);

    static native long groupAdd(long h, long conv, String[] users);

    static native long groupRemove(long h, long conv, String[] users);

    static native long groupLeave(long h, long conv);

    static native long groupRename(long h, long conv, String title);

    static native long groupSetRole(long h, long conv, String user, int role);

    // ---- push notifications ----

    static native long pushRegister(long h, String platform, String token, String topic, boolean sandbox);

    static native long pushUnregister(long h);

    static native long mute(long h, long conv, long untilMs);

    // ---- the cache ----

    static native Conversation[] convs(long h);

    static native History history(long h, long conv, long beforeSeq, int limit);

    static native Message[] outbox(long h);

    /** {status, conv, seq}. */
    static native long[] messageStatus(long h, String cmid);

    /** {delivered, read, others}. */
    static native long[] messageReceipts(long h, long conv, long seq);

    // ---- events ----

    /**
     * The next event, waiting up to timeoutMs (-1: until one comes); null on timeout or once
     * {@link #interrupt} was called.
     */
    static native Event nextEvent(long h, int timeoutMs);

    // ---- loopback transport ----

    static native long loopbackNew();

    static native void loopbackFree(long lb);

    static native void loopbackSetRefuse(long lb, boolean refuse);

    static native boolean loopbackWaitOpen(long lb, int timeoutMs);

    /** The next frame the engine sent, or null on timeout. */
    static native String loopbackRecv(long lb, int timeoutMs);

    static native void loopbackSend(long lb, String frame);

    static native void loopbackClose(long lb, int code, String reason);

    static native int loopbackConnects(long lb);
}
