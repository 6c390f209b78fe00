// SPDX-License-Identifier: MIT
// Fuzz target: every quantizer fed arbitrary finite floats.
//
// Input: one control byte, then float bytes. The floats (non-finite ones replaced, since
// qmix-quantize refuses those unless told otherwise) are quantized into every format with
// the scalar reference and with every kernel table this CPU runs, with and without an
// importance vector: the bytes must be identical, as ops.hpp promises for every kernel.
// The control byte picks the alignment, the row split and whether the values are used as
// they are (any finite float: subnormals, and extremes near +-FLT_MAX whose differences
// overflow, included) or tamed into the range trained weights live in.

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

constexpr std::size_t max_values = 512;  // two k-quant blocks, 16 of the others

std::vector<float> floats_of(const std::uint8_t* data, std::size_t size, bool tame) {
    std::vector<float> values(std::min(size / 4, max_values));
    for (std::size_t i = 0; i < values.size(); ++i) {
        float v;
        std::memcpy(&v, data + 4 * i, 4);
        if (!std::isfinite(v)) v = 0.0f;
        if (tame) {
            std::int32_t bits;
            std::memcpy(&bits, data + 4 * i, 4);
            v = float(bits % 20001) * 1e-5f;  // -0.2 .. 0.2 in steps of 1e-5
        }
        values[i] = v;
    }
    return values;
}

void check_format(const qmix::type_info& type, const std::vector<float>& values,
                  const std::vector<float>& importance, std::uint8_t control) {
    const std::size_t blocks = values.size() / type.block_size;
    if (blocks == 0) return;
    std::int64_t rows = 1 + (control >> 4) % 3;
    if (blocks % std::size_t(rows) != 0) rows = 1;
    const std::int64_t n_per_row = std::int64_t(blocks / std::size_t(rows) * type.block_size);
    const std::size_t bytes = qmix::row_size(type.id, n_per_row) * std::size_t(rows);
    const std::size_t misalign = control & 7;
    std::vector<std::uint8_t> reference(bytes + misalign), other(bytes + misalign);
    for (const float* weights : {static_cast<const float*>(nullptr), importance.data()}) {
        if (weights != nullptr && !type.uses_importance) continue;
        qmix::quantize(qmix::kernels::scalar_table(), type.id, values.data(),
                       reference.data() + misalign, rows, n_per_row, weights);
        for (const qmix::kernels::kernel_table* table : qmix::kernels::available_tables()) {
            qmix::quantize(*table, type.id, values.data(), other.data() + misalign, rows, n_per_row,
                           weights);
            if (std::memcmp(reference.data(), other.data(), reference.size()) == 0) continue;
            std::size_t first = 0;
            while (reference[first] == other[first]) ++first;
            qmix::fuzz::fuzz_fail(std::string(type.name) + (weights ? " with importance" : "") +
                                  ": kernel " + std::string(table->name) +
                                  " writes other bytes than the scalar code (first at byte " +
                                  std::to_string(first - misalign) + ")");
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::uint8_t control = data[0];
    const bool tame = (control & 8) != 0;
    const std::vector<float> values = floats_of(data + 1, size - 1, tame);
    // Importance: non-negative, from the same bytes read backwards.
    std::vector<float> importance(values.size());
    for (std::size_t i = 0; i < importance.size(); ++i) {
        importance[i] = std::fabs(values[values.size() - 1 - i]) + float(i % 7) * 0.25f;
    }
    for (const qmix::type_info& type : qmix::type_table) {
        check_format(type, values, importance, control);
    }
    return 0;
}
