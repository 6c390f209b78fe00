#!/usr/bin/env bash
# Loads qmix-quantize's outputs in a real whisper.cpp: builds whisper.cpp's library from a
# checkout you have (nothing of it enters this tree; the build goes to $WORK), links a
# ten-line loader against it, quantizes synthetic tiny and base models (f16 and f32) to every
# type and to mixed rules, and prints, for each file, what whisper.cpp did next to what
# `qmix-quantize --info` predicted. Exits non-zero when the two disagree.
#   scripts/whisper_load_check.sh upstream WHISPER_CPP_SOURCE_DIR [WORK_DIR]
#   scripts/whisper_load_check.sh per-tensor WHISPER_CPP_WITH_MIXED_PRECISION_DIR [WORK_DIR]
# upstream: uniform files must load and mixed ones be refused; per-tensor (a whisper.cpp with
# mixed-precision support): every file qmix says loads with per-tensor types must load.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,11p' "$0"; exit 2; }
loader=$1
case $loader in upstream | per-tensor) ;; *) echo "the loader is upstream or per-tensor"; exit 2 ;; esac
source_dir=$(cd "$2" && pwd)
root=$(cd "$(dirname "$0")/.." && pwd)
work=${3:-${TMPDIR:-/tmp}/qmix-whisper-load-check-$loader}
mkdir -p "$work"

echo "== building whisper.cpp's library from $source_dir in $work/whisper"
cmake -S "$source_dir" -B "$work/whisper" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DWHISPER_BUILD_EXAMPLES=OFF -DWHISPER_BUILD_TESTS=OFF >"$work/whisper.configure.log" 2>&1
cmake --build "$work/whisper" -j "$(nproc)" --target whisper >"$work/whisper.build.log" 2>&1
cat >"$work/load.cpp" <<'EOF'
// Exit 0 when whisper.cpp loads the model named by argv[1], 1 when it refuses it.
#include <cstdio>
#include "whisper.h"
int main(int argc, char** argv) {
    if (argc < 2) return 2;
    whisper_context_params params = whisper_context_default_params();
    params.use_gpu = false;
    whisper_context* ctx = whisper_init_from_file_with_params(argv[1], params);
    if (ctx == nullptr) return 1;
    whisper_free(ctx);
    return 0;
}
EOF
libs=$(find "$work/whisper" -name 'libwhisper.a' -o -name 'libggml*.a' | sort -r | tr '\n' ' ')
g++ -O1 -I "$source_dir/include" -I "$source_dir/ggml/include" "$work/load.cpp" $libs $libs \
  -lpthread -fopenmp -o "$work/load"

echo "== building qmix-quantize"
cmake -S "$root" -B "$work/qmix" -DCMAKE_BUILD_TYPE=Release -DQMIX_BUILD_TESTS=OFF \
  -DQMIX_BUILD_BENCH=OFF -DQMIX_BUILD_EXAMPLES=ON >/dev/null
cmake --build "$work/qmix" -j "$(nproc)" --target qmix-quantize qmix-synth >/dev/null
bin=$work/qmix/bin

# Every type qmix-quantize can write, from its registry.
types=$("$bin/qmix-quantize" --list-types | awk 'NR > 1 { print $1 }' | tr '\n' ' ')
disagree=0
check() {  # label, qmix-quantize arguments writing $work/out.bin
  local label=$1; shift
  "$bin/qmix-quantize" -q "$@"
  local predicted actual expect=refused
  predicted=$("$bin/qmix-quantize" --info "$work/out.bin" | sed -n 's/^where it loads: //p')
  if "$work/load" "$work/out.bin" >/dev/null 2>&1; then actual=loaded; else actual=refused; fi
  case $predicted in
    "loads in whisper.cpp"*) expect=loaded ;;
    "needs a loader"*) [ "$loader" = per-tensor ] && expect=loaded ;;
  esac
  local verdict=agrees
  if [ "$expect" != "$actual" ]; then verdict=DISAGREES; disagree=1; fi
  printf '%-28s whisper.cpp %-8s qmix: %s  [%s]\n' "$label" "$actual" "$predicted" "$verdict"
}

for size in tiny base; do
  for storage in f16 f32; do
    model=$work/$size-$storage.bin
    "$bin/qmix-synth" "$model" $size $storage --layers 2 >/dev/null
    for type in $types; do
      check "$size $storage -> $type" "$model" "$work/out.bin" "$type"
    done
    check "$size $storage README mix" --tensor-type 'encoder\..*=q8_0' \
      --tensor-type '.*attn.*=q5_k' "$model" "$work/out.bin" q4_k
    check "$size $storage q4_0 + mlp q2_k" --tensor-type '.*mlp.*=q2_k' "$model" "$work/out.bin" q4_0
    rm -f "$model"
  done
done
rm -f "$work/out.bin"
exit $disagree
