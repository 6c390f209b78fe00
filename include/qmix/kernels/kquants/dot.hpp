// SPDX-License-Identifier: MIT
#pragma once

// The k-quant dot-product kernels of an instruction set: the driver isa<Arch>::kquant_dots
// names (the AVX2 one on AVX2 and on AVX-512, which includes AVX2; the NEON one on
// aarch64). Where it is void the slots stay empty and the table falls back to the scalar
// reference.

#include <type_traits>

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
    using dots = typename isa<Arch>::kquant_dots;
    if constexpr (!std::is_void_v<dots>) set_dots<dots>(table);
    (void)table;
}

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
