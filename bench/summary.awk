# Summary of a run-all.sh log (awk -v tops=... -f summary.awk LOG): the ceilings, each as a
# ratio to the relay of the same run, then the server CPU per delivered message at the highest
# rate a server and the relay both passed. The second is the steadier measure: a ceiling is one
# step of a noisy machine, the cost per message is averaged over a whole step below it.
#
# tops: "MODE CONNS=TOP_RATE;..." the top step of each grid (a server that passed it has a
# higher ceiling than the table shows).
#
# A step line is chat-bench's: label conns offered sent delivered p50 p99 p99.9 max lost errs
# closes srvCPU% genCPU% srvRSSMB. Its run's RESULT line follows it and gives the mode and bound.
# A run whose texts are not the default 40 bytes is a scenario of its own: its mode is shown as
# MODE/tN (e.g. pairs/t100), so its servers pair with the relay run at the same text size.
#
# A log of several rounds (run-all.sh with ROUNDS=N writes "## round K of N" before each) is
# summarised round by round, each server against the relay of its own round, then the median
# of each ratio over the rounds: one round's ratio moves by 10-30 % on these machines.

BEGIN {
    rnd = 1 # a log without round lines is one round
    nt = split(tops, t, ";")
    for (i = 1; i <= nt; i++) { split(t[i], kv, "="); top[kv[1]] = kv[2] }
}
/^## round [0-9]+ of [0-9]+/ {
    rnd = $3 + 0
    if (rnd > rounds) rounds = rnd
    next
}
NF == 15 && $2 ~ /^[0-9]+$/ && $3 ~ /^[0-9]+$/ && $5 ~ /^[0-9]+$/ {
    ns++
    s_p99[ns] = $7; s_ok[ns] = ($10 == 0 && $11 == 0 && $12 == 0)
    s_rate[ns] = $3; s_deliv[ns] = $5; s_cpu[ns] = $13
    next
}
/^RESULT/ {
    delete f
    for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
    if (f["mode"] == "pairs" || f["mode"] == "group") {
        mode = f["mode"] (f["text"] != "" && f["text"] != 40 ? "/t" f["text"] : "")
        key = mode " " f["conns"]
        if (f["label"] == "relay") relay[key, rnd] = f["best_delivered"]
        row[++n] = sprintf("%-10s %6s %-15s %12s %10s %8s", mode, f["conns"], f["label"],
                           f["best_delivered"], f["p99_ms"], f["srv_cpu"])
        rk[n] = key; rv[n] = f["best_delivered"]; rl[n] = f["label"]; rr[n] = rnd
        at_top[n] = (f["best_offered"] == top[key])
        # The run's passed steps: CPU microseconds per delivered message, by offered rate.
        id = key SUBSEP f["label"] SUBSEP rnd
        if (!(id in runs)) { runs[id] = 1; order[++nr] = id }
        for (i = 1; i <= ns; i++)
            if (s_ok[i] && s_p99[i] <= f["bound_ms"] + 0 && s_deliv[i] > 0)
                cost[id, s_rate[i]] = s_cpu[i] * 1e4 / s_deliv[i]
    } else if (f["mode"] == "idle") {
        other[++m] = sprintf("idle %s conns, %s: %s KiB/conn (%s authenticated)", f["conns"],
                             f["label"], f["kib_per_conn"], f["authed"])
    } else if (f["mode"] == "storm") {
        other[++m] = sprintf("storm %s users x %s msgs, %s: all synced in %s s (%s synced, %s wrong)",
                             f["users"], f["msgs"], f["label"], f["all_synced_s"], f["synced"], f["mismatch"])
    } else if (f["mode"] == "history") {
        other[++m] = sprintf("history over the wire, %s: p50 %s ms, p99 %s ms", f["label"], f["p50_ms"], f["p99_ms"])
    } else if (f["mode"] == "history-store") {
        other[++m] = sprintf("history in the store (%s msgs): p50 %s ms, p99 %s ms", f["messages"], f["p50_ms"], f["p99_ms"])
    }
    ns = 0
}
# The median of the n values v[1..n] (sorted in place).
function median(v, n,    i, j, x) {
    for (i = 2; i <= n; i++) {
        x = v[i]
        for (j = i - 1; j >= 1 && v[j] > x; j--) v[j + 1] = v[j]
        v[j + 1] = x
    }
    return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
# Remember one round's ratio of a server (for the medians), in first-seen order of servers.
function keep(tab, who, r, x) {
    if (!(who in seen)) { seen[who] = 1; servers[++nsv] = who }
    tab[who, r] = x
}
END {
    print ""
    print "== summary: highest delivered rate with p99 under the bound, no loss, no error =="
    printf "%-10s %6s %-15s %12s %10s %8s %8s\n", "mode", "conns", "server", "delivered/s", "p99 ms", "srvCPU%", "x relay"
    for (i = 1; i <= n; i++) {
        if (rounds > 1 && rr[i] != rr[i - 1]) printf "-- round %d\n", rr[i]
        r = relay[rk[i], rr[i]]
        printf "%s %8s%s\n", row[i], (r > 0 ? sprintf("%.2f", rv[i] / r) : "-"), (at_top[i] ? "  *" : "")
        marked += at_top[i]
        if (r > 0 && rl[i] != "relay") keep(ceil_x, rk[i] SUBSEP rl[i], rr[i], rv[i] / r)
    }
    if (marked)
        print "* passed the top step of its grid: the ceiling is higher (raise RATES_*); a ratio to such a relay is too high"
    for (i = 1; i <= m; i++) print other[i]

    print ""
    print "== server CPU per delivered message at the highest offered rate both the server and the relay passed =="
    printf "%-10s %6s %-15s %10s %10s %10s %12s\n", "mode", "conns", "server", "at rate", "us/msg", "relay us", "relay/server"
    for (i = 1; i <= nr; i++) {
        split(order[i], p, SUBSEP)
        if (rounds > 1 && p[3] != last_round) printf "-- round %d\n", last_round = p[3]
        if (p[2] == "relay") continue
        rid = p[1] SUBSEP "relay" SUBSEP p[3]
        best = 0
        for (c in cost) {
            split(c, q, SUBSEP)
            if (q[1] SUBSEP q[2] SUBSEP q[3] == order[i] && q[4] + 0 > best &&
                ((rid, q[4]) in cost))
                best = q[4] + 0
        }
        split(p[1], mk, " ")
        if (best == 0) {
            printf "%-10s %6s %-15s %10s\n", mk[1], mk[2], p[2], "-"
            continue
        }
        us = cost[order[i], best]; ru = cost[rid, best]
        printf "%-10s %6s %-15s %10d %10.2f %10.2f %12.2f\n", mk[1], mk[2], p[2], best, us, ru,
               (us > 0 ? ru / us : 0)
        if (us > 0) keep(cost_x, p[1] SUBSEP p[2], p[3], ru / us)
    }
    if (rounds < 2)
        exit
    print ""
    printf "== median over %d rounds of each ratio to the relay of the same round", rounds
    print " (each round's in brackets) =="
    printf "%-10s %6s %-15s %8s %-24s %8s\n", "mode", "conns", "server", "ceiling", "", "per msg"
    for (i = 1; i <= nsv; i++) {
        split(servers[i], p, SUBSEP)
        split(p[1], mk, " ")
        line = sprintf("%-10s %6s %-15s", mk[1], mk[2], p[2])
        for (tb = 1; tb <= 2; tb++) {
            k = 0; each = ""
            for (r = 1; r <= rounds; r++) {
                has = tb == 1 ? ((servers[i], r) in ceil_x) : ((servers[i], r) in cost_x)
                if (has) v[++k] = tb == 1 ? ceil_x[servers[i], r] : cost_x[servers[i], r]
                each = each (r > 1 ? " " : "") (has ? sprintf("%.2f", v[k]) : "-")
            }
            line = line sprintf(" %8s %-24s", k ? sprintf("%.2f", median(v, k)) : "-", "[" each "]")
        }
        sub(/ +$/, "", line)
        print line
    }
}
