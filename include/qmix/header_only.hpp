// SPDX-License-Identifier: MIT
// qmix without the library: everything inline, in this one include (the single header,
// single_include/qmix/qmix.hpp, is this file amalgamated). The row API then runs the
// scalar reference and the one kernel level this translation unit's own compiler flags
// allow (sse2 on any x86-64, avx2 with -mavx2 -mfma -mf16c, avx512, neon on aarch64); there
// is no run-time dispatch. Include it before any other qmix header, or define
// QMIX_HEADER_ONLY for the whole program and include qmix/qmix.hpp plus this file.
//
// Every inline function is in an ABI namespace named after the translation unit's
// instruction set (see core/config.hpp), so translation units built with different flags,
// or a header-only one beside the library, do not share a definition.
#pragma once

#if defined(QMIX_VERSION_MAJOR) && !defined(QMIX_HEADER_ONLY)
#error "include qmix/header_only.hpp before any other qmix header (or define QMIX_HEADER_ONLY)"
#endif
#ifndef QMIX_HEADER_ONLY
#define QMIX_HEADER_ONLY 1
#endif

#include "qmix/impl/dispatch.hpp"
#include "qmix/impl/ops.hpp"
#include "qmix/kernels/build.hpp"
#include "qmix/kernels/reference.hpp"
#include "qmix/qmix.hpp"

#if defined(QMIX_ISA_AVX512)
#define QMIX_HEADER_ARCH xsimd::avx512bw
#elif defined(QMIX_ISA_AVX2)
#define QMIX_HEADER_ARCH xsimd::avx2
#elif defined(QMIX_ISA_SSE2)
#define QMIX_HEADER_ARCH xsimd::sse2
#elif defined(QMIX_ISA_NEON)
#define QMIX_HEADER_ARCH xsimd::neon64
#endif

namespace qmix::kernels::detail {
QMIX_API_BEGIN

inline const std::vector<level>& built_levels() {
    static const kernel_table reference = make_reference_table();
    static const std::vector<level> levels = [] {
        std::vector<level> all{{"scalar", &reference, "nothing"}};
#if defined(QMIX_HEADER_ARCH)
        // Compiled with the includer's flags, so whatever runs this program runs it.
        static const kernel_table native =
            complete(make_kernel_table<QMIX_HEADER_ARCH>(), reference);
        all.push_back({native.name, &native, "the flags this program was compiled with"});
#endif
        return all;
    }();
    return levels;
}

QMIX_API_END
}  // namespace qmix::kernels::detail
