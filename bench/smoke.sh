#!/bin/sh
# Smoke run of every chat-bench scenario at tiny sizes (seconds): counts only, no timing
# assertions. Usage: smoke.sh CHAT_BENCH CHATD NATIVE_RELAY [RELAY (libwebsockets; "": none)]
set -eu
BENCH=$1 CHATD=$2 NATIVE=$3 RELAY=${4:-}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$CHATD" token --key-file "$T/key" --data-dir "$T" x y >/dev/null
LIM="--limit send_rate=100000 --limit send_burst=100000"
SRV="$CHATD run --memory --port 0 --key-file $T/key $LIM"
# A step is never cut for its latency (--p99-stop-ms): on a loaded machine p99 says nothing,
# and this run checks counts only.
COMMON="--key-file $T/key --max-secs 15 --expect-all --settle-secs 0.3 --p99-stop-ms 60000"
"$BENCH" --mode pairs --conns 20 --rates 50 --step-secs 2 --drain-secs 5 --spawn "$SRV" $COMMON \
    >"$T/pairs.out" || { cat "$T/pairs.out"; exit 1; }
cat "$T/pairs.out"
# the per-thread CPU line names libchat's threads
grep -q '^# server threads, CPU s:.*chat-loop.*' "$T/pairs.out"
grep -q '^# server threads, CPU s:.*chat-writer' "$T/pairs.out"
"$BENCH" --mode group --members 8 --rates 10 --step-secs 1 --drain-secs 5 --spawn "$SRV" $COMMON
# Exactly once: every 5th message sent twice with its cmid is delivered once by chatd...
"$BENCH" --mode pairs --conns 20 --rates 50 --step-secs 1 --drain-secs 5 --spawn "$SRV" $COMMON \
    --resend-every 5
"$BENCH" --mode idle --conns 50 --spawn "$SRV" $COMMON
"$BENCH" --mode storm --conns 20 --storm-msgs 10 --storm-senders 4 --spawn "$SRV" $COMMON
# the relays: forward-only and acking, on the native transport and on libwebsockets
RELAYS="--relay-tokens --max-secs 15 --expect-all --settle-secs 0.3 --p99-stop-ms 60000"
PAIRS="--mode pairs --conns 20 --rates 50 --step-secs 1 --drain-secs 5"
"$BENCH" $PAIRS --spawn "$NATIVE --port 0 --no-ack" $RELAYS --label relay-native
"$BENCH" $PAIRS --spawn "$NATIVE --port 0" $RELAYS --label relay-native-ack
"$BENCH" --mode group --members 8 --rates 10 --step-secs 1 --drain-secs 5 \
    --spawn "$NATIVE --port 0" $RELAYS --label relay-native
if [ -n "$RELAY" ]; then
    "$BENCH" $PAIRS --spawn "$RELAY --port 0" $RELAYS --label relay-ack
    "$BENCH" $PAIRS --spawn "$RELAY --port 0 --no-ack" $RELAYS --label relay-raw
fi
# ...and twice by a relay, which chat-bench must count as errors.
if "$BENCH" $PAIRS --spawn "$NATIVE --port 0" $RELAYS --label relay-resent --resend-every 5 \
    >"$T/dup.out"; then
    cat "$T/dup.out"
    echo "smoke: messages delivered twice went unnoticed" >&2
    exit 1
fi
grep -Eq '^# exactly once: [1-9][0-9]* duplicate deliveries' "$T/dup.out"
echo "smoke: all scenarios ran and counted correctly"
