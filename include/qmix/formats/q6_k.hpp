// SPDX-License-Identifier: MIT
#pragma once

// q6_K: 6-bit weights in super-blocks of 256, 210 bytes per block (6.5625 bits per weight).
//
// The 256 values form 16 sub-blocks of 16. Value i of sub-block s is
//   d * scales[s] * (level_i - 32),   level_i in [0, 63]
// with d the binary16 super-block scale and scales[s] a signed 8-bit sub-block scale.
//
// The levels are split into a low nibble and a high pair of bits, arranged so that a SIMD
// kernel can unpack 128 values with a handful of shifts. Each half of the block (values
// 0..127 and 128..255) owns 64 bytes of ql and 32 bytes of qh. Within a half, for
// position p in [0, 32):
//   ql[p]      low nibble: value p        high nibble: value p + 64
//   ql[p + 32] low nibble: value p + 32   high nibble: value p + 96
//   qh[p]      bits 0-1: value p, 2-3: value p + 32, 4-5: value p + 64, 6-7: value p + 96
// (the top two bits of each 6-bit level, value offsets relative to the half's start).
//
// The quantizer is ggml's: a weighted least-squares scale per sub-block (the symmetric
// search of detail/scale_search.hpp, weighted by x^2 or by the caller's importance), those
// 16 scales quantized to int8 against their largest, and finally every value re-quantized
// against the scale that was actually stored, so that the levels fit the rounded scales.

#include <algorithm>
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

struct block_q6_k {
    std::uint8_t ql[128];  ///< low four bits
    std::uint8_t qh[64];   ///< high two bits
    std::int8_t scales[16];
    std::uint16_t d;
};
static_assert(sizeof(block_q6_k) == 210, "block_q6_k must match ggml's layout");

struct q6_k {
    using block = block_q6_k;
    using partner_block = block_q8_k;
    static constexpr type_id id = type_id::q6_k;
    static constexpr std::string_view name = "q6_k";
    static constexpr std::size_t block_size = 256;
    static constexpr type_id dot_partner = type_id::q8_k;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q6_k" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 14;
    /// What a row length this format cannot hold is stored as instead (ggml's tools).
    static constexpr type_id fallback = type_id::q8_0;

