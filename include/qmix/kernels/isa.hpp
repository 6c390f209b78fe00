// SPDX-License-Identifier: MIT
#pragma once

// The per-ISA layer: the instruction-set primitives that the kernels (generic.hpp,
// kquants/, nonlinear.hpp, bf16.hpp) are written against, and the level's choice of
// dot-product drivers. Outside isa/ no kernel branches on the instruction set (the one
// exception, kquants/scalar.hpp's binary16 conversion by compiler macros, is explained in
// kernels/README.md).
//
// The kernels themselves are xsimd code, templated on an xsimd architecture tag; what xsimd
// cannot express (horizontal reductions of 8.1, byte shuffles, maddubs, binary16
// conversion, narrowing stores), or not exactly everywhere (division, square root), is
// asked of isa<Arch>, specialised once per architecture we build for, one file per
// instruction set in the style of xsimd's arch/ folder:
//   isa/base.hpp    isa_base<Arch>: the portable xsimd floor every specialisation derives
//                   from and hides where it does better
//   isa/sse2.hpp    isa<xsimd::sse2>
//   isa/avx2.hpp    isa<xsimd::avx2>
//   isa/avx512.hpp  isa<xsimd::avx512bw>
//   isa/neon.hpp    isa<xsimd::neon64>
// This header is the layer: it includes all of them. Each specialisation is only defined
// when the translation unit is compiled for that instruction set. (The CPU detection of
// x86 is kernels/cpu_x86.hpp.) Where isa_base cannot give a primitive exactly on every
// instruction set (div, sqrt) or at all (look_up, store_folded_halves), its version is a
// static_assert: an instruction set that lacks the primitive fails to compile the kernels
// that use it, it never gets an inexact one.
//
// The batch primitives of isa_base (one batch, count = N lanes; kquants/batch_ops.hpp and
// lanes.hpp build the k-quant and iq4 searches on them):
//   count, search_batches         N; how many batches the k-quant searches run side by side
//   offset_search_batches         the same for the search of a scale and an offset (q2_K,
//                                 q4_K, q5_K)
//   rounds_in_one, round_even(F)  whether the level rounds a float to the nearest integer
//                                 (ties to even) in one instruction, and that rounding
//                                 (AVX2); without it the k-quants round by magic addition
//   load, store, mul              unaligned I/O; a product never fused with a later add
//   div(F, F), sqrt(F)            IEEE quotient and square root (no portable form)
//   min, max (I), abs (F)         exact
//   to_float(I), to_int(F)        exact for the small integers / integral floats used
//   select(mask, a, b)            F or I lanes by a float mask
//   widen(const int8_t*)          N signed bytes as F
//   transpose(rows, out)          N rows of N floats, transposed into N vectors
//   store_bytes(p, I)             N lanes in [0, 255] as bytes
//   store_biased_bytes(out, v, bias, top)
//                                 4 N lanes of v[0..4), each clamp(lane + bias, 0, top)
//   load_raw_bytes, store_raw_bytes   4 N bytes as the bytes of I
//   store_folded_halves(p, I, shift)  512-bit only: (low half) | (high half << shift)
//   has_byte_shuffle, look_up(table, bytes)
//                                 a 16-entry byte table indexed by each byte of a block
//   scaled_sum(part, s1, part, s2)   lane sums of two parts times s1 and s2
//
// A specialisation also provides, for the 32-value kernels of generic.hpp
// (F = xsimd::batch<float, Arch>, I = xsimd::batch<int32_t, Arch>, N = F::size lanes, a
// block is 32 values, so 32 / N vectors):
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
//   parts_per_vector              parts that join into one I
//   blocks_per_step               blocks whose constants are converted together (a
//                                 multiple of parts_per_vector)
//   load_bytes(p)                 32 bytes
//   nibbles(qs)                   value j < 16 is qs[j] & 15, value j + 16 is qs[j] >> 4
//   add_fifth_bits(b, qh)         b + 16 where bit j of the little-endian word qh is set
//   sub_bytes(b, k)               b - k in every byte
//   dot_unsigned(u, s)            partial sums of u * s, u in [0, 127], s any int8
//   dot_signed(x, s)              partial sums of x * s, x in [-127, 127], s any int8
//   dot_offset(u, k, s)           partial sums of (u - k) * s, u in [0, 31], k in [0, 16]
//   join(const part*)             parts_per_vector parts as one I
//   step_constants<with_offset>(x, y)
//                                 for the blocks x[k] and partners y[k] of a step: the
//                                 products dx * dy and (with_offset) mx * sy of their first
//                                 two binary16 fields (d and m of x, d and s of y), in F
//   step_scales(F, v)             dx * dy of each block of the step's v-th joined vector,
//                                 spread over the lanes of its part
//   sum_offsets(F)                the sum of the mx * sy lanes
// Every primitive is exact; the float products of the dot-product engine are the only
// place where rounding enters, and dot products need only agree to rounding.
//
// The level's choices and kernels of its own, each with a default in isa_base (so that a
// new instruction set gets the portable path until it says otherwise):
//   kquant_dots                   the k-quant dot-product driver (kquants/dot.hpp):
//                                 kquants::avx2_dot<arch> (AVX2, AVX-512), neon_dot<arch>
//                                 (NEON), or void: the scalar reference
//   iq4_xs_dots                   the struct whose iq4_xs is iq4_xs's dot (nonlinear.hpp),
//                                 or void: the generic one (AVX2, AVX-512: avx2_dot)
//   has_vnni                      AVX-512 VNNI in ymm form (kquants/dot_avx2.hpp)
//   dot_lender, borrows_dot(t)    the level whose block dot product of format t
//                                 (q4_0, q8_0: generic.hpp; iq4_nl: nonlinear.hpp) this
//                                 level runs where borrows_dot(t) (AVX-512: AVX2's for
//                                 q4_0, q8_0, iq4_nl); dot_arch<Arch, t> names it
//   has_dot_f16, dot_f16(x, y, n) an f16 dot product of the level's own (AVX2, AVX-512)
//   load_bf16(p)                  N bf16 values as F
//   store_u16(I, p)               N lanes in [0, 0xffff] as 16-bit values
//   narrow_bf16(src, out, n)      narrows a prefix of src to bf16 with the level's own
//                                 instructions, returns its length (0 in isa_base; AVX2,
//                                 AVX-512 have their own)

#include "qmix/kernels/isa/avx2.hpp"
#include "qmix/kernels/isa/avx512.hpp"
#include "qmix/kernels/isa/base.hpp"
#include "qmix/kernels/isa/neon.hpp"
#include "qmix/kernels/isa/sse2.hpp"

namespace qmix::kernels {
QMIX_ABI_BEGIN

/// The level whose block dot product of format T the level Arch runs (isa_base::borrows_dot).
template <class Arch, type_id T>
using dot_arch =
    std::conditional_t<isa<Arch>::borrows_dot(T), typename isa<Arch>::dot_lender, Arch>;

QMIX_ABI_END
}  // namespace qmix::kernels
