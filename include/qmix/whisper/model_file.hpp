// SPDX-License-Identifier: MIT
#pragma once

// Reading whisper ggml model files.
//
// This file holds the whisper layout only; the reading machinery (the file, its mapping,
// checked cursors) is qmix/io/. Opening a model walks its header and its tensor records
// through a small read window and keeps nothing of the vocabulary but its place, so the
// memory a model costs is bounded by its tensor directory, not by its header or data.
// Tensor data is then reached three ways: read_data() copies any part of a tensor into a
// buffer the caller reuses (what the quantizer streams with); data() is a view of the
// whole tensor in a read-only mapping of the file (paged in when touched, dropped again by
// release()); without a mapping (mmap failed, or access::read) data() reads the tensor into
// a buffer of its own, freed by release().
//
// Every field is checked before it is used, and every size is checked against the bytes
// left in the file before anything is allocated, so a damaged or hostile file ends in a
// qmix::error naming the file, the byte offset, the tensor where known and what was
// expected, never in a crash or an unbounded allocation.

#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/io/cursor.hpp"
#include "qmix/io/input_file.hpp"

namespace qmix::whisper {

/// "ggml" as a little-endian uint32: the first four bytes of every whisper ggml model.
inline constexpr std::uint32_t file_magic = 0x67676d6c;
/// Longest tensor name accepted; whisper's longest is under 50 bytes.
inline constexpr std::int32_t max_name_length = 4096;
inline constexpr int max_dims = 4;
/// Bounds on the mel filter bank (real models: 80 or 128 bands of 201 bins). Anything
/// beyond them is a damaged header, not a model.
inline constexpr std::int32_t max_mel_bands = 1024;
inline constexpr std::int32_t max_mel_bins = 16384;
/// Header ftype values are ftype + quantization version * 1000; versions seen so far.
inline constexpr std::int32_t max_quantization_version = 2;

/// The eleven int32 that follow the magic, in file order.
struct hyper_parameters {
    std::int32_t n_vocab = 0;
    std::int32_t n_audio_ctx = 0;
    std::int32_t n_audio_state = 0;
    std::int32_t n_audio_head = 0;
    std::int32_t n_audio_layer = 0;
    std::int32_t n_text_ctx = 0;
    std::int32_t n_text_state = 0;
    std::int32_t n_text_head = 0;
    std::int32_t n_text_layer = 0;
    std::int32_t n_mels = 0;
    std::int32_t ftype = 0;  ///< as stored: ftype + quantization version * 1000

    friend bool operator==(const hyper_parameters& a, const hyper_parameters& b) noexcept {
        return a.n_vocab == b.n_vocab && a.n_audio_ctx == b.n_audio_ctx &&
               a.n_audio_state == b.n_audio_state && a.n_audio_head == b.n_audio_head &&
               a.n_audio_layer == b.n_audio_layer && a.n_text_ctx == b.n_text_ctx &&
               a.n_text_state == b.n_text_state && a.n_text_head == b.n_text_head &&
               a.n_text_layer == b.n_text_layer && a.n_mels == b.n_mels && a.ftype == b.ftype;
    }
};

/// One table drives the reader, the writer and the printer, so the field order is written
/// down exactly once.
struct hyper_parameter_field {
    std::int32_t hyper_parameters::*member;
    std::string_view name;
};
inline constexpr std::array<hyper_parameter_field, 11> hyper_parameter_fields{{
    {&hyper_parameters::n_vocab, "n_vocab"},
    {&hyper_parameters::n_audio_ctx, "n_audio_ctx"},
    {&hyper_parameters::n_audio_state, "n_audio_state"},
    {&hyper_parameters::n_audio_head, "n_audio_head"},
    {&hyper_parameters::n_audio_layer, "n_audio_layer"},
    {&hyper_parameters::n_text_ctx, "n_text_ctx"},
    {&hyper_parameters::n_text_state, "n_text_state"},
    {&hyper_parameters::n_text_head, "n_text_head"},
    {&hyper_parameters::n_text_layer, "n_text_layer"},
    {&hyper_parameters::n_mels, "n_mels"},
    {&hyper_parameters::ftype, "ftype"},
}};

/// Byte offset of the header's ftype field: after the magic and ten int32.
inline constexpr std::uint64_t ftype_field_offset = 4 + 10 * 4;

/// The mel filter bank: n_mel rows of n_fft float32, row after row.
struct mel_filters {
    std::int32_t n_mel = 0;
    std::int32_t n_fft = 0;
    std::vector<float> values;
};

/// Where each part of the file starts.
struct file_layout {
    std::uint64_t mel_offset = 0;         ///< the n_mel field
    std::uint64_t vocabulary_offset = 0;  ///< the token count field
    std::uint64_t tensors_offset = 0;     ///< first tensor record = size of the header
    std::uint64_t file_size = 0;
};

/// One tensor of the directory. Extents past n_dims are 1.
struct tensor_entry {
    std::string name;
    type_id type = type_id::f32;
    int n_dims = 1;
    std::array<std::int64_t, max_dims> ne{{1, 1, 1, 1}};
    std::uint64_t record_offset = 0;  ///< the n_dims field of its record
    std::uint64_t data_offset = 0;    ///< first byte of its data
    std::uint64_t data_size = 0;      ///< row_size(type, ne[0]) * ne[1] * ne[2] * ne[3]

