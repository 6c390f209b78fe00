// SPDX-License-Identifier: MIT
#pragma once

// The definitions behind ops.hpp. The library compiles them once
// (src/kernels_dispatch.cpp); qmix/header_only.hpp includes them inline.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "qmix/core/config.hpp"
#include "qmix/core/error.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/kernels/dispatch.hpp"
#include "qmix/kernels/table.hpp"
#include "qmix/ops.hpp"

namespace qmix::detail {
QMIX_API_BEGIN

/// Checks a call's rows (see rows_size()) and returns the bytes of one row.
inline std::size_t checked_row_bytes(type_id type, std::int64_t nrows, std::int64_t n_per_row) {
    rows_size(type, nrows, n_per_row);
    return row_size(type, n_per_row);
}

inline void check_pointer(const void* p, const char* what, std::int64_t nrows) {
    if (p == nullptr && nrows > 0) {
        throw error(std::string(what) + " is null with " + std::to_string(nrows) +
                    " row(s) to convert");
    }
}

inline bool is_aligned(const void* p, std::size_t alignment) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

/// Scratch memory aligned for any block struct.
inline std::vector<std::max_align_t> scratch(std::size_t bytes) {
    return std::vector<std::max_align_t>((bytes + sizeof(std::max_align_t) - 1) /
                                         sizeof(std::max_align_t));
}

QMIX_API_END
}  // namespace qmix::detail

namespace qmix {
QMIX_API_BEGIN

QMIX_API std::size_t quantize(const kernels::kernel_table& table, type_id type, const float* src,
                              void* dst, std::int64_t nrows, std::int64_t n_per_row,
                              const float* importance) {
    const std::size_t bytes = detail::checked_row_bytes(type, nrows, n_per_row);
    detail::check_pointer(src, "src", nrows);
    detail::check_pointer(dst, "dst", nrows);
    kernels::quantize_fn kernel = kernels::slot(table, type).quantize;
    if (kernel == nullptr) kernel = kernels::slot(kernels::scalar_table(), type).quantize;
    auto* out = static_cast<unsigned char*>(dst);
    if (detail::is_aligned(out,
                           info(type).alignment)) {  // then every row is: rows are whole blocks
        if (nrows > 0) kernel(src, out, nrows, n_per_row, importance);
    } else {
        auto bounce = detail::scratch(bytes);
        for (std::int64_t r = 0; r < nrows; ++r, out += bytes) {
            kernel(src + r * n_per_row, bounce.data(), 1, n_per_row, importance);
            std::memcpy(out, bounce.data(), bytes);
        }
    }
    return bytes * static_cast<std::size_t>(nrows);
}

QMIX_API std::size_t quantize(type_id type, const float* src, void* dst, std::int64_t nrows,
                              std::int64_t n_per_row, const float* importance) {
    return quantize(kernels::active_table(), type, src, dst, nrows, n_per_row, importance);
}

QMIX_API void dequantize(const kernels::kernel_table& table, type_id type, const void* src,
                         float* dst, std::int64_t nrows, std::int64_t n_per_row) {
    const std::size_t bytes = detail::checked_row_bytes(type, nrows, n_per_row);
    detail::check_pointer(src, "src", nrows);
    detail::check_pointer(dst, "dst", nrows);
    kernels::dequantize_fn kernel = kernels::slot(table, type).dequantize;
    if (kernel == nullptr) kernel = kernels::slot(kernels::scalar_table(), type).dequantize;
    const auto* in = static_cast<const unsigned char*>(src);
    if (detail::is_aligned(in, info(type).alignment)) {
        if (nrows > 0) kernel(in, dst, nrows, n_per_row);
    } else {
        auto bounce = detail::scratch(bytes);
        for (std::int64_t r = 0; r < nrows; ++r, in += bytes) {
            std::memcpy(bounce.data(), in, bytes);
            kernel(bounce.data(), dst + r * n_per_row, 1, n_per_row);
        }
    }
}

QMIX_API void dequantize(type_id type, const void* src, float* dst, std::int64_t nrows,
                         std::int64_t n_per_row) {
    dequantize(kernels::active_table(), type, src, dst, nrows, n_per_row);
}

QMIX_API float dot(const kernels::kernel_table& table, type_id type, const void* x, const void* y,
                   std::int64_t n) {
    detail::checked_row_bytes(type, 1, n);
    const type_info& t = info(type);
    if (!t.has_dot) {
        throw error(std::string(t.name) + " is an activation format: it has no dot product");
    }
    detail::check_pointer(x, "x", 1);
    detail::check_pointer(y, "y", 1);
    kernels::dot_fn kernel = kernels::slot(table, type).dot;
    if (kernel == nullptr) kernel = kernels::slot(kernels::scalar_table(), type).dot;
    std::vector<std::max_align_t> xb, yb;
    if (!detail::is_aligned(x, t.alignment)) {
        const std::size_t bytes = row_size(type, n);
        xb = detail::scratch(bytes);
        std::memcpy(xb.data(), x, bytes);
        x = xb.data();
    }
    if (!detail::is_aligned(y, info(t.dot_partner).alignment)) {
        const std::size_t bytes = row_size(t.dot_partner, n);
        yb = detail::scratch(bytes);
        std::memcpy(yb.data(), y, bytes);
        y = yb.data();
    }
    return kernel(x, y, n);
}

QMIX_API float dot(type_id type, const void* x, const void* y, std::int64_t n) {
    return dot(kernels::active_table(), type, x, y, n);
}

QMIX_API_END
}  // namespace qmix
