#!/usr/bin/env bash
# Checks that the kernel levels of the library share nothing: every global symbol a level
# object (kernels_<level>.cpp.o) defines is its entry point qmix::kernels::levels::<level>()
# or lives in its own ABI namespace, qmix::...::level_<level> (see core/config.hpp), and no
# weak symbol is defined in two level objects. A weak symbol defined by two objects compiled
# with different instruction-set flags is one the linker may take from either, so a
# baseline caller could run the wide copy: this check proves it cannot happen.
# It reads the objects that went into the library archive (libqmix.a), as linked.
# Usage: scripts/check_level_symbols.sh BUILD_DIR   (NM=... for a cross build's nm)
set -euo pipefail
build=$1
archive=$(find "$build" -name libqmix.a | head -n 1)
[ -n "$archive" ] || { echo "level symbols: no libqmix.a under $build"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
archive=$(cd "$(dirname "$archive")" && pwd)/$(basename "$archive")
(cd "$work" && ar x "$archive")
mapfile -t objects < <(find "$work" -name 'kernels_*.o' ! -name 'kernels_dispatch*' | sort)
[ ${#objects[@]} -ge 2 ] || { echo "level symbols: fewer than two level objects in $archive"; exit 1; }
nm_tool=${NM:-nm}
bad=0
all=$work/weak.txt
for object in "${objects[@]}"; do
    level=$(basename "$object" | sed -E 's/^kernels_([a-z0-9]+)\..*$/\1/')
    # Global definitions: T/D/B/R (strong), W/V (weak), u (unique). The personality
    # routine's reference (DW.ref.__gxx_personality_v0) is data the C++ runtime shares.
    strays=$("$nm_tool" -C --defined-only "$object" | awk '$2 ~ /^[TDBRWVu]$/ { $1 = ""; $2 = ""; sub(/^  /, ""); print }' |
        grep -v -e "::level_${level}::" -e "^qmix::kernels::levels::${level}()$" \
            -e '^DW.ref.__gxx_personality_v0$' || true)
    if [ -n "$strays" ]; then
        echo "level symbols: $level defines symbols outside its ABI namespace:"
        echo "$strays" | head -20 | sed 's/^/   /'
        bad=1
    fi
    "$nm_tool" --defined-only "$object" | awk '$2 ~ /^[WVu]$/ { print $3 }' | sort -u >>"$all"
done
shared=$(sort "$all" | uniq -d | grep -v '^DW.ref.__gxx_personality_v0$' || true)
if [ -n "$shared" ]; then
    echo "level symbols: weak symbols defined in more than one level object:"
    echo "$shared" | head -20 | c++filt | sed 's/^/   /'
    bad=1
fi
[ $bad -eq 0 ] || exit 1
echo "level symbols: ${#objects[@]} level objects, each defining only its own symbols, no weak symbol shared"