    std::int64_t element_count() const noexcept { return ne[0] * ne[1] * ne[2] * ne[3]; }
    std::int64_t row_count() const noexcept { return ne[1] * ne[2] * ne[3]; }
};

/// "384 x 51865": a tensor's extents, row length first, as far as n_dims.
inline std::string shape_text(const tensor_entry& tensor) {
    std::string text;
    for (int d = 0; d < tensor.n_dims; ++d) {
        if (d > 0) text += " x ";
        text += std::to_string(tensor.ne[d]);
    }
    return text;
}

using io::byte_view;

/// Whether `value` is a valid header ftype field: a known ftype plus 1000 times a
/// quantization version in 0..2.
constexpr bool is_valid_header_ftype(std::int32_t value) noexcept {
    if (value < 0) return false;
    const std::int32_t version = value / quantization_version_factor;
    return version <= max_quantization_version &&
           type_of_ftype(value % quantization_version_factor).has_value();
}

/// The header field for `f` at the current quantization version.
constexpr std::int32_t header_ftype_value(ftype f,
                                          std::int32_t version = quantization_version) noexcept {
    return static_cast<std::int32_t>(f) + version * quantization_version_factor;
}

namespace detail {

using io::load_f32;
using io::load_i32;
using io::load_u32;
using io::detail::errno_text;

inline std::string hex32(std::uint32_t value) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string text = "0x";
    for (int shift = 28; shift >= 0; shift -= 4) text += digits[(value >> shift) & 0xf];
    return text;
}

/// a * b when it fits in int64, else nothing.
inline bool multiply_fits(std::int64_t a, std::int64_t b, std::int64_t& product) noexcept {
    return !__builtin_mul_overflow(a, b, &product);
}

inline std::string known_type_ids() {
    std::string text;
    for (const auto& entry : type_table) {
        if (!text.empty()) text += ", ";
        text += std::to_string(static_cast<int>(entry.id)) + " (" + std::string(entry.name) + ")";
    }
    return text;
}

inline std::string known_ftype_values() {
    std::string text;
    for (std::int32_t value = 0; value < quantization_version_factor; ++value) {
        if (!type_of_ftype(value)) continue;
        if (!text.empty()) text += ", ";
        text += std::to_string(value);
    }
    return text;
}

}  // namespace detail

/// A whisper ggml model file, parsed and validated when opened. The const members may be
/// called from several threads at once (e.g. one tensor per worker).
///
///     const model_file model("ggml-base.bin");
///     for (const tensor_entry& t : model.tensors()) {
///         const byte_view bytes = model.data(t);  // unaligned; memcpy rows out
///         ...
///         model.release(t);
///     }
class model_file {
  public:
    /// How the tensor bytes are reached: `map` tries mmap and falls back to reads when the
    /// mapping fails; `read` never maps (for tests and for file systems that misbehave).
    enum class access { map, read };

    explicit model_file(std::string path, access mode = access::map)
        : file_(std::move(path)), loaded_(std::make_unique<loaded_parts>()) {
        layout_.file_size = file_.size();
        try {
            parse();
        } catch (const std::bad_alloc&) {
            throw error(file_.path() + ": out of memory while reading the tensor directory (" +
                        std::to_string(tensors_.size()) + " tensor records read)");
        }
        if (mode == access::map) file_.map();
    }

