// SPDX-License-Identifier: MIT
#pragma once

// Vector kernels for the 32-value block formats (q4_0 q4_1 q5_0 q5_1 q8_0 q8_1) and the
// float formats (f16 f32), written once in xsimd and the isa<Arch> primitives (isa.hpp)
// and instantiated per architecture.
//
// Quantizers and dequantizers give the scalar reference's bytes and floats exactly. Each
// lane does what one step of the reference's loop over a block does, with the same
// operations in the same order; reductions are only taken where their order cannot matter
// (maximum, minimum, sums of integers). Every product that is then added goes through
// simd::mul, so that no compiler can fuse it (see core/strict_math.hpp), and divisions go
// through cpu::div, which is IEEE division on every architecture. The rare blocks where
// a lane-parallel formulation could part from the reference's sequential loop are handed
// to the scalar code, which is the specification anyway: a NaN or an infinity (whose
// position decides the reference's result), a zero extreme (whose sign the reference
// takes from the first of equal values), a subnormal scale (whose inverse sends levels out
// of range, where the reference's casts wrap).
//
// Dot products need only agree with ggml's to rounding: integer sums per block, scaled and
// summed in float lanes, with a fused multiply-add where the level has one.

#include <algorithm>
#include <cfloat>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/float16.hpp"
#include "qmix/formats/float32.hpp"
#include "qmix/formats/q4_0.hpp"
#include "qmix/formats/q4_1.hpp"
#include "qmix/formats/q5_0.hpp"
#include "qmix/formats/q5_1.hpp"
#include "qmix/formats/q8_0.hpp"
#include "qmix/formats/q8_1.hpp"
#include "qmix/kernels/isa.hpp"
#include "qmix/kernels/table.hpp"
#include "qmix/kernels/weighted.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

#if defined(__GNUC__) || defined(__clang__)
#define QMIX_KERNEL_COLD __attribute__((noinline, cold))
#else
#define QMIX_KERNEL_COLD
#endif

namespace qmix::kernels {
QMIX_ABI_BEGIN
QMIX_ABI_END
namespace generic {
QMIX_ABI_BEGIN

/// Whether an ISA has its own q5_0 dot step, cpu::dot_fifth_offset(nibbles, qh, partner)
/// (it says so with `static constexpr bool has_dot_fifth_offset = true`).
template <class Cpu, class = void>
inline constexpr bool has_dot_fifth_offset = false;
template <class Cpu>
inline constexpr bool has_dot_fifth_offset<Cpu, std::enable_if_t<Cpu::has_dot_fifth_offset>> = true;

template <class Arch>
struct block_kernels {
    using cpu = isa<Arch>;
    using floats = typename cpu::floats;
    using ints = typename cpu::ints;
    static constexpr std::size_t lanes = floats::size;
    static constexpr std::size_t block_values = 32;
    static constexpr std::size_t vectors = block_values / lanes;  ///< per block
    static constexpr std::size_t half = vectors / 2;              ///< vectors per 16 values
    static_assert(vectors >= 2 && block_values % lanes == 0, "a block must span whole vectors");

    /// One block of 32 values; lane l of v[k] is value k * lanes + l.
    struct block {
        floats v[vectors];
    };

    // ---- helpers -----------------------------------------------------------------------

    static block load(const float* x) {
        block b;
        for (std::size_t k = 0; k < vectors; ++k) b.v[k] = floats::load_unaligned(x + k * lanes);
        return b;
    }

    static float max_magnitude(const block& b) {
        floats m = xsimd::abs(b.v[0]);
        for (std::size_t k = 1; k < vectors; ++k) m = xsimd::max(m, xsimd::abs(b.v[k]));
        return cpu::reduce_max(m);
    }

    /// The value of the first element whose magnitude is `amax` (the reference keeps the
    /// first of equal magnitudes, so the sign of a tie is that of the earlier value).
    static float first_of_magnitude(const block& b, const float* x, float amax) {
        std::uint32_t hits = 0;
        for (std::size_t k = 0; k < vectors; ++k) {
            hits |= cpu::mask_bits(xsimd::abs(b.v[k]) == floats(amax)) << (k * lanes);
        }
        return x[count_trailing_zeros(hits)];
    }

