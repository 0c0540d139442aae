#!/bin/sh
# Secrets (token tags, keys, password hashes, signed URLs) are compared only in constant time:
# crypto_auth_verify, crypto_verify_*, sodium_memcmp, crypto_pwhash_str_verify. The module
# that holds the token and password secrets must not call a plain comparison at all
# (doc/security.md: Tokens). lib/media is checked too if it ever exists.
# usage: check_secret_compares.sh SOURCE_ROOT
root=${1:?source root}
status=0
for dir in lib/auth lib/media; do
  [ -d "$root/$dir" ] || continue
  if grep -nE '\b(memcmp|strcmp|strncmp|strcasecmp|bcmp)\s*\(' "$root/$dir"/*.c "$root/$dir"/*.h; then
    echo "plain comparison in $dir: use sodium_memcmp or crypto_auth_verify" >&2
    status=1
  fi
done
exit $status
