// SPDX-License-Identifier: MIT
#pragma once

// q3_K: 256 values per block, about 3.4 bits each, symmetric (no min). The block is cut into
// 16 groups of 16 values; value v of group g is stored as a level L in -4..3 and read back as
//     d * (scale[g] - 32) * L
// where d is binary16 and scale[g] a 6-bit integer. The level is kept as L + 4 in three
// bits, split in two places:
//   - qs: the low two bits, packed like q2_K (two halves of 128 values; byte k of a half
//     holds values k, k + 32, k + 64, k + 96 of that half at bit offsets 0, 2, 4, 6);
//   - hmask: the third bit; bit b of byte k belongs to value 32 * b + k.
// The sixteen 6-bit scales take 12 bytes: the low nibbles of scales 0..7 sit in the low
// nibbles of bytes 0..7 and those of scales 8..15 in the high nibbles of the same bytes;
// the top two bits of scale g sit in byte 8 + g % 4 at bit offset 2 * (g / 4).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/detail/scale_search.hpp"
#include "qmix/formats/q8_k.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q3_k {
    std::uint8_t hmask[32];   ///< third bits
    std::uint8_t qs[64];      ///< low two bits
    std::uint8_t scales[12];  ///< 6-bit scales, packed
    std::uint16_t d;
};
static_assert(sizeof(block_q3_k) == 110, "block_q3_k must match ggml's layout");

struct q3_k {
    using block = block_q3_k;
    using partner_block = block_q8_k;
    static constexpr type_id id = type_id::q3_k;
    static constexpr std::string_view name = "q3_k";
    static constexpr std::size_t block_size = 256;
    static constexpr type_id dot_partner = type_id::q8_k;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q3_k" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 11;
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
            float* out = y + b * std::int64_t(block_size);
            for (int group = 0; group < groups; ++group) {
                const float step = d * float(scale_at(blk.scales, group) - scale_bias);
                for (int i = 0; i < group_size; ++i) {
                    const int index = group * group_size + i;
                    out[index] = step * float(level_at(blk, index));
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
            // At most 256 * 127 * 4 * 32 in magnitude: an int holds the whole block exactly.
            int block_sum = 0;
            for (int group = 0; group < groups; ++group) {
                int group_sum = 0;
                for (int i = 0; i < group_size; ++i) {
                    const int index = group * group_size + i;
                    group_sum += int(act.qs[index]) * level_at(blk, index);
                }
                block_sum += (scale_at(blk.scales, group) - scale_bias) * group_sum;
            }
            const float d = half_to_float(blk.d) * act.d;
            sum += strict::mul(d, float(block_sum));
        }
        return sum;
    }

  private:
    static constexpr int group_size = 16;
    static constexpr int groups = int(block_size) / group_size;
    /// Levels run over -level_bias .. level_bias - 1 and are stored plus level_bias.
    static constexpr int level_bias = 4;
    /// 6-bit scales run over -scale_bias .. scale_bias - 1 and are stored plus scale_bias.
    static constexpr int scale_bias = 32;

    /// Signed level (-4..3) of value `index` (0..255) of a block; see the layout at the top.
    static int level_at(const block& blk, int index) {
        const int half = index / 128;
        const int within = index % 128;
        const int low = (blk.qs[32 * half + within % 32] >> (2 * (within / 32))) & 3;
        const bool high = (blk.hmask[index % 32] >> (index / 32)) & 1;
        return high ? low : low - level_bias;
    }

    /// Stored (biased, 0..63) scale of group `group`.
    static int scale_at(const std::uint8_t* scales, int group) {
        const int low = group < 8 ? scales[group] & 0xF : scales[group - 8] >> 4;
        const int high = (scales[8 + group % 4] >> (2 * (group / 4))) & 3;
        return low | (high << 4);
    }

    /// Stores the biased scale `value` (0..63) of group `group`; `scales` starts zeroed.
    static void store_scale(std::uint8_t* scales, int group, int value) {
        if (group < 8) {
            scales[group] = std::uint8_t(scales[group] | (value & 0xF));
        } else {
            scales[group - 8] = std::uint8_t(scales[group - 8] | ((value & 0xF) << 4));
        }
        scales[8 + group % 4] =
            std::uint8_t(scales[8 + group % 4] | ((value >> 4) << (2 * (group / 4))));
    }

