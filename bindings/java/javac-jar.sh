#!/bin/sh
# Compile Java sources at the Java 8 language level into a jar (meson custom_target helper).
#   javac-jar.sh JAVAC JAR OUT.jar HEADER|- CLASSPATH|- SOURCE...
# HEADER: where to put the JNI header javac -h writes for the one class with native methods,
# or - for none.
set -eu
javac=$1 jar=$2 out=$3 header=$4 cp=$5
shift 5
tmp=$(mktemp -d "${TMPDIR:-/tmp}/libchat-javac.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
set -- --release 8 -encoding UTF-8 -Xlint:all,-options -Werror -d "$tmp/classes" "$@"
if [ "$cp" != - ]; then set -- -classpath "$cp" "$@"; fi
if [ "$header" != - ]; then set -- -h "$tmp/h" "$@"; fi
"$javac" "$@"
if [ "$header" != - ]; then
  set -- "$tmp"/h/*.h
  [ $# = 1 ] || { echo "javac-jar.sh: expected one JNI header, got: $*" >&2; exit 1; }
  cp "$1" "$header"
fi
"$jar" --create --file "$out" -C "$tmp/classes" .
