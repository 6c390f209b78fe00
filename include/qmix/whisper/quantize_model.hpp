// SPDX-License-Identifier: MIT
#pragma once

// Mixed-precision quantization of a whisper model: plan which type each tensor gets
// (rules, default type, fallbacks, exactly the reference tool's choice of candidates), then
// stream the model through the quantizers into an atomically written output file.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <new>
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
    plan.output_bytes = model.header_size();
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
    // --allow-requantize is a choice to lose precision: say how much of the model it costs.
    std::size_t requantized = 0;
    std::string from_types;
    for (const auto& p : plan.tensors) {
        if (!p.converts() || !info(p.tensor->type).is_quantized) continue;
        ++requantized;
        const std::string name(type_name(p.tensor->type));
        if (from_types.find(" " + name + ",") == std::string::npos) from_types += " " + name + ",";
    }
    if (requantized > 0) {
        from_types.pop_back();
        plan.warnings.push_back(std::to_string(requantized) + " already-quantized tensor(s) (" +
                                from_types.substr(1) +
                                ") are widened and quantized again (--allow-requantize): the "
                                "result is less precise than quantizing the f16/f32 original");
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

// Whether any value is infinite or NaN (exponent all ones), tested on the bits of several
// values in one 64-bit word: with the sign cleared, adding the lowest exponent bit carries
// into the field's top bit exactly when the exponent is all ones, and never into the next
// field. An OR of those bits is a reduction the compiler vectorises at any level.

/// The test on `count` binary32 values.
inline bool any_nonfinite_f32(const float* values, std::int64_t count) noexcept {
    constexpr std::uint64_t magnitude = 0x7fffffff7fffffffu;
    constexpr std::uint64_t lowest_exponent = 0x0080000000800000u;
    constexpr std::uint64_t top = 0x8000000080000000u;
    std::uint64_t found = 0;
    std::int64_t i = 0;
    for (; i + 2 <= count; i += 2) {
        std::uint64_t bits;
        std::memcpy(&bits, values + i, sizeof bits);
        found |= ((bits & magnitude) + lowest_exponent) & top;
    }
    for (; i < count; ++i) {
        std::uint32_t bits;
        std::memcpy(&bits, values + i, sizeof bits);
        found |= (bits & 0x7fffffffu) >= 0x7f800000u;
    }
    return found != 0;
}

/// The same test on binary16 values as stored (little-endian): half the bytes to read.
inline bool any_nonfinite_f16(const std::uint8_t* bytes, std::int64_t count) noexcept {
    std::uint64_t found = 0;
    std::int64_t i = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    constexpr std::uint64_t magnitude = 0x7fff7fff7fff7fffu;
    constexpr std::uint64_t lowest_exponent = 0x0400040004000400u;
    constexpr std::uint64_t top = 0x8000800080008000u;
    for (; i + 4 <= count; i += 4) {
        std::uint64_t bits;
        std::memcpy(&bits, bytes + 2 * i, sizeof bits);
        found |= ((bits & magnitude) + lowest_exponent) & top;
    }
#endif
    for (; i < count; ++i) {
        const unsigned bits = (unsigned(bytes[2 * i]) | unsigned(bytes[2 * i + 1]) << 8) & 0x7fffu;
        found |= bits >= 0x7c00u;
    }
    return found != 0;
}

/// Throws naming the first infinite or NaN value, if any. `raw` is the input as stored
/// when it is binary16 (checked there, before widening), else null.
inline void check_finite(const model_file& model, const tensor_entry& tensor, const float* values,
                         std::int64_t count, std::int64_t first_index,
                         const std::uint8_t* raw_f16 = nullptr) {
    // A branch-free pass; the slow search only runs on a finding.
    const bool found =
        raw_f16 != nullptr ? any_nonfinite_f16(raw_f16, count) : any_nonfinite_f32(values, count);
    if (!found) return;
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

namespace detail {

/// How the quantizer cuts a converted tensor into pieces that one thread handles with
/// buffers that stay in its cache: whole rows when a row fits the piece size, else parts
/// of one row cut at block boundaries (every format's reference quantizer works block by
/// block, so a row cut at block boundaries gives the very same bytes). A row of any length
/// thus costs a piece of memory, not a row of it.
struct piece_layout {
    std::int64_t n = 0;                 ///< row length
    std::int64_t rows = 0;              ///< row count
    std::int64_t rows_per_piece = 0;    ///< whole rows per piece (0 when rows are cut)
    std::int64_t segment = 0;           ///< values per part of a row (when rows are cut)
    std::int64_t segments_per_row = 0;  ///< parts per row (when rows are cut)
    std::int64_t count = 0;             ///< pieces
    type_id input = type_id::f32;
    type_id output = type_id::f32;

    piece_layout(std::int64_t n_, std::int64_t rows_, type_id in, type_id out,
                 std::int64_t piece_values)
        : n(n_), rows(rows_), input(in), output(out) {
        if (n <= piece_values) {
            rows_per_piece = std::max<std::int64_t>(1, piece_values / n);
            count = (rows + rows_per_piece - 1) / rows_per_piece;
        } else {
            // The block sizes are 1, 32 or 256, so the larger is a multiple of the smaller.
            const auto block =
                static_cast<std::int64_t>(std::max(block_size(input), block_size(output)));
            segment = std::max(block, piece_values / block * block);
            segments_per_row = (n + segment - 1) / segment;
            count = rows * segments_per_row;
        }
    }

    struct piece {
        std::int64_t first_value;  ///< index of its first value in the tensor
        std::int64_t row_count;
        std::int64_t row_length;  ///< n, or the part's length
        std::uint64_t in_offset;  ///< byte offsets in the tensor's input and output data
        std::uint64_t out_offset;
    };

    /// Piece p; p == count gives the offsets of the end of the data.
    piece at(std::int64_t p) const {
        piece r{};
        if (segment == 0) {
            const std::int64_t first_row = std::min(rows, p * rows_per_piece);
            r.row_count = std::min(rows_per_piece, rows - first_row);
            r.row_length = n;
            r.first_value = first_row * n;
            r.in_offset = std::uint64_t(first_row) * row_size(input, n);
            r.out_offset = std::uint64_t(first_row) * row_size(output, n);
            return r;
        }
        const std::int64_t row = p / segments_per_row;
        const std::int64_t start = (p % segments_per_row) * segment;
        r.row_count = p < count ? 1 : 0;
        r.row_length = p < count ? std::min(segment, n - start) : 0;
        r.first_value = row * n + start;
        r.in_offset =
            std::uint64_t(row) * row_size(input, n) + (start == 0 ? 0 : row_size(input, start));
        r.out_offset =
            std::uint64_t(row) * row_size(output, n) + (start == 0 ? 0 : row_size(output, start));
        return r;
    }
};

/// One worker's buffers, reused from piece to piece and tensor to tensor.
struct piece_buffers {
    std::vector<std::uint8_t> input;  // raw input bytes (aligned by the allocator)
    std::vector<float> values;        // widened
    std::vector<float> restored;      // written values widened again (--stats)
};

inline void ensure_size(std::vector<std::uint8_t>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}
inline void ensure_size(std::vector<float>& v, std::size_t n) {
    if (v.size() < n) v.resize(n);
}

/// Copies a tensor's data to the writer through one reused buffer.
inline void copy_tensor_data(const model_file& model, const tensor_entry& tensor,
                             model_writer& writer, std::vector<std::uint8_t>& buffer) {
    writer.begin_tensor(tensor.name, tensor.type, tensor.n_dims, tensor.ne);
    for (std::uint64_t offset = 0; offset < tensor.data_size;) {
        const auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(buffer.size(), tensor.data_size - offset));
        model.file().prefetch(tensor.data_offset + offset + n, buffer.size());
        model.read_data(tensor, offset, buffer.data(), n);
        writer.write_data(buffer.data(), n);
        offset += n;
    }
    writer.end_tensor();
}

}  // namespace detail

/// Streams the model through the plan into `writer` (header, every tensor, commit is left
/// to the caller). Memory stays bounded whatever the model holds: a piece of values and
/// its input per thread, two chunks of output, one copy buffer, none of them in proportion
/// to a row, a tensor or the header.
///
/// Tensor data is fetched with positional reads into reused buffers (cheaper than faulting
/// a mapping in and releasing it again, and the same whether or not the file is mapped).
/// Threads take pieces of a chunk as they come free; the calling thread first writes the
/// previous chunk, so writing overlaps the conversion of the next chunk.
inline quantize_result execute_plan(const model_file& model, const model_plan& plan,
                                    const quantize_options& options, model_writer& writer,
                                    const progress_fn& progress = {}) {
    const auto start = std::chrono::steady_clock::now();
    const unsigned threads = std::max(1u, resolve_threads(options.threads));
    quantize_result result;
    result.stats.resize(plan.tensors.size());
    writer.write_header(model, plan.header_ftype);

    std::uint64_t total = 0;
    for (const auto& p : plan.tensors) total += p.tensor->data_size;
    std::uint64_t done = 0;
    // A piece (one thread's unit of work) is about 64 Ki values: its input, its widened
    // values and their quantized form stay in a core's L2 cache from reading to writing.
    // A chunk (what is written at once) is about 2 Mi values.
    constexpr std::int64_t piece_values = std::int64_t(1) << 16;
    constexpr std::int64_t chunk_values = std::int64_t(1) << 21;
    constexpr std::size_t copy_buffer_bytes = std::size_t(4) << 20;
    std::vector<detail::piece_buffers> workers(threads);
    worker_pool pool(threads);  // started once: a model has hundreds of chunks
    std::array<std::vector<std::uint8_t>, 2> packed;
    std::vector<std::uint8_t> copy_buffer;

    for (std::size_t index = 0; index < plan.tensors.size(); ++index) {
        const tensor_plan& p = plan.tensors[index];
        const tensor_entry& tensor = *p.tensor;
        try {
            if (!p.converts()) {
                if (copy_buffer.empty()) copy_buffer.resize(copy_buffer_bytes);
                detail::copy_tensor_data(model, tensor, writer, copy_buffer);
                done += tensor.data_size;
                if (progress) progress(index, done, total);
                continue;
            }
            writer.begin_tensor(tensor.name, p.output, tensor.n_dims, tensor.ne);
            const detail::piece_layout layout(tensor.ne[0], tensor.row_count(), tensor.type,
                                              p.output, piece_values);
            const std::int64_t piece_span =
                layout.segment != 0 ? layout.segment : layout.rows_per_piece * layout.n;
            const std::int64_t pieces_per_chunk =
                std::max<std::int64_t>(1, chunk_values / piece_span);
            // Per-piece error sums, in piece order (thread-independent); per row when pieces
            // are whole rows.
            std::vector<detail::error_sums> errors;
            double squared = 0;
            double max_abs = 0;
            const std::uint8_t* pending = nullptr;  // the previous chunk, not yet written
            std::size_t pending_size = 0;
            std::uint64_t pending_done = 0;
            int parity = 0;

            for (std::int64_t first = 0; first < layout.count; first += pieces_per_chunk) {
                const std::int64_t last = std::min(layout.count, first + pieces_per_chunk);
                const auto chunk_begin = layout.at(first);
                const auto chunk_end = layout.at(last);
                // The next chunk's input, read into the page cache while this one is converted.
                model.file().prefetch(tensor.data_offset + chunk_end.in_offset,
                                      chunk_end.in_offset - chunk_begin.in_offset);
                std::vector<std::uint8_t>& out = packed[std::size_t(parity)];
                detail::ensure_size(out, chunk_end.out_offset - chunk_begin.out_offset);
                if (options.compute_stats) {
                    errors.assign(
                        static_cast<std::size_t>(
                            layout.segment != 0
                                ? last - first
                                : (chunk_end.first_value - chunk_begin.first_value) / layout.n),
                        detail::error_sums{});
                }
                std::atomic<std::int64_t> next{first};
                // The first failure in piece order wins, whichever thread met it, so that the
                // message does not depend on the thread count or on timing.
                std::mutex failure_mutex;
                std::int64_t failed_piece = std::numeric_limits<std::int64_t>::max();
                std::exception_ptr failure;
                pool.run([&](unsigned slot) {
                    if (slot == 0 && pending != nullptr) {
                        writer.write_data(pending, pending_size);
                        pending = nullptr;
                        if (progress) progress(index, pending_done, total);
                    }
                    detail::piece_buffers& buffers = workers[std::size_t(slot)];
                    for (std::int64_t i = next++; i < last; i = next++) {
                        try {
                            const auto piece = layout.at(i);
                            const auto next_piece = layout.at(i + 1);
                            const std::int64_t count = piece.row_count * piece.row_length;
                            const auto in_bytes =
                                static_cast<std::size_t>(next_piece.in_offset - piece.in_offset);
                            detail::ensure_size(buffers.input, in_bytes);
                            detail::ensure_size(buffers.values, std::size_t(count));
                            model.read_data(tensor, piece.in_offset, buffers.input.data(),
                                            in_bytes);
                            float* values = buffers.values.data();
                            // f32, f16 or (with --allow-requantize) a quantized type, widened.
                            dequantize(tensor.type, buffers.input.data(), values, piece.row_count,
                                       piece.row_length);
                            if (!options.allow_nonfinite) {
                                detail::check_finite(
                                    model, tensor, values, count, piece.first_value,
                                    tensor.type == type_id::f16 ? buffers.input.data() : nullptr);
                            }
                            std::uint8_t* dst =
                                out.data() + (piece.out_offset - chunk_begin.out_offset);
                            quantize(p.output, values, dst, piece.row_count, piece.row_length);
                            if (options.compute_stats) {
                                detail::ensure_size(buffers.restored, std::size_t(count));
                                float* back = buffers.restored.data();
                                dequantize(p.output, dst, back, piece.row_count, piece.row_length);
                                for (std::int64_t r = 0; r < piece.row_count; ++r) {
                                    const std::size_t slot_index =
                                        layout.segment != 0
                                            ? std::size_t(i - first)
                                            : std::size_t(
                                                  (piece.first_value - chunk_begin.first_value) /
                                                      layout.n +
                                                  r);
                                    errors[slot_index] = detail::row_error(
                                        values + r * piece.row_length, back + r * piece.row_length,
                                        piece.row_length);
                                }
                            }
                        } catch (...) {
                            std::lock_guard<std::mutex> lock(failure_mutex);
                            if (i < failed_piece) {
                                failed_piece = i;
                                failure = std::current_exception();
                            }
                        }
                    }
                });
                if (failure) std::rethrow_exception(failure);
                for (const auto& e : errors) {
                    squared += e.squared;  // summed in piece (row) order: thread-independent
                    max_abs = std::max(max_abs, e.max_abs);
                }
                if (pending != nullptr) {  // a single thread with nothing to take wrote nothing
                    writer.write_data(pending, pending_size);
                    pending = nullptr;
                }
                pending = out.data();
                pending_size =
                    static_cast<std::size_t>(chunk_end.out_offset - chunk_begin.out_offset);
                pending_done = done + chunk_end.in_offset;
                parity ^= 1;
            }
            if (pending != nullptr) {
                writer.write_data(pending, pending_size);
                if (progress) progress(index, pending_done, total);
            }
            writer.end_tensor();
            if (options.compute_stats) {
                auto& st = result.stats[index];
                st.computed = true;
                st.rmse = std::sqrt(squared / double(tensor.element_count()));
                st.max_abs_error = max_abs;
            }
            done += tensor.data_size;
            if (progress) progress(index, done, total);
        } catch (const std::bad_alloc&) {
            throw error(detail::tensor_label(model, tensor) +
                        ": out of memory while converting it (" + std::to_string(threads) +
                        " threads, about " + std::to_string(piece_values) +
                        " values per thread and " + std::to_string(chunk_values) + " per chunk)");
        }
    }
    result.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace qmix::whisper
