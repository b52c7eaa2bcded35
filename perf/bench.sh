#!/usr/bin/env bash
# perf/bench.sh - benchmark redcell against a stock redis-server, side by side.
#
# Every run starts a fresh server pinned to SERVER_CPU on a free 127.0.0.1 port,
# waits for PING, fills KEYS keys (so GETs hit), then drives it with a load generator
# pinned to LOAD_CPU:
#   memtier_benchmark -t THREADS -c 50 --ratio 1:10 --data-size 32 --pipeline N
#                     --key-pattern R:R --key-minimum 1 --key-maximum KEYS --test-time DURATION
# Runs alternate redcell, redis, redcell, redis, ... (ROUNDS rounds per pipeline).
# While the load runs, `perf stat -p <server pid>` counts the server's
# instructions and CPU time, reported per operation. If perf or the hardware
# counters are unavailable, those columns show n/a. The IPIs the server's CPUs receive
# (rescheduling RES plus function-call CAL, from /proc/interrupts deltas over the run) are
# reported per operation too; they include any other process's on those CPUs, so keep
# the machine quiet.
#
# WORKLOAD=multi replaces the SET/GET mix with transactions, each client sending
#   MULTI; SET __key__ __data__; INCR n:__key__; EXEC
# in turn (memtier runs --command lists in order per connection; every command
# counts as one op, so transactions/s = ops/s / 4; keys are uniform random, --command-key-pattern R).
#
# WORKLOAD=evalsha: each request is EVALSHA of a 3-command script on one random key,
#   local v = redis.call('INCR', KEYS[1]) redis.call('GET', KEYS[1])
#   redis.call('EXPIRE', KEYS[1], 100) return v
# (SCRIPT LOAD right after the server starts; --command-key-pattern R).
#
# TLS=1 runs everything over TLS: a CA, server and client certificate are made with the
# openssl command in the run directory, each server listens with `--port 0 --tls-port P`
# (client certificates required, the default), and the load generator connects with
# --tls --cacert/--cert/--key (redis-benchmark and memtier_benchmark both take them).
#
# BASE_BIN adds a third server to the alternation: another redcell binary (say,
# the build before a change), shown as "base", for before/after comparisons in
# the same run.
#
# Output: one table per pipeline depth (ops/sec, p50/p99/p99.9 latency in ms,
# instructions/op, server CPU ns/op, IPIs/op) for every server and round, plus the
# ratio redcell/redis of the median ops/sec. Raw load-generator output and the table
# as results.tsv (pipeline, server, round, then the columns above) are kept in
# $OUT_DIR/bench-<timestamp>/.
#
# Without memtier_benchmark it falls back to redis-benchmark (redis-tools):
#   redis-benchmark -c 50 -P N -d 32 -r 10000000 -t set,get -n RB_REQUESTS
# (separate SET and GET phases, not a 1:10 mix; ops/sec is the combined rate,
# p50/p99 come from the GET phase; DURATION does not apply).
# Without redis-server it benchmarks redcell alone.
#
# Environment knobs (defaults in brackets):
#   REDCELL_BIN   server under test, started as "$REDCELL_BIN --port P --shards 1"
#                 [<repo>/target/release/redcell-server]
#   REDIS_BIN     stock server to compare against [redis-server from PATH]
#   BASE_BIN      an earlier redcell binary to run in the same rotation [none]
#   REDCELL_ARGS, BASE_ARGS  extra arguments for those two, e.g. REDCELL_ARGS="--io epoll"
#                 with BASE_BIN set to the same binary compares the socket paths [none]
#   WORKLOAD      getset | multi | evalsha [getset]
#   DURATION      seconds per run, "20" or "20s" [20]
#   PIPELINES     space-separated pipeline depths ["1 16"]
#   ROUNDS        A/B rounds per pipeline depth [2]
#   KEYS          keys filled before each run and read by the load; 0: no fill (most
#                 GETs miss, keys from memtier's default range) [100000]
#   SHARDS        redcell's --shards [1]
#   BASE_SHARDS   the base binary's --shards, e.g. BASE_BIN=<the same binary> BASE_SHARDS=1
#                 SHARDS=2 prices the cross-core hops in one alternated run [SHARDS]
#   SERVER_CPU    CPU(s) the server is pinned to, a taskset list ("0" or "0-3") [0]
#   LOAD_CPU      CPU(s) the load generator is pinned to, a taskset list [1]
#   THREADS       memtier_benchmark threads (-t), 50 connections each [1]
#   LOADGEN       auto | memtier | redis-benchmark [auto]
#   MEMTIER_ARGS  extra arguments appended to memtier_benchmark [none]
#   TLS           1: serve and load over TLS [0]
#   RB_REQUESTS   requests per phase for the redis-benchmark fallback [1000000]
#   OUT_DIR       where raw results go [<repo>/perf/out]
#
# Usage:
#   perf/bench.sh
#   DURATION=5 ROUNDS=1 PIPELINES=16 perf/bench.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

