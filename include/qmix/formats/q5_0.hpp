// SPDX-License-Identifier: MIT
#pragma once

// q5_0: blocks of 32 values, 22 bytes each.
//   d      binary16 scale (negative when the block's largest magnitude is positive)
//   qh[4]  the fifth (high) bit of each level: bit j of the little-endian 32-bit word
//          belongs to value j
//   qs[16] the low four bits of each level; byte j holds value j in its low nibble and
//          value j + 16 in its high nibble
// Value j is d * (q_j - 16) with q_j in [0, 31]: symmetric, no offset. The reference
// quantizer maps the value of largest magnitude to level 0 exactly; the
// importance-weighted one searches for the scale that best fits the weighted values.

#include <cmath>
#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/detail/row_of_blocks.hpp"
#include "qmix/formats/detail/scale_search.hpp"
#include "qmix/formats/q8_0.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q5_0 {
    std::uint16_t d;
    std::uint8_t qh[4];  ///< fifth bits
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q5_0) == 22, "block_q5_0 must match ggml's layout");

struct q5_0 {
    using block = block_q5_0;
    using partner_block = block_q8_0;
    static constexpr type_id id = type_id::q5_0;
    static constexpr std::string_view name = "q5_0";
    static constexpr std::size_t block_size = 32;
    static constexpr type_id dot_partner = type_id::q8_0;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q5_0" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 8;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        detail::quantize_row_of_blocks<q5_0>(x, y, n, importance);
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(x[ib].d);
            float* out = y + ib * std::int64_t(block_size);
            for (std::size_t j = 0; j < block_size; ++j) {
                out[j] = float(detail::five_bit_level(x[ib], j) - 16) * d;
            }
        }
    }

    /// Integer dot product per block, scaled by the product of both block scales and
    /// summed in binary32 block after block, in the order of ggml's scalar kernel.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0.0f;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            int sum_q = 0;
            for (std::size_t j = 0; j < block_size; ++j) {
                sum_q += (detail::five_bit_level(x[ib], j) - 16) * y[ib].qs[j];
            }
            const float scale = half_to_float(x[ib].d) * half_to_float(y[ib].d);
            sum += strict::mul(scale, float(sum_q));
        }
        return sum;
    }

    /// ggml's quantize_row_q5_0_ref for one block. The signed value of largest magnitude
    /// gets d = max / -16, i.e. level 0; adding 16.5 and truncating rounds half up, and
    /// the opposite extreme (level 32) is clipped to 31.
    static void quantize_block_reference(const float* x, block& y) {
        float amax = 0.0f;
        float max = 0.0f;
        for (std::size_t j = 0; j < block_size; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float inverse_d = d != 0.0f ? 1.0f / d : 0.0f;
        y.d = float_to_half(d);
        std::uint8_t levels[block_size];
        for (std::size_t j = 0; j < block_size; ++j) {
            const int truncated =
                std::int8_t(strict::truncate_to_int(strict::mul(x[j], inverse_d) + 16.5f));
            levels[j] = std::uint8_t(truncated < 31 ? truncated : 31);
        }
        detail::pack_five_bit_levels(levels, y);
    }

    /// ggml's quantize_row_q5_0_impl for one block: the weighted symmetric search with
    /// 16 levels each side (make_qx_quants with rmse_type 1).
    static void quantize_block_weighted(const float* x, const float* importance, float sigma2,
                                        block& y) {
        std::int8_t signed_levels[block_size];
        y.d = detail::search_weighted_symmetric(x, importance, sigma2, 16, signed_levels);
        std::uint8_t levels[block_size];
        for (std::size_t j = 0; j < block_size; ++j) levels[j] = std::uint8_t(signed_levels[j]);
        detail::pack_five_bit_levels(levels, y);
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
