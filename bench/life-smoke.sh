#!/bin/sh
# Smoke run of life-bench and bench/expiry-bench.sh at tiny sizes (seconds): counts and exit
# status only, never timings. Usage: life-smoke.sh BUILD_DIR EXPIRY_BENCH_SH
set -eu
BUILD=$1 EXPIRY=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
LIFE=$BUILD/bench/life-bench
# pages of the right size; reactions in lifecycle pages only (life-bench exits 1 otherwise)
"$LIFE" history "$T/h" 3000 3 300 50 20 | tee "$T/h.out"
grep -q '^RESULT mode=history-life pages=300 ' "$T/h.out"
# the same store over the wire: chatd serves the plain conversations and the changed ones
CHATD=$BUILD/examples/chatd/chatd
"$CHATD" token --key-file "$T/key" --data-dir "$T" x y >/dev/null
for first in 1 4; do
    "$BUILD/bench/chat-bench" --mode history --history-convs 3 --history-first $first \
        --history-requests 50 --key-file "$T/key" --max-secs 15 --label "first-$first" \
        --spawn "$CHATD run --data-dir $T/h --port 0 --key-file $T/key" >"$T/w.out" ||
        { cat "$T/w.out"; exit 1; }
    grep "^RESULT label=first-$first mode=history first_conv=$first pages=50 " "$T/w.out"
done
# a change lagging past the last message still lands; every message changed
"$LIFE" history "$T/h2" 600 2 50 100 1000 | grep '^RESULT mode=history-life'
# the planted word's hits in the store and in the cache (life-bench exits 1 when wrong)
"$LIFE" search "$T/s" 5000 7 10 | tee "$T/s.out"
grep -q '^RESULT mode=search-store messages=5000 ' "$T/s.out"
grep -q '^RESULT mode=search-cache messages=5000 ' "$T/s.out"
# a DIR already filled is refused
if "$LIFE" search "$T/s" 10 1 1 store 2>/dev/null; then
    echo "life-smoke: a filled DIR was accepted"
    exit 1
fi
# chatd sweeps every planted message during a run, none in the control, and chat-bench loses
# nothing meanwhile
MSGS=1500 CONVS=30 CONNS=20 RATE=50 SECS=4 DUE_MS=2500 CHECK=1 bash "$EXPIRY" "$BUILD" "$T/x" \
    >"$T/x.out" || { cat "$T/x.out"; exit 1; }
cat "$T/x.out"
grep -q '^RESULT mode=expiry-run label=chatd-expiring planted=1500 expired=1500$' "$T/x.out"
grep -q '^RESULT mode=expiry p99_control_ms=[0-9.]* p99_expiring_ms=[0-9.]* ratio=' "$T/x.out"