    /// Without importance: ggml's quantize_row_q6_K_ref. With importance: ggml's
    /// quantize_row_q6_K_impl, which uses the importance values themselves as the weights
    /// of the sub-block scale search (unlike the 32-value formats, no sqrt(sigma2 + x^2)
    /// factor: ggml has that line commented out for q6_K).
    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            const std::int64_t first = b * std::int64_t(block_size);
            quantize_block(x + first, y[b], importance ? importance + first : nullptr);
        }
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            std::int8_t levels[block_size];
            unpack_levels(x[b], levels);
            const float d = half_to_float(x[b].d);
            for (int i = 0; i < int(block_size); ++i) {
                // (d * scale) * level, in this order: ggml rounds d * scale first.
                *y++ = d * float(x[b].scales[i / values_per_scale]) * float(levels[i]);
            }
        }
    }

    /// Dot product with a q8_K row: exact integer sums per block (level times activation,
    /// weighted by the sub-block scale), scaled by the two block scales and summed in
    /// float. ggml sums in another order, so the result agrees to rounding, not bit for bit.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0;
        for (std::int64_t b = 0; b < n_blocks; ++b) {
            std::int8_t levels[block_size];
            unpack_levels(x[b], levels);
            std::int32_t block_sum = 0;
            for (int s = 0; s < n_scales; ++s) {
                std::int32_t sub_sum = 0;
                for (int i = s * values_per_scale; i < (s + 1) * values_per_scale; ++i) {
                    sub_sum += std::int32_t(levels[i]) * std::int32_t(y[b].qs[i]);
                }
                block_sum += std::int32_t(x[b].scales[s]) * sub_sum;
            }
            const float d = half_to_float(x[b].d) * y[b].d;
            sum += strict::mul(d, float(block_sum));
        }
        return sum;
    }

  private:
    static constexpr int values_per_scale = 16;
    static constexpr int n_scales = int(block_size) / values_per_scale;
    static constexpr int level_offset = 32;  ///< stored level = signed level + 32
    static constexpr int half_size = 128;    ///< values covered by one 64-byte ql run

    static void quantize_block(const float* x, block& out, const float* weights) {
        std::int8_t levels[block_size];
        float sub_scales[n_scales];
        // The signed sub-block scale of largest magnitude (first one on ties) sets d.
        float extreme_scale = 0;
        float largest_magnitude = 0;
        for (int s = 0; s < n_scales; ++s) {
            const int first = s * values_per_scale;
            // rmse_type 1: weights x^2 when the caller gives none.
            sub_scales[s] = detail::search_symmetric_scale(values_per_scale, level_offset,
                                                           x + first, levels + first, 1,
                                                           weights ? weights + first : nullptr);
            const float magnitude = std::fabs(sub_scales[s]);
            if (magnitude > largest_magnitude) {
                largest_magnitude = magnitude;
                extreme_scale = sub_scales[s];
            }
        }
        if (largest_magnitude < detail::group_max_eps) {
            std::memset(&out, 0, sizeof out);
            return;
        }
        // The extreme sub-scale maps to -128 exactly; the others round to nearest and can
        // only overshoot on the positive side, hence the one-sided clamp to 127.
        // strict::mul keeps the product from being fused with nearest_int's addition.
        const float inverse_scale = -128.f / extreme_scale;
        out.d = float_to_half(1 / inverse_scale);
        for (int s = 0; s < n_scales; ++s) {
            const int q = strict::nearest_int(strict::mul(inverse_scale, sub_scales[s]));
            out.scales[s] = std::int8_t(std::min(127, q));
        }
        requantize_with_stored_scales(x, out, levels);
        pack_levels(levels, out);
    }

    /// The scale search chose levels for its own unrounded scale; d and the int8 scales
    /// are coarser, so every value is rounded again against d * scales[s] as the
    /// dequantizer will see it. A sub-block whose stored scale is zero keeps the search's
    /// levels (they are multiplied by zero anyway).
    static void requantize_with_stored_scales(const float* x, const block& out,
                                              std::int8_t* levels) {
        const float d = half_to_float(out.d);
        for (int s = 0; s < n_scales; ++s) {
            const float step = d * float(out.scales[s]);
            if (step == 0.0f) continue;
            for (int i = s * values_per_scale; i < (s + 1) * values_per_scale; ++i) {
                const int l = strict::nearest_int(x[i] / step);
                levels[i] = std::int8_t(std::max(-level_offset, std::min(level_offset - 1, l)) +
                                        level_offset);
            }
        }
    }

    static void pack_levels(const std::int8_t* levels, block& out) {
        for (int h = 0; h < int(block_size) / half_size; ++h) {
            const std::int8_t* L = levels + h * half_size;
            std::uint8_t* ql = out.ql + h * 64;
            std::uint8_t* qh = out.qh + h * 32;
            for (int p = 0; p < 32; ++p) {
                const unsigned l0 = std::uint8_t(L[p]);
                const unsigned l1 = std::uint8_t(L[p + 32]);
                const unsigned l2 = std::uint8_t(L[p + 64]);
                const unsigned l3 = std::uint8_t(L[p + 96]);
                ql[p] = std::uint8_t((l0 & 0xF) | ((l2 & 0xF) << 4));
                ql[p + 32] = std::uint8_t((l1 & 0xF) | ((l3 & 0xF) << 4));
                qh[p] = std::uint8_t((l0 >> 4) | ((l1 >> 4) << 2) | ((l2 >> 4) << 4) |
                                     ((l3 >> 4) << 6));
            }
        }
    }

    /// Signed levels in [-32, 31], in value order.
    static void unpack_levels(const block& in, std::int8_t* levels) {
        for (int h = 0; h < int(block_size) / half_size; ++h) {
            std::int8_t* L = levels + h * half_size;
            const std::uint8_t* ql = in.ql + h * 64;
            const std::uint8_t* qh = in.qh + h * 32;
            for (int p = 0; p < 32; ++p) {
                L[p] = std::int8_t(((ql[p] & 0xF) | (((qh[p] >> 0) & 3) << 4)) - level_offset);
                L[p + 32] =
                    std::int8_t(((ql[p + 32] & 0xF) | (((qh[p] >> 2) & 3) << 4)) - level_offset);
                L[p + 64] = std::int8_t(((ql[p] >> 4) | (((qh[p] >> 4) & 3) << 4)) - level_offset);
                L[p + 96] =
                    std::int8_t(((ql[p + 32] >> 4) | (((qh[p] >> 6) & 3) << 4)) - level_offset);
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
