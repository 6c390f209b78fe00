#!/usr/bin/env bash
# Whole-process time and peak memory of qmix-quantize --target-bpw on a synthetic whisper
# large (f16, 3.1 GB, written and deleted here), next to a plain q4_k run: median of RUNS.
#   bench/budget_large.sh BUILD_BIN_DIR [RUNS] [THREADS] [BPW]
set -euo pipefail
bin=${1:?usage: bench/budget_large.sh BUILD_BIN_DIR [RUNS] [THREADS] [BPW]}
runs=${2:-3}
threads=${3:-2}
bpw=${4:-4.5}
dir=$(mktemp -d "${TMPDIR:-/tmp}/qmix-budget-large.XXXXXX")
trap 'rm -rf "$dir"' EXIT
"$bin/qmix-synth" "$dir/large.bin" large f16 >/dev/null
measure() {  # LABEL ARGS...: prints the median wall, user+sys and the peak RSS of RUNS runs
  local label=$1
  shift
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %U %S %M" "$@" 2>&1 >/dev/null | tail -1
  done | sort -n | awk -v label="$label" -v runs="$runs" '
    { wall[NR] = $1; cpu[NR] = $2 + $3; rss[NR] = $4 }
    END { m = int((runs + 1) / 2); printf "%-28s median wall %6.2f s  cpu %6.2f s  peak RSS %4d MiB\n", label, wall[m], cpu[m], rss[m] / 1024 }'
}
measure "--target-bpw $bpw" "$bin/qmix-quantize" -q -t "$threads" --target-bpw "$bpw" "$dir/large.bin" "$dir/out.bin"
measure "plain q4_k" "$bin/qmix-quantize" -q -t "$threads" "$dir/large.bin" "$dir/out.bin" q4_k
uptime
