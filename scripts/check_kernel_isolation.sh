#!/usr/bin/env bash
# Checks that a program linked with qmix::dispatch runs its wide instructions only in the
# kernel levels: every function using AVX (any VEX/EVEX instruction) or BMI must belong to
# a level (its name holds an xsimd AVX tag or levels::). An inline function that the wide
# translation units share with the rest of the program, and that the linker took from one
# of them, would show up here: it would fault on a CPU without that level.
# Local functions are exempt: a local symbol binds only inside the object that defines it,
# so nothing outside a level can call the copies of std:: helpers (std::fabs, ...) that an
# unoptimised build emits into each level object and that the library localises (objcopy,
# see CMakeLists.txt). Weak and global functions are checked whatever their name.
# Usage: scripts/check_kernel_isolation.sh PROGRAM   (x86-64 builds without -march only)
set -euo pipefail
program=$1
locals=$(nm "$program" | awk '$2 == "t" { print $1 }')
leaks=$(objdump -d --no-show-raw-insn -C "$program" | awk -v locals="$locals" '
    BEGIN { n = split(locals, l, "\n"); for (i = 1; i <= n; i++) local_at[l[i]] = 1 }
    /^[0-9a-f]+ <.*>:$/ { name = $0; if ($1 in local_at) name = "local " name; next }
    {
        m = $2
        # tzcnt is left out: it is encoded as rep bsf, which older CPUs run as bsf.
        if (m ~ /^v[a-z]/ || m ~ /^(shlx|shrx|sarx|rorx|mulx|pdep|pext|andn|bextr|blsi|blsmsk|blsr|bzhi|lzcnt)$/) {
            if (name !~ /^local |avx|fma3|levels::/ && !(name in seen)) { seen[name] = 1; print "   " m "\t" name }
        }
    }')
if [ -n "$leaks" ]; then
    echo "kernel isolation: wide instructions outside the kernel levels in $program:"
    echo "$leaks" | cut -c1-200
    exit 1
fi
echo "kernel isolation: wide instructions only inside the kernel levels ($(basename "$program"))"
