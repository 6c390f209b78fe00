#!/usr/bin/env bash
# Installs qmix into a scratch prefix and builds a consumer project against it, as a user
# would: once with find_package(qmix), once with add_subdirectory, and once more with
# find_package and -flto. The consumer has no instruction-set flag of its own; it must
# - run the best kernel level this CPU has (the library dispatches at run time),
# - write the same bytes everywhere, also (x86-64, with qemu-user) the -flto build on an
#   emulated Nehalem, a CPU without AVX, where it must run the sse2 level.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/qmix-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
jobs=$(nproc 2>/dev/null || echo 2)
passed=0

# The level this CPU should get, from the kernel's view of its flags.
expected_level() {
    local flags
    flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    has() { for f in "$@"; do case "$flags" in *" $f "*) ;; *) return 1 ;; esac; done; }
    if has avx512f avx512bw avx512vl avx512dq avx512cd avx512_vnni avx2 fma f16c bmi2; then echo avx512
    elif has avx2 fma f16c bmi2 avx; then echo avx2
    else echo sse2; fi
}

check_run() {  # label, expected level, output line
    local label=$1 level=$2 line=$3
    echo "$line"
    case "$line" in *"level $level "*", ok") ;; *)
        echo "package: $label: expected level $level and ok"; exit 1 ;; esac
}

cmake -S . -B "$work/build" -DQMIX_BUILD_TESTS=OFF -DQMIX_BUILD_BENCH=OFF -DQMIX_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$work/build" -j "$jobs" >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null

cmake -S tests/consumer -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
best=sse2
[ "$(uname -m)" = x86_64 ] && best=$(expected_level)
[ "$(uname -m)" = aarch64 ] && best=neon
installed=$("$work/consumer/consumer")
check_run "find_package" "$best" "$installed"
passed=$((passed + 1))
checksum=${installed#*checksum }; checksum=${checksum%%,*}

cmake -S tests/consumer -B "$work/subdirectory" -DQMIX_SOURCE_DIR="$(pwd)" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$work/subdirectory" -j "$jobs" >/dev/null
line=$("$work/subdirectory/consumer")
check_run "add_subdirectory" "$best" "$line"
[ "${line#*checksum }" = "${installed#*checksum }" ] || { echo "package: add_subdirectory wrote other bytes"; exit 1; }
passed=$((passed + 1))

cmake -S tests/consumer -B "$work/lto" -DCMAKE_PREFIX_PATH="$work/prefix" -DCMAKE_CXX_FLAGS=-flto >/dev/null
cmake --build "$work/lto" >/dev/null
line=$("$work/lto/consumer")
check_run "find_package -flto" "$best" "$line"
[ "${line#*checksum }" = "${installed#*checksum }" ] || { echo "package: the -flto build wrote other bytes"; exit 1; }
passed=$((passed + 1))
if [ "$(uname -m)" = x86_64 ]; then
    if ! command -v qemu-x86_64 >/dev/null 2>&1; then
        echo "package: qemu-x86_64 missing (scripts/deps.sh qemu-user): the Nehalem run is not checked"
        exit 1
    fi
    line=$(qemu-x86_64 -cpu Nehalem "$work/lto/consumer")
    check_run "find_package -flto on Nehalem (qemu)" sse2 "$line"
    [ "${line#*checksum }" = "${installed#*checksum }" ] || { echo "package: Nehalem wrote other bytes"; exit 1; }
    passed=$((passed + 1))
    # The library itself built with LTO too: its level objects are then compiler IR, linked
    # into one program with the consumer, and only the ABI namespaces keep the levels apart.
    cmake -S . -B "$work/build-lto" -DQMIX_BUILD_TESTS=OFF -DQMIX_BUILD_BENCH=OFF \
        -DQMIX_BUILD_EXAMPLES=OFF -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=ON >/dev/null
    cmake --build "$work/build-lto" -j "$jobs" >/dev/null
    cmake --install "$work/build-lto" --prefix "$work/prefix-lto" >/dev/null
    cmake -S tests/consumer -B "$work/all-lto" -DCMAKE_PREFIX_PATH="$work/prefix-lto" -DCMAKE_CXX_FLAGS=-flto >/dev/null
    cmake --build "$work/all-lto" >/dev/null
    for cpu in host Nehalem; do
        if [ $cpu = host ]; then line=$("$work/all-lto/consumer"); level=$best
        else line=$(qemu-x86_64 -cpu Nehalem "$work/all-lto/consumer"); level=sse2; fi
        check_run "LTO library and consumer on $cpu" "$level" "$line"
        [ "${line#*checksum }" = "${installed#*checksum }" ] || { echo "package: LTO on $cpu wrote other bytes"; exit 1; }
        passed=$((passed + 1))
    done
fi
echo "package: $passed passed, 0 failed (checksum $checksum)"