    model_file(model_file&&) = default;
    model_file& operator=(model_file&&) = default;
    model_file(const model_file&) = delete;
    model_file& operator=(const model_file&) = delete;
    ~model_file() = default;

    const std::string& path() const noexcept { return file_.path(); }
    const io::input_file& file() const noexcept { return file_; }
    const hyper_parameters& hparams() const noexcept { return hparams_; }
    const mel_filters& filters() const noexcept { return mel_; }
    /// The number of vocabulary entries (costs nothing: the entries are not kept).
    std::size_t vocabulary_size() const noexcept { return vocabulary_count_; }
    /// Every vocabulary entry, read from the file on the first call and kept: memory in
    /// proportion to the vocabulary. Streaming callers use for_each_token() instead.
    const std::vector<std::string>& vocabulary() const {
        std::lock_guard<std::mutex> lock(loaded_->mutex);
        if (!loaded_->vocabulary_read) {
            std::vector<std::string> tokens;
            tokens.reserve(vocabulary_count_);
            for_each_token([&](std::string_view token) { tokens.emplace_back(token); });
            loaded_->vocabulary = std::move(tokens);
            loaded_->vocabulary_read = true;
        }
        return loaded_->vocabulary;
    }
    /// Calls f(std::string_view) for each vocabulary entry in file order; the view is valid
    /// during the call only. Memory: the longest entry.
    template <typename F>
    void for_each_token(F&& f) const {
        io::byte_source source(file_);
        io::cursor at(source, file_, layout_.vocabulary_offset + 4);
        std::string token;
        for (std::size_t i = 0; i < vocabulary_count_; ++i) {
            const std::uint32_t length = at.u32("vocabulary entry length");
            token.resize(length);
            at.read(token.data(), length, "vocabulary entry");
            f(std::string_view(token));
        }
    }
    const std::vector<tensor_entry>& tensors() const noexcept { return tensors_; }
    const file_layout& layout() const noexcept { return layout_; }
    std::uint64_t file_size() const noexcept { return layout_.file_size; }
    bool is_mapped() const noexcept { return file_.is_mapped(); }

    /// The tensor called `name`, or nullptr.
    const tensor_entry* find(std::string_view name) const {
        const auto found = by_name_.find(std::string(name));
        return found == by_name_.end() ? nullptr : &tensors_[found->second];
    }

    /// Everything before the first tensor record: magic, hyper-parameters, mel filters and
    /// vocabulary, exactly as stored. The ftype field is at ftype_offset(). The whole header
    /// at once: a view of the mapping, or (without one) a copy read on the first call and
    /// kept. Streaming callers use read_header() in pieces instead.
    byte_view header_bytes() const {
        const std::uint64_t size = layout_.tensors_offset;
        if (is_mapped()) return file_.view(0, size);
        std::lock_guard<std::mutex> lock(loaded_->mutex);
        if (loaded_->header.size() != size) {
            loaded_->header.resize(static_cast<std::size_t>(size));
            file_.read(0, loaded_->header.data(), loaded_->header.size());
        }
        return {loaded_->header.data(), loaded_->header.size()};
    }
    static constexpr std::uint64_t ftype_offset() noexcept { return ftype_field_offset; }
    std::uint64_t header_size() const noexcept { return layout_.tensors_offset; }

    /// Copies [offset, offset + n) of the header into `destination`.
    void read_header(std::uint64_t offset, void* destination, std::size_t n) const {
        if (offset > layout_.tensors_offset || n > layout_.tensors_offset - offset) {
            throw error(path() + ": byte " + std::to_string(offset) + ": " + std::to_string(n) +
                        " bytes asked for past the header (" +
                        std::to_string(layout_.tensors_offset) + " bytes)");
        }
        file_.read(offset, destination, n);
    }

