package org.libchat;

/** Told about an exception an {@link EventListener} threw; the default logs it (java.util.logging, "org.libchat"). */
@FunctionalInterface
public interface ListenerErrorHandler {
    void onListenerError(Event event, Throwable error);
}
