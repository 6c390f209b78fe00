#!/usr/bin/env bash
# qmix against ggml on this machine, side by side, in one run.
#
#   bench/compare_ggml.sh [options] GGML_SOURCE_DIR
#
# Builds ggml's own microbenchmark, test-quantize-perf, twice from the ggml checkout the user
# names (once for AVX2 + FMA + F16C, once with -march=native), outside this tree, builds
# qmix-bench (unless --qmix-build names a build that has it), then runs the three programs in
# turn, pinned to one core, on the same data (ggml's 0.1 + 2 cos(i); qmix-bench --data=ggml),
# 65536 values, for several interleaved rounds. Prints the side-by-side table (best of the
# rounds; qmix's avx2 level against ggml's AVX2 build, its best level (avx512, else avx2) against ggml's native
# build) and writes it with a chart of the ratios (SVG) and the raw outputs to the output
# folder. Nothing of ggml is copied into this tree.
#
# Options:
#   --work DIR        builds and raw outputs (default: ${TMPDIR:-/tmp}/qmix-compare-ggml)
#   --out DIR         table.md and ratios.svg (default: the work folder)
#   --qmix-build DIR  an existing qmix build folder whose bin/ holds qmix-bench
#   --core N          the core to pin to (default: the last one)
#   --rounds N        interleaved rounds (default: 3)
#   --jobs N          parallel build jobs (default: 2)
#   --types "T ..."   only these types, spelled as qmix spells them (default: every type
#                     both programs know: f16 q4_0 ... q6_k iq4_nl iq4_xs bf16)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=${TMPDIR:-/tmp}/qmix-compare-ggml
out=
qmix_build=
core=$(($(getconf _NPROCESSORS_ONLN) - 1))
rounds=3
jobs=2
only_types=
ggml=

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --work) work=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --qmix-build) qmix_build=$2; shift 2 ;;
    --core) core=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --types) only_types=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    -*) echo "compare_ggml.sh: unknown option $1" >&2; usage 2 >&2 ;;
    *) [ -z "$ggml" ] || { echo "compare_ggml.sh: one ggml folder only" >&2; exit 2; }
       ggml=$1; shift ;;
  esac
done
[ -n "$ggml" ] || usage 2 >&2
[ -f "$ggml/tests/test-quantize-perf.cpp" ] ||
  { echo "compare_ggml.sh: $ggml is not a ggml checkout (no tests/test-quantize-perf.cpp)" >&2; exit 2; }
