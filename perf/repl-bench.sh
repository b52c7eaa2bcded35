#!/usr/bin/env bash
# perf/repl-bench.sh - full syncs and the replication stream, a redcell master against a
# stock redis-server master, each followed by a stock redis-server replica.
#
# For each master in turn (redcell, redis, redcell, redis, ... ROUNDS rounds):
#   1. preload KEYS string keys of DATA_SIZE bytes on the master
#        memtier_benchmark --ratio 1:0 --key-pattern P:P --key-maximum KEYS -n allkeys
#                          -c 1 -t 1 --pipeline 64 -d DATA_SIZE
#   2. latency without replicas: memtier -c 50 -t 1 --pipeline 1 --ratio 1:10
#      --key-pattern R:R --key-maximum KEYS -d DATA_SIZE --test-time DURATION, polling
#      INFO every 50 ms as step 3 does
#   3. the same load while fresh stock replicas full-sync back to back (a new empty
#      replica as soon as the last one is up); each sync's time is from the replica's
#      start until its INFO says master_link_status:up
#   4. stream: one replica attached, memtier writes only (--ratio 1:0, pipeline 16) for
#      DURATION seconds; then the time the replica needs to reach the master's offset
# Reported per run: ops/s, p99, p99.9 (ms) without and during full syncs, syncs done, mean
# sync seconds, stream writes/s, catch-up seconds after the writers stop.
# The master runs on SERVER_CPU, memtier and the replica share LOAD_CPU. Both masters keep
# Redis 7.0's diskless sync but without its 5 s wait for more replicas
# (--repl-diskless-sync-delay 0).
# REPLICA=redcell makes the replicas redcell (--shards 1) instead of stock: with it the two
# masters give redcell->redcell and stock->redcell. REPLICA=rdb-only isolates the master's
# side of a full sync: the "replica" is `redis-cli --rdb /dev/null` (REPLCONF rdb-only, the
# RDB thrown away: no replica loading on memtier's CPU), nothing polls the master in either
# run, and the stream step is skipped.
#
# RATE=N paces every memtier connection to N requests/s (--rate-limiting; 50 connections, so
# 50*N ops/s) in steps 2 and 3, so the load generator leaves its CPU partly idle for the
# replica that loads there; without it memtier saturates LOAD_CPU and any replica loading
# beside it shows up as master latency. Keep 50*N well below both masters' unpaced ops/s.
#
# Environment (defaults in brackets):
#   REDCELL_BIN  [<repo>/target/release/redcell-server]   REDIS_BIN [redis-server]
#   KEYS [1000000]  DATA_SIZE [100]  DURATION [20]  ROUNDS [2]  SHARDS [1]  REPLICA [stock]
#   SERVER_CPU [0]  LOAD_CPU [1]  OUT_DIR [<repo>/perf/out]  RATE [unpaced]  REPLICA_NICE [0]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REDCELL_BIN=${REDCELL_BIN:-$REPO_ROOT/target/release/redcell-server}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
KEYS=${KEYS:-1000000}
DATA_SIZE=${DATA_SIZE:-100}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
SHARDS=${SHARDS:-1}
REPLICA=${REPLICA:-stock}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT_DIR=${OUT_DIR:-$REPO_ROOT/perf/out}
RATE=${RATE:-}
REPLICA_NICE=${REPLICA_NICE:-0}

die() { echo "repl-bench.sh: error: $*" >&2; exit 1; }
[[ -x $REDCELL_BIN ]] || die "$REDCELL_BIN is not executable (cargo build --release)"
[[ -n $REDIS_BIN && -x $REDIS_BIN ]] || die "redis-server not found"
command -v memtier_benchmark >/dev/null || die "memtier_benchmark not on PATH"
command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"

RUN_DIR="$OUT_DIR/repl-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN_DIR"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_ping() {  # port pid log
  local i
  for ((i = 0; i < 3000; i++)); do
    [[ $(redis-cli -p "$1" PING 2>/dev/null) == PONG ]] && return 0
    kill -0 "$2" 2>/dev/null || die "server exited (log $3)"
    sleep 0.1
  done
  die "no PONG (log $3)"
}

start_master() {  # kind dir port -> MASTER_PID
  local kind=$1 dir=$2 p=$3
  case $kind in
    redcell) taskset -c "$SERVER_CPU" "$REDCELL_BIN" --port "$p" --shards "$SHARDS" \
               --save '' --repl-diskless-sync-delay 0 --dir "$dir" >"$dir/master.log" 2>&1 & ;;
    redis) taskset -c "$SERVER_CPU" "$REDIS_BIN" --port "$p" --bind 127.0.0.1 --save '' \
             --appendonly no --repl-diskless-sync-delay 0 --dir "$dir" >"$dir/master.log" 2>&1 & ;;
  esac
  MASTER_PID=$!
  PIDS+=("$MASTER_PID")
  wait_ping "$p" "$MASTER_PID" "$dir/master.log"
}

start_replica() {  # dir master-port [nice] -> REPLICA_PID, REPLICA_PORT
  local dir=$1 mp=$2 niceness=${3:-0}
  mkdir -p "$dir"
  REPLICA_PORT=$(port)
  case $REPLICA in
    redcell) nice -n "$niceness" taskset -c "$LOAD_CPU" "$REDCELL_BIN" --port "$REPLICA_PORT" --shards 1 --save '' \
               --dir "$dir" --replicaof 127.0.0.1 "$mp" >"$dir/replica.log" 2>&1 & ;;
    *) nice -n "$niceness" taskset -c "$LOAD_CPU" "$REDIS_BIN" --port "$REPLICA_PORT" --bind 127.0.0.1 --save '' \
         --appendonly no --dir "$dir" --replicaof 127.0.0.1 "$mp" >"$dir/replica.log" 2>&1 & ;;
  esac
  REPLICA_PID=$!
  PIDS+=("$REPLICA_PID")
  wait_ping "$REPLICA_PORT" "$REPLICA_PID" "$dir/replica.log"
}

