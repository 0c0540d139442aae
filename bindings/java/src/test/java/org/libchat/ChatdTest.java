package org.libchat;

import java.nio.file.Path;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.io.TempDir;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Test classes with a fresh chatd per test (in its own temporary directory) that must not die. */
abstract class ChatdTest {
    @TempDir
    Path tmp;
    Chatd srv;

    /** chatd run options of this class's tests. */
    String[] chatdArgs() {
        return new String[0];
    }

    @BeforeEach
    void startChatd() throws Exception {
        srv = new Chatd(tmp, chatdArgs());
    }

    @AfterEach
    void stopChatd() {
        boolean alive = srv.alive();
        srv.close();
        assertTrue(alive, "chatd died during the test\n" + srv.stderrTail());
    }
}
