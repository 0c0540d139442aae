package org.libchat;

import java.io.BufferedReader;
import java.io.File;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * What the Java binding costs next to the C engine alone, in the same run: events per second
 * delivered to a listener against a C consumer of the engine's queue (the same engine, frames
 * fed by the same C thread over the loopback transport, no server), the CPU the consumer side
 * spends per event, and the cost of one send call.
 *
 * <pre>
 * java -Dlibchat.jni.path=build/bindings/java/libchatjni.so \
 *      -Dlibchat.bench.path=build/bindings/java/bench/libchatjnibench.so \
 *      -cp build/bindings/java/libchat.jar:build/bindings/java/bench/libchat-bench.jar \
 *      org.libchat.EventBench [EVENTS (100000)] [SENDS (20000)] [ROUNDS (3)]
 * </pre>
 *
 * <p>With {@code server} first, the workloads of bench/node-bench.mjs instead, through a chatd
 * on 127.0.0.1 against the C engine's client-events: {@code org.libchat.EventBench server CHATD
 * CLIENT_EVENTS [N (5000)] [ROUNDS (3)]} (see {@link #server}).
 *
 * <p>Each round runs the C side, then the Java side; prints one RESULT line per workload with
 * the medians of ROUNDS: {@code RESULT label=java mode=events kind=typing|message n=N rounds=R
 * c_eps=... java_eps=... ratio=... c_cpu_us=... java_cpu_us=...} and {@code RESULT label=java
 * mode=send n=N rounds=R c_us=... java_us=...}. Counts are checked (every event must arrive,
 * else exit 1); timings are only reported.
 */
public final class EventBench {
    private EventBench() {
    }

    static {
        Native.load(); // the shim first: the bench library reaches Loopback handles of it
        System.load(System.getProperty("libchat.bench.path"));
    }

    /** {elapsed ns, consumer thread CPU ns} of the C-only run. */
    static native long[] cEvents(int n, boolean messages);

    /** Elapsed ns of n sends from C. */
    static native long cSends(int n);

    static native long feedStart(long loopback, int n, boolean messages);

    static native int feedJoin(long feeder);

    /* The server's half of a connect, as bench_native.c plays it. */
    static void handshake(Loopback lb) {
        if (!lb.waitOpen(10000))
            throw new IllegalStateException("the client did not connect");
        for (int answered = 0; answered < 2;) {
            String f = lb.recv(10000);
            if (f == null)
                throw new IllegalStateException("no frame from the engine");
            Map<String, Object> o = Json.object(Json.parse(f));
            Object type = o.get("type"), id = o.get("id");
            if ("auth".equals(type)) {
                lb.send("{\"type\":\"auth_ok\",\"re\":\"" + id + "\",\"v\":1,\"user\":\"alice\","
                        + "\"device\":\"d1\",\"ts\":1764331200000,\"cursor\":0}");
                answered++;
            } else if ("convs".equals(type)) {
                lb.send("{\"type\":\"convs\",\"re\":\"" + id + "\",\"cursor\":1,\"more\":false,\"convs\":["
                        + "{\"conv\":12,\"kind\":\"direct\",\"title\":\"\",\"role\":\"member\",\"head\":0,"
                        + "\"delivered\":0,\"read\":0,\"unread\":0,\"joined\":0,\"members\":["
                        + "{\"user\":\"alice\",\"role\":\"member\",\"delivered\":0,\"read\":0},"
                        + "{\"user\":\"bob\",\"role\":\"member\",\"delivered\":0,\"read\":0}]}]}");
                answered++;
            }
        }
    }

    /* CPU ns so far of the binding's threads (event puller and listener). */
    static long bindingCpu(ThreadMXBean mx) {
        long sum = 0;
        for (Thread t : Thread.getAllStackTraces().keySet())
            if (t.getName().startsWith("libchat-events") || t.getName().startsWith("libchat-listener")) {
                long ns = mx.getThreadCpuTime(t.getId());
                if (ns > 0)
                    sum += ns;
            }
        return sum;
    }

    /** {elapsed ns, binding CPU ns} of the Java run. */
    static long[] javaEvents(int n, boolean messages) throws Exception {
        EventType want = messages ? EventType.MESSAGE : EventType.TYPING;
        CountDownLatch synced = new CountDownLatch(1), done = new CountDownLatch(1);
        AtomicInteger got = new AtomicInteger();
        ThreadMXBean mx = ManagementFactory.getThreadMXBean();
        try (Loopback lb = new Loopback();
             ChatClient c = ChatClient.builder("ws://loopback/").token("tok-alice").autoDelivered(false)
                                      .loopback(lb).listener(ev -> {
                                          if (ev.type() == EventType.SYNCED)
                                              synced.countDown();
                                          else if (ev.type() == want && got.incrementAndGet() == n)
                                              done.countDown();
                                      }).build()) {
            c.start();
            handshake(lb);
            if (!synced.await(10, TimeUnit.SECONDS))
                throw new IllegalStateException("Java run: no SYNCED event");
            long cpu0 = bindingCpu(mx), t0 = System.nanoTime();
            long feeder = feedStart(lb.handle.raw(), n, messages);
            boolean all = done.await(Math.max(30, n / 1000), TimeUnit.SECONDS);
            long t1 = System.nanoTime(), cpu1 = bindingCpu(mx);
            int fed = feedJoin(feeder);
            if (!all || fed != n)
                throw new IllegalStateException("Java run: " + got.get() + " of " + n + " events, " + fed + " frames fed");
            return new long[] {t1 - t0, cpu1 - cpu0};
        }
    }

    static long javaSends(int n) {
        try (Loopback lb = new Loopback();
             ChatClient c = ChatClient.builder("ws://loopback/").token("tok-alice").loopback(lb).build()) {
            long t0 = System.nanoTime();
            for (int i = 0; i < n; i++)
                c.send(12, "message number " + i);
            return System.nanoTime() - t0;
        }
    }

    static double median(List<Double> v) {
        List<Double> s = new ArrayList<>(v);
        s.sort(null);
        return s.get(s.size() / 2);
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("server")) {
            server(args);
            return;
        }
        int events = args.length > 0 ? Integer.parseInt(args[0]) : 100000;
        int sends = args.length > 1 ? Integer.parseInt(args[1]) : 20000;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 3;

        // warm the JIT on a short run of each workload first
        javaEvents(Math.min(events, 2000), false);
        javaEvents(Math.min(events, 2000), true);
        javaSends(Math.min(sends, 2000));

        for (boolean messages : new boolean[] {false, true}) {
            List<Double> cEps = new ArrayList<>(), jEps = new ArrayList<>(), ratio = new ArrayList<>(),
                         cCpu = new ArrayList<>(), jCpu = new ArrayList<>();
            for (int r = 0; r < rounds; r++) { // interleaved: C, then Java, each round
                long[] cr = cEvents(events, messages);
                long[] jr = javaEvents(events, messages);
                cEps.add(events / (cr[0] / 1e9));
                jEps.add(events / (jr[0] / 1e9));
                ratio.add((double) cr[0] / jr[0]);
                cCpu.add(cr[1] / 1e3 / events);
                jCpu.add(jr[1] / 1e3 / events);
            }
            System.out.printf("RESULT label=java mode=events kind=%s n=%d rounds=%d c_eps=%.0f java_eps=%.0f ratio=%.2f "
                              + "c_cpu_us=%.2f java_cpu_us=%.2f%n",
                              messages ? "message" : "typing", events, rounds, median(cEps), median(jEps),
                              median(ratio), median(cCpu), median(jCpu));
        }
        List<Double> cS = new ArrayList<>(), jS = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            cS.add(cSends(sends) / 1e3 / sends);
            jS.add(javaSends(sends) / 1e3 / sends);
        }
        System.out.printf("RESULT label=java mode=send n=%d rounds=%d c_us=%.2f java_us=%.2f%n", sends, rounds,
                          median(cS), median(jS));
    }

    /* ---- through a chatd, against client-events -------------------------------------------- */

    /** Runs cmd to its end (bounded); its stdout, or an exception naming it. */
    static String run(List<String> cmd, String input, long timeoutS) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        try (OutputStream in = p.getOutputStream()) {
            if (input != null)
                in.write(input.getBytes(StandardCharsets.UTF_8));
        }
        StringBuilder out = new StringBuilder();
        Thread reader = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                for (String l; (l = r.readLine()) != null;)
                    out.append(l).append('\n');
            } catch (IOException e) {
                // the process is gone: the exit code says what happened
            }
        });
        reader.start();
        if (!p.waitFor(timeoutS, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new IllegalStateException(cmd.get(1) + ": not done within " + timeoutS + " s");
        }
        reader.join();
        if (p.exitValue() != 0)
            throw new IllegalStateException(cmd + ": exit " + p.exitValue());
        return out.toString();
    }

    static Map<String, String> result(String line) {
        if (line == null || !line.startsWith("RESULT "))
            throw new IllegalStateException("client-events said " + line);
        Map<String, String> m = new HashMap<>();
        for (String kv : line.trim().split("\\s+"))
            if (kv.contains("="))
                m.put(kv.substring(0, kv.indexOf('=')), kv.substring(kv.indexOf('=') + 1));
        return m;
    }

    /* CPU seconds so far of the process's live threads (the engine's too), from the run time
     * in ns of each in /proc (its stat counts 10 ms ticks: too coarse for a short drain). */
    static double processCpu() {
        long ns = 0;
        File[] tasks = new File("/proc/self/task").listFiles();
        for (File t : tasks == null ? new File[0] : tasks) {
            try {
                String[] f = new String(Files.readAllBytes(new File(t, "schedstat").toPath()),
                                        StandardCharsets.UTF_8).trim().split(" ");
                ns += Long.parseLong(f[0]);
            } catch (IOException | RuntimeException e) {
                // a thread that ended meanwhile
            }
        }
        return ns / 1e9;
    }

    /** chatd on an ephemeral port of 127.0.0.1 with users alice and bob, in a temp dir. */
    static final class Chatd implements AutoCloseable {
        final String exe;
        final Path dir;
        final Process proc;
        final String url;
        final Map<String, String> tokens = new HashMap<>();

        Chatd(String exe, String... extra) throws Exception {
            this.exe = exe;
            dir = Files.createTempDirectory("libchat-bench");
            String data = dir.resolve("data").toString();
            for (String u : new String[] {"alice", "bob"})
                run(Arrays.asList(exe, "user", "add", "--data-dir", data, u), "pw\n", 30);
            List<String> cmd = new ArrayList<>(Arrays.asList(exe, "run", "--data-dir", data, "--port", "0",
                                                             "--listen", "127.0.0.1"));
            cmd.addAll(Arrays.asList(extra));
            proc = new ProcessBuilder(cmd).redirectError(new File(dir.toFile(), "chatd.stderr")).start();
            String first = new BufferedReader(new InputStreamReader(proc.getInputStream(), StandardCharsets.UTF_8))
                               .readLine();
            Matcher m = Pattern.compile("chatd listening on 127\\.0\\.0\\.1:(\\d+)").matcher(first == null ? "" : first);
            if (!m.matches()) {
                close();
                throw new IllegalStateException("chatd said " + first);
            }
            url = "ws://127.0.0.1:" + m.group(1) + "/";
        }

        String token(String user, String device) throws Exception {
            String key = user + "/" + device, t = tokens.get(key);
            if (t == null) {
                String[] w = run(Arrays.asList(exe, "token", "--data-dir", dir.resolve("data").toString(), user, device),
                                 null, 30).trim().split("\\s+");
                tokens.put(key, t = w[w.length - 1]);
            }
            return t;
        }

        @Override
        public void close() throws IOException {
            proc.destroy();
            try {
                if (!proc.waitFor(15, TimeUnit.SECONDS))
                    proc.destroyForcibly().waitFor();
            } catch (InterruptedException e) {
                proc.destroyForcibly();
                Thread.currentThread().interrupt();
            }
            try (java.util.stream.Stream<Path> all = Files.walk(dir)) {
                all.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** What the Java client is counting: N messages of a tag; with go, it waits before the first. */
    static final class Count {
        final String tag;
        final int n;
        final CountDownLatch go, done = new CountDownLatch(1);
        int got;
        long t0;
        double cpu0, eps, cpuUs;

        Count(String tag, int n, boolean backlog) {
            this.tag = tag;
            this.n = n;
            this.go = backlog ? new CountDownLatch(1) : null;
        }

        /* [listener thread] */
        void message(String text) throws InterruptedException {
            if (!text.startsWith(tag) || got >= n)
                return;
            if (got++ == 0) {
                if (go != null)
                    go.await();
                t0 = System.nanoTime();
                cpu0 = processCpu();
            }
            if (got == n) {
                eps = (n - 1) / ((System.nanoTime() - t0) / 1e9);
                cpuUs = (processCpu() - cpu0) * 1e6 / (n - 1);
                done.countDown();
            }
        }
    }

    /**
     * The workloads of bench/node-bench.mjs for Java, each round: live (bob's Java client and
     * bob's C client take alice's N messages as they come, at the sender's pace: CPU per message
     * of each whole process), then backlog (neither takes any while alice sends: the Java
     * listener holds the first one, the C one waits on stdin; then Java drains, then C: events
     * per second and CPU per event). Prints ROUND lines and a RESULT line of medians.
     */
    static void server(String[] args) throws Exception {
        if (args.length < 3)
            throw new IllegalArgumentException("usage: EventBench server CHATD CLIENT_EVENTS [N] [ROUNDS]");
        String exe = args[2];
        int n = args.length > 3 ? Integer.parseInt(args[3]) : 5000;
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 3;
        long limitS = 60 + n / 50;
        final Count[] want = new Count[1];
        List<Map<String, Double>> res = new ArrayList<>();
        try (Chatd srv = new Chatd(args[1], "--limit", "send_rate=1000000", "--limit", "send_burst=1000000",
                                   "--limit", "user_send_rate=1000000", "--limit", "user_send_burst=1000000")) {
            CountDownLatch synced = new CountDownLatch(1);
            try (ChatClient bob = ChatClient.builder(srv.url).token(srv.token("bob", "bench-java")).listener(ev -> {
                     if (ev.type() == EventType.SYNCED)
                         synced.countDown();
                     Count w = want[0];
                     try {
                         if (w != null && ev.type() == EventType.MESSAGE)
                             w.message(ev.text());
                     } catch (InterruptedException e) {
                         Thread.currentThread().interrupt();
                     }
                 }).build()) {
                bob.start();
                if (!synced.await(30, TimeUnit.SECONDS))
                    throw new IllegalStateException("the Java client did not sync");
                for (int r = 0; r < rounds; r++) {
                    Map<String, Double> round = new java.util.LinkedHashMap<>();
                    for (boolean backlog : new boolean[] {false, true}) {
                        String tag = "r" + r + (backlog ? "b" : "l");
                        Process c = new ProcessBuilder(exe, backlog ? "recv" : "live", srv.url, srv.token("bob", "bench-c"),
                                                       String.valueOf(n), tag)
                                        .redirectError(ProcessBuilder.Redirect.INHERIT).start();
                        try {
                            BufferedReader cOut = new BufferedReader(new InputStreamReader(c.getInputStream(),
                                                                                           StandardCharsets.UTF_8));
                            String ready = cOut.readLine();
                            if (!"ready".equals(ready))
                                throw new IllegalStateException("client-events: " + ready);
                            Count w = new Count(tag, n, backlog);
                            want[0] = w;
                            run(Arrays.asList(exe, "send", srv.url, srv.token("alice", "bench-send"), "bob",
                                              String.valueOf(n), tag), null, limitS);
                            if (backlog)
                                w.go.countDown();
                            if (!w.done.await(limitS, TimeUnit.SECONDS))
                                throw new IllegalStateException("the Java client got " + w.got + " of " + n);
                            if (backlog) {
                                c.getOutputStream().write("go\n".getBytes(StandardCharsets.UTF_8));
                                c.getOutputStream().flush();
                            }
                            Map<String, String> cr = result(cOut.readLine());
                            double cCpu = Double.parseDouble(cr.get("cpu_us_per_event"));
                            if (backlog) {
                                round.put("c_eps", Double.parseDouble(cr.get("events_per_s")));
                                round.put("java_eps", w.eps);
                                round.put("c_cpu_us", cCpu);
                                round.put("java_cpu_us", w.cpuUs);
                            } else {
                                round.put("live_eps", w.eps);
                                round.put("live_c_cpu_us", cCpu);
                                round.put("live_java_cpu_us", w.cpuUs);
                            }
                        } finally {
                            want[0] = null;
                            c.destroyForcibly().waitFor();
                        }
                    }
                    res.add(round);
                    StringBuilder line = new StringBuilder("ROUND " + r);
                    for (Map.Entry<String, Double> e : round.entrySet())
                        line.append(String.format(" %s=%.2f", e.getKey(), e.getValue()));
                    System.out.println(line);
                }
            }
        }
        List<Double> ratio = new ArrayList<>();
        for (Map<String, Double> x : res)
            ratio.add(x.get("java_eps") / x.get("c_eps"));
        System.out.printf("RESULT label=java-server events=%d rounds=%d live_events_per_s=%.0f live_c_cpu_us_per_event=%.2f "
                          + "live_java_cpu_us_per_event=%.2f c_events_per_s=%.0f java_events_per_s=%.0f ratio=%.2f "
                          + "c_cpu_us_per_event=%.2f java_cpu_us_per_event=%.2f%n",
                          n, rounds, med(res, "live_eps"), med(res, "live_c_cpu_us"), med(res, "live_java_cpu_us"),
                          med(res, "c_eps"), med(res, "java_eps"), median(ratio), med(res, "c_cpu_us"),
                          med(res, "java_cpu_us"));
    }

    static double med(List<Map<String, Double>> res, String key) {
        List<Double> v = new ArrayList<>();
        for (Map<String, Double> x : res)
            v.add(x.get(key));
        return median(v);
    }
}
