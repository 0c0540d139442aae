package org.libchat;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A real chatd for the tests: users alice, bob and carol (password "pw") in a temporary data
 * directory, listening on 127.0.0.1 on a port of the system's choosing, with tokens issued by
 * `chatd token`. The binary comes from the system property "chatd" (set by meson).
 */
final class Chatd implements AutoCloseable {
    static final String PASSWORD = "pw";
    private static final Pattern LISTENING = Pattern.compile("^chatd listening on 127\\.0\\.0\\.1:(\\d+)$");

    private final String exe;
    private final Path dataDir;
    private final Path stderr;
    private final Map<String, String> tokens = new HashMap<>();
    private Process proc;
    private int port;

    /** Creates the users and starts chatd; extra: more `chatd run` options. */
    Chatd(Path dir, String... extra) throws Exception {
        exe = System.getProperty("chatd");
        if (exe == null || !new File(exe).canExecute())
            throw new IllegalStateException("system property chatd must name the chatd binary, got " + exe);
        dataDir = dir.resolve("data");
        stderr = dir.resolve("chatd.stderr");
        for (String u : new String[] {"alice", "bob", "carol"})
            run(PASSWORD + "\n", "user", "add", "--data-dir", dataDir.toString(), u);
        start(extra);
    }

    private String run(String input, String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(exe);
        cmd.addAll(Arrays.asList(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        childEnv(pb);
        Process p = pb.start();
        try (OutputStream in = p.getOutputStream()) {
            if (input != null)
                in.write(input.getBytes(StandardCharsets.UTF_8));
        }
        CompletableFuture<String> out = CompletableFuture.supplyAsync(() -> readAll(p));
        if (!p.waitFor(30, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException("chatd " + String.join(" ", args) + ": timed out");
        }
        String text = out.get(5, TimeUnit.SECONDS);
        if (p.exitValue() != 0)
            throw new IllegalStateException("chatd " + String.join(" ", args) + ": " + text);
        return text;
    }

    /* Without an LD_PRELOAD meant for the JVM (a sanitizer runtime for the shim): chatd links
     * its own. */
    private static void childEnv(ProcessBuilder pb) {
        pb.environment().remove("LD_PRELOAD");
    }

    private static String readAll(Process p) {
        try {
            byte[] b = new byte[8192];
            StringBuilder sb = new StringBuilder();
            int n;
            while ((n = p.getInputStream().read(b)) > 0)
                sb.append(new String(b, 0, n, StandardCharsets.UTF_8));
            return sb.toString();
        } catch (IOException e) {
            return e.toString();
        }
    }

    private void start(String... extra) throws Exception {
        List<String> cmd = new ArrayList<>(Arrays.asList(exe, "run", "--data-dir", dataDir.toString(),
                                                         "--port", "0", "--listen", "127.0.0.1"));
        cmd.addAll(Arrays.asList(extra));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.appendTo(stderr.toFile()))
                                                   .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")));
        childEnv(pb);
        proc = pb.start();
        BufferedReader out = new BufferedReader(new InputStreamReader(proc.getInputStream(), StandardCharsets.UTF_8));
        CompletableFuture<String> first = CompletableFuture.supplyAsync(() -> {
            try {
                return out.readLine();
            } catch (IOException e) {
                return null;
            }
        });
        String line;
        try {
            line = first.get(20, TimeUnit.SECONDS);
        } catch (Exception e) {
            line = null;
        }
        Matcher m = LISTENING.matcher(line == null ? "" : line);
        if (!m.matches()) {
            close();
            throw new IllegalStateException("chatd did not start: " + line + "\n" + stderrTail());
        }
        port = Integer.parseInt(m.group(1));
        // keep reading stdout so that chatd never blocks on a full pipe
        Thread drain = new Thread(() -> {
            try {
                while (out.readLine() != null) {
                    // discard
                }
            } catch (IOException e) {
                // the process ended
            }
        }, "chatd-stdout");
        drain.setDaemon(true);
        drain.start();
    }

    String url() {
        return "ws://127.0.0.1:" + port + "/";
    }

    synchronized String token(String user, String device) throws Exception {
        String key = user + "/" + device;
        String t = tokens.get(key);
        if (t == null) {
            String[] words = run(null, "token", "--data-dir", dataDir.toString(), user, device).trim().split("\\s+");
            t = words[words.length - 1];
            tokens.put(key, t);
        }
        return t;
    }

    boolean alive() {
        return proc != null && proc.isAlive();
    }

    String stderrTail() {
        try {
            byte[] b = Files.readAllBytes(stderr);
            int from = Math.max(0, b.length - 3000);
            return "chatd stderr:\n" + new String(b, from, b.length - from, StandardCharsets.UTF_8);
        } catch (IOException e) {
            return "(no stderr)";
        }
    }

    @Override
    public void close() {
        if (proc == null)
            return;
        proc.destroy(); // SIGTERM
        try {
            if (!proc.waitFor(15, TimeUnit.SECONDS)) {
                proc.destroyForcibly();
                proc.waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            proc.destroyForcibly();
            Thread.currentThread().interrupt();
        }
        proc = null;
    }
}
