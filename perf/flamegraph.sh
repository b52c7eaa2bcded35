#!/usr/bin/env bash
# perf/flamegraph.sh - CPU flame graph of redcell under load.
#
# Starts redcell pinned to SERVER_CPU on a free 127.0.0.1 port, waits for PING,
# drives it for DURATION seconds with memtier_benchmark pinned to LOAD_CPU
#   (-t 1 -c 50 --ratio 1:10 --data-size 32 --pipeline PIPELINE --key-pattern R:R)
# or, without memtier, redis-benchmark (-c 50 -P PIPELINE -d 32 -t set,get),
# records the server with `perf record -F FREQ -g -p <pid>` during the load,
# then renders
#   perf script | inferno-collapse-perf | inferno-flamegraph > $OUT
# The collapsed stacks are kept next to the SVG ($OUT minus .svg, plus .folded),
# e.g. for `inferno-diff-folded before.folded after.folded | inferno-flamegraph`.
#
# Needs perf, inferno, taskset, and memtier_benchmark or redis-benchmark; installs what is
# missing and says so (inferno with `cargo install inferno`; perf and taskset with apt-get,
# as linux-perf and util-linux).
# Readable Rust stacks with CALLGRAPH=fp need frame pointers, e.g.
#   RUSTFLAGS="-C force-frame-pointers=yes" cargo build --release
# and symbols (debug = "line-tables-only" or similar in the release profile);
# otherwise try CALLGRAPH=dwarf (bigger perf.data, slower perf script).
#
# Environment knobs (defaults in brackets):
#   REDCELL_BIN  server binary, started as "$REDCELL_BIN --port P --shards 1"
#                [<repo>/target/release/redcell-server]
#   DURATION     seconds of load, "20" or "20s" [20]
#   PIPELINE     memtier/redis-benchmark pipeline depth [16]
#   SERVER_CPU   CPU the server is pinned to [0]
#   LOAD_CPU     CPU the load generator is pinned to [1]
#   FREQ         perf sampling frequency in Hz [999]
#   CALLGRAPH    fp (perf -g) | dwarf | lbr [fp]
#   PERF_EVENT   sampling event [cycles if hardware counters work, else cpu-clock]
#   LOADGEN      auto | memtier | redis-benchmark [auto]
#   OUT          output SVG [<repo>/perf/out/redcell-flame.svg]
#
# Usage:
#   perf/flamegraph.sh
#   DURATION=10 PIPELINE=1 OUT=/tmp/p1.svg perf/flamegraph.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)

REDCELL_BIN=${REDCELL_BIN:-$REPO_ROOT/target/release/redcell-server}
DURATION=${DURATION:-20}
DURATION=${DURATION%s}
PIPELINE=${PIPELINE:-16}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
FREQ=${FREQ:-999}
CALLGRAPH=${CALLGRAPH:-fp}
PERF_EVENT=${PERF_EVENT:-}
LOADGEN=${LOADGEN:-auto}
OUT=${OUT:-$REPO_ROOT/perf/out/redcell-flame.svg}

log() { echo "[flamegraph] $*" >&2; }
die() { echo "flamegraph.sh: error: $*" >&2; exit 1; }

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
  "") ;;
  *) die "no positional arguments; configure with environment variables (see --help)" ;;
esac

# inferno is usually installed by cargo into ~/.cargo/bin
[[ -d ${CARGO_HOME:-$HOME/.cargo}/bin ]] && PATH=$PATH:${CARGO_HOME:-$HOME/.cargo}/bin

[[ $DURATION =~ ^[0-9]+$ && $DURATION -gt 0 ]] || die "DURATION must be a positive number of seconds"
[[ $PIPELINE =~ ^[0-9]+$ && $PIPELINE -gt 0 ]] || die "PIPELINE must be a positive integer"
# Installs what is missing, saying so: inferno with cargo (into ~/.cargo/bin), perf and
# taskset with apt-get (root or sudo needed for those).
apt_install() {
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  log "installing $* (apt-get)"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null \
    || die "could not install $* with apt-get; install it and run again"
}
if ! command -v inferno-collapse-perf >/dev/null || ! command -v inferno-flamegraph >/dev/null; then
  command -v cargo >/dev/null || die "inferno is missing and cargo is not installed to build it (https://rustup.rs)"
  log "inferno-collapse-perf/inferno-flamegraph not found: installing them with 'cargo install inferno' (a few minutes, once)"
  cargo install --locked inferno >&2 || die "cargo install inferno failed"
  command -v inferno-flamegraph >/dev/null || die "inferno installed but not on PATH (is ${CARGO_HOME:-$HOME/.cargo}/bin on PATH?)"
fi
command -v perf >/dev/null || apt_install linux-perf
command -v taskset >/dev/null || apt_install util-linux
[[ -x $REDCELL_BIN ]] || die "$REDCELL_BIN is not executable (build it with: cargo build --release)"

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

case $CALLGRAPH in
  fp) CG_ARGS=(-g) ;;
  dwarf|lbr) CG_ARGS=(--call-graph "$CALLGRAPH") ;;
  *) die "CALLGRAPH must be fp, dwarf or lbr" ;;
esac

WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/redcell-flame.XXXXXX")

