// SPDX-License-Identifier: MIT
#pragma once

// q2_K: 256 values per block, about 2.6 bits each. The block is cut into 16 groups of 16
// values; value v of group g is stored as a level L in 0..3 and read back as
//     d * scale[g] * L - dmin * min[g]
// where d and dmin are binary16 and scale[g], min[g] are 4-bit integers, packed as one byte
// per group (scale in the low nibble, min in the high nibble). The 2-bit levels are packed
// four to a byte: the block is two halves of 128 values, and byte k (0..31) of a half holds
// the values k, k + 32, k + 64 and k + 96 of that half at bit offsets 0, 2, 4 and 6.

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

struct block_q2_k {
    std::uint8_t scales[16];  ///< 4-bit scale and 4-bit min per 16 values
    std::uint8_t qs[64];
    std::uint16_t d;
    std::uint16_t dmin;
};
static_assert(sizeof(block_q2_k) == 84, "block_q2_k must match ggml's layout");

struct q2_k {
    using block = block_q2_k;
    using partner_block = block_q8_k;
    static constexpr type_id id = type_id::q2_k;
    static constexpr std::string_view name = "q2_k";
    static constexpr std::size_t block_size = 256;
    static constexpr type_id dot_partner = type_id::q8_k;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q2_k" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 10;
    /// What a row length this format cannot hold is stored as instead (ggml's tools).
    static constexpr type_id fallback = type_id::q4_0;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        const std::int64_t blocks = n / std::int64_t(block_size);
        for (std::int64_t b = 0; b < blocks; ++b) {
            const float* values = x + b * std::int64_t(block_size);
            if (importance) {
                quantize_block_weighted(values, importance + b * std::int64_t(block_size), y[b]);
            } else {
                quantize_block(values, y[b]);
            }
        }
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t blocks = n / std::int64_t(block_size);
        for (std::int64_t b = 0; b < blocks; ++b) {
            const block& blk = x[b];
            const float d = half_to_float(blk.d);
            const float dmin = half_to_float(blk.dmin);
            float* out = y + b * std::int64_t(block_size);
            for (int group = 0; group < groups; ++group) {
                const std::uint8_t packed = blk.scales[group];
                const float step = d * float(packed & 0xF);
                // Both products are rounded before the subtraction, as in ggml: a fused
                // multiply-subtract would change the last bit.
                const float offset = strict::mul(dmin, float(packed >> 4));
                for (int i = 0; i < group_size; ++i) {
                    const int index = group * group_size + i;
                    out[index] = strict::mul(step, float(level_at(blk.qs, index))) - offset;
                }
            }
        }
    }

    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t blocks = n / std::int64_t(block_size);
        float sum = 0;
        for (std::int64_t b = 0; b < blocks; ++b) {
            const block& blk = x[b];
            const partner_block& act = y[b];
            // The min term needs only the partner's per-group sums: sum(q8 * m) = m * sum(q8).
            int min_sum = 0;
            int scaled_sum = 0;
            for (int group = 0; group < groups; ++group) {
                const std::uint8_t packed = blk.scales[group];
                min_sum += int(act.bsums[group]) * int(packed >> 4);
                int group_sum = 0;
                for (int i = 0; i < group_size; ++i) {
                    const int index = group * group_size + i;
                    group_sum += int(act.qs[index]) * level_at(blk.qs, index);
                }
                scaled_sum += int(packed & 0xF) * group_sum;
            }
            const float d = act.d * half_to_float(blk.d);
            const float dmin = act.d * half_to_float(blk.dmin);
            sum += strict::mul(d, float(scaled_sum)) - strict::mul(dmin, float(min_sum));
        }
        return sum;
    }

  private:
    static constexpr int group_size = 16;
    static constexpr int groups = int(block_size) / group_size;
    static constexpr int max_level = 3;
    /// Largest 4-bit sub-block scale or min.
    static constexpr float max_packed_scale = 15.f;

    /// 2-bit level of value `index` (0..255) of a block; see the layout at the top.
    static int level_at(const std::uint8_t* qs, int index) {
        const int half = index / 128;
        const int within = index % 128;
        return (qs[32 * half + within % 32] >> (2 * (within / 32))) & 3;
    }

    static void pack_levels(const std::uint8_t* levels, std::uint8_t* qs) {
        for (int half = 0; half < 2; ++half) {
            const std::uint8_t* src = levels + 128 * half;
            for (int k = 0; k < 32; ++k) {
                qs[32 * half + k] = std::uint8_t(src[k] | (src[k + 32] << 2) | (src[k + 64] << 4) |
                                                 (src[k + 96] << 6));
            }
        }
    }

    /// ggml's quantize_row_q2_K_ref for one block. Each group gets its own scale and min,
    /// fitted with weights |x|, then both are quantized to 4 bits against the block's
    /// largest scale and largest min.
    static void quantize_block(const float* x, block& y) {
        std::uint8_t levels[block_size];
        std::uint8_t scratch[group_size];
        float weights[group_size];
        float scales[groups];
        float mins[groups];
        float max_scale = 0;  // scales are never negative once the min is taken out
        float max_min = 0;
        for (int group = 0; group < groups; ++group) {
            const float* xg = x + group * group_size;
            for (int i = 0; i < group_size; ++i) weights[i] = std::fabs(xg[i]);
            scales[group] = detail::search_scale_and_min(group_size, max_level, xg, weights,
                                                         levels + group * group_size, &mins[group],
                                                         scratch, -0.5f, 0.1f, 15, true);
            if (scales[group] > max_scale) max_scale = scales[group];
            if (mins[group] > max_min) max_min = mins[group];
        }

        if (max_scale > 0) {
            const float inverse = max_packed_scale / max_scale;
            for (int group = 0; group < groups; ++group) {
                y.scales[group] = std::uint8_t(strict::nearest_int(inverse * scales[group]));
            }
            y.d = float_to_half(max_scale / max_packed_scale);
        } else {
            std::fill(y.scales, y.scales + groups, std::uint8_t(0));
            y.d = float_to_half(0.f);
        }
        if (max_min > 0) {
            const float inverse = max_packed_scale / max_min;
            for (int group = 0; group < groups; ++group) {
                const int packed_min = strict::nearest_int(inverse * mins[group]);
                y.scales[group] = std::uint8_t(y.scales[group] | (unsigned(packed_min) << 4));
            }
            y.dmin = float_to_half(max_min / max_packed_scale);
        } else {
            y.dmin = float_to_half(0.f);
        }

        requantize(x, y, levels);
        pack_levels(levels, y.qs);
    }

    /// ggml's quantize_row_q2_K_impl for one block: the group fits are weighted by the
    /// importance times sqrt(sigma^2 + x^2), and the 4-bit scales and mins come from a
    /// weighted search of their own instead of a plain division by the largest one.
    static void quantize_block_weighted(const float* x, const float* importance, block& y) {
        std::uint8_t levels[block_size];
        std::uint8_t scratch[group_size];
        float weights[group_size];
        float scales[groups];
        float mins[groups];
        float group_weights[groups] = {};
        std::uint8_t packed_scales[groups];
        std::uint8_t packed_mins[groups];

        float sum_x2 = 0;
        for (int i = 0; i < int(block_size); ++i) sum_x2 += strict::mul(x[i], x[i]);
        const float sigma2 = sum_x2 / float(block_size);

        for (int group = 0; group < groups; ++group) {
            const float* xg = x + group * group_size;
            const float* wg = importance + group * group_size;
            for (int i = 0; i < group_size; ++i) {
                // strict::mul: the weights are summed below, and a compiler may fuse a product
                // with a later addition even across statements.
                weights[i] = strict::mul(wg[i], std::sqrt(sigma2 + strict::mul(xg[i], xg[i])));
            }
            for (int i = 0; i < group_size; ++i) group_weights[group] += weights[i];
            scales[group] = detail::search_scale_and_min(group_size, max_level, xg, weights,
                                                         levels + group * group_size, &mins[group],
                                                         scratch, -0.9f, 0.05f, 36, false);
        }

        const float d = detail::search_positive_scale(groups, int(max_packed_scale), scales,
                                                      packed_scales, group_weights);
        const float dmin = detail::search_positive_scale(groups, int(max_packed_scale), mins,
                                                         packed_mins, group_weights);
        y.d = float_to_half(d);
        y.dmin = float_to_half(dmin);
        for (int group = 0; group < groups; ++group) {
            y.scales[group] = std::uint8_t(packed_scales[group] | (packed_mins[group] << 4));
        }

        requantize(x, y, levels);
        pack_levels(levels, y.qs);
    }

    /// Recomputes every level against the scales as stored (binary16 and 4-bit), so that
    /// the levels fit what dequantization will actually multiply by. A group whose stored
    /// scale is zero keeps the levels of its search.
    static void requantize(const float* x, const block& y, std::uint8_t* levels) {
        const float d = half_to_float(y.d);
        const float dmin = half_to_float(y.dmin);
        for (int group = 0; group < groups; ++group) {
            const float step = d * float(y.scales[group] & 0xF);
            if (step == 0) continue;
            const float offset = strict::mul(dmin, float(y.scales[group] >> 4));  // added to x
            for (int i = 0; i < group_size; ++i) {
                const int index = group * group_size + i;
                const int l = strict::nearest_int((x[index] + offset) / step);
                levels[index] = std::uint8_t(detail::clamp_level(l, 0, max_level));
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
