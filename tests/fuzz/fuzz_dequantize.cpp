// SPDX-License-Identifier: MIT
// Fuzz target: every dequantizer and every dot product fed arbitrary bytes.
//
// Input: one control byte, then block bytes. The same bytes are read as a row (or a few
// rows) of every format in the type table, at an alignment the control byte picks, and
// dequantized with the scalar reference and with every kernel table this CPU runs: the
// floats must be identical bit for bit (NaN payloads aside), as ops.hpp promises. For
// formats with a dot product, the row is multiplied with a partner row in two ways: a
// valid partner row (quantized from floats the bytes give) and the raw bytes themselves.
// Dot products are checked for crashes and sanitizer reports only: blocks with arbitrary
// scales allow unbounded cancellation, so kernels that sum in another order may
// legitimately disagree with the scalar code (the golden tests check their values).

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/kernels/dispatch.hpp"
#include "qmix/ops.hpp"

namespace {

/// Longest row tried, in blocks: enough for every SIMD width and its tail handling (q4_0:
/// 512 values; q8_k: 4096).
constexpr std::size_t max_blocks = 16;

bool same_float(float a, float b) {
    if (std::isnan(a) && std::isnan(b)) return true;
    std::uint32_t x, y;
    std::memcpy(&x, &a, 4);
    std::memcpy(&y, &b, 4);
    return x == y;
}

/// Values for a valid partner row, bounded so that every quantizer has defined behaviour.
std::vector<float> partner_values(const std::uint8_t* data, std::size_t size, std::int64_t n,
                                  std::uint8_t scale_byte) {
    const float scale = std::ldexp(1.0f, int(scale_byte % 32) - 16);
    std::vector<float> values(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < values.size(); ++i) {
        const auto byte = size == 0 ? std::uint8_t(i) : data[i % size];
        values[i] = float(std::int8_t(byte)) * scale;
    }
    return values;
}

void check_format(const qmix::type_info& type, const std::uint8_t* data, std::size_t size,
                  std::uint8_t control) {
    std::size_t blocks = std::min(size / type.type_size, max_blocks);
    if (blocks == 0) return;
    // One row, or two or three rows when the blocks split evenly, so that the row loop
    // of the kernels is exercised too.
    std::int64_t rows = 1 + (control >> 3) % 3;
    if (blocks % std::size_t(rows) != 0) rows = 1;
    const std::int64_t n_per_row = std::int64_t(blocks / std::size_t(rows) * type.block_size);
    const std::size_t bytes = blocks * type.type_size;
    const std::size_t misalign = control & 7;
    std::vector<std::uint8_t> storage(bytes + misalign + 1);
    std::uint8_t* x = storage.data() + misalign;
    std::memcpy(x, data, bytes);

    const std::size_t values = std::size_t(rows * n_per_row);
    const auto& reference_table = qmix::kernels::scalar_table();
    std::vector<float> reference(values), other(values);
    qmix::dequantize(reference_table, type.id, x, reference.data(), rows, n_per_row);
    for (const qmix::kernels::kernel_table* table : qmix::kernels::available_tables()) {
        qmix::dequantize(*table, type.id, x, other.data(), rows, n_per_row);
        for (std::size_t i = 0; i < values; ++i) {
            if (same_float(reference[i], other[i])) continue;
            qmix::fuzz::fuzz_fail(std::string(type.name) + " dequantize: kernel " +
                                  std::string(table->name) +
                                  " differs from the scalar code at value " + std::to_string(i));
        }
    }
    if (!type.has_dot) return;

    const std::int64_t n = n_per_row;  // the dot product takes one row
    const std::vector<float> y_values = partner_values(data, size, n, control);
    std::vector<std::uint8_t> y(qmix::row_size(type.dot_partner, n) + misalign);
    qmix::quantize(reference_table, type.dot_partner, y_values.data(), y.data() + misalign, 1, n);
    std::vector<std::uint8_t> raw_y(qmix::row_size(type.dot_partner, n) + 1);
    for (std::size_t i = 0; i < raw_y.size(); ++i) raw_y[i] = data[(i * 7 + 3) % size];
    for (const qmix::kernels::kernel_table* table : qmix::kernels::available_tables()) {
        const float valid = qmix::dot(*table, type.id, x, y.data() + misalign, n);
        const float raw = qmix::dot(*table, type.id, x, raw_y.data() + 1, n);
        // Keep the results observable so that the calls cannot be optimised away.
        volatile float sink = valid + raw;
        (void)sink;
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t control = data[0];
    for (const qmix::type_info& type : qmix::type_table) {
        check_format(type, data + 1, size - 1, control);
    }
    return 0;
}
