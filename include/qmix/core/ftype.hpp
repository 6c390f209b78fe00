// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <utility>

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix {
QMIX_ABI_BEGIN

/// ggml's model-wide "file type" (what most of the tensors are stored as).
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
};

/// Model headers store ftype + quantization_version * 1000.
inline constexpr std::int32_t quantization_version = 2;
inline constexpr std::int32_t quantization_version_factor = 1000;

QMIX_ABI_END
namespace detail {
QMIX_ABI_BEGIN
inline constexpr std::array<std::pair<ftype, type_id>, 12> ftype_types{{
    {ftype::all_f32, type_id::f32},
    {ftype::mostly_f16, type_id::f16},
    {ftype::mostly_q4_0, type_id::q4_0},
    {ftype::mostly_q4_1, type_id::q4_1},
    {ftype::mostly_q8_0, type_id::q8_0},
    {ftype::mostly_q5_0, type_id::q5_0},
    {ftype::mostly_q5_1, type_id::q5_1},
    {ftype::mostly_q2_k, type_id::q2_k},
    {ftype::mostly_q3_k, type_id::q3_k},
    {ftype::mostly_q4_k, type_id::q4_k},
    {ftype::mostly_q5_k, type_id::q5_k},
    {ftype::mostly_q6_k, type_id::q6_k},
}};
QMIX_ABI_END
}  // namespace detail
QMIX_ABI_BEGIN

/// The tensor type an ftype stands for, or nothing for a value that is not an ftype.
constexpr std::optional<type_id> type_of_ftype(std::int32_t value) noexcept {
    for (const auto& [f, t] : detail::ftype_types) {
        if (static_cast<std::int32_t>(f) == value) return t;
    }
    return std::nullopt;
}

/// The ftype recording "mostly `type`", or nothing for types no ftype names (q8_1, q8_K).
constexpr std::optional<ftype> ftype_of_type(type_id type) noexcept {
    for (const auto& [f, t] : detail::ftype_types) {
        if (t == type) return f;
    }
    return std::nullopt;
}

QMIX_ABI_END
}  // namespace qmix
