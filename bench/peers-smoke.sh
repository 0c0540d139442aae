#!/bin/sh
# Smoke run of chat-bench against the servers a user would pick instead of chatd (seconds, tiny
# rates): mosquitto over WebSocket at QoS 1 (--mqtt) and the Node.js relay, 1:1 and group, each
# message checked delivered exactly once. Counts only: the latency bound is lifted (a slow
# machine must not fail it).
# Usage: peers-smoke.sh CHAT_BENCH MOSQUITTO_WS_SH RELAY_MJS; exits 77 (skipped) when mosquitto
# or Node.js with the ws package is missing.
set -eu
BENCH=$1 MOSQ=$2 NODE_RELAY=$3
command -v mosquitto >/dev/null || { echo "peers-smoke: no mosquitto: skipped"; exit 77; }
command -v node >/dev/null && node "$NODE_RELAY" --check ||
    { echo "peers-smoke: no node with the ws package: skipped"; exit 77; }
COMMON="--max-secs 20 --expect-all --settle-secs 0.3 --p99-stop-ms 10000 --drain-secs 5"
PAIRS="--mode pairs --conns 20 --rates 50 --step-secs 1"
GROUP="--mode group --members 8 --rates 10 --step-secs 1"
"$BENCH" $PAIRS $COMMON --mqtt --spawn "$MOSQ" --label mosquitto-q1
"$BENCH" $GROUP $COMMON --mqtt --spawn "$MOSQ" --label mosquitto-q1
"$BENCH" --mode idle --conns 20 $COMMON --mqtt --spawn "$MOSQ" --label mosquitto-q1
"$BENCH" $PAIRS $COMMON --relay-tokens --spawn "node $NODE_RELAY --port 0 --ack" --label node-relay
"$BENCH" $GROUP $COMMON --relay-tokens --spawn "node $NODE_RELAY --port 0" --label node-relay
echo "peers-smoke: mosquitto and the Node relay delivered every message exactly once"
