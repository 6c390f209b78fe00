// SPDX-License-Identifier: MIT
#pragma once

// Which dot-product kernels an instruction set gets: the AVX2 ones on AVX2 and on AVX-512
// (which includes AVX2), the NEON ones on aarch64. Elsewhere the slots stay empty and the
// table falls back to the scalar reference.

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/kernels/kquants/batch_ops.hpp"
#include "qmix/kernels/kquants/dot_avx2.hpp"
#include "qmix/kernels/kquants/dot_neon.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Kernels>
void set_dots(kernel_table& table) {
    slot(table, type_id::q2_k).dot = &Kernels::q2_k;
    slot(table, type_id::q3_k).dot = &Kernels::q3_k;
    slot(table, type_id::q4_k).dot = &Kernels::q4_k;
    slot(table, type_id::q5_k).dot = &Kernels::q5_k;
    slot(table, type_id::q6_k).dot = &Kernels::q6_k;
}

template <class Arch>
void add_dots(kernel_table& table) {
    if constexpr (is_avx2<Arch> || is_avx512bw<Arch>) {
#if defined(__AVX2__)
        set_dots<avx2_dot<Arch>>(table);
#endif
    } else if constexpr (is_neon64<Arch>) {
#if defined(__aarch64__)
        set_dots<neon_dot<Arch>>(table);
#endif
    }
    (void)table;
}

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
