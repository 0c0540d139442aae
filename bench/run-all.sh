#!/bin/bash
# Run every chat-bench scenario, each server pinned to cpu 0 and the generator to cpu 1, and
# print a summary (bench/summary.awk) with every figure against the raw relay measured in the
# same round: the headline (server CPU per delivered message at fixed rates below every
# ceiling, then the ceilings), the ceilings, and the CPU per message at the highest rate a
# server and the raw relay both passed.
#
# The 1:1 scenarios (1K connections, 10K connections, longer texts) run chatd and what it is
# measured against, one after the other in each round:
#   relay-raw     bench/relay --no-ack: libwebsockets forwarding frames, no JSON, no ack (the
#                 physical limit of that loop; every ratio's denominator)
#   relay-native  bench/native-relay --no-ack: the same on libchat's native transport, the
#                 loop chatd runs on
#   relay-ack     bench/relay: acks every send, so pays chatd's second write
#   native-ack    bench/native-relay: acks every send on chatd's own transport (the floor of
#                 any server there that acks: a read and two frames out, no engine)
#   chatd-mem     chatd --memory;  chatd-normal  chatd on SQLite, synchronous NORMAL
#   mosquitto-q1  Debian's mosquitto over WebSocket, QoS 1 (bench/mosquitto-ws.sh)
#   node-relay    a minimal Node.js ws relay that acks (bench/relay.mjs)
# A peer that is not installed (mosquitto, Node.js with ws) is skipped with a note; without
# libwebsockets bench/relay is not built, and the ratios are taken against relay-native.
#
#   bench/run-all.sh [BUILD_DIR (build)] [WORK_DIR (a fresh temp dir)]
#
# Sizes are environment variables: CONNS_SMALL (1000), CONNS_BIG (10000), IDLE (10000 19000),
# MEMBERS (1024), STORM_USERS (10000), STORM_MSGS (100), HISTORY_MSGS (10000000),
# LONG_TEXT (100: the text size of the 1:1 run with longer messages), STEP_SECS (3), RATES_PAIRS,
# RATES_DURABLE (also every chatd-normal run's), RATES_BIG, RATES_GROUP (the stepped grids,
# comma-separated), FIXED_RATES (5000,15000: the headline's rates; each must be a step of the
# 1:1 grids), SKIP (space-separated names to skip: scenarios pairs long big group idle storm
# history durability, or servers by label, e.g. "mosquitto-q1 node-relay"), ROUNDS (1): how
# many times to run the stepped scenarios (pairs, long, durability, big, group), each round
# measuring the relays again; the summary then gives each ratio per round and its median (one
# round's ratio moves by 10-30 % on a shared machine).
set -u
BUILD=${1:-build}
WORK=${2:-$(mktemp -d /tmp/chat-bench.XXXXXX)}
mkdir -p "$WORK"
SRC=$(dirname "$0")
BENCH=$BUILD/bench/chat-bench
RELAY=$BUILD/bench/relay
NATIVE=$BUILD/bench/native-relay
FILL=$BUILD/bench/history-fill
CHATD=$BUILD/examples/chatd/chatd
CONNS_SMALL=${CONNS_SMALL:-1000}
CONNS_BIG=${CONNS_BIG:-10000}
IDLE=${IDLE:-10000 19000}
MEMBERS=${MEMBERS:-1024}
STORM_USERS=${STORM_USERS:-10000}
STORM_MSGS=${STORM_MSGS:-100}
HISTORY_MSGS=${HISTORY_MSGS:-10000000}
LONG_TEXT=${LONG_TEXT:-100}
STEP=${STEP_SECS:-3}
SKIP=${SKIP:-}
ROUNDS=${ROUNDS:-1}
FIXED_RATES=${FIXED_RATES:-5000,15000}
case $ROUNDS in ''|*[!0-9]*|0) echo "run-all: ROUNDS must be a positive integer" >&2; exit 2;; esac
case $LONG_TEXT in ""|*[!0-9]*) echo "run-all: LONG_TEXT must be a number of bytes" >&2; exit 2;; esac
RATES_PAIRS=${RATES_PAIRS:-5000,10000,15000,20000,25000,30000,35000,40000,45000,50000,55000,60000,65000,70000,75000,80000,85000,90000,95000,100000,105000,110000,115000,120000}
# The durable runs stop near a quarter or a third of the relay's ceiling, where 5K steps would
# make NORMAL against FULL, or a ratio against 0.40, one step apart: 2.5K steps there.
RATES_DURABLE=${RATES_DURABLE:-5000,7500,10000,12500,15000,17500,20000,22500,25000,27500,30000,32500,35000,37500,40000,45000,50000,55000,60000}
RATES_BIG=${RATES_BIG:-5000,10000,15000,20000,25000,30000,35000,40000,45000,50000,55000,60000,65000,70000,75000,80000,85000,90000}
RATES_GROUP=${RATES_GROUP:-20,40,60,70,80,90,100,110,120,130,140,160,180,200,220,240,260}
LOG=$WORK/run-all.log
KEY=$WORK/token.key
# Benchmarks lift the per-connection send rate limit (20/s by default) and the connection cap.
LIM="--limit send_rate=1000000 --limit send_burst=1000000 --limit connections=20000"