    static int count_trailing_zeros(std::uint32_t bits) {
#if defined(__GNUC__) || defined(__clang__)
        return __builtin_ctz(bits);
#else
        int n = 0;
        while (!(bits & 1u)) bits >>= 1, ++n;
        return n;
#endif
    }

    /// std::round of each lane (half-way cases away from zero), for |v| < 2^30: with
    /// v = n + f (n = trunc(v)), trunc(2v) = 2n + trunc(2f) and trunc(2f) is +-1 exactly
    /// when |f| reaches one half, so trunc(2v) - trunc(v) is the rounded value; v + v is
    /// exact.
    static ints round_half_away(floats v) {
        return xsimd::to_int(v + v) - xsimd::to_int(v);
    }

    static std::uint32_t load_word(const std::uint8_t* qh) {
        return std::uint32_t(qh[0]) | std::uint32_t(qh[1]) << 8 | std::uint32_t(qh[2]) << 16 |
               std::uint32_t(qh[3]) << 24;
    }

    /// Level j (0..31) of a q5 block for the lanes of vector k.
    static ints fifth_level(const std::uint8_t* qs, std::uint32_t qh, std::size_t k) {
        const std::size_t first = k * lanes;
        const ints packed = cpu::widen_u8(qs + first % 16);
        const ints low = first < 16 ? (packed & ints(15)) : (packed >> 4);
        return low | (cpu::bit_lanes(qh, int(first)) << 4);
    }

    /// The reference itself, for the rare blocks the vector code leaves to it; kept out of
    /// line so that it does not crowd the loops that call it.
    template <class Format>
    QMIX_KERNEL_COLD static void scalar_block(const float* x, typename Format::block& y) {
        Format::quantize_row(x, &y, std::int64_t(block_values), nullptr);
    }

    /// The scalar dequantizer, for blocks whose scale or offset is infinite or NaN: the
    /// NaN bits it writes are defined (strict::mul_add_defined_nan), a vector sum's are not.
    template <class Format>
    QMIX_KERNEL_COLD static void scalar_dequantize_block(const typename Format::block& x,
                                                         float* y) {
        Format::dequantize_row(&x, y, std::int64_t(block_values));
    }

    /// Blocks whose scale d is subnormal: its inverse may be infinite or far off, levels
    /// then leave the range the format holds, and the reference's float-to-integer casts
    /// wrap in ways a vector conversion does not. Such blocks take the scalar path.
    static std::uint32_t subnormal(floats d) {
        const floats magnitude = xsimd::abs(d);
        return cpu::mask_bits((magnitude < floats(FLT_MIN)) & (magnitude != floats(0.0f)));
    }

    static floats inverse_of(floats d) {
        return xsimd::select(d != floats(0.0f), cpu::div(floats(1.0f), d), floats(0.0f));
    }

    static void store_fifth_bits(std::uint32_t bits, std::uint8_t* qh) {
        for (int i = 0; i < 4; ++i) qh[i] = std::uint8_t(bits >> (8 * i));
    }

    // ---- quantize (the reference quantizers) ---------------------------------------------
    //
    // Around its per-value work the reference spends a few scalar steps per block: the
    // extremes, a scale, its inverse, their binary16 forms. The kernels take the blocks in
    // groups of `lanes`: a first pass reduces each block's extremes across its lanes for
    // the whole group at once (lane b of the result belongs to block b), so the scales,
    // inverses and conversions of a group are one vector operation each; a second pass
    // quantizes block by block with its own lane broadcast.

    /// What the first pass learns about a group: lane b (bit b) describes block b.
    struct group_scan {
        floats max, min;
        std::uint32_t finite = 0;  ///< block b holds neither NaN nor infinity
    };

    static group_scan scan(const float* x, std::size_t count) {
        floats maxs[lanes], mins[lanes], checks[lanes];
        for (std::size_t b = 0; b < lanes; ++b) {
            if (b >= count) {  // past the end of the row: a harmless stand-in
                maxs[b] = mins[b] = floats(1.0f);
                checks[b] = floats(0.0f);
                continue;
            }
            const block v = load(x + b * block_values);
            floats hi = v.v[0], lo = v.v[0], sum = v.v[0];
            for (std::size_t k = 1; k < vectors; ++k) {
                hi = xsimd::max(hi, v.v[k]);
                lo = xsimd::min(lo, v.v[k]);
                sum = sum + v.v[k];
            }
            maxs[b] = hi;
            mins[b] = lo;
            // NaN or infinity anywhere makes sum - sum NaN. (A finite block whose sum
            // overflows merely takes the scalar path.)
            checks[b] = sum - sum;
        }
        group_scan g;
        g.max = cpu::transpose_max(maxs);
        g.min = cpu::transpose_min(mins);
        g.finite = cpu::mask_bits(cpu::transpose_add(checks) == floats(0.0f));
        return g;
    }

