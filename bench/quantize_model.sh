#!/usr/bin/env bash
# Whole-process timing of qmix-quantize on a synthetic whisper base (f16), against the
# reference tool's figures in ../shared/baselines.md. Prints a markdown table.
#   bench/quantize_model.sh [BIN_DIR] [RUNS] [THREADS]
set -euo pipefail
bin=$(cd "${1:-build/bin}" && pwd)
runs=${2:-5}
threads=${3:-2}
work=$(mktemp -d "${TMPDIR:-/tmp}/qmix-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$bin/qmix-synth" "$work/base.bin" base f16 >/dev/null

declare -A reference_seconds=([q4_0]=0.418 [q8_0]=0.683 [q4_k]=5.02 [q6_k]=2.40)
declare -A reference_mib=([q4_0]=272 [q8_0]=272 [q4_k]=272 [q6_k]=272)

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "| target | qmix wall s (median of $runs) | reference wall s | speed-up | qmix peak RSS MiB | reference MiB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for type in q4_0 q8_0 q4_k q6_k; do
  : > "$work/times"
  : > "$work/rss"
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/one" "$bin/qmix-quantize" -q -t "$threads" \
      "$work/base.bin" "$work/out.bin" "$type"
    read -r seconds kib < "$work/one"
    echo "$seconds" >> "$work/times"
    echo "$kib" >> "$work/rss"
  done
  s=$(median < "$work/times")
  m=$(median < "$work/rss")
  awk -v t="$type" -v s="$s" -v m="$m" -v rs="${reference_seconds[$type]}" -v rm="${reference_mib[$type]}" \
    'BEGIN { printf "| %s | %.3f | %.3f | %.1fx | %.0f | %d |\n", t, s, rs, rs / s, m / 1024, rm }'
done
