// SPDX-License-Identifier: MIT
#pragma once

// The kernel table: what one instruction-set level offers for every format. This is one of
// the few types that crosses between the levels of the library, so it lives in qmix itself
// (not in an ABI namespace, see core/config.hpp) and holds data only: no function of its
// own that a level object could emit.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/registry.hpp"

namespace qmix::kernels {

/// Row-range kernels for one format. Pointers are aligned for the format's block struct
/// (ops.hpp bounces unaligned buffers), rows are n_per_row values long and n_per_row is a
/// multiple of the block size.
using quantize_fn = void (*)(const float* src, void* dst, std::int64_t nrows,
                             std::int64_t n_per_row, const float* importance);
using dequantize_fn = void (*)(const void* src, float* dst, std::int64_t nrows,
                               std::int64_t n_per_row);
using dot_fn = float (*)(const void* x, const void* y, std::int64_t n);

/// The kernels of one format; null where the level has none (a level's own table) or where
/// the operation does not exist (the dot product of an activation format).
struct format_kernels {
    quantize_fn quantize;
    dequantize_fn dequantize;
    dot_fn dot;
};

/// Slots indexed by ggml type id: one more than the largest id of the registry.
inline constexpr std::size_t type_slots = slot_count(all_formats{});

/// The kernels of one instruction-set level. `name` is how QMIX_FORCE_ARCH spells it. The
/// tables the library hands out (available_tables(), active_table()) are complete: every
/// format the registry knows has its quantize and dequantize entries (and dot where the
/// format has one), the scalar reference's where the level has no kernel of its own.
struct kernel_table {
    std::string_view name;
    format_kernels formats[type_slots];
};

}  // namespace qmix::kernels

namespace qmix::kernels {
QMIX_ABI_BEGIN

/// The entry of `table` for format `id` (an id the registry knows).
constexpr format_kernels& slot(kernel_table& table, type_id id) noexcept {
    return table.formats[static_cast<std::size_t>(id)];
}
constexpr const format_kernels& slot(const kernel_table& table, type_id id) noexcept {
    return table.formats[static_cast<std::size_t>(id)];
}

QMIX_ABI_END
}  // namespace qmix::kernels