    /// Block b of a q8 group (nothing past `count`); returns the sum of its levels, in
    /// lanes, for q8_1's s (zero where the scalar code took the block).
    template <class Format>
    static floats quantize_q8_block(const float* xb, typename Format::block* group, std::size_t b,
                                    std::size_t count, std::uint32_t scalar, const float* inverse,
                                    const std::uint16_t* d_half) {
        if (b >= count) return floats(0.0f);
        auto& out = group[b];
        if (scalar >> b & 1u) {
            scalar_block<Format>(xb, out);
            return floats(0.0f);
        }
        out.d = d_half[b];
        const block v = load(xb);
        ints levels[vectors];
        ints sum(0);
        for (std::size_t k = 0; k < vectors; ++k) {
            levels[k] = round_half_away(simd::mul(v.v[k], floats(inverse[b])));
            sum = sum + levels[k];
        }
        cpu::store_i8x32(levels, out.qs);
        return xsimd::to_float(sum);
    }

    /// q8_0 and q8_1: d = max |x| / 127, levels rounded half away from zero; q8_1 also
    /// stores d * (sum of the levels).
    template <class Format>
    static void quantize_q8(const float* x, typename Format::block* y, std::int64_t blocks) {
        constexpr bool with_sum = std::is_same_v<Format, formats::q8_1>;
        for (std::int64_t first = 0; first < blocks; first += lanes, x += lanes * block_values) {
            const auto count = std::size_t(std::min<std::int64_t>(lanes, blocks - first));
            const group_scan g = scan(x, count);
            const floats d =
                cpu::div(xsimd::max(xsimd::abs(g.max), xsimd::abs(g.min)), floats(127.0f));
            const std::uint32_t scalar = ~g.finite | subnormal(d);
            alignas(64) float inverse[lanes];
            alignas(64) std::uint16_t d_half[lanes];
            inverse_of(d).store_aligned(inverse);
            cpu::store_halves(d, d_half);
            floats sums[lanes];
            for (std::size_t b = 0; b < lanes; ++b) {
                sums[b] = quantize_q8_block<Format>(x + b * block_values, y + first, b, count,
                                                    scalar, inverse, d_half);
            }
            if constexpr (with_sum) {
                // The sums are small integers: exact in any order, and so is their product
                // with d rounded once, as the reference rounds it.
                alignas(64) std::uint16_t s_half[lanes];
                cpu::store_halves(cpu::transpose_add(sums) * d, s_half);
                for (std::size_t b = 0; b < count; ++b) {
                    if (!(scalar >> b & 1u)) y[first + std::int64_t(b)].s = s_half[b];
                }
            }
        }
    }

    /// q4_0 and q5_0: d = (the value of largest magnitude) / -half_range, levels
    /// x / d + half_range + 0.5 truncated and clamped to `top`. Where +a and -a are both
    /// extremes the reference keeps the first: such blocks find it on their own.
    template <class Format, int half_range, int top>
    static void quantize_symmetric(const float* x, typename Format::block* y, std::int64_t blocks) {
        for (std::int64_t first = 0; first < blocks; first += lanes, x += lanes * block_values) {
            const auto count = std::size_t(std::min<std::int64_t>(lanes, blocks - first));
            const group_scan g = scan(x, count);
            const floats negated_min = -g.min;
            const floats signed_max = xsimd::select(g.max >= negated_min, g.max, g.min);
            const std::uint32_t ties = cpu::mask_bits(g.max == negated_min);
            const std::uint32_t zero =
                cpu::mask_bits(xsimd::max(xsimd::abs(g.max), xsimd::abs(g.min)) == floats(0.0f));
            const floats d = cpu::div(signed_max, floats(-float(half_range)));
            const std::uint32_t scalar = ~g.finite | zero | subnormal(d);
            alignas(64) float inverse[lanes];
            alignas(64) std::uint16_t d_half[lanes];
            inverse_of(d).store_aligned(inverse);
            cpu::store_halves(d, d_half);
            for (std::size_t b = 0; b < count; ++b) {
                const float* xb = x + b * block_values;
                auto& out = y[first + std::int64_t(b)];
                if (scalar >> b & 1u) {
                    scalar_block<Format>(xb, out);
                    continue;
                }
                const block v = load(xb);
                float inverse_d = inverse[b];
                out.d = d_half[b];
                if (ties >> b & 1u) {
                    const float tie_d = first_of_magnitude(v, xb, max_magnitude(v)) / -half_range;
                    inverse_d = tie_d != 0.0f ? 1.0f / tie_d : 0.0f;
                    out.d = cpu::float_to_half(tie_d);
                }
                ints levels[vectors];
                for (std::size_t k = 0; k < vectors; ++k) {
                    const floats shifted =
                        simd::mul(v.v[k], floats(inverse_d)) + floats(float(half_range) + 0.5f);
                    levels[k] = xsimd::to_int(shifted);
                }
                const std::uint32_t fifth = cpu::store_nibbles(levels, top, out.qs);
                if constexpr (top == 31) store_fifth_bits(fifth, out.qh);
            }
        }
    }

