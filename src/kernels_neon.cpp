// SPDX-License-Identifier: MIT
// The neon kernel level. NEON is part of every aarch64 CPU, so this file needs no flags of
// its own; it is a separate translation unit all the same, like every level, so that the
// list in kernels_dispatch.cpp looks the same on every architecture.
#include "kernel_levels.hpp"
#include "qmix/kernels/build.hpp"

#if !defined(QMIX_ISA_NEON)
#error "kernels_neon.cpp needs the neon instruction-set flags (see CMakeLists.txt)"
#endif
#if !defined(QMIX_KERNEL_LEVEL)
#error "kernels_neon.cpp needs QMIX_KERNEL_LEVEL=neon, its own ABI namespace (see CMakeLists.txt)"
#endif

namespace qmix::kernels::levels {

const kernel_table& neon() {
    static const kernel_table table = make_kernel_table<xsimd::neon64>();
    return table;
}

}  // namespace qmix::kernels::levels
