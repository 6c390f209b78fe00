#!/usr/bin/env bash
# Whole-process timing of qmix-quantize on a synthetic whisper model (f16), against the I/O
# floor (reading the input plus writing a file of the output's size) and, when given,
# against the reference tool (whisper.cpp's quantize). Prints a markdown table.
#
#   bench/quantize_model.sh [options]
#
# Options:
#   --bin DIR          folder holding qmix-quantize and qmix-synth (default: build/bin)
#   --model NAME       tiny, base, small, medium or large (default: base)
#   --types "T ..."    target types (default: "q4_0 q8_0 q4_k q6_k")
#   --runs N           runs per figure; the table shows medians (default: 3)
#   --threads N        qmix-quantize -t (default: 2)
#   --work DIR         where the model and the outputs go (default: a temporary folder
#                      under ${TMPDIR:-/tmp}); e.g. /dev/shm to leave the disk out
#   --reference BIN    the reference quantizer (whisper.cpp's `quantize`): timed too
#   --keep             keep the synthetic model (it is re-used when present in --work)
#
# The floor of one run is `cat INPUT > /dev/null` plus `dd` writing as many bytes as the
# output has to a file beside it and syncing it (qmix-quantize syncs its output before the
# rename too), each timed on its own; the input is in the page cache for both (qmix-synth
# has just written it, and every run reads it again).
set -euo pipefail
bin=build/bin
model=base
types="q4_0 q8_0 q4_k q6_k"
runs=3
threads=2
work=
reference=
keep=0
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --bin) bin=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --types) types=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --reference) reference=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "quantize_model.sh: unknown argument $1" >&2; usage 2 >&2 ;;
  esac
done
bin=$(cd "$bin" && pwd)
if [ -n "$work" ]; then
  mkdir -p "$work"
  scratch=$(mktemp -d "$work/qmix-bench.XXXXXX")
else
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/qmix-bench.XXXXXX")
fi
input=${work:-$scratch}/synthetic-$model-f16.bin
cleanup() {
  rm -rf "$scratch"
  [ "$keep" = 1 ] || rm -f "$input"
}
trap cleanup EXIT
[ -f "$input" ] || "$bin/qmix-synth" "$input" "$model" f16 >/dev/null

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# time_one FILE COMMAND...: appends "wall user sys peak_KiB" of one run to FILE. What the
# command prints is kept out of the table (the reference tool reports every tensor on
# stderr) and shown only when it fails.
time_one() {
  local into=$1; shift
  if ! /usr/bin/time -f "%e %U %S %M" -o "$scratch/one" "$@" >/dev/null 2>"$scratch/stderr"; then
    echo "quantize_model.sh: failed: $*" >&2
    tail -20 "$scratch/stderr" >&2
    exit 1
  fi
  cat "$scratch/one" >> "$into"
}
column() { awk -v c="$1" '{ print $c }' "$2" | median; }

echo "Machine: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(getconf _NPROCESSORS_ONLN) cores;" \
  "input $(basename "$input") ($(stat -c %s "$input") bytes) on $(df --output=fstype "$(dirname "$input")" | tail -1);" \
  "$threads threads; medians of $runs; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
header="| target | qmix wall s | user s | sys s | peak RSS MiB | I/O floor s | qmix / floor |"
rule="| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
if [ -n "$reference" ]; then
  header="$header reference wall s | reference MiB | speed-up |"
  rule="$rule ---: | ---: | ---: |"
fi
echo "$header"
echo "$rule"
cat "$input" > /dev/null  # into the page cache
for type in $types; do
  : > "$scratch/qmix"; : > "$scratch/floor"; : > "$scratch/ref"
  for _ in $(seq "$runs"); do
    rm -f "$scratch/out.bin" "$scratch/floor.bin"
    time_one "$scratch/qmix" "$bin/qmix-quantize" -q -t "$threads" "$input" "$scratch/out.bin" "$type"
    bytes=$(stat -c %s "$scratch/out.bin")
    rm -f "$scratch/out.bin"
    : > "$scratch/read"; : > "$scratch/write"
    time_one "$scratch/read" cat "$input"
    time_one "$scratch/write" dd if=/dev/zero of="$scratch/floor.bin" bs=4M count="$bytes" \
      iflag=count_bytes conv=fsync status=none
    rm -f "$scratch/floor.bin"
    paste "$scratch/read" "$scratch/write" | awk '{ print $1 + $5 }' >> "$scratch/floor"
    if [ -n "$reference" ]; then
      time_one "$scratch/ref" "$reference" "$input" "$scratch/out.bin" "$type"
      rm -f "$scratch/out.bin"
    fi
  done
  wall=$(column 1 "$scratch/qmix"); user=$(column 2 "$scratch/qmix"); sys=$(column 3 "$scratch/qmix")
  rss=$(column 4 "$scratch/qmix"); floor=$(median < "$scratch/floor")
  line=$(awk -v t="$type" -v w="$wall" -v u="$user" -v s="$sys" -v m="$rss" -v f="$floor" \
    'BEGIN { printf "| %s | %.2f | %.2f | %.2f | %.0f | %.2f | %.2fx |", t, w, u, s, m / 1024, f, w / f }')
  if [ -n "$reference" ]; then
    rw=$(column 1 "$scratch/ref"); rm_=$(column 4 "$scratch/ref")
    line="$line$(awk -v w="$wall" -v rw="$rw" -v rm="$rm_" 'BEGIN { printf " %.2f | %.0f | %.1fx |", rw, rm / 1024, rw / w }')"
  fi
  echo "$line"
done
