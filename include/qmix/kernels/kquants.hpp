// SPDX-License-Identifier: MIT
#pragma once

// SIMD kernels of the k-quant formats (q2_K .. q6_K and q8_K), written once with xsimd and
// instantiated per instruction set by the translation unit compiled for it:
//
//     qmix::kernels::kernel_table table{"avx2"};
//     qmix::kernels::add_kquant_kernels<xsimd::avx2>(table);
//
// Quantizing and dequantizing give the bytes and floats of the scalar reference
// (formats/*.hpp) exactly, whatever the width of the instruction set. The dot products
// sum exact integers per block and add the blocks in the reference's order, so they too
// equal the scalar reference. Dot products exist for the instruction sets with integer
// multiply-add of bytes (AVX2, AVX-512BW, NEON on aarch64); elsewhere the slot stays
// empty and callers use the scalar reference.

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/kernels/kquants/dot.hpp"
#include "qmix/kernels/kquants/k4.hpp"
#include "qmix/kernels/kquants/q2_k.hpp"
#include "qmix/kernels/kquants/q3_k.hpp"
#include "qmix/kernels/kquants/q6_k.hpp"
#include "qmix/kernels/kquants/q8_k.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix::kernels {
QMIX_ABI_BEGIN

QMIX_ABI_END
namespace kquants {
QMIX_ABI_BEGIN

template <class Kernels>
void set_conversions(kernel_table& table, type_id id) {
    slot(table, id).quantize = &Kernels::quantize;
    slot(table, id).dequantize = &Kernels::dequantize;
}

QMIX_ABI_END
}  // namespace kquants
QMIX_ABI_BEGIN

/// Fills the q2_K .. q6_K and q8_K slots of `table` with the kernels of instruction set
/// Arch (an xsimd architecture tag the translation unit is compiled for).
template <class Arch>
void add_kquant_kernels(kernel_table& table) {
    using namespace kquants;
    set_conversions<q2_k_kernels<Arch>>(table, type_id::q2_k);
    set_conversions<q3_k_kernels<Arch>>(table, type_id::q3_k);
    set_conversions<k4_kernels<Arch, formats::q4_k>>(table, type_id::q4_k);
    set_conversions<k4_kernels<Arch, formats::q5_k>>(table, type_id::q5_k);
    set_conversions<q6_k_kernels<Arch>>(table, type_id::q6_k);
    set_conversions<q8_k_kernels<Arch>>(table, type_id::q8_k);
    add_dots<Arch>(table);
}

QMIX_ABI_END
}  // namespace qmix::kernels
