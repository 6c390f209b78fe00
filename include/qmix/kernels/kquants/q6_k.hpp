// SPDX-License-Identifier: MIT
#pragma once

// q6_K: quantize and dequantize (layout and reference in formats/q6_k.hpp). Each group of
// 16 values gets its symmetric scale from the reference's weighted least-squares search,
// one group per lane; per block the 16 scales become int8 against the one of largest
// magnitude; then every value is rounded against the scales as stored.

#include <cstdint>
#include <cstring>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/q6_k.hpp"
#include "qmix/kernels/kquants/lanes.hpp"
#include "qmix/kernels/kquants/scalar.hpp"
#include "qmix/kernels/kquants/searches.hpp"
#include "qmix/kernels/kquants/staging.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Arch>
struct q6_k_kernels {
    using L = lanes<Arch>;
    using floats = typename L::floats;
    using ints = typename L::ints;
    /// The group searches run on K batches at once (W::count lanes); the per-block steps
    /// and the level recomputation on single batches.
    static constexpr int K = search_batches<Arch>;
    using W = lanes<Arch, K>;
    using search = group_search<Arch, K>;
    using block_search = group_search<Arch>;
    using block = formats::block_q6_k;

    static constexpr int values = 256;
    static constexpr int groups = 16;
    static constexpr int group_size = 16;
    static constexpr int level_offset = 32;
    static constexpr int chunk = 16;
    static_assert(chunk * groups % W::count == 0, "a chunk fills whole search batches");

    static void quantize(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* importance) {
        quantize_by_chunks<Arch, chunk>(src, static_cast<block*>(dst), nrows, n_per_row, values,
                                        importance, &quantize_chunk);
    }

    static void dequantize(const void* src, float* dst, std::int64_t nrows,
                           std::int64_t n_per_row) {
        const auto* in = static_cast<const block*>(src);
        const std::int64_t total = nrows * (n_per_row / values);
        for (std::int64_t b = 0; b < total; ++b) {
            alignas(64) std::int8_t levels[values];
            unpack_levels(in[b], levels);
            const float d = scalar<Arch>::half_to_float(in[b].d);
            float* out = dst + b * values;
            for (int g = 0; g < groups; ++g) {
                // (d * scale) * level, in this order, as the reference rounds it.
                const floats step(d * float(in[b].scales[g]));
                for (int i = group_size * g; i < group_size * (g + 1); i += L::count) {
                    L::store(out + i, step * L::widen(levels + i));
                }
            }
        }
    }

    /// Signed levels (-32..31) in value order.
    static void unpack_levels(const block& x, std::int8_t* levels) {
        for (int h = 0; h < 2; ++h) {
            std::int8_t* l = levels + 128 * h;
            const std::uint8_t* ql = x.ql + 64 * h;
            const std::uint8_t* qh = x.qh + 32 * h;
            for (int p = 0; p < 32; ++p) {
                l[p] = std::int8_t(((ql[p] & 0xF) | ((qh[p] & 3) << 4)) - level_offset);
                l[p + 32] =
                    std::int8_t(((ql[p + 32] & 0xF) | (((qh[p] >> 2) & 3) << 4)) - level_offset);
                l[p + 64] = std::int8_t(((ql[p] >> 4) | (((qh[p] >> 4) & 3) << 4)) - level_offset);
                l[p + 96] =
                    std::int8_t(((ql[p + 32] >> 4) | (((qh[p] >> 6) & 3) << 4)) - level_offset);
            }
        }
    }

  private:
    struct fits {
        alignas(64) float scale[chunk * groups];
        alignas(64) float level_iscale[chunk * groups];
        alignas(64) float flat[chunk * groups];  ///< 1 where the group is all zero
    };