ggml=$(cd "$ggml" && pwd)
mkdir -p "$work"
work=$(cd "$work" && pwd)
case "$work/" in
  "$root"/*) echo "compare_ggml.sh: --work must be outside the qmix tree ($root)" >&2; exit 2 ;;
esac
out=${out:-$work}
mkdir -p "$out"
command -v taskset >/dev/null || { echo "compare_ggml.sh: taskset (util-linux) is needed" >&2; exit 2; }

log() { echo "compare_ggml.sh: $*" >&2; }

# ggml: the AVX2 build switches on exactly AVX, AVX2, FMA and F16C (no BMI2, no AVX-512);
# the native build lets the compiler use everything this CPU has.
build_ggml() {
  local name=$1; shift
  local dir=$work/ggml-$name
  if [ ! -x "$dir/bin/test-quantize-perf" ]; then
    log "building ggml test-quantize-perf ($name) in $dir"
    cmake -S "$ggml" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DGGML_BUILD_TESTS=ON \
      -DGGML_BUILD_EXAMPLES=OFF -DGGML_OPENMP=OFF -DGGML_CCACHE=OFF -DBUILD_SHARED_LIBS=OFF \
      "$@" >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log" >&2; exit 1; }
    cmake --build "$dir" -j "$jobs" --target test-quantize-perf >"$dir.build.log" 2>&1 ||
      { tail -40 "$dir.build.log" >&2; exit 1; }
  fi
  echo "$dir/bin/test-quantize-perf"
}
ggml_avx2=$(build_ggml avx2 -DGGML_NATIVE=OFF -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON \
  -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=OFF -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF)
ggml_native=$(build_ggml native -DGGML_NATIVE=ON)

if [ -z "$qmix_build" ]; then
  qmix_build=$work/qmix
  log "building qmix-bench in $qmix_build"
  cmake -S "$root" -B "$qmix_build" -DCMAKE_BUILD_TYPE=Release -DQMIX_BUILD_BENCH=ON \
    -DQMIX_BUILD_TESTS=OFF -DQMIX_BUILD_EXAMPLES=OFF >"$qmix_build.configure.log" 2>&1 ||
    { cat "$qmix_build.configure.log" >&2; exit 1; }
  cmake --build "$qmix_build" -j "$jobs" --target qmix-bench >"$qmix_build.build.log" 2>&1 ||
    { tail -40 "$qmix_build.build.log" >&2; exit 1; }
fi
qmix_bench=$qmix_build/bin/qmix-bench
[ -x "$qmix_bench" ] || { echo "compare_ggml.sh: no $qmix_bench" >&2; exit 2; }

# The types, as qmix spells them; test-quantize-perf spells the k-quants with a capital K.
types=(f16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs bf16)
if [ -n "$only_types" ]; then
  read -r -a types <<<"$only_types"
fi
type_args=()
for t in "${types[@]}"; do
  case $t in
    q[2-6]_k) type_args+=(--type "${t%k}K") ;;
    *) type_args+=(--type "$t") ;;
  esac
done
qmix_types=$(IFS='|'; echo "${types[*]}")

run_ggml() {  # binary output-file
  # The reference quantizers of the k-quants take milliseconds per call: fewer iterations.
  {
    taskset -c "$core" "$1" --size 65536 -i 300 --op quantize_row_q_reference "${type_args[@]}"
    taskset -c "$core" "$1" --size 65536 -i 3000 --op dequantize_row_q --op quantize_row_q_dot \
      --op vec_dot_q "${type_args[@]}"
  } >"$2"
}

raw=$work/raw
rm -rf "$raw"
mkdir -p "$raw"
for round in $(seq "$rounds"); do
  log "round $round of $rounds on core $core"
  run_ggml "$ggml_avx2" "$raw/ggml-avx2-$round.txt"
  run_ggml "$ggml_native" "$raw/ggml-native-$round.txt"
  taskset -c "$core" "$qmix_bench" --data=ggml \
    --benchmark_filter="^(quantize|dequantize|partner|dot)/($qmix_types)/(avx2|avx512)\$" \
    --benchmark_min_time=0.1 --benchmark_format=json >"$raw/qmix-$round.json"
done

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
extensions=$(grep -m1 -o -w -E 'avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|avx512_fp16|avx512vbmi' /proc/cpuinfo | sort -u | tr '\n' ' ')
machine="${cpu:-unknown CPU} (${extensions% }), $(getconf _NPROCESSORS_ONLN) cores"
ggml_commit=$(git -C "$ggml" rev-parse --short=8 HEAD 2>/dev/null || echo unknown)
qmix_commit=$(git -C "$root" rev-parse --short=7 HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  qmix_commit="$qmix_commit + local changes"
fi

{
  echo "Machine: $machine. qmix $qmix_commit, ggml $ggml_commit; one thread pinned to core $core,"
  echo "$rounds interleaved rounds, 65536 values in cache, ggml's data for both."
  echo
  python3 "$here/compare_ggml.py" --qmix "$raw/qmix-*.json" \
    --ggml-avx2 "$raw/ggml-avx2-*.txt" --ggml-native "$raw/ggml-native-*.txt" \
    --svg "$out/ratios.svg" --machine "$cpu"
} | tee "$out/table.md"
log "wrote $out/table.md and $out/ratios.svg (raw outputs in $raw)"
