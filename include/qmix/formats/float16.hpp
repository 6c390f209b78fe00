// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

/// IEEE binary16, one value per "block"; rounding to nearest even. Its dot partner is
/// itself; the products are exact in binary32 and are summed in double, as ggml does.
struct f16 {
    using block = std::uint16_t;
    using partner_block = std::uint16_t;
    static constexpr type_id id = type_id::f16;
    static constexpr std::string_view name = "f16";
    static constexpr std::size_t block_size = 1;
    static constexpr type_id dot_partner = type_id::f16;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = false;
    static constexpr bool is_quantized = false;
    /// ggml's file type "mostly f16" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 1;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n,
                             const float* /*importance*/) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = float_to_half(x[i]);
    }
    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = half_to_float(x[i]);
    }
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        double sum = 0.0;
        for (std::int64_t i = 0; i < n; ++i) {
            sum += static_cast<double>(half_to_float(x[i]) * half_to_float(y[i]));
        }
        return static_cast<float>(sum);
    }
};
static_assert(sizeof(f16::block) == 2);

QMIX_ABI_END
}  // namespace qmix::formats
