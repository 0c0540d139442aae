package org.libchat;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
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
 * Prints one RESULT line per workload (the best of ROUNDS for each side):
 * {@code RESULT label=java mode=events kind=typing|message n=N c_eps=... java_eps=...
 * ratio=... c_cpu_us=... java_cpu_us=...} and {@code RESULT label=java mode=send n=N
 * c_us=... java_us=...}. Counts are checked (every event must arrive, else exit 1); timings are
 * only reported.
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

    static long best(List<Long> v) {
        long b = Long.MAX_VALUE;
        for (long x : v)
            b = Math.min(b, x);
        return b;
    }

    public static void main(String[] args) throws Exception {
        int events = args.length > 0 ? Integer.parseInt(args[0]) : 100000;
        int sends = args.length > 1 ? Integer.parseInt(args[1]) : 20000;
        int rounds = args.length > 2 ? Integer.parseInt(args[2]) : 3;

        // warm the JIT on a short run of each workload first
        javaEvents(Math.min(events, 2000), false);
        javaEvents(Math.min(events, 2000), true);
        javaSends(Math.min(sends, 2000));

        for (boolean messages : new boolean[] {false, true}) {
            List<Long> cT = new ArrayList<>(), cCpu = new ArrayList<>(), jT = new ArrayList<>(), jCpu = new ArrayList<>();
            for (int r = 0; r < rounds; r++) {
                long[] cr = cEvents(events, messages);
                long[] jr = javaEvents(events, messages);
                cT.add(cr[0]);
                cCpu.add(cr[1]);
                jT.add(jr[0]);
                jCpu.add(jr[1]);
            }
            double cEps = events / (best(cT) / 1e9), jEps = events / (best(jT) / 1e9);
            System.out.printf("RESULT label=java mode=events kind=%s n=%d c_eps=%.0f java_eps=%.0f ratio=%.2f "
                              + "c_cpu_us=%.2f java_cpu_us=%.2f%n",
                              messages ? "message" : "typing", events, cEps, jEps, jEps / cEps,
                              best(cCpu) / 1e3 / events, best(jCpu) / 1e3 / events);
        }
        List<Long> cS = new ArrayList<>(), jS = new ArrayList<>();
        for (int r = 0; r < rounds; r++) {
            cS.add(cSends(sends));
            jS.add(javaSends(sends));
        }
        System.out.printf("RESULT label=java mode=send n=%d c_us=%.2f java_us=%.2f%n", sends,
                          best(cS) / 1e3 / sends, best(jS) / 1e3 / sends);
    }
}
