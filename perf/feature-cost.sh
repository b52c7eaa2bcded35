#!/usr/bin/env bash
# perf/feature-cost.sh - what observability features cost on SET/GET, redcell against stock
# redis-server, alternating servers, each run on a fresh server pinned to SERVER_CPU:
#   redis-benchmark -c 50 -P PIPELINE -n REQUESTS -r 100000 -d 32 -t set,get --csv
# in each mode: plain; monitor (a `redis-cli monitor` reading every command); notify
# (notify-keyspace-events KEA and a `redis-cli psubscribe __key*__:*` reading every event).
# Reports requests/s and p99 (ms) per test, and the server's CPU time per request
# (perf stat -e task-clock on the server's pid, divided by the requests of both tests).
# Environment: REDCELL_BIN, REDIS_BIN, REQUESTS [1000000], PIPELINE [16], SHARDS [1],
# ROUNDS [2], SERVER_CPU [0], LOAD_CPU [1], OUT_DIR [<repo>/perf/out].
set -euo pipefail
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
REDCELL_BIN=${REDCELL_BIN:-$REPO_ROOT/target/release/redcell-server}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
REQUESTS=${REQUESTS:-1000000}
PIPELINE=${PIPELINE:-16}
SHARDS=${SHARDS:-1}
ROUNDS=${ROUNDS:-2}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT_DIR=${OUT_DIR:-$REPO_ROOT/perf/out}
die() { echo "feature-cost.sh: error: $*" >&2; exit 1; }
[[ -x $REDCELL_BIN ]] || die "$REDCELL_BIN is not executable (cargo build --release)"
[[ -n $REDIS_BIN && -x $REDIS_BIN ]] || die "redis-server not found"
command -v redis-benchmark >/dev/null || die "redis-benchmark not found (apt-get install redis-tools)"
command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"
RUN_DIR="$OUT_DIR/feature-cost-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN_DIR"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

printf '%-5s %-8s %-8s %12s %8s %12s %8s %12s\n' round server mode set/s set_p99 get/s get_p99 cpu_us/req
for ((round = 1; round <= ROUNDS; round++)); do
  for mode in plain monitor notify; do
    for kind in redcell redis; do
      dir="$RUN_DIR/$round-$mode-$kind"; mkdir -p "$dir"; p=$(port)
      common=(--port "$p" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir")
      case $kind in
        redcell) taskset -c "$SERVER_CPU" "$REDCELL_BIN" "${common[@]}" --shards "$SHARDS" >"$dir/log" 2>&1 & ;;
        redis) taskset -c "$SERVER_CPU" "$REDIS_BIN" "${common[@]}" >"$dir/log" 2>&1 & ;;
      esac
      server=$!
      PIDS=("$server")
      for ((i = 0; i < 100; i++)); do
        [[ $(redis-cli -p "$p" PING 2>/dev/null) == PONG ]] && break
        sleep 0.1
      done
      case $mode in
        monitor)
          taskset -c "$LOAD_CPU" redis-cli -p "$p" monitor >/dev/null 2>&1 &
          PIDS+=($!) ;;
        notify)
          redis-cli -p "$p" CONFIG SET notify-keyspace-events KEA >/dev/null
          taskset -c "$LOAD_CPU" redis-cli -p "$p" psubscribe '__key*__:*' >/dev/null 2>&1 &
          PIDS+=($!) ;;
      esac
      sleep 0.3
      perf stat -e task-clock -x, -p "$server" -o "$dir/perf.csv" &
      perf_pid=$!
      taskset -c "$LOAD_CPU" redis-benchmark -p "$p" -c 50 -P "$PIPELINE" -n "$REQUESTS" \
        -r 100000 -d 32 -t set,get --csv >"$dir/bench.csv" 2>/dev/null
      kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
      read -r set_rps set_p99 < <(awk -F'"' '$2=="SET"{print $4, $14}' "$dir/bench.csv")
      read -r get_rps get_p99 < <(awk -F'"' '$2=="GET"{print $4, $14}' "$dir/bench.csv")
      ms=$(awk -F, '/task-clock/{print $1}' "$dir/perf.csv")
      cpu=$(awk -v ms="$ms" -v n="$REQUESTS" 'BEGIN{printf "%.2f", ms * 1000 / (2 * n)}')
      printf '%-5s %-8s %-8s %12s %8s %12s %8s %12s\n' "$round" "$kind" "$mode" \
        "$set_rps" "$set_p99" "$get_rps" "$get_p99" "$cpu"
      redis-cli -p "$p" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
      cleanup
      PIDS=()
    done
  done
done
echo "raw output: $RUN_DIR"