    static void quantize_chunk(const float* x, block* y, int count,
                               const float* const* importance) {
        fits f;
        const int total = count * groups;
        group_batch<Arch, group_size, groups, K> batch;
        for (int g = 0; g < total; g += W::count) {
            batch.load(x, importance, g, total);
            // Without importance the search weighs each value by x^2 (rmse_type 1); with it,
            // by the importance itself.
            const auto fit = importance ? search::template symmetric<group_size, true>(
                                              batch.x.v, batch.importance.v, level_offset)
                                        : search::template symmetric<group_size, false>(
                                              batch.x.v, nullptr, level_offset);
            W::store(f.scale + g, fit.scale);
            W::store(f.level_iscale + g, fit.level_iscale);
            W::store(f.flat + g,
                     W::select(fit.flat, typename W::floats(1.0f), typename W::floats(0.0f)));
        }
        for (int b = 0; b < count; ++b) {
            if (choose_scales(f.scale + b * groups, y[b])) {
                requantize_and_pack(x + b * values, f, b * groups, y[b]);
            }
        }
    }

    /// The int8 scales against the one of largest magnitude (which maps to -128). Returns
    /// false for an all-zero block, which the reference stores as zero bytes.
    static bool choose_scales(const float* scales, block& y) {
        float extreme = 0;
        float largest = 0;
        for (int g = 0; g < groups; ++g) {
            const float magnitude = scalar<Arch>::abs(scales[g]);
            if (magnitude > largest) {
                largest = magnitude;
                extreme = scales[g];
            }
        }
        if (largest < block_search::group_max_eps) {
            std::memset(&y, 0, sizeof y);
            return false;
        }
        const float inverse = -128.f / extreme;
        y.d = scalar<Arch>::float_to_half(1 / inverse);
        for (int g = 0; g < groups; ++g) {
            const int q = strict::nearest_int(strict::mul(inverse, scales[g]));
            y.scales[g] = std::int8_t(q < 127 ? q : 127);
        }
        return true;
    }

    /// Every level against the scales as stored; a group whose stored scale is zero keeps
    /// the levels of its search.
    static void requantize_and_pack(const float* x, const fits& f, int first_fit, block& y) {
        const float d = scalar<Arch>::half_to_float(y.d);
        alignas(64) std::int32_t levels[values];
        for (int g = 0; g < groups; ++g) {
            const float step = d * float(y.scales[g]);
            const float* xs = x + group_size * g;
            std::int32_t* ls = levels + group_size * g;
            const int fit = first_fit + g;
            if (step == 0) {
                const floats iscale(f.level_iscale[fit]);
                const bool flat = f.flat[fit] != 0;
                for (int i = 0; i < group_size; i += L::count) {
                    const ints l =
                        block_search::symmetric_levels(L::load(xs + i), iscale, level_offset);
                    L::store(ls + i, flat ? ints(0) : l);
                }
                continue;
            }
            const floats steps(step);
            for (int i = 0; i < group_size; i += L::count) {
                const ints l = L::nearest_int(L::div(L::load(xs + i), steps));
                L::store(ls + i, L::clamp(l, -level_offset, level_offset - 1) + ints(level_offset));
            }
        }
        pack_levels(levels, y);
    }

    static void pack_levels(const std::int32_t* levels, block& y) {
        const ints nibble(0xF);
        for (int h = 0; h < 2; ++h) {
            const std::int32_t* l = levels + 128 * h;
            for (int p = 0; p < 32; p += L::count) {
                const ints l0 = L::load(l + p);
                const ints l1 = L::load(l + p + 32);
                const ints l2 = L::load(l + p + 64);
                const ints l3 = L::load(l + p + 96);
                L::store_bytes(y.ql + 64 * h + p, (l0 & nibble) | ((l2 & nibble) << 4));
                L::store_bytes(y.ql + 64 * h + p + 32, (l1 & nibble) | ((l3 & nibble) << 4));
                L::store_bytes(y.qh + 32 * h + p,
                               (l0 >> 4) | ((l1 >> 4) << 2) | ((l2 >> 4) << 4) | ((l3 >> 4) << 6));
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
