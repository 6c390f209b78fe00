#!/usr/bin/env bash
# The main job, end to end: builds qmix-quantize, and quantizes MODEL.bin (or, without an
# argument, a synthetic model with the names and shapes of whisper base) with the README's
# first example: encoder and attention matrices at higher precision, the rest q4_k.
# Without an argument it then runs the seed's first example, `quantize model-f32.bin
# model-quant.bin q4_0`, on an f32 synthetic base and prints where the result loads.
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

# The seed's first command on an f32 model: the reference tool's output of an f32 input loads in
# no whisper.cpp (its conv weights stay f32 under a quantized header); qmix's does.
if [ -z "${1:-}" ]; then
  model32=build/demo/ggml-base-synthetic-f32.bin
  echo "== an f32 model too: writing a synthetic whisper base (f32) to $model32"
  build/bin/qmix-synth "$model32" base f32
  out32=build/demo/ggml-base-synthetic-f32-q4_0.bin
  echo "== qmix-quantize $model32 $out32 q4_0"
  build/bin/qmix-quantize "$model32" "$out32" q4_0 | grep -E "size:|header ftype|where it loads|wrote"
  echo "== qmix-quantize --info $out32 (where it loads)"
  build/bin/qmix-quantize --info "$out32" | sed -n '/^where it loads/,$p'
  rm -f "$model32"
fi
