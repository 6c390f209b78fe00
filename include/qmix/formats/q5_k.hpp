// SPDX-License-Identifier: MIT
#pragma once

// q5_k: super-blocks of 256 values, 176 bytes each, made of 8 sub-blocks of 32 values.
//   d, dmin     binary16 steps of the sub-block scales and of the sub-block minimums
//   scales[12]  6-bit scale and min levels per sub-block, packed exactly as in q4_k
//   qh[32]      fifth bits: bit 2g of byte l belongs to value 64g + l, bit 2g + 1 to
//               value 64g + 32 + l
//   qs[128]     low four bits, arranged as q4_k's nibbles
// Value i of sub-block j is  d * scale_j * q_i - dmin * min_j,  with q_i in [0, 31].
// Only the level width differs from q4_k, so the scale search, the requantization, the
// dequantization and the dot product are q4_k's shared steps (detail::*_k4).

#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/q4_k.hpp"
#include "qmix/formats/q8_k.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

struct block_q5_k {
    std::uint16_t d;
    std::uint16_t dmin;
    std::uint8_t scales[12];
    std::uint8_t qh[32];
    std::uint8_t qs[128];
};
static_assert(sizeof(block_q5_k) == 176, "block_q5_k must match ggml's layout");

struct q5_k {
    using block = block_q5_k;
    using partner_block = block_q8_k;
    static constexpr type_id id = type_id::q5_k;
    static constexpr std::string_view name = "q5_k";
    static constexpr std::size_t block_size = 256;
    static constexpr type_id dot_partner = type_id::q8_k;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = true;
    static constexpr bool is_quantized = true;
    /// ggml's file type "mostly q5_k" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 13;
    /// What a row length this format cannot hold is stored as instead (ggml's tools).
    static constexpr type_id fallback = type_id::q5_1;

    static void quantize_row(const float* x, block* y, std::int64_t n, const float* importance) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            const std::int64_t first = ib * std::int64_t(block_size);
            std::uint8_t levels[block_size];
            detail::quantize_block_k4(x + first, importance ? importance + first : nullptr, y[ib],
                                      levels, search);
            pack_levels(levels, y[ib]);
        }
    }

    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            std::uint8_t levels[block_size];
            unpack_levels(x[ib], levels);
            detail::dequantize_block_k4(x[ib], levels, y + ib * std::int64_t(block_size));
        }
    }

    /// Blocks are summed in binary32, one after the other.
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        const std::int64_t n_blocks = n / std::int64_t(block_size);
        float sum = 0;
        for (std::int64_t ib = 0; ib < n_blocks; ++ib) {
            std::uint8_t levels[block_size];
            unpack_levels(x[ib], levels);
            sum += detail::dot_block_k4(x[ib], y[ib], levels);
        }
        return sum;
    }

  private:
    static constexpr detail::k4_search search{31, -0.5f, 0.1f, 15, true};

    /// Levels in value order -> low nibbles in qs (as q4_k) and fifth bits in qh.
    static void pack_levels(const std::uint8_t* levels, block& y) {
        for (int l = 0; l < 32; ++l) y.qh[l] = 0;
        for (std::size_t g = 0; g < block_size / 64; ++g) {
            const std::uint8_t* low = levels + 64 * g;
            std::uint8_t* q = y.qs + 32 * g;
            const auto low_bit = std::uint8_t(1u << (2 * g));
            const auto high_bit = std::uint8_t(2u << (2 * g));
            for (int l = 0; l < 32; ++l) {
                const int first = low[l];
                const int second = low[l + 32];
                if (first > 15) y.qh[l] |= low_bit;
                if (second > 15) y.qh[l] |= high_bit;
                q[l] = std::uint8_t((first & 0xF) | ((second & 0xF) << 4));
            }
        }
    }

    static void unpack_levels(const block& x, std::uint8_t* levels) {
        for (std::size_t g = 0; g < block_size / 64; ++g) {
            const std::uint8_t* q = x.qs + 32 * g;
            std::uint8_t* out = levels + 64 * g;
            const unsigned low_shift = unsigned(2 * g);
            for (int l = 0; l < 32; ++l) {
                const unsigned high = x.qh[l] >> low_shift;
                out[l] = std::uint8_t((q[l] & 0xF) | ((high & 1u) << 4));
                out[l + 32] = std::uint8_t((q[l] >> 4) | ((high & 2u) << 3));
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::formats
