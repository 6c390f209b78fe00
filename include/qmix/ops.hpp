// SPDX-License-Identifier: MIT
#pragma once

// The row API: quantize, dequantize and dot product of whole rows, through a kernel table
// (kernels/dispatch.hpp). Declarations only: the library compiles them once
// (src/kernels_dispatch.cpp), qmix/header_only.hpp defines them inline.

#include <cstddef>
#include <cstdint>

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/kernels/dispatch.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix {
QMIX_API_BEGIN

/// Quantizes nrows rows of n_per_row floats from src into dst, as ggml_quantize_chunk does,
/// with the kernels of `table`. `importance` (n_per_row weights, may be null) steers the
/// formats that use one. Returns the bytes written. A row length the format cannot hold, a
/// negative row count, a null src or dst with rows to write, or a size that std::size_t
/// cannot count is a qmix::error, never a truncation. dst needs no particular alignment.
/// The bytes are the same for every kernel table.
QMIX_API std::size_t quantize(const kernels::kernel_table& table, type_id type, const float* src,
                              void* dst, std::int64_t nrows, std::int64_t n_per_row,
                              const float* importance = nullptr);

/// quantize() with the active kernel table (kernels::active_table()).
QMIX_API std::size_t quantize(type_id type, const float* src, void* dst, std::int64_t nrows,
                              std::int64_t n_per_row, const float* importance = nullptr);

/// Dequantizes nrows rows of n_per_row values of `type` from src (any alignment) into dst,
/// with the kernels of `table`. The floats are the same for every kernel table. Checks its
/// arguments as quantize() does.
QMIX_API void dequantize(const kernels::kernel_table& table, type_id type, const void* src,
                         float* dst, std::int64_t nrows, std::int64_t n_per_row);

/// dequantize() with the active kernel table.
QMIX_API void dequantize(type_id type, const void* src, float* dst, std::int64_t nrows,
                         std::int64_t n_per_row);

/// Dot product of one row x of `type` with one row y of its dot partner format
/// (info(type).dot_partner), both n values long, with the kernels of `table`. Kernels
/// may sum in another order than the scalar code: results agree to rounding, as ggml's
/// own kernels agree with its scalar code. Null x or y is a qmix::error.
QMIX_API float dot(const kernels::kernel_table& table, type_id type, const void* x, const void* y,
                   std::int64_t n);

/// dot() with the active kernel table.
QMIX_API float dot(type_id type, const void* x, const void* y, std::int64_t n);

QMIX_API_END
}  // namespace qmix