field() {  # port section field
  redis-cli -p "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f {print $2}'
}

wait_link_up() {  # replica-port
  until [[ $(field "$1" replication master_link_status) == up ]]; do sleep 0.05; done
}

load() {  # port out-file ratio pipeline [rate]
  taskset -c "$LOAD_CPU" memtier_benchmark -s 127.0.0.1 -p "$1" -t 1 -c 50 --pipeline "$4" \
    ${5:+--rate-limiting="$5"} \
    --ratio "$3" --key-pattern R:R --key-minimum 1 --key-maximum "$KEYS" -d "$DATA_SIZE" \
    --test-time "$DURATION" --print-percentiles 50,99,99.9 --hide-histogram >"$2" 2>/dev/null
}

totals() {  # memtier output -> "ops p99 p99.9"
  awk '/^Totals/{print $2, $(NF-2), $(NF-1)}' "$1"
}

echo "replicas: $REPLICA (nice $REPLICA_NICE)${RATE:+, paced to $RATE requests/s per connection}"
printf '%-8s %5s | %10s %7s %7s | %10s %7s %7s %5s %7s | %10s %8s\n' master round \
  ops/s p99 p99.9 ops/s p99 p99.9 syncs sync_s stream/s catchup_s
for ((round = 1; round <= ROUNDS; round++)); do
  for kind in redcell redis; do
    dir="$RUN_DIR/$kind-$round"; mkdir -p "$dir"
    mp=$(port)
    start_master "$kind" "$dir" "$mp"
    taskset -c "$LOAD_CPU" memtier_benchmark -s 127.0.0.1 -p "$mp" -t 1 -c 1 --pipeline 64 \
      --ratio 1:0 --key-pattern P:P --key-minimum 1 --key-maximum "$KEYS" -n allkeys \
      -d "$DATA_SIZE" --hide-histogram >/dev/null 2>&1
    # The baseline polls INFO as often as the sync loop's wait_link_up does: redis-cli
    # every 50 ms alone doubled redcell's p99 (it takes CPU from memtier).
    load "$mp" "$dir/plain.txt" 1:10 1 "$RATE" &
    lp=$!
    while kill -0 "$lp" 2>/dev/null; do
      [[ $REPLICA == rdb-only ]] || field "$mp" replication master_link_status >/dev/null
      sleep 0.05
    done
    wait "$lp" || true
    read -r ops0 p990 p9990 < <(totals "$dir/plain.txt")
    # Full syncs back to back under the same load.
    load "$mp" "$dir/sync.txt" 1:10 1 "$RATE" &
    lp=$!
    syncs=0 sync_total=0
    while kill -0 "$lp" 2>/dev/null; do
      t0=$(date +%s.%N)
      if [[ $REPLICA == rdb-only ]]; then
        # (it exits 1: /dev/null cannot be fsynced, after the whole transfer)
        taskset -c "$LOAD_CPU" redis-cli -p "$mp" --rdb /dev/null >/dev/null 2>&1 || true
        t1=$(date +%s.%N)
      else
        start_replica "$dir/replica-$syncs" "$mp" "$REPLICA_NICE"
        wait_link_up "$REPLICA_PORT"
        t1=$(date +%s.%N)
        kill -KILL "$REPLICA_PID"; wait "$REPLICA_PID" 2>/dev/null || true
      fi
      if kill -0 "$lp" 2>/dev/null; then
        syncs=$((syncs + 1)); sync_total=$(echo "$sync_total + $t1 - $t0" | bc)
      fi
    done
    wait "$lp" || true
    read -r ops1 p991 p9991 < <(totals "$dir/sync.txt")
    sync_s=$( ((syncs > 0)) && echo "scale=2; $sync_total / $syncs" | bc || echo -)
    if [[ $REPLICA == rdb-only ]]; then
      kill -KILL "$MASTER_PID" 2>/dev/null || true
      wait 2>/dev/null || true
      printf '%-8s %5d | %10s %7s %7s | %10s %7s %7s %5d %7s | %10s %8s\n' "$kind" "$round" \
        "$ops0" "$p990" "$p9990" "$ops1" "$p991" "$p9991" "$syncs" "$sync_s" - -
      continue
    fi
    # The stream: writes only, one replica following.
    start_replica "$dir/replica-stream" "$mp"
    wait_link_up "$REPLICA_PORT"
    load "$mp" "$dir/stream.txt" 1:0 16
    read -r ops2 _ _ < <(totals "$dir/stream.txt")
    t0=$(date +%s.%N)
    until [[ $(field "$mp" replication master_repl_offset) == $(field "$REPLICA_PORT" replication slave_repl_offset) ]]; do
      sleep 0.05
    done
    t1=$(date +%s.%N)
    catchup=$(echo "scale=2; ($t1 - $t0) / 1" | bc)
    kill -KILL "$REPLICA_PID" "$MASTER_PID" 2>/dev/null || true
    wait 2>/dev/null || true
    printf '%-8s %5d | %10s %7s %7s | %10s %7s %7s %5d %7s | %10s %8s\n' "$kind" "$round" \
      "$ops0" "$p990" "$p9990" "$ops1" "$p991" "$p9991" "$syncs" "$sync_s" "$ops2" "$catchup"
  done
done
echo "raw output: $RUN_DIR"
