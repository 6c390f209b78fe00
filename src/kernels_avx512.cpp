// SPDX-License-Identifier: MIT
// The avx512 kernel level. CMakeLists.txt compiles this file alone with the level's
// instruction-set flags (AVX-512 F, BW, VL, DQ, CD and VNNI, FMA, F16C, BMI2); the rest
// of the program keeps the baseline flags and calls in here only on a CPU that runs avx512.
#include "kernel_levels.hpp"
#include "qmix/kernels/build.hpp"

#if !defined(QMIX_ISA_AVX512)
#error "kernels_avx512.cpp needs the avx512 instruction-set flags (see CMakeLists.txt)"
#endif
#if !defined(QMIX_KERNEL_LEVEL)
#error \
    "kernels_avx512.cpp needs QMIX_KERNEL_LEVEL=avx512, its own ABI namespace (see CMakeLists.txt)"
#endif

namespace qmix::kernels::levels {

const kernel_table& avx512() {
    static const kernel_table table = make_kernel_table<xsimd::avx512bw>();
    return table;
}

}  // namespace qmix::kernels::levels