skip() { case " $SKIP " in *" $1 "*) return 0;; esac; return 1; }
say() { echo "$@" | tee -a "$LOG"; }
run() { # label, then chat-bench arguments
    local label=$1; shift
    skip "$label" && return
    "$BENCH" --label "$label" --max-secs 240 "$@" 2>&1 | tee -a "$LOG" | grep -v '^chatd: SIG'
}
# The relays use chatd's 256-byte rx buffer (libwebsockets); their tokens are the user names.
run_raw() { run relay-raw "$@" --relay-tokens --spawn "$RELAY --port 0 --rx 256 --no-ack"; }
run_native() { run relay-native "$@" --relay-tokens --spawn "$NATIVE --port 0 --no-ack"; }
run_ack() { run relay-ack "$@" --relay-tokens --spawn "$RELAY --port 0 --rx 256"; }
run_native_ack() { run native-ack "$@" --relay-tokens --spawn "$NATIVE --port 0"; }
chatd_mem="$CHATD run --memory --port 0 --key-file $KEY $LIM"
chatd_sql() { # data dir, sync mode
    rm -rf "$1"; echo "$CHATD run --data-dir $1 --port 0 --key-file $KEY --sync $2 $LIM"
}
# Every server of a 1:1 scenario: connections, text bytes, the grid of the servers that are not
# durable. chatd-normal runs the finer durable grid (it has both headline rates).
one_to_one() {
    local common="--mode pairs --conns $1 --text-bytes $2 --step-secs $STEP"
    run_raw $common --rates "$3"
    run_native $common --rates "$3"
    run_ack $common --rates "$3"
    run_native_ack $common --rates "$3"
    run chatd-mem $common --rates "$3" --key-file "$KEY" --spawn "$chatd_mem"
    run chatd-normal $common --rates "$RATES_DURABLE" --key-file "$KEY" \
        --spawn "$(chatd_sql "$WORK/normal" normal)"
    run mosquitto-q1 $common --rates "$3" --mqtt --spawn "$SRC/mosquitto-ws.sh"
    run node-relay $common --rates "$3" --relay-tokens --spawn "node $SRC/relay.mjs --port 0 --ack"
}

"$CHATD" token --key-file "$KEY" --data-dir "$WORK" x y >/dev/null || exit 1
: >"$LOG"
say "# run-all: $(date -u +%FT%TZ) $(uname -r), $(nproc) cpus, nofile $(ulimit -Hn); work dir $WORK"
say "# every server pinned to cpu 0 (taskset -c 0), chat-bench pinned to cpu 1; the lws relays use chatd's 256-byte rx buffer"
BASE=relay-raw
if [ ! -x "$RELAY" ]; then
    say "# bench/relay is not built (no libwebsockets): relay-raw and relay-ack skipped, ratios against relay-native"
    SKIP="$SKIP relay-raw relay-ack"
    BASE=relay-native
fi
if ! command -v mosquitto >/dev/null; then
    say "# mosquitto is not installed: mosquitto-q1 skipped"
    SKIP="$SKIP mosquitto-q1"
fi
if ! command -v node >/dev/null || ! node "$SRC/relay.mjs" --check; then
    say "# Node.js with the ws package is not installed: node-relay skipped"
    SKIP="$SKIP node-relay"
