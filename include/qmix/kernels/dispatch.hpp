// SPDX-License-Identifier: MIT
#pragma once

// Which kernel table the row API uses: chosen once, on first use, as the best level this
// CPU runs, or the one QMIX_FORCE_ARCH names (scalar, sse2, avx2, avx512, neon).
//
// Two ways to build:
// - Runtime dispatch (QMIX_WITH_DISPATCH, set by the CMake target qmix::dispatch): the
//   levels are compiled in translation units of their own, each with its instruction-set
//   flags (src/kernels_*.cpp), and src/kernels_dispatch.cpp lists them. Nothing registers
//   itself from a static initialiser, so a static library cannot drop a level.
// - Header only: the includer's own compiler flags decide. The level its translation unit
//   is compiled for (sse2 on any x86-64, avx2 with -mavx2 -mf16c, avx512, neon on
//   aarch64) is instantiated right here, next to the scalar reference.
// The two live in different inline namespaces, so a program mixing them links two
// consistent sets rather than one inconsistent set.

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/config.hpp"
#include "qmix/core/error.hpp"
#include "qmix/kernels/build.hpp"  // templates only: instantiated below in header-only mode
#include "qmix/kernels/table.hpp"

#if defined(QMIX_WITH_DISPATCH)
#define QMIX_KERNELS_ABI runtime_dispatch
#elif defined(QMIX_ISA_AVX512)
#define QMIX_KERNELS_ABI header_avx512
#define QMIX_HEADER_ARCH xsimd::avx512bw
#elif defined(QMIX_ISA_AVX2)
#define QMIX_KERNELS_ABI header_avx2
#define QMIX_HEADER_ARCH xsimd::avx2
#elif defined(QMIX_ISA_SSE2)
#define QMIX_KERNELS_ABI header_sse2
#define QMIX_HEADER_ARCH xsimd::sse2
#elif defined(QMIX_ISA_NEON)
#define QMIX_KERNELS_ABI header_neon
#define QMIX_HEADER_ARCH xsimd::neon64
#else
#define QMIX_KERNELS_ABI header_scalar
#endif

namespace qmix::kernels {
inline namespace QMIX_KERNELS_ABI {

/// One kernel level built into the program.
struct level {
    std::string_view name;         ///< as QMIX_FORCE_ARCH spells it
    const kernel_table* table;     ///< null when this CPU cannot run the level
    std::string_view requirement;  ///< what the level needs from the CPU, for messages
};

/// The scalar reference: every entry null, so the row API calls the format's own code.
inline const kernel_table& scalar_table() {
    static const kernel_table table{"scalar", {}};
    return table;
}

namespace detail {

#if defined(QMIX_WITH_DISPATCH)
/// The levels built into the program, weakest first, the scalar reference first of all.
/// Defined in src/kernels_dispatch.cpp.
const std::vector<level>& built_levels();
#else
inline const std::vector<level>& built_levels() {
    static const std::vector<level> levels = [] {
        std::vector<level> all{{"scalar", &scalar_table(), "nothing"}};
#if defined(QMIX_HEADER_ARCH)
        // Compiled with the includer's flags, so whatever runs this program runs it.
        static const kernel_table native = make_kernel_table<QMIX_HEADER_ARCH>();
        all.push_back({native.name, &native, "the flags this program was compiled with"});
#endif
        return all;
    }();
    return levels;
}
#endif

inline std::string names_of(bool runnable_only) {
    std::string names;
    for (const level& l : built_levels()) {
        if (runnable_only && l.table == nullptr) continue;
        if (!names.empty()) names += ' ';
        names += l.name;
    }
    return names;
}

}  // namespace detail

/// The kernel tables this CPU runs, weakest first; the first is the scalar reference.
inline std::vector<const kernel_table*> available_tables() {
    std::vector<const kernel_table*> tables;
    for (const level& l : detail::built_levels()) {
        if (l.table != nullptr) tables.push_back(l.table);
    }
    return tables;
}

/// The names of available_tables(), separated by spaces ("scalar sse2 avx2").
inline std::string available_names() {
    return detail::names_of(true);
}

/// The table of the level spelled `name` (as QMIX_FORCE_ARCH spells it). Throws
/// qmix::error naming the levels that are available when this build lacks the level or
/// this CPU cannot run it.
inline const kernel_table& table_for(std::string_view name) {
    for (const level& l : detail::built_levels()) {
        if (l.name != name) continue;
        if (l.table != nullptr) return *l.table;
        throw error("kernel level '" + std::string(name) + "' needs " + std::string(l.requirement) +
                    ", which this CPU lacks; available: " + detail::names_of(true));
    }
    throw error("kernel level '" + std::string(name) +
                "' is not built into this program (built: " + detail::names_of(false) +
                "; available on this CPU: " + detail::names_of(true) + ")");
}

/// The strongest level this CPU runs.
inline const kernel_table& best_table() {
    return *available_tables().back();
}

/// The table the row API uses: QMIX_FORCE_ARCH if set (and not empty), else best_table().
/// Chosen on first use and never changed; a bad QMIX_FORCE_ARCH throws from every call.
inline const kernel_table& active_table() {
    static const kernel_table* const chosen = [] {
        const char* forced = std::getenv("QMIX_FORCE_ARCH");
        if (forced == nullptr || *forced == '\0') return &best_table();
        try {
            return &table_for(forced);
        } catch (const error& e) {
            throw error(std::string("QMIX_FORCE_ARCH=") + forced + ": " + e.what());
        }
    }();
    return *chosen;
}

}  // namespace QMIX_KERNELS_ABI
}  // namespace qmix::kernels
