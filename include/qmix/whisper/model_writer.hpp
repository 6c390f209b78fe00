// SPDX-License-Identifier: MIT
#pragma once

// Writing whisper ggml model files, all or nothing.
//
// model_writer lays out the whisper ggml format (header, tensor records, data) and checks
// every record it writes; the file itself is an io::atomic_file: streamed into a temporary
// beside the destination and renamed into place only by commit(). Writing a model over the
// file it is being read from is therefore safe: the reader's mapping keeps the old file.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/io/atomic_file.hpp"
#include "qmix/whisper/model_file.hpp"

namespace qmix::whisper {

namespace detail {

inline void store_u32(std::uint8_t* p, std::uint32_t value) noexcept {
    p[0] = std::uint8_t(value);
    p[1] = std::uint8_t(value >> 8);
    p[2] = std::uint8_t(value >> 16);
    p[3] = std::uint8_t(value >> 24);
}

inline void store_i32(std::uint8_t* p, std::int32_t value) noexcept {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    store_u32(p, bits);
}

}  // namespace detail

/// Streams a model to a temporary file and renames it over `destination` on commit().
///
///     model_writer out("ggml-base-q5.bin");
///     out.write_header(model, new_ftype);
///     for (...) { out.begin_tensor(...); out.write_data(...); out.end_tensor(); }
///     out.commit();
class model_writer {
  public:
    explicit model_writer(std::string destination, std::size_t buffer_size = std::size_t(1) << 20)
        : file_(std::move(destination), buffer_size) {}

    model_writer(const model_writer&) = delete;
    model_writer& operator=(const model_writer&) = delete;
    ~model_writer() { discard(); }

    const std::string& destination() const noexcept { return file_.destination(); }
    /// The temporary file's path, stable for the writer's lifetime. It no longer exists
    /// after commit() or discard().
    const char* temporary_path() const noexcept { return file_.temporary_path(); }
    std::uint64_t bytes_written() const noexcept { return file_.bytes_written(); }
    bool committed() const noexcept { return file_.committed(); }

