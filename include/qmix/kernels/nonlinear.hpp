// SPDX-License-Identifier: MIT
#pragma once

// SIMD kernels of iq4_nl and iq4_xs (layout and reference in formats/iq4_nl.hpp,
// formats/iq4_xs.hpp, formats/detail/nonlinear_levels.hpp).
//
// Quantizing runs the reference's scale search on one 32-value block (iq4_nl) or
// sub-block (iq4_xs) per lane, with the reference's operations in its order, so each lane
// rounds exactly where the scalar code rounds and the bytes are the same. The search for
// the nearest of the 16 levels, a binary search in the reference, becomes a count of the
// levels at or below the value (the binary search ends on the last of them) and the
// reference's own comparison of the two distances; a NaN, which the binary search sends
// to the top level, goes there explicitly. Dequantizing and the dot products look the
// 4-bit indices up in the table of levels with a byte shuffle (a 16-entry table is one
// register: pshufb on AVX2 and AVX-512, tbl on NEON); SSE2, which has no byte shuffle,
// keeps the scalar code for them. The iq4_nl dot product need only agree with the
// reference to rounding; iq4_xs's, exact integers per super-block scaled and added in the
// reference's order, equals it bit for bit.

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/iq4_nl.hpp"
#include "qmix/formats/iq4_xs.hpp"
#include "qmix/kernels/generic.hpp"
#include "qmix/kernels/isa.hpp"
#include "qmix/kernels/kquants/dot_avx2.hpp"
#include "qmix/kernels/kquants/lanes.hpp"
#include "qmix/kernels/kquants/scalar.hpp"
#include "qmix/kernels/kquants/staging.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix::kernels {
QMIX_ABI_BEGIN
QMIX_ABI_END
namespace nonlinear {
QMIX_ABI_BEGIN

using formats::detail::nonlinear_levels;

/// The scale search of formats/detail/nonlinear_levels.hpp, one 32-value group per lane.
template <class Arch, int K>
struct search {
    using W = kquants::lanes<Arch, K>;
    using floats = typename W::floats;
    using ints = typename W::ints;
    using mask = typename W::mask;

    /// Level k in every lane.
    static floats level(int k) { return floats(static_cast<float>(nonlinear_levels[k])); }

    /// The level nearest to v (the reference's nearest_level_index, then the level
    /// itself), and with_index, its index in *index.
    template <bool with_index = false>
    static floats nearest_level(const floats& v, ints* index = nullptr) {
        floats low = level(0);
        floats high = level(1);
        ints count(0);
        unrolled<14>([&](auto k) {
            constexpr int index_k = decltype(k)::value + 1;
            const mask at_or_below = level(index_k) <= v;
            low = W::select(at_or_below, level(index_k), low);
            high = W::select(at_or_below, level(index_k + 1), high);
            if constexpr (with_index) count = W::select(at_or_below, ints(index_k), count);
        });
        // Below the first level and above the last, the comparison picks the end itself.
        const mask lower = (v - low) < (high - v);
        // NaN goes to the top level. (v == v, an ordered comparison on every instruction
        // set, is false for NaN; xsimd's != is ordered on AVX and so false for NaN too.)
        const mask a_number = v == v;
        if constexpr (with_index) {
            *index = W::select(a_number, W::select(lower, count, count + ints(1)), ints(15));
        }
        return W::select(a_number, W::select(lower, low, high), level(15));
    }

    struct sums {
        floats qx, q2;
    };

    static sums trial(const floats* x, const floats* weights, const floats& inverse) {
        sums s{floats(0.0f), floats(0.0f)};
        for (int j = 0; j < 32; ++j) {
            const floats q = nearest_level(W::mul(inverse, x[j]));
            const floats wq = weights[j] * q;
            s.qx += W::mul(wq, x[j]);
            s.q2 += W::mul(wq, q);
        }
        return s;
    }

