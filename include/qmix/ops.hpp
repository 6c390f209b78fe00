// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "qmix/formats/registry.hpp"
#include "qmix/kernels/dispatch.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix {

namespace detail {

/// The bytes of nrows rows of `type`; throws for a negative count, a row length the format
/// cannot hold, or a total no size_t holds.
inline std::size_t rows_size(type_id type, std::int64_t nrows, std::int64_t n_per_row) {
    if (nrows < 0) throw error("negative row count " + std::to_string(nrows));
    const std::size_t bytes = row_size(type, n_per_row);
    if (nrows > 0 && bytes > std::numeric_limits<std::size_t>::max() / std::uint64_t(nrows)) {
        throw error(std::to_string(nrows) + " rows of " + std::to_string(bytes) +
                    " bytes would take more bytes than a size_t holds");
    }
    return bytes * static_cast<std::size_t>(nrows);
}

/// rows_size() plus: neither buffer may be null when there is a row to read or write.
inline void check_rows(type_id type, std::int64_t nrows, std::int64_t n_per_row, const void* from,
                       const void* to, const char* from_name, const char* to_name) {
    rows_size(type, nrows, n_per_row);
    if (nrows > 0 && (from == nullptr || to == nullptr)) {
        throw error(std::string(from == nullptr ? from_name : to_name) + " is null with " +
                    std::to_string(nrows) + " row(s) to convert");
    }
}

template <class T>
bool is_aligned(const void* p) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0;
}

}  // namespace detail

/// Quantizes nrows rows of n_per_row floats from src into dst, as ggml_quantize_chunk does,
/// with the kernels of `table` (a null entry means the format's scalar reference code).
/// `importance` (n_per_row weights, may be null) steers the formats that use one. Returns
/// the bytes written. A row length the format cannot hold is an error, never a truncation.
/// dst needs no particular alignment. The bytes are the same for every kernel table.
inline std::size_t quantize(const kernels::kernel_table& table, type_id type, const float* src,
                            void* dst, std::int64_t nrows, std::int64_t n_per_row,
                            const float* importance = nullptr) {
    detail::check_rows(type, nrows, n_per_row, src, dst, "src", "dst");
    return visit(all_formats{}, type, [&](auto tag) {
        using F = typename decltype(tag)::type;
        using block = typename F::block;
        const std::size_t bytes = row_size(type, n_per_row);
        const kernels::quantize_fn kernel = table[type].quantize;
        auto rows = [&](const float* from, block* to, std::int64_t count) {
            if (kernel != nullptr) {
                kernel(from, to, count, n_per_row, importance);
            } else {
                for (std::int64_t r = 0; r < count; ++r) {
                    F::quantize_row(from + r * n_per_row,
                                    to + std::size_t(r) * (bytes / sizeof(block)), n_per_row,
                                    importance);
                }
            }
        };
        auto* out = static_cast<unsigned char*>(dst);
        if (detail::is_aligned<block>(out)) {  // then every row is: rows are whole blocks
            rows(src, reinterpret_cast<block*>(out), nrows);
        } else {
            std::vector<block> bounce(bytes / sizeof(block));
            for (std::int64_t r = 0; r < nrows; ++r, out += bytes) {
                rows(src + r * n_per_row, bounce.data(), 1);
                std::memcpy(out, bounce.data(), bytes);
            }
        }
        return bytes * static_cast<std::size_t>(nrows);
    });
}

/// quantize() with the active kernel table (kernels::active_table()).
inline std::size_t quantize(type_id type, const float* src, void* dst, std::int64_t nrows,
                            std::int64_t n_per_row, const float* importance = nullptr) {
    return quantize(kernels::active_table(), type, src, dst, nrows, n_per_row, importance);
}

/// Dequantizes nrows rows of n_per_row values of `type` from src (any alignment) into dst,
/// with the kernels of `table`. The floats are the same for every kernel table.
inline void dequantize(const kernels::kernel_table& table, type_id type, const void* src,
                       float* dst, std::int64_t nrows, std::int64_t n_per_row) {
    detail::check_rows(type, nrows, n_per_row, src, dst, "src", "dst");
    visit(all_formats{}, type, [&](auto tag) {
        using F = typename decltype(tag)::type;
        using block = typename F::block;
        const std::size_t bytes = row_size(type, n_per_row);
        const kernels::dequantize_fn kernel = table[type].dequantize;
        auto rows = [&](const block* from, float* to, std::int64_t count) {
            if (kernel != nullptr) {
                kernel(from, to, count, n_per_row);
            } else {
                for (std::int64_t r = 0; r < count; ++r) {
                    F::dequantize_row(from + std::size_t(r) * (bytes / sizeof(block)),
                                      to + r * n_per_row, n_per_row);
                }
            }
        };
        const auto* in = static_cast<const unsigned char*>(src);
        if (detail::is_aligned<block>(in)) {
            rows(reinterpret_cast<const block*>(in), dst, nrows);
        } else {
            std::vector<block> bounce(bytes / sizeof(block));
            for (std::int64_t r = 0; r < nrows; ++r, in += bytes) {
                std::memcpy(bounce.data(), in, bytes);
                rows(bounce.data(), dst + r * n_per_row, 1);
            }
        }
    });
}

/// dequantize() with the active kernel table.
inline void dequantize(type_id type, const void* src, float* dst, std::int64_t nrows,
                       std::int64_t n_per_row) {
    dequantize(kernels::active_table(), type, src, dst, nrows, n_per_row);
}

/// Dot product of one row x of `type` with one row y of its dot partner format
/// (info(type).dot_partner), both n values long, with the kernels of `table`. Kernels
/// may sum in another order than the scalar code: results agree to rounding, as ggml's
/// own kernels agree with its scalar code.
inline float dot(const kernels::kernel_table& table, type_id type, const void* x, const void* y,
                 std::int64_t n) {
    detail::check_rows(type, 1, n, x, y, "x", "y");
    return visit(all_formats{}, type, [&](auto tag) -> float {
        using F = typename decltype(tag)::type;
        if constexpr (!F::has_dot) {
            throw error(std::string(F::name) + " is an activation format: it has no dot product");
        } else {
            using block = typename F::block;
            using partner = typename F::partner_block;
            const std::size_t nx = static_cast<std::size_t>(n) / F::block_size;
            std::vector<block> xb;
            std::vector<partner> yb;
            const block* xp = static_cast<const block*>(x);
            const partner* yp = static_cast<const partner*>(y);
            if (!detail::is_aligned<block>(x)) {
                xb.resize(nx);
                std::memcpy(xb.data(), x, nx * sizeof(block));
                xp = xb.data();
            }
            if (!detail::is_aligned<partner>(y)) {
                const std::size_t bytes = row_size(F::dot_partner, n);
                yb.resize(bytes / sizeof(partner));
                std::memcpy(yb.data(), y, bytes);
                yp = yb.data();
            }
            if (const kernels::dot_fn kernel = table[type].dot) return kernel(xp, yp, n);
            return F::dot_row(xp, yp, n);
        }
    });
}

/// dot() with the active kernel table.
inline float dot(type_id type, const void* x, const void* y, std::int64_t n) {
    return dot(kernels::active_table(), type, x, y, n);
}

}  // namespace qmix
