// SPDX-License-Identifier: MIT
#pragma once

// q5_1: blocks of 32 values, 24 bytes each.
//   d      binary16 step between levels
//   m      binary16 offset: the value of level 0 (the block minimum for the reference
//          quantizer, at most zero for the importance-weighted one)
//   qh[4]  the fifth (high) bit of each level: bit j of the little-endian 32-bit word
//          belongs to value j
//   qs[16] the low four bits of each level; byte j holds value j in its low nibble and
//          value j + 16 in its high nibble
// Value j is d * q_j + m with q_j in [0, 31]: an affine grid, suited to one-signed blocks.

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

struct block_q5_1 {
    std::uint16_t d;
    std::uint16_t m;
    std::uint8_t qh[4];
    std::uint8_t qs[16];
};
static_assert(sizeof(block_q5_1) == 24, "block_q5_1 must match ggml's layout");

struct q5_1 {
    using block = block_q5_1;
    using partner_block = block_q8_1;
    static constexpr type_id id = type_id::q5_1;
    static constexpr std::string_view name = "q5_1";
    static constexpr std::size_t block_size = 32;
    static constexpr type_id dot_partner = type_id::q8_1;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q5_1" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 9;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        detail::quantize_row_of_blocks<q5_1>(x, y, n, importance);
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
                for (std::size_t j = 0; j < block_size; ++j) {
                    out[j] =
                        strict::mul_add_defined_nan(float(detail::five_bit_level(x[ib], j)), d, m);
                }
                continue;
            }
            for (std::size_t j = 0; j < block_size; ++j) {
                out[j] = strict::mul(float(detail::five_bit_level(x[ib], j)), d) + m;
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
            for (std::size_t j = 0; j < block_size; ++j)
                sum_q += detail::five_bit_level(x[ib], j) * y[ib].qs[j];
            const float scale = half_to_float(x[ib].d) * half_to_float(y[ib].d);
            const float offset = strict::mul(half_to_float(x[ib].m), half_to_float(y[ib].s));
            sum += strict::mul(scale, float(sum_q)) + offset;
        }
        return sum;
    }

    /// ggml's quantize_row_q5_1_ref for one block: the grid spans [min, max] exactly;
    /// adding 0.5 and truncating rounds half up. Unlike q4_1 there is no clamp: the top
    /// value lands on 31 + 0.5 at most, which truncates to 31.
    static void quantize_block_reference(const float* x, block& y) {
        float min = FLT_MAX;
        float max = -FLT_MAX;
        for (std::size_t j = 0; j < block_size; ++j) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        const float d = (max - min) / 31;
        const float inverse_d = d != 0.0f ? 1.0f / d : 0.0f;
        y.d = float_to_half(d);
        y.m = float_to_half(min);
        std::uint8_t levels[block_size];
        for (std::size_t j = 0; j < block_size; ++j) {
            levels[j] =
                std::uint8_t(strict::truncate_to_int(strict::mul(x[j] - min, inverse_d) + 0.5f));
        }
        detail::pack_five_bit_levels(levels, y);
    }

    /// ggml's quantize_row_q5_1_impl for one block: the weighted scale-and-offset search
    /// (make_qkx3_quants: 37 trial scales from (31 - 0.9) / range in steps of 0.05,
    /// squared error). The search returns -offset; the block stores the offset itself.
    static void quantize_block_weighted(const float* x, const float* importance, float sigma2,
                                        block& y) {
        float weights[block_size];
        detail::importance_weights(x, importance, sigma2, weights, block_size);
        std::uint8_t levels[block_size];
        std::uint8_t scratch[block_size];
        float negated_offset = 0.0f;
        const float d =
            detail::search_scale_and_min(int(block_size), 31, x, weights, levels, &negated_offset,
                                         scratch, -0.9f, 0.05f, 36, false);
        y.d = float_to_half(d);
        y.m = float_to_half(-negated_offset);
        detail::pack_five_bit_levels(levels, y);
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
