// SPDX-License-Identifier: MIT
#pragma once

// q4_K and q5_K: quantize and dequantize. The two formats differ only in the level width,
// the reference's search steps and the packing of the levels (formats/q4_k.hpp, q5_k.hpp).
//
// Quantizing runs in three steps over a chunk of blocks:
//   1. every sub-block of 32 values gets its scale and min from the reference's search,
//      one sub-block per lane;
//   2. per block, those eight scales and mins become 6-bit levels and binary16 steps
//      (the importance path searches them too, one block per lane);
//   3. every value is rounded against the scales as stored, eight or sixteen at a time.

#include <cstdint>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/q4_k.hpp"
#include "qmix/formats/q5_k.hpp"
#include "qmix/kernels/kquants/lanes.hpp"
#include "qmix/kernels/kquants/scalar.hpp"
#include "qmix/kernels/kquants/searches.hpp"
#include "qmix/kernels/kquants/staging.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

/// What differs between q4_K and q5_K (see formats/q4_k.hpp: k4_search).
template <class Format>
struct k4_traits;

template <>
struct k4_traits<formats::q4_k> {
    static constexpr int nmax = 15;
    static constexpr float rmin = -1.f;
    static constexpr float rdelta = 0.1f;
    static constexpr int nstep = 20;
    static constexpr bool cap_weighted_levels = false;
    static constexpr bool has_fifth_bit = false;
};

template <>
struct k4_traits<formats::q5_k> {
    static constexpr int nmax = 31;
    static constexpr float rmin = -0.5f;
    static constexpr float rdelta = 0.1f;
    static constexpr int nstep = 15;
    static constexpr bool cap_weighted_levels = true;
    static constexpr bool has_fifth_bit = true;
};

template <class Arch, class Format>
struct k4_kernels {
    using L = lanes<Arch>;
    using floats = typename L::floats;
    using ints = typename L::ints;
    using block = typename Format::block;
    /// The sub-block searches run on K batches at once (W::count lanes).
    static constexpr int K = offset_search_batches<Arch>;
    using W = lanes<Arch, K>;
    using search = group_search<Arch, K>;
    /// One block per lane, and the level recomputation, on single batches.
    using block_search = group_search<Arch>;
    using traits = k4_traits<Format>;

