#!/usr/bin/env bash
# perf/zset-bench.sh - sorted-set commands on one large set, redcell against redis-server.
#
# Each round starts redcell (--shards 1) and then redis-server, each pinned to SERVER_CPU,
# and runs with redis-benchmark pinned to LOAD_CPU (50 clients, pipeline PIPELINE,
# random integers below MEMBERS):
#   ZADD z __rand_int__ m:__rand_int__   REQUESTS   (grows the set to ~MEMBERS: a skiplist)
#   ZRANK z m:__rand_int__               REQUESTS
#   ZRANGE z 0 9                         REQUESTS / 2
#   ZSCORE z m:__rand_int__              REQUESTS
# and prints requests/s and the server's CPU time per request (perf stat -e task-clock).
#
# Knobs: ROUNDS [2], REQUESTS [2000000], MEMBERS [100000], PIPELINE [16], SERVER_CPU [0],
#        LOAD_CPU [1], REDCELL_BIN [<repo>/target/release/redcell-server],
#        REDIS_BIN [redis-server from PATH].
# Usage: ROUNDS=2 perf/zset-bench.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-2}
REQUESTS=${REQUESTS:-2000000}
MEMBERS=${MEMBERS:-100000}
PIPELINE=${PIPELINE:-16}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
REDCELL_BIN=${REDCELL_BIN:-$repo/target/release/redcell-server}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
for tool in redis-benchmark perf taskset python3; do
    command -v "$tool" >/dev/null || { echo "zset-bench.sh: $tool is required" >&2; exit 1; }
done
[ -x "$REDCELL_BIN" ] || { echo "no $REDCELL_BIN (cargo build --release)" >&2; exit 1; }
[ -x "$REDIS_BIN" ] || { echo "no redis-server (apt-get install redis-server)" >&2; exit 1; }

work=$(mktemp -d)
server_pid=
cleanup() {
    [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run KIND NAME N ARGS...: one redis-benchmark phase against the running server.
run() {
    local kind=$1 name=$2 n=$3; shift 3
    perf stat -x, -e task-clock -p "$server_pid" -o "$work/perf" 2>/dev/null &
    local perf_pid=$!
    sleep 0.2
    local rps
    rps=$(taskset -c "$LOAD_CPU" redis-benchmark -p "$port" -c 50 -P "$PIPELINE" -n "$n" \
        -r "$MEMBERS" --csv "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"')
    kill -INT "$perf_pid"
    wait "$perf_pid" 2>/dev/null || true
    local ms
    ms=$(awk -F, '$3 ~ /task-clock/ {print $1}' "$work/perf")
    printf '%-8s %5s %-7s %12s %10s\n' "$kind" "$round" "$name" "$rps" \
        "$(awk -v m="$ms" -v n="$n" 'BEGIN {printf "%.0f", m * 1e6 / n}')"
}

printf '%-8s %5s %-7s %12s %10s\n' server round command requests/s cpu_ns/op
for round in $(seq 1 "$ROUNDS"); do
    for kind in redcell redis; do
        port=$(free_port)
        if [ "$kind" = redcell ]; then
            taskset -c "$SERVER_CPU" "$REDCELL_BIN" --port "$port" --shards 1 --save '' \
                --dir "$work" >"$work/server.log" 2>&1 &
        else
            taskset -c "$SERVER_CPU" "$REDIS_BIN" --port "$port" --save '' --appendonly no \
                --dir "$work" >"$work/server.log" 2>&1 &
        fi
        server_pid=$!
        for _ in $(seq 1 100); do
            [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && break
            sleep 0.1
        done
        run "$kind" ZADD "$REQUESTS" ZADD z __rand_int__ m:__rand_int__
        run "$kind" ZRANK "$REQUESTS" ZRANK z m:__rand_int__
        run "$kind" ZRANGE $((REQUESTS / 2)) ZRANGE z 0 9
        run "$kind" ZSCORE "$REQUESTS" ZSCORE z m:__rand_int__
        kill "$server_pid"
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    done
done
