// SPDX-License-Identifier: MIT
#pragma once

// q4_1: blocks of 32 values, 20 bytes each.
//   d      binary16 step between levels
//   m      binary16 offset: the value of level 0 (the block minimum for the reference
//          quantizer, at most zero for the importance-weighted one)
//   qs[16] 4-bit levels q in [0, 15]; byte j holds value j in its low nibble and value
//          j + 16 in its high nibble
// Value j is d * q_j + m: an affine grid, suited to one-signed blocks.

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/detail/row_of_blocks.hpp"
#include "qmix/formats/detail/scale_search.hpp"
#include "qmix/formats/q8_1.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q4_1 {
    std::uint16_t d;  ///< scale, binary16
    std::uint16_t m;  ///< minimum, binary16
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q4_1) == 20, "block_q4_1 must match ggml's layout");

struct q4_1 {
    using block = block_q4_1;
    using partner_block = block_q8_1;
    static constexpr type_id id = type_id::q4_1;
    static constexpr std::string_view name = "q4_1";
    static constexpr std::size_t block_size = 32;
    static constexpr type_id dot_partner = type_id::q8_1;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q4_1" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 3;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        detail::quantize_row_of_blocks<q4_1>(x, y, n, importance);
    }

    /// Whether the block's scale or offset is infinite or NaN (binary16 exponent all ones).
    static bool has_special_scale(const block& b) noexcept {
        return (b.d & 0x7c00) == 0x7c00 || (b.m & 0x7c00) == 0x7c00;
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(x[ib].d);
            const float m = half_to_float(x[ib].m);
            float* out = y + ib * std::int64_t(block_size);
            if (has_special_scale(x[ib])) {  // inf or NaN: which NaN comes out is defined
                for (std::size_t j = 0; j < block_size / 2; ++j) {
                    out[j] = strict::mul_add_defined_nan(float(x[ib].qs[j] & 0x0F), d, m);
                    out[j + block_size / 2] =
                        strict::mul_add_defined_nan(float(x[ib].qs[j] >> 4), d, m);
                }
                continue;
            }
            for (std::size_t j = 0; j < block_size / 2; ++j) {
                out[j] = strict::mul(float(x[ib].qs[j] & 0x0F), d) + m;
                out[j + block_size / 2] = strict::mul(float(x[ib].qs[j] >> 4), d) + m;
            }
        }
    }

    /// Per block: sum_j (d q_j + m) * (dy p_j) = d dy sum(q_j p_j) + m * (dy sum p_j), and
    /// the partner stores dy * sum(p_j) as s, so the offset costs one product per block.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0.0f;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            int sum_q = 0;
            for (std::size_t j = 0; j < block_size / 2; ++j) {
                sum_q += (x[ib].qs[j] & 0x0F) * y[ib].qs[j];
                sum_q += (x[ib].qs[j] >> 4) * y[ib].qs[j + block_size / 2];
            }
            const float scale = half_to_float(x[ib].d) * half_to_float(y[ib].d);
            const float offset = strict::mul(half_to_float(x[ib].m), half_to_float(y[ib].s));
            sum += strict::mul(scale, float(sum_q)) + offset;
        }
        return sum;
    }

    /// ggml's quantize_row_q4_1_ref for one block: the grid spans [min, max] exactly;
    /// adding 0.5 and truncating rounds half up (values are >= 0 after the shift).
    static void quantize_block_reference(const float* x, block& y) {
        float min = FLT_MAX;
        float max = -FLT_MAX;
        for (std::size_t j = 0; j < block_size; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 15;
        const float inverse_d = d != 0.0f ? 1.0f / d : 0.0f;
        y.d = float_to_half(d);
        y.m = float_to_half(min);
        auto level = [&](float value) {
            const int truncated =
                std::int8_t(strict::truncate_to_int(strict::mul(value - min, inverse_d) + 0.5f));
            return std::uint8_t(truncated < 15 ? truncated : 15);
        };
        for (std::size_t j = 0; j < block_size / 2; ++j) {
            y.qs[j] = std::uint8_t(level(x[j]) | (level(x[j + block_size / 2]) << 4));
        }
    }

    /// ggml's quantize_row_q4_1_impl for one block: the weighted scale-and-offset search
    /// (make_qkx3_quants: 37 trial scales from (15 - 0.9) / range in steps of 0.05,
    /// squared error). The search returns -offset; the block stores the offset itself.
    static void quantize_block_weighted(const float* x, const float* importance, float sigma2,
                                        block& y) {
        float weights[block_size];
        detail::importance_weights(x, importance, sigma2, weights, block_size);
        std::uint8_t levels[block_size];
        std::uint8_t scratch[block_size];
        float negated_offset = 0.0f;
        const float d =
            detail::search_scale_and_min(int(block_size), 15, x, weights, levels, &negated_offset,
                                         scratch, -0.9f, 0.05f, 36, false);
        y.d = float_to_half(d);
        y.m = float_to_half(-negated_offset);
        for (std::size_t j = 0; j < block_size / 2; ++j) {
            y.qs[j] = std::uint8_t(levels[j] | (levels[j + block_size / 2] << 4));
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
