// SPDX-License-Identifier: MIT
#pragma once

// iq4_nl: blocks of 32 values, 18 bytes each (4.5 bits per weight, as q4_0).
//   d      binary16 scale
//   qs[16] 4-bit indices into ggml's 16 non-linear levels (detail::nonlinear_levels);
//          byte j holds value j in its low nibble and value j + 16 in its high nibble
// Value j is d * level[index_j]. The levels crowd near zero, so at the size of q4_0 the
// format follows bell-shaped weights more closely. Its rows need only a multiple of 32
// values: whisper tiny's rows of 384, which q4_k cannot hold, fit.
//
// The quantizer is ggml_quantize_chunk's (quantize_iq4_nl): a search over 15 scales per
// block, weighted by x^2, or by importance * sqrt(sigma2 + x^2) with an importance vector
// (sigma2 from the block's own 32 values). ggml's per-row quantize_row_iq4_nl_ref skips
// the search and gives other bytes: model files (whisper's quantizer and ggml's golden
// files) are written by ggml_quantize_chunk, so that is the one qmix reproduces.

#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/detail/nonlinear_levels.hpp"
#include "qmix/formats/q8_0.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_iq4_nl {
    std::uint16_t d;      ///< scale, binary16
    std::uint8_t qs[16];  ///< 4-bit level indices, two per byte
};
static_assert(sizeof(block_iq4_nl) == 18, "block_iq4_nl must match ggml's layout");

struct iq4_nl {
    using block = block_iq4_nl;
    using partner_block = block_q8_0;
    static constexpr type_id id = type_id::iq4_nl;
    static constexpr std::string_view name = "iq4_nl";
    static constexpr std::size_t block_size = 32;
    static constexpr type_id dot_partner = type_id::q8_0;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly iq4_nl" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 19;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    /// ggml_quantize_chunk's iq4_nl quantizer (quantize_iq4_nl) for one row.
    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const std::int64_t offset = ib * std::int64_t(block_size);
            quantize_block(x + offset, importance ? importance + offset : nullptr, y[ib]);
        }
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(x[ib].d);
            float* out = y + ib * std::int64_t(block_size);
            for (std::size_t j = 0; j < block_size / 2; ++j) {
                out[j] = d * detail::nonlinear_levels[x[ib].qs[j] & 0x0F];
                out[j + block_size / 2] = d * detail::nonlinear_levels[x[ib].qs[j] >> 4];
            }
        }
    }

    /// Integer dot product per block, scaled by the product of both block scales and summed
    /// in binary32 block after block, in the order of ggml's scalar kernel.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0.0f;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const float d = half_to_float(y[ib].d) * half_to_float(x[ib].d);
            int sum_q = 0;
            for (std::size_t j = 0; j < block_size / 2; ++j) {
                sum_q += y[ib].qs[j] * detail::nonlinear_levels[x[ib].qs[j] & 0x0F];
                sum_q += y[ib].qs[j + block_size / 2] * detail::nonlinear_levels[x[ib].qs[j] >> 4];
            }
            sum += strict::mul(d, float(sum_q));
        }
        return sum;
    }

    /// quantize_row_iq4_nl_impl with one block per super-block and 7 tries: the scale
    /// search, then every index again from the scale as stored (before its rounding to
    /// binary16).
    static void quantize_block(const float* x, const float* importance, block& y) {
        float weights[block_size];
        const float sigma2 = importance ? detail::nonlinear_sigma2(x, int(block_size)) : 0.0f;
        detail::nonlinear_weights(x, importance, sigma2, weights);
        std::uint8_t indices[block_size];
        const float d = detail::search_nonlinear_scale(x, weights, detail::nonlinear_tries_chunk);
        y.d = float_to_half(d);
        detail::nonlinear_indices(x, d != 0.0f ? 1 / d : 0.0f, indices);
        detail::pack_nonlinear_indices(indices, y.qs);
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
