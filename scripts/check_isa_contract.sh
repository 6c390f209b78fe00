#!/usr/bin/env bash
# The per-ISA layer's promise (kernels/isa/base.hpp): where xsimd cannot give a primitive
# exactly on every instruction set, isa_base has no silent portable form; an isa<Arch> that
# leaves it out fails to compile. Compiles tests/isa_contract/probe.cpp once with div and
# sqrt defined (must compile) and once per primitive left out (must fail, with isa_base's
# message). Usage: scripts/check_isa_contract.sh   (CXX=... for another compiler)
set -uo pipefail
cd "$(dirname "$0")/.."
cxx=${CXX:-c++}
compile() { "$cxx" -std=c++17 -fsyntax-only -Iinclude "$@" tests/isa_contract/probe.cpp 2>&1; }

ok=1
if ! out=$(compile -DQMIX_PROBE_DEFINED); then
  echo "isa contract: the probe with div and sqrt defined does not compile:"; echo "$out"; ok=0
fi
for probe in "1 must define div" "2 must define sqrt" "3 needs a byte shuffle" \
             "4 folds a 512-bit batch"; do
  number=${probe%% *} message=${probe#* }
  if out=$(compile -DQMIX_PROBE="$number"); then
    echo "isa contract: a layer without '${message}' compiled"; ok=0
  elif ! grep -q "$message" <<<"$out"; then
    echo "isa contract: probe $number failed without isa_base's message '$message':"
    echo "$out" | head -n 20; ok=0
  fi
done
[ $ok -eq 1 ] && echo "isa contract: a primitive the layer lacks is a compile error (4 probes)"
[ $ok -eq 1 ]