    /// q4_1 and q5_1: d = (max - min) / top and m = min, levels (x - min) / d + 0.5
    /// truncated (and clamped to top). A zero extreme goes to the scalar code, which takes
    /// the sign of a zero from the first of equal values.
    template <class Format, int top>
    static void quantize_affine(const float* x, typename Format::block* y, std::int64_t blocks) {
        for (std::int64_t first = 0; first < blocks; first += lanes, x += lanes * block_values) {
            const auto count = std::size_t(std::min<std::int64_t>(lanes, blocks - first));
            const group_scan g = scan(x, count);
            const floats d = cpu::div(g.max - g.min, floats(float(top)));
            // max - min overflowing binary32 makes d infinite and x - min infinite too: the
            // scalar code's levels there come from its own float-to-integer conversion.
            const std::uint32_t scalar =
                ~g.finite | cpu::mask_bits(g.min == floats(0.0f)) |
                cpu::mask_bits(g.max == floats(0.0f)) | subnormal(d) |
                cpu::mask_bits(d == floats(std::numeric_limits<float>::infinity()));
            alignas(64) float inverse[lanes];
            alignas(64) float min[lanes];
            alignas(64) std::uint16_t d_half[lanes];
            alignas(64) std::uint16_t m_half[lanes];
            inverse_of(d).store_aligned(inverse);
            g.min.store_aligned(min);
            cpu::store_halves(d, d_half);
            cpu::store_halves(g.min, m_half);
            for (std::size_t b = 0; b < count; ++b) {
                const float* xb = x + b * block_values;
                auto& out = y[first + std::int64_t(b)];
                if (scalar >> b & 1u) {
                    scalar_block<Format>(xb, out);
                    continue;
                }
                out.d = d_half[b];
                out.m = m_half[b];
                const block v = load(xb);
                ints levels[vectors];
                for (std::size_t k = 0; k < vectors; ++k) {
                    const floats shifted =
                        simd::mul(v.v[k] - floats(min[b]), floats(inverse[b])) + floats(0.5f);
                    levels[k] = xsimd::to_int(shifted);
                }
                const std::uint32_t fifth = cpu::store_nibbles(levels, top, out.qs);
                if constexpr (top == 31) store_fifth_bits(fifth, out.qh);
            }
        }
    }

    static void quantize_q8_0(const float* x, formats::block_q8_0* y, std::int64_t blocks) {
        quantize_q8<formats::q8_0>(x, y, blocks);
    }
    static void quantize_q8_1(const float* x, formats::block_q8_1* y, std::int64_t blocks) {
        quantize_q8<formats::q8_1>(x, y, blocks);
    }
    static void quantize_q4_0(const float* x, formats::block_q4_0* y, std::int64_t blocks) {
        quantize_symmetric<formats::q4_0, 8, 15>(x, y, blocks);
    }
    static void quantize_q5_0(const float* x, formats::block_q5_0* y, std::int64_t blocks) {
        quantize_symmetric<formats::q5_0, 16, 31>(x, y, blocks);
    }
    static void quantize_q4_1(const float* x, formats::block_q4_1* y, std::int64_t blocks) {
        quantize_affine<formats::q4_1, 15>(x, y, blocks);
    }
    static void quantize_q5_1(const float* x, formats::block_q5_1* y, std::int64_t blocks) {
        quantize_affine<formats::q5_1, 31>(x, y, blocks);
    }

