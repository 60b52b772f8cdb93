#!/bin/sh
# Make the certificates docker-compose.yml mounts: deploy/make-tls.sh [FOLDER]
#
# FOLDER defaults to deploy/tls, which is never committed (.gitignore) nor copied into an
# image (.dockerignore). One private CA, and a certificate and key per party, each in a
# folder of its own with a copy of the CA certificate; compose mounts each folder
# read-only at /tls in that party's container only:
#
#   ca/          ca.pem and ca-key.pem: the CA. Mounted nowhere: keep ca-key.pem offline.
#   temporal/    the Temporal server, for the name `temporal` (and localhost, 127.0.0.1),
#                server and client use: its internal services present it to each other.
#   admin/       temporal-admin-tools      (client use only, like the three below)
#   ui/          temporal-ui
#   complaints/  the worker and the web app
#   operator/    the staff CLI and the `temporal` CLI on the Docker host
#
# EC P-256 keys, SHA-256 signatures; certificates valid TLS_DAYS days (default 825), the
# CA ten years. Keys are 0600 in 0700 folders. An existing CA is never overwritten.
# deploy/README.md says how to hand each folder to the user its container runs as.
set -eu

out=${1:-"$(dirname "$0")/tls"}
days=${TLS_DAYS:-825}
umask 077

if [ -e "$out/ca/ca.pem" ] || [ -e "$out/ca/ca-key.pem" ]; then
  echo "$out/ca already holds a CA: this would replace every certificate; move $out away to start again" >&2
  exit 1
fi
mkdir -p "$out/ca"
openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -sha256 \
  -days 3650 -subj "/CN=complaints Temporal CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout "$out/ca/ca-key.pem" -out "$out/ca/ca.pem"

# issue FOLDER COMMON_NAME EXTENDED_KEY_USAGE [SUBJECT_ALT_NAMES]
issue() {
  dir="$out/$1"
  mkdir -p "$dir"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=$2" \
    -keyout "$dir/key.pem" -out "$dir/request.csr"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature"
    echo "extendedKeyUsage=$3"
    if [ -n "${4:-}" ]; then echo "subjectAltName=$4"; fi
  } > "$dir/extensions.cnf"
  openssl x509 -req -sha256 -days "$days" -in "$dir/request.csr" \
    -CA "$out/ca/ca.pem" -CAkey "$out/ca/ca-key.pem" \
    -CAserial "$out/ca/ca.srl" -CAcreateserial \
    -extfile "$dir/extensions.cnf" -out "$dir/cert.pem"
  rm "$dir/request.csr" "$dir/extensions.cnf"
  cp "$out/ca/ca.pem" "$dir/ca.pem"
}

issue temporal temporal serverAuth,clientAuth "DNS:temporal,DNS:localhost,IP:127.0.0.1"
issue admin temporal-admin-tools clientAuth
issue ui temporal-ui clientAuth
issue complaints complaints clientAuth
issue operator operator clientAuth

echo "certificates written to $out; next: the ownership step in deploy/README.md" >&2
