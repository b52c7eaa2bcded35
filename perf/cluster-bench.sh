#!/usr/bin/env bash
# perf/cluster-bench.sh - a 3-node redcell cluster against a 3-node stock Redis cluster.
#
# Builds each cluster on 127.0.0.1 (free ports, one temp dir per node, created with
# `redis-cli --cluster create`), then drives it with
#   memtier_benchmark --cluster-mode -t 2 -c 25 --ratio 1:10 --data-size 32
#                     --key-pattern R:R --pipeline N --test-time DURATION
# and prints ops/sec and latency for both, alternating redcell and redis for ROUNDS rounds,
# plus the median ratio. Without memtier_benchmark (not in Debian 12: build it from its
# public source and put it on PATH) it falls back to `redis-benchmark --cluster`
# (SET and GET phases, -P N). Every server it starts is stopped on exit.
#
# Knobs: REDCELL_BIN [<repo>/target/release/redcell-server], SHARDS per redcell node [1],
#        DURATION [15], PIPELINES ["1 16"], ROUNDS [2], RB_REQUESTS [300000].
# Usage: perf/cluster-bench.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
REDCELL_BIN=${REDCELL_BIN:-$repo/target/release/redcell-server}
SHARDS=${SHARDS:-1}
DURATION=${DURATION:-15}
PIPELINES=${PIPELINES:-"1 16"}
ROUNDS=${ROUNDS:-2}
RB_REQUESTS=${RB_REQUESTS:-300000}

command -v redis-cli >/dev/null || { echo "redis-cli is required (apt install redis-tools)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is required (apt install redis-server)" >&2; exit 1; }
[ -x "$REDCELL_BIN" ] || { echo "no $REDCELL_BIN (cargo build --release)" >&2; exit 1; }

# shellcheck source=perf/cluster-nodes.sh
source "$repo/perf/cluster-nodes.sh"

# start_cluster KIND: starts 3 nodes, creates the cluster, sets FIRST_PORT. (Not run in a
# command substitution: its subshell would lose the PIDs that cleanup must stop.)
start_cluster() {
    local kind=$1 addrs=() first=
    for _ in 1 2 3; do
        start_node "$kind"
        addrs+=("127.0.0.1:$NODE_PORT")
        first=${first:-$NODE_PORT}
    done
    redis-cli --cluster create "${addrs[@]}" --cluster-yes >/dev/null
    for _ in $(seq 100); do
        redis-cli -p "$first" CLUSTER INFO | grep -q cluster_state:ok && break
        sleep 0.1
    done
    FIRST_PORT=$first
}

# load PORT PIPELINE: prints "ops/sec p99_ms".
load() {
    local port=$1 pl=$2
    if command -v memtier_benchmark >/dev/null; then
        memtier_benchmark -s 127.0.0.1 -p "$port" --cluster-mode -t 2 -c 25 --ratio 1:10 \
            --data-size 32 --key-pattern R:R --pipeline "$pl" --test-time "$DURATION" \
            --hide-histogram 2>/dev/null | awk '/^Totals/ { print $2, $(NF-2) }'
    else
        redis-benchmark -h 127.0.0.1 -p "$port" --cluster -c 50 -P "$pl" -d 32 -r 1000000 \
            -t set,get -n "$RB_REQUESTS" -q 2>/dev/null |
            awk -F'[ :]+' '/requests per second/ { s += $2; n++ } END { printf "%.0f n/a\n", s / n }'
    fi
}

echo "3 masters per cluster; redcell with --shards $SHARDS per node"
printf "%-9s %-8s %-6s %12s %10s\n" pipeline server round ops/sec p99_ms
for pl in $PIPELINES; do
    rc=(); rd=()
    for round in $(seq "$ROUNDS"); do
        for kind in redcell redis; do
            start_cluster "$kind"
            read -r ops p99 < <(load "$FIRST_PORT" "$pl")
            cleanup
            printf "%-9s %-8s %-6s %12s %10s\n" "$pl" "$kind" "$round" "$ops" "$p99"
            if [ "$kind" = redcell ]; then rc+=("$ops"); else rd+=("$ops"); fi
        done
    done
    med() { printf "%s\n" "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
    awk -v a="$(med "${rc[@]}")" -v b="$(med "${rd[@]}")" -v pl="$pl" \
        'BEGIN { printf "pipeline %s: median redcell/redis = %.2fx\n", pl, (b > 0 ? a / b : 0) }'
done
