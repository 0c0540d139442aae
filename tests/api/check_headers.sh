#!/bin/sh
# Every public header compiles alone, as C99 -pedantic -Werror and as C++.
# usage: check_headers.sh SRC_INCLUDE_DIR BUILD_INCLUDE_DIR CC CXX
set -eu
src=$1 bld=$2 cc=$3 cxx=$4
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
for h in $(cd "$src" && find chat -name '*.h' | sort) chat/version.h; do
    printf '#include <%s>\nint chat_header_test_dummy;\n' "$h" > "$tmp/t.c"
    cp "$tmp/t.c" "$tmp/t.cc"
    "$cc" -std=c99 -pedantic -Wall -Wextra -Werror -I"$src" -I"$bld" -c "$tmp/t.c" -o "$tmp/t.o"
    "$cxx" -std=c++11 -pedantic -Wall -Wextra -Werror -I"$src" -I"$bld" -c "$tmp/t.cc" -o "$tmp/t.o"
    n=$((n + 1))
done
echo "$n passed, 0 failed"