    /// Copies [offset, offset + n) of the tensor's data into `destination` with a
    /// positional read: no mapping, no page-table work, the caller's buffer reused.
    void read_data(const tensor_entry& tensor, std::uint64_t offset, void* destination,
                   std::size_t n) const {
        check_owned(tensor);
        if (offset > tensor.data_size || n > tensor.data_size - offset) {
            throw error(path() + ": tensor '" + tensor.name + "': bytes " + std::to_string(offset) +
                        ".." + std::to_string(offset + n) + " asked for, past its data (" +
                        std::to_string(tensor.data_size) + " bytes)");
        }
        file_.read(tensor.data_offset + offset, destination, n);
    }

    /// The tensor's data bytes. With a mapping this costs nothing until the bytes are
    /// touched; without one the tensor is read into a buffer kept until release(). The view
    /// stays valid until release(tensor) or the end of the model_file.
    byte_view data(const tensor_entry& tensor) const {
        check_owned(tensor);
        return bytes_at(loaded_->buffers, tensor.data_offset, tensor.data_size);
    }

    /// The tensor's record (n_dims, name length, type, extents, name) as stored.
    byte_view record(const tensor_entry& tensor) const {
        check_owned(tensor);
        return bytes_at(loaded_->records, tensor.record_offset,
                        tensor.data_offset - tensor.record_offset);
    }

    /// Asks the kernel to read the tensor's pages ahead of use.
    void prefetch(const tensor_entry& tensor) const noexcept {
        file_.advise(tensor.data_offset, tensor.data_size, MADV_WILLNEED);
    }

    /// Drops the tensor's pages from this process (they are read again from the file if
    /// touched later), so that a pass over all tensors keeps the resident set small. Views
    /// of the tensor obtained earlier must not be used afterwards.
    void release(const tensor_entry& tensor) const noexcept {
        if (is_mapped()) {
            // The range is widened to whole pages; a neighbour sharing an edge page merely
            // reads that page again from the page cache.
            file_.advise(tensor.data_offset, tensor.data_size, MADV_DONTNEED);
            return;
        }
        std::lock_guard<std::mutex> lock(loaded_->mutex);
        loaded_->buffers.erase(tensor.data_offset);
        loaded_->records.erase(tensor.record_offset);
    }

    /// Drops the pages of part of a tensor ([offset, offset + size) of its data) once a
    /// caller streaming through it is done with them, so that even the largest tensor never
    /// needs to be resident at once. Earlier views stay valid: touched again, the bytes are
    /// read again from the file. Without a mapping the tensor's buffer stays until release().
    void release_part(const tensor_entry& tensor, std::uint64_t offset,
                      std::uint64_t size) const noexcept {
        if (is_mapped() && offset < tensor.data_size) {
            size = std::min(size, tensor.data_size - offset);
            file_.advise(tensor.data_offset + offset, size, MADV_DONTNEED);
        }
    }

  private:
    /// Buffers read without a mapping, by file offset.
    using loaded_map = std::unordered_map<std::uint64_t, std::vector<std::uint8_t>>;
    /// What is read on demand and kept: tensors without a mapping, the header copy, the
    /// vocabulary when asked for.
    struct loaded_parts {
        std::mutex mutex;
        loaded_map buffers;
        loaded_map records;
        std::vector<std::uint8_t> header;
        std::vector<std::string> vocabulary;
        bool vocabulary_read = false;
    };

    /// `size` bytes at `offset`: a view into the mapping, or (without one) a buffer read
    /// once into `cache` and kept there until release().
    byte_view bytes_at(loaded_map& cache, std::uint64_t offset, std::uint64_t size) const {
        if (is_mapped()) return file_.view(offset, size);
        const auto length = static_cast<std::size_t>(size);
        std::lock_guard<std::mutex> lock(loaded_->mutex);
        auto& buffer = cache[offset];
        if (buffer.size() != length) {
            buffer.resize(length);
            file_.read(offset, buffer.data(), length);
        }
        return {buffer.data(), buffer.size()};
    }

    void check_owned(const tensor_entry& tensor) const {
        const bool owned = !tensors_.empty() && &tensor >= tensors_.data() &&
                           &tensor < tensors_.data() + tensors_.size();
        if (!owned) {
            throw error(path() + ": tensor '" + tensor.name +
                        "' was not read from this file (pass an entry of tensors())");
        }
    }

