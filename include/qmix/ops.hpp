// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "qmix/formats/registry.hpp"

namespace qmix {

namespace detail {

inline void check_rows(type_id type, std::int64_t nrows, std::int64_t n_per_row) {
    if (nrows < 0) throw error("negative row count " + std::to_string(nrows));
    row_size(type, n_per_row);  // throws for a row length the format cannot hold
}

template <class T>
bool is_aligned(const void* p) noexcept {
    return reinterpret_cast<std::uintptr_t>(p) % alignof(T) == 0;
}

}  // namespace detail

/// Quantizes nrows rows of n_per_row floats from src into dst, as ggml_quantize_chunk does.
/// `importance` (n_per_row weights, may be null) steers the formats that use one. Returns
/// the bytes written. A row length the format cannot hold is an error, never a truncation.
/// dst needs no particular alignment.
inline std::size_t quantize(type_id type, const float* src, void* dst, std::int64_t nrows,
                            std::int64_t n_per_row, const float* importance = nullptr) {
    detail::check_rows(type, nrows, n_per_row);
    return visit(all_formats{}, type, [&](auto tag) {
        using F = typename decltype(tag)::type;
        using block = typename F::block;
        const std::size_t bytes = row_size(type, n_per_row);
        auto* out = static_cast<unsigned char*>(dst);
        std::vector<block> bounce;
        for (std::int64_t r = 0; r < nrows; ++r, out += bytes) {
            const float* row = src + r * n_per_row;
            if (detail::is_aligned<block>(out)) {
                F::quantize_row(row, reinterpret_cast<block*>(out), n_per_row, importance);
            } else {
                bounce.resize(bytes / sizeof(block));
                F::quantize_row(row, bounce.data(), n_per_row, importance);
                std::memcpy(out, bounce.data(), bytes);
            }
        }
        return bytes * static_cast<std::size_t>(nrows);
    });
}

/// Dequantizes nrows rows of n_per_row values of `type` from src (any alignment) into dst.
inline void dequantize(type_id type, const void* src, float* dst, std::int64_t nrows,
                       std::int64_t n_per_row) {
    detail::check_rows(type, nrows, n_per_row);
    visit(all_formats{}, type, [&](auto tag) {
        using F = typename decltype(tag)::type;
        using block = typename F::block;
        const std::size_t bytes = row_size(type, n_per_row);
        const auto* in = static_cast<const unsigned char*>(src);
        std::vector<block> bounce;
        for (std::int64_t r = 0; r < nrows; ++r, in += bytes) {
            float* row = dst + r * n_per_row;
            if (detail::is_aligned<block>(in)) {
                F::dequantize_row(reinterpret_cast<const block*>(in), row, n_per_row);
            } else {
                bounce.resize(bytes / sizeof(block));
                std::memcpy(bounce.data(), in, bytes);
                F::dequantize_row(bounce.data(), row, n_per_row);
            }
        }
    });
}

/// Dot product of one row x of `type` with one row y of its dot partner format
/// (info(type).dot_partner), both n values long.
inline float dot(type_id type, const void* x, const void* y, std::int64_t n) {
    detail::check_rows(type, 1, n);
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
            return F::dot_row(xp, yp, n);
        }
    });
}

}  // namespace qmix
