// SPDX-License-Identifier: MIT
// The row API and the run-time dispatch of the library, compiled once with the baseline
// flags: the definitions of ops.hpp and kernels/dispatch.hpp (impl/), and the kernel levels
// built into the library, weakest first. CMakeLists.txt defines QMIX_LEVEL_<NAME> for each
// kernels_<name>.cpp it compiles; a level is asked for its table only when this CPU runs
// it, so no wide instruction executes on a CPU without it.
#include <vector>

#include "kernel_levels.hpp"
#include "qmix/impl/dispatch.hpp"
#include "qmix/impl/ops.hpp"
#include "qmix/kernels/cpu_x86.hpp"

#if defined(QMIX_HEADER_ONLY)
#error "the library is not built with QMIX_HEADER_ONLY"
#endif

namespace qmix::kernels::detail {
QMIX_API_BEGIN

const std::vector<level>& built_levels() {
    static const std::vector<level> levels = [] {
        const kernel_table& reference = levels::scalar();
        // Complete tables (complete()), one per level, for as long as the program runs.
        static std::vector<kernel_table> tables;
        tables.reserve(8);  // never reallocated: the levels point into it
        auto add = [&](const kernel_table& own) {
            return &tables.emplace_back(complete(own, reference));
        };
        std::vector<level> all{{"scalar", &reference, "nothing"}};
#if defined(QMIX_ARCH_X86_64)
        const x86::cpu_features cpu = x86::detect_cpu();
#endif
#if defined(QMIX_LEVEL_SSE2)
        all.push_back({"sse2", cpu.sse2 ? add(levels::sse2()) : nullptr, "SSE2"});
#endif
#if defined(QMIX_LEVEL_AVX2)
        all.push_back(
            {"avx2", cpu.avx2 ? add(levels::avx2()) : nullptr, "AVX2, FMA, F16C and BMI2"});
#endif
#if defined(QMIX_LEVEL_AVX512)
        all.push_back({"avx512", cpu.avx512 ? add(levels::avx512()) : nullptr,
                       "AVX-512 F, BW, VL, DQ, CD and VNNI"});
#endif
#if defined(QMIX_LEVEL_NEON)
        all.push_back({"neon", add(levels::neon()), "NEON"});
#endif
        return all;
    }();
    return levels;
}

QMIX_API_END
}  // namespace qmix::kernels::detail