    static constexpr int values = 256;
    static constexpr int sub_blocks = 8;
    static constexpr int sub_size = 32;
    /// Blocks quantized together: enough to fill sixteen lanes with one block each.
    static constexpr int chunk = 16;
    static_assert(chunk * sub_blocks % W::count == 0, "a chunk fills whole search batches");

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
            const float dmin = scalar<Arch>::half_to_float(in[b].dmin);
            float* out = dst + b * values;
            for (int j = 0; j < sub_blocks; ++j) {
                int scale_level;
                int min_level;
                scalar<Arch>::unpack_scale_min_k4(j, in[b].scales, scale_level, min_level);
                const floats scale(d * float(scale_level));
                const floats offset(strict::mul(dmin, float(min_level)));
                for (int i = sub_size * j; i < sub_size * (j + 1); i += L::count) {
                    L::store(out + i, L::mul(scale, L::widen(levels + i)) - offset);
                }
            }
        }
    }

    /// Levels (0..15, or 0..31 for q5_K) in value order. The NEON dot product uses it too.
    static void unpack_levels(const block& x, std::int8_t* levels) {
        for (int g = 0; g < 4; ++g) {
            const std::uint8_t* q = x.qs + 32 * g;
            std::int8_t* out = levels + 64 * g;
            for (int l = 0; l < 32; ++l) {
                int low = q[l] & 0xF;
                int high = q[l] >> 4;
                if constexpr (traits::has_fifth_bit) {
                    low |= ((x.qh[l] >> (2 * g)) & 1) << 4;
                    high |= ((x.qh[l] >> (2 * g + 1)) & 1) << 4;
                }
                out[l] = std::int8_t(low);
                out[l + 32] = std::int8_t(high);
            }
        }
    }

  private:
    /// Step 1's results, per sub-block of the chunk.
    struct fits {
        alignas(64) float scale[chunk * sub_blocks];
        alignas(64) float min[chunk * sub_blocks];
        alignas(64) float level_iscale[chunk * sub_blocks];
        alignas(64) float level_min[chunk * sub_blocks];
        alignas(64) float weight[chunk * sub_blocks];  ///< sum of the value weights
    };

    static void quantize_chunk(const float* x, block* y, int count,
                               const float* const* importance) {
        fits f;
        fit_sub_blocks(x, count, importance, f);
        if (importance) {
            choose_scales_weighted(count, f, y);
        } else {
            choose_scales_reference(count, f, y);
        }
        for (int b = 0; b < count; ++b) {
            requantize_and_pack(x + b * values, f, b * sub_blocks, y[b]);
        }
    }

    /// Step 1: choose_scales_reference_k4 / choose_scales_weighted_k4's sub-block loop.
    static void fit_sub_blocks(const float* x, int count, const float* const* importance, fits& f) {
        float sigma2[chunk];
        if (importance) {
            sums_of_squares<Arch>(x, count, values, sigma2);
            for (int b = 0; b < count; ++b) sigma2[b] = 2 * sigma2[b] / values;
        }
        const int groups = count * sub_blocks;
        group_batch<Arch, sub_size, sub_blocks, K> batch;
        for (int g = 0; g < groups; g += W::count) {
            batch.load(x, importance, g, groups);
            const auto* xs = batch.x.v;
            typename W::floats w[sub_size];
            typename search::scale_min_fit fit;
            if (importance) {
                W::store(f.weight + g, batch.importance_weights(sigma2, w));
                fit = search::template scale_and_min<sub_size, false>(xs, w, traits::nmax, -0.9f,
                                                                      0.05f, 36);
            } else {
                typename W::floats sum_x2(0.0f);
                for (int i = 0; i < sub_size; ++i) sum_x2 += W::mul(xs[i], xs[i]);
                const auto rms = W::sqrt(W::div(sum_x2, typename W::floats(float(sub_size))));
                for (int i = 0; i < sub_size; ++i) w[i] = rms + W::abs(xs[i]);
                fit = search::template scale_and_min<sub_size, false>(
                    xs, w, traits::nmax, traits::rmin, traits::rdelta, traits::nstep);
            }
            W::store(f.scale + g, fit.scale);
            W::store(f.min + g, fit.min);
            W::store(f.level_iscale + g, fit.level_iscale);
            W::store(f.level_min + g, fit.level_min);
        }
    }

    /// Step 2 of the reference quantizer: 6-bit levels against the largest scale and min.
    static void choose_scales_reference(int count, const fits& f, block* y) {
        for (int b = 0; b < count; ++b) {
            const float* scales = f.scale + b * sub_blocks;
            const float* mins = f.min + b * sub_blocks;
            float max_scale = 0;
            float max_min = 0;
            for (int j = 0; j < sub_blocks; ++j) {
                if (scales[j] > max_scale) max_scale = scales[j];
                if (mins[j] > max_min) max_min = mins[j];
            }
            const float inverse_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
            const float inverse_min = max_min > 0 ? 63.f / max_min : 0.f;
            std::uint8_t scale_levels[sub_blocks];
            std::uint8_t min_levels[sub_blocks];
            for (int j = 0; j < sub_blocks; ++j) {
                // Narrowed to 8 bits before the cap, as the reference does.
                const auto ls = std::uint8_t(strict::nearest_int(inverse_scale * scales[j]));
                const auto lm = std::uint8_t(strict::nearest_int(inverse_min * mins[j]));
                scale_levels[j] = ls < 63 ? ls : 63;
                min_levels[j] = lm < 63 ? lm : 63;
            }
            pack_scale_min(scale_levels, min_levels, y[b].scales);
            y[b].d = scalar<Arch>::float_to_half(max_scale / 63.f);
            y[b].dmin = scalar<Arch>::float_to_half(max_min / 63.f);
        }
    }

    /// Step 2 with importance: the weighted search of the 6-bit levels, one block per lane.
    static void choose_scales_weighted(int count, const fits& f, block* y) {
        for (int first = 0; first < count; first += L::count) {
            const int valid = count - first < L::count ? count - first : L::count;
            const float* scale_rows[L::count];
            const float* min_rows[L::count];
            const float* weight_rows[L::count];
            for (int lane = 0; lane < valid; ++lane) {
                scale_rows[lane] = f.scale + (first + lane) * sub_blocks;
                min_rows[lane] = f.min + (first + lane) * sub_blocks;
                weight_rows[lane] = f.weight + (first + lane) * sub_blocks;
            }
            transposed<Arch, sub_blocks> scales;
            transposed<Arch, sub_blocks> mins;
            transposed<Arch, sub_blocks> weights;
            scales.load(scale_rows, valid);
            mins.load(min_rows, valid);
            weights.load(weight_rows, valid);
            ints scale_levels[sub_blocks];
            ints min_levels[sub_blocks];
            alignas(64) float d[L::count];
            alignas(64) float dmin[L::count];
            L::store(d, block_search::template positive<sub_blocks>(scales.v, weights.v, 63,
                                                                    scale_levels));
            L::store(dmin, block_search::template positive<sub_blocks>(mins.v, weights.v, 63,
                                                                       min_levels));
            for (int lane = 0; lane < valid; ++lane) {
                std::int32_t ls[sub_blocks];
                std::int32_t lm[sub_blocks];
                L::extract_lane(scale_levels, sub_blocks, lane, ls);
                L::extract_lane(min_levels, sub_blocks, lane, lm);
                std::uint8_t scale_bytes[sub_blocks];
                std::uint8_t min_bytes[sub_blocks];
                for (int j = 0; j < sub_blocks; ++j) {
                    scale_bytes[j] = std::uint8_t(ls[j]);
                    min_bytes[j] = std::uint8_t(lm[j]);
                    if (traits::cap_weighted_levels) {
                        if (scale_bytes[j] > 63) scale_bytes[j] = 63;
                        if (min_bytes[j] > 63) min_bytes[j] = 63;
                    }
                }
                block& out = y[first + lane];
                pack_scale_min(scale_bytes, min_bytes, out.scales);
                out.d = scalar<Arch>::float_to_half(d[lane]);
                out.dmin = scalar<Arch>::float_to_half(dmin[lane]);
            }
        }
    }

    /// Step 3: every level against the scale and min as stored; a sub-block whose stored
    /// scale is zero keeps the levels of its search.
    static void requantize_and_pack(const float* x, const fits& f, int first_fit, block& y) {
        const float d = scalar<Arch>::half_to_float(y.d);
        const float dmin = scalar<Arch>::half_to_float(y.dmin);
        alignas(64) std::int32_t levels[values];
        for (int j = 0; j < sub_blocks; ++j) {
            int scale_level;
            int min_level;
            scalar<Arch>::unpack_scale_min_k4(j, y.scales, scale_level, min_level);
            const float scale = d * float(scale_level);
            const float* xs = x + sub_size * j;
            std::int32_t* ls = levels + sub_size * j;
            if (scale == 0) {
                const floats iscale(f.level_iscale[first_fit + j]);
                const floats min(f.level_min[first_fit + j]);
                for (int i = 0; i < sub_size; i += L::count) {
                    L::store(ls + i, block_search::scale_min_levels(L::load(xs + i), iscale, min,
                                                                    traits::nmax));
                }
                continue;
            }
            const floats step(scale);
            const floats offset(strict::mul(dmin, float(min_level)));
            for (int i = 0; i < sub_size; i += L::count) {
                const ints l = L::nearest_int(L::div(L::load(xs + i) + offset, step));
                L::store(ls + i, L::clamp(l, 0, traits::nmax));
            }
        }
        pack_levels(levels, y);
    }

    /// detail::pack_scale_min_k4.
    static void pack_scale_min(const std::uint8_t* scale_levels, const std::uint8_t* min_levels,
                               std::uint8_t* packed) {
        for (int j = 0; j < 4; ++j) {
            packed[j] = scale_levels[j];
            packed[j + 4] = min_levels[j];
        }
        for (int j = 4; j < 8; ++j) {
            packed[j + 4] = std::uint8_t((scale_levels[j] & 0xF) | ((min_levels[j] & 0xF) << 4));
            packed[j - 4] = std::uint8_t(packed[j - 4] | ((scale_levels[j] >> 4) << 6));
            packed[j] = std::uint8_t(packed[j] | ((min_levels[j] >> 4) << 6));
        }
    }

    /// Levels in value order -> nibbles (and fifth bits for q5_K); see the format headers.
    static void pack_levels(const std::int32_t* levels, block& y) {
        const ints nibble(0xF);
        for (int l = 0; l < 32; l += L::count) {
            ints fifth_bits(0);
            unrolled<4>([&](auto g) {
                const ints first = L::load(levels + 64 * g + l);
                const ints second = L::load(levels + 64 * g + 32 + l);
                L::store_bytes(y.qs + 32 * g + l, (first & nibble) | ((second & nibble) << 4));
                if constexpr (traits::has_fifth_bit) {
                    fifth_bits = fifth_bits | (((first >> 4) & ints(1)) << (2 * g)) |
                                 (((second >> 4) & ints(1)) << (2 * g + 1));
                }
            });
            if constexpr (traits::has_fifth_bit) L::store_bytes(y.qh + l, fifth_bits);
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
