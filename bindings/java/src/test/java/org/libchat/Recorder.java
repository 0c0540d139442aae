package org.libchat;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.function.Predicate;

/**
 * A listener that keeps every event, so a test can wait for the first one that matches; the
 * events it passes over stay for later waits (in order).
 */
final class Recorder implements EventListener {
    static final long WAIT_MS = 15000;
    private final List<Event> events = new ArrayList<>();

    @Override
    public synchronized void onEvent(Event e) {
        events.add(e);
        notifyAll();
    }

    /** The first kept event of type matching p, removed; fails the test after WAIT_MS. */
    synchronized Event await(EventType type, Predicate<Event> p) throws InterruptedException {
        long deadline = System.currentTimeMillis() + WAIT_MS;
        for (;;) {
            for (Iterator<Event> it = events.iterator(); it.hasNext();) {
                Event e = it.next();
                if (e.type() == type && (p == null || p.test(e))) {
                    it.remove();
                    return e;
                }
            }
            long left = deadline - System.currentTimeMillis();
            if (left <= 0)
                throw new AssertionError("no " + type + " event matching within " + WAIT_MS + " ms; kept: " + events);
            wait(left);
        }
    }

    Event await(EventType type) throws InterruptedException {
        return await(type, null);
    }

    /** Every kept event of type, removed. */
    synchronized List<Event> take(EventType type) {
        List<Event> out = new ArrayList<>();
        for (Iterator<Event> it = events.iterator(); it.hasNext();) {
            Event e = it.next();
            if (e.type() == type) {
                out.add(e);
                it.remove();
            }
        }
        return out;
    }
}
