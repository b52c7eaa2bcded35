#!/usr/bin/env bash
# perf/failover-time.sh - time from kill -9 of a master to writes accepted again by its
# replica, a redcell replica against a stock one, in the same kind of cluster.
#
# Each round builds 3 stock masters (`redis-cli --cluster create`) and adds one replica of
# the first (redcell or redis, alternating), waits for its link, kills the master with
# SIGKILL and sends SET to the replica every 10 ms until it answers OK (it answers MOVED
# while it is a replica). Prints the milliseconds per round and the medians.
#
# Knobs: REDCELL_BIN [<repo>/target/release/redcell-server], SHARDS [2], NODE_TIMEOUT [2000],
#        ROUNDS [3]. Usage: perf/failover-time.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
REDCELL_BIN=$(realpath "${REDCELL_BIN:-$repo/target/release/redcell-server}")
SHARDS=${SHARDS:-2}
NODE_TIMEOUT=${NODE_TIMEOUT:-2000}
ROUNDS=${ROUNDS:-3}
export NODE_TIMEOUT

command -v redis-cli >/dev/null || { echo "redis-cli is required (apt install redis-tools)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is required (apt install redis-server)" >&2; exit 1; }
[ -x "$REDCELL_BIN" ] || { echo "no $REDCELL_BIN (cargo build --release)" >&2; exit 1; }

# shellcheck source=perf/cluster-nodes.sh
source "$repo/perf/cluster-nodes.sh"

now_ms() { date +%s%3N; }

# one_round KIND: sets MS to the milliseconds from the kill to the first accepted SET. (Not
# run in a command substitution: its subshell would lose the PIDs that cleanup must stop.)
one_round() {
    local kind=$1 addrs=() ports=() m0 m0pid replica master_id key
    cleanup
    for _ in 1 2 3; do
        start_node redis
        addrs+=("127.0.0.1:$NODE_PORT")
        ports+=("$NODE_PORT")
    done
    m0=${ports[0]}
    m0pid=${PIDS[0]}
    redis-cli --cluster create "${addrs[@]}" --cluster-yes >/dev/null
    start_node "$kind"
    replica=$NODE_PORT
    master_id=$(redis-cli -p "$m0" CLUSTER MYID)
    redis-cli --cluster add-node "127.0.0.1:$replica" "127.0.0.1:$m0" --cluster-slave \
        --cluster-master-id "$master_id" >/dev/null
    for _ in $(seq 600); do
        redis-cli -p "$replica" INFO replication | grep -q 'master_link_status:up' && break
        sleep 0.1
    done
    # A key of the first master's slots.
    for i in $(seq 1000); do
        if [ "$(redis-cli -p "$m0" SET "k$i" x 2>/dev/null)" = OK ]; then key=k$i; break; fi
    done
    sleep 1
    local t0 t1
    t0=$(now_ms)
    kill -9 "$m0pid"
    until [ "$(redis-cli -p "$replica" SET "$key" y 2>/dev/null)" = OK ]; do sleep 0.01; done
    t1=$(now_ms)
    MS=$((t1 - t0))
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rc=() rs=()
for r in $(seq "$ROUNDS"); do
    one_round redcell; a=$MS; rc+=("$a")
    one_round redis; b=$MS; rs+=("$b")
    echo "round $r: redcell replica ${a} ms, stock replica ${b} ms"
done
echo "median: redcell $(printf '%s\n' "${rc[@]}" | median) ms, stock $(printf '%s\n' "${rs[@]}" | median) ms (node timeout ${NODE_TIMEOUT} ms)"