    /// search_nonlinear_scale on every lane.
    static floats scale(const floats* x, const floats* weights, int tries) {
        floats amax(0.0f);
        floats max(0.0f);
        for (int j = 0; j < 32; ++j) {
            const floats magnitude = W::abs(x[j]);
            const mask larger = magnitude > amax;
            amax = W::select(larger, magnitude, amax);
            max = W::select(larger, x[j], max);
        }
        const mask zero = amax < floats(formats::detail::nonlinear_zero_block);
        const floats first_level = level(0);
        floats d = W::div(-max, first_level);
        sums s = trial(x, weights, W::div(floats(1.0f), d));
        const mask positive = s.q2 > floats(0.0f);
        d = W::select(positive, W::div(s.qx, s.q2), floats(0.0f));
        floats best = W::mul(d, s.qx);
        for (int t = -tries; t <= tries; ++t) {
            s = trial(x, weights, W::div(floats(float(t + nonlinear_levels[0])), max));
            const mask better = (s.q2 > floats(0.0f)) && (W::mul(s.qx, s.qx) > W::mul(best, s.q2));
            const floats candidate = W::div(s.qx, s.q2);
            d = W::select(better, candidate, d);
            best = W::select(better, W::mul(candidate, s.qx), best);
        }
        return W::select(zero, floats(0.0f), d);
    }
};

/// Whether the instruction set looks 16-entry tables up in a register (isa<Arch>).
template <class Arch>
inline constexpr bool has_byte_shuffle = isa<Arch>::has_byte_shuffle;

/// The dot products, written against the dot-product engine of isa<Arch> (isa.hpp).
template <class Arch>
struct dots {
    using cpu = isa<Arch>;
    using bytes = typename cpu::bytes;
    using part = typename cpu::part;

    /// The levels of the 32 indices packed in qs[0 .. 16), as signed bytes in value order.
    static bytes levels_of(const std::uint8_t* qs) {
        return cpu::look_up(nonlinear_levels, cpu::nibbles(qs));
    }

    static float iq4_nl(const formats::block_iq4_nl* x, const formats::block_q8_0* y,
                        std::int64_t blocks) {
        return generic::block_kernels<Arch>::template dot_blocks<false>(
            x, y, blocks,
            [&](std::int64_t b) {
                return cpu::dot_signed(levels_of(x[b].qs), cpu::load_bytes(y[b].qs));
            },
            [&](std::int64_t b) {
                return formats::iq4_nl::dot_row(x + b, y + b, (blocks - b) * 32);
            });
    }

    /// Per super-block the exact integer sum over its sub-blocks of (sub-block scale) times
    /// (integer dot product), then one product with d * d8, the blocks added in order: the
    /// reference's result bit for bit. (x86 uses kquants::avx2_dot::iq4_xs instead.)
    static float iq4_xs(const formats::block_iq4_xs* x, const formats::block_q8_k* y,
                        std::int64_t blocks) {
        float sum = 0.0f;
        for (std::int64_t b = 0; b < blocks; ++b) {
            std::int32_t total = 0;
            for (int g = 0; g < 8; g += 2) {
                const part first =
                    cpu::dot_signed(levels_of(x[b].qs + 16 * g), cpu::load_bytes(y[b].qs + 32 * g));
                const part second = cpu::dot_signed(levels_of(x[b].qs + 16 * g + 16),
                                                    cpu::load_bytes(y[b].qs + 32 * g + 32));
                total += cpu::scaled_sum(first, formats::iq4_xs::sub_block_scale(x[b], g), second,
                                         formats::iq4_xs::sub_block_scale(x[b], g + 1));
            }
            const float d = kquants::scalar<Arch>::half_to_float(x[b].d) * y[b].d;
            sum += strict::mul(d, float(total));
        }
        return sum;
    }
};

/// Quantize and dequantize kernels of iq4_nl (GroupsPerBlock 1) and iq4_xs (8).
template <class Arch, class Format>
struct kernels {
    static constexpr bool is_xs = std::is_same_v<Format, formats::iq4_xs>;
    static constexpr int groups_per_block = is_xs ? 8 : 1;
    static constexpr int values = 32 * groups_per_block;
    using L = kquants::lanes<Arch>;
    static constexpr int K = kquants::search_batches<Arch>;
    using W = kquants::lanes<Arch, K>;
    using block = typename Format::block;
    using scalar = kquants::scalar<Arch>;

