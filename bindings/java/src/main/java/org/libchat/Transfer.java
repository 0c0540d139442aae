package org.libchat;

import java.util.concurrent.Future;

/**
 * One upload or download in progress: the native layer calls {@link #progress} on the thread
 * that made the (blocking) call, and a false answer aborts the transfer (CHAT_EUSER).
 */
final class Transfer {
    /* The client whose transfer runs on this thread: close() from a progress listener defers. */
    static final ThreadLocal<Object> OWNER = new ThreadLocal<>();

    private final ProgressListener listener;
    private final Future<?> future;
    Throwable failure;

    Transfer(ProgressListener listener, Future<?> future) {
        this.listener = listener;
        this.future = future;
    }

    /* Called by the native layer only. */
    boolean progress(long done, long total) {
        if (future != null && future.isDone())
            return false; // cancelled
        if (listener == null)
            return true;
        try {
            listener.onProgress(done, total);
            return true;
        } catch (Throwable t) {
            failure = t;
            return false;
        }
    }

    boolean cancelled() {
        return future != null && future.isCancelled();
    }
}
