// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qmix/core/type_id.hpp"

namespace qmix::kernels {

/// Row-range kernels for one format. Pointers are aligned for the format's block struct
/// (ops.hpp bounces unaligned buffers), rows are n_per_row values long and n_per_row is a
/// multiple of the block size. A null entry means "use the scalar reference".
using quantize_fn = void (*)(const float* src, void* dst, std::int64_t nrows,
                             std::int64_t n_per_row, const float* importance);
using dequantize_fn = void (*)(const void* src, float* dst, std::int64_t nrows,
                               std::int64_t n_per_row);
using dot_fn = float (*)(const void* x, const void* y, std::int64_t n);

struct format_kernels {
    quantize_fn quantize = nullptr;
    dequantize_fn dequantize = nullptr;
    dot_fn dot = nullptr;
};

/// Slots indexed by ggml type id (0..30: bf16 is 30).
inline constexpr std::size_t type_slots = 31;

/// The kernels of one instruction-set level. `name` is how QMIX_FORCE_ARCH spells it.
struct kernel_table {
    std::string_view name;
    std::array<format_kernels, type_slots> formats{};

    format_kernels& operator[](type_id id) { return formats[static_cast<std::size_t>(id)]; }
    const format_kernels& operator[](type_id id) const {
        return formats[static_cast<std::size_t>(id)];
    }
};

}  // namespace qmix::kernels
