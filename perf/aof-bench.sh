#!/usr/bin/env bash
# perf/aof-bench.sh - write throughput with the AOF on, redcell against stock redis-server,
# for each appendfsync policy (always, everysec, no), alternating servers:
#   memtier_benchmark -t 1 -c 50 --pipeline PIPELINE --ratio 1:0 --key-pattern R:R
#                     -d 100 --test-time DURATION
# on a fresh --appendonly yes server (redcell --shards SHARDS) in a temporary directory.
# Reports ops/s and p99 (ms) per run. Environment: REDCELL_BIN, REDIS_BIN, DURATION [15],
# PIPELINE [1], SHARDS [1], SERVER_CPU [0], LOAD_CPU [1], OUT_DIR [<repo>/perf/out].
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REDCELL_BIN=${REDCELL_BIN:-$REPO_ROOT/target/release/redcell-server}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
DURATION=${DURATION:-15}
PIPELINE=${PIPELINE:-1}
SHARDS=${SHARDS:-1}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT_DIR=${OUT_DIR:-$REPO_ROOT/perf/out}
die() { echo "aof-bench.sh: error: $*" >&2; exit 1; }
[[ -x $REDCELL_BIN ]] || die "$REDCELL_BIN is not executable (cargo build --release)"
[[ -n $REDIS_BIN && -x $REDIS_BIN ]] || die "redis-server not found"
command -v memtier_benchmark >/dev/null || die "memtier_benchmark not on PATH"
RUN_DIR="$OUT_DIR/aof-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN_DIR"
PID=
trap '[[ -n $PID ]] && kill -KILL "$PID" 2>/dev/null; wait 2>/dev/null || true' EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
printf '%-8s %-9s %10s %8s\n' server fsync ops/s p99
for policy in always everysec no; do
  for kind in redcell redis; do
    dir="$RUN_DIR/$kind-$policy"; mkdir -p "$dir"; p=$(port)
    common=(--port "$p" --save '' --appendonly yes --appendfsync "$policy" --dir "$dir")
    case $kind in
      redcell) taskset -c "$SERVER_CPU" "$REDCELL_BIN" "${common[@]}" --shards "$SHARDS" >"$dir/log" 2>&1 & ;;
      redis) taskset -c "$SERVER_CPU" "$REDIS_BIN" "${common[@]}" --bind 127.0.0.1 >"$dir/log" 2>&1 & ;;
    esac
    PID=$!
    for ((i = 0; i < 100; i++)); do
      [[ $(redis-cli -p "$p" PING 2>/dev/null) == PONG ]] && break
      sleep 0.1
    done
    taskset -c "$LOAD_CPU" memtier_benchmark -s 127.0.0.1 -p "$p" -t 1 -c 50 --pipeline "$PIPELINE" \
      --ratio 1:0 --key-pattern R:R -d 100 --test-time "$DURATION" --hide-histogram \
      --print-percentiles 99 >"$dir/memtier.txt" 2>/dev/null
    read -r ops p99 < <(awk '/^Totals/{print $2, $(NF-1)}' "$dir/memtier.txt")
    printf '%-8s %-9s %10s %8s\n' "$kind" "$policy" "$ops" "$p99"
    redis-cli -p "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
    wait "$PID" 2>/dev/null || true
    PID=
  done
done
echo "raw output: $RUN_DIR"
