package org.libchat;

/**
 * Receives a client's events in order, on the listener's executor (by default one thread of the
 * client's own, "libchat-listener"). A listener that throws is reported to the
 * {@link ListenerErrorHandler} and receives the next event as usual; a listener that blocks
 * delays only the events behind it, never requests, futures or the engine.
 */
@FunctionalInterface
public interface EventListener {
    void onEvent(Event event);
}
