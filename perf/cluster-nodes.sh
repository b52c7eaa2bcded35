# shellcheck shell=bash
# perf/cluster-nodes.sh - sourced by the cluster benchmarks: starts cluster-enabled nodes
# (redcell or stock) on free loopback ports, one temp dir each, and stops them all on exit.
# Needs REDCELL_BIN and SHARDS set by the caller; NODE_TIMEOUT (ms) is passed on if set.

PIDS=()
DIRS=()

# cleanup: stops every node started so far and removes their dirs.
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    for d in "${DIRS[@]}"; do rm -rf "$d"; done
    PIDS=()
    DIRS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_node KIND (redcell or redis): starts one node, waits until it answers, sets NODE_PORT.
# Runs in the main shell (not a command substitution), so cleanup knows its PID.
start_node() {
    local kind=$1 port cport dir
    port=$(free_port); cport=$(free_port); dir=$(mktemp -d)
    DIRS+=("$dir")
    if [ "$kind" = redcell ]; then
        (cd "$dir" && exec "$REDCELL_BIN" --port "$port" --bind 127.0.0.1 --shards "$SHARDS" \
            --cluster-enabled yes --cluster-port "$cport" \
            --cluster-node-timeout "${NODE_TIMEOUT:-15000}" >log 2>&1) &
    else
        (cd "$dir" && exec redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly no --cluster-enabled yes --cluster-port "$cport" \
            --cluster-node-timeout "${NODE_TIMEOUT:-15000}" >log 2>&1) &
    fi
    PIDS+=($!)
    for _ in $(seq 100); do redis-cli -p "$port" PING >/dev/null 2>&1 && break; sleep 0.1; done
    # shellcheck disable=SC2034  # read by the caller
    NODE_PORT=$port
}
