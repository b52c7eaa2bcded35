#!/usr/bin/env bash
# perf/reshard-bench.sh - keys per second moved by `redis-cli --cluster reshard` between two
# masters: stock→stock, stock→redcell and redcell→stock, on the same machine.
#
# For each pair it starts a 3-master cluster on 127.0.0.1 (source, target and a stock third
# node, as redis-cli needs three masters; free ports, temp dirs), fills it with up to KEYS
# string keys of VALUE bytes (pipelined SETs sent to each key's owner), then times
#   redis-cli --cluster reshard SOURCE --cluster-from SRC --cluster-to DST
#             --cluster-slots SLOTS --cluster-yes --cluster-pipeline PIPELINE
# and prints keys moved, seconds, keys/s, and each pair's ratio to stock→stock, for ROUNDS
# alternating rounds. Every server it starts is stopped on exit.
#
# Knobs: REDCELL_BIN [<repo>/target/release/redcell-server], SHARDS per redcell node [1],
#        KEYS [200000], VALUE [64], SLOTS [4096], PIPELINE [10], ROUNDS [2].
# Usage: perf/reshard-bench.sh
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
REDCELL_BIN=${REDCELL_BIN:-$repo/target/release/redcell-server}
SHARDS=${SHARDS:-1}
KEYS=${KEYS:-200000}
VALUE=${VALUE:-64}
SLOTS=${SLOTS:-4096}
PIPELINE=${PIPELINE:-10}
ROUNDS=${ROUNDS:-2}

for tool in redis-cli redis-server redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "$tool is required (apt install redis-server redis-tools)" >&2; exit 1; }
done
[ -x "$REDCELL_BIN" ] || { echo "no $REDCELL_BIN (cargo build --release)" >&2; exit 1; }
REDCELL_BIN=$(cd "$(dirname "$REDCELL_BIN")" && pwd)/$(basename "$REDCELL_BIN")

# shellcheck source=perf/cluster-nodes.sh
source "$repo/perf/cluster-nodes.sh"

# fill PORT: KEYS keys spread over all slots, each SET on its owner (CRC16 as Redis hashes,
# owners from CLUSTER NODES). redis-benchmark --cluster would put each node's keys in one slot.
fill() {
    python3 - "$1" "$KEYS" "$VALUE" <<'PY'
import binascii, socket, subprocess, sys
port, keys, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
owner = {}
out = subprocess.run(["redis-cli", "-p", str(port), "CLUSTER", "NODES"],
                     capture_output=True, text=True).stdout
for line in out.splitlines():
    f = line.split()
    p = int(f[1].split("@")[0].rsplit(":", 1)[1])
    for r in f[8:]:
        if r.startswith("["):
            continue
        a, _, b = r.partition("-")
        for s in range(int(a), int(b or a) + 1):
            owner[s] = p
batches = {}
value = b"x" * size
for k in range(keys):
    key = b"key:%d" % k
    slot = binascii.crc_hqx(key, 0) % 16384
    batches.setdefault(owner[slot], []).append(
        b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, size, value))
for p, cmds in batches.items():
    s = socket.create_connection(("127.0.0.1", p))
    for j in range(0, len(cmds), 1000):
        chunk = cmds[j:j + 1000]
        s.sendall(b"".join(chunk))
        got = 0
        while got < len(chunk):
            data = s.recv(65536)
            if not data:
                sys.exit("connection closed while filling")
            got += data.count(b"\r\n")
    s.close()
PY
}

# run_pair FROM TO: sets RESULT to "keys seconds keys_per_sec". Runs in the main shell (not a
# command substitution), so the servers it starts are in PIDS for cleanup even if it fails.
run_pair() {
    local from=$1 to=$2 src dst third
    start_node "$from"; src=$NODE_PORT
    start_node "$to"; dst=$NODE_PORT
    start_node redis; third=$NODE_PORT
    redis-cli --cluster create "127.0.0.1:$src" "127.0.0.1:$dst" "127.0.0.1:$third" \
        --cluster-yes >/dev/null
    for _ in $(seq 100); do
        redis-cli -p "$src" CLUSTER INFO | grep -q cluster_state:ok &&
            redis-cli -p "$dst" CLUSTER INFO | grep -q cluster_state:ok && break
        sleep 0.1
    done
    fill "$src"
    local before after start end
    before=$(redis-cli -p "$dst" DBSIZE)
    start=$(date +%s.%N)
    redis-cli --cluster reshard "127.0.0.1:$src" \
        --cluster-from "$(redis-cli -p "$src" CLUSTER MYID)" \
        --cluster-to "$(redis-cli -p "$dst" CLUSTER MYID)" \
        --cluster-slots "$SLOTS" --cluster-yes --cluster-pipeline "$PIPELINE" >/dev/null
    end=$(date +%s.%N)
    after=$(redis-cli -p "$dst" DBSIZE)
    cleanup
    RESULT=$(awk -v k="$((after - before))" -v s="$start" -v e="$end" \
        'BEGIN { t = e - s; printf "%d %.2f %.0f\n", k, t, (t > 0 ? k / t : 0) }')
}

echo "3 masters; $KEYS keys of $VALUE bytes; moving $SLOTS slots, pipeline $PIPELINE; redcell --shards $SHARDS"
printf "%-17s %-6s %10s %9s %10s\n" pair round keys seconds keys/s
declare -A rate
for round in $(seq "$ROUNDS"); do
    for pair in "redis redis" "redis redcell" "redcell redis"; do
        read -r from to <<<"$pair"
        run_pair "$from" "$to"
        read -r keys secs kps <<<"$RESULT"
        printf "%-17s %-6s %10s %9s %10s\n" "$from->$to" "$round" "$keys" "$secs" "$kps"
        rate["$from->$to"]="${rate["$from->$to"]:-} $kps"
    done
done
med() { tr -s ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
base=$(med "${rate["redis->redis"]}")
for pair in "redis->redcell" "redcell->redis"; do
    awk -v a="$(med "${rate[$pair]}")" -v b="$base" -v p="$pair" \
        'BEGIN { printf "%s: median %.0f keys/s = %.2fx of redis->redis (%.0f keys/s)\n", p, a, (b > 0 ? a / b : 0), b }'
done