    /// The header of `source` byte for byte, except the ftype field, which becomes
    /// `header_ftype` (ftype + 1000 * quantization version).
    void write_header(const model_file& source, std::int32_t header_ftype) {
        expect(state::no_header, "write_header");
        check_header_ftype(header_ftype);
        const std::uint64_t size = source.header_size();
        const std::uint64_t at = model_file::ftype_offset();
        if (size < at + 4) fail("the source header is too short to hold an ftype");
        // In pieces, so that a header of any size (a vocabulary of millions of entries,
        // say) costs one piece of memory; the ftype field lies in the first piece.
        std::vector<std::uint8_t> piece(
            static_cast<std::size_t>(std::min<std::uint64_t>(size, std::uint64_t(1) << 20)));
        for (std::uint64_t offset = 0; offset < size;) {
            const auto n =
                static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), size - offset));
            source.read_header(offset, piece.data(), n);
            if (offset <= at && at + 4 <= offset + n) {
                detail::store_i32(piece.data() + (at - offset), header_ftype);
            }
            put(piece.data(), n);
            offset += n;
        }
        state_ = state::between_tensors;
    }

    /// A header built from its parts, as whisper.cpp's converter lays it out.
    void write_header(const hyper_parameters& hparams, const mel_filters& mel,
                      const std::vector<std::string>& vocabulary) {
        expect(state::no_header, "write_header");
        for (const auto& field : hyper_parameter_fields) {
            const std::int32_t value = hparams.*field.member;
            if (field.member == &hyper_parameters::ftype) {
                check_header_ftype(value);
            } else if (value < 0) {
                fail("hyper-parameter " + std::string(field.name) + " is " + std::to_string(value) +
                     ", expected 0 or more");
            }
        }
        if (mel.n_mel < 1 || mel.n_mel > max_mel_bands || mel.n_fft < 1 ||
            mel.n_fft > max_mel_bins) {
            fail("mel filter size " + std::to_string(mel.n_mel) + " x " +
                 std::to_string(mel.n_fft) + " is outside 1.." + std::to_string(max_mel_bands) +
                 " x 1.." + std::to_string(max_mel_bins));
        }
        if (mel.values.size() != std::size_t(mel.n_mel) * std::size_t(mel.n_fft)) {
            fail("mel filters hold " + std::to_string(mel.values.size()) + " values, expected " +
                 std::to_string(mel.n_mel) + " x " + std::to_string(mel.n_fft));
        }
        if (vocabulary.size() > std::size_t(std::numeric_limits<std::int32_t>::max())) {
            fail("a vocabulary of " + std::to_string(vocabulary.size()) + " entries is too large");
        }

        put_u32(file_magic);
        for (const auto& field : hyper_parameter_fields) put_i32(hparams.*field.member);
        put_i32(mel.n_mel);
        put_i32(mel.n_fft);
        for (const float value : mel.values) {
            std::uint32_t bits;
            std::memcpy(&bits, &value, sizeof bits);
            put_u32(bits);
        }
        put_i32(static_cast<std::int32_t>(vocabulary.size()));
        for (const std::string& token : vocabulary) {
            if (token.size() > std::numeric_limits<std::uint32_t>::max()) {
                fail("a vocabulary entry of " + std::to_string(token.size()) + " bytes");
            }
            put_u32(static_cast<std::uint32_t>(token.size()));
            put(token.data(), token.size());
        }
        state_ = state::between_tensors;
    }

    /// Starts a tensor: writes its record and expects exactly
    /// row_size(type, ne[0]) * ne[1] * ne[2] * ne[3] bytes of data before end_tensor().
    /// Extents past n_dims must be 1.
    void begin_tensor(std::string_view name, type_id type, int n_dims,
                      const std::array<std::int64_t, max_dims>& ne) {
        expect(state::between_tensors, "begin_tensor");
        const std::string quoted = "tensor '" + std::string(name) + "': ";
        if (name.empty() || name.size() > std::size_t(max_name_length)) {
            fail(quoted + "name length " + std::to_string(name.size()) + " is outside 1.." +
                 std::to_string(max_name_length));
        }
        if (n_dims < 1 || n_dims > max_dims) {
            fail(quoted + "n_dims " + std::to_string(n_dims) + " is outside 1..4");
        }
        if (!is_known_type(static_cast<std::int32_t>(type))) {
            fail(quoted + "unknown type id " + std::to_string(static_cast<int>(type)));
        }
        for (int d = 0; d < max_dims; ++d) {
            const bool used = d < n_dims;
            const bool fits = ne[d] >= 1 && ne[d] <= std::numeric_limits<std::int32_t>::max();
            if ((used && !fits) || (!used && ne[d] != 1)) {
                fail(quoted + "extent ne[" + std::to_string(d) + "] = " + std::to_string(ne[d]) +
                     (used ? " is outside 1..2147483647" : " must be 1 past n_dims"));
            }
        }
        if (!can_hold_row(type, ne[0])) {
            fail(quoted + "a row of " + std::to_string(ne[0]) + " values cannot be stored as " +
                 std::string(type_name(type)));
        }
        std::int64_t bytes = static_cast<std::int64_t>(type_size(type));
        if (!detail::multiply_fits(bytes, ne[0] / std::int64_t(block_size(type)), bytes) ||
            !detail::multiply_fits(bytes, ne[1], bytes) ||
            !detail::multiply_fits(bytes, ne[2], bytes) ||
            !detail::multiply_fits(bytes, ne[3], bytes)) {
            fail(quoted + "the data size overflows 64 bits");
        }
        if (!names_.emplace(name).second)
            fail(quoted + "a tensor of that name was already written");

        put_i32(n_dims);
        put_i32(static_cast<std::int32_t>(name.size()));
        put_i32(static_cast<std::int32_t>(type));
        for (int d = 0; d < n_dims; ++d) put_i32(static_cast<std::int32_t>(ne[d]));
        put(name.data(), name.size());
        tensor_name_ = std::string(name);
        expected_ = static_cast<std::uint64_t>(bytes);
        received_ = 0;
        state_ = state::in_tensor;
    }

    /// The next `size` bytes of the current tensor's data (call as often as convenient).
    void write_data(const void* data, std::size_t size) {
        expect(state::in_tensor, "write_data");
        if (size > expected_ - received_) {
            fail("tensor '" + tensor_name_ + "': " + std::to_string(received_ + size) +
                 " bytes of data arrived but it holds exactly " + std::to_string(expected_));
        }
        put(data, size);
        received_ += size;
    }

    void end_tensor() {
        expect(state::in_tensor, "end_tensor");
        if (received_ != expected_) {
            fail("tensor '" + tensor_name_ + "': only " + std::to_string(received_) +
                 " bytes of data arrived but it holds exactly " + std::to_string(expected_));
        }
        state_ = state::between_tensors;
    }

    void write_tensor(std::string_view name, type_id type, int n_dims,
                      const std::array<std::int64_t, max_dims>& ne, const void* data,
                      std::size_t size) {
        begin_tensor(name, type, n_dims, ne);
        write_data(data, size);
        end_tensor();
    }

    /// A tensor of `source` copied unchanged.
    void copy_tensor(const model_file& source, const tensor_entry& tensor) {
        const byte_view bytes = source.data(tensor);
        write_tensor(tensor.name, tensor.type, tensor.n_dims, tensor.ne, bytes.data, bytes.size);
    }

    /// Flushes the model to disk and renames it over the destination. Without this call
    /// nothing reaches the destination.
    void commit() { finished_file().commit(); }

    /// The complete model's file, for io::commit_together() with other outputs. Throws
    /// unless the model is complete (a header, and no tensor left open).
    io::atomic_file& finished_file() {
        expect(state::between_tensors, "commit");
        return file_;
    }

    /// Abandons the model: the temporary file goes, the destination stays as it was.
    void discard() noexcept {
        file_.discard();
        if (state_ != state::committed) state_ = state::failed;
    }

  private:
    enum class state { no_header, between_tensors, in_tensor, committed, failed };

    void expect(state wanted, const char* call) {
        if (file_.committed()) state_ = state::committed;
        if (!file_.committed() && !file_.open()) state_ = state::failed;
        if (state_ == wanted) return;
        static constexpr const char* names[] = {"before the header", "between tensors",
                                                "inside tensor '", "after commit",
                                                "after a failure"};
        std::string where = names[static_cast<int>(state_)];
        if (state_ == state::in_tensor) where += tensor_name_ + "'";
        if (state_ == state::committed || state_ == state::failed) {
            throw error(destination() + ": " + call + " called " + where);
        }
        fail(std::string(call) + " called " + where);
    }

    void check_header_ftype(std::int32_t value) {
        if (!is_valid_header_ftype(value)) {
            fail("header ftype " + std::to_string(value) +
                 " is not a known ftype + 1000 * version (version 0.." +
                 std::to_string(max_quantization_version) + ")");
        }
    }

    /// Removes the temporary file and reports: every failure leaves the destination as
    /// it was and no temporary file behind.
    [[noreturn]] void fail(const std::string& what) {
        state_ = state::failed;
        file_.fail(what);
    }

    void put(const void* data, std::size_t size) { file_.write(data, size); }

    void put_u32(std::uint32_t value) {
        std::uint8_t bytes[4];
        detail::store_u32(bytes, value);
        put(bytes, 4);
    }
    void put_i32(std::int32_t value) {
        std::uint8_t bytes[4];
        detail::store_i32(bytes, value);
        put(bytes, 4);
    }

    io::atomic_file file_;
    state state_ = state::no_header;
    std::unordered_set<std::string> names_;
    std::string tensor_name_;
    std::uint64_t expected_ = 0;
    std::uint64_t received_ = 0;
};

}  // namespace qmix::whisper