    static void quantize_f16(const float* x, std::uint16_t* y, std::int64_t n) {
        std::int64_t i = 0;
        // Four vectors a step: a one-vector loop is a few instructions whose speed hung on
        // where the linker placed it (14.4 or 19.4 G values/s on Zen 4 for the same code).
        constexpr auto step = std::int64_t(4 * lanes);
        for (; i + step <= n; i += step) {
            unrolled<4>([&](auto k) {
                const std::int64_t at = i + std::int64_t(k * lanes);
                cpu::store_halves(floats::load_unaligned(x + at), y + at);
            });
        }
        for (; i + std::int64_t(lanes) <= n; i += lanes) {
            cpu::store_halves(floats::load_unaligned(x + i), y + i);
        }
        for (; i < n; ++i) y[i] = cpu::float_to_half(x[i]);
    }

    static void quantize_f32(const float* x, float* y, std::int64_t n) {
        std::memcpy(y, x, std::size_t(n) * sizeof(float));
    }

    // ---- dequantize ----------------------------------------------------------------------

    static void dequantize_q4_0(const formats::block_q4_0* x, float* y, std::int64_t blocks) {
        for (std::int64_t ib = 0; ib < blocks; ++ib, y += block_values) {
            const floats d(cpu::half_to_float(x[ib].d));
            for (std::size_t k = 0; k < half; ++k) {
                const ints packed = cpu::widen_u8(x[ib].qs + k * lanes);
                const ints low = (packed & ints(15)) - ints(8);
                const ints high = (packed >> 4) - ints(8);
                (xsimd::to_float(low) * d).store_unaligned(y + k * lanes);
                (xsimd::to_float(high) * d).store_unaligned(y + 16 + k * lanes);
            }
        }
    }

    static void dequantize_q4_1(const formats::block_q4_1* x, float* y, std::int64_t blocks) {
        for (std::int64_t ib = 0; ib < blocks; ++ib, y += block_values) {
            if (formats::q4_1::has_special_scale(x[ib])) {
                scalar_dequantize_block<formats::q4_1>(x[ib], y);
                continue;
            }
            const floats d(cpu::half_to_float(x[ib].d));
            const floats m(cpu::half_to_float(x[ib].m));
            for (std::size_t k = 0; k < half; ++k) {
                const ints packed = cpu::widen_u8(x[ib].qs + k * lanes);
                const floats low = xsimd::to_float(packed & ints(15));
                const floats high = xsimd::to_float(packed >> 4);
                (simd::mul(low, d) + m).store_unaligned(y + k * lanes);
                (simd::mul(high, d) + m).store_unaligned(y + 16 + k * lanes);
            }
        }
    }

    static void dequantize_q5_0(const formats::block_q5_0* x, float* y, std::int64_t blocks) {
        for (std::int64_t ib = 0; ib < blocks; ++ib, y += block_values) {
            const floats d(cpu::half_to_float(x[ib].d));
            const std::uint32_t qh = load_word(x[ib].qh);
            for (std::size_t k = 0; k < vectors; ++k) {
                const ints level = fifth_level(x[ib].qs, qh, k) - ints(16);
                (xsimd::to_float(level) * d).store_unaligned(y + k * lanes);
            }
        }
    }

    static void dequantize_q5_1(const formats::block_q5_1* x, float* y, std::int64_t blocks) {
        for (std::int64_t ib = 0; ib < blocks; ++ib, y += block_values) {
            if (formats::q5_1::has_special_scale(x[ib])) {
                scalar_dequantize_block<formats::q5_1>(x[ib], y);
                continue;
            }
            const floats d(cpu::half_to_float(x[ib].d));
            const floats m(cpu::half_to_float(x[ib].m));
            const std::uint32_t qh = load_word(x[ib].qh);
            for (std::size_t k = 0; k < vectors; ++k) {
                const floats level = xsimd::to_float(fifth_level(x[ib].qs, qh, k));
                (simd::mul(level, d) + m).store_unaligned(y + k * lanes);
            }
        }
    }

