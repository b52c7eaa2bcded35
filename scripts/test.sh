#!/usr/bin/env bash
# Runs the whole redcell test suite on a Debian machine, installing what the tests need
# (stock redis-server/redis-tools as interop peers, a C compiler for the long-double shim,
# util-linux for setpriv/prlimit, iproute2 for ss, python3-redis for the client-library scripting test,
# prometheus-redis-exporter for the INFO comparison test, openssl for the TLS tests' certificates) when
# it is missing. Needs root or sudo only to install.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v cc >/dev/null || need+=(gcc libc6-dev)
command -v setpriv >/dev/null && command -v prlimit >/dev/null || need+=(util-linux)
# ss shows the listeners' SO_MARK (tests/config_file.rs).
command -v ss >/dev/null || need+=(iproute2)
command -v prometheus-redis-exporter >/dev/null || need+=(prometheus-redis-exporter)
# The TLS tests make their CA and certificates at run time with the openssl command.
command -v openssl >/dev/null || need+=(openssl)
# redis-py (Debian's, for /usr/bin/python3): the scripting tests run its Lock unmodified.
/usr/bin/python3 -c 'import redis' 2>/dev/null || need+=(python3-redis)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
    # The Debian package may start a redis-server on 6379; the tests use their own ports.
fi
command -v cargo >/dev/null || { echo "cargo not found: install a Rust toolchain (https://rustup.rs)"; exit 1; }

cargo test --all-targets
