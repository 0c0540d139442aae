#!/bin/sh
# The Clang module map of the client API (include/chat/module.modulemap) builds with
# clang -fmodules, and a C file that imports it links against libchat and runs.
#   check_modulemap.sh CLANG INCLUDE_DIR LIBDIR SOURCE [SANITIZE]
# SANITIZE: the build's b_sanitize (its libchat.so needs the sanitizer runtime linked in).
set -eu
clang=$1 inc=$2 libdir=$3 src=$4 sanitize=${5:-none}
san=""
if [ "$sanitize" != none ]; then san="-fsanitize=$sanitize"; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$clang" $san -fmodules -fmodules-cache-path="$tmp/cache" -Werror -Wall -Wextra -I"$inc" \
  "$src" -o "$tmp/import" -L"$libdir" -lchat -Wl,-rpath,"$libdir"
"$tmp/import"
