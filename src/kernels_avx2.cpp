// SPDX-License-Identifier: MIT
// The avx2 kernel level. CMakeLists.txt compiles this file alone with the level's
// instruction-set flags (-mavx2 -mfma -mf16c -mbmi2); the rest of the program keeps
// the baseline flags and calls in here only on a CPU that runs avx2.
#include "kernel_levels.hpp"
#include "qmix/kernels/build.hpp"

#if !defined(QMIX_ISA_AVX2)
#error "kernels_avx2.cpp needs the avx2 instruction-set flags (see CMakeLists.txt)"
#endif
#if !defined(QMIX_KERNEL_LEVEL)
#error "kernels_avx2.cpp needs QMIX_KERNEL_LEVEL=avx2, its own ABI namespace (see CMakeLists.txt)"
#endif

namespace qmix::kernels::levels {

const kernel_table& avx2() {
    static const kernel_table table = make_kernel_table<xsimd::avx2>();
    return table;
}

}  // namespace qmix::kernels::levels