    /// Blocks per chunk: 64 groups, whole search batches on every instruction set.
    static constexpr int chunk = 64 / groups_per_block;
    static_assert(chunk * groups_per_block % W::count == 0, "a chunk fills whole batches");
    static_assert(16 % L::count == 0, "16 indices fill whole batches");

    static void quantize(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* importance) {
        kquants::quantize_by_chunks<Arch, chunk>(src, static_cast<block*>(dst), nrows, n_per_row,
                                                 values, importance, &quantize_chunk);
    }

    static void dequantize(const void* src, float* dst, std::int64_t nrows,
                           std::int64_t n_per_row) {
        const auto* in = static_cast<const block*>(src);
        const std::int64_t total = nrows * (n_per_row / values);
        for (std::int64_t b = 0; b < total; ++b) {
            const float d = scalar::half_to_float(in[b].d);
            for (int g = 0; g < groups_per_block; ++g) {
                float step = d;
                if constexpr (is_xs) step = d * float(Format::sub_block_scale(in[b], g));
                alignas(64) std::int8_t levels[32];
                const auto looked_up = dots<Arch>::levels_of(in[b].qs + 16 * g);
                static_assert(sizeof looked_up == sizeof levels, "32 levels");
                std::memcpy(levels, &looked_up, sizeof levels);
                float* out = dst + b * values + 32 * g;
                const typename L::floats steps(step);
                for (int i = 0; i < 32; i += L::count) {
                    L::store(out + i, steps * L::widen(levels + i));
                }
            }
        }
    }

  private:
    static void quantize_chunk(const float* x, block* y, int count,
                               const float* const* importance) {
        alignas(64) float sigma2[chunk];
        if (importance) {
            kquants::sums_of_squares<Arch>(x, count, values, sigma2);
            for (int b = 0; b < count; ++b) sigma2[b] = strict::mul(sigma2[b], 2.f / values);
        }
        alignas(64) float scales[chunk * groups_per_block];
        const int total = count * groups_per_block;
        kquants::group_batch<Arch, 32, groups_per_block, K> batch;
        for (int g = 0; g < total; g += W::count) {
            batch.load(x, importance, g, total);
            typename W::floats weights[32];
            if (importance) {
                const auto s2 = batch.per_block(sigma2);
                for (int j = 0; j < 32; ++j) {
                    weights[j] = W::mul(batch.importance.v[j],
                                        W::sqrt(s2 + W::mul(batch.x.v[j], batch.x.v[j])));
                }
            } else {
                for (int j = 0; j < 32; ++j) weights[j] = batch.x.v[j] * batch.x.v[j];
            }
            W::store(scales + g, search<Arch, K>::scale(batch.x.v, weights,
                                                        formats::detail::nonlinear_tries_chunk));
        }
        for (int b = 0; b < count; ++b) {
            const float* xb = x + std::int64_t(b) * values;
            if constexpr (is_xs) {
                finish_xs(xb, scales + b * groups_per_block, y[b]);
            } else {
                const float d = scales[b];
                y[b].d = scalar::float_to_half(d);
                store_indices(xb, d != 0.0f ? 1 / d : 0.0f, y[b].qs);
            }
        }
    }

