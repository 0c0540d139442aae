#!/usr/bin/env python3
"""What a person reads after `.ci/test`: one line per suite, what was skipped and why, and the
output of every test that failed. Reads meson's testlog.json (argument 1); everything every
test printed stays in testlog.txt beside it."""

import collections
import json
import os
import re
import sys

MAX_LINES = 400  # of a failed test's output; the rest is in testlog.txt

log = sys.argv[1]
txt = os.path.join(os.path.dirname(log), "testlog.txt")
try:
    with open(log, encoding="utf-8", errors="replace") as f:
        tests = [json.loads(line) for line in f if line.strip()]
except OSError as e:
    print(f"no test results ({e}): the build or meson test itself failed, see above")
    sys.exit(0)

suites = collections.OrderedDict()
skipped_inside = []
for t in sorted(tests, key=lambda t: t["name"]):
    # "libchat:cli / cli-terminal"
    project_suite, _, name = t["name"].partition(" / ")
    suite = project_suite.split(":", 1)[-1]
    t["short"] = name or t["name"]
    suites.setdefault(suite, []).append(t)
    out = t.get("stdout") or ""
    # tests that ran but skipped parts: pytest -v and cmocka say which and why
    reasons = re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", out, re.M)  # pytest -rs
    reasons += [m.strip() for m in re.findall(r"^skipped: (.*)$", out, re.M)]
    n = len(re.findall(r"^\S+::\S+ SKIPPED", out, re.M)) + \
        len(re.findall(r"^\[  SKIPPED \] test_", out, re.M))
    if n:
        skipped_inside.append((t["short"], n, sorted(set(reasons))))

start = min((t.get("starttime", 0) for t in tests), default=0)
end = max((t.get("starttime", 0) + t.get("duration", 0) for t in tests), default=0)
failed = [t for t in tests if t["result"] not in ("OK", "SKIP", "EXPECTEDFAIL")]



def n_of(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


print()
print(f"{n_of(len(tests), 'test')} in {n_of(len(suites), 'suite')}, {int(end - start) // 60} min "
      f"{int(end - start) % 60} s; every test's output: {txt}")
for suite, ts in suites.items():
    counts = collections.Counter(t["result"] for t in ts)
    bad = [t["short"] for t in ts if t in failed]
    words = [f"{counts['OK']} ok"] if counts["OK"] else []
    if counts["SKIP"]:
        words.append(f"{counts['SKIP']} skipped")
    if bad:
        words.append(f"{len(bad)} FAILED: " + ", ".join(bad))
    print(f"  {suite:<12} {', '.join(words)}")
for name, n, reasons in skipped_inside:
    why = "; ".join(reasons) if reasons else "see its output"
    print(f"  skipped inside {name}: {n_of(n, 'test')} ({why})")

for t in failed:
    out = (t.get("stdout") or "") + (t.get("stderr") or "")
    lines = out.rstrip("\n").split("\n")
    print()
    print(f"==== {t['short']}: {t['result']} (exit status {t.get('returncode')}, "
          f"{t.get('duration', 0):.1f} s) " + "=" * 20)
    if len(lines) > MAX_LINES:
        print(f"[the first {len(lines) - MAX_LINES} lines are in {txt}]")
        lines = lines[-MAX_LINES:]
    print("\n".join(lines))
    print(f"==== end of {t['short']}")

print()
print(f"{len(failed)} of {n_of(len(tests), 'test')} FAILED: " +
      ", ".join(t["short"] for t in failed) if failed else f"all {n_of(len(tests), 'test')} passed")
