#!/usr/bin/env bash
# perf/tracking-bench.sh - what client-side caching (CLIENT TRACKING) costs GET and SET.
#
# For each server (redcell, optionally a BASE_BIN redcell build without tracking, and stock
# redis-server), and each scenario, starts a fresh server pinned to SERVER_CPU and drives it
# with redis-benchmark pinned to LOAD_CPU:
#   redis-benchmark -c 50 -P PIPELINE -d 32 -r KEYS -t set,get -n REQUESTS
# while `perf stat -e task-clock -p <server pid>` counts the server's CPU time (reported as
# CPU ns per operation). Scenarios:
#   none     no tracking client at all (the GET/SET path pays the `tracking` branch only)
#   default  a RESP3 client in default mode that has read every key first, so the first SET
#            of each key sends it an invalidation (it keeps reading its pushes)
#   bcast    a RESP3 client in BCAST mode with the empty prefix: every SET is invalidated
#            (batched per turn), the client keeps reading
# The tracking client is a small Python reader (python3 required).
#
# Environment knobs (defaults in brackets):
#   REDCELL_BIN [<repo>/target/release/redcell-server]  BASE_BIN [none]
#   REDIS_BIN [redis-server from PATH]  SCENARIOS ["none default bcast"]
#   PIPELINE [16]  REQUESTS [1000000]  KEYS [100000]  SERVER_CPU [0]  LOAD_CPU [1]
#
# Usage: perf/tracking-bench.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REDCELL_BIN=${REDCELL_BIN:-$SCRIPT_DIR/../target/release/redcell-server}
BASE_BIN=${BASE_BIN:-}
REDIS_BIN=${REDIS_BIN:-$(command -v redis-server || true)}
SCENARIOS=${SCENARIOS:-"none default bcast"}
PIPELINE=${PIPELINE:-16}
REQUESTS=${REQUESTS:-1000000}
KEYS=${KEYS:-100000}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The tracking client: HELLO 3, CLIENT TRACKING as asked, reads every key first in default
# mode, then drains its pushes until killed. Prints "ready" once set up.
TRACKER=$(mktemp /tmp/tracking-bench-client.XXXXXX.py)
trap 'rm -f "$TRACKER"' EXIT
cat >"$TRACKER" <<'EOF'
import socket, sys
port, mode, nkeys = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
s.sendall(cmd(b"HELLO", b"3")); s.recv(1 << 16)
args = [b"CLIENT", b"TRACKING", b"on"] + ([b"BCAST"] if mode == "bcast" else [])
s.sendall(cmd(*args)); s.recv(1 << 16)
if mode == "default":
    # redis-benchmark's keys are key:<12-digit number>; none exists yet, so each GET is _.
    for i in range(0, nkeys, 1000):
        n = min(1000, nkeys - i)
        s.sendall(b"".join(cmd(b"GET", b"key:%012d" % j) for j in range(i, i + n)))
        buf = b""
        while buf.count(b"_\r\n") < n:
            buf += s.recv(1 << 20)
print("ready", flush=True)
while s.recv(1 << 20):
    pass
EOF

run() { # name bin scenario
    local name=$1 bin=$2 scenario=$3 port pid tpid=""
    port=$(free_port)
    if [[ $name == redis ]]; then
        taskset -c "$SERVER_CPU" "$bin" --port "$port" --save "" --appendonly no >/dev/null 2>&1 &
    else
        taskset -c "$SERVER_CPU" "$bin" --port "$port" --shards 1 --save "" >/dev/null 2>&1 &
    fi
    pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
    if [[ $scenario != none ]]; then
        taskset -c "$LOAD_CPU" python3 "$TRACKER" "$port" "$scenario" "$KEYS" >"$TRACKER.out" &
        tpid=$!
        for _ in $(seq 600); do grep -q ready "$TRACKER.out" 2>/dev/null && break; sleep 0.1; done
    fi
    perf stat -e task-clock -x, -o /tmp/tracking-bench-perf.$$ -p "$pid" &
    local perf_pid=$!
    sleep 0.2
    local out
    out=$(taskset -c "$LOAD_CPU" redis-benchmark -p "$port" -c 50 -P "$PIPELINE" -d 32 \
        -r "$KEYS" -t set,get -n "$REQUESTS" --csv 2>/dev/null | tr -d '"' || true)
    kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
    local ms
    ms=$(awk -F, '/task-clock/ {print $1}' /tmp/tracking-bench-perf.$$)
    local set get
    set=$(echo "$out" | awk -F, '$1 == "SET" {print $2}')
    get=$(echo "$out" | awk -F, '$1 == "GET" {print $2}')
    printf '%-8s %-8s SET %12s/s  GET %12s/s  CPU %6.0f ns/op\n' "$name" "$scenario" "$set" "$get" \
        "$(awk -v ms="$ms" -v n="$REQUESTS" 'BEGIN {print ms * 1e6 / (2 * n)}')"
    if [[ -n $tpid ]]; then kill "$tpid" 2>/dev/null; wait "$tpid" 2>/dev/null || true; fi
    rm -f "$TRACKER.out"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -f /tmp/tracking-bench-perf.$$
}

for scenario in $SCENARIOS; do
    run redcell "$REDCELL_BIN" "$scenario"
    [[ -n $BASE_BIN && $scenario == none ]] && run base "$BASE_BIN" "$scenario"
    [[ -n $REDIS_BIN ]] && run redis "$REDIS_BIN" "$scenario"
done
