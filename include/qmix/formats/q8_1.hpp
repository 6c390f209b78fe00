// SPDX-License-Identifier: MIT
#pragma once

// q8_1: blocks of 32 values, 36 bytes each.
//   d      binary16 scale, chosen so that the largest magnitude in the block maps to 127
//   s      binary16 copy of d * (sum of the 32 levels), precomputed for the dot products
//          of q4_1 and q5_1, whose offset m multiplies the whole block at once
//   qs[32] signed 8-bit levels, value j is d * qs[j]
// An activation format: the partner of q4_1 and q5_1, with no dot product of its own.

#include <cmath>
#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q8_1 {
    std::uint16_t d;  ///< scale, binary16
    std::uint16_t s;  ///< d * sum(qs), binary16
    std::int8_t qs[32];
};
static_assert(sizeof(block_q8_1) == 36, "block_q8_1 must match ggml's layout");

struct q8_1 {
    using block = block_q8_1;
    using partner_block = block_q8_1;
    static constexpr type_id id = type_id::q8_1;
    static constexpr std::string_view name = "q8_1";
    static constexpr std::size_t block_size = 32;
    static constexpr type_id dot_partner = type_id::q8_1;
    static constexpr bool has_dot = false;
    static constexpr bool uses_importance = false;
    static constexpr bool is_quantized = true;
    /// ggml's file type (a model header's ftype); -1: no ftype names it, not a storage type.
    static constexpr std::int32_t file_type = -1;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n,
                             const float* /*importance*/) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            quantize_block(x + ib * std::int64_t(block_size), y[ib]);
        }
    }

    /// d * q per value; the stored sum s plays no part.
    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(x[ib].d);
            float* out = y + ib * std::int64_t(block_size);
            for (std::size_t j = 0; j < block_size; ++j) out[j] = float(x[ib].qs[j]) * d;
        }
    }

  private:
    static void quantize_block(const float* x, block& y) {
        float amax = 0.0f;
        for (std::size_t j = 0; j < block_size; ++j) {
            const float magnitude = std::fabs(x[j]);
            amax = amax > magnitude ? amax : magnitude;
        }
        const float d = amax / 127;
        const float inverse_d = d != 0.0f ? 1.0f / d : 0.0f;
        y.d = float_to_half(d);
        // Half-way cases round away from zero (roundf), as in ggml. The sum is exact in
        // integers; only its product with the unrounded d is rounded, then narrowed.
        int sum_q = 0;
        for (std::size_t j = 0; j < block_size; ++j) {
            y.qs[j] = std::int8_t(strict::truncate_to_int(std::round(x[j] * inverse_d)));
            sum_q += y.qs[j];
        }
        y.s = float_to_half(float(sum_q) * d);
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