REDCELL_BIN=${REDCELL_BIN:-$REPO_ROOT/target/release/redcell-server}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
[[ $REDIS_BIN != none ]] || REDIS_BIN=
BASE_BIN=${BASE_BIN:-}
REDCELL_ARGS=${REDCELL_ARGS:-}
BASE_ARGS=${BASE_ARGS:-}
WORKLOAD=${WORKLOAD:-getset}
DURATION=${DURATION:-20}
DURATION=${DURATION%s}
PIPELINES=${PIPELINES:-"1 16"}
ROUNDS=${ROUNDS:-2}
KEYS=${KEYS:-100000}
SHARDS=${SHARDS:-1}
BASE_SHARDS=${BASE_SHARDS:-$SHARDS}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
THREADS=${THREADS:-1}
LOADGEN=${LOADGEN:-auto}
MEMTIER_ARGS=${MEMTIER_ARGS:-}
RB_REQUESTS=${RB_REQUESTS:-1000000}
TLS=${TLS:-0}
OUT_DIR=${OUT_DIR:-$REPO_ROOT/perf/out}

log() { echo "[bench] $*" >&2; }
die() { echo "bench.sh: error: $*" >&2; exit 1; }

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
  "") ;;
  *) die "no positional arguments; configure with environment variables (see --help)" ;;
esac

[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "DURATION must be a positive number of seconds"
[[ $ROUNDS =~ ^[0-9]+$ && $ROUNDS -gt 0 ]] || die "ROUNDS must be a positive integer"
[[ $KEYS =~ ^[0-9]+$ ]] || die "KEYS must be a number"
[[ $SHARDS =~ ^[0-9]+$ && $SHARDS -gt 0 ]] || die "SHARDS must be a positive integer"
[[ $BASE_SHARDS =~ ^[0-9]+$ && $BASE_SHARDS -gt 0 ]] || die "BASE_SHARDS must be a positive integer"
[[ $THREADS =~ ^[0-9]+$ && $THREADS -gt 0 ]] || die "THREADS must be a positive integer"
for pl in $PIPELINES; do [[ $pl =~ ^[0-9]+$ && $pl -gt 0 ]] || die "bad pipeline depth '$pl'"; done
command -v taskset >/dev/null || die "taskset not found (apt-get install util-linux)"
[[ -x $REDCELL_BIN ]] || die "$REDCELL_BIN is not executable (build it with: cargo build --release)"
[[ $SERVER_CPU != "$LOAD_CPU" ]] || log "warning: SERVER_CPU and LOAD_CPU are both $SERVER_CPU"

case $LOADGEN in
  auto)
    if command -v memtier_benchmark >/dev/null; then LOADGEN=memtier
    elif command -v redis-benchmark >/dev/null; then LOADGEN=redis-benchmark
    else die "neither memtier_benchmark nor redis-benchmark found (apt-get install redis-tools)"
    fi ;;
  memtier) command -v memtier_benchmark >/dev/null || die "memtier_benchmark not on PATH" ;;
  redis-benchmark) command -v redis-benchmark >/dev/null || die "redis-benchmark not on PATH" ;;
  *) die "LOADGEN must be auto, memtier or redis-benchmark" ;;
esac

