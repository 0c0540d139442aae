#!/bin/sh
# Secrets (token tags, keys, password hashes, signed media URLs) are compared only in constant
# time: crypto_auth_verify, crypto_verify_*, sodium_memcmp, crypto_pwhash_str_verify
# (doc/security.md). Checked here:
#  - lib/auth, which holds the token keys and checks tokens and password hashes, calls no plain
#    comparison at all;
#  - the functions of lib/server/media_parse.c that derive the URL key, compute and check a
#    signed media URL's MAC call none either, and chat__media_verify compares the MAC with
#    crypto_verify_*.
# Every folder, file and function named here must exist: one that moved or was renamed fails the
# check rather than leave it passing over nothing. Update the lists with the code.
#
# usage: check_secret_compares.sh SOURCE_ROOT
#        check_secret_compares.sh --self-test SOURCE_ROOT
#   The self-test copies the checked files, puts a memcmp into each place in turn, and fails
#   unless the check then fails every time.
plain='\b(memcmp|bcmp|strcmp|strncmp|strcasecmp|strncasecmp)[[:space:]]*\('

whole_dirs="lib/auth"
media=lib/server/media_parse.c
media_funcs="url_key mac_field url_mac chat__media_sign chat__media_verify"

# The lines of function $2's definition in file $1 (from its signature at column 0 to the
# closing brace at column 0), each prefixed with file:line.
body() {
  awk -v f="$2" '
    !inside && $0 ~ ("^[A-Za-z_].*[ *]" f "\\(") && $0 !~ /;[[:space:]]*$/ { inside = 1 }
    inside { print FILENAME ":" FNR ": " $0 }
    inside && /^}/ { exit }
  ' "$1"
}

check() {
  croot=$1
  status=0
  for dir in $whole_dirs; do
    if ! ls "$croot/$dir"/*.c >/dev/null 2>&1; then
      echo "$dir: no C files (moved? update $0)" >&2
      status=1
      continue
    fi
    if grep -nE "$plain" "$croot/$dir"/*.c "$croot/$dir"/*.h; then
      echo "plain comparison in $dir: use sodium_memcmp or crypto_verify_*" >&2
      status=1
    fi
  done
  if [ ! -f "$croot/$media" ]; then
    echo "$media is missing (moved? update $0)" >&2
    return 1
  fi
  for fn in $media_funcs; do
    lines=$(body "$croot/$media" "$fn")
    if [ -z "$lines" ]; then
      echo "$media: no function $fn (renamed? update $0)" >&2
      status=1
      continue
    fi
    if printf '%s\n' "$lines" | grep -E "$plain"; then
      echo "plain comparison in $fn ($media): use crypto_verify_* or sodium_memcmp" >&2
      status=1
    fi
  done
  if ! body "$croot/$media" chat__media_verify | grep -qE '\b(crypto_verify_[0-9]+|sodium_memcmp)\('; then
    echo "chat__media_verify ($media) compares the MAC without crypto_verify_*" >&2
    status=1
  fi
  return $status
}

self_test() {
  src=$1
  tmp=$(mktemp -d) || exit 1
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/lib/server"
  cp -r "$src/lib/auth" "$tmp/lib/"
  cp "$src/$media" "$tmp/$media"
  if ! check "$tmp" >/dev/null 2>&1; then
    echo "self-test: the unchanged copy already fails" >&2
    exit 1
  fi
  failures=0
  # One plain comparison after the opening brace of each function, then in each lib/auth file.
  for fn in $media_funcs; do
    cp "$src/$media" "$tmp/$media"
    awk -v f="$fn" '
      { print }
      !done && $0 ~ ("^[A-Za-z_].*[ *]" f "\\(") && $0 !~ /;[[:space:]]*$/ { seen = 1 }
      seen && !done && /^\{/ { print "    (void)memcmp(\"a\", \"b\", 1);"; done = 1 }
    ' "$src/$media" >"$tmp/$media"
    if check "$tmp" >/dev/null 2>&1; then
      echo "self-test: a memcmp in $fn was not caught" >&2
      failures=1
    fi
  done
  cp "$src/$media" "$tmp/$media"
  for f in "$src"/lib/auth/*.c; do
    cp -r "$src/lib/auth" "$tmp/lib/"
    printf 'static int leak(const char *a, const char *b) { return strcmp(a, b); }\n' \
      >>"$tmp/lib/auth/$(basename "$f")"
    if check "$tmp" >/dev/null 2>&1; then
      echo "self-test: a strcmp in lib/auth/$(basename "$f") was not caught" >&2
      failures=1
    fi
  done
  cp -r "$src/lib/auth" "$tmp/lib/"
  # A constant-time compare swapped for a plain one, and a renamed function.
  sed 's/crypto_verify_32(want, u.sig) == 0/memcmp(want, u.sig, 32) == 0/' "$src/$media" \
    >"$tmp/$media"
  if check "$tmp" >/dev/null 2>&1; then
    echo "self-test: chat__media_verify's crypto_verify_32 replaced by memcmp was not caught" >&2
    failures=1
  fi
  sed 's/chat__media_verify(/chat__media_check(/' "$src/$media" >"$tmp/$media"
  if check "$tmp" >/dev/null 2>&1; then
    echo "self-test: a renamed chat__media_verify was not noticed" >&2
    failures=1
  fi
  rm -f "$tmp/$media"
  if check "$tmp" >/dev/null 2>&1; then
    echo "self-test: a missing $media was not noticed" >&2
    failures=1
  fi
  [ $failures = 0 ] && echo "self-test: every planted comparison was caught"
  exit $failures
}

if [ "$1" = --self-test ]; then
  self_test "${2:?source root}"
fi
check "${1:?source root}"