    /// iq4_xs: the super-block scale, the 6-bit sub-block scales against it, and every
    /// index against its sub-block's scale as stored.
    static void finish_xs(const float* x, const float* scales, block& y) {
        float max_scale = 0;
        float amax_scale = 0;
        for (int g = 0; g < groups_per_block; ++g) {
            const float magnitude = scalar::abs(scales[g]);
            if (magnitude > amax_scale) {
                amax_scale = magnitude;
                max_scale = scales[g];
            }
        }
        const float d = -max_scale / 32;
        y.d = scalar::float_to_half(d);
        const float inverse = d != 0.0f ? 1 / d : 0.0f;
        std::uint16_t high_bits = 0;
        for (int g = 0; g < groups_per_block; ++g) {
            int l = strict::nearest_int(strict::mul(inverse, scales[g]));
            l = l < -32 ? -32 : (l > 31 ? 31 : l);
            const float dl = d * float(l);
            store_indices(x + 32 * g, dl != 0.0f ? 1 / dl : 0.0f, y.qs + 16 * g);
            const int stored = l + 32;
            if (g % 2 == 0) {
                y.scales_l[g / 2] = std::uint8_t(stored & 0x0F);
            } else {
                y.scales_l[g / 2] = std::uint8_t(y.scales_l[g / 2] | ((stored & 0x0F) << 4));
            }
            high_bits = std::uint16_t(high_bits | ((stored >> 4) << (2 * g)));
        }
        y.scales_h = high_bits;
    }

    /// The 32 indices of one group for the inverse scale `inverse`, packed two per byte.
    static void store_indices(const float* x, float inverse, std::uint8_t* qs) {
        using S = search<Arch, 1>;
        const typename L::floats inverses(inverse);
        alignas(64) std::int32_t indices[32];
        for (int i = 0; i < 32; i += L::count) {
            typename L::ints index;
            S::template nearest_level<true>(L::mul(inverses, L::load(x + i)), &index);
            L::store(indices + i, index);
        }
        for (int i = 0; i < 16; i += L::count) {
            const typename L::ints low = L::load(indices + i);
            const typename L::ints high = L::load(indices + 16 + i);
            L::store_bytes(qs + i, low | (high << 4));
        }
    }
};

QMIX_ABI_END
}  // namespace nonlinear
QMIX_ABI_BEGIN

/// Fills the iq4_nl and iq4_xs slots of `table` with the kernels of Arch.
template <class Arch>
void add_nonlinear_kernels(kernel_table& table) {
    using nl = nonlinear::kernels<Arch, formats::iq4_nl>;
    using xs = nonlinear::kernels<Arch, formats::iq4_xs>;
    using dots = nonlinear::dots<Arch>;
    using iq4_nl_dots = nonlinear::dots<dot_arch<Arch, type_id::iq4_nl>>;
    slot(table, type_id::iq4_nl).quantize = &nl::quantize;
    slot(table, type_id::iq4_xs).quantize = &xs::quantize;
    // Without a byte shuffle (SSE2) the table lookups in memory make the dequantizers and
    // dot products slower than the scalar code the compiler vectorises: those slots stay
    // empty there (measured: dot 1.0 against 1.8 G values/s, dequantize 1.0 against 2.0).
    if constexpr (nonlinear::has_byte_shuffle<Arch>) {
        slot(table, type_id::iq4_nl).dequantize = &nl::dequantize;
        slot(table, type_id::iq4_xs).dequantize = &xs::dequantize;
        slot(table, type_id::iq4_nl).dot = &generic::dot_row<formats::iq4_nl, &iq4_nl_dots::iq4_nl>;
        // x86: the k-quant driver (kquants/dot_avx2.hpp), which reduces eight blocks at once.
        using driver = typename isa<Arch>::iq4_xs_dots;
        if constexpr (!std::is_void_v<driver>) {
            slot(table, type_id::iq4_xs).dot = &driver::iq4_xs;
        } else {
            slot(table, type_id::iq4_xs).dot = &generic::dot_row<formats::iq4_xs, &dots::iq4_xs>;
        }
    }
}

QMIX_ABI_END
}  // namespace qmix::kernels