case $WORKLOAD in
  getset) LOAD_ARGS=(--ratio 1:10 --key-pattern R:R)
    [[ $KEYS -eq 0 ]] || LOAD_ARGS+=(--key-minimum 1 --key-maximum "$KEYS") ;;
  multi)
    [[ $LOADGEN == memtier ]] || die "WORKLOAD=multi needs memtier_benchmark"
    LOAD_ARGS=(--command=MULTI "--command=SET __key__ __data__" "--command=INCR n:__key__" --command=EXEC
               --command-key-pattern R) ;;
  evalsha)
    [[ $LOADGEN == memtier ]] || die "WORKLOAD=evalsha needs memtier_benchmark"
    EVAL_SCRIPT="local v = redis.call('INCR', KEYS[1]) redis.call('GET', KEYS[1]) redis.call('EXPIRE', KEYS[1], 100) return v"
    EVAL_SHA=$(printf '%s' "$EVAL_SCRIPT" | sha1sum | awk '{print $1}')
    LOAD_ARGS=("--command=EVALSHA $EVAL_SHA 1 __key__" --command-key-pattern R) ;;
  *) die "WORKLOAD must be getset, multi or evalsha" ;;
esac

SERVERS=(redcell)
if [[ -n $BASE_BIN ]]; then
  [[ -x $BASE_BIN ]] || die "BASE_BIN $BASE_BIN is not executable"
  SERVERS+=(base)
fi
if [[ -n $REDIS_BIN && -x $REDIS_BIN ]]; then
  SERVERS+=(redis)
else
  log "redis-server not found: benchmarking redcell alone (no comparison)"
fi

# --- process bookkeeping: everything we start is stopped on exit -----------
PIDS=()
alive() {  # running and not a zombie
  local state
  state=$(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}
stop_pid() {
  local pid=$1 sig=${2:-TERM} i
  if alive "$pid"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"  # so a recycled pid is never signalled later
}
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
run_tracked() {  # run a command in the background and wait, so signal traps fire promptly
  local pid rc=0
  "$@" &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget_pid "$pid"
  return "$rc"
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers -----------------------------------------------------------------
pick_port() {
  if command -v python3 >/dev/null; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
    return
  fi
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  die "could not find a free port"
}

ping_ok() {  # does 127.0.0.1:$1 answer PING with +PONG?
  if [[ $TLS == 1 ]]; then
    [[ $(redis-cli -h 127.0.0.1 -p "$1" "${CLIENT_TLS[@]}" PING 2>/dev/null) == PONG ]]
    return
  fi
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    # shellcheck disable=SC2016  # literal RESP "$4" length prefix
    printf '*1\r\n$4\r\nPING\r\n' >&3
    IFS= read -r -t 1 reply <&3 || exit 1
    [[ $reply == +PONG* ]]
  ) 2>/dev/null
}

SERVER_PID=
start_server() {  # kind port logfile -> SERVER_PID
  local kind=$1 port=$2 logf=$3 i
  local listen=(--port "$port")
  [[ $TLS != 1 ]] || listen=(--port 0 --tls-port "$port" "${SERVER_TLS[@]}")
  case $kind in
    # shellcheck disable=SC2086 # the extra arguments are split on purpose
    redcell) taskset -c "$SERVER_CPU" "$REDCELL_BIN" "${listen[@]}" --shards "$SHARDS" \
               --save '' --dir "$RUN_DIR" $REDCELL_ARGS >"$logf" 2>&1 & ;;
    # shellcheck disable=SC2086
    base)    taskset -c "$SERVER_CPU" "$BASE_BIN" "${listen[@]}" --shards "$BASE_SHARDS" \
               --save '' --dir "$RUN_DIR" $BASE_ARGS >"$logf" 2>&1 & ;;
    redis)   taskset -c "$SERVER_CPU" "$REDIS_BIN" "${listen[@]}" --bind 127.0.0.1 \
               --save '' --appendonly no --dir "$RUN_DIR" >"$logf" 2>&1 & ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for ((i = 0; i < 100; i++)); do
    ping_ok "$port" && return 0
    if ! alive "$SERVER_PID"; then
      tail -n 20 "$logf" >&2
      die "$kind exited during startup (log: $logf)"
    fi
    sleep 0.1
  done
  die "$kind did not answer PING on port $port within 10s (log: $logf)"
}

