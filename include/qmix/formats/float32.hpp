// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <string_view>

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix::formats {
QMIX_ABI_BEGIN

/// binary32, one value per "block". The dot product accumulates in double, as ggml does.
struct f32 {
    using block = float;
    using partner_block = float;
    static constexpr type_id id = type_id::f32;
    static constexpr std::string_view name = "f32";
    static constexpr std::size_t block_size = 1;
    static constexpr type_id dot_partner = type_id::f32;
    static constexpr bool has_dot = true;
    static constexpr bool uses_importance = false;
    static constexpr bool is_quantized = false;
    /// ggml's file type "mostly f32" (a model header's ftype); -1: no ftype names it.
    static constexpr std::int32_t file_type = 0;
    /// No fallback: a row length this format cannot hold stays as it is.
    static constexpr type_id fallback = id;

    static void quantize_row(const float* x, block* y, std::int64_t n,
                             const float* /*importance*/) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = x[i];
    }
    static void dequantize_row(const block* x, float* y, std::int64_t n) {
        for (std::int64_t i = 0; i < n; ++i) y[i] = x[i];
    }
    static float dot_row(const block* x, const partner_block* y, std::int64_t n) {
        double sum = 0.0;
        for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i] * y[i]);
        return static_cast<float>(sum);
    }
};
static_assert(sizeof(f32::block) == 4);

QMIX_ABI_END
}  // namespace qmix::formats
