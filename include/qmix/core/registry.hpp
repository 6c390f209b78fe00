// SPDX-License-Identifier: MIT
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "qmix/core/config.hpp"
#include "qmix/core/error.hpp"
#include "qmix/core/type_id.hpp"

namespace qmix {
QMIX_ABI_BEGIN

/// A compile-time list of block formats. "For every format" is a fold over such a list.
template <class... Formats>
struct format_list {
    static constexpr std::size_t size = sizeof...(Formats);
};

/// Passed to visitors so that they receive the format as a type, not as a value.
template <class Format>
struct format_tag {
    using type = Format;
};

/// What is known about a format at run time: everything a caller sizing buffers needs.
struct type_info {
    type_id id;
    std::string_view name;   ///< ggml's spelling, lower case: "q4_k"
    std::size_t block_size;  ///< values per block
    std::size_t type_size;   ///< bytes per block
    std::size_t alignment;   ///< alignment of the block struct (the kernels need it)
    type_id dot_partner;     ///< format of the other operand of a dot product
    bool has_dot;            ///< false for the activation-only formats q8_1 and q8_K
    bool uses_importance;    ///< whether an importance vector changes the bytes
    bool is_quantized;       ///< false for the float formats f32, f16 and bf16
    std::int32_t file_type;  ///< ggml's ftype "mostly this format"; -1 when no ftype names it
    type_id fallback;        ///< stored instead when a row does not fit; the id itself if none
};

template <class Format>
constexpr type_info info_of() noexcept {
    return {Format::id,
            Format::name,
            Format::block_size,
            sizeof(typename Format::block),
            alignof(typename Format::block),
            Format::dot_partner,
            Format::has_dot,
            Format::uses_importance,
            Format::is_quantized,
            Format::file_type,
            Format::fallback};
}

QMIX_ABI_END
namespace detail {
QMIX_ABI_BEGIN

template <class Visitor, class First, class... Rest>
decltype(auto) visit_format(type_id id, Visitor&& visitor) {
    if (First::id == id) return std::forward<Visitor>(visitor)(format_tag<First>{});
    if constexpr (sizeof...(Rest) > 0) {
        return visit_format<Visitor, Rest...>(id, std::forward<Visitor>(visitor));
    } else {
        throw error("unknown ggml type id " + std::to_string(static_cast<int>(id)));
    }
}

QMIX_ABI_END
}  // namespace detail
QMIX_ABI_BEGIN

/// Calls visitor(format_tag<F>{}) for the format F of the list whose id is `id`; throws
/// qmix::error for an id that is not in the list. This is the only runtime switch over
/// types: it is generated from the list, so it cannot forget a format.
template <class... Formats, class Visitor>
decltype(auto) visit(format_list<Formats...>, type_id id, Visitor&& visitor) {
    return detail::visit_format<Visitor, Formats...>(id, std::forward<Visitor>(visitor));
}

/// Calls visitor(format_tag<F>{}) for every format of the list, in order.
template <class... Formats, class Visitor>
void for_each_format(format_list<Formats...>, Visitor&& visitor) {
    (visitor(format_tag<Formats>{}), ...);
}

/// One more than the largest type id of the list: the number of slots of a table indexed by
/// type id (kernels::kernel_table).
template <class... Formats>
constexpr std::size_t slot_count(format_list<Formats...>) noexcept {
    std::size_t slots = 0;
    ((slots = static_cast<std::size_t>(Formats::id) + 1 > slots
                  ? static_cast<std::size_t>(Formats::id) + 1
                  : slots),
     ...);
    return slots;
}

template <class... Formats>
constexpr std::array<type_info, sizeof...(Formats)> info_table(format_list<Formats...>) noexcept {
    return {info_of<Formats>()...};
}

QMIX_ABI_END
}  // namespace qmix
