package org.libchat;

import java.util.function.LongConsumer;

/**
 * A native handle shared by threads: calls run between {@link #enter()} and {@link #leave()},
 * and the pointer is released only once it is closed and no call is in flight. A call after
 * close gets {@link ChatException} (ECLOSED) instead of a dangling pointer.
 */
final class Handle {
    private final String what;
    private long ptr;
    private int inflight;
    private boolean closed;

    Handle(String what, long ptr) {
        this.what = what;
        this.ptr = ptr;
    }

    /** The pointer for one call; pair with {@link #leave()} in a finally block. */
    synchronized long enter() {
        if (closed)
            throw new ChatException(ChatStatus.ECLOSED, "the " + what + " is closed");
        inflight++;
        return ptr;
    }

    synchronized void leave() {
        if (--inflight == 0 && closed)
            notifyAll();
    }

    synchronized boolean isClosed() {
        return closed;
    }

    /**
     * Marks the handle closed; the first time, runs onClose(ptr) under the lock, so that it can
     * never meet a released pointer. Returns whether this was the first time.
     */
    synchronized boolean close(LongConsumer onClose) {
        if (closed)
            return false;
        closed = true;
        if (onClose != null && ptr != 0)
            onClose.accept(ptr);
        return true;
    }

    /** The pointer, for the one thread that releases it (it outlives the calls of that thread). */
    synchronized long raw() {
        return ptr;
    }

    /**
     * After {@link #close}: waits until no call is in flight and hands out the pointer to
     * release, once (0 to every later caller).
     */
    synchronized long drain() {
        boolean interrupted = false;
        while (inflight > 0) {
            try {
                wait();
            } catch (InterruptedException e) {
                interrupted = true;
            }
        }
        if (interrupted)
            Thread.currentThread().interrupt();
        long p = ptr;
        ptr = 0;
        return p;
    }
}