fi
for r in ${FIXED_RATES//,/ }; do
    for grid in "$RATES_PAIRS" "$RATES_BIG" "$RATES_DURABLE"; do
        case ",$grid," in *",$r,"*) ;; *) say "# warning: $r (FIXED_RATES) is not a step of $grid";; esac
    done
done

for round in $(seq 1 "$ROUNDS"); do
    [ "$ROUNDS" -gt 1 ] && say "## round $round of $ROUNDS"
    if ! skip pairs; then
        say "## (1) 1:1 pairs, $CONNS_SMALL connections, steps of ${STEP}s"
        one_to_one "$CONNS_SMALL" 40 "$RATES_PAIRS"
    fi
    if ! skip long; then
        # 40-byte texts keep every frame under 256 bytes; ordinary messages are longer, and
        # chatd's msg frame then is too (the relays forward the shorter send frame as it came).
        say "## (1c) 1:1 pairs, $CONNS_SMALL connections, $LONG_TEXT-byte texts"
        one_to_one "$CONNS_SMALL" "$LONG_TEXT" "$RATES_PAIRS"
    fi
    if ! skip durability; then
        say "## (6) durability: the 1:1 run on SQLite synchronous FULL, and NORMAL without the" \
            "commit window (NORMAL itself is in (1))"
        DURABLE="--mode pairs --conns $CONNS_SMALL --rates $RATES_DURABLE --step-secs $STEP"
        run chatd-full $DURABLE --key-file "$KEY" --spawn "$(chatd_sql "$WORK/full" full)"
        # The default commit window (250 us, under load only) trades under a millisecond of
        # latency for CPU below the ceiling: compare the srvCPU% column of chatd-normal's steps
        # with these.
        run chatd-nowindow $DURABLE --key-file "$KEY" \
            --spawn "$(chatd_sql "$WORK/nowindow" normal) --limit commit_window_us=0"
    fi
    if ! skip big; then
        say "## (1b) 1:1 pairs, $CONNS_BIG connections"
        one_to_one "$CONNS_BIG" 40 "$RATES_BIG"
    fi
    if ! skip group; then
        say "## (2) group fan-out: one group of $MEMBERS, one sender; offered rate in messages/s"
        GROUP="--mode group --members $MEMBERS --rates $RATES_GROUP --step-secs $STEP"
        run_raw $GROUP
        run_native $GROUP
        run chatd-mem $GROUP --key-file "$KEY" --spawn "$chatd_mem"
    fi
done
if ! skip idle; then
    say "## (3) idle authenticated connections: server RSS per connection"
    for n in $IDLE; do
        run_raw --mode idle --conns "$n"
        run_native --mode idle --conns "$n"
        run chatd-mem --mode idle --conns "$n" --key-file "$KEY" --spawn "$chatd_mem"
    done
fi
if ! skip storm; then
    say "## (4) reconnect storm: $STORM_USERS users x $STORM_MSGS missed messages (SQLite NORMAL)"
    run chatd-normal --mode storm --conns "$STORM_USERS" --storm-msgs "$STORM_MSGS" \
        --key-file "$KEY" --spawn "$(chatd_sql "$WORK/storm" normal)"
fi
if ! skip history; then
    say "## (5) history: 50-message pages on a store of $HISTORY_MSGS messages (10 conversations)"
    rm -rf "$WORK/hist"
    "$FILL" "$WORK/hist" "$HISTORY_MSGS" 10 20000 2>&1 | tee -a "$LOG" | grep -v '^conv '
    run chatd-normal --mode history --history-convs 10 --history-requests 5000 \
        --key-file "$KEY" --spawn "$CHATD run --data-dir $WORK/hist --port 0 --key-file $KEY $LIM"
fi

# ---- summary ----
# A server that passes a grid's top step has a higher ceiling than the table can show: marked.
awk -v tops="pairs $CONNS_SMALL=${RATES_PAIRS##*,};pairs/t$LONG_TEXT $CONNS_SMALL=${RATES_PAIRS##*,};pairs $CONNS_BIG=${RATES_BIG##*,};group $MEMBERS=${RATES_GROUP##*,}" \
    -v fixed="$FIXED_RATES" -v base="$BASE" -f "$SRC/summary.awk" "$LOG" | tee "$WORK/summary.txt"
echo "# full log: $LOG"
