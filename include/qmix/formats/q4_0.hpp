// SPDX-License-Identifier: MIT
#pragma once

// q4_0: blocks of 32 values, 18 bytes each.
//   d      binary16 scale (negative when the block's largest magnitude is positive)
//   qs[16] 4-bit levels q in [0, 15]; byte j holds value j in its low nibble and value
//          j + 16 in its high nibble
// Value j is d * (q_j - 8): symmetric around zero, no offset. The reference quantizer maps
// the value of largest magnitude to level 0 exactly; the importance-weighted one searches
// for the scale that best fits the weighted values.

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

struct block_q4_0 {
    std::uint16_t d;      ///< scale, binary16
    std::uint8_t qs[16];  ///< 4-bit levels, two per byte
};
static_assert(sizeof(block_q4_0) == 18, "block_q4_0 must match ggml's layout");

struct q4_0 {
    using block = block_q4_0;
    using partner_block = block_q8_0;
    static constexpr type_id id = type_id::q4_0;
    static constexpr std::string_view name = "q4_0";
    static constexpr std::size_t block_size = 32;
    static constexpr type_id dot_partner = type_id::q8_0;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q4_0" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 2;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        detail::quantize_row_of_blocks<q4_0>(x, y, n, importance);
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(x[ib].d);
            float* out = y + ib * std::int64_t(block_size);
            for (std::size_t j = 0; j < block_size / 2; ++j) {
                out[j] = float((x[ib].qs[j] & 0x0F) - 8) * d;
                out[j + block_size / 2] = float((x[ib].qs[j] >> 4) - 8) * d;
            }
        }
    }

    /// Integer dot product per block, scaled by both block scales and summed in binary32
    /// block after block, in the order of ggml's scalar kernel.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0.0f;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            int sum_q = 0;
            for (std::size_t j = 0; j < block_size / 2; ++j) {
                sum_q += ((x[ib].qs[j] & 0x0F) - 8) * y[ib].qs[j];
                sum_q += ((x[ib].qs[j] >> 4) - 8) * y[ib].qs[j + block_size / 2];
            }
            const float scaled = float(sum_q) * half_to_float(x[ib].d);
            sum += strict::mul(scaled, half_to_float(y[ib].d));
        }
        return sum;
    }

    /// ggml's quantize_row_q4_0_ref for one block. The signed value of largest magnitude
    /// gets d = max / -8, i.e. level 0; adding 8.5 and truncating rounds half up, and the
    /// opposite extreme (level 16) is clipped to 15.
    static void quantize_block_reference(const float* x, block& y) {
        float amax = 0.0f;
        float max = 0.0f;
        for (std::size_t j = 0; j < block_size; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float inverse_d = d != 0.0f ? 1.0f / d : 0.0f;
        y.d = float_to_half(d);
        auto level = [&](float value) {
            const int truncated =
                std::int8_t(strict::truncate_to_int(strict::mul(value, inverse_d) + 8.5f));
            return std::uint8_t(truncated < 15 ? truncated : 15);
        };
        for (std::size_t j = 0; j < block_size / 2; ++j) {
            y.qs[j] = std::uint8_t(level(x[j]) | (level(x[j + block_size / 2]) << 4));
        }
    }

    /// ggml's quantize_row_q4_0_impl for one block: the weighted symmetric search with
    /// 8 levels each side (make_qx_quants with rmse_type 1).
    static void quantize_block_weighted(const float* x, const float* importance, float sigma2,
                                        block& y) {
        std::int8_t levels[block_size];
        y.d = detail::search_weighted_symmetric(x, importance, sigma2, 8, levels);
        for (std::size_t j = 0; j < block_size / 2; ++j) {
            y.qs[j] = std::uint8_t(levels[j] | (levels[j + block_size / 2] << 4));
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