# --- process bookkeeping: everything we start is stopped on exit -----------
PIDS=()
alive() {  # running and not a zombie
  local state
  state=$(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [[ -n $state && $state != Z ]]
}
forget_pid() {
  local keep=() p
  for p in "${PIDS[@]}"; do [[ $p == "$1" ]] || keep+=("$p"); done
  PIDS=("${keep[@]}")
}
stop_pid() {
  local pid=$1 sig=${2:-TERM} i
  if alive "$pid"; then
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null || true
  forget_pid "$pid"
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  rm -rf "$WORK_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

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
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    # shellcheck disable=SC2016  # literal RESP "$4" length prefix
    printf '*1\r\n$4\r\nPING\r\n' >&3
    IFS= read -r -t 1 reply <&3 || exit 1
    [[ $reply == +PONG* ]]
  ) 2>/dev/null
}

# --- pick the sampling event --------------------------------------------------
if [[ -z $PERF_EVENT ]]; then
  if perf stat -x, -e cycles -o "$WORK_DIR/probe" true >/dev/null 2>&1 \
     && awk -F, '$0 !~ /^#/ && $3 ~ /^cycles/ && $1 ~ /^[0-9]+$/ {ok = 1} END {exit !ok}' "$WORK_DIR/probe"; then
    PERF_EVENT=cycles
  else
    PERF_EVENT=cpu-clock
    log "hardware counters unavailable, sampling on cpu-clock"
  fi
fi

# --- run ----------------------------------------------------------------------
port=$(pick_port)
taskset -c "$SERVER_CPU" "$REDCELL_BIN" --port "$port" --shards 1 >"$WORK_DIR/server.log" 2>&1 &
server_pid=$!
PIDS+=("$server_pid")
for ((i = 0; ; i++)); do
  ping_ok "$port" && break
  alive "$server_pid" || { tail -n 20 "$WORK_DIR/server.log" >&2; die "redcell exited during startup"; }
  ((i < 100)) || die "redcell did not answer PING on port $port within 10s"
  sleep 0.1
done
log "redcell pid $server_pid on 127.0.0.1:$port (CPU $SERVER_CPU); $LOADGEN on CPU $LOAD_CPU," \
    "pipeline $PIPELINE, ${DURATION}s; perf record -e $PERF_EVENT -F $FREQ ${CG_ARGS[*]}"

perf record -e "$PERF_EVENT" -F "$FREQ" "${CG_ARGS[@]}" -p "$server_pid" -o "$WORK_DIR/perf.data" \
  >"$WORK_DIR/perf-record.log" 2>&1 &
perf_pid=$!
PIDS+=("$perf_pid")
sleep 0.3  # let perf attach before the load starts
alive "$perf_pid" || { cat "$WORK_DIR/perf-record.log" >&2; die "perf record failed"; }

if [[ $LOADGEN == memtier ]]; then
  load_cmd=(memtier_benchmark -s 127.0.0.1 -p "$port" -t 1 -c 50 --ratio 1:10 --data-size 32
            --pipeline "$PIPELINE" --test-time "$DURATION" --key-pattern R:R --hide-histogram)
else
  # redis-benchmark has no time limit: give it plenty of requests and stop it after DURATION
  # shellcheck disable=SC2054  # "set,get" is one argument
  load_cmd=(timeout -s INT "$DURATION" redis-benchmark -h 127.0.0.1 -p "$port" -c 50
            -P "$PIPELINE" -d 32 -r 10000000 -t set,get -n 1000000000 -q)
fi
taskset -c "$LOAD_CPU" "${load_cmd[@]}" >"$WORK_DIR/load.log" 2>&1 &
load_pid=$!
PIDS+=("$load_pid")
rc=0
wait "$load_pid" || rc=$?
forget_pid "$load_pid"
# timeout exits 124 when it had to stop redis-benchmark, which is the normal case
if [[ $rc -ne 0 && ! ($LOADGEN == redis-benchmark && $rc -eq 124) ]]; then
  log "load generator exited with $rc:"
  tail -n 20 "$WORK_DIR/load.log" >&2
fi
[[ $LOADGEN != memtier ]] || awk '$1 == "Totals" {print "[flamegraph] load: " $2 " ops/sec"}' "$WORK_DIR/load.log" >&2

stop_pid "$perf_pid" INT
stop_pid "$server_pid"
[[ -s $WORK_DIR/perf.data ]] || { cat "$WORK_DIR/perf-record.log" >&2; die "perf record produced no data"; }

mkdir -p "$(dirname "$OUT")"
folded=${OUT%.svg}.folded
perf script -i "$WORK_DIR/perf.data" 2>"$WORK_DIR/perf-script.log" | inferno-collapse-perf >"$folded"
[[ -s $folded ]] || { cat "$WORK_DIR/perf-script.log" >&2; die "no stacks collected"; }
inferno-flamegraph --title "redcell: $LOADGEN pipeline $PIPELINE, ${DURATION}s, $PERF_EVENT @ ${FREQ} Hz" \
  <"$folded" >"$OUT"
log "$(grep -o '([0-9]* samples)' "$WORK_DIR/perf-record.log" | tr -d '()' || echo 'samples: ?'), stacks: $folded"
echo "$OUT"
