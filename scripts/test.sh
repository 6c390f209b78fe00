#!/usr/bin/env bash
# Builds qmix and runs every test in these builds (QMIX_TEST_BUILDS="release native" picks a
# subset; the summary gives each build's wall time):
#   release   -O3: all of qmix-tests, the single-header and header-only programs, the
#             command-line and bad-input suites (tests/e2e; the 465 MiB resource bound only here)
#   debug     -O0, no examples: the [golden] and [core] tests (every level must compile and
#             give the same bytes unoptimised; the whole-model tests run in the other builds)
#   native    -O3 -march=native -ffp-contract=fast (the FMA trap: bytes must not change): all of
#             qmix-tests, both e2e suites
#   aarch64   cross-compiled for 64-bit ARM (NEON), run under qemu-user, no examples: every
#             test but the whole-model ones ([budget], [pipeline]: multi-megabyte models,
#             minutes under the emulator, no code of their own that depends on the ISA; the
#             host builds run them). The golden, kernel, dispatch, core, rules, codec and
#             loader tests run: every NEON kernel, and the codec on a second architecture
#   sanitize  AddressSanitizer + UndefinedBehaviorSanitizer at -O1: all of qmix-tests and both
#             e2e suites (the kernel levels without ASan's use-after-scope marks: see
#             CMakeLists.txt)
#   fuzz      every libFuzzer target for $QMIX_FUZZ_SECONDS (30) seconds (needs clang)
#   package   scripts/package_test.sh: cmake --install, then consumers with no -m flag via
#             find_package, add_subdirectory (no build type: -O0) and -flto, which must run the
#             CPU's best level, and under qemu-x86_64 -cpu Nehalem sse2, with the same bytes
# Each build also runs the golden and dispatch tests once per kernel level it holds
# (QMIX_FORCE_ARCH=scalar, sse2, avx2, avx512 on x86-64; scalar, neon on aarch64), and host
# builds check the level objects' symbols (scripts/check_level_symbols.sh) and, without
# -march, that wide instructions stay inside the levels (scripts/check_kernel_isolation.sh).
# A build's test phase runs as two streams side by side (see run_build): the [budget] tests and
# the command-line suite in one, everything else in the other.
# Once per run: single_include/ is current, and a per-ISA layer that lacks a primitive the
# bytes depend on does not compile (scripts/check_isa_contract.sh).
# Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/deps.sh cmake g++ make python3 libxsimd-dev catch2 libbenchmark-dev || exit 1
builds=${QMIX_TEST_BUILDS:-"release debug native aarch64 sanitize fuzz package"}
case " $builds " in *" aarch64 "*) scripts/deps.sh g++-aarch64-linux-gnu qemu-user || exit 1 ;; esac
case " $builds " in *" fuzz "*) scripts/deps.sh clang libclang-rt-14-dev || exit 1 ;; esac

# The golden set: $QMIX_GOLDEN_DIR, else tests/data/golden (copied from ../shared/golden).
if [ -z "${QMIX_GOLDEN_DIR:-}" ]; then
  if [ ! -f tests/data/golden/manifest.tsv ] && [ -d ../shared/golden ]; then
    mkdir -p tests/data && rm -rf tests/data/golden && cp -r ../shared/golden tests/data/golden
    chmod -R u+w tests/data/golden
  fi
  export QMIX_GOLDEN_DIR="$root/tests/data/golden"
fi

jobs=$(nproc 2>/dev/null || echo 2)
passed=0
failed=0
summary=()

configure_and_build() {  # name, cmake arguments...
  local name=$1; shift
  local dir="build-test/$name"
  mkdir -p build-test
  cmake -S . -B "$dir" -DQMIX_BUILD_BENCH=OFF -DQMIX_BUILD_TESTS=ON -DQMIX_BUILD_EXAMPLES=ON "$@" >"$dir.configure.log" 2>&1 || return 1
  cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1
}

# qmix-tests of a build with a test spec, under the emulator when there is one. Tests that
# cannot hold under an emulator (an address-space limit on qemu-user) say so.
qmix_tests() {  # dir, emulator (or ""), spec
  (cd "$1" && QMIX_UNDER_EMULATOR=${2:+1} $2 ./bin/qmix-tests --use-colour no "$3")
}

