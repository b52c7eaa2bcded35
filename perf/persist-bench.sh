#!/usr/bin/env bash
# perf/persist-bench.sh - RDB persistence of redcell against a stock redis-server.
#
# For each server in turn (redcell, redis, redcell, redis, ... ROUNDS rounds), on a
# fresh data directory:
#   1. preload KEYS string keys of DATA_SIZE bytes
#        memtier_benchmark --ratio 1:0 --key-pattern P:P --key-maximum KEYS -n allkeys
#                          -c 1 -t 1 --pipeline 64 -d DATA_SIZE
#   2. latency without a save: memtier -c 50 -t 1 --pipeline 1 --ratio 1:10
#      --key-pattern R:R --key-maximum KEYS -d DATA_SIZE --test-time DURATION, while
#      redis-cli polls INFO persistence every 100 ms (as in 3, so that the two runs
#      differ only by the saves)
#   3. the same load while BGSAVE runs back to back (a new one as soon as the last
#      ended); the server's resident memory is sampled every 100 ms meanwhile
#   4. SAVE: wall time of the command, file size
#   5. restart on the file: load time as the server logs it ("DB loaded from disk")
# Reported per run: ops/s, p99 and p99.9 (ms) without and during BGSAVE, BGSAVEs
# completed, peak RSS growth during BGSAVE (the parent process: a forked child's
# copy-on-write pages are not in it), SAVE seconds, file MB, load seconds.
#
# Environment (defaults in brackets):
#   REDCELL_BIN  [<repo>/target/release/redcell-server]   REDIS_BIN [redis-server]
#   KEYS [1000000]  DATA_SIZE [100]  DURATION [20] (0: skip the latency runs)  ROUNDS [2]
#   SERVERS ["redcell redis"] (which servers each round runs)
#   SHARDS [1] (redcell --shards)  SERVER_CPU [0]  LOAD_CPU [1]  OUT_DIR [<repo>/perf/out]
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REDCELL_BIN=${REDCELL_BIN:-$REPO_ROOT/target/release/redcell-server}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
KEYS=${KEYS:-1000000}
DATA_SIZE=${DATA_SIZE:-100}
DURATION=${DURATION:-20}
ROUNDS=${ROUNDS:-2}
SERVERS=${SERVERS:-redcell redis}
SHARDS=${SHARDS:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT_DIR=${OUT_DIR:-$REPO_ROOT/perf/out}

die() { echo "persist-bench.sh: error: $*" >&2; exit 1; }
[[ -x $REDCELL_BIN ]] || die "$REDCELL_BIN is not executable (cargo build --release)"
[[ -n $REDIS_BIN && -x $REDIS_BIN ]] || die "redis-server not found"
command -v memtier_benchmark >/dev/null || die "memtier_benchmark not on PATH"
command -v redis-cli >/dev/null || die "redis-cli not found (apt-get install redis-tools)"

RUN_DIR="$OUT_DIR/persist-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN_DIR"
PID=
cleanup() { [[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start() {  # kind dir port log
  local kind=$1 dir=$2 p=$3 log=$4 i
  case $kind in
    redcell) taskset -c "$SERVER_CPU" "$REDCELL_BIN" --port "$p" --shards "$SHARDS" \
               --save '' --dir "$dir" >"$log" 2>&1 & ;;
    redis) taskset -c "$SERVER_CPU" "$REDIS_BIN" --port "$p" --bind 127.0.0.1 --save '' \
             --appendonly no --dir "$dir" >"$log" 2>&1 & ;;
  esac
  PID=$!
  for ((i = 0; i < 3000; i++)); do
    [[ $(redis-cli -p "$p" PING 2>/dev/null) == PONG ]] && return 0
    kill -0 "$PID" 2>/dev/null || die "$kind exited (log $log)"
    sleep 0.1
  done
  die "$kind did not answer PING (log $log)"
}

stop() { redis-cli -p "$1" SHUTDOWN NOSAVE >/dev/null 2>&1 || true; wait "$PID" 2>/dev/null || true; PID=; }

rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$1/status"; }

load() {  # port out-file
  taskset -c "$LOAD_CPU" memtier_benchmark -s 127.0.0.1 -p "$1" -t 1 -c 50 --pipeline 1 \
    --ratio 1:10 --key-pattern R:R --key-minimum 1 --key-maximum "$KEYS" -d "$DATA_SIZE" \
    --test-time "$DURATION" --print-percentiles 50,99,99.9 --hide-histogram >"$2" 2>/dev/null
}

totals() {  # memtier output -> "ops p99 p99.9"
  awk '/^Totals/{print $2, $(NF-2), $(NF-1)}' "$1"
}

printf '%-8s %5s | %10s %7s %7s | %10s %7s %7s %5s %8s | %6s %7s %6s\n' server round \
  ops/s p99 p99.9 ops/s p99 p99.9 saves rss+MB save_s file_MB load_s
for ((round = 1; round <= ROUNDS; round++)); do
  for kind in $SERVERS; do
    dir="$RUN_DIR/$kind-$round"; mkdir -p "$dir"
    p=$(port); log="$dir/server.log"
    start "$kind" "$dir" "$p" "$log"
    taskset -c "$LOAD_CPU" memtier_benchmark -s 127.0.0.1 -p "$p" -t 1 -c 1 --pipeline 64 \
      --ratio 1:0 --key-pattern P:P --key-minimum 1 --key-maximum "$KEYS" -n allkeys \
      -d "$DATA_SIZE" --hide-histogram >/dev/null 2>&1
    ops0=- p990=- p9990=- ops1=- p991=- p9991=- saves=0
    base_rss=$(rss_kb "$PID"); peak_rss=$base_rss
    if ((DURATION > 0)); then
      # Both runs poll the server the same way (redis-cli every 100 ms, which alone
      # doubled redcell's p99 by taking CPU from memtier); only the second starts BGSAVEs.
      base_rss=$(rss_kb "$PID"); peak_rss=$base_rss
      for run in plain bgsave; do
        load "$p" "$dir/$run.txt" &
        lp=$!
        while kill -0 "$lp" 2>/dev/null; do
          if [[ $(redis-cli -p "$p" INFO persistence | tr -d '\r' | awk -F: '/^rdb_bgsave_in_progress/{print $2}') == 0 && $run == bgsave ]]; then
            redis-cli -p "$p" BGSAVE >/dev/null && saves=$((saves + 1))
          fi
          r=$(rss_kb "$PID")
          if [[ $run == plain ]]; then base_rss=$r; elif ((r > peak_rss)); then peak_rss=$r; fi
          sleep 0.1
        done
        wait "$lp"
        ((peak_rss < base_rss)) && peak_rss=$base_rss
      done
      read -r ops0 p990 p9990 < <(totals "$dir/plain.txt")
      read -r ops1 p991 p9991 < <(totals "$dir/bgsave.txt")
    fi
    while [[ $(redis-cli -p "$p" INFO persistence | tr -d '\r' | awk -F: '/^rdb_bgsave_in_progress/{print $2}') != 0 ]]; do sleep 0.1; done
    t0=$(date +%s.%N); redis-cli -p "$p" SAVE >/dev/null; t1=$(date +%s.%N)
    save_s=$(echo "$t1 - $t0" | bc)
    file_mb=$(echo "scale=1; $(stat -c %s "$dir/dump.rdb") / 1048576" | bc)
    stop "$p"
    start "$kind" "$dir" "$p" "$dir/restart.log"
    load_s=$(grep -o 'DB loaded from disk: [0-9.]*' "$dir/restart.log" | awk '{print $NF}')
    stop "$p"
    printf '%-8s %5d | %10s %7s %7s | %10s %7s %7s %5d %8d | %6.2f %7s %6s\n' "$kind" "$round" \
      "$ops0" "$p990" "$p9990" "$ops1" "$p991" "$p9991" "$saves" $(((peak_rss - base_rss) / 1024)) \
      "$save_s" "$file_mb" "$load_s"
  done
done
echo "raw output: $RUN_DIR"
