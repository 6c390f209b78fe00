#!/usr/bin/env bash
# Checks that a program linked with qmix::dispatch runs its wide instructions only in the
# kernel levels: every function using AVX (any VEX/EVEX instruction) or BMI must belong to
# a level (its name holds an xsimd AVX tag or levels::). An inline function that the wide
# translation units share with the rest of the program, and that the linker took from one
# of them, would show up here: it would fault on a CPU without that level.
# Usage: scripts/check_kernel_isolation.sh PROGRAM   (x86-64 builds without -march only)
set -euo pipefail
program=$1
leaks=$(objdump -d --no-show-raw-insn -C "$program" | awk '
    /^[0-9a-f]+ <.*>:$/ { name = $0; next }
    {
        m = $2
        # tzcnt is left out: it is encoded as rep bsf, which older CPUs run as bsf.
        if (m ~ /^v[a-z]/ || m ~ /^(shlx|shrx|sarx|rorx|mulx|pdep|pext|andn|bextr|blsi|blsmsk|blsr|bzhi|lzcnt)$/) {
            if (name !~ /avx|fma3|levels::/ && !(name in seen)) { seen[name] = 1; print "   " m "\t" name }
        }
    }')
if [ -n "$leaks" ]; then
    echo "kernel isolation: wide instructions outside the kernel levels in $program:"
    echo "$leaks" | cut -c1-200
    exit 1
fi
echo "kernel isolation: wide instructions only inside the kernel levels ($(basename "$program"))"