# perf: which events can we count?
PERF_EVENTS=
perf_value() {  # event csvfile -> numeric value or empty
  awk -F, -v ev="$1" '$0 !~ /^#/ && $3 ~ ("^" ev) && $1 ~ /^[0-9.]+$/ {print $1; exit}' "$2"
}
if command -v perf >/dev/null; then
  probe=$(mktemp)
  for ev in instructions task-clock; do
    if perf stat -x, -e "$ev" -o "$probe" true >/dev/null 2>&1 && [[ -n $(perf_value "$ev" "$probe") ]]; then
      PERF_EVENTS+=${PERF_EVENTS:+,}$ev
    fi
  done
  rm -f "$probe"
fi
case $PERF_EVENTS in
  *instructions*) ;;
  "") log "perf unavailable: instr/op and cpu_ns/op will be n/a (apt-get install linux-perf)" ;;
  *) log "hardware counters unavailable (perf stat -e instructions unsupported): instr/op will be n/a" ;;
esac

# cpu_list_expand "0,2-3" -> "0 2 3"
cpu_list_expand() {
  local part out=()
  for part in ${1//,/ }; do
    if [[ $part == *-* ]]; then out+=($(seq "${part%-*}" "${part#*-}")); else out+=("$part"); fi
  done
  echo "${out[*]}"
}
SERVER_CPUS=$(cpu_list_expand "$SERVER_CPU")

# ipis_now -> RES+CAL interrupts received so far by the server's CPUs
ipis_now() {
  awk -v cpus="$SERVER_CPUS" '$1 == "RES:" || $1 == "CAL:" {
      n = split(cpus, c, " "); for (i = 1; i <= n; i++) s += $(c[i] + 2) }
    END {printf "%d", s}' /proc/interrupts
}

# prefill port: KEYS keys memtier-0..., 32-byte values, as the getset load reads them
prefill() {
  [[ $WORKLOAD == getset && $KEYS -gt 0 && $LOADGEN == memtier ]] || return 0
  run_tracked taskset -c "$LOAD_CPU" memtier_benchmark -s 127.0.0.1 -p "$1" "${CLIENT_TLS[@]}" \
    -t 1 -c 1 --pipeline 64 --ratio 1:0 --key-pattern P:P --key-minimum 1 \
    --key-maximum "$KEYS" --requests allkeys --data-size 32 --hide-histogram \
    >"$2.prefill.txt" 2>&1 || die "prefill failed (see $2.prefill.txt)"
}

