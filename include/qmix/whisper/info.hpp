// SPDX-License-Identifier: MIT
#pragma once

// A human-readable view of a whisper ggml model: hyper-parameters, the tensor table and
// totals per type. Used by qmix-info and by qmix-quantize's report.

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/ftype.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/whisper/loader.hpp"
#include "qmix/whisper/model_file.hpp"

namespace qmix::whisper {

namespace detail {

inline std::string padded(std::string_view text, std::size_t width, bool right_align = false) {
    if (text.size() >= width) return std::string(text);
    const std::string fill(width - text.size(), ' ');
    return right_align ? fill + std::string(text) : std::string(text) + fill;
}

inline std::string mebibytes(std::uint64_t bytes) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f MiB", static_cast<double>(bytes) / 1048576.0);
    return text;
}

}  // namespace detail

/// "mostly q5_0, quantization version 2" for a header ftype field.
inline std::string describe_header_ftype(std::int32_t value) {
    if (!is_valid_header_ftype(value)) return "not a ggml file type";
    const std::int32_t version = value / quantization_version_factor;
    const type_id type = *type_of_ftype(value % quantization_version_factor);
    const std::string what =
        type == type_id::f32 ? std::string("all f32") : "mostly " + std::string(type_name(type));
    return what + ", quantization version " + std::to_string(version);
}

inline void print_hyper_parameters(std::ostream& out, const hyper_parameters& hparams) {
    for (const auto& field : hyper_parameter_fields) {
        const std::int32_t value = hparams.*field.member;
        out << detail::padded(field.name, 15) << value;
        if (field.member == &hyper_parameters::ftype) {
            out << " (" << describe_header_ftype(value) << ")";
        }
        out << '\n';
    }
}

/// One line per tensor: name, extents (ne[0] first), type, bytes.
inline void print_tensor_table(std::ostream& out, const std::vector<tensor_entry>& tensors) {
    std::size_t name_width = 4;
    std::size_t shape_width = 5;
    for (const tensor_entry& t : tensors) {
        name_width = std::max(name_width, t.name.size());
        shape_width = std::max(shape_width, shape_text(t).size());
    }
    out << detail::padded("name", name_width) << "  " << detail::padded("shape", shape_width)
        << "  " << detail::padded("type", 5) << "  " << detail::padded("bytes", 12, true) << '\n';
    for (const tensor_entry& t : tensors) {
        out << detail::padded(t.name, name_width) << "  "
            << detail::padded(shape_text(t), shape_width) << "  "
            << detail::padded(type_name(t.type), 5) << "  "
            << detail::padded(std::to_string(t.data_size), 12, true) << '\n';
    }
}

/// Tensors, values and bytes per type, in type-id order, then the sum.
inline void print_type_totals(std::ostream& out, const std::vector<tensor_entry>& tensors) {
    struct total {
        std::uint64_t tensors = 0, values = 0, bytes = 0;
    };
    std::vector<total> per_type(type_table.size());
    total all;
    for (const tensor_entry& t : tensors) {
        for (std::size_t i = 0; i < type_table.size(); ++i) {
            if (type_table[i].id != t.type) continue;
            per_type[i].tensors += 1;
            per_type[i].values += static_cast<std::uint64_t>(t.element_count());
            per_type[i].bytes += t.data_size;
        }
        all.tensors += 1;
        all.values += static_cast<std::uint64_t>(t.element_count());
        all.bytes += t.data_size;
    }
    const auto line = [&](std::string_view name, const total& sum) {
        char share[16];
        std::snprintf(share, sizeof share, "%.1f%%",
                      all.bytes == 0 ? 0.0
                                     : 100.0 * static_cast<double>(sum.bytes) /
                                           static_cast<double>(all.bytes));
        out << detail::padded(name, 6) << detail::padded(std::to_string(sum.tensors), 8, true)
            << detail::padded(std::to_string(sum.values), 14, true)
            << detail::padded(std::to_string(sum.bytes), 14, true)
            << detail::padded(detail::mebibytes(sum.bytes), 14, true)
            << detail::padded(share, 8, true) << '\n';
    };
    out << detail::padded("type", 6) << detail::padded("tensors", 8, true)
        << detail::padded("values", 14, true) << detail::padded("bytes", 14, true)
        << detail::padded("size", 14, true) << detail::padded("share", 8, true) << '\n';
    for (std::size_t i = 0; i < type_table.size(); ++i) {
        if (per_type[i].tensors > 0) line(type_table[i].name, per_type[i]);
    }
    line("total", all);
}

/// Where the model loads, and every tensor each loader would refuse, with the reason.
inline void print_loaders(std::ostream& out, const loadability& loaders) {
    out << "where it loads: " << loaders.summary() << '\n';
    const auto list = [&](const char* loader, const loader_verdict& verdict) {
        if (verdict.accepts()) return;
        out << "  " << loader << " refuses " << verdict.refusals.size() << " tensor(s):\n";
        for (const refusal& r : verdict.refusals) {
            out << "    " << (r.tensor.empty() ? std::string("(header)") : r.tensor) << ": "
                << r.reason << '\n';
        }
    };
    list("whisper.cpp (released)", loaders.upstream);
    list("whisper.cpp with per-tensor types", loaders.per_tensor);
}

/// Everything qmix-info shows about a model.
inline void print_model_info(std::ostream& out, const model_file& model) {
    out << model.path() << ": " << model.file_size() << " bytes ("
        << detail::mebibytes(model.file_size()) << "), header " << model.layout().tensors_offset
        << " bytes, " << model.tensors().size() << " tensors\n\n";
    print_hyper_parameters(out, model.hparams());
    out << detail::padded("mel filters", 15) << model.filters().n_mel << " x "
        << model.filters().n_fft << '\n'
        << detail::padded("vocabulary", 15) << model.vocabulary_size() << " tokens\n\n";
    print_tensor_table(out, model.tensors());
    out << '\n';
    print_type_totals(out, model.tensors());
    out << '\n';
    print_loaders(out, check_loaders(model.tensors(), model.hparams().ftype));
}

}  // namespace qmix::whisper
