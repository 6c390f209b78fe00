#!/usr/bin/env bash
# The main job, end to end: builds qmix-quantize, and quantizes MODEL.bin (or, without an
# argument, a synthetic model with the names and shapes of whisper base) with the README's
# first example: encoder and attention matrices at higher precision, the rest q4_k.
#   scripts/demo.sh [MODEL.bin]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh cmake g++ make python3 libxsimd-dev catch2 libbenchmark-dev
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DQMIX_BUILD_TESTS=OFF -DQMIX_BUILD_BENCH=OFF \
  -DQMIX_BUILD_EXAMPLES=ON >/dev/null
cmake --build build -j "$(nproc)" --target qmix-quantize qmix-synth >/dev/null

mkdir -p build/demo
model=${1:-}
if [ -z "$model" ]; then
  model=build/demo/ggml-base-synthetic.bin
  echo "== no model given: writing a synthetic whisper base (f16) to $model"
  build/bin/qmix-synth "$model" base f16
fi
out=build/demo/$(basename "${model%.bin}")-mixed.bin

echo "== qmix-quantize --tensor-type 'encoder\\..*=q8_0' --tensor-type '.*attn.*=q5_k' $model $out q4_k"
build/bin/qmix-quantize --verbose --stats \
  --tensor-type 'encoder\..*=q8_0' --tensor-type '.*attn.*=q5_k' \
  "$model" "$out" q4_k
ls -l "$model" "$out"
