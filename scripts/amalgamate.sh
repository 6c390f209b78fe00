#!/usr/bin/env bash
# Regenerates single_include/qmix/qmix.hpp from include/ (or, with --check, fails when the
# checked-in file is stale).
set -euo pipefail
exec python3 "$(dirname "$0")/amalgamate.py" "$@"
