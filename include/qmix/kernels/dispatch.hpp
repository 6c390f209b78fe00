// SPDX-License-Identifier: MIT
#pragma once

// Which kernel table the row API uses: chosen once, on first use, as the best level this
// CPU runs, or the one QMIX_FORCE_ARCH names (scalar, sse2, avx2, avx512, neon).
//
// These are declarations: the library (the CMake target qmix::qmix) compiles every level
// once, each in a translation unit of its own with its instruction-set flags
// (src/kernels_<level>.cpp) and its own ABI namespace, and lists them in
// src/kernels_dispatch.cpp. With QMIX_HEADER_ONLY (include qmix/header_only.hpp, or use the
// single header) they are defined inline instead, with the scalar reference and the one
// level the includer's own compiler flags allow.

#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/config.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix::kernels {
QMIX_API_BEGIN

/// The scalar reference: each format's own code, row by row.
QMIX_API const kernel_table& scalar_table();

/// The kernel tables this CPU runs, weakest first; the first is the scalar reference.
QMIX_API std::vector<const kernel_table*> available_tables();

/// The names of available_tables(), separated by spaces ("scalar sse2 avx2").
QMIX_API std::string available_names();

/// The names of every level built into the program, whether this CPU runs it or not.
QMIX_API std::string built_names();

/// The table of the level spelled `name` (as QMIX_FORCE_ARCH spells it). Throws
/// qmix::error naming the levels that are available when this build lacks the level or
/// this CPU cannot run it.
QMIX_API const kernel_table& table_for(std::string_view name);

/// The strongest level this CPU runs.
QMIX_API const kernel_table& best_table();

/// The table the row API uses: QMIX_FORCE_ARCH if set (and not empty), else best_table().
/// Chosen on first use and never changed; a bad QMIX_FORCE_ARCH throws from every call.
QMIX_API const kernel_table& active_table();

QMIX_API_END
}  // namespace qmix::kernels