    /// ggml's quantize_row_q3_K_ref for one block: each group's scale comes from the greedy
    /// x^2-weighted search, then the 16 scales are quantized to 6 bits against the one of
    /// largest magnitude (whose sign d takes, so that it lands on -32).
    static void quantize_block(const float* x, block& y) {
        std::int8_t levels[block_size];
        float scales[groups];
        float max_scale = 0;
        float max_magnitude = 0;
        for (int group = 0; group < groups; ++group) {
            scales[group] = detail::search_symmetric_scale_greedy(
                group_size, level_bias, x + group * group_size, levels + group * group_size, true);
            const float magnitude = std::fabs(scales[group]);
            if (magnitude > max_magnitude) {
                max_magnitude = magnitude;
                max_scale = scales[group];
            }
        }

        std::memset(y.scales, 0, sizeof y.scales);
        if (max_scale != 0) {
            const float inverse = -float(scale_bias) / max_scale;
            for (int group = 0; group < groups; ++group) {
                // ggml narrows to int8 before clamping; |inverse * scale| <= 32 keeps that exact.
                const int l = std::int8_t(strict::nearest_int(inverse * scales[group]));
                store_scale(y.scales, group,
                            detail::clamp_level(l, -scale_bias, scale_bias - 1) + scale_bias);
            }
            y.d = float_to_half(1 / inverse);
        } else {
            y.d = float_to_half(0.f);
        }

        requantize(x, y, levels);
        pack_levels(levels, y);
    }

    /// ggml's quantize_row_q3_K_impl (with importance) for one block: the group fits and the
    /// fit of the 16 scales themselves are importance-weighted least-squares searches.
    static void quantize_block_weighted(const float* x, const float* importance, block& y) {
        std::int8_t levels[block_size];
        float scales[groups];
        float weights[group_size];
        float group_weights[groups];
        std::int8_t packed_scales[groups];

        float sum_x2 = 0;
        for (int i = 0; i < int(block_size); ++i) sum_x2 += strict::mul(x[i], x[i]);
        const float sigma2 = 2 * sum_x2 / float(block_size);

        for (int group = 0; group < groups; ++group) {
            const float* xg = x + group * group_size;
            const float* wg = importance + group * group_size;
            for (int i = 0; i < group_size; ++i) {
                // strict::mul: the weights are summed below, and a compiler may fuse a product
                // with a later addition even across statements.
                weights[i] = strict::mul(wg[i], std::sqrt(sigma2 + strict::mul(xg[i], xg[i])));
            }
            float weight_sum = 0;
            for (int i = 0; i < group_size; ++i) weight_sum += weights[i];
            group_weights[group] = weight_sum;
            scales[group] = detail::search_symmetric_scale(group_size, level_bias, xg,
                                                           levels + group * group_size, 1, weights);
        }

        std::memset(y.scales, 0, sizeof y.scales);
        const float d = detail::search_symmetric_scale(groups, scale_bias, scales, packed_scales, 1,
                                                       group_weights);
        for (int group = 0; group < groups; ++group) {
            store_scale(y.scales, group, packed_scales[group]);
        }
        y.d = float_to_half(d);

        requantize(x, y, levels);
        pack_levels(levels, y);
    }

    /// Recomputes every level (stored plus 4) against the scales as stored, binary16 and
    /// 6-bit. A group whose stored scale is zero keeps the levels of its search.
    static void requantize(const float* x, const block& y, std::int8_t* levels) {
        const float d = half_to_float(y.d);
        for (int group = 0; group < groups; ++group) {
            const float step = d * float(scale_at(y.scales, group) - scale_bias);
            if (step == 0) continue;
            for (int i = 0; i < group_size; ++i) {
                const int index = group * group_size + i;
                const int l = strict::nearest_int(x[index] / step);
                levels[index] =
                    std::int8_t(detail::clamp_level(l, -level_bias, level_bias - 1) + level_bias);
            }
        }
    }

    /// Splits the biased levels (0..7) into the high-bit mask and the packed low two bits.
    static void pack_levels(const std::int8_t* levels, block& y) {
        std::memset(y.hmask, 0, sizeof y.hmask);
        std::uint8_t low[block_size];
        for (int index = 0; index < int(block_size); ++index) {
            int l = levels[index];
            if (l > 3) {
                y.hmask[index % 32] = std::uint8_t(y.hmask[index % 32] | (1 << (index / 32)));
                l -= 4;
            }
            low[index] = std::uint8_t(l);
        }
        for (int half = 0; half < 2; ++half) {
            const std::uint8_t* src = low + 128 * half;
            for (int k = 0; k < 32; ++k) {
                y.qs[32 * half + k] = std::uint8_t(src[k] | (src[k + 32] << 2) |
                                                   (src[k + 64] << 4) | (src[k + 96] << 6));
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
