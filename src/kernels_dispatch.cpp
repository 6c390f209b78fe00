// SPDX-License-Identifier: MIT
// The kernel levels compiled into a program that links qmix::dispatch, weakest first.
// CMakeLists.txt defines QMIX_LEVEL_<NAME> for each kernels_<name>.cpp it compiles; a level
// is asked for its table only when this CPU runs it, so no wide instruction executes on a
// CPU without it. This file itself is compiled with the baseline flags.
#include <vector>

#include "kernel_levels.hpp"
#include "qmix/kernels/dispatch.hpp"
#include "qmix/kernels/x86.hpp"

namespace qmix::kernels {
inline namespace QMIX_KERNELS_ABI {
namespace detail {

const std::vector<level>& built_levels() {
    static const std::vector<level> levels = [] {
        std::vector<level> all{{"scalar", &scalar_table(), "nothing"}};
#if defined(QMIX_ARCH_X86_64)
        const x86::cpu_features cpu = x86::detect_cpu();
#endif
#if defined(QMIX_LEVEL_SSE2)
        all.push_back({"sse2", cpu.sse2 ? &levels::sse2() : nullptr, "SSE2"});
#endif
#if defined(QMIX_LEVEL_AVX2)
        all.push_back({"avx2", cpu.avx2 ? &levels::avx2() : nullptr, "AVX2, FMA, F16C and BMI2"});
#endif
#if defined(QMIX_LEVEL_AVX512)
        all.push_back({"avx512", cpu.avx512 ? &levels::avx512() : nullptr,
                       "AVX-512 F, BW, VL, DQ, CD and VNNI"});
#endif
#if defined(QMIX_LEVEL_NEON)
        all.push_back({"neon", &levels::neon(), "NEON"});
#endif
        return all;
    }();
    return levels;
}

}  // namespace detail
}  // namespace QMIX_KERNELS_ABI
}  // namespace qmix::kernels