# run_load port pipeline prefix -> R_OPS R_P50 R_P99 R_P999 R_COUNT
run_load() {
  local port=$1 pl=$2 pfx=$3 rc=0
  R_OPS=; R_P50=; R_P99=; R_P999=; R_COUNT=
  if [[ $LOADGEN == memtier ]]; then
    # shellcheck disable=SC2086  # MEMTIER_ARGS is intentionally word-split
    run_tracked taskset -c "$LOAD_CPU" memtier_benchmark -s 127.0.0.1 -p "$port" \
      -t "$THREADS" -c 50 "${LOAD_ARGS[@]}" "${CLIENT_TLS[@]}" --data-size 32 --pipeline "$pl" \
      --test-time "$DURATION" --hide-histogram \
      --print-percentiles 50,99,99.9 --json-out-file "$pfx.json" $MEMTIER_ARGS \
      >"$pfx.txt" 2>"$pfx.err" || rc=$?
    [[ $rc -eq 0 ]] || log "memtier_benchmark exited with $rc (see $pfx.err)"
    grep -Eq 'Avg\. Latency +p50 Latency +p99 Latency' "$pfx.txt" \
      || { log "unexpected memtier output format in $pfx.txt"; return 0; }
    # Columns by header name: the SET/GET table has Hits/Misses columns, --command tables not.
    read -r R_OPS R_P50 R_P99 R_P999 < <(awk '/Avg\. Latency/ {gsub(/ Latency|\/sec/, ""); for (i = 1; i <= NF; i++) col[$i] = i}
      $1 == "Totals" {print $col["Ops"], $col["p50"], $col["p99"], $col["p99.9"]; exit}' "$pfx.txt") || true
    R_COUNT=$(awk '/"Totals"/ {t = 1} t && /"Count"/ {gsub(/[^0-9]/, ""); print; exit}' "$pfx.json" 2>/dev/null || true)
    [[ -n $R_COUNT || -z $R_OPS ]] || R_COUNT=$(awk -v o="$R_OPS" -v d="$DURATION" 'BEGIN {printf "%d", o * d}')
  else
    run_tracked taskset -c "$LOAD_CPU" redis-benchmark -h 127.0.0.1 -p "$port" "${CLIENT_TLS[@]}" -c 50 -P "$pl" -d 32 \
      -r 10000000 -t set,get -n "$RB_REQUESTS" --csv >"$pfx.csv" 2>"$pfx.err" || rc=$?
    [[ $rc -eq 0 ]] || log "redis-benchmark exited with $rc (see $pfx.err)"
    # CSV: "test","rps","avg","min","p50","p95","p99","max"
    read -r R_OPS R_P50 R_P99 < <(awk -F, '{gsub(/"/, "")} $1 == "SET" {s = $2} $1 == "GET" {g = $2; p50 = $5; p99 = $7}
      END {if (s > 0 && g > 0) printf "%.2f %s %s\n", 2 / (1 / s + 1 / g), p50, p99}' "$pfx.csv") || true
    [[ -z $R_OPS ]] || R_COUNT=$((2 * RB_REQUESTS))
  fi
}

per_op() {  # numerator count scale -> formatted numerator*scale/count, or n/a
  awk -v n="$1" -v c="$2" -v k="$3" 'BEGIN {if (n != "" && c > 0) printf "%.0f", n * k / c; else print "n/a"}'
}

# --- main loop -----------------------------------------------------------------
mkdir -p "$OUT_DIR"
RUN_DIR="$OUT_DIR/bench-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$RUN_DIR"
RESULTS="$RUN_DIR/results.tsv"
SERVER_TLS=() CLIENT_TLS=()
if [[ $TLS == 1 ]]; then
  command -v openssl >/dev/null || die "TLS=1 needs the openssl command (apt-get install openssl)"
  (
    cd "$RUN_DIR"
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >ext.cnf
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 2 \
      -subj "/CN=bench CA" -keyout ca.key -out ca.crt
    for who in server client; do
      openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -subj "/CN=bench $who" -keyout "$who.key" -out "$who.csr"
      openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile ext.cnf -out "$who.crt"
    done
  ) >/dev/null 2>&1 || die "openssl could not make the test certificates"
  SERVER_TLS=(--tls-cert-file "$RUN_DIR/server.crt" --tls-key-file "$RUN_DIR/server.key"
              --tls-ca-cert-file "$RUN_DIR/ca.crt")
  CLIENT_TLS=(--tls --cacert "$RUN_DIR/ca.crt" --cert "$RUN_DIR/client.crt" --key "$RUN_DIR/client.key")
fi
: >"$RESULTS"

log "redcell: $REDCELL_BIN --shards $SHARDS $REDCELL_ARGS"
[[ -z $BASE_BIN ]] || log "base:    $BASE_BIN --shards $BASE_SHARDS $BASE_ARGS"
[[ ${#SERVERS[@]} -lt 2 ]] || log "redis:   $REDIS_BIN ($("$REDIS_BIN" --version | awk '{print $3}'))"
log "load: $LOADGEN on CPU $LOAD_CPU, server on CPU $SERVER_CPU, ${DURATION}s per run," \
    "pipelines: $PIPELINES, rounds: $ROUNDS; raw output in $RUN_DIR"

for pl in $PIPELINES; do
  for ((round = 1; round <= ROUNDS; round++)); do
    for kind in "${SERVERS[@]}"; do
      pfx="$RUN_DIR/p$pl-r$round-$kind"
      port=$(pick_port)
      start_server "$kind" "$port" "$pfx.server.log"
      if [[ $WORKLOAD == evalsha ]]; then
        [[ $(redis-cli -p "$port" SCRIPT LOAD "$EVAL_SCRIPT") == "$EVAL_SHA" ]] || die "SCRIPT LOAD failed"
      fi
      prefill "$port" "$pfx"
      perf_pid=
      if [[ -n $PERF_EVENTS ]]; then
        perf stat -x, -e "$PERF_EVENTS" -p "$SERVER_PID" -o "$pfx.perf" 2>"$pfx.perf.err" &
        perf_pid=$!
        PIDS+=("$perf_pid")
        sleep 0.2  # let perf attach before the load starts
      fi
      ipis_before=$(ipis_now)
      run_load "$port" "$pl" "$pfx"
      ipis=$(($(ipis_now) - ipis_before))
      instr='' cpu_ms=''
      if [[ -n $perf_pid ]]; then
        stop_pid "$perf_pid" INT
        instr=$(perf_value instructions "$pfx.perf" || true)
        cpu_ms=$(perf_value task-clock "$pfx.perf" || true)
      fi
      stop_pid "$SERVER_PID"
      ipo=$(per_op "$instr" "$R_COUNT" 1)
      nspo=$(per_op "$cpu_ms" "$R_COUNT" 1000000)
      ipipo=$(awk -v n="$ipis" -v c="$R_COUNT" 'BEGIN {if (c > 0) printf "%.3f", n / c; else print "n/a"}')
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pl" "$kind" "$round" \
        "${R_OPS:-n/a}" "${R_P50:-n/a}" "${R_P99:-n/a}" "${R_P999:-n/a}" "$ipo" "$nspo" "$ipipo" >>"$RESULTS"
      log "pipeline $pl round $round $kind: ${R_OPS:-n/a} ops/s, p50 ${R_P50:-n/a} ms," \
          "p99 ${R_P99:-n/a} ms, p99.9 ${R_P999:-n/a} ms, instr/op $ipo, cpu_ns/op $nspo, ipi/op $ipipo"
    done
  done
done

median_ops() {  # pipeline kind -> median ops/sec over rounds, or empty
  awk -F'\t' -v p="$1" -v k="$2" '$1 == p && $2 == k && $4 ~ /^[0-9.]+$/ {print $4}' "$RESULTS" |
    sort -g | awk '{v[NR] = $1} END {if (NR) printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

echo
echo "redcell (--shards $SHARDS) vs redis: $LOADGEN, $THREADS thread(s) x 50 conns, workload $WORKLOAD," \
     "$KEYS keys, 32 B values, ${DURATION}s/run, server CPU $SERVER_CPU, load CPU $LOAD_CPU"
for pl in $PIPELINES; do
  echo
  echo "== pipeline $pl =="
  printf '%-8s %5s %12s %9s %9s %9s %10s %10s %8s\n' server round ops/sec p50_ms p99_ms p99.9_ms instr/op cpu_ns/op ipi/op
  awk -F'\t' -v p="$pl" '$1 == p {printf "%-8s %5s %12s %9s %9s %9s %10s %10s %8s\n", $2, $3, $4, $5, $6, $7, $8, $9, $10}' "$RESULTS"
  rc_med=$(median_ops "$pl" redcell)
  if [[ -n $BASE_BIN ]]; then
    b_med=$(median_ops "$pl" base)
    echo "median ops/sec: base ${b_med:-n/a}; redcell/base = $(awk -v a="$rc_med" -v b="$b_med" 'BEGIN {if (a != "" && b > 0) printf "%.3f", a / b; else print "n/a"}')"
  fi
  if [[ " ${SERVERS[*]} " == *" redis "* ]]; then
    rd_med=$(median_ops "$pl" redis)
    ratio=$(awk -v a="$rc_med" -v b="$rd_med" 'BEGIN {if (a != "" && b > 0) printf "%.3f", a / b; else print "n/a"}')
    echo "median ops/sec: redcell ${rc_med:-n/a}, redis ${rd_med:-n/a}; redcell/redis = $ratio"
  else
    echo "median ops/sec: redcell ${rc_med:-n/a} (redis-server not available, no comparison)"
  fi
done
echo
echo "raw results: $RUN_DIR"
