// SPDX-License-Identifier: MIT
#pragma once

// Where a whisper ggml model loads, decided from its tensor directory alone.
//
// whisper.cpp's loader (src/whisper.cpp, whisper_model_load) reads the header's ftype as
// `wtype` and creates every tensor before reading any: the matrices (the 2-D weights, token
// embedding included) as `wtype`, encoder.conv1.weight and encoder.conv2.weight as f32 when
// `wtype` is f32 and as f16 otherwise, every other tensor as f32. Then, per file tensor:
//   - upstream whisper.cpp refuses a file tensor whose type is not the created one, so it
//     loads uniform models only;
//   - the per-tensor loader of the mixed-precision pull request (#3605) accepts a file tensor
//     of another type when its bytes fit the buffer created for it, and retypes the tensor.
// Both need the created type to hold the tensor's rows (ggml aborts otherwise), and both
// size their buffers by the created types: that, not the file's size, is the memory a model
// takes in whisper.cpp. One more trap, seen with the per-tensor loader on an AVX2 CPU: ggml's
// CPU backend repacks weights created as some types into an interleaved layout
// (ggml-cpu/repack.cpp) and asserts, when the data arrives, that it is of that type; a
// tensor retyped there aborts the process. So a mixed model's header avoids those types.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/ftype.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/ops.hpp"
#include "qmix/whisper/model_file.hpp"

namespace qmix::whisper {

/// Tensors the reference quantizer never touches, whatever their shape.
inline constexpr std::array<std::string_view, 4> never_quantized{
    "encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
    "decoder.positional_embedding"};

/// What a tensor is to the loader, which decides the type it is created as.
enum class tensor_role {
    matrix,       ///< a 2-D weight (token embedding included): created as the header's type
    conv_weight,  ///< encoder.conv1.weight, encoder.conv2.weight: f32 under f32, else f16
    other,        ///< biases, norms, positional embeddings: always f32
};

inline tensor_role role_of(const tensor_entry& tensor) {
    if (tensor.name == "encoder.conv1.weight" || tensor.name == "encoder.conv2.weight") {
        return tensor_role::conv_weight;
    }
    if (tensor.n_dims == 2 && std::find(never_quantized.begin(), never_quantized.end(),
                                        tensor.name) == never_quantized.end()) {
        return tensor_role::matrix;
    }
    return tensor_role::other;
}

/// The type whisper.cpp creates a tensor of this role as, under the header type `wtype`.
constexpr type_id created_type(tensor_role role, type_id wtype) noexcept {
    switch (role) {
        case tensor_role::matrix:
            return wtype;
        case tensor_role::conv_weight:
            return wtype == type_id::f32 ? type_id::f32 : type_id::f16;
        case tensor_role::other:
            return type_id::f32;
    }
    return type_id::f32;
}

/// Types whose weights ggml's CPU backend may repack when they are created in them: q4_0,
/// q4_K, iq4_nl (AVX2, NEON), q2_K (AVX-512). A tensor created as one of them must be stored
/// in it.
constexpr bool repacked_by_ggml_cpu(type_id type) noexcept {
    return type == type_id::q4_0 || type == type_id::q4_k || type == type_id::q2_k ||
           type == type_id::iq4_nl;
}

/// Bytes of `tensor`'s values stored as `type` (the tensor's rows must fit the type).
inline std::uint64_t bytes_as(const tensor_entry& tensor, type_id type) {
    return std::uint64_t(row_size(type, tensor.ne[0])) * std::uint64_t(tensor.row_count());
}

/// Bytes per value of a type: how the header type of a mixed model is ranked.
inline double bytes_per_value(type_id type) {
    return double(info(type).type_size) / double(info(type).block_size);
}

/// One tensor a loader would refuse, and why.
struct refusal {
    std::string tensor;  ///< empty when the whole file is refused (the header)
    std::string reason;
};

struct loader_verdict {
    std::vector<refusal> refusals;
    bool accepts() const { return refusals.empty(); }
};

/// Which whisper.cpp loaders accept a model, and with how much memory.
struct loadability {
    std::optional<type_id> header_type;  ///< wtype, when the header's ftype names one
    loader_verdict upstream;             ///< whisper.cpp as released: one type per role
    loader_verdict per_tensor;           ///< whisper.cpp with per-tensor types (#3605)
    std::uint64_t buffer_bytes = 0;      ///< every tensor at its created type's size
    std::uint64_t tensor_bytes = 0;      ///< the tensors' data as stored in the file
    std::vector<type_id> matrix_types;   ///< the types the matrices are stored in