    template <class Block>
    static void dequantize_q8(const Block* x, float* y, std::int64_t blocks) {
        for (std::int64_t ib = 0; ib < blocks; ++ib, y += block_values) {
            const floats d(cpu::half_to_float(x[ib].d));
            for (std::size_t k = 0; k < vectors; ++k) {
                const floats level = xsimd::to_float(cpu::widen_i8(x[ib].qs + k * lanes));
                (level * d).store_unaligned(y + k * lanes);
            }
        }
    }

    static void dequantize_f16(const std::uint16_t* x, float* y, std::int64_t n) {
        std::int64_t i = 0;
        for (; i + std::int64_t(lanes) <= n; i += lanes) {
            cpu::load_halves(x + i).store_unaligned(y + i);
        }
        for (; i < n; ++i) y[i] = cpu::half_to_float(x[i]);
    }

    static void dequantize_f32(const float* x, float* y, std::int64_t n) {
        std::memcpy(y, x, std::size_t(n) * sizeof(float));
    }

    // ---- dot products --------------------------------------------------------------------

    /// The quantized dot products: the sum over blocks b of dx_b * dy_b * (the integer dot
    /// product of block b, whose partial sums part_of(b) returns) and, for the formats with
    /// an offset m (q4_1, q5_1), of m_b * s_b. A step is blocks_per_step blocks whose
    /// constants are converted together, in vectors of parts_per_vector joined blocks, the
    /// vectors added in two sums by turns. Blocks that do not fill a step go to the scalar
    /// code, `scalar_tail(first)`.
    template <bool with_offset, class Block, class Partner, class PartOf, class Tail>
    static float dot_blocks(const Block* x, const Partner* y, std::int64_t blocks, PartOf part_of,
                            Tail scalar_tail) {
        constexpr auto joined = std::int64_t(cpu::parts_per_vector);
        constexpr auto step = std::int64_t(cpu::blocks_per_step);
        static_assert(step % joined == 0, "a step holds whole vectors of joined blocks");
        floats sums[2] = {floats(0.0f), floats(0.0f)};
        floats offsets[2] = {floats(0.0f), floats(0.0f)};
        auto add_step = [&](std::int64_t b, int turn) {
            const floats constants = cpu::template step_constants<with_offset>(x + b, y + b);
            for (int v = 0; v < int(step / joined); ++v) {
                typename cpu::part parts[joined];
                for (std::int64_t k = 0; k < joined; ++k) parts[k] = part_of(b + v * joined + k);
                floats& sum = sums[(turn + v) % 2];
                sum = cpu::multiply_add(xsimd::to_float(cpu::join(parts)),
                                        cpu::step_scales(constants, v), sum);
            }
            if constexpr (with_offset) offsets[turn] = offsets[turn] + constants;
        };
        std::int64_t b = 0;
        for (; b + 2 * step <= blocks; b += 2 * step) {
            add_step(b, 0);
            add_step(b + step, 1);
        }
        for (; b + step <= blocks; b += step) add_step(b, 0);
        float sum = simd::reduce_add(sums[0] + sums[1]);
        if constexpr (with_offset) sum += cpu::sum_offsets(offsets[0] + offsets[1]);
        if (b < blocks) sum += scalar_tail(b);
        return sum;
    }

    static float dot_q4_0(const formats::block_q4_0* x, const formats::block_q8_0* y,
                          std::int64_t blocks) {
        return dot_blocks<false>(
            x, y, blocks,
            [&](std::int64_t b) {
                return cpu::dot_offset(cpu::nibbles(x[b].qs), 8, cpu::load_bytes(y[b].qs));
            },
            [&](std::int64_t b) {
                return formats::q4_0::dot_row(x + b, y + b, (blocks - b) * 32);
            });
    }

    static float dot_q5_0(const formats::block_q5_0* x, const formats::block_q8_0* y,
                          std::int64_t blocks) {
        return dot_blocks<false>(
            x, y, blocks,
            [&](std::int64_t b) {
                if constexpr (has_dot_fifth_offset<cpu>) {
                    return cpu::dot_fifth_offset(cpu::nibbles(x[b].qs), x[b].qh,
                                                 cpu::load_bytes(y[b].qs));
                } else {
                    const auto level = cpu::add_fifth_bits(cpu::nibbles(x[b].qs), x[b].qh);
                    return cpu::dot_offset(level, 16, cpu::load_bytes(y[b].qs));
                }
            },
            [&](std::int64_t b) {
                return formats::q5_0::dot_row(x + b, y + b, (blocks - b) * 32);
            });
    }

