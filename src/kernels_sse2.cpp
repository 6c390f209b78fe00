// SPDX-License-Identifier: MIT
// The sse2 kernel level: the x86-64 baseline, so its flag (-msse2) changes nothing. Like
// every level it is compiled in an ABI namespace of its own (QMIX_KERNEL_LEVEL=sse2), so
// no inline function is shared with another level and link order does not matter.
#include "kernel_levels.hpp"
#include "qmix/kernels/build.hpp"

#if !defined(QMIX_ISA_SSE2)
#error "kernels_sse2.cpp needs the sse2 instruction-set flags (see CMakeLists.txt)"
#endif
#if !defined(QMIX_KERNEL_LEVEL)
#error "kernels_sse2.cpp needs QMIX_KERNEL_LEVEL=sse2, its own ABI namespace (see CMakeLists.txt)"
#endif

namespace qmix::kernels::levels {

const kernel_table& sse2() {
    static const kernel_table table = make_kernel_table<xsimd::sse2>();
    return table;
}

}  // namespace qmix::kernels::levels
