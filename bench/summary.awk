# Summary of a run-all.sh log (awk -v tops=... -v fixed=... -f summary.awk LOG): every
# server of a 1:1 or group scenario against the raw relay of the same run (label relay-raw:
# forward only, the physical limit of the loop), and against the acking relay (relay-ack,
# which pays chatd's second write). Four tables:
#   ceilings   the highest delivered rate each run passed, as a ratio to both relays
#   CPU        server CPU per delivered message at the highest offered rate both the server
#              and the raw relay passed, as a multiple of the raw relay's
#   medians    (ROUNDS > 1) each ratio's median over the rounds, every round's in brackets
#   headline   server CPU per delivered message at the fixed offered rates (below every
#              ceiling: steady on a noisy machine), then the ceiling; medians over the rounds
#
# Variables: tops "MODE CONNS=TOP_RATE;..." the top step of each grid (a server that passed it
# has a higher ceiling than the table shows); fixed "R1,R2" the headline's rates (5000,15000);
# base and ack, the two relays' labels (relay-raw, relay-ack).
#
# A step line is chat-bench's: label conns offered sent delivered p50 p99 p99.9 max lost errs
# closes srvCPU% genCPU% srvRSSMB. Its run's RESULT line follows it and gives the mode, bound
# and text size. A run whose texts are not the default 40 bytes is a scenario of its own: its
# mode is shown as MODE/tN (e.g. pairs/t100), so its servers pair with relays at that size. A
# step passes with p99 under its run's bound, nothing lost, no error and no close.
#
# A log of several rounds (run-all.sh with ROUNDS=N writes "## round K of N" before each) pairs
# each server with the relays of its own round: one round's ratio moves by 10-30 % on these
# machines, so the medians are the figures to read.

