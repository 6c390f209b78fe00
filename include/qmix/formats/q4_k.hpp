// SPDX-License-Identifier: MIT
#pragma once

// q4_k: super-blocks of 256 values, 144 bytes each, made of 8 sub-blocks of 32 values.
//   d, dmin     binary16 steps of the sub-block scales and of the sub-block minimums
//   scales[12]  one 6-bit scale level and one 6-bit min level per sub-block, packed
//               (detail::pack_scale_min_k4 below)
//   qs[128]     4-bit levels in groups of 32 bytes: byte l of group g holds value 64g + l
//               in its low nibble and value 64g + 32 + l in its high nibble
// Value i of sub-block j is  d * scale_j * q_i - dmin * min_j,  with q_i in [0, 15].
// q5_k shares everything but the level width, so the shared steps live in detail:: here.
// The dot partner is q8_k; its per-16 sums (bsums) carry the minimum term of the product.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/detail/scale_search.hpp"
#include "qmix/formats/q8_k.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q4_k {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];  ///< 6-bit scales and mins, packed
    std::uint8_t qs[128];
};
static_assert(sizeof(block_q4_k) == 144, "block_q4_k must match ggml's layout");

QMIX_ABI_END
namespace detail {
QMIX_ABI_BEGIN

// The steps below are common to q4_k and q5_k. Block is block_q4_k or block_q5_k: both
// start with the fields d, dmin and scales[12], which is all these steps touch.

inline constexpr int k4_values = 256;
inline constexpr int k4_sub_blocks = 8;
inline constexpr int k4_sub_block_size = 32;

/// Packs eight 6-bit scale levels and eight 6-bit min levels into 12 bytes. Sub-blocks 0-3
/// keep all six bits, in bytes 0-3 (scales) and 4-7 (mins). Sub-blocks 4-7 put their low
/// four bits in bytes 8-11 (scale in the low nibble, min in the high one) and their top two
/// bits in the spare top bits of bytes 0-3 and 4-7. unpack_scale_min_k4 reads it back.
/// Levels are stored unmasked, as ggml stores them: the callers keep them at most 63.
inline void pack_scale_min_k4(const std::uint8_t* scale_levels, const std::uint8_t* min_levels,
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

/// How a format searches its sub-block scales: the top level, and for the reference
/// quantizer the trial scales (nmax + rmin + rdelta * k, k = 0..nstep) over the range.
/// q5_k's weighted quantizer caps the 6-bit levels at 63 once more, q4_k's does not; the
/// cap only matters when a scale came out negative and its level wrapped around.
struct k4_search {
    int nmax;
    float rmin;
    float rdelta;
    int nstep;
    bool cap_weighted_levels;
};

/// ggml's reference choice (quantize_row_q4_K_ref / q5_K_ref): each sub-block gets its
/// own scale and min, weighted by rms + |x|; then both sets are quantized to 6 bits
/// against their largest member. Fills d, dmin, scales and a first guess of the levels.
template <class Block>
void choose_scales_reference_k4(const float* x, Block& y, std::uint8_t* levels,
                                const k4_search& search) {
    float scales[k4_sub_blocks];
    float mins[k4_sub_blocks];
    float weights[k4_sub_block_size];
    std::uint8_t scratch[k4_sub_block_size];
    float max_scale = 0;  // scales come out non-negative once the min is taken out
    float max_min = 0;
    for (int j = 0; j < k4_sub_blocks; ++j) {
        const float* xs = x + k4_sub_block_size * j;
        float sum_x2 = 0;
        for (int l = 0; l < k4_sub_block_size; ++l) sum_x2 += mul(xs[l], xs[l]);
        const float rms = std::sqrt(sum_x2 / k4_sub_block_size);
        for (int l = 0; l < k4_sub_block_size; ++l) weights[l] = rms + std::fabs(xs[l]);
        scales[j] = search_scale_and_min(k4_sub_block_size, search.nmax, xs, weights,
                                         levels + k4_sub_block_size * j, &mins[j], scratch,
                                         search.rmin, search.rdelta, search.nstep, false);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inverse_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inverse_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::uint8_t scale_levels[k4_sub_blocks];
    std::uint8_t min_levels[k4_sub_blocks];
    for (int j = 0; j < k4_sub_blocks; ++j) {
        // The level is narrowed to 8 bits before the cap, as in ggml (a negative one wraps).
        const auto ls = std::uint8_t(nearest_int(inverse_scale * scales[j]));
        const auto lm = std::uint8_t(nearest_int(inverse_min * mins[j]));
        scale_levels[j] = std::min<std::uint8_t>(63, ls);
        min_levels[j] = std::min<std::uint8_t>(63, lm);
    }
    pack_scale_min_k4(scale_levels, min_levels, y.scales);
    y.d = float_to_half(max_scale / 63.f);
    y.dmin = float_to_half(max_min / 63.f);
}

/// ggml's importance-weighted choice (quantize_row_q4_K_impl / q5_K_impl): the weights are
/// importance * sqrt(2 * mean(x^2) + x^2), the trial scales are finer, and the 6-bit
/// levels of the sub-block scales and mins come from their own weighted search, each
/// sub-block weighing as much as the sum of its weights.
template <class Block>
void choose_scales_weighted_k4(const float* x, const float* importance, Block& y,
                               std::uint8_t* levels, const k4_search& search) {
    float sum_x2 = 0;
    for (int l = 0; l < k4_values; ++l) sum_x2 += mul(x[l], x[l]);
    const float sigma2 = 2 * sum_x2 / k4_values;

    float scales[k4_sub_blocks];
    float mins[k4_sub_blocks];
    float sub_block_weights[k4_sub_blocks];
    float weights[k4_sub_block_size];
    std::uint8_t scratch[k4_sub_block_size];
    for (int j = 0; j < k4_sub_blocks; ++j) {
        const float* xs = x + k4_sub_block_size * j;
        const float* importance_s = importance + k4_sub_block_size * j;
        for (int l = 0; l < k4_sub_block_size; ++l) {
            weights[l] = mul(importance_s[l], std::sqrt(sigma2 + mul(xs[l], xs[l])));
        }
        float sum_w = 0;
        for (int l = 0; l < k4_sub_block_size; ++l) sum_w += weights[l];
        sub_block_weights[j] = sum_w;
        scales[j] = search_scale_and_min(k4_sub_block_size, search.nmax, xs, weights,
                                         levels + k4_sub_block_size * j, &mins[j], scratch, -0.9f,
                                         0.05f, 36, false);
    }
    std::uint8_t scale_levels[k4_sub_blocks];
    std::uint8_t min_levels[k4_sub_blocks];
    const float d =
        search_positive_scale(k4_sub_blocks, 63, scales, scale_levels, sub_block_weights);
    const float dmin =
        search_positive_scale(k4_sub_blocks, 63, mins, min_levels, sub_block_weights);
    if (search.cap_weighted_levels) {
        for (int j = 0; j < k4_sub_blocks; ++j) {
            scale_levels[j] = std::min<std::uint8_t>(63, scale_levels[j]);
            min_levels[j] = std::min<std::uint8_t>(63, min_levels[j]);
        }
    }
    pack_scale_min_k4(scale_levels, min_levels, y.scales);
    y.d = float_to_half(d);
    y.dmin = float_to_half(dmin);
}

/// Recomputes the levels against the scales and mins as stored (binary16 steps times
/// 6-bit levels), so that they fit what a reader will see. A sub-block whose stored scale
/// is zero keeps the levels of its search.
template <class Block>
void requantize_levels_k4(const float* x, const Block& y, int nmax, std::uint8_t* levels) {
    const float d = half_to_float(y.d);
    const float dmin = half_to_float(y.dmin);
    for (int j = 0; j < k4_sub_blocks; ++j) {
        std::uint8_t scale_level;
        std::uint8_t min_level;
        unpack_scale_min_k4(j, y.scales, &scale_level, &min_level);
        const float scale = d * float(scale_level);
        if (scale == 0) continue;
        const float offset = mul(dmin, float(min_level));
        const float* xs = x + k4_sub_block_size * j;
        std::uint8_t* ls = levels + k4_sub_block_size * j;
        for (int l = 0; l < k4_sub_block_size; ++l) {
            ls[l] = std::uint8_t(clamp_level(nearest_int((xs[l] + offset) / scale), 0, nmax));
        }
    }
}

/// Scales, mins and levels (in value order) of one super-block of 256 values; importance
/// is null for the reference quantizer, else the 256 weights of this super-block.
template <class Block>
void quantize_block_k4(const float* x, const float* importance, Block& y, std::uint8_t* levels,
                       const k4_search& search) {
    if (importance) {
        choose_scales_weighted_k4(x, importance, y, levels, search);
    } else {
        choose_scales_reference_k4(x, y, levels, search);
    }
    requantize_levels_k4(x, y, search.nmax, levels);
}

/// Values of one super-block from its levels (in value order). The two products are
/// rounded apart, as in ggml, before the subtraction.
template <class Block>
void dequantize_block_k4(const Block& x, const std::uint8_t* levels, float* y) {
    const float d = half_to_float(x.d);
    const float dmin = half_to_float(x.dmin);
    for (int j = 0; j < k4_sub_blocks; ++j) {
        std::uint8_t scale_level;
        std::uint8_t min_level;
        unpack_scale_min_k4(j, x.scales, &scale_level, &min_level);
        const float scale = d * float(scale_level);
        const float offset = mul(dmin, float(min_level));
        const int first = k4_sub_block_size * j;
        for (int l = first; l < first + k4_sub_block_size; ++l) {
            y[l] = mul(scale, float(levels[l])) - offset;
        }
    }
}

/// One super-block's share of a dot product with q8_k, given its levels in value order.
/// Everything is summed in integers first: the scaled level products, and the mins
/// against q8_k's sums of 16 levels, so only the two block scales meet floating point.
template <class Block>
float dot_block_k4(const Block& x, const block_q8_k& y, const std::uint8_t* levels) {
    std::int32_t sum_scaled = 0;
    std::int32_t sum_mins = 0;
    for (int j = 0; j < k4_sub_blocks; ++j) {
        std::uint8_t scale_level;
        std::uint8_t min_level;
        unpack_scale_min_k4(j, x.scales, &scale_level, &min_level);
        const int first = k4_sub_block_size * j;
        std::int32_t sum_q = 0;
        for (int l = first; l < first + k4_sub_block_size; ++l) sum_q += levels[l] * y.qs[l];
        sum_scaled += scale_level * sum_q;
        sum_mins += min_level * (y.bsums[2 * j] + y.bsums[2 * j + 1]);
    }
    const float d = half_to_float(x.d) * y.d;
    const float dmin = half_to_float(x.dmin) * y.d;
    return mul(d, float(sum_scaled)) - mul(dmin, float(sum_mins));
}

QMIX_ABI_END
}  // namespace detail
QMIX_ABI_BEGIN

struct q4_k {
    using block = block_q4_k;
    using partner_block = block_q8_k;
    static constexpr type_id id = type_id::q4_k;
    static constexpr std::string_view name = "q4_k";
    static constexpr std::size_t block_size = 256;
    static constexpr type_id dot_partner = type_id::q8_k;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q4_k" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 12;
    /// What a row length this format cannot hold is stored as instead (ggml's tools).
    static constexpr type_id fallback = type_id::q5_0;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const std::int64_t first = ib * std::int64_t(block_size);
            std::uint8_t levels[block_size];
            detail::quantize_block_k4(x + first, importance ? importance + first : nullptr, y[ib],
                                      levels, search);
            pack_levels(levels, y[ib]);
        }
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            std::uint8_t levels[block_size];
            unpack_levels(x[ib], levels);
            detail::dequantize_block_k4(x[ib], levels, y + ib * std::int64_t(block_size));
        }
    }

    /// Blocks are summed in binary32, one after the other.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            std::uint8_t levels[block_size];
            unpack_levels(x[ib], levels);
            sum += detail::dot_block_k4(x[ib], y[ib], levels);
        }
        return sum;
    }

  private:
    static constexpr detail::k4_search search{15, -1.f, 0.1f, 20, false};

    /// Levels in value order -> nibbles: groups of 64 values share 32 bytes.
    static void pack_levels(const std::uint8_t* levels, block& y) {
        for (std::size_t g = 0; g < block_size / 64; ++g) {
            const std::uint8_t* low = levels + 64 * g;
            std::uint8_t* q = y.qs + 32 * g;
            for (int l = 0; l < 32; ++l) q[l] = std::uint8_t(low[l] | (low[l + 32] << 4));
        }
    }

    static void unpack_levels(const block& x, std::uint8_t* levels) {
        for (std::size_t g = 0; g < block_size / 64; ++g) {
            const std::uint8_t* q = x.qs + 32 * g;
            std::uint8_t* out = levels + 64 * g;
            for (int l = 0; l < 32; ++l) {
                out[l] = q[l] & 0xF;
                out[l + 32] = q[l] >> 4;
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