# The command-line suites run the real binaries: host builds only (a cross build's programs
# run under the emulator only through the test executable), and not at -O0.
runs_e2e() {  # name, emulator (or "")
  [ -z "$2" ] && [ "$1" != debug ]
}

# Stream a of a build's test phase (see run_build): qmix-tests with SPEC (none when empty),
# then the command-line suite.
stream_a() {  # name, emulator (or ""), spec (or "")
  local name=$1 emulator=$2 spec=$3 dir="build-test/$1" ok=1
  if [ -n "$spec" ]; then qmix_tests "$dir" "$emulator" "$spec" || ok=0; fi
  if runs_e2e "$name" "$emulator"; then tests/e2e/cli_test.sh "$dir/bin" || ok=0; fi
  [ $ok -eq 1 ]
}

# Stream b: qmix-tests with SPEC, the single-header and header-only programs, every kernel
# level forced, the symbol checks and the bad-input suite.
stream_b() {  # name, emulator (or ""), spec
  local name=$1 emulator=$2 spec=$3 dir="build-test/$1" ok=1
  qmix_tests "$dir" "$emulator" "$spec" || ok=0
  (cd "$dir" && $emulator ./bin/qmix-single-include-test) || ok=0
  (cd "$dir" && $emulator ./bin/qmix-header-only-test) || ok=0
  # Every kernel level the build holds, forced in turn through QMIX_FORCE_ARCH: the golden
  # test and the dispatch tests (the active table is the forced one, the row API and the
  # parallel drivers run on it). The golden and randomized kernel tests above already
  # compare every level the CPU runs, forced or not.
  local levels level
  levels=$(cd "$dir" && $emulator ./bin/qmix-tests --kernel-levels)
  [ -n "$levels" ] || { echo "kernels: no kernel levels listed"; ok=0; }
  for level in $levels; do
    if (cd "$dir" && QMIX_FORCE_ARCH=$level $emulator ./bin/qmix-tests --use-colour no \
        "[golden],[dispatch]") >"$dir.force-$level.log" 2>&1; then
      echo "kernels: QMIX_FORCE_ARCH=$level passed"
    else
      echo "kernels: QMIX_FORCE_ARCH=$level FAILED (see $dir.force-$level.log)"; ok=0
    fi
  done
  # A build for any x86-64 CPU runs wide instructions only inside the kernel levels.
  if [ -z "$emulator" ] && [ "$name" != native ] && [ "$(uname -m)" = x86_64 ]; then
    scripts/check_kernel_isolation.sh "$dir/bin/qmix-tests" || ok=0
  fi
  # The kernel levels share no symbol (each in its own ABI namespace, localised).
  if [ -z "$emulator" ]; then
    scripts/check_level_symbols.sh "$dir" || ok=0
  fi
  if runs_e2e "$name" "$emulator"; then
    # The resource bound writes a 465 MiB model: once, in the release build, is enough.
    QMIX_BAD_INPUT_RESOURCE=$([ "$name" = release ] && echo 1 || echo 0) \
      tests/e2e/bad_input_test.sh "$dir/bin" || ok=0
  fi
  [ $ok -eq 1 ]
}

run_build() {  # name, emulator (or ""), test filter (or ""), cmake arguments...
  local name=$1 emulator=$2 filter=$3; shift 3
  local dir="build-test/$name" log="build-test/$name.test.log"
  mkdir -p build-test
  echo "== $name: configure and build"
  if ! configure_and_build "$name" "$@"; then
    tail -n 40 "$dir.configure.log" "$dir.build.log" 2>/dev/null
    summary+=("$name: BUILD FAILED (see $dir.build.log)"); failed=$((failed + 1)); return
  fi
  echo "== $name: test"
  # Two streams side by side, each logging to its own file (most steps use one core): a runs
  # the [budget] tests, when the build runs every test, and the command-line suite; b the
  # rest of qmix-tests and every other step. The build's log gets b's log, then a's.
  local budget_spec="" rest_spec=$filter
  if [ -z "$filter" ]; then budget_spec="[budget]"; rest_spec="~[budget]"; fi
  stream_a "$name" "$emulator" "$budget_spec" >"$dir.stream-a.log" 2>&1 &
  local a_pid=$! ok=1
  stream_b "$name" "$emulator" "$rest_spec" >"$dir.stream-b.log" 2>&1 || ok=0
  wait "$a_pid" || ok=0
  cat "$dir.stream-b.log" "$dir.stream-a.log" >"$log"
  grep -E "^golden:|^single_include:|^header_only:|^kernels:|^kernel isolation:|^level symbols:|^cli:|^bad-input:|test cases|All tests passed|FAILED" "$log" | sed "s/^/   /"
  if [ $ok -eq 1 ]; then
    summary+=("$name: passed ($(grep -m1 -o '^golden: [0-9]* files' "$log" || echo 'no golden count'))")
    passed=$((passed + 1))
  else
    tail -n 60 "$log"
    summary+=("$name: FAILED (see $log)"); failed=$((failed + 1))
  fi
}

