// SPDX-License-Identifier: MIT
#pragma once

// q8_0: blocks of 32 values, 34 bytes each.
//   d      binary16 scale, chosen so that the largest magnitude in the block maps to 127
//   qs[32] signed 8-bit levels, value j is d * qs[j]
// It is also the dot partner of q4_0, q5_0 and itself. ggml has no importance-weighted
// quantizer for it: an importance vector is accepted and ignored.

#include <cmath>
#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q8_0 {
    std::uint16_t d;
    std::int8_t qs[32];
};
static_assert(sizeof(block_q8_0) == 34, "block_q8_0 must match ggml's layout");

struct q8_0 {
    using block = block_q8_0;
    using partner_block = block_q8_0;
    static constexpr type_id id = type_id::q8_0;
    static constexpr std::string_view name = "q8_0";
    static constexpr std::size_t block_size = 32;
    static constexpr type_id dot_partner = type_id::q8_0;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = false;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q8_0" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 7;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n,
                             const float* /*importance*/) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            quantize_block(x + ib * std::int64_t(block_size), y[ib]);
        }
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(x[ib].d);
            float* out = y + ib * std::int64_t(block_size);
            for (std::size_t j = 0; j < block_size; ++j) out[j] = float(x[ib].qs[j]) * d;
        }
    }

    /// Integer dot product per block, then scaled by both block scales and summed in
    /// binary32, block after block (the order of ggml's scalar kernel).
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0.0f;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            int sum_q = 0;
            for (std::size_t j = 0; j < block_size; ++j) sum_q += x[ib].qs[j] * y[ib].qs[j];
            const float scale = half_to_float(x[ib].d) * half_to_float(y[ib].d);
            sum += strict::mul(float(sum_q), scale);
        }
        return sum;
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
        // Half-way cases round away from zero (roundf), not to even: that is ggml's choice.
        for (std::size_t j = 0; j < block_size; ++j) {
            y.qs[j] = std::int8_t(strict::truncate_to_int(std::round(x[j] * inverse_d)));
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
