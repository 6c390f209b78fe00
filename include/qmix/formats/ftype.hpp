// SPDX-License-Identifier: MIT
#pragma once

// ggml's model-wide file type ("ftype"). Which ftype records which tensor type is each
// format's own fact (Format::file_type in formats/<name>.hpp): the mappings below are
// read from the registry, so a new format brings its ftype along.

#include <array>
#include <cstdint>
#include <optional>
#include <utility>

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/registry.hpp"

namespace qmix {
QMIX_ABI_BEGIN

/// ggml's model-wide "file type" (what most of the tensors are stored as). Named values
/// for convenience; any format's Format::file_type is one, named here or not.
enum class ftype : std::int32_t {
    all_f32 = 0,
    mostly_f16 = 1,
    mostly_q4_0 = 2,
    mostly_q4_1 = 3,
    mostly_q8_0 = 7,
    mostly_q5_0 = 8,
    mostly_q5_1 = 9,
    mostly_q2_k = 10,
    mostly_q3_k = 11,
    mostly_q4_k = 12,
    mostly_q5_k = 13,
    mostly_q6_k = 14,
    mostly_iq4_nl = 19,
    mostly_iq4_xs = 22,
    mostly_bf16 = 24,
};

/// Model headers store ftype + quantization_version * 1000.
inline constexpr std::int32_t quantization_version = 2;
inline constexpr std::int32_t quantization_version_factor = 1000;

/// The tensor type an ftype stands for, or nothing for a value that is not an ftype.
constexpr std::optional<type_id> type_of_ftype(std::int32_t value) noexcept {
    if (value < 0) return std::nullopt;
    for (const type_info& t : type_table) {
        if (t.file_type == value) return t.id;
    }
    return std::nullopt;
}

/// The ftype recording "mostly `type`", or nothing for types no ftype names (q8_1, q8_K).
constexpr std::optional<ftype> ftype_of_type(type_id type) noexcept {
    const type_info* t = find_type_info(type);
    if (t == nullptr || t->file_type < 0) return std::nullopt;
    return static_cast<ftype>(t->file_type);
}

QMIX_ABI_END
}  // namespace qmix
