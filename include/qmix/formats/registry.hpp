// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <cctype>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "qmix/core/config.hpp"
#include "qmix/core/registry.hpp"
#include "qmix/formats/bf16.hpp"
#include "qmix/formats/float16.hpp"
#include "qmix/formats/float32.hpp"
#include "qmix/formats/iq4_nl.hpp"
#include "qmix/formats/iq4_xs.hpp"
#include "qmix/formats/q2_k.hpp"
#include "qmix/formats/q3_k.hpp"
#include "qmix/formats/q4_0.hpp"
#include "qmix/formats/q4_1.hpp"
#include "qmix/formats/q4_k.hpp"
#include "qmix/formats/q5_0.hpp"
#include "qmix/formats/q5_1.hpp"
#include "qmix/formats/q5_k.hpp"
#include "qmix/formats/q6_k.hpp"
#include "qmix/formats/q8_0.hpp"
#include "qmix/formats/q8_1.hpp"
#include "qmix/formats/q8_k.hpp"

namespace qmix {
QMIX_ABI_BEGIN

/// Every format qmix knows, in ggml's type-id order. Adding a format: one header under
/// formats/ and one entry here.
using all_formats =
    format_list<formats::f32, formats::f16, formats::q4_0, formats::q4_1, formats::q5_0,
                formats::q5_1, formats::q8_0, formats::q8_1, formats::q2_k, formats::q3_k,
                formats::q4_k, formats::q5_k, formats::q6_k, formats::q8_k, formats::iq4_nl,
                formats::iq4_xs, formats::bf16>;

inline constexpr auto type_table = info_table(all_formats{});

/// The entry of `type_table` for `id`, or nullptr for an id qmix does not know.
QMIX_ABI_END
namespace detail {
QMIX_ABI_BEGIN
/// type_table's index of each type id (-1: no format): one look-up instead of a search.
inline constexpr auto type_index = [] {
    std::array<int, slot_count(all_formats{})> index{};
    for (int& i : index) i = -1;
    for (std::size_t k = 0; k < type_table.size(); ++k) {
        index[static_cast<std::size_t>(type_table[k].id)] = static_cast<int>(k);
    }
    return index;
}();
QMIX_ABI_END
}  // namespace detail
QMIX_ABI_BEGIN

constexpr const type_info* find_type_info(type_id id) noexcept {
    const auto slot = static_cast<std::size_t>(static_cast<std::uint32_t>(id));
    if (slot >= detail::type_index.size() || detail::type_index[slot] < 0) return nullptr;
    return &type_table[static_cast<std::size_t>(detail::type_index[slot])];
}

/// Whether a raw type id read from a file names a format qmix knows.
constexpr bool is_known_type(std::int32_t raw) noexcept {
    return find_type_info(static_cast<type_id>(raw)) != nullptr;
}

inline const type_info& info(type_id id) {
    if (const type_info* found = find_type_info(id)) return *found;
    throw error("unknown ggml type id " + std::to_string(static_cast<int>(id)));
}

inline std::string_view type_name(type_id id) {
    return info(id).name;
}

/// Parses a type name the way users write it: "q4_k", "Q4_K" and "q4_K" are the same.
inline std::optional<type_id> parse_type_name(std::string_view text) noexcept {
    for (const auto& entry : type_table) {
        if (entry.name.size() != text.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < text.size() && same; ++i) {
            same = std::tolower(static_cast<unsigned char>(text[i])) == entry.name[i];
        }
        if (same) return entry.id;
    }
    return std::nullopt;
}

/// Values per block and bytes per block.
inline std::size_t block_size(type_id id) {
    return info(id).block_size;
}
inline std::size_t type_size(type_id id) {
    return info(id).type_size;
}

/// Whether a row of n values can be stored in format `id` (n a positive multiple of the
/// block size).
inline bool can_hold_row(type_id id, std::int64_t n) {
    return n > 0 && n % static_cast<std::int64_t>(block_size(id)) == 0;
}

/// Bytes of one row of n values; throws for a row length the format cannot hold.
inline std::size_t row_size(type_id id, std::int64_t n) {
    const type_info& t = info(id);
    if (!can_hold_row(id, n)) {
        throw error("a row of " + std::to_string(n) + " values cannot be stored as " +
                    std::string(t.name) + " (its rows must be a positive multiple of " +
                    std::to_string(t.block_size) + ")");
    }
    const std::size_t blocks = static_cast<std::size_t>(n) / t.block_size;
    if (blocks > std::numeric_limits<std::size_t>::max() / t.type_size) {
        throw error("a row of " + std::to_string(n) + " values stored as " + std::string(t.name) +
                    " would take more bytes than a size_t holds");
    }
    return blocks * t.type_size;
}

/// Bytes of nrows rows of n values; throws for a negative row count, a row length the
/// format cannot hold, or a total that std::size_t cannot count.
inline std::size_t rows_size(type_id id, std::int64_t nrows, std::int64_t n) {
    if (nrows < 0) throw error("negative row count " + std::to_string(nrows));
    const std::size_t bytes = row_size(id, n);
    if (static_cast<std::uint64_t>(nrows) > std::numeric_limits<std::size_t>::max() / bytes) {
        throw error(std::to_string(nrows) + " rows of " + std::to_string(n) + " " +
                    std::string(type_name(id)) +
                    " values would take more bytes than a size_t holds");
    }
    return bytes * static_cast<std::size_t>(nrows);
}

/// The format used across the ggml ecosystem when a format cannot hold a row length (a
/// k-quant: a 32-value block format of similar or better precision); nothing for formats
/// without one. Each format states its own (Format::fallback).
inline std::optional<type_id> fallback_of(type_id id) {
    const type_info& t = info(id);
    if (t.fallback == t.id) return std::nullopt;
    return t.fallback;
}

/// Bits per weight of a format.
inline double bits_per_weight(type_id id) {
    const type_info& t = info(id);
    return 8.0 * static_cast<double>(t.type_size) / static_cast<double>(t.block_size);
}

QMIX_ABI_END
}  // namespace qmix
