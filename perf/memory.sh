#!/usr/bin/env bash
# perf/memory.sh - memory per key of redcell against a stock redis-server, same data.
#
# For every workload, starts a fresh server (redcell --shards 1, then redis-server) on a
# free 127.0.0.1 port, loads N keys through `redis-cli --pipe`, and reports per key:
#   rss/key    growth of the process's resident set (VmRSS), both servers
#   used/key   growth of INFO used_memory (allocator bytes, both servers)
# Workloads (all keys "k:<i>", i < N):
#   string   SET k:i <16-byte value>
#   hash     HSET k:i with 4 fields of 8-byte values   (listpack in both)
#   set-int  SADD k:i with 4 integers                  (intset in both)
#   set-str  SADD k:i with 4 short strings             (7.0: hashtable; redcell: packed)
#   zset     ZADD k:i with 4 members                   (listpack in both)
#   list     RPUSH k:i with 4 short elements           (quicklist/listpack)
# A workload the server does not know (unknown command) is reported as such.
#
# Knobs: N [1000000], WORKLOADS ["string hash set-int set-str zset list"],
#        REDCELL_BIN [<repo>/target/release/redcell-server], REDIS_BIN [redis-server].
# Usage: perf/memory.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-1000000}
WORKLOADS=${WORKLOADS:-"string hash set-int set-str zset list"}
REDCELL_BIN=${REDCELL_BIN:-$repo/target/release/redcell-server}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
command -v redis-cli >/dev/null || { echo "redis-cli is required (apt install redis-tools)" >&2; exit 1; }
[ -x "$REDCELL_BIN" ] || { echo "no $REDCELL_BIN (cargo build --release)" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# The commands of one workload, as RESP, on stdout.
generate() {
    awk -v n="$N" -v w="$1" 'function cmd(s,   parts, k, out) {
            k = split(s, parts, " "); out = "*" k "\r\n"
            for (j = 1; j <= k; j++) out = out "$" length(parts[j]) "\r\n" parts[j] "\r\n"
            printf "%s", out
        }
        BEGIN { for (i = 0; i < n; i++) {
            if (w == "string")  cmd("SET k:" i " vvvvvvvv" sprintf("%08d", i))
            if (w == "hash")    cmd("HSET k:" i " f1 v" sprintf("%07d", i) " f2 vvvvvvvv f3 vvvvvvvv f4 vvvvvvvv")
            if (w == "set-int") cmd("SADD k:" i " " i " " i+1 " " i+2 " " i+3)
            if (w == "set-str") cmd("SADD k:" i " m1 m2 m3 m" i)
            if (w == "zset")    cmd("ZADD k:" i " 1 m1 2 m2 3 m3 " i " m" i)
            if (w == "list")    cmd("RPUSH k:" i " e1 e2 e3 e" i)
        } }'
}

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
used() { redis-cli -p "$1" INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ { print $2 }'; }

# measure NAME CMD... : starts the server, loads each workload, prints one row per workload.
measure() {
    local name=$1; shift
    for w in $WORKLOADS; do
        local port; port=$(free_port)
        "$@" --port "$port" >/dev/null 2>&1 &
        local pid=$!
        for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
        local rss0 used0 out
        rss0=$(rss_kb "$pid"); used0=$(used "$port")
        out=$(generate "$w" | redis-cli -p "$port" --pipe 2>&1 | tail -1)
        sleep 1
        if ! echo "$out" | grep -q "errors: 0"; then
            printf "%-8s %-8s %s\n" "$name" "$w" "load failed: $out"
        else
            local rss1 used1
            rss1=$(rss_kb "$pid"); used1=$(used "$port")
            awk -v n="$N" -v name="$name" -v w="$w" -v r0="$rss0" -v r1="$rss1" -v u0="$used0" -v u1="$used1" \
                'BEGIN { printf "%-8s %-8s %10.1f %10.1f\n", name, w, (r1 - r0) * 1024 / n, (u1 - u0) / n }'
        fi
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
    done
}

echo "N=$N keys per workload"
printf "%-8s %-8s %10s %10s\n" server workload rss/key used/key
# No save points and a scratch directory: the default save points would write a dump.rdb on
# each SIGTERM, which the next start would load into the "empty" server.
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
measure redcell "$REDCELL_BIN" --shards 1 --save '' --dir "$SCRATCH"
if [ -n "$REDIS_BIN" ]; then
    measure redis "$REDIS_BIN" --save '' --appendonly no
else
    echo "(no redis-server on PATH: redcell only)"
fi
