#!/bin/sh
# The run-all summary on a fixed log: the ceilings and their ratios, and the CPU per message at
# the highest rate both a server and the relay passed (a step fails on p99 over the bound, a
# lost message, an error or a close). Usage: summary_test.sh SUMMARY_AWK
set -eu
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat >"$T/log" <<'LOG'
label           conns offered/s    sent/s delivered/s    p50ms    p99ms  p99.9ms    maxms    lost   errs closes srvCPU% genCPU% srvRSSMB
relay            1000     10000     10000       10000     0.40     1.31     4.72     7.69       0      0      0      20      30      8.7
relay            1000     20000     20000       20000     0.40     1.31     4.72     7.69       0      0      0      30      40      8.7
relay            1000     30000     30000       29000   200.00   300.00   300.00   300.00       0      0      0      99      50      8.7
relay: forwarded 123 frames, dropped 0
RESULT label=relay mode=pairs conns=1000 best_offered=20000 best_delivered=20000 p99_ms=1.31 srv_cpu=30 bound_ms=100 best10_delivered=20000
chatd-mem        1000     10000     10000       10000     0.40     2.00     4.72     7.69       0      0      0      25      30      8.7
chatd-mem        1000     20000     20000       20000     0.40    50.00    60.00    70.00       0      0      0      50      40      8.7
RESULT label=chatd-mem mode=pairs conns=1000 best_offered=20000 best_delivered=20000 p99_ms=50.00 srv_cpu=50 bound_ms=100 best10_delivered=10000
chatd-normal     1000     10000     10000       10000     0.40     2.00     4.72     7.69       0      0      0      40      30      8.7
chatd-normal     1000     20000     20000       19000     0.40     9.00     9.00     9.00       0      1      0      60      40      8.7
RESULT label=chatd-normal mode=pairs conns=1000 best_offered=10000 best_delivered=10000 p99_ms=2.00 srv_cpu=40 bound_ms=100 best10_delivered=10000
chatd-late       1000     40000     40000       40000     0.40     2.00     4.72     7.69       0      0      0      40      30      8.7
RESULT label=chatd-late mode=pairs conns=1000 best_offered=40000 best_delivered=40000 p99_ms=2.00 srv_cpu=40 bound_ms=100 best10_delivered=40000
LOG
awk -v tops="pairs 1000=30000" -f "$1" "$T/log" >"$T/out"
cat "$T/out"
expect() {
    grep -Eq "$1" "$T/out" || { echo "summary_test: no line matches: $1" >&2; exit 1; }
}
# ceilings and ratios to the relay
expect '^pairs +1000 relay +20000 +1\.31 +30 +1\.00$'
expect '^pairs +1000 chatd-mem +20000 +50\.00 +50 +1\.00$'
expect '^pairs +1000 chatd-normal +10000 +2\.00 +40 +0\.50$'
# cost: chatd-mem at 20K (50 % / 20K = 25 us) against the relay's 15 us there
expect '^pairs +1000 chatd-mem +20000 +25\.00 +15\.00 +0\.60$'
# chatd-normal's 20K step had an error: 10K (40 us) against the relay's 20 us
expect '^pairs +1000 chatd-normal +10000 +40\.00 +20\.00 +0\.50$'
# no rate in common with a passed relay step
expect '^pairs +1000 chatd-late +-$'

# Rounds (ROUNDS=3): each server against the relay of its own round, then the medians.
step() { # label rate delivered cpu
    printf '%-12s 1000 %9s %9s %11s 0.40 1.31 4.72 7.69 0 0 0 %6s 30 8.7\n' "$1" "$2" "$2" "$3" "$4"
}
result() { # label best
    echo "RESULT label=$1 mode=pairs conns=1000 best_offered=$2 best_delivered=$2 p99_ms=1.31" \
        "srv_cpu=50 bound_ms=100"
}
{
    # round 1: relay 20K (20 us at 10K), chatd 10K (40 us at 10K): 0.50, cost 0.50
    echo "## round 1 of 3"
    step relay 10000 10000 20; step relay 20000 20000 40; result relay 20000
    step chatd-mem 10000 10000 40; result chatd-mem 10000
    # round 2: relay 10K (10 us), chatd 8K: 0.80; chatd's step delivered 8000 (50 us): 0.20
    echo "## round 2 of 3"
    step relay 10000 10000 10; result relay 10000
    step chatd-mem 10000 8000 40; result chatd-mem 8000
    # round 3: relay 10K (20 us), chatd 6K: 0.60; chatd's step (30 us) against 20: 0.67
    echo "## round 3 of 3"
    step relay 10000 10000 20; result relay 10000
    step chatd-mem 10000 10000 30; result chatd-mem 6000
} >"$T/rounds"
awk -f "$1" "$T/rounds" >"$T/out"
cat "$T/out"
expect '^-- round 2$'
expect '^pairs +1000 chatd-mem +8000 +1\.31 +50 +0\.80$'
expect '^pairs +1000 chatd-mem +10000 +50\.00 +10\.00 +0\.20$'
expect '^== median over 3 rounds'
expect '^pairs +1000 chatd-mem +0\.60 +\[0\.50 0\.80 0\.60\] +0\.50 +\[0\.50 0\.20 0\.67\]$'

# A run with longer texts (RESULT text=100) is its own scenario, pairs/t100: its servers pair
# with the relay run at that size, not with the default-text relay of the same connections.
{
    step relay 10000 10000 20; echo "$(result relay 20000) text=40"
    step relay 10000 10000 20; echo "$(result relay 40000) text=100"
    step chatd-mem 10000 10000 25; echo "$(result chatd-mem 10000) text=100"
    step chatd-mem 10000 10000 40; echo "$(result chatd-mem 10000) text=40"
} >"$T/text"
awk -v tops="pairs 1000=50000;pairs/t100 1000=40000" -f "$1" "$T/text" >"$T/out"
cat "$T/out"
expect '^pairs +1000 chatd-mem +10000 +1\.31 +50 +0\.50$'
expect '^pairs/t100 +1000 relay +40000 +1\.31 +50 +1\.00  \*$'
expect '^pairs/t100 +1000 chatd-mem +10000 +1\.31 +50 +0\.25$'
expect '^pairs/t100 +1000 chatd-mem +10000 +25\.00 +20\.00 +0\.80$'
echo "summary_test: ok"
