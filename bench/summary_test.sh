#!/bin/sh
# The run-all summary on fixed logs: the ceilings and their ratios to the raw and the acking
# relay, the CPU per message at the highest rate both a server and the raw relay passed, the
# medians over rounds and the headline at fixed rates (a step fails on p99 over its run's
# bound, a lost message, an error or a close). Usage: summary_test.sh SUMMARY_AWK
set -eu
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
step() { # label rate delivered cpu [p99 [errs]]
    printf '%-12s 1000 %9s %9s %11s 0.40 %s 4.72 7.69 0 %s 0 %6s 30 8.7\n' "$1" "$2" "$2" "$3" \
        "${5:-1.31}" "${6:-0}" "$4"
}
result() { # label best [bound]
    echo "RESULT label=$1 mode=pairs conns=1000 best_offered=$2 best_delivered=$2 p99_ms=1.31" \
        "srv_cpu=50 bound_ms=${3:-100}"
}
expect() {
    grep -Eq -- "$1" "$T/out" || { echo "summary_test: no line matches: $1" >&2; exit 1; }
}
reject() {
    ! grep -Eq -- "$1" "$T/out" || { echo "summary_test: a line matches: $1" >&2; exit 1; }
}
{
    echo "label           conns offered/s    sent/s delivered/s    p50ms    p99ms  p99.9ms    maxms    lost   errs closes srvCPU% genCPU% srvRSSMB"
    # the raw relay: 20 us at 10K, 15 us at 20K, 30K over the bound
    step relay-raw 10000 10000 20; step relay-raw 20000 20000 30; step relay-raw 30000 29000 99 300
    echo "relay: forwarded 123 frames, dropped 0"
    result relay-raw 20000
    # the acking relay: 25 us at 10K; 20K over the bound
    step relay-ack 10000 10000 25; step relay-ack 20000 20000 40 150; result relay-ack 10000
    step chatd-mem 10000 10000 25; step chatd-mem 20000 20000 50 50.00; result chatd-mem 20000
    # an error at 20K: that step does not count
    step chatd-normal 10000 10000 40 2.00; step chatd-normal 20000 19000 60 9.00 1
    result chatd-normal 10000
    step chatd-late 40000 40000 40; result chatd-late 40000
    # a run with a looser bound: its 180 ms step passes
    step mosquitto-q1 10000 10000 30 180; step mosquitto-q1 20000 20000 40 400
    result mosquitto-q1 10000 250
    # a server that passed no step: a ceiling of 0
    step chatd-none 10000 10000 90 500; result chatd-none 0
} >"$T/log"
awk -v tops="pairs 1000=30000" -v fixed=10000,20000 -f "$1" "$T/log" >"$T/out"
cat "$T/out"
# ceilings, against the raw relay and the acking one
expect '^pairs +1000 relay-raw +20000 +1\.31 +50 +1\.00 +2\.00$'
expect '^pairs +1000 relay-ack +10000 +1\.31 +50 +0\.50 +1\.00$'
expect '^pairs +1000 chatd-mem +20000 +1\.31 +50 +1\.00 +2\.00$'
expect '^pairs +1000 chatd-normal +10000 +1\.31 +50 +0\.50 +1\.00$'
expect '^pairs +1000 mosquitto-q1 +10000 +1\.31 +50 +0\.50 +1\.00  \(p99 bound 250 ms\)$'
# cost: chatd-mem at 20K (50 % / 20K = 25 us) against the raw relay's 15 us there
expect '^pairs +1000 chatd-mem +20000 +25\.00 +15\.00 +1\.67$'
# chatd-normal's 20K step had an error: 10K (40 us) against the raw relay's 20 us
expect '^pairs +1000 chatd-normal +10000 +40\.00 +20\.00 +2\.00$'
expect '^pairs +1000 relay-ack +10000 +25\.00 +20\.00 +1\.25$'
# under its own bound
expect '^pairs +1000 mosquitto-q1 +10000 +30\.00 +20\.00 +1\.50$'
# no rate in common with a passed raw relay step
expect '^pairs +1000 chatd-late +-$'
# the raw relay is not compared with itself
reject '^pairs +1000 relay-raw +20000 +15\.00'
# headline at 10K and 20K: us, x raw at each, then the ceiling, x raw, x ack
expect '^pairs +1000 relay-raw +20\.00 +1\.00 +15\.00 +1\.00 +20000 +1\.00 +2\.00$'
expect '^pairs +1000 chatd-mem +25\.00 +1\.25 +25\.00 +1\.67 +20000 +1\.00 +2\.00$'
expect '^pairs +1000 chatd-normal +40\.00 +2\.00 +- +- +10000 +0\.50 +1\.00$'
expect '^pairs +1000 chatd-late +- +- +- +- +40000 +2\.00 +4\.00$'
expect '^pairs +1000 mosquitto-q1 +30\.00 +1\.50 +- +- +10000 +0\.50 +1\.00$'
expect '^pairs +1000 chatd-none +- +- +- +- +0 +0\.00 +0\.00$'

