// SPDX-License-Identifier: MIT
#pragma once

#include "qmix/core/config.hpp"

// The instruction-set primitives that the kernels of generic.hpp are written against.
//
// The kernels themselves are xsimd code, templated on an xsimd architecture tag; what xsimd
// cannot express (horizontal reductions of 8.1, byte shuffles, maddubs, binary16
// conversion, narrowing stores) is asked of isa<Arch>, specialised once per architecture
// we build for, in the style of xsimd's arch/ folder:
//   x86.hpp   isa<xsimd::sse2>, isa<xsimd::avx2>, isa<xsimd::avx512bw>
//   neon.hpp  isa<xsimd::neon64>
// Adding an instruction set is one specialisation in one file. Each specialisation is only
// defined when the translation unit is compiled for that instruction set.
//
// A specialisation provides (F = xsimd::batch<float, Arch>, I = xsimd::batch<int32_t, Arch>,
// N = F::size lanes, a block is 32 values, so 32 / N vectors):
//   name                          how QMIX_FORCE_ARCH spells the level ("avx2")
//   floats, ints, float_mask      F, I and xsimd::batch_bool<float, Arch>
//   reduce_max(F)                 the largest lane (lanes are finite)
//   mask_bits(float_mask)         bit l set where lane l is true
//   transpose_max(const F* v),    N vectors in, one out: lane b is the maximum, minimum or
//   transpose_min, transpose_add  sum of the lanes of v[b] (sums only of exact values)
//   widen_u8(p), widen_i8(p)      N bytes at p, zero or sign extended to I
//   bit_lanes(bits, first)        lane l = (bits >> (first + l)) & 1
//   store_i8x32(const I*, out)    32 lanes, each in [-128, 127], as bytes in order
//   store_nibbles(const I*, top, qs)
//                                 32 levels in [0, 255], each clamped to top first: value
//                                 j < 16 in the low nibble of qs[j], j + 16 in its high
//                                 nibble; returns bit 4 of level j as bit j
//   half_to_float(h), float_to_half(f)   one value, exact, rounding to nearest even
//   load_halves(p), store_halves(F, p)   N values, the same conversions
//   add_exact_product(a, b, c)    c + a * b for products that binary32 holds exactly (a and
//                                 b binary16 values): fused where the level has FMA, which
//                                 then gives the very same sum in one instruction
//   multiply_add(a, b, c)         c + a * b, fused where the level has FMA (dot products,
//                                 which need only agree to rounding)
// and the dot-product engine, which works a block (32 bytes) at a time:
//   bytes, part                   a block's 32 bytes; their partial int32 sums
//   parts_per_vector              parts that join into one I (blocks per step)
//   load_bytes(p)                 32 bytes
//   nibbles(qs)                   value j < 16 is qs[j] & 15, value j + 16 is qs[j] >> 4
//   add_fifth_bits(b, qh)         b + 16 where bit j of the little-endian word qh is set
//   sub_bytes(b, k)               b - k in every byte
//   dot_unsigned(u, s)            partial sums of u * s, u in [0, 127], s any int8
//   dot_signed(x, s)              partial sums of x * s, x in [-127, 127], s any int8
//   dot_offset(u, k, s)           partial sums of (u - k) * s, u in [0, 31], k in [0, 16]
//   join(const part*)             parts_per_vector parts as one I
//   step_constants(x, y)          for the blocks x[k] and partners y[k] of a step: the
//                                 products dx * dy and mx * sy of their first two binary16
//                                 fields (d and m of x, d and s of y), in lanes of F
//   step_scales(F)                dx * dy of each block spread over the lanes of its part
//   sum_offsets(F)                the sum of the mx * sy lanes
// Every primitive is exact; the float products of the dot-product engine are the only
// place where rounding enters, and dot products need only agree to rounding.
namespace qmix::kernels {
QMIX_ABI_BEGIN

template <class Arch>
struct isa;

QMIX_ABI_END
}  // namespace qmix::kernels
