#!/bin/sh
# Make a throwaway PKI for the TLS tests in directory $1 (created if missing), with the openssl
# command (Debian package openssl):
#   ca.pem              a test CA (the one clients are told to trust)
#   server.pem/.key     a server certificate signed by it, for 127.0.0.1 and localhost
#   rogue-ca.pem        another CA, unknown to clients
#   rogue.pem/.key      a server certificate for the same names, signed by the rogue CA
# Keys are P-256; certificates are valid for 30 days from now.
set -eu
dir=${1:?usage: make_pki.sh DIR}
mkdir -p "$dir"
cd "$dir"
ext=san.ext
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n' > "$ext"
for who in ca rogue-ca; do
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$who.key" -out "$who.pem" -days 30 -subj "/CN=libchat test $who" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
done
sign() { # sign NAME CA
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$1.key" \
    -out "$1.csr" -subj "/CN=localhost" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 30 \
    -extfile "$ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}
sign server ca
sign rogue rogue-ca
chmod 600 ./*.key
