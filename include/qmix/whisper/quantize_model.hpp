// SPDX-License-Identifier: MIT
#pragma once

// Mixed-precision quantization of a whisper model: plan which type each tensor gets
// (rules, default type, fallbacks, exactly the reference tool's choice of candidates), then
// stream the model through the quantizers into an atomically written output file.

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/ops.hpp"
#include "qmix/parallel.hpp"
#include "qmix/rules/rules.hpp"
#include "qmix/whisper/loader.hpp"
#include "qmix/whisper/model_file.hpp"
#include "qmix/whisper/model_writer.hpp"

namespace qmix::whisper {

/// Whether the reference quantizer would convert this tensor: exactly two dimensions and
/// not in `never_quantized`; the same tensors whisper.cpp creates as the header's type.
inline bool is_candidate(const tensor_entry& tensor) {
    return role_of(tensor) == tensor_role::matrix;
}

using qmix::fallback_of;  // each format's own Format::fallback, from the registry

struct quantize_options {
    type_id default_type = type_id::q4_0;
    rules::rule_set rules;
    unsigned threads = 0;           ///< 0: all cores
    bool allow_requantize = false;  ///< accept already-quantized candidates (widen first)
    bool no_fallback = false;       ///< a row length the chosen type cannot hold is an error
    bool allow_nonfinite = false;   ///< accept NaN and infinity in weights
    bool compute_stats = false;     ///< RMSE and max abs error per converted tensor
    bool upstream_loader = false;   ///< refuse a plan that released whisper.cpp cannot load
};

/// Why a tensor ends up with its output type.
enum class decision {
    rule,          ///< a --tensor-type rule chose the type
    default_type,  ///< no rule matched: the default type
    fallback,      ///< the chosen type cannot hold the rows: the fallback format
    kept,          ///< a candidate whose rows no format of the family can hold: unchanged
    copied,        ///< not a candidate (not 2-D, or never quantized): copied byte for byte
    loader_type,   ///< not a candidate, converted to the type whisper.cpp creates it as
};

inline std::string_view decision_name(decision d) {
    switch (d) {
        case decision::rule:
            return "rule";
        case decision::default_type:
            return "default";
        case decision::fallback:
            return "fallback";
        case decision::kept:
            return "kept";
        case decision::copied:
            return "copied";
        case decision::loader_type:
            return "loader type";
    }
    return "?";
}

struct tensor_plan {
    const tensor_entry* tensor = nullptr;
    bool candidate = false;
    type_id requested = type_id::f32;  ///< what the rules or the default asked for
    type_id output = type_id::f32;     ///< what is written
    decision why = decision::copied;
    std::optional<std::size_t> rule;          ///< the rule that chose `requested`
    std::optional<std::size_t> ignored_rule;  ///< a rule that matched a non-candidate
    std::uint64_t output_bytes = 0;
    std::string note;  ///< one line for the table, e.g. why it was copied

    bool converts() const { return output != tensor->type; }
};

struct model_plan {
    std::vector<tensor_plan> tensors;
    std::int32_t header_ftype = 0;  ///< as written: ftype + 1000 * quantization version
    bool mixed = false;             ///< the candidates end up with more than one type
    loadability loaders;            ///< where the output loads, and with how much memory
    std::vector<rules::rule_usage> rule_usage;
    std::uint64_t input_bytes = 0;
    std::uint64_t output_bytes = 0;
    std::int64_t candidate_values = 0;
    double nominal_bits = 0;  ///< bits of the candidates at the requested types
    double actual_bits = 0;   ///< bits of the candidates as written
    std::vector<std::string> warnings;

