// SPDX-License-Identifier: MIT
#pragma once

// Assembles the kernel table of one architecture from every kernel family: the block
// formats and float formats of generic.hpp, the k-quants of kquants.hpp, iq4_nl and iq4_xs
// of nonlinear.hpp and bf16 of bf16.hpp.

#include "qmix/core/config.hpp"
#include "qmix/kernels/bf16.hpp"
#include "qmix/kernels/generic.hpp"
#include "qmix/kernels/kquants.hpp"
#include "qmix/kernels/nonlinear.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix::kernels {
QMIX_ABI_BEGIN

template <class Arch>
kernel_table make_kernel_table() {
    kernel_table table{};
    table.name = isa<Arch>::name;
    add_block_kernels<Arch>(table);
    add_kquant_kernels<Arch>(table);
    add_nonlinear_kernels<Arch>(table);
    add_bf16_kernels<Arch>(table);
    return table;
}

QMIX_ABI_END
}  // namespace qmix::kernels
