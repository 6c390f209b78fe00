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
    static const kernel_table table = [] {
        kernel_table own = make_kernel_table<xsimd::sse2>();
        // The dequantizers of the 8-bit formats are the scalar level's: the compiler
        // vectorises the reference loop (bytes to floats, one scale per block) for SSE2
        // better than the level's kernels do (Zen 4, fastest call: q8_0 and q8_1 7.84
        // against 7.36 G values/s, q8_K 10.4 against 7.2).
        const kernel_table& below = scalar();
        for (const type_id id : {type_id::q8_0, type_id::q8_1, type_id::q8_k}) {
            slot(own, id).dequantize = slot(below, id).dequantize;
        }
        return own;
    }();
    return table;
}

}  // namespace qmix::kernels::levels