    void parse() {
        io::byte_source source(file_);
        io::cursor at(source, file_);
        parse_hyper_parameters(at);
        parse_mel_filters(at);
        parse_vocabulary(at);
        layout_.tensors_offset = at.offset();
        while (!at.at_end()) parse_tensor(at);
    }

    void parse_hyper_parameters(io::cursor& at) {
        const std::uint32_t magic = at.u32("magic");
        if (magic != file_magic) {
            at.fail_at(0, "bad magic " + detail::hex32(magic) + ", expected " +
                              detail::hex32(file_magic) + " (\"ggml\"): not a ggml model file");
        }
        for (const auto& field : hyper_parameter_fields) {
            const std::uint64_t offset = at.offset();
            const std::int32_t value = at.i32(field.name);
            if (field.member == &hyper_parameters::ftype) {
                if (!is_valid_header_ftype(value)) {
                    at.fail_at(offset, "header ftype " + std::to_string(value) +
                                           " is not a ggml file type: expected ftype + 1000 * "
                                           "version with ftype one of " +
                                           detail::known_ftype_values() + " and version 0.." +
                                           std::to_string(max_quantization_version));
                }
            } else if (value < 0) {
                at.fail_at(offset, "negative count: " + std::string(field.name) + " is " +
                                       std::to_string(value) + ", expected 0 or more");
            }
            hparams_.*field.member = value;
        }
    }

    void parse_mel_filters(io::cursor& at) {
        layout_.mel_offset = at.offset();
        mel_.n_mel = at.i32("mel filter n_mel");
        mel_.n_fft = at.i32("mel filter n_fft");
        if (mel_.n_mel < 1 || mel_.n_mel > max_mel_bands || mel_.n_fft < 1 ||
            mel_.n_fft > max_mel_bins) {
            at.fail_at(layout_.mel_offset, "absurd mel filter size " + std::to_string(mel_.n_mel) +
                                               " x " + std::to_string(mel_.n_fft) +
                                               ", expected 1.." + std::to_string(max_mel_bands) +
                                               " x 1.." + std::to_string(max_mel_bins));
        }
        const std::size_t count = std::size_t(mel_.n_mel) * std::size_t(mel_.n_fft);
        at.need(count * 4, "mel filter values");
        mel_.values.resize(count);
        // Through a small buffer: the values are all that is kept of the filter bank.
        std::uint8_t raw[4096];
        for (std::size_t done = 0; done < count;) {
            const std::size_t step = std::min(count - done, sizeof raw / 4);
            at.read(raw, step * 4, "mel filter values");
            for (std::size_t i = 0; i < step; ++i)
                mel_.values[done + i] = io::load_f32(&raw[i * 4]);
            done += step;
        }
    }

    void parse_vocabulary(io::cursor& at) {
        layout_.vocabulary_offset = at.offset();
        const std::int32_t count = at.i32("vocabulary count");
        if (count < 0) {
            at.fail_at(layout_.vocabulary_offset, "negative count: vocabulary count is " +
                                                      std::to_string(count) +
                                                      ", expected 0 or more");
        }
        // Each entry takes at least its 4-byte length, which bounds the reservation.
        if (std::uint64_t(count) * 4 > at.bytes_left()) {
            at.fail_at(layout_.vocabulary_offset,
                       "truncated: vocabulary count " + std::to_string(count) + " needs at least " +
                           std::to_string(std::uint64_t(count) * 4) + " bytes but only " +
                           std::to_string(at.bytes_left()) + " are left");
        }
        vocabulary_count_ = static_cast<std::size_t>(count);
        // Checked, not kept: only the count and the place are (vocabulary() reads them on
        // demand), so a hostile count of empty entries costs no memory.
        for (std::int32_t i = 0; i < count; ++i) {
            // Messages are composed only on failure: this loop runs 50k times per model.
            const std::uint64_t offset = at.offset();
            const auto entry = [i] { return "vocabulary entry " + std::to_string(i); };
            if (at.bytes_left() < 4) at.need(4, entry() + " length");
            const std::uint32_t length = at.u32("vocabulary entry length");
            if (length > at.bytes_left()) {
                at.fail_at(offset, "truncated: " + entry() + " is " + std::to_string(length) +
                                       " bytes long but only " + std::to_string(at.bytes_left()) +
                                       " bytes are left");
            }
            at.skip(length, "vocabulary entry");
        }
    }

