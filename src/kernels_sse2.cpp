// SPDX-License-Identifier: MIT
// The sse2 kernel level: the x86-64 baseline, so its flag (-msse2) changes nothing. It
// comes first among the levels when linking: an inline function that several levels
// share then resolves to this, the baseline, copy.
#include "kernel_levels.hpp"
#include "qmix/kernels/build.hpp"

#if !defined(QMIX_ISA_SSE2)
#error "kernels_sse2.cpp needs the sse2 instruction-set flags (see CMakeLists.txt)"
#endif

namespace qmix::kernels::levels {

const kernel_table& sse2() {
    static const kernel_table table = make_kernel_table<xsimd::sse2>();
    return table;
}

}  // namespace qmix::kernels::levels
