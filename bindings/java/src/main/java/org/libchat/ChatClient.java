package org.libchat;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.HashSet;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.Executor;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.LongFunction;
import java.util.function.LongUnaryOperator;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * A libchat client: the engine of {@code include/chat/client.h} (connection, offline-first cache,
 * durable outbox, sync) behind a Java API.
 *
 * <pre>{@code
 * try (ChatClient c = ChatClient.builder("ws://10.0.2.2:7700/")
 *         .token(token).cachePath(dir + "/chat.db")
 *         .listener(ev -> ui.post(() -> show(ev)))
 *         .build()) {
 *     c.start();
 *     Outgoing m = c.sendTo("bob", "hi");          // durable in the outbox from here on
 *     m.sent().thenAccept(s -> log("stored as #" + s.seq()));
 *     long group = c.createGroup("Team", Arrays.asList("bob", "carol")).join();
 * }
 * }</pre>
 *
 * <p><b>Threads.</b> Every method may be called from any thread. One thread per client,
 * "libchat-events", pulls events from the engine's queue, completes the futures of requests,
 * and hands each event to the listener's executor; no native thread ever calls into the VM.
 * Futures complete on that thread: dependent stages added without an executor run there and
 * must not block (use the {@code *Async} variants for work that blocks or waits on another
 * request of the same client). {@link #uploadFile} and {@link #download} block their caller
 * (keep them off the UI thread); the {@code *Async} forms run them on the client's transfer
 * threads.
 *
 * <p><b>Lifetime.</b> {@link #close()} stops the engine and frees it; later calls throw
 * {@link ChatException} with {@link ChatStatus#ECLOSED}, and futures still pending fail the same
 * way. A client that becomes unreachable without close() is closed by a cleaner; while the
 * event thread runs, a listener that refers to the client keeps it reachable, so close it.
 *
 * <p><b>Errors.</b> Everything libchat reports is a {@link ChatException} carrying the
 * {@code chat_status}. Null arguments throw {@link NullPointerException}; a string that is not
 * valid Unicode (an unpaired surrogate), or that holds a NUL where the C API takes a
 * NUL-terminated string, throws ChatException with {@link ChatStatus#EINVAL}.
 */
public final class ChatClient implements AutoCloseable {
    static final Logger LOG = Logger.getLogger("org.libchat");
    /* How many clients the cleaner closed (tests read it). */
    static final AtomicInteger CLEANED = new AtomicInteger();

    private final Core core;
    private final NativeCleaner.Ref cleanable;

    private ChatClient(Builder b) {
        long lb = 0;
        Handle lbh = b.loopback != null ? b.loopback.handle : null;
        if (lbh != null)
            lb = lbh.enter();
        long h;
        try {
            h = Native.create(b.server, b.token, b.user, b.password, b.device, b.cachePath,
                              b.caFile, b.backoffBaseMs, b.backoffMaxMs, b.heartbeatIntervalMs,
                              b.heartbeatTimeoutMs, b.autoDelivered, lb);
        } finally {
            if (lbh != null)
                lbh.leave();
        }
        core = new Core(h);
        if (b.listener != null)
            core.setListener(b.listener, b.executor, b.errorHandler);
        Core c = core; // the cleaning action must not capture this
        cleanable = NativeCleaner.register(this, () -> {
            if (c.close() && NativeCleaner.onCleanerThread())
                CLEANED.incrementAndGet();
        });
        core.startPuller();
    }

    /** A builder for a client of the server at url ("ws://host:port/" or "wss://..."). */
    public static Builder builder(String serverUrl) {
        return new Builder(serverUrl);
    }

    /** The loaded library's version ("0.1.0"). */
    public static String libraryVersion() {
        return Native.versionString();
    }

    /** Configuration of a {@link ChatClient}; {@link #build()} opens the cache but does not connect. */
    public static final class Builder {
        private final String server;
        private String token;
        private String user;
        private String password;
        private String device;
        private String cachePath;
        private String caFile;
        private long backoffBaseMs;
        private long backoffMaxMs;
        private long heartbeatIntervalMs;
        private long heartbeatTimeoutMs;
        private boolean autoDelivered = true;
        private EventListener listener;
        private Executor executor;
        private ListenerErrorHandler errorHandler;
        private Loopback loopback;

        private Builder(String server) {
            this.server = Objects.requireNonNull(server, "server");
        }

        /** Authenticate with a token (from the server's token issuing, or an earlier login). */
        public Builder token(String token) {
            this.token = Objects.requireNonNull(token, "token");
            return this;
        }

        /**
         * Authenticate with user and password as device; the token the server returns is kept
         * in the cache ({@link ChatClient#token()}) and used for later connections.
         */
        public Builder login(String user, String password, String device) {
            this.user = Objects.requireNonNull(user, "user");
            this.password = Objects.requireNonNull(password, "password");
            this.device = Objects.requireNonNull(device, "device");
            return this;
        }

        /** The SQLite cache file (created if missing). Without one, nothing survives close(). */
        public Builder cachePath(String path) {
            this.cachePath = Objects.requireNonNull(path, "path");
            return this;
        }

        /** For wss://: trust the CAs of this PEM file instead of the system's. */
        public Builder caFile(String path) {
            this.caFile = Objects.requireNonNull(path, "path");
            return this;
        }

        /** Reconnect backoff (defaults 500 ms and 30 s). */
        public Builder backoff(long baseMs, long maxMs) {
            if (baseMs < 1 || maxMs < baseMs)
                throw new IllegalArgumentException("backoff: need 1 <= baseMs <= maxMs");
            this.backoffBaseMs = baseMs;
            this.backoffMaxMs = maxMs;
            return this;
        }

        /** Heartbeat: ping after intervalMs of silence, drop after timeoutMs more (15 s, 10 s). */
        public Builder heartbeat(long intervalMs, long timeoutMs) {
            if (intervalMs < 1 || timeoutMs < 1)
                throw new IllegalArgumentException("heartbeat: need positive times");
            this.heartbeatIntervalMs = intervalMs;
            this.heartbeatTimeoutMs = timeoutMs;
            return this;
        }

        /** Send delivered receipts for received messages by itself (default true). */
        public Builder autoDelivered(boolean on) {
            this.autoDelivered = on;
            return this;
        }

        /** Events go to listener on one thread of the client's own, in order. */
        public Builder listener(EventListener listener) {
            return listener(listener, null);
        }

        /**
         * Events go to listener through executor (an Android app may pass its main thread's
         * executor). Order is kept when the executor runs tasks in order.
         */
        public Builder listener(EventListener listener, Executor executor) {
            this.listener = Objects.requireNonNull(listener, "listener");
            this.executor = executor;
            return this;
        }

        /** Where exceptions thrown by the listener go (default: logged). */
        public Builder listenerErrorHandler(ListenerErrorHandler handler) {
            this.errorHandler = Objects.requireNonNull(handler, "handler");
            return this;
        }

        /** Talk to an in-process {@link Loopback} peer instead of a server (tests of an app). */
        public Builder loopback(Loopback peer) {
            this.loopback = Objects.requireNonNull(peer, "peer");
            return this;
        }

        /** Creates the client: opens the cache; the network is not touched until start(). */
        public ChatClient build() {
            return new ChatClient(this);
        }
    }

    // ---- lifecycle ----

    /** Starts the engine's loop thread, which connects at once. */
    public void start() {
        core.run(Native::start);
    }

    /**
     * Disconnects and stops the loop thread; pending requests fail with ECLOSED, the outbox
     * stays. {@link #start()} may follow.
     */
    public void stop() {
        core.run(Native::stop);
    }

    /**
     * Stops and frees the client (idempotent). Calls in progress on other threads finish first;
     * transfers in progress are aborted. Events not yet handed to the listener are dropped.
     * From the event thread or a progress listener it returns at once and the client is freed
     * as soon as that callback returns.
     */
    @Override
    public void close() {
        cleanable.clean();
    }

    public boolean isClosed() {
        return core.handle.isClosed();
    }

    public ConnectionState state() {
        if (core.handle.isClosed())
            return ConnectionState.STOPPED;
        return ConnectionState.fromCode((int) core.call(h -> (long) Native.state(h)));
    }

    /** Skips the backoff wait and connects now (also after AUTH_FAILED). */
    public void reconnectNow() {
        core.run(Native::reconnectNow);
    }

    /** Drops the connection as if the network failed; the client reconnects after its backoff. */
    public void disconnect() {
        core.run(Native::disconnect);
    }

    /** Replaces the token (e.g. after AUTH_FAILED) and reconnects. */
    public void setToken(String token) {
        Objects.requireNonNull(token, "token");
        core.run(h -> Native.setToken(h, token));
    }

    /** My user id (known once authenticated). ENOTFOUND before. */
    public String user() {
        return core.get(Native::user);
    }

    /** The token in use (the configured one, or the one a login returned). */
    public String token() {
        return core.get(Native::token);
    }

    /**
     * Sets (or replaces) the listener; events pulled before a listener is set are not kept. Pass
     * null as executor for the client's own listener thread.
     */
    public void setListener(EventListener listener, Executor executor) {
        core.setListener(listener, executor, null);
    }

    // ---- sending ----

    /** Queues text in the outbox for conversation conv. */
    public Outgoing send(long conv, String text) {
        Objects.requireNonNull(text, "text");
        return core.send(h -> Native.sendText(h, conv, text));
    }

    /** Queues text to the direct conversation with user (created by the server on first use). */
    public Outgoing sendTo(String user, String text) {
        Objects.requireNonNull(user, "user");
        Objects.requireNonNull(text, "text");
        return core.send(h -> Native.sendTextTo(h, user, text));
    }

    /** Queues a media message (upload the file first: {@link #uploadFile}). */
    public Outgoing sendMedia(long conv, Media media) {
        String js = Objects.requireNonNull(media, "media").toJson();
        return core.send(h -> Native.sendMedia(h, conv, js));
    }

    public Outgoing sendMediaTo(String user, Media media) {
        Objects.requireNonNull(user, "user");
        String js = Objects.requireNonNull(media, "media").toJson();
        return core.send(h -> Native.sendMediaTo(h, user, js));
    }

    /** Messages waiting in the outbox. */
    public long outboxCount() {
        return core.call(Native::outboxCount);
    }

    /** The outbox (status SENDING or FAILED), oldest first. */
    public List<Message> outbox() {
        return Collections.unmodifiableList(java.util.Arrays.asList(core.get(Native::outbox)));
    }

    /**
     * Queues text for conv as a reply quoting message replyTo (0: none) and/or in the thread of
     * root message thread (0: the main conversation).
     */
    public Outgoing reply(long conv, String text, long replyTo, long thread) {
        Objects.requireNonNull(text, "text");
        return core.send(h -> Native.sendReply(h, conv, replyTo, thread, text));
    }

    // ---- changes to sent messages, timers, threads, search ----

    /**
     * Edits my text message seq of conv; every member's cache then shows the new text (an
     * {@link EventType#UPDATED} event). Fails with EPERM when it is not mine or the server's
     * edit window has passed (the exception's message says which), ENOTFOUND, ECLOSED offline.
     */
    public CompletableFuture<Void> edit(long conv, long seq, String text) {
        Objects.requireNonNull(text, "text");
        return core.request(h -> Native.edit(h, conv, seq, text), ev -> null);
    }

    /** Deletes message seq of conv for everyone (mine within the server's window; any as admin). */
    public CompletableFuture<Void> delete(long conv, long seq) {
        return core.request(h -> Native.delete(h, conv, seq), ev -> null);
    }

    /** Puts my reaction emoji on message seq of conv (on) or takes it off. */
    public CompletableFuture<Void> react(long conv, long seq, String emoji, boolean on) {
        Objects.requireNonNull(emoji, "emoji");
        return core.request(h -> Native.react(h, conv, seq, emoji, on), ev -> null);
    }

    /** Disappearing messages: those sent to conv from now on expire after ttlMs (0: never). */
    public CompletableFuture<Void> setTimer(long conv, long ttlMs) {
        return core.request(h -> Native.setTimer(h, conv, ttlMs), ev -> null);
    }

    /** Marks the thread of root message root of conv read up to seq. */
    public CompletableFuture<Void> markThreadRead(long conv, long root, long seq) {
        return core.request(h -> Native.markThreadRead(h, conv, root, seq), ev -> null);
    }

    /**
     * A page of the thread of root message root of conv from the server (replies after
     * afterSeq): completes with the server's answer as JSON ({@code {"root", "unread",
     * "messages", "more"}}, doc/protocol.md); the replies are cached too.
     */
    public CompletableFuture<String> thread(long conv, long root, long afterSeq, int limit) {
        return core.request(h -> Native.thread(h, conv, root, afterSeq, limit), Event::json);
    }

    /**
     * Searches the server for messages holding every word of query in my conversations (conv 0)
     * or in conv, newest first, older than cursor before (0: from the newest): completes with
     * the answer as JSON ({@code {"messages", "more", "cursor"}}, doc/protocol.md).
     */
    public CompletableFuture<String> search(String query, long conv, long before, int limit) {
        Objects.requireNonNull(query, "query");
        return core.request(h -> Native.search(h, query, conv, before, limit), Event::json);
    }

    /**
     * Searches the cache, offline: the cached messages of conv (0: all) holding every word of
     * query as they are now, most recently cached first, at most limit.
     */
    public List<Message> searchLocal(String query, long conv, int limit) {
        Objects.requireNonNull(query, "query");
        return Collections.unmodifiableList(java.util.Arrays.asList(
                core.get(h -> Native.searchLocal(h, query, conv, limit))));
    }

    // ---- media ----

    /**
     * Uploads the file at path (blocking) and returns its media id. An interrupted upload of the
     * same file resumes where the server stands. progress may be null.
     */
    public String uploadFile(String path, String mime, ProgressListener progress) {
        Objects.requireNonNull(path, "path");
        return core.transfer(new Transfer(progress, null), t -> Native.uploadFile(t.h, path, mime, t.t));
    }

    /** {@link #uploadFile} on the client's transfer threads; cancelling the future aborts it. */
    public CompletableFuture<String> uploadFileAsync(String path, String mime, ProgressListener progress) {
        Objects.requireNonNull(path, "path");
        return core.transferAsync(progress, t -> Native.uploadFile(t.h, path, mime, t.t));
    }

    /**
     * A signed download URL of mediaId; fails with EPERM (not a member of a conversation that
     * has it), ENOTFOUND, or ECLOSED when offline.
     */
    public CompletableFuture<MediaUrl> mediaUrl(String mediaId) {
        Objects.requireNonNull(mediaId, "mediaId");
        return core.request(h -> Native.mediaUrl(h, mediaId), ev -> MediaUrl.fromJson(ev.json()));
    }

    /**
     * Downloads url (a {@link MediaUrl#url()}) into path (blocking), checking the content
     * against mediaId when it is not null. Bytes go to path + ".part" first; a ".part" left by
     * an interrupted download is continued. progress may be null.
     */
    public void download(String url, String mediaId, String path, ProgressListener progress) {
        Objects.requireNonNull(url, "url");
        Objects.requireNonNull(path, "path");
        core.transfer(new Transfer(progress, null), t -> {
            Native.download(t.h, url, mediaId, path, t.t);
            return null;
        });
    }

    /** Asks for a URL of mediaId and downloads it into path on the client's transfer threads. */
    public CompletableFuture<Void> downloadAsync(String mediaId, String path, ProgressListener progress) {
        Objects.requireNonNull(path, "path");
        return mediaUrl(mediaId).thenCompose(u -> core.transferAsync(progress, t -> {
            Native.download(t.h, u.url(), mediaId, path, t.t);
            return null;
        }));
    }

    // ---- receipts, typing, presence ----

    /**
     * Marks conv read up to seq: the unread count changes at once, and a read receipt goes out
     * now or after the next connect. ENOTFOUND when the conversation is not in the cache.
     */
    public void markRead(long conv, long seq) {
        core.run(h -> Native.markRead(h, conv, seq));
    }

    /** Typing indicator start (true) or stop; dropped while offline. */
    public void typing(long conv, boolean active) {
        core.run(h -> Native.typing(h, conv, active));
    }

    /**
     * The presence of users: completes with the answer for each of them who is my contact
     * (others are absent from the map). The same answers also arrive as PRESENCE events.
     */
    public CompletableFuture<Map<String, Presence>> presence(Collection<String> users) {
        String[] arr = strings(users, "users");
        PresenceQuery q = new PresenceQuery(arr);
        return core.request(h -> {
            long id = Native.presenceQuery(h, arr);
            core.presence.add(q);
            return id;
        }, ev -> Collections.unmodifiableMap(q.answers), () -> core.presence.remove(q));
    }

    /** Delivered and read counts of message (conv, seq) among the other members. */
    public Receipts messageReceipts(long conv, long seq) {
        long[] r = core.get(h -> Native.messageReceipts(h, conv, seq));
        return new Receipts(r[0], r[1], r[2]);
    }

    /** Where my message cmid stands; ENOTFOUND for an unknown cmid. */
    public MessageState messageStatus(String cmid) {
        Objects.requireNonNull(cmid, "cmid");
        long[] r = core.get(h -> Native.messageStatus(h, cmid));
        return new MessageState(MessageStatus.fromCode((int) r[0]), r[1], r[2]);
    }

    // ---- groups ----

    /** Creates a group with me as owner; completes with its conversation id. */
    public CompletableFuture<Long> createGroup(String title, Collection<String> members) {
        return createGroup(null, title, members);
    }

    /**
     * As {@link #createGroup(String, Collection)}, under a client id the app keeps (1-64
     * printable ASCII): repeating the call after a failure answers the group the first call
     * created instead of creating a second one.
     */
    public CompletableFuture<Long> createGroup(String clientId, String title, Collection<String> members) {
        Objects.requireNonNull(title, "title");
        String[] arr = strings(members, "members");
        return core.request(h -> Native.groupCreate(h, clientId, title, arr), Event::conv);
    }

    public CompletableFuture<Void> addMembers(long conv, Collection<String> users) {
        String[] arr = strings(users, "users");
        return core.request(h -> Native.groupAdd(h, conv, arr), ev -> null);
    }

    public CompletableFuture<Void> removeMembers(long conv, Collection<String> users) {
        String[] arr = strings(users, "users");
        return core.request(h -> Native.groupRemove(h, conv, arr), ev -> null);
    }

    public CompletableFuture<Void> leaveGroup(long conv) {
        return core.request(h -> Native.groupLeave(h, conv), ev -> null);
    }

    public CompletableFuture<Void> renameGroup(long conv, String title) {
        Objects.requireNonNull(title, "title");
        return core.request(h -> Native.groupRename(h, conv, title), ev -> null);
    }

    /** role: MEMBER, ADMIN or OWNER. */
    public CompletableFuture<Void> setRole(long conv, String user, Role role) {
        Objects.requireNonNull(user, "user");
        Objects.requireNonNull(role, "role");
        return core.request(h -> Native.groupSetRole(h, conv, user, role.code()), ev -> null);
    }

    // ---- push notifications (doc/push.md) ----

    /**
     * Registers this device for push notifications while it is offline: platform "apns" (token:
     * the device token in hex; topic: the app's bundle id, null for the server's default; sandbox
     * for a development build) or "fcm" (the registration token; topic and sandbox unused). The
     * client keeps it and sends it after every connect: call it again whenever the platform hands
     * the app a new token. Completes when the server stored it (offline: at the next connect);
     * fails with ENOTSUP when the server keeps no registrations, EINVAL when it refused the token.
     * A malformed platform, token or topic throws ChatException EINVAL at once.
     */
    public CompletableFuture<Void> pushRegister(String platform, String token, String topic, boolean sandbox) {
        Objects.requireNonNull(platform, "platform");
        Objects.requireNonNull(token, "token");
        return core.request(h -> Native.pushRegister(h, platform, token, topic, sandbox), ev -> null);
    }

    /** {@link #pushRegister(String, String, String, boolean)} with the server's default topic. */
    public CompletableFuture<Void> pushRegister(String platform, String token) {
        return pushRegister(platform, token, null, false);
    }

    /** Stops push notifications to this device (call it before logging out). */
    public CompletableFuture<Void> pushUnregister() {
        return core.request(Native::pushUnregister, ev -> null);
    }

    /**
     * Mutes conv for me (every device of mine) until untilMs (ms since the epoch): no pushes for
     * it, messages still arrive. 0 unmutes; a negative time throws EINVAL. ECLOSED when offline,
     * EPERM when not a member.
     */
    public CompletableFuture<Void> mute(long conv, long untilMs) {
        return core.request(h -> Native.mute(h, conv, untilMs), ev -> null);
    }

    /** Mutes conv until {@link #unmute}. */
    public CompletableFuture<Void> mute(long conv) {
        return mute(conv, Long.MAX_VALUE);
    }

    public CompletableFuture<Void> unmute(long conv) {
        return mute(conv, 0);
    }

    // ---- the cache ----

    /** The cached conversations, most recent activity first. */
    public List<Conversation> conversations() {
        return Collections.unmodifiableList(java.util.Arrays.asList(core.get(Native::convs)));
    }

    /** The sum of my unread counts over the cached conversations. */
    public long totalUnread() {
        long n = 0;
        for (Conversation c : conversations())
            n += c.unread();
        return n;
    }

    /**
     * Up to limit messages of conv with seq below beforeSeq (0: the newest), ascending, from the
     * cache, without waiting: when the cache lacks part of the range, the page holds its cached
     * tail and is not {@link History#complete()}, and the engine fetches the rest.
     */
    public History cachedHistory(long conv, long beforeSeq, int limit) {
        return core.get(h -> Native.history(h, conv, beforeSeq, limit));
    }

    /**
     * A page of history: at once from the cache when it holds the range, else after the engine
     * fetched the missing part from the server (fails with ECLOSED when offline; the cached part
     * is in {@link #cachedHistory}).
     */
    public CompletableFuture<History> history(long conv, long beforeSeq, int limit) {
        CompletableFuture<History> f = new CompletableFuture<>();
        long h = core.handle.enter();
        try {
            synchronized (core.pendingLock) {
                History page = Native.history(h, conv, beforeSeq, limit);
                if (page.complete() || page.request() == 0) {
                    f.complete(page);
                    return f;
                }
                core.requests.put(page.request(), ev -> {
                    if (ev.code() < 0) {
                        f.completeExceptionally(ev.error());
                        return;
                    }
                    try {
                        f.complete(cachedHistory(conv, beforeSeq, limit));
                    } catch (Throwable t) {
                        f.completeExceptionally(t);
                    }
                });
            }
        } finally {
            core.handle.leave();
        }
        return f;
    }

    @Override
    public String toString() {
        return "ChatClient{" + (isClosed() ? "closed" : state().toString()) + "}";
    }

    private static String[] strings(Collection<String> c, String what) {
        Objects.requireNonNull(c, what);
        String[] a = c.toArray(new String[0]);
        for (String s : a)
            Objects.requireNonNull(s, what + " holds a null");
        return a;
    }

    /* A presence query collecting the PRESENCE events for its users until its RESULT. */
    static final class PresenceQuery {
        final Set<String> users;
        final Map<String, Presence> answers = new LinkedHashMap<>();

        PresenceQuery(String[] users) {
            this.users = new HashSet<>(java.util.Arrays.asList(users));
        }
    }

    /* The arguments of a transfer body. */
    static final class TransferCall {
        final long h;
        final Transfer t;

        TransferCall(long h, Transfer t) {
            this.h = h;
            this.t = t;
        }
    }

    /**
     * Everything that must live as long as the native client, without referring to the
     * ChatClient (so that the cleaner can see the ChatClient become unreachable).
     */
    static final class Core implements Runnable {
        final Handle handle;
        final Object pendingLock = new Object();
        /* Completions by request id (RESULT, HISTORY), sends by cmid; under pendingLock. */
        final Map<Long, Consumer<Event>> requests = new HashMap<>();
        final Map<String, CompletableFuture<Sent>> sends = new HashMap<>();
        final List<PresenceQuery> presence = new ArrayList<>();
        private Thread puller;
        private volatile Dispatch dispatch;
        private ExecutorService transfers; // under pendingLock

        Core(long h) {
            handle = new Handle("client", h);
        }

        void startPuller() {
            Thread t = new Thread(this, "libchat-events");
            t.setDaemon(true);
            puller = t;
            try {
                t.start();
            } catch (Throwable e) {
                puller = null;
                close();
                throw e;
            }
        }

        // ---- calls ----

        void run(java.util.function.LongConsumer f) {
            long h = handle.enter();
            try {
                f.accept(h);
            } finally {
                handle.leave();
            }
        }

        long call(LongUnaryOperator f) {
            long h = handle.enter();
            try {
                return f.applyAsLong(h);
            } finally {
                handle.leave();
            }
        }

        <T> T get(LongFunction<T> f) {
            long h = handle.enter();
            try {
                return f.apply(h);
            } finally {
                handle.leave();
            }
        }

        /* A send: the future is registered before the puller can see the ack. */
        Outgoing send(LongFunction<String> f) {
            CompletableFuture<Sent> sent = new CompletableFuture<>();
            long h = handle.enter();
            try {
                synchronized (pendingLock) {
                    String cmid = f.apply(h);
                    sends.put(cmid, sent);
                    return new Outgoing(cmid, sent);
                }
            } finally {
                handle.leave();
            }
        }

        <T> CompletableFuture<T> request(LongUnaryOperator issue, Function<Event, T> onOk) {
            return request(issue, onOk, null);
        }

        /*
         * A request completed by one RESULT/HISTORY event: issued and registered under
         * pendingLock, so the puller cannot see its event first. done runs (under the lock)
         * when the event came, before the future completes.
         */
        <T> CompletableFuture<T> request(LongUnaryOperator issue, Function<Event, T> onOk, Runnable done) {
            CompletableFuture<T> f = new CompletableFuture<>();
            long h = handle.enter();
            try {
                synchronized (pendingLock) {
                    long id = issue.applyAsLong(h);
                    requests.put(id, ev -> {
                        if (done != null) {
                            synchronized (pendingLock) {
                                done.run();
                            }
                        }
                        if (ev.code() < 0) {
                            f.completeExceptionally(ev.error());
                            return;
                        }
                        try {
                            f.complete(onOk.apply(ev));
                        } catch (Throwable t) {
                            f.completeExceptionally(t);
                        }
                    });
                }
            } finally {
                handle.leave();
            }
            return f;
        }

        <T> T transfer(Transfer t, Function<TransferCall, T> body) {
            long h = handle.enter();
            Object prev = Transfer.OWNER.get();
            Transfer.OWNER.set(this);
            try {
                return body.apply(new TransferCall(h, t));
            } catch (ChatException e) {
                if (e.status() == ChatStatus.EUSER) {
                    if (t.failure instanceof RuntimeException)
                        throw (RuntimeException) t.failure;
                    if (t.failure instanceof Error)
                        throw (Error) t.failure;
                    if (t.failure != null)
                        throw new ChatException(ChatStatus.EUSER, "progress listener failed", t.failure);
                    if (t.cancelled())
                        throw new CancellationException("transfer cancelled");
                }
                throw e;
            } finally {
                if (prev == null)
                    Transfer.OWNER.remove();
                else
                    Transfer.OWNER.set(prev);
                handle.leave();
            }
        }

        <T> CompletableFuture<T> transferAsync(ProgressListener progress, Function<TransferCall, T> body) {
            CompletableFuture<T> f = new CompletableFuture<>();
            Transfer t = new Transfer(progress, f);
            ExecutorService ex;
            synchronized (pendingLock) {
                if (handle.isClosed())
                    throw new ChatException(ChatStatus.ECLOSED, "the client is closed");
                if (transfers == null)
                    transfers = Executors.newCachedThreadPool(daemon("libchat-transfer"));
                ex = transfers;
            }
            try {
                ex.execute(() -> {
                    try {
                        f.complete(transfer(t, body));
                    } catch (Throwable e) {
                        f.completeExceptionally(e);
                    }
                });
            } catch (RejectedExecutionException e) {
                f.completeExceptionally(new ChatException(ChatStatus.ECLOSED, "the client is closed"));
            }
            return f;
        }

        // ---- events ----

        void setListener(EventListener l, Executor ex, ListenerErrorHandler onError) {
            Dispatch old;
            synchronized (pendingLock) {
                old = dispatch;
                dispatch = l == null ? null : new Dispatch(l, ex, onError);
            }
            if (old != null)
                old.shutdown();
        }

        @Override
        public void run() {
            long h = handle.raw(); // released by this thread only, below or after it ends
            try {
                while (!handle.isClosed()) {
                    Event ev;
                    try {
                        ev = Native.nextEvent(h, -1);
                    } catch (Throwable e) {
                        LOG.log(Level.SEVERE, "libchat: the event queue failed; no more events", e);
                        return;
                    }
                    if (ev == null)
                        continue; // interrupted: closed
                    try {
                        complete(ev);
                    } catch (Throwable e) {
                        LOG.log(Level.WARNING, "libchat: completing a request of " + ev + " failed", e);
                    }
                    Dispatch d = dispatch;
                    if (d != null)
                        d.deliver(ev, handle);
                }
            } finally {
                if (handle.isClosed())
                    finish();
            }
        }

        /* Completes the future an event answers (on the puller). */
        private void complete(Event ev) {
            Consumer<Event> done = null;
            CompletableFuture<Sent> sent = null;
            synchronized (pendingLock) {
                switch (ev.type()) {
                case SENT:
                case SEND_FAILED:
                    sent = sends.remove(ev.cmid());
                    break;
                case RESULT:
                case HISTORY:
                    done = requests.remove(ev.request());
                    break;
                case PRESENCE:
                    for (PresenceQuery q : presence)
                        if (q.users.contains(ev.user()))
                            q.answers.put(ev.user(), new Presence(ev.user(), ev.active(), ev.lastSeenMs()));
                    break;
                default:
                    break;
                }
            }
            if (sent != null) {
                if (ev.type() == EventType.SENT)
                    sent.complete(new Sent(ev.cmid(), ev.conv(), ev.seq(), ev.tsMs()));
                else
                    sent.completeExceptionally(ev.error());
            }
            if (done != null)
                done.accept(ev);
        }

        /**
         * Closes (idempotent); returns whether this call closed it. Waits for the event thread
         * to free the client, except on that thread or in a progress listener of this client:
         * then the event thread frees it when the callback has returned.
         */
        boolean close() {
            boolean first = handle.close(Native::interrupt);
            Thread p = puller;
            if (p == null) {
                finish();
                return first;
            }
            if (Thread.currentThread() == p || Transfer.OWNER.get() == this)
                return first;
            boolean interrupted = false;
            while (p.isAlive()) {
                try {
                    p.join();
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            if (interrupted)
                Thread.currentThread().interrupt();
            finish(); // in case the event thread ended before the close
            return first;
        }

        /* Frees the native client once no call is in flight, and fails what still waits. */
        private void finish() {
            long h = handle.drain();
            if (h == 0)
                return;
            Native.free(h);
            List<Consumer<Event>> reqs;
            List<CompletableFuture<Sent>> snds;
            Dispatch d;
            ExecutorService tr;
            synchronized (pendingLock) {
                reqs = new ArrayList<>(requests.values());
                snds = new ArrayList<>(sends.values());
                requests.clear();
                sends.clear();
                presence.clear();
                d = dispatch;
                dispatch = null;
                tr = transfers;
            }
            for (CompletableFuture<Sent> f : snds)
                f.completeExceptionally(new ChatException(ChatStatus.ECLOSED,
                        "the client closed before the ack; the message stays in the outbox"));
            Event closed = new Event(EventType.RESULT.code(), 0, 0, 0, "", "", "", 0, "", "",
                                     ChatStatus.ECLOSED.code(), "the client is closed", 0, 0, 0,
                                     false, 0, 0, 0, false);
            for (Consumer<Event> r : reqs)
                r.accept(closed);
            if (d != null)
                d.shutdown();
            if (tr != null)
                tr.shutdown();
        }
    }

    /* The listener with its executor; its own single thread unless the app gave one. */
    static final class Dispatch {
        final EventListener listener;
        final Executor executor;
        final ExecutorService own;
        final ListenerErrorHandler onError;

        Dispatch(EventListener listener, Executor executor, ListenerErrorHandler onError) {
            this.listener = listener;
            this.own = executor == null ? Executors.newSingleThreadExecutor(daemon("libchat-listener")) : null;
            this.executor = executor == null ? own : executor;
            this.onError = onError;
        }

        void deliver(Event ev, Handle handle) {
            try {
                executor.execute(() -> {
                    if (handle.isClosed())
                        return;
                    try {
                        listener.onEvent(ev);
                    } catch (Throwable t) {
                        report(ev, t);
                    }
                });
            } catch (RejectedExecutionException e) {
                report(ev, e);
            }
        }

        private void report(Event ev, Throwable t) {
            if (onError != null) {
                try {
                    onError.onListenerError(ev, t);
                    return;
                } catch (Throwable t2) {
                    t.addSuppressed(t2);
                }
            }
            LOG.log(Level.WARNING, "libchat: the event listener threw on " + ev, t);
        }

        void shutdown() {
            if (own != null)
                own.shutdown();
        }
    }

    static ThreadFactory daemon(String name) {
        AtomicInteger n = new AtomicInteger();
        return r -> {
            Thread t = new Thread(r, name + "-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        };
    }
}