    std::size_t count(decision d) const {
        return static_cast<std::size_t>(std::count_if(
            tensors.begin(), tensors.end(), [d](const tensor_plan& t) { return t.why == d; }));
    }
};

namespace detail {

inline std::string tensor_label(const model_file& model, const tensor_entry& tensor) {
    return model.path() + ": tensor '" + tensor.name + "' (offset " +
           std::to_string(tensor.record_offset) + ")";
}

/// The header field for the plan's matrices (see header_type_for), and whether they mix types.
inline std::int32_t header_ftype_for(const std::vector<tensor_plan>& plans, type_id default_type,
                                     bool& mixed) {
    std::vector<type_id> types;
    std::vector<std::int64_t> rows;
    for (const auto& p : plans) {
        if (!p.candidate) continue;
        if (std::find(types.begin(), types.end(), p.output) == types.end()) {
            types.push_back(p.output);
        }
        rows.push_back(p.tensor->ne[0]);
    }
    mixed = types.size() > 1;
    const type_id header = header_type_for(types, rows, default_type);
    return static_cast<std::int32_t>(*ftype_of_type(header)) +
           quantization_version * quantization_version_factor;
}

/// Conv weights and the other tensors that are not matrices get the type whisper.cpp creates
/// them as under the plan's header: f16 conv weights unless the header is f32 (an f32 model
/// quantized keeps its f32 conv weights in the reference tool, and no whisper.cpp loads that),
/// f32 for everything else.
inline void give_loader_types(std::vector<tensor_plan>& plans, std::int32_t header_ftype) {
    const type_id wtype = *type_of_ftype(header_ftype % quantization_version_factor);
    for (auto& p : plans) {
        if (p.candidate) continue;
        const type_id wanted = created_type(role_of(*p.tensor), wtype);
        if (wanted == p.tensor->type || !can_hold_row(wanted, p.tensor->ne[0])) continue;
        p.output = wanted;
        p.why = decision::loader_type;
        p.note = std::string(type_name(p.tensor->type)) + " -> " + std::string(type_name(wanted)) +
                 ", the type whisper.cpp creates it as under a " + std::string(type_name(wtype)) +
                 " header";
        p.ignored_rule = std::nullopt;
    }
}

/// The directory of the file a plan writes: every tensor with its output type and size.
inline std::vector<tensor_entry> output_directory(const std::vector<tensor_plan>& plans) {
    std::vector<tensor_entry> out;
    out.reserve(plans.size());
    for (const auto& p : plans) {
        tensor_entry t = *p.tensor;
        t.type = p.output;
        t.data_size = p.output_bytes;
        out.push_back(std::move(t));
    }
    return out;
}

/// Types every matrix of the plan can be written in without a fallback: the uniform
/// choices that released whisper.cpp loads.
inline std::vector<type_id> uniform_choices(const std::vector<tensor_plan>& plans) {
    std::vector<type_id> choices;
    for (const auto& entry : type_table) {
        if (!ftype_of_type(entry.id)) continue;
        const bool holds = std::all_of(plans.begin(), plans.end(), [&](const tensor_plan& p) {
            return !p.candidate || can_hold_row(entry.id, p.tensor->ne[0]);
        });
        if (holds) choices.push_back(entry.id);
    }
    return choices;
}

inline void require_upstream_loader(const model_file& model, const model_plan& plan) {
    const auto& refusals = plan.loaders.upstream.refusals;
    if (refusals.empty()) return;
    std::string list;
    const std::size_t shown = std::min<std::size_t>(refusals.size(), 12);
    for (std::size_t i = 0; i < shown; ++i) {
        list += "\n  " + (refusals[i].tensor.empty() ? std::string("header") : refusals[i].tensor) +
                ": " + refusals[i].reason;
    }
    if (shown < refusals.size()) {
        list += "\n  ... and " + std::to_string(refusals.size() - shown) + " more";
    }
    std::string choices;
    for (const type_id t : uniform_choices(plan.tensors))
        choices += " " + std::string(type_name(t));
    throw error(model.path() + ": --loader upstream: the output would mix matrix types, which " +
                "released whisper.cpp refuses (" + std::to_string(refusals.size()) +
                " tensor(s)):" + list + "\nuniform types every matrix can hold:" + choices +
                " (drop the rules or pick one of these as the type)");
}

}  // namespace detail

/// Decides every tensor's output type without reading any tensor data. Throws a
/// qmix::error for candidates that cannot be converted (quantized input without
/// allow_requantize; with no_fallback, every row length a chosen type cannot hold).
inline model_plan make_plan(const model_file& model, const quantize_options& options) {
    model_plan plan;
    std::vector<std::string> candidate_names;
    std::vector<std::string> unholdable;
    for (const auto& tensor : model.tensors()) {
        tensor_plan p;
        p.tensor = &tensor;
        p.candidate = is_candidate(tensor);
        p.output = tensor.type;
        plan.input_bytes += tensor.data_size;
        if (!p.candidate) {
            p.why = decision::copied;
            p.note = tensor.n_dims != 2 ? std::to_string(tensor.n_dims) + "-D" : "never quantized";
            p.ignored_rule = options.rules.first_match(tensor.name);
        } else {
            candidate_names.push_back(tensor.name);
            p.rule = options.rules.first_match(tensor.name);
            p.requested = p.rule ? options.rules.rules()[*p.rule].type : options.default_type;
            p.why = p.rule ? decision::rule : decision::default_type;
            p.output = p.requested;
            if (info(tensor.type).is_quantized && tensor.type != p.requested &&
                !options.allow_requantize) {
                throw error(detail::tensor_label(model, tensor) + " is already quantized as " +
                            std::string(type_name(tensor.type)) +
                            "; converting it again loses precision (use --allow-requantize)");
            }
            if (!can_hold_row(p.requested, tensor.ne[0])) {
                const std::string why_text = std::string(type_name(p.requested)) +
                                             " cannot hold rows of " + std::to_string(tensor.ne[0]);
                if (options.no_fallback) {
                    unholdable.push_back(tensor.name + " (" + why_text + ")");
                }
                const auto fallback = fallback_of(p.requested);
                if (fallback && can_hold_row(*fallback, tensor.ne[0])) {
                    p.output = *fallback;
                    p.why = decision::fallback;
                    p.note = why_text + ": " + std::string(type_name(*fallback));
                } else {
                    p.output = tensor.type;
                    p.why = decision::kept;
                    p.note = why_text + ": kept as " + std::string(type_name(tensor.type));
                }
            }
            const double values = static_cast<double>(tensor.element_count());
            plan.candidate_values += tensor.element_count();
            plan.nominal_bits += values * bits_per_weight(p.requested);
            plan.actual_bits += values * bits_per_weight(p.output);
        }
        plan.tensors.push_back(std::move(p));
    }
    if (!unholdable.empty()) {
        std::string list;
        for (const auto& u : unholdable) list += "\n  " + u;
        throw error(model.path() + ": --no-fallback: " + std::to_string(unholdable.size()) +
                    " tensor(s) have rows their type cannot hold:" + list);
    }
    plan.header_ftype = detail::header_ftype_for(plan.tensors, options.default_type, plan.mixed);
    detail::give_loader_types(plan.tensors, plan.header_ftype);
    plan.output_bytes = model.header_bytes().size;
    for (auto& p : plan.tensors) {
        const tensor_entry& tensor = *p.tensor;
        p.output_bytes = p.converts() ? bytes_as(tensor, p.output) : tensor.data_size;
        plan.output_bytes += p.output_bytes + (tensor.data_offset - tensor.record_offset);
    }
    plan.loaders = check_loaders(detail::output_directory(plan.tensors), plan.header_ftype);
    if (options.upstream_loader) detail::require_upstream_loader(model, plan);
    plan.rule_usage = rules::explain(options.rules, candidate_names);
    for (std::size_t i = 0; i < options.rules.size(); ++i) {
        const auto& r = options.rules.rules()[i];
        const auto& u = plan.rule_usage[i];
        if (u.matches == 0) {
            plan.warnings.push_back("rule '" + r.pattern + "=" + std::string(type_name(r.type)) +
                                    "' (" + r.origin + ") matched no candidate tensor");
        } else if (u.wins == 0 && u.shadowed_by) {
            const auto& earlier = options.rules.rules()[*u.shadowed_by];
            plan.warnings.push_back("rule '" + r.pattern + "' (" + r.origin +
                                    ") is never reached: every tensor it matches is taken by "
                                    "the earlier rule '" +
                                    earlier.pattern + "' (" + earlier.origin + ")");
        }
    }
    return plan;
}

/// Per-tensor error of the written values against the input, when asked for.
struct tensor_stats {
    bool computed = false;
    double rmse = 0;
    double max_abs_error = 0;
};

/// Reported as the work goes: bytes of tensor data done out of the total.
using progress_fn = std::function<void(std::size_t tensor_index, std::uint64_t bytes_done,
                                       std::uint64_t bytes_total)>;

struct quantize_result {
    std::vector<tensor_stats> stats;  ///< parallel to plan.tensors
    double seconds = 0;
};

namespace detail {

inline void check_finite(const model_file& model, const tensor_entry& tensor, const float* values,
                         std::int64_t count, std::int64_t first_index) {
    // A branch-free pass the compiler vectorises; the slow search only runs on a finding.
    std::uint32_t any_nonfinite = 0;
    for (std::int64_t i = 0; i < count; ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, values + i, sizeof bits);
        any_nonfinite |= std::uint32_t((bits & 0x7f800000u) == 0x7f800000u);
    }
    if (any_nonfinite == 0) return;
    for (std::int64_t i = 0; i < count; ++i) {
        if (!std::isfinite(values[i])) {
            throw error(tensor_label(model, tensor) + ": value " + std::to_string(first_index + i) +
                        " is " + (std::isnan(values[i]) ? "NaN" : "infinite") +
                        " (use --allow-nonfinite to quantize it anyway)");
        }
    }
}

/// Error of one row of written values against the input.
struct error_sums {
    double squared = 0;
    double max_abs = 0;
};

inline error_sums row_error(const float* input, const float* written, std::int64_t n) {
    error_sums e;
    for (std::int64_t i = 0; i < n; ++i) {
        const double d = double(written[i]) - double(input[i]);
        e.squared += d * d;
        e.max_abs = std::max(e.max_abs, std::fabs(d));
    }
    return e;
}

}  // namespace detail

