#!/bin/bash
# What the expiry sweep costs live traffic: chat-bench runs pairs at one fixed rate, in one
# step, against chatd on SQLite twice: on a store of MSGS messages that never expire (the
# control), then on the same store whose messages all expire DUE_MS after its fill began (or
# spread over SPREAD_MS from then), so that chatd's sweep erases them during the step. Prints
# both runs' RESULT lines, the ratio of their p99s and how many messages each run erased.
#
#   bench/expiry-bench.sh [BUILD_DIR (build)] [WORK_DIR (a fresh temp dir)]
#
# Sizes are environment variables: MSGS (200000), CONVS (1000: the planted messages'
# conversations), CONNS (1000), RATE (5000 messages/s), SECS (30: the step), DUE_MS (12000:
# the fill, chatd's start and chat-bench's connections and warm-up must fit in it), SPREAD_MS
# (0: all due at once), LIMITS (more chatd options, e.g. "--limit expiry_batch=256").
# CHECK=1 (the smoke test): exit 1 unless chat-bench saw every message delivered and the
# expiring run erased every planted message (and the control none).
set -u
BUILD=${1:-build}
WORK=${2:-$(mktemp -d /tmp/expiry-bench.XXXXXX)}
mkdir -p "$WORK"
LIFE=$BUILD/bench/life-bench
BENCH=$BUILD/bench/chat-bench
CHATD=$BUILD/examples/chatd/chatd
MSGS=${MSGS:-200000}
CONVS=${CONVS:-1000}
CONNS=${CONNS:-1000}
RATE=${RATE:-5000}
SECS=${SECS:-30}
DUE_MS=${DUE_MS:-12000}
SPREAD_MS=${SPREAD_MS:-0}
LIMITS=${LIMITS:-}
CHECK=${CHECK:-0}
KEY=$WORK/token.key
LIM="--limit send_rate=1000000 --limit send_burst=1000000 --limit connections=20000"
"$CHATD" token --key-file "$KEY" --data-dir "$WORK" x y >/dev/null || exit 1
status=0
for run in control expiring; do
    dir=$WORK/$run
    rm -rf "$dir"
    due=$DUE_MS
    [ "$run" = control ] && due=0
    "$LIFE" expire-fill "$dir" "$MSGS" "$CONVS" "$due" "$SPREAD_MS" >"$WORK/$run.fill" ||
        { cat "$WORK/$run.fill"; exit 1; }
    cat "$WORK/$run.fill"
    extra=""
    [ "$CHECK" = 1 ] && extra="--expect-all"
    t0=$(date +%s%3N)
    "$BENCH" --mode pairs --conns "$CONNS" --rates "$RATE" --step-secs "$SECS" \
        --p99-stop-ms 60000 --key-file "$KEY" --label "chatd-$run" $extra \
        --spawn "$CHATD run --data-dir $dir --port 0 --key-file $KEY $LIM $LIMITS" \
        >"$WORK/$run.out" 2>&1 || status=1
    t1=$(date +%s%3N)
    grep -v '^chatd: SIG' "$WORK/$run.out"
    # When the messages fell due within chat-bench's run (connections, warm-up, then the step).
    first=$(sed -n 's/^RESULT mode=expire-fill.* first_expiry_epoch_ms=\([0-9]*\).*/\1/p' \
        "$WORK/$run.fill")
    [ "${first:-0}" != 0 ] &&
        echo "# the planted messages fell due $((first - t0)) ms after chat-bench started;" \
            "it ran $((t1 - t0)) ms"
    erased=$(sqlite3 "$dir/chat.db" "SELECT count(*) FROM messages WHERE flags & 2")
    echo "RESULT mode=expiry-run label=chatd-$run planted=$MSGS expired=$erased"
    if [ "$CHECK" = 1 ]; then
        want=$MSGS
        [ "$run" = control ] && want=0
        [ "$erased" = "$want" ] || { echo "expiry-bench: $run erased $erased, not $want"; status=1; }
    fi
done
p99() { sed -n 's/^RESULT .*mode=pairs.* p99_ms=\([0-9.]*\).*/\1/p' "$WORK/$1.out" | head -1; }
c=$(p99 control) e=$(p99 expiring)
if [ -n "$c" ] && [ -n "$e" ]; then
    awk -v c="$c" -v e="$e" 'BEGIN { printf "RESULT mode=expiry p99_control_ms=%s p99_expiring_ms=%s ratio=%.3f\n", c, e, (c > 0 ? e / c : 0) }'
else
    echo "expiry-bench: a run gave no p99 (see $WORK/*.out)"
    status=1
fi
[ -z "${2:-}" ] && [ "$status" = 0 ] && rm -rf "$WORK"
exit $status
