// SPDX-License-Identifier: MIT
#pragma once

// The scalar level: each format's own reference code (formats/*.hpp), row by row, as a
// kernel table like any other level. It is the specification the vector levels must
// equal, and it fills the slots a vector level has no kernel of its own for.

#include <cstddef>
#include <cstdint>

#include "qmix/core/config.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix::kernels {
QMIX_ABI_BEGIN
QMIX_ABI_END
namespace reference {
QMIX_ABI_BEGIN

template <class Format>
void quantize_rows(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                   const float* importance) {
    auto* out = static_cast<typename Format::block*>(dst);
    const std::int64_t blocks = n_per_row / std::int64_t(Format::block_size);
    for (std::int64_t r = 0; r < nrows; ++r) {
        Format::quantize_row(src + r * n_per_row, out + r * blocks, n_per_row, importance);
    }
}

template <class Format>
void dequantize_rows(const void* src, float* dst, std::int64_t nrows, std::int64_t n_per_row) {
    const auto* in = static_cast<const typename Format::block*>(src);
    const std::int64_t blocks = n_per_row / std::int64_t(Format::block_size);
    for (std::int64_t r = 0; r < nrows; ++r) {
        Format::dequantize_row(in + r * blocks, dst + r * n_per_row, n_per_row);
    }
}

template <class Format>
float dot_row(const void* x, const void* y, std::int64_t n) {
    return Format::dot_row(static_cast<const typename Format::block*>(x),
                           static_cast<const typename Format::partner_block*>(y), n);
}

QMIX_ABI_END
}  // namespace reference
QMIX_ABI_BEGIN

/// The scalar reference's table: every format of the registry, named "scalar".
inline kernel_table make_reference_table() {
    kernel_table table{};
    table.name = "scalar";
    for_each_format(all_formats{}, [&](auto tag) {
        using F = typename decltype(tag)::type;
        format_kernels& entry = slot(table, F::id);
        entry.quantize = &reference::quantize_rows<F>;
        entry.dequantize = &reference::dequantize_rows<F>;
        if constexpr (F::has_dot) entry.dot = &reference::dot_row<F>;
    });
    return table;
}

QMIX_ABI_END
}  // namespace qmix::kernels