BEGIN {
    rnd = 1 # a log without round lines is one round
    if (base == "") base = "relay-raw"
    if (ack == "") ack = "relay-ack"
    if (fixed == "") fixed = "5000,15000"
    nf = split(fixed, fx, ",")
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
        who = key SUBSEP f["label"]
        id = who SUBSEP rnd
        if (!(who in seen)) { seen[who] = 1; servers[++nsv] = who }
        if (!(id in ceil)) order[++nr] = id
        ceil[id] = f["best_delivered"]
        row[id] = sprintf("%-10s %6s %-15s %12s %10s %8s", mode, f["conns"], f["label"],
                          f["best_delivered"], f["p99_ms"], f["srv_cpu"])
        mark[id] = (f["best_offered"] == top[key] ? "  *" : "") \
                   (f["bound_ms"] != 100 ? "  (p99 bound " f["bound_ms"] " ms)" : "")
        # The run's passed steps: CPU microseconds per delivered message, by offered rate.
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
# The run of relay label rl in the scenario and round of run id.
function relay_of(id, rl,    p) {
    split(id, p, SUBSEP)
    return p[1] SUBSEP rl SUBSEP p[3]
}
# A ceiling ratio to relay rl ("" when that relay did not run or passed nothing).
function ceil_ratio(id, rl,    r) {
    r = relay_of(id, rl)
    return (r in ceil) && ceil[r] > 0 ? ceil[id] / ceil[r] : ""
}
# The highest offered rate run id and the raw relay both passed (0: none).
function common_rate(id,    r, c, q, best) {
    r = relay_of(id, base)
    best = 0
    for (c in cost) {
        split(c, q, SUBSEP)
        if (q[1] SUBSEP q[2] SUBSEP q[3] == id && q[4] + 0 > best && ((r, q[4]) in cost))
            best = q[4] + 0
    }
    return best
}
# CPU per message of run id at rate as a multiple of the raw relay's ("" when either is missing).
function cost_ratio(id, rate,    r) {
    r = relay_of(id, base)
    if (!((id, rate) in cost) || !((r, rate) in cost) || cost[r, rate] <= 0)
        return ""
    return cost[id, rate] / cost[r, rate]
}
function fmt(x, spec) { return x == "" ? "-" : sprintf(spec, x) }
# The median over the rounds of what val(kind) gives for server who, with each round's value
# in brackets (each[who] after the call).
function over_rounds(who, kind, arg, spec,    r, k, x, v, e) {
    k = 0; e = ""
    for (r = 1; r <= (rounds ? rounds : 1); r++) {
        x = ""
        if ((who SUBSEP r) in ceil) x = value(who SUBSEP r, kind, arg)
        if (x != "") v[++k] = x
        e = e (r > 1 ? " " : "") fmt(x, spec)
    }
    each = "[" e "]"
    return k ? median(v, k) : ""
}
function value(id, kind, arg) {
    if (kind == "ceil") return ceil[id] # 0: passed no step
    if (kind == "ceil_x") return ceil_ratio(id, arg)
    if (kind == "cost") return ((id, arg) in cost) ? cost[id, arg] : ""
    if (kind == "cost_x") return cost_ratio(id, arg)
    if (kind == "common_x") return cost_ratio(id, common_rate(id))
    return ""
}
END {
    print ""
    print "== ceilings: highest delivered rate with p99 under the bound, no loss, no error =="
    printf "%-10s %6s %-15s %12s %10s %8s %7s %7s\n", "mode", "conns", "server", "delivered/s",
           "p99 ms", "srvCPU%", "x raw", "x ack"
    last = 0
    for (i = 1; i <= nr; i++) {
        id = order[i]
        split(id, p, SUBSEP)
        if (rounds > 1 && p[3] != last) printf "-- round %d\n", last = p[3]
        printf "%s %7s %7s%s\n", row[id], fmt(ceil_ratio(id, base), "%.2f"),
               fmt(ceil_ratio(id, ack), "%.2f"), mark[id]
        marked += mark[id] ~ /\*/
    }
    if (marked)
        print "* passed the top step of its grid: the ceiling is higher (raise RATES_*); a ratio to such a relay is too high"
    for (i = 1; i <= m; i++) print other[i]

    print ""
    print "== server CPU per delivered message at the highest offered rate both the server and the raw relay passed =="
    printf "%-10s %6s %-15s %10s %10s %10s %8s\n", "mode", "conns", "server", "at rate", "us/msg",
           "raw us", "x raw"
    last = 0
    for (i = 1; i <= nr; i++) {
        id = order[i]
        split(id, p, SUBSEP)
        if (rounds > 1 && p[3] != last) printf "-- round %d\n", last = p[3]
        if (p[2] == base) continue
        split(p[1], mk, " ")
        rate = common_rate(id)
        if (rate == 0) {
            printf "%-10s %6s %-15s %10s\n", mk[1], mk[2], p[2], "-"
            continue
        }
        printf "%-10s %6s %-15s %10d %10.2f %10.2f %8s\n", mk[1], mk[2], p[2], rate,
               cost[id, rate], cost[relay_of(id, base), rate], fmt(cost_ratio(id, rate), "%.2f")
    }

    if (rounds > 1) {
        print ""
        printf "== median over %d rounds of each ratio to the raw relay of the same round", rounds
        print " (each round's in brackets) =="
        printf "%-10s %6s %-15s %8s %-24s %8s\n", "mode", "conns", "server", "ceiling", "", "per msg"
        for (i = 1; i <= nsv; i++) {
            split(servers[i], p, SUBSEP)
            if (p[2] == base) continue
            split(p[1], mk, " ")
            line = sprintf("%-10s %6s %-15s", mk[1], mk[2], p[2])
            x = over_rounds(servers[i], "ceil_x", base, "%.2f")
            line = line sprintf(" %8s %-24s", fmt(x, "%.2f"), each)
            x = over_rounds(servers[i], "common_x", "", "%.2f")
            line = line sprintf(" %8s %-24s", fmt(x, "%.2f"), each)
            sub(/ +$/, "", line)
            print line
        }
    }

    print ""
    printf "== headline: server CPU per delivered message (us) at fixed offered rates, then the ceiling"
    print (rounds > 1 ? sprintf("; medians over %d rounds", rounds) : "") " =="
    print "(x raw: against the raw relay of the same round, at the same rate; x ack: the acking relay; - : not passed)"
    hdr = sprintf("%-10s %6s %-15s", "mode", "conns", "server")
    for (j = 1; j <= nf; j++)
        hdr = hdr sprintf(" %9s %6s", "us@" fx[j], "x raw")
    print hdr sprintf(" %12s %6s %6s", "ceiling/s", "x raw", "x ack")
    for (i = 1; i <= nsv; i++) {
        split(servers[i], p, SUBSEP)
        split(p[1], mk, " ")
        line = sprintf("%-10s %6s %-15s", mk[1], mk[2], p[2])
        for (j = 1; j <= nf; j++)
            line = line sprintf(" %9s %6s", fmt(over_rounds(servers[i], "cost", fx[j], "%.2f"), "%.2f"),
                                fmt(over_rounds(servers[i], "cost_x", fx[j], "%.2f"), "%.2f"))
        line = line sprintf(" %12s %6s %6s", fmt(over_rounds(servers[i], "ceil", "", "%.0f"), "%.0f"),
                            fmt(over_rounds(servers[i], "ceil_x", base, "%.2f"), "%.2f"),
                            fmt(over_rounds(servers[i], "ceil_x", ack, "%.2f"), "%.2f"))
        print line
    }
}