/// Streams the model through the plan into `writer` (header, every tensor, commit is left
/// to the caller). Memory stays proportional to one chunk of rows per thread.
inline quantize_result execute_plan(const model_file& model, const model_plan& plan,
                                    const quantize_options& options, model_writer& writer,
                                    const progress_fn& progress = {}) {
    const auto start = std::chrono::steady_clock::now();
    const unsigned threads = resolve_threads(options.threads);
    quantize_result result;
    result.stats.resize(plan.tensors.size());
    writer.write_header(model, plan.header_ftype);

    std::uint64_t total = 0;
    for (const auto& p : plan.tensors) total += p.tensor->data_size;
    std::uint64_t done = 0;
    // Rows are converted in chunks of about this many input values, split across threads.
    constexpr std::int64_t chunk_values = std::int64_t(1) << 20;
    std::vector<float> widened;
    std::vector<std::uint8_t> packed;
    std::vector<float> restored;

    for (std::size_t index = 0; index < plan.tensors.size(); ++index) {
        const tensor_plan& p = plan.tensors[index];
        const tensor_entry& tensor = *p.tensor;
        if (!p.converts()) {
            writer.copy_tensor(model, tensor);
        } else {
            writer.begin_tensor(tensor.name, p.output, tensor.n_dims, tensor.ne);
            const std::int64_t n = tensor.ne[0];
            const std::int64_t rows = tensor.row_count();
            const std::int64_t chunk_rows = std::max<std::int64_t>(1, chunk_values / n);
            const std::size_t in_row = row_size(tensor.type, n);
            const std::size_t out_row = row_size(p.output, n);
            const byte_view source = model.data(tensor);
            std::vector<detail::error_sums> row_errors;
            double squared = 0;
            double max_abs = 0;
            for (std::int64_t first = 0; first < rows; first += chunk_rows) {
                const std::int64_t count = std::min(chunk_rows, rows - first);
                widened.resize(static_cast<std::size_t>(count * n));
                packed.resize(out_row * static_cast<std::size_t>(count));
                if (options.compute_stats) {
                    restored.resize(widened.size());
                    row_errors.resize(static_cast<std::size_t>(count));
                }
                parallel_ranges(count, threads, [&](std::int64_t begin, std::int64_t end) {
                    float* values = widened.data() + begin * n;
                    // f32, f16 or (with --allow-requantize) a quantized type, widened.
                    dequantize(tensor.type, source.data + std::size_t(first + begin) * in_row,
                               values, end - begin, n);
                    if (!options.allow_nonfinite) {
                        detail::check_finite(model, tensor, values, (end - begin) * n,
                                             (first + begin) * n);
                    }
                    quantize(p.output, values, packed.data() + std::size_t(begin) * out_row,
                             end - begin, n);
                    if (options.compute_stats) {
                        float* back = restored.data() + begin * n;
                        dequantize(p.output, packed.data() + std::size_t(begin) * out_row, back,
                                   end - begin, n);
                        for (std::int64_t r = begin; r < end; ++r) {
                            row_errors[std::size_t(r)] = detail::row_error(
                                values + (r - begin) * n, back + (r - begin) * n, n);
                        }
                    }
                });
                writer.write_data(packed.data(), packed.size());
                model.release_part(tensor, std::uint64_t(first) * in_row,
                                   std::uint64_t(count) * in_row);
                for (std::size_t r = 0; r < row_errors.size() && options.compute_stats; ++r) {
                    squared += row_errors[r].squared;  // summed in row order: thread-independent
                    max_abs = std::max(max_abs, row_errors[r].max_abs);
                }
                if (progress) progress(index, done + std::uint64_t(first + count) * in_row, total);
            }
            writer.end_tensor();
            if (options.compute_stats) {
                auto& st = result.stats[index];
                st.computed = true;
                st.rmse = std::sqrt(squared / double(tensor.element_count()));
                st.max_abs_error = max_abs;
            }
        }
        model.release(tensor);
        done += tensor.data_size;
        if (progress) progress(index, done, total);
    }
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace qmix::whisper
