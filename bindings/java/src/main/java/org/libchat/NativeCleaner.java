package org.libchat;

import java.lang.ref.PhantomReference;
import java.lang.ref.ReferenceQueue;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.logging.Level;
import java.util.logging.Logger;

/**
 * The backstop for objects that are never closed: an action runs once its owner is phantom
 * reachable, on one daemon thread. It does what java.lang.ref.Cleaner (Java 9) does, which this
 * binding cannot use at the Java 8 level Android needs. The action must not refer to the owner,
 * or the owner never becomes unreachable.
 */
final class NativeCleaner {
    private NativeCleaner() {
    }

    private static final ReferenceQueue<Object> QUEUE = new ReferenceQueue<>();
    /* The registered references themselves must stay reachable until they are enqueued. */
    private static final Set<Ref> LIVE = Collections.newSetFromMap(new IdentityHashMap<Ref, Boolean>());
    private static Thread thread;

    static final class Ref extends PhantomReference<Object> {
        private final Runnable action;
        private final AtomicBoolean done = new AtomicBoolean();

        Ref(Object owner, Runnable action) {
            super(owner, QUEUE);
            this.action = action;
        }

        /** Runs the action now unless it already ran, and unregisters. */
        void clean() {
            if (!done.compareAndSet(false, true))
                return;
            synchronized (LIVE) {
                LIVE.remove(this);
            }
            action.run();
        }
    }

    static Ref register(Object owner, Runnable action) {
        Ref r = new Ref(owner, action);
        synchronized (LIVE) {
            LIVE.add(r);
            if (thread == null) {
                thread = new Thread(NativeCleaner::run, "libchat-cleaner");
                thread.setDaemon(true);
                thread.start();
            }
        }
        return r;
    }

    /** True on the cleaner's thread: the owner was not closed explicitly. */
    static boolean onCleanerThread() {
        synchronized (LIVE) {
            return Thread.currentThread() == thread;
        }
    }

    private static void run() {
        for (;;) {
            try {
                ((Ref) QUEUE.remove()).clean();
            } catch (InterruptedException e) {
                // a daemon that lives as long as the process; nothing asks it to stop
            } catch (Throwable t) {
                Logger.getLogger("org.libchat").log(Level.WARNING, "libchat: cleaner action failed", t);
            }
        }
    }
}
