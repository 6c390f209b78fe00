// SPDX-License-Identifier: MIT
#pragma once

// What the 32-value formats q4_0 q4_1 q5_0 q5_1 share: a row is a run of independent
// blocks, q5_0 and q5_1 store their levels alike, and the importance-weighted path weights every
// value by importance * sqrt(sigma2 + x^2), sigma2 being the mean square of the whole row (not of
// the block: small values still count in a loud row).

#include <cmath>
#include <cstddef>
#include <cstdint>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/detail/scale_search.hpp"

namespace qmix::formats::detail {
QMIX_ABI_BEGIN

/// Mean of x^2 over a row, summed in order as the reference does.
inline float mean_square(const float* x, std::int64_t n) {
    float sum = 0.0f;
    for (std::int64_t j = 0; j < n; ++j) sum += strict::mul(x[j], x[j]);
    return sum / float(n);
}

/// The weights of one block of the importance-weighted path.
inline void importance_weights(const float* x, const float* importance, float sigma2,
                               float* weights, std::size_t n) {
    for (std::size_t j = 0; j < n; ++j) {
        weights[j] = strict::mul(importance[j], std::sqrt(sigma2 + strict::mul(x[j], x[j])));
    }
}

/// The importance-weighted symmetric search of q4_0 and q5_0 for one block of N values
/// (ggml's make_qx_quants with rmse_type 1): levels + nmax into `levels`, and the scale as
/// stored, binary16. A row holding an infinity or a NaN makes every weight, and so the
/// scale, NaN; it is stored as the default NaN whichever NaN operand the search let through
/// (legacy SSE and VEX encodings, -O0 and -O2, pass different ones).
template <std::size_t N>
std::uint16_t search_weighted_symmetric(const float* x, const float* importance, float sigma2,
                                        int nmax, std::int8_t (&levels)[N]) {
    float weights[N];
    importance_weights(x, importance, sigma2, weights, N);
    const float d = search_symmetric_scale(int(N), nmax, x, levels, 1, weights);
    return float_to_half(strict::nan_as_default(d));
}

/// Quantizes a row block by block with Format::quantize_block_reference (no importance:
/// ggml's quantize_row_X_ref) or Format::quantize_block_weighted (ggml's
/// quantize_row_X_impl).
template <class Format>
void quantize_row_of_blocks(const float* x, typename Format::block* y, std::int64_t n,
                            const float* importance) {
    constexpr auto block_size = static_cast<std::int64_t>(Format::block_size);
    const std::int64_t n_blocks = n / block_size;
    if (importance == nullptr) {
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            Format::quantize_block_reference(x + ib * block_size, y[ib]);
        }
        return;
    }
    const float sigma2 = mean_square(x, n);
    for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
        const std::int64_t offset = ib * block_size;
        Format::quantize_block_weighted(x + offset, importance + offset, sigma2, y[ib]);
    }
}

/// The 5-bit level of value j (0..31) of a q5_0 or q5_1 block: the low nibble from qs
/// (value j of the first half in the low nibble of byte j, of the second half in the high
/// nibble of byte j - 16), the fifth bit from bit j of the little-endian word qh.
template <class Block>
int five_bit_level(const Block& b, std::size_t j) {
    constexpr std::size_t half = sizeof(b.qs);
    const int low = j < half ? (b.qs[j] & 0x0F) : (b.qs[j - half] >> 4);
    const int high = (b.qh[j / 8] >> (j % 8)) & 1;
    return low | (high << 4);
}

/// Stores 32 levels (each 0..31) into a q5_0 or q5_1 block: low nibbles into qs, fifth
/// bits into qh, little-endian whatever the host.
template <class Block>
void pack_five_bit_levels(const std::uint8_t* levels, Block& y) {
    constexpr std::size_t half = sizeof(y.qs);
    std::uint32_t high_bits = 0;
    for (std::size_t j = 0; j < half; ++j) {
        y.qs[j] = std::uint8_t((levels[j] & 0x0F) | ((levels[j + half] & 0x0F) << 4));
        high_bits |= std::uint32_t((levels[j] >> 4) & 1) << j;
        high_bits |= std::uint32_t((levels[j + half] >> 4) & 1) << (j + half);
    }
    for (std::size_t k = 0; k < 4; ++k) y.qh[k] = std::uint8_t(high_bits >> (8 * k));
}

QMIX_ABI_END
}  // namespace qmix::formats::detail
