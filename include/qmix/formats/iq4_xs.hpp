// SPDX-License-Identifier: MIT
#pragma once

// iq4_xs: super-blocks of 256 values, 136 bytes each (4.25 bits per weight).
//   d           binary16 super-block scale
//   scales_h    the high 2 bits of the eight 6-bit sub-block scales, two bits per
//               sub-block, sub-block 0 in the lowest bits
//   scales_l[4] their low 4 bits, sub-block 2k in the low nibble of byte k, 2k + 1 in the
//               high nibble
//   qs[128]     4-bit indices into iq4_nl's 16 non-linear levels, 16 bytes per 32-value
//               sub-block, packed as iq4_nl packs a block
// A sub-block scale s is stored as s + 32 (so in [-32, 31]); value j of sub-block b is
// d * s_b * level[index_j].
//
// The quantizer is ggml_quantize_chunk's (quantize_iq4_xs; ggml's quantize_row_iq4_xs_ref
// calls the same code): iq4_nl's search for each sub-block's scale, weighted by x^2 or by
// importance * sqrt(sigma2 + x^2) (sigma2 from all 256 values), then d = -(sub-block
// scale of largest magnitude) / 32, the sub-block scales rounded to multiples of d and
// every index chosen again for its rounded scale. An all-zero super-block stores
// d = -0.0 (binary16 0x8000) and dequantizes to -0.0, as ggml's does.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/detail/nonlinear_levels.hpp"
#include "qmix/formats/q8_k.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_iq4_xs {
    std::uint16_t d;           ///< super-block scale, binary16
    std::uint16_t scales_h;    ///< high 2 bits of each sub-block scale (+32)
    std::uint8_t scales_l[4];  ///< low 4 bits of each sub-block scale (+32)
    std::uint8_t qs[128];      ///< 4-bit level indices, two per byte
};
static_assert(sizeof(block_iq4_xs) == 136, "block_iq4_xs must match ggml's layout");

struct iq4_xs {
    using block = block_iq4_xs;
    using partner_block = block_q8_k;
    static constexpr type_id id = type_id::iq4_xs;
    static constexpr std::string_view name = "iq4_xs";
    static constexpr std::size_t block_size = 256;
    static constexpr type_id dot_partner = type_id::q8_k;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly iq4_xs" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 22;
    /// Rows of a multiple of 32 but not of 256 values (whisper tiny's 384) take iq4_nl:
    /// the same 16 levels in 32-value blocks at 4.5 bits per weight, as llama.cpp falls back.
    static constexpr type_id fallback = type_id::iq4_nl;

    static constexpr int sub_blocks = 8;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const std::int64_t offset = ib * std::int64_t(block_size);
            quantize_block(x + offset, importance ? importance + offset : nullptr, y[ib]);
        }
    }

    /// The stored scale of sub-block b, in [-32, 31].
    static int sub_block_scale(const block& b, int sub) {
        const int low = (b.scales_l[sub / 2] >> (4 * (sub % 2))) & 0x0F;
        const int high = (b.scales_h >> (2 * sub)) & 3;
        return (low | (high << 4)) - 32;
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(x[ib].d);
            for (int sub = 0; sub < sub_blocks; ++sub) {
                const float dl = d * float(sub_block_scale(x[ib], sub));
                const std::uint8_t* qs = x[ib].qs + 16 * sub;
                float* out = y + ib * std::int64_t(block_size) + 32 * sub;
                for (int j = 0; j < 16; ++j) {
                    out[j] = dl * detail::nonlinear_levels[qs[j] & 0x0F];
                    out[j + 16] = dl * detail::nonlinear_levels[qs[j] >> 4];
                }
            }
        }
    }

    /// Per super-block: the exact integer sum over its sub-blocks of (sub-block scale) times
    /// (integer dot product), then one product with d * d8, summed in binary32 super-block
    /// after super-block. That is the order of ggml's AVX2 kernel (which wrote the golden
    /// dot products); ggml's generic C code instead scales each sub-block in binary32,
    /// where d * d8 * (sub-block scale) can overflow to infinity and, times an integer sum
    /// of 0, give NaN for rows whose exact product is finite.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0.0f;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            std::int32_t total = 0;
            for (int sub = 0; sub < sub_blocks; ++sub) {
                const std::uint8_t* qs = x[ib].qs + 16 * sub;
                const std::int8_t* q8 = y[ib].qs + 32 * sub;
                std::int32_t sum_q = 0;
                for (int j = 0; j < 16; ++j) {
                    sum_q += q8[j] * detail::nonlinear_levels[qs[j] & 0x0F];
                    sum_q += q8[j + 16] * detail::nonlinear_levels[qs[j] >> 4];
                }
                total += sum_q * sub_block_scale(x[ib], sub);  // |total| < 2^28: exact
            }
            const float d = half_to_float(x[ib].d) * y[ib].d;
            sum += strict::mul(d, float(total));
        }
        return sum;
    }

    /// quantize_row_iq4_nl_impl with 256-value super-blocks of eight 32-value sub-blocks
    /// and 7 tries.
    static void quantize_block(const float* x, const float* importance, block& y) {
        const float sigma2 = importance ? detail::nonlinear_sigma2(x, int(block_size)) : 0.0f;
        float scales[sub_blocks];
        float max_scale = 0;
        float amax_scale = 0;
        std::uint8_t indices[32];
        for (int sub = 0; sub < sub_blocks; ++sub) {
            float weights[32];
            detail::nonlinear_weights(x + 32 * sub, importance ? importance + 32 * sub : nullptr,
                                      sigma2, weights);
            scales[sub] = detail::search_nonlinear_scale(x + 32 * sub, weights,
                                                         detail::nonlinear_tries_chunk);
            const float magnitude = std::fabs(scales[sub]);
            if (magnitude > amax_scale) {
                amax_scale = magnitude;
                max_scale = scales[sub];
            }
        }
        const float d = -max_scale / 32;
        y.d = float_to_half(d);
        const float inverse = d != 0.0f ? 1 / d : 0.0f;
        y.scales_h = 0;
        std::memset(y.scales_l, 0, sizeof y.scales_l);
        for (int sub = 0; sub < sub_blocks; ++sub) {
            int l = strict::nearest_int(strict::mul(inverse, scales[sub]));
            l = l < -32 ? -32 : (l > 31 ? 31 : l);
            const float dl = d * float(l);
            const float inverse_l = dl != 0.0f ? 1 / dl : 0.0f;
            detail::nonlinear_indices(x + 32 * sub, inverse_l, indices);
            detail::pack_nonlinear_indices(indices, y.qs + 16 * sub);
            const int stored = l + 32;
            y.scales_l[sub / 2] |= std::uint8_t((stored & 0x0F) << (4 * (sub % 2)));
            y.scales_h = std::uint16_t(y.scales_h | ((stored >> 4) << (2 * sub)));
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
