#!/usr/bin/env bash
# Run one JUnit test class (the java command line is "$@") and fail as well when the JVM's
# -Xcheck:jni reports a misuse of JNI by the shim, or the VM reports a fatal error: JUnit alone
# would pass such a run.
set -uo pipefail
log=$(mktemp "${TMPDIR:-/tmp}/libchat-junit.XXXXXX")
trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
if grep -q -E "WARNING in native method|FATAL ERROR in native method|A fatal error has been detected" "$log"; then
  echo "run-junit: the JVM reported a JNI problem (see above)" >&2
  exit 1
fi
exit "$rc"