# Rounds (ROUNDS=3): each server against the relays of its own round, then the medians.
{
    # round 1: raw relay 20K (20 us at 10K), chatd 10K (40 us at 10K): 0.50, cost 2.00; the
    # acking relay runs in this round only (10K, 25 us)
    echo "## round 1 of 3"
    step relay-raw 10000 10000 20; step relay-raw 20000 20000 40; result relay-raw 20000
    step relay-ack 10000 10000 25; result relay-ack 10000
    step chatd-mem 10000 10000 40; result chatd-mem 10000
    # round 2: raw relay 10K (10 us), chatd 8K: 0.80; chatd's step delivered 8000 (50 us): 5.00
    echo "## round 2 of 3"
    step relay-raw 10000 10000 10; result relay-raw 10000
    step chatd-mem 10000 8000 40; result chatd-mem 8000
    # round 3: raw relay 10K (20 us), chatd 6K: 0.60; chatd's step (30 us) against 20: 1.50
    echo "## round 3 of 3"
    step relay-raw 10000 10000 20; result relay-raw 10000
    step chatd-mem 10000 10000 30; result chatd-mem 6000
} >"$T/rounds"
awk -v fixed=10000 -f "$1" "$T/rounds" >"$T/out"
cat "$T/out"
expect '^-- round 2$'
expect '^pairs +1000 chatd-mem +8000 +1\.31 +50 +0\.80 +-$'
expect '^pairs +1000 chatd-mem +10000 +50\.00 +10\.00 +5\.00$'
expect '^== median over 3 rounds'
expect '^pairs +1000 chatd-mem +0\.60 +\[0\.50 0\.80 0\.60\] +2\.00 +\[2\.00 5\.00 1\.50\]$'
expect '^pairs +1000 relay-ack +0\.50 +\[0\.50 - -\] +1\.25 +\[1\.25 - -\]$'
reject '^pairs +1000 relay-raw +1\.00 +\['
# headline: medians of 40, 50, 30 us and of the ratios; the ceiling's median 8000; x ack from
# the one round with the acking relay
expect '^== headline.*medians over 3 rounds'
expect '^pairs +1000 chatd-mem +40\.00 +2\.00 +8000 +0\.60 +1\.00$'
expect '^pairs +1000 relay-raw +20\.00 +1\.00 +10000 +1\.00 +2\.00$'

# A run with longer texts (RESULT text=100) is its own scenario, pairs/t100: its servers pair
# with the relay run at that size, not with the default-text relay of the same connections.
{
    step relay-raw 10000 10000 20; echo "$(result relay-raw 20000) text=40"
    step relay-raw 10000 10000 20; echo "$(result relay-raw 40000) text=100"
    step chatd-mem 10000 10000 25; echo "$(result chatd-mem 10000) text=100"
    step chatd-mem 10000 10000 40; echo "$(result chatd-mem 10000) text=40"
} >"$T/text"
awk -v tops="pairs 1000=50000;pairs/t100 1000=40000" -f "$1" "$T/text" >"$T/out"
cat "$T/out"
expect '^pairs +1000 chatd-mem +10000 +1\.31 +50 +0\.50 +-$'
expect '^pairs/t100 +1000 relay-raw +40000 +1\.31 +50 +1\.00 +-  \*$'
expect '^pairs/t100 +1000 chatd-mem +10000 +1\.31 +50 +0\.25 +-$'
expect '^pairs/t100 +1000 chatd-mem +10000 +25\.00 +20\.00 +1\.25$'
echo "summary_test: ok"