    /// One line: where it loads and, for a mixed model, the buffers it takes.
    std::string summary() const;
};

namespace detail {

inline std::string mib_text(std::uint64_t bytes) {
    const double mib = double(bytes) / 1048576.0;
    std::string text = std::to_string(static_cast<long long>(mib * 10 + 0.5));
    if (text.size() < 2) text.insert(0, "0");
    text.insert(text.size() - 1, ".");
    return text + " MiB";
}

}  // namespace detail

inline std::string loadability::summary() const {
    if (upstream.accepts()) return "loads in whisper.cpp (any version)";
    if (per_tensor.accepts()) {
        return "needs a loader with per-tensor types (whisper.cpp with mixed-precision "
               "support); its buffers: " +
               detail::mib_text(buffer_bytes);
    }
    const refusal& first = per_tensor.refusals.front();
    return "no whisper.cpp loads it (" + (first.tensor.empty() ? "" : first.tensor + ": ") +
           first.reason + ")";
}

/// Applies both loaders' rules to a tensor directory (names, extents, stored types) under
/// a header field `header_ftype` (ftype + 1000 * quantization version).
inline loadability check_loaders(const std::vector<tensor_entry>& tensors,
                                 std::int32_t header_ftype) {
    loadability result;
    if (is_valid_header_ftype(header_ftype)) {
        result.header_type = type_of_ftype(header_ftype % quantization_version_factor);
    }
    if (!result.header_type) {
        const refusal bad{"", "header ftype " + std::to_string(header_ftype) +
                                  " names no type whisper.cpp knows"};
        result.upstream.refusals.push_back(bad);
        result.per_tensor.refusals.push_back(bad);
    }
    for (const tensor_entry& tensor : tensors) {
        result.tensor_bytes += tensor.data_size;
        const tensor_role role = role_of(tensor);
        if (role == tensor_role::matrix &&
            std::find(result.matrix_types.begin(), result.matrix_types.end(), tensor.type) ==
                result.matrix_types.end()) {
            result.matrix_types.push_back(tensor.type);
        }
        if (!result.header_type) continue;
        const type_id created = created_type(role, *result.header_type);
        const std::string stored(type_name(tensor.type));
        const std::string expected(type_name(created));
        if (!can_hold_row(created, tensor.ne[0])) {
            const refusal r{tensor.name, "created as " + expected + ", which cannot hold rows of " +
                                             std::to_string(tensor.ne[0]) + " (ggml aborts)"};
            result.upstream.refusals.push_back(r);
            result.per_tensor.refusals.push_back(r);
            continue;
        }
        const std::uint64_t buffer = bytes_as(tensor, created);
        result.buffer_bytes += buffer;
        if (tensor.type == created) continue;
        result.upstream.refusals.push_back(
            {tensor.name, "stored as " + stored + ", created as " + expected});
        if (tensor.data_size > buffer) {
            result.per_tensor.refusals.push_back(
                {tensor.name, "stored as " + stored + " (" + std::to_string(tensor.data_size) +
                                  " bytes), larger than its " + expected + " buffer (" +
                                  std::to_string(buffer) + " bytes)"});
        } else if (repacked_by_ggml_cpu(created)) {
            result.per_tensor.refusals.push_back(
                {tensor.name, "stored as " + stored + ", created as " + expected +
                                  ", which ggml's CPU backend repacks and cannot retype (it "
                                  "asserts the type)"});
        }
    }
    std::sort(result.matrix_types.begin(), result.matrix_types.end());
    return result;
}

/// The header type for matrices written in `types` (with `rows`, the row lengths of every
/// matrix): their common type when they share one; otherwise the widest of them, in bytes
/// per value, so that the per-tensor loader's buffers are as small as they can be. When the
/// loader could not use that type for a mixed model -- it cannot hold every matrix's rows
/// (a k-quant beside tiny's 384-wide rows), or ggml repacks it -- the header takes the
/// narrowest type at least as wide that it can use.
inline type_id header_type_for(const std::vector<type_id>& types,
                               const std::vector<std::int64_t>& rows, type_id if_none) {
    if (types.empty()) return if_none;
    const bool mixed =
        std::any_of(types.begin(), types.end(), [&](type_id t) { return t != types.front(); });
    type_id widest = types.front();
    for (const type_id t : types) {
        if (bytes_per_value(t) > bytes_per_value(widest)) widest = t;
    }
    const auto usable = [&](type_id t) {
        return (!mixed || !repacked_by_ggml_cpu(t)) &&
               std::all_of(rows.begin(), rows.end(),
                           [t](std::int64_t n) { return can_hold_row(t, n); });
    };
    if (usable(widest)) return widest;
    std::optional<type_id> best;
    for (const auto& entry : type_table) {
        const type_id t = entry.id;
        if (!ftype_of_type(t) || bytes_per_value(t) < bytes_per_value(widest) || !usable(t)) {
            continue;
        }
        if (!best || bytes_per_value(t) < bytes_per_value(*best)) best = t;
    }
    return best.value_or(type_id::f32);
}

}  // namespace qmix::whisper