    static float dot_q8_0(const formats::block_q8_0* x, const formats::block_q8_0* y,
                          std::int64_t blocks) {
        return dot_blocks<false>(
            x, y, blocks,
            [&](std::int64_t b) {
                return cpu::dot_signed(cpu::load_bytes(x[b].qs), cpu::load_bytes(y[b].qs));
            },
            [&](std::int64_t b) {
                return formats::q8_0::dot_row(x + b, y + b, (blocks - b) * 32);
            });
    }

    static float dot_q4_1(const formats::block_q4_1* x, const formats::block_q8_1* y,
                          std::int64_t blocks) {
        return dot_blocks<true>(
            x, y, blocks,
            [&](std::int64_t b) {
                return cpu::dot_unsigned(cpu::nibbles(x[b].qs), cpu::load_bytes(y[b].qs));
            },
            [&](std::int64_t b) {
                return formats::q4_1::dot_row(x + b, y + b, (blocks - b) * 32);
            });
    }

    static float dot_q5_1(const formats::block_q5_1* x, const formats::block_q8_1* y,
                          std::int64_t blocks) {
        return dot_blocks<true>(
            x, y, blocks,
            [&](std::int64_t b) {
                const auto level = cpu::add_fifth_bits(cpu::nibbles(x[b].qs), x[b].qh);
                return cpu::dot_unsigned(level, cpu::load_bytes(y[b].qs));
            },
            [&](std::int64_t b) {
                return formats::q5_1::dot_row(x + b, y + b, (blocks - b) * 32);
            });
    }

    /// f16 and f32: products summed in four float accumulators, each stretch of `chunk`
    /// values then added in double, as the reference sums everything. `add_product(i, acc)`
    /// adds the products of the `lanes` values at i to acc.
    template <class AddProduct>
    static float dot_floats(std::int64_t n, AddProduct add_product, double tail) {
        constexpr std::int64_t chunk = 1024;
        constexpr std::int64_t width = std::int64_t(lanes);
        double total = tail;
        std::int64_t i = 0;
        while (i + width <= n) {
            const std::int64_t end = std::min(n, i + chunk);
            floats acc[4] = {floats(0.0f), floats(0.0f), floats(0.0f), floats(0.0f)};
            for (; i + 4 * width <= end; i += 4 * width) {
                for (std::int64_t k = 0; k < 4; ++k) acc[k] = add_product(i + k * width, acc[k]);
            }
            for (; i + width <= end; i += width) acc[0] = add_product(i, acc[0]);
            total += double(simd::reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3])));
        }
        return float(total);
    }

    /// The product of two binary16 values is exact in binary32, so a fused multiply-add
    /// sums the same values as a multiplication and an addition.
    static float dot_f16(const std::uint16_t* x, const std::uint16_t* y, std::int64_t n) {
        // The level's own, where it has one (AVX2, AVX-512: isa/avx2.hpp).
        if constexpr (cpu::has_dot_f16) return cpu::dot_f16(x, y, n);
        const std::int64_t whole = n - n % std::int64_t(lanes);
        double tail = 0.0;
        for (std::int64_t i = whole; i < n; ++i) {
            tail += double(cpu::half_to_float(x[i]) * cpu::half_to_float(y[i]));
        }
        return dot_floats(
            whole,
            [&](std::int64_t i, floats acc) {
                return cpu::add_exact_product(cpu::load_halves(x + i), cpu::load_halves(y + i),
                                              acc);
            },
            tail);
    }

    static float dot_f32(const float* x, const float* y, std::int64_t n) {
        const std::int64_t whole = n - n % std::int64_t(lanes);
        double tail = 0.0;
        for (std::int64_t i = whole; i < n; ++i) tail += double(x[i] * y[i]);
        return dot_floats(
            whole,
            [&](std::int64_t i, floats acc) {
                return acc +
                       simd::mul(floats::load_unaligned(x + i), floats::load_unaligned(y + i));
            },
            tail);
    }
};

// ---- row-range entry points of the kernel table ------------------------------------------

/// Rows(values, blocks, count) quantizes without importance; with it, the format's
/// importance-weighted quantizer of kernels/weighted.hpp for Arch takes the rows.
template <class Arch, class Format,
          void (*Rows)(const float*, typename Format::block*, std::int64_t)>