    void parse_tensor(io::cursor& at) {
        at.set_item("tensor", {});
        tensor_entry tensor;
        tensor.record_offset = at.offset();
        const std::uint64_t record = tensor.record_offset;
        const std::int32_t n_dims = at.i32("tensor record n_dims");
        if (n_dims < 1 || n_dims > max_dims) {
            at.fail_at(record, "n_dims is " + std::to_string(n_dims) + ", expected 1..4");
        }
        const std::int32_t name_length = at.i32("tensor record name length");
        if (name_length < 1 || name_length > max_name_length) {
            at.fail_at(record + 4, "name length is " + std::to_string(name_length) +
                                       ", expected 1.." + std::to_string(max_name_length));
        }
        const std::int32_t raw_type = at.i32("tensor record type id");
        std::array<std::int32_t, max_dims> extents{{1, 1, 1, 1}};
        for (int d = 0; d < n_dims; ++d) extents[d] = at.i32("tensor record extents");
        tensor.name.resize(static_cast<std::size_t>(name_length));
        at.read(tensor.name.data(), tensor.name.size(), "tensor name");
        at.set_item("tensor", tensor.name);

        if (!is_known_type(raw_type)) {
            at.fail_at(record + 8, "unknown type id " + std::to_string(raw_type) +
                                       ", expected one of " + detail::known_type_ids());
        }
        tensor.type = static_cast<type_id>(raw_type);
        tensor.n_dims = n_dims;
        std::int64_t elements = 1;
        for (int d = 0; d < n_dims; ++d) {
            if (extents[d] < 1) {
                at.fail_at(record + 12 + 4 * std::uint64_t(d),
                           "extent ne[" + std::to_string(d) + "] is " + std::to_string(extents[d]) +
                               ", expected a positive number");
            }
            tensor.ne[d] = extents[d];
        }
        for (int d = 0; d < n_dims; ++d) {
            if (!detail::multiply_fits(elements, tensor.ne[d], elements)) {
                at.fail_at(record + 12, "the element count of extents " + shape_text(tensor) +
                                            " overflows 64 bits");
            }
        }
        if (!can_hold_row(tensor.type, tensor.ne[0])) {
            at.fail_at(record + 12, "row length ne[0] = " + std::to_string(tensor.ne[0]) +
                                        " cannot be stored as " +
                                        std::string(type_name(tensor.type)) +
                                        ": its rows must be a multiple of " +
                                        std::to_string(block_size(tensor.type)) + " values");
        }
        std::int64_t bytes = static_cast<std::int64_t>(type_size(tensor.type));
        if (!detail::multiply_fits(bytes, tensor.ne[0] / std::int64_t(block_size(tensor.type)),
                                   bytes) ||
            !detail::multiply_fits(bytes, tensor.row_count(), bytes)) {
            at.fail_at(record + 12, "the data size of " + std::string(type_name(tensor.type)) +
                                        " extents " + shape_text(tensor) + " overflows 64 bits");
        }
        tensor.data_offset = at.offset();
        tensor.data_size = static_cast<std::uint64_t>(bytes);
        if (tensor.data_size > at.bytes_left()) {
            at.fail_at(tensor.data_offset,
                       "truncated: the data (" + std::to_string(tensor.data_size) + " bytes of " +
                           std::string(type_name(tensor.type)) + " " + shape_text(tensor) +
                           ") runs past the end of the file (" + std::to_string(at.bytes_left()) +
                           " bytes left)");
        }
        const auto [existing, inserted] = by_name_.emplace(tensor.name, tensors_.size());
        if (!inserted) {
            at.fail_at(record, "duplicate tensor name '" + tensor.name +
                                   "' (first record at byte " +
                                   std::to_string(tensors_[existing->second].record_offset) + ")");
        }
        at.skip(tensor.data_size, "tensor data");
        tensors_.push_back(std::move(tensor));
    }

    io::input_file file_;
    hyper_parameters hparams_;
    mel_filters mel_;
    std::size_t vocabulary_count_ = 0;
    std::vector<tensor_entry> tensors_;
    std::unordered_map<std::string, std::size_t> by_name_;
    file_layout layout_;
    std::unique_ptr<loaded_parts> loaded_;
};

}  // namespace qmix::whisper
