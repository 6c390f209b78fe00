// SPDX-License-Identifier: MIT
#pragma once

// q8_K: the activation format that every _K weight format is multiplied with.
//
// One block holds 256 values in 292 bytes:
//   d       binary32 scale (a full float, not binary16: the _K dot products want the
//           activation scale at full precision)
//   qs      256 signed 8-bit levels in [-127, 127], value = d * qs[i]
//   bsums   16 int16 sums, bsums[j] = qs[16j] + ... + qs[16j + 15]; the weight formats
//           with a per-sub-block offset (q2_K, q4_K, q5_K) fold that offset into the dot
//           product with these sums instead of touching every value again
//
// The quantizer is ggml's quantize_row_q8_K_ref. Its scale maps the value of largest
// magnitude to exactly -127 (never -128), so the levels stay symmetric; there is no
// importance-weighted variant.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q8_k {
    float d;  ///< scale, binary32
    std::int8_t qs[256];
    std::int16_t bsums[16];  ///< sums of qs in groups of 16
};
static_assert(sizeof(block_q8_k) == 292, "block_q8_k must match ggml's layout");

struct q8_k {
    using block = block_q8_k;
    using partner_block = block_q8_k;
    static constexpr type_id id = type_id::q8_k;
    static constexpr std::string_view name = "q8_k";
    static constexpr std::size_t block_size = 256;
    static constexpr type_id dot_partner = type_id::q8_k;
    static constexpr bool has_dot = false;
    static constexpr bool uses_importance = false;
    static constexpr bool is_quantized = true;
    /// ggml's file type (a model header's ftype); -1: no ftype names it, not a storage type.
    static constexpr std::int32_t file_type = -1;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    /// ggml's quantize_row_q8_K_ref; `importance` is accepted for the common interface and
    /// ignored, as ggml ignores it for this format.
    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        (void)importance;
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            quantize_block(x + b * std::int64_t(block_size), y[b]);
        }
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            for (std::size_t i = 0; i < block_size; ++i) *y++ = x[b].d * float(x[b].qs[i]);
        }
    }

  private:
    static constexpr int levels_per_sum = 16;

    static void quantize_block(const float* x, block& out) {
        // The signed value of largest magnitude; on ties the first one wins, which decides
        // the sign of the scale and so the bytes.
        float extreme = 0;
        float largest_magnitude = 0;
        for (std::size_t i = 0; i < block_size; ++i) {
            const float magnitude = std::fabs(x[i]);
            if (magnitude > largest_magnitude) {
                largest_magnitude = magnitude;
                extreme = x[i];
            }
        }
        // Only an exactly zero block is special here (no epsilon as in the weight formats):
        // any non-zero maximum gives a finite inverse scale.
        if (largest_magnitude == 0.0f) {
            out.d = 0;
            std::memset(out.qs, 0, sizeof out.qs);
            std::memset(out.bsums, 0, sizeof out.bsums);
            return;
        }
        // The negative sign sends the extreme value to -127 exactly; the others round to
        // nearest, and only the opposite extreme can round up to +127 or beyond, hence
        // the one-sided clamp. The product goes through strict::mul because nearest_int
        // adds a constant to it, which a contracting compiler would otherwise fuse.
        const float inverse_scale = -127.f / extreme;
        for (std::size_t i = 0; i < block_size; ++i) {
            const int level = strict::nearest_int(strict::mul(inverse_scale, x[i]));
            out.qs[i] = std::int8_t(level < 127 ? level : 127);
        }
        for (int j = 0; j < int(block_size) / levels_per_sum; ++j) {
            int sum = 0;
            for (int i = 0; i < levels_per_sum; ++i) sum += out.qs[j * levels_per_sum + i];
            out.bsums[j] = std::int16_t(sum);
        }
        out.d = 1 / inverse_scale;
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