run_fuzz() {  # SECONDS per target (clang only)
  mkdir -p build-test
  if ! command -v clang++ >/dev/null 2>&1; then summary+=("fuzz: SKIPPED (no clang++)"); return; fi
  echo "== fuzz: $1 s per target"
  if QMIX_FUZZ_BUILD_JOBS=${QMIX_FUZZ_BUILD_JOBS:-$jobs} scripts/fuzz.sh "$1" >build-test/fuzz.log 2>&1; then
    passed=$((passed + 1)); summary+=("fuzz: passed ($(grep -c 'no finding' build-test/fuzz.log) targets, no finding)")
  else
    tail -n 30 build-test/fuzz.log; failed=$((failed + 1)); summary+=("fuzz: FAILED (see build-test/fuzz.log)")
  fi
  sed -n '/== fuzz summary/,$p' build-test/fuzz.log | sed 's/^/   /'
}

for b in $builds; do
  build_start=$SECONDS
  case $b in
    release) run_build release "" "" -DCMAKE_BUILD_TYPE=Release ;;
    debug) run_build debug "" "[golden],[core]" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS=-O0" \
      -DQMIX_BUILD_EXAMPLES=OFF ;;
    native) run_build native "" "" -DCMAKE_BUILD_TYPE=Release \
      "-DCMAKE_CXX_FLAGS=-O3 -march=native -ffp-contract=fast" ;;
    aarch64) run_build aarch64 "qemu-aarch64 -L /usr/aarch64-linux-gnu" "~[budget]~[pipeline]" \
      -DCMAKE_BUILD_TYPE=Release -DQMIX_BUILD_EXAMPLES=OFF \
      -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake "-DCMAKE_CXX_FLAGS=-ffp-contract=fast" ;;
    fuzz) run_fuzz "${QMIX_FUZZ_SECONDS:-30}" ;;
    package)
      echo "== package: install, then find_package, add_subdirectory and -flto consumers"
      mkdir -p build-test
      if scripts/package_test.sh >build-test/package.log 2>&1; then
        passed=$((passed + 1)); summary+=("package: passed")
      else
        tail -n 30 build-test/package.log; failed=$((failed + 1)); summary+=("package: FAILED")
      fi ;;
    sanitize) run_build sanitize "" "" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS=-O1" -DQMIX_SANITIZE=ON ;;
    *) echo "unknown build $b"; summary+=("$b: UNKNOWN BUILD"); failed=$((failed + 1)) ;;
  esac
  elapsed=$((SECONDS - build_start))
  [ ${#summary[@]} -gt 0 ] && summary[-1]="${summary[-1]} [$((elapsed / 60))m$((elapsed % 60))s]"
done

if scripts/amalgamate.sh --check; then passed=$((passed + 1)); summary+=("single_include: current")
else failed=$((failed + 1)); summary+=("single_include: STALE (run scripts/amalgamate.sh)"); fi
if scripts/check_isa_contract.sh; then passed=$((passed + 1)); summary+=("isa contract: holds")
else failed=$((failed + 1)); summary+=("isa contract: FAILED (scripts/check_isa_contract.sh)"); fi

echo
echo "== summary"
printf '   %s\n' "${summary[@]}"
echo "test.sh: $passed passed, $failed failed"
[ $failed -eq 0 ]
