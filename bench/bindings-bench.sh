#!/bin/sh
# The bindings against the C engine alone, each in one run with its C baseline (figures in
# doc/performance.md, "Bindings", and in each binding's README):
#
#   bench/bindings-bench.sh BUILD_DIR [N (5000)] [ROUNDS (3)] [EVENTS (100000)] [CALLS (20000)]
#
# BUILD_DIR: a built tree, e.g. meson setup build-rel --buildtype=release && meson compile -C
# build-rel (this script builds nothing). N: messages per round through a chatd (Java, Node,
# Python: live and backlog, bench/node-bench.mjs); EVENTS: frames per round of Java's
# loopback feed (no server); CALLS: sends per round for the cost of one. Every round runs the C
# side and the binding's one after the other; the RESULT lines have the medians of ROUNDS.
# A binding whose runtime (java, node, python3) or build output is missing is skipped, and says
# so. The runs go one at a time: on a shared machine, compare a binding with its C baseline of
# the same run rather than figures of different runs.
set -eu
[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [N] [ROUNDS] [EVENTS] [CALLS]" >&2; exit 2; }
B=$(cd "$1" && pwd)
N=${2:-5000} ROUNDS=${3:-3} EVENTS=${4:-100000} CALLS=${5:-20000}
SRC=$(cd "$(dirname "$0")/.." && pwd)
CHATD=$B/examples/chatd/chatd CLIENT_EVENTS=$B/bench/client-events
for f in "$CHATD" "$CLIENT_EVENTS"; do
  [ -x "$f" ] || { echo "$0: $f is not built" >&2; exit 1; }
done
export CHATD CLIENT_EVENTS

J=$B/bindings/java
if command -v java >/dev/null && [ -f "$J/bench/libchat-bench.jar" ]; then
  set -- java -Dlibchat.jni.path="$J/libchatjni-testing.so" \
    -Dlibchat.bench.path="$J/bench/libchatjnibench.so" \
    -cp "$J/libchat.jar:$J/bench/libchat-bench.jar" org.libchat.EventBench
  "$@" "$EVENTS" "$CALLS" "$ROUNDS"
  "$@" server "$CHATD" "$CLIENT_EVENTS" "$N" "$ROUNDS"
else
  echo "SKIP java: no java, or the Java binding is not built"
fi

if command -v node >/dev/null && [ -f "$B/bindings/node/libchat.node" ]; then
  LIBCHAT_NODE_ADDON=$B/bindings/node/libchat.node node "$SRC/bench/node-bench.mjs" "$N" "$CALLS" "$ROUNDS"
else
  echo "SKIP node: no node, or the Node.js binding is not built"
fi

if command -v python3 >/dev/null; then
  LIBCHAT_PATH=$B/lib PYTHONPATH=$SRC/bindings/python \
    python3 "$SRC/bindings/python/bench.py" "$N" "$CALLS" "$ROUNDS"
else
  echo "SKIP python: no python3"
fi
