// SPDX-License-Identifier: MIT
#pragma once

// bf16 ("brain float"): the upper 16 bits of a binary32 value, one value per "block",
// 2 bytes. It keeps binary32's exponent range with 8 bits of precision. Narrowing rounds
// the way ggml's reference converter does: to nearest, ties to even on the bit pattern,
// subnormals kept, overflow to infinity, NaN made quiet. Its dot partner is itself; the
// products are exact in binary32 and are summed in double, as ggml's scalar code does.

#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix {
QMIX_ABI_BEGIN

/// binary32 to bf16 bits, as ggml_compute_fp32_to_bf16.
inline std::uint16_t float_to_bf16(float value) noexcept {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep sign and payload top, set quiet bit
        return std::uint16_t((bits >> 16) | 0x40u);
    }
    // Adding 0x7fff, plus one when the kept part is odd, carries into the kept part exactly
    // when the dropped part is above half, or half with an odd kept part.
    return std::uint16_t((bits + (0x7fffu + ((bits >> 16) & 1u))) >> 16);
}

/// bf16 bits to binary32: exact.
inline float bf16_to_float(std::uint16_t value) noexcept {
    const std::uint32_t bits = std::uint32_t(value) << 16;
    float result;
    std::memcpy(&result, &bits, sizeof result);
    return result;
}

QMIX_ABI_END
namespace formats {
QMIX_ABI_BEGIN

struct bf16 {
    using block = std::uint16_t;
    using partner_block = std::uint16_t;
    static constexpr type_id id = type_id::bf16;
    static constexpr std::string_view name = "bf16";
    static constexpr std::size_t block_size = 1;
    static constexpr type_id dot_partner = type_id::bf16;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = false;
    static constexpr bool is_quantized = false;
    /// ggml's file type "mostly bf16" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 24;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n,
                             const float* /*importance*/) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = float_to_bf16(x[i]);
    }
    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = bf16_to_float(x[i]);
    }
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        double sum = 0.0;
        for (std::int64_t i = 0; i < n; ++i) {
            sum += static_cast<double>(bf16_to_float(x[i]) * bf16_to_float(y[i]));
        }
        return static_cast<float>(sum);
    }
};
static_assert(sizeof(bf16::block) == 2);

QMIX_ABI_END
}  // namespace formats
QMIX_ABI_BEGIN
QMIX_ABI_END
}  // namespace qmix
