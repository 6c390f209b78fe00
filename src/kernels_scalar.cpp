// SPDX-License-Identifier: MIT
// The scalar level: every format's reference code (formats/*.hpp) as a kernel table,
// compiled with the baseline flags in an ABI namespace of its own (QMIX_KERNEL_LEVEL=scalar)
// like every other level.
#include "kernel_levels.hpp"
#include "qmix/kernels/reference.hpp"

#if !defined(QMIX_KERNEL_LEVEL)
#error \
    "kernels_scalar.cpp needs QMIX_KERNEL_LEVEL=scalar, its own ABI namespace (see CMakeLists.txt)"
#endif

namespace qmix::kernels::levels {

const kernel_table& scalar() {
    static const kernel_table table = make_reference_table();
    return table;
}

}  // namespace qmix::kernels::levels
