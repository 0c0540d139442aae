package org.libchat;

import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Helpers shared by the tests. */
final class TestSupport {
    private TestSupport() {
    }

    static final long WAIT_S = 15;

    /** A started client of user with the recorder as listener (and a cache file when given). */
    static ChatClient client(Chatd srv, String user, Recorder rec, Path cache) throws Exception {
        ChatClient.Builder b = ChatClient.builder(srv.url()).token(srv.token(user, "java"))
                                         .backoff(100, 1000).listener(rec);
        if (cache != null)
            b.cachePath(cache.toString());
        ChatClient c = b.build();
        c.start();
        return c;
    }

    static <T> T get(CompletableFuture<T> f) throws Exception {
        return f.get(WAIT_S, TimeUnit.SECONDS);
    }

    /** The ChatException a future failed with. */
    static ChatException failure(CompletableFuture<?> f) throws Exception {
        try {
            f.get(WAIT_S, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            assertTrue(e.getCause() instanceof ChatException, "not a ChatException: " + e.getCause());
            return (ChatException) e.getCause();
        }
        fail("the future succeeded");
        return null;
    }

    /** Polls cond (the engine applies some server changes asynchronously), bounded. */
    static void eventually(String what, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + WAIT_S * 1000;
        while (!cond.getAsBoolean()) {
            if (System.currentTimeMillis() > deadline)
                fail("not within " + WAIT_S + " s: " + what);
            Thread.sleep(20);
        }
    }
}