void quantize_rows(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                   const float* importance) {
    auto* out = static_cast<typename Format::block*>(dst);
    if constexpr (Format::uses_importance) {
        if (importance != nullptr) {
            weighted::kernels<Arch, Format>::quantize(src, out, nrows, n_per_row, importance);
            return;
        }
    }
    const std::int64_t blocks = n_per_row / std::int64_t(Format::block_size);
    for (std::int64_t r = 0; r < nrows; ++r) Rows(src + r * n_per_row, out + r * blocks, blocks);
}

template <class Format, void (*Rows)(const typename Format::block*, float*, std::int64_t)>
void dequantize_rows(const void* src, float* dst, std::int64_t nrows, std::int64_t n_per_row) {
    const auto* in = static_cast<const typename Format::block*>(src);
    const std::int64_t blocks = n_per_row / std::int64_t(Format::block_size);
    for (std::int64_t r = 0; r < nrows; ++r) Rows(in + r * blocks, dst + r * n_per_row, blocks);
}

template <class Format, float (*Dot)(const typename Format::block*,
                                     const typename Format::partner_block*, std::int64_t)>
float dot_row(const void* x, const void* y, std::int64_t n) {
    return Dot(static_cast<const typename Format::block*>(x),
               static_cast<const typename Format::partner_block*>(y),
               n / std::int64_t(Format::block_size));
}

QMIX_ABI_END
}  // namespace generic
QMIX_ABI_BEGIN

/// Fills `table` with this architecture's kernels for q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 f16 f32.
template <class Arch>
void add_block_kernels(kernel_table& table) {
    using k = generic::block_kernels<Arch>;
    using generic::dequantize_rows;
    using generic::dot_row;
    using generic::quantize_rows;
    namespace f = formats;
    slot(table, type_id::f32) = {&quantize_rows<Arch, f::f32, &k::quantize_f32>,
                                 &dequantize_rows<f::f32, &k::dequantize_f32>,
                                 &dot_row<f::f32, &k::dot_f32>};
    slot(table, type_id::f16) = {&quantize_rows<Arch, f::f16, &k::quantize_f16>,
                                 &dequantize_rows<f::f16, &k::dequantize_f16>,
                                 &dot_row<f::f16, &k::dot_f16>};
    // A level may run another level's dot kernels for some formats (dot_arch, isa.hpp).
    using q4_0_dot = generic::block_kernels<dot_arch<Arch, type_id::q4_0>>;
    using q8_0_dot = generic::block_kernels<dot_arch<Arch, type_id::q8_0>>;
    slot(table, type_id::q4_0) = {&quantize_rows<Arch, f::q4_0, &k::quantize_q4_0>,
                                  &dequantize_rows<f::q4_0, &k::dequantize_q4_0>,
                                  &dot_row<f::q4_0, &q4_0_dot::dot_q4_0>};
    slot(table, type_id::q4_1) = {&quantize_rows<Arch, f::q4_1, &k::quantize_q4_1>,
                                  &dequantize_rows<f::q4_1, &k::dequantize_q4_1>,
                                  &dot_row<f::q4_1, &k::dot_q4_1>};
    slot(table, type_id::q5_0) = {&quantize_rows<Arch, f::q5_0, &k::quantize_q5_0>,
                                  &dequantize_rows<f::q5_0, &k::dequantize_q5_0>,
                                  &dot_row<f::q5_0, &k::dot_q5_0>};
    slot(table, type_id::q5_1) = {&quantize_rows<Arch, f::q5_1, &k::quantize_q5_1>,
                                  &dequantize_rows<f::q5_1, &k::dequantize_q5_1>,
                                  &dot_row<f::q5_1, &k::dot_q5_1>};
    slot(table, type_id::q8_0) = {
        &quantize_rows<Arch, f::q8_0, &k::quantize_q8_0>,
        &dequantize_rows<f::q8_0, &k::template dequantize_q8<f::block_q8_0>>,
        &dot_row<f::q8_0, &q8_0_dot::dot_q8_0>};
    slot(table, type_id::q8_1) = {
        &quantize_rows<Arch, f::q8_1, &k::quantize_q8_1>,
        &dequantize_rows<f::q8_1, &k::template dequantize_q8<f::block_q8_1>>, nullptr};
}

QMIX_ABI_END
}  // namespace qmix::kernels
