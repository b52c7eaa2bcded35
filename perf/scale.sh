#!/usr/bin/env bash
# perf/scale.sh - how redcell's throughput grows with its shard count on one host.
#
# For each shard count N in SHARD_COUNTS it runs perf/bench.sh with
#   SHARDS=N SERVER_CPU=0-(N-1) LOAD_CPU=<the last LOAD_CPUS CPUs> THREADS=LOAD_CPUS
# so the server has N cores of its own and memtier_benchmark (one thread per load CPU,
# 50 connections each) never shares one with it. Stock redis-server (one thread for
# commands) runs in the same rotation at N=1 only, as the reference. Every other knob of
# bench.sh (DURATION, ROUNDS, PIPELINES, KEYS, WORKLOAD, MEMTIER_ARGS, REDCELL_BIN,
# REDIS_BIN) passes through.
#
# Output: one line per shard count and pipeline depth with redcell's median ops/s, p99,
# server CPU ns/op and IPIs/op over the rounds, and the scaling efficiency
#   ops(N) / (N * ops(1))
# (1.00: every added core adds a whole core's throughput). With N shards, (N-1)/N of the
# commands arrive on a core that does not own their key and hop to the owner (tuning.md,
# "Reading perf/scale.sh"), so the efficiency is the price of those hops. When the load
# generator saturates first, ops/s stops growing while CPU ns/op stays flat: give it more
# LOAD_CPUS. Each bench.sh run's own table is kept under $OUT_DIR/scale-<timestamp>/.
#
# Knobs (defaults in brackets):
#   SHARD_COUNTS  shard counts to run ["1 2 4 ... up to the CPUs left for the server"]
#   LOAD_CPUS     CPUs (the highest-numbered) for the load generator [max(1, CPUs/3)]
#   OUT_DIR       where results go [<repo>/perf/out]
#
# Usage:
#   perf/scale.sh
#   SHARD_COUNTS="1 4 8" LOAD_CPUS=4 DURATION=15 ROUNDS=3 PIPELINES=16 perf/scale.sh
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
die() { echo "scale.sh: error: $*" >&2; exit 1; }

case ${1:-} in
  -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
  "") ;;
  *) die "no positional arguments; configure with environment variables (see --help)" ;;
esac

NCPU=$(nproc)
LOAD_CPUS=${LOAD_CPUS:-$((NCPU / 3 > 1 ? NCPU / 3 : 1))}
[[ $LOAD_CPUS =~ ^[0-9]+$ && $LOAD_CPUS -gt 0 && $LOAD_CPUS -lt $NCPU ]] \
  || die "LOAD_CPUS must be between 1 and $((NCPU - 1)) on this $NCPU-CPU host"
SERVER_MAX=$((NCPU - LOAD_CPUS))
if [[ -z ${SHARD_COUNTS:-} ]]; then
  SHARD_COUNTS=
  for ((n = 1; n < SERVER_MAX; n *= 2)); do SHARD_COUNTS+="$n "; done
  SHARD_COUNTS+=$SERVER_MAX
fi
for n in $SHARD_COUNTS; do
  [[ $n =~ ^[0-9]+$ && $n -gt 0 && $n -le $SERVER_MAX ]] \
    || die "shard count '$n' does not fit the $SERVER_MAX CPUs left beside $LOAD_CPUS load CPU(s)"
done
LOAD_CPU="$SERVER_MAX-$((NCPU - 1))"
[[ $LOAD_CPUS -gt 1 ]] || LOAD_CPU=$((NCPU - 1))

OUT_DIR=${OUT_DIR:-$REPO_ROOT/perf/out}
SCALE_DIR="$OUT_DIR/scale-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$SCALE_DIR"
SUMMARY="$SCALE_DIR/scale.tsv"
: >"$SUMMARY"

for n in $SHARD_COUNTS; do
  echo "[scale] $n shard(s) on CPUs 0-$((n - 1)), load on CPUs $LOAD_CPU ($LOAD_CPUS thread(s))" >&2
  redis_bin=none
  [[ $n -ne 1 ]] || redis_bin=${REDIS_BIN:-$(command -v redis-server || echo none)}
  SHARDS=$n SERVER_CPU="0-$((n - 1))" LOAD_CPU=$LOAD_CPU THREADS=$LOAD_CPUS \
    REDIS_BIN=$redis_bin OUT_DIR="$SCALE_DIR/shards-$n" "$SCRIPT_DIR/bench.sh" \
    >"$SCALE_DIR/shards-$n.txt" || die "bench.sh failed for $n shard(s) (see $SCALE_DIR/shards-$n.txt)"
  results=$(ls "$SCALE_DIR/shards-$n"/bench-*/results.tsv)
  # results.tsv: pipeline server round ops p50 p99 p99.9 instr/op cpu_ns/op ipi/op
  awk -F'\t' -v n="$n" '{print n "\t" $0}' "$results" >>"$SUMMARY"
done

# median of column c (1-based in scale.tsv) for shard count n, pipeline p, server k
median() {
  awk -F'\t' -v n="$1" -v p="$2" -v k="$3" -v c="$4" \
    '$1 == n && $2 == p && $3 == k && $c ~ /^[0-9.]+$/ {print $c}' "$SUMMARY" |
    sort -g | awk '{v[NR] = $1} END {if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

echo
echo "redcell scaling on $NCPU CPUs: load on CPUs $LOAD_CPU, medians over each run's rounds"
printf '%-8s %6s %-8s %12s %9s %10s %8s %10s\n' shards pipe server ops/sec p99_ms cpu_ns/op ipi/op efficiency
for p in $(cut -f2 "$SUMMARY" | sort -un); do
  base=$(median 1 "$p" redcell 5)
  for n in $SHARD_COUNTS; do
    for k in redcell redis; do
      ops=$(median "$n" "$p" "$k" 5)
      [[ -n $ops ]] || continue
      eff=n/a
      [[ $k != redcell || -z $base ]] || eff=$(awk -v o="$ops" -v b="$base" -v n="$n" 'BEGIN {printf "%.2f", o / (n * b)}')
      printf '%-8s %6s %-8s %12.0f %9s %10s %8s %10s\n' "$n" "$p" "$k" "$ops" \
        "$(median "$n" "$p" "$k" 7)" "$(median "$n" "$p" "$k" 10)" "$(median "$n" "$p" "$k" 11)" "$eff"
    done
  done
done
echo
echo "per-run tables: $SCALE_DIR/shards-<N>.txt"
