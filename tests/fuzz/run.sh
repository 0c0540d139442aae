#!/usr/bin/env bash
# Fuzz for a while: tests/fuzz/run.sh TARGET|all [SECONDS] [BUILD_DIR]
# TARGET is a name from fuzz_targets in tests/fuzz/meson.build; "all" runs each in turn for
# SECONDS (default 60). Extra libFuzzer flags go in FUZZ_ARGS (e.g. FUZZ_ARGS="-jobs=2").
# BUILD_DIR (default build-fuzz) is configured with clang, libFuzzer, ASan and UBSan if it has
# not been. New inputs go to BUILD_DIR/fuzz-corpus/TARGET (seeded from tests/fuzz/corpus/TARGET,
# which is only read); crashes to BUILD_DIR/fuzz-artifacts/. Once a crash is fixed, copy it into
# tests/fuzz/corpus/TARGET/ so every build replays it.
set -euo pipefail
cd "$(dirname "$0")/../.."
target=${1:?usage: tests/fuzz/run.sh TARGET|all [SECONDS] [BUILD_DIR]}
seconds=${2:-60}
dir=${3:-build-fuzz}
all=$(sed -n "s/^fuzz_targets = \[\(.*\)\]/\1/p" tests/fuzz/meson.build | tr -d "',")
if [ "$target" = all ]; then
  list=$all
else
  case " $all " in
    *" $target "*) list=$target ;;
    *) echo "unknown target '$target' (have: $all)" >&2; exit 2 ;;
  esac
fi
if [ ! -f "$dir/build.ninja" ]; then
  CC=clang meson setup "$dir" -Dfuzz=enabled -Db_sanitize=address,undefined -Db_lundef=false \
    >/dev/null
fi
for t in $list; do
  ninja -C "$dir" "tests/fuzz/fuzz-$t" >/dev/null
done
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
for t in $list; do
  work="$dir/fuzz-corpus/$t"
  mkdir -p "$work" "$dir/fuzz-artifacts"
  echo "== fuzz-$t for ${seconds}s"
  dict=()
  [ -f "tests/fuzz/$t.dict" ] && dict=(-dict="tests/fuzz/$t.dict")
  # shellcheck disable=SC2086
  if ! "$dir/tests/fuzz/fuzz-$t" -max_total_time="$seconds" -print_final_stats=1 \
       -artifact_prefix="$dir/fuzz-artifacts/$t-" "${dict[@]}" ${FUZZ_ARGS:-} \
       "$work" "tests/fuzz/corpus/$t" >"$dir/fuzz-$t.log" 2>&1; then
    status=1
    echo "fuzz-$t FAILED (log: $dir/fuzz-$t.log):" >&2
    grep -E "invariant broken|ERROR: |runtime error|SUMMARY" "$dir/fuzz-$t.log" | head -5 >&2 || true
    ls "$dir/fuzz-artifacts/$t-"* >&2 2>/dev/null || true
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)" "$dir/fuzz-$t.log" || true
  echo "corpus: $(ls "$work" | wc -l) inputs in $work"
done
exit $status
