#!/bin/bash
# Run every chat-bench scenario at sizes that fit about 11 minutes on a 2-core machine, each
# server pinned to cpu 0 and the generator to cpu 1, and print a summary (bench/summary.awk)
# with every chatd figure as a ratio to the relay measured in the same run: the ceilings, and
# the server CPU per delivered message at the highest rate both passed.
#
#   bench/run-all.sh [BUILD_DIR (build)] [WORK_DIR (a fresh temp dir)]
#
# Sizes are environment variables: CONNS_SMALL (1000), CONNS_BIG (10000), IDLE (10000 19000),
# MEMBERS (1024), STORM_USERS (10000), STORM_MSGS (100), HISTORY_MSGS (10000000),
# LONG_TEXT (100: the text size of the 1:1 run with longer messages), STEP_SECS (3), RATES_PAIRS,
# RATES_DURABLE, RATES_BIG, RATES_GROUP (the stepped grids, comma-separated), SKIP
# (space-separated scenario names to skip: pairs long big group idle storm history
# durability), ROUNDS (1): how many times to run the stepped scenarios (pairs, long,
# durability, big, group), each round measuring the relay again; the summary then gives each
# ratio per round and its median (one round's ratio moves by 10-30 % on a shared machine).
set -u
BUILD=${1:-build}
WORK=${2:-$(mktemp -d /tmp/chat-bench.XXXXXX)}
mkdir -p "$WORK"
BENCH=$BUILD/bench/chat-bench
RELAY=$BUILD/bench/relay
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
case $ROUNDS in ''|*[!0-9]*|0) echo "run-all: ROUNDS must be a positive integer" >&2; exit 2;; esac
case $LONG_TEXT in ""|*[!0-9]*) echo "run-all: LONG_TEXT must be a number of bytes" >&2; exit 2;; esac
RATES_PAIRS=${RATES_PAIRS:-10000,15000,20000,25000,30000,35000,40000,45000,50000,55000,60000,65000,70000,75000,80000,85000,90000,95000,100000,105000,110000,115000,120000}
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
    "$BENCH" --label "$label" --max-secs 240 "$@" 2>&1 | tee -a "$LOG" | grep -v '^chatd: SIG'
}
# The relay with chatd's 256-byte rx buffer, its tokens being the user names.
run_relay() { run relay "$@" --relay-tokens --spawn "$RELAY --port 0 --rx 256"; }
chatd_mem="$CHATD run --memory --port 0 --key-file $KEY $LIM"
chatd_sql() { # data dir, sync mode
    rm -rf "$1"; echo "$CHATD run --data-dir $1 --port 0 --key-file $KEY --sync $2 $LIM"
}

"$CHATD" token --key-file "$KEY" --data-dir "$WORK" x y >/dev/null || exit 1
: >"$LOG"
say "# run-all: $(date -u +%FT%TZ) $(uname -r), $(nproc) cpus, nofile $(ulimit -Hn); work dir $WORK"
say "# every server pinned to cpu 0 (taskset -c 0), chat-bench pinned to cpu 1; the relay uses chatd's 256-byte rx buffer"

# The stepped runs' arguments (no value holds a space: left unquoted, each splits into words).
SMALL="--mode pairs --conns $CONNS_SMALL --rates $RATES_PAIRS --step-secs $STEP"
DURABLE="--mode pairs --conns $CONNS_SMALL --rates $RATES_DURABLE --step-secs $STEP"
BIG="--mode pairs --conns $CONNS_BIG --rates $RATES_BIG --step-secs $STEP"
GROUP="--mode group --members $MEMBERS --rates $RATES_GROUP --step-secs $STEP"
for round in $(seq 1 "$ROUNDS"); do
    [ "$ROUNDS" -gt 1 ] && say "## round $round of $ROUNDS"
    if ! skip pairs; then
        say "## (1) 1:1 pairs, $CONNS_SMALL connections, steps of ${STEP}s"
        run_relay $SMALL
        run chatd-mem $SMALL --key-file "$KEY" --spawn "$chatd_mem"
    fi
    if ! skip long; then
        # 40-byte texts keep every frame under 256 bytes; ordinary messages are longer, and
        # chatd's msg frame then is too (the relay forwards the shorter send frame as it came).
        say "## (1c) 1:1 pairs, $CONNS_SMALL connections, $LONG_TEXT-byte texts"
        run_relay $SMALL --text-bytes "$LONG_TEXT"
        run chatd-mem $SMALL --text-bytes "$LONG_TEXT" --key-file "$KEY" --spawn "$chatd_mem"
    fi
    if ! skip durability; then
        say "## (6) durability: the same 1:1 run on SQLite, synchronous NORMAL and FULL," \
            "and NORMAL without the commit window"
        run chatd-normal $DURABLE --key-file "$KEY" --spawn "$(chatd_sql "$WORK/normal" normal)"
        run chatd-full $DURABLE --key-file "$KEY" --spawn "$(chatd_sql "$WORK/full" full)"
        # The default commit window (250 us, under load only) trades under a millisecond of
        # latency for CPU below the ceiling: compare the srvCPU% column of chatd-normal's steps
        # with these.
        run chatd-nowindow $DURABLE --key-file "$KEY" \
            --spawn "$(chatd_sql "$WORK/nowindow" normal) --limit commit_window_us=0"
    fi
    if ! skip big; then
        say "## (1b) 1:1 pairs, $CONNS_BIG connections"
        run_relay $BIG
        run chatd-mem $BIG --key-file "$KEY" --spawn "$chatd_mem"
    fi
    if ! skip group; then
        say "## (2) group fan-out: one group of $MEMBERS, one sender; offered rate in messages/s"
        run_relay $GROUP
        run chatd-mem $GROUP --key-file "$KEY" --spawn "$chatd_mem"
    fi
done
if ! skip idle; then
    say "## (3) idle authenticated connections: server RSS per connection"
    for n in $IDLE; do
        run_relay --mode idle --conns "$n"
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
    -f "$(dirname "$0")/summary.awk" "$LOG" | tee "$WORK/summary.txt"
echo "# full log: $LOG"
