#!/usr/bin/env bash
# Installs qmix into a scratch prefix and builds a consumer project against it, once with
# find_package(qmix) and once with add_subdirectory.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d "${TMPDIR:-/tmp}/qmix-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
cmake -S . -B "$work/build" -DQMIX_BUILD_TESTS=OFF -DQMIX_BUILD_BENCH=OFF -DQMIX_BUILD_EXAMPLES=OFF >/dev/null
cmake --install "$work/build" --prefix "$work/prefix" >/dev/null
cmake -S tests/consumer -B "$work/consumer" -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/consumer" >/dev/null
"$work/consumer/consumer"
cmake -S tests/consumer -B "$work/subdirectory" -DQMIX_SOURCE_DIR="$(pwd)" >/dev/null
cmake --build "$work/subdirectory" >/dev/null
"$work/subdirectory/consumer"
echo "package: 2 passed, 0 failed"
