#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang in build-fuzz/, replays the kept
# regression inputs (tests/fuzz/regressions/TARGET/), then fuzzes each target for SECONDS
# seconds starting from its seed corpus (tests/fuzz/corpus/TARGET/). Prints the executions
# per target; exits non-zero when a regression input fails again or a new finding appears.
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default 60 s; targets: model_reader rules cli
#                                              dequantize quantize)
# Environment:
#   QMIX_FUZZ_PARALLEL=N   fuzz N targets at a time (default 1)
#   QMIX_FUZZ_NICE=N       niceness of the fuzzing processes (default 19)
#   QMIX_FUZZ_BUILD_JOBS=N parallel compile jobs (default 1)
# New findings are kept as build-fuzz/artifacts/TARGET/crash-* (or leak-, timeout-, oom-):
# fix the cause, then copy the file to tests/fuzz/regressions/TARGET/ so it is replayed.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
root=$(pwd)

seconds=${1:-60}
shift || true
case $seconds in '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2 ;; esac
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(model_reader rules cli dequantize quantize)
parallel=${QMIX_FUZZ_PARALLEL:-1}
niceness=${QMIX_FUZZ_NICE:-19}
build_jobs=${QMIX_FUZZ_BUILD_JOBS:-1}

clang=$(command -v clang++ || command -v clang++-14 || true)
if [ -z "$clang" ]; then
  echo "fuzz: clang++ is not installed (libFuzzer needs it)" >&2
  exit 2
fi
clang_c=$(command -v "${clang/clang++/clang}" || echo clang)

dir=build-fuzz
mkdir -p "$dir"
echo "== fuzz: configure and build ($dir, $clang)"
# The library code is instrumented for coverage and sanitizers too (fuzzer-no-link), not
# only the targets, so that the fuzzers see into the SIMD kernels.
if ! cmake -S . -B "$dir" -DCMAKE_CXX_COMPILER="$clang" -DCMAKE_C_COMPILER="$clang_c" \
  -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g" \
  "-DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
  -DQMIX_FUZZ=ON -DQMIX_BUILD_TESTS=OFF -DQMIX_BUILD_BENCH=OFF -DQMIX_BUILD_EXAMPLES=OFF \
  >"$dir/configure.log" 2>&1; then
  tail -n 30 "$dir/configure.log"; exit 1
fi
programs=()
for t in "${targets[@]}"; do programs+=("qmix-fuzz-${t//_/-}"); done
for p in "${programs[@]}"; do
  if ! cmake --build "$dir" --target "$p" -j "$build_jobs" >"$dir/build-$p.log" 2>&1; then
    tail -n 40 "$dir/build-$p.log"
    echo "fuzz: building $p failed (is QMIX_FUZZ wired into CMakeLists.txt?)" >&2
    exit 1
  fi
done

# Maximum input length per target: the reader and the kernels get room for a few KB of
# model or blocks; the text targets stay short (see tests/fuzz/README.md for why).
max_len_of() {
  case $1 in
    model_reader) echo 16384 ;;
    dequantize) echo 4700 ;;   # 16 blocks of the largest format (q8_k, 292 bytes)
    quantize) echo 2049 ;;     # 512 floats
    rules | cli) echo 1024 ;;  # rule text is short
    *) echo 4096 ;;
  esac
}

# qmix-fuzz-cli runs in fork mode, where a timeout does not end the run: it parses rule
# patterns and skips only the std::regex hazards (tests/fuzz/README.md); its timeouts are
# counted and printed instead. Crashes still stop the run. qmix-fuzz-rules matches with
# qmix's own automaton, whose time is linear: a timeout there is a finding.
options_of() {
  case $1 in
    cli) echo "-fork=1 -ignore_timeouts=1 -ignore_ooms=0 -ignore_crashes=0 -timeout=5" ;;
    *) echo "-timeout=25" ;;
  esac
}

findings=0
results=()

# 1. Every kept regression input must now pass (run once each, no fuzzing).
for t in "${targets[@]}"; do
  p="$dir/bin/qmix-fuzz-${t//_/-}"
  inputs=(tests/fuzz/regressions/"$t"/*)
  [ -e "${inputs[0]}" ] || continue
  if "$p" "${inputs[@]}" >"$dir/regressions-$t.log" 2>&1; then
    echo "fuzz: $t: ${#inputs[@]} regression input(s) pass"
  else
    tail -n 30 "$dir/regressions-$t.log"
    echo "fuzz: $t: a regression input FAILS again (see $dir/regressions-$t.log)"
    findings=$((findings + 1))
  fi
done

# 2. Fuzz each target for SECONDS, PARALLEL at a time.
fuzz_one() {  # target -> writes $dir/fuzz-TARGET.log and .status
  local t=$1 p="$root/$dir/bin/qmix-fuzz-${1//_/-}"
  local corpus="$dir/corpus/$t" artifacts="$dir/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts"
  touch "$dir/fuzz-$t.start"
  local seeds=()
  [ -d "tests/fuzz/corpus/$t" ] && seeds=("tests/fuzz/corpus/$t")
  # shellcheck disable=SC2046
  nice -n "$niceness" "$p" -max_total_time="$seconds" -max_len="$(max_len_of "$t")" \
    $(options_of "$t") -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" \
    "$corpus" "${seeds[@]}" >"$dir/fuzz-$t.log" 2>&1
  echo $? >"$dir/fuzz-$t.status"
}

running=0
for t in "${targets[@]}"; do
  echo "== fuzz: $t for $seconds s"
  fuzz_one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then wait -n; running=$((running - 1)); fi
done
wait

for t in "${targets[@]}"; do
  log="$dir/fuzz-$t.log"
  status=$(cat "$dir/fuzz-$t.status" 2>/dev/null || echo 1)
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
  # Fork mode and crashed runs print no final statistics: take the last progress line.
  [ -z "$runs" ] && runs=$(grep -o '^#[0-9]*' "$log" | tail -n 1 | tr -d '#')
  corpus=$(find "$dir/corpus/$t" -type f | wc -l)
  timeouts=$(grep -o 'oom/timeout/crash: [0-9/]*' "$log" | tail -n 1 | cut -d' ' -f2 | cut -d/ -f2)
  note=""
  if [ -n "$timeouts" ] && [ "$timeouts" != 0 ]; then
    note=", $timeouts timeout(s) on backtracking patterns (kept as $dir/artifacts/$t/timeout-*)"
    # Fork mode ends with the exit code of the last timeout it ignored.
    [ "$status" = 70 ] && status=0
  fi
  crashes=$(find "$dir/artifacts/$t" -type f -newer "$dir/fuzz-$t.start" ! -name 'timeout-*' | head -n 3)
  if [ "$status" -eq 0 ] && [ -z "$crashes" ]; then
    results+=("$t: ${runs:-?} executions in $seconds s, corpus $corpus inputs, no finding$note")
  else
    findings=$((findings + 1))
    grep -E "ERROR: |runtime error|fuzz invariant broken|SUMMARY" "$log" | head -n 5 | sed 's/^/   /'
    results+=("$t: FINDING after ${runs:-?} executions (exit $status): ${crashes:-see $log}")
  fi
done

echo
echo "== fuzz summary"
printf '   %s\n' "${results[@]}"
echo "fuzz: ${#targets[@]} targets, $findings finding(s)"
[ "$findings" -eq 0 ]
