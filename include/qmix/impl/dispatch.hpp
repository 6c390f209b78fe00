// SPDX-License-Identifier: MIT
#pragma once

// The definitions behind kernels/dispatch.hpp. The library compiles them once
// (src/kernels_dispatch.cpp); qmix/header_only.hpp includes them inline.

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/config.hpp"
#include "qmix/core/error.hpp"
#include "qmix/kernels/dispatch.hpp"
#include "qmix/kernels/reference.hpp"
#include "qmix/kernels/table.hpp"

namespace qmix::kernels::detail {
QMIX_API_BEGIN

/// One kernel level built into the program.
struct level {
    std::string_view name;         ///< as QMIX_FORCE_ARCH spells it
    const kernel_table* table;     ///< complete (see complete()); null when this CPU cannot run it
    std::string_view requirement;  ///< what the level needs from the CPU, for messages
};

/// The levels built into the program, weakest first, the scalar reference first of all.
/// Defined by the library in src/kernels_dispatch.cpp, or by qmix/header_only.hpp.
QMIX_API const std::vector<level>& built_levels();

/// `own` with the reference's entry in every slot the level has no kernel for: the type
/// is then dispatched once, by one table look-up, whatever the level.
inline kernel_table complete(const kernel_table& own, const kernel_table& reference) {
    kernel_table table = own;
    for (std::size_t i = 0; i < type_slots; ++i) {
        format_kernels& entry = table.formats[i];
        const format_kernels& fallback = reference.formats[i];
        if (entry.quantize == nullptr) entry.quantize = fallback.quantize;
        if (entry.dequantize == nullptr) entry.dequantize = fallback.dequantize;
        if (entry.dot == nullptr) entry.dot = fallback.dot;
    }
    return table;
}

inline std::string names_of(bool runnable_only) {
    std::string names;
    for (const level& l : built_levels()) {
        if (runnable_only && l.table == nullptr) continue;
        if (!names.empty()) names += ' ';
        names += l.name;
    }
    return names;
}

QMIX_API_END
}  // namespace qmix::kernels::detail

namespace qmix::kernels {
QMIX_API_BEGIN

QMIX_API const kernel_table& scalar_table() {
    return *detail::built_levels().front().table;
}

QMIX_API std::vector<const kernel_table*> available_tables() {
    std::vector<const kernel_table*> tables;
    for (const detail::level& l : detail::built_levels()) {
        if (l.table != nullptr) tables.push_back(l.table);
    }
    return tables;
}

QMIX_API std::string available_names() {
    return detail::names_of(true);
}

QMIX_API std::string built_names() {
    return detail::names_of(false);
}

QMIX_API const kernel_table& table_for(std::string_view name) {
    for (const detail::level& l : detail::built_levels()) {
        if (l.name != name) continue;
        if (l.table != nullptr) return *l.table;
        throw error("kernel level '" + std::string(name) + "' needs " + std::string(l.requirement) +
                    ", which this CPU lacks; available: " + detail::names_of(true));
    }
    throw error("kernel level '" + std::string(name) +
                "' is not built into this program (built: " + detail::names_of(false) +
                "; available on this CPU: " + detail::names_of(true) + ")");
}

QMIX_API const kernel_table& best_table() {
    return *available_tables().back();
}

QMIX_API const kernel_table& active_table() {
    static const kernel_table* const chosen = [] {
        const char* forced = std::getenv("QMIX_FORCE_ARCH");
        if (forced == nullptr || *forced == '\0') return &best_table();
        try {
            return &table_for(forced);
        } catch (const error& e) {
            throw error(std::string("QMIX_FORCE_ARCH=") + forced + ": " + e.what());
        }
    }();
    return *chosen;
}

QMIX_API_END
}  // namespace qmix::kernels
