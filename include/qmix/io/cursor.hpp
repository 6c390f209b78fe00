// SPDX-License-Identifier: MIT
#pragma once

// Checked sequential parsing of a file: a cursor walks the file front to back through a
// small read window, checks every read against the end of the file, and composes every
// complaint from the file, the byte offset, the item being read (e.g. a tensor) and what
// was expected. Memory stays at the window's size however large the file or its parts.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/io/input_file.hpp"

namespace qmix::io {

/// Little-endian loads from unaligned bytes.
inline std::uint32_t load_u32(const std::uint8_t* p) noexcept {
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
           std::uint32_t(p[3]) << 24;
}

inline std::int32_t load_i32(const std::uint8_t* p) noexcept {
    const std::uint32_t bits = load_u32(p);
    std::int32_t value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

inline float load_f32(const std::uint8_t* p) noexcept {
    const std::uint32_t bits = load_u32(p);
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

/// The file's bytes through a read window. Parsing reads even when the file will be
/// mapped: touching a mapping would also map the cached pages around each record, tens of
/// megabytes of resident data nobody asked for.
class byte_source {
  public:
    explicit byte_source(const input_file& file) : file_(file) {}

    /// Copies [offset, offset + n); the caller has checked the range lies in the file.
    void copy(std::uint64_t offset, void* destination, std::size_t n) {
        if (n == 0) return;
        if (n > sequential_window) {
            file_.read(offset, destination, n);
            return;
        }
        if (offset < window_offset_ || offset + n > window_offset_ + window_.size()) {
            // Reading on from the window's end is a sequential walk; anything else is a
            // jump over data to the next record, which is small.
            const bool sequential = offset == window_offset_ + window_.size();
            const std::uint64_t wanted = sequential ? sequential_window : record_window;
            const std::uint64_t left = file_.size() - offset;
            const std::uint64_t length = std::max<std::uint64_t>(n, std::min(wanted, left));
            window_.resize(static_cast<std::size_t>(length));
            file_.read(offset, window_.data(), window_.size());
            window_offset_ = offset;
        }
        std::memcpy(destination, window_.data() + (offset - window_offset_), n);
    }

  private:
    static constexpr std::uint64_t sequential_window = 1 << 16;
    static constexpr std::uint64_t record_window = 1 << 12;
    const input_file& file_;
    std::vector<std::uint8_t> window_;
    std::uint64_t window_offset_ = 0;
};

/// Walks the file front to back; every read is checked against the end of the file and
/// every complaint carries the file, the offset and the item being read.
class cursor {
  public:
    explicit cursor(byte_source& source, const input_file& file, std::uint64_t offset = 0)
        : source_(source), size_(file.size()), path_(file.path()), offset_(offset) {}

    std::uint64_t offset() const noexcept { return offset_; }
    std::uint64_t bytes_left() const noexcept { return size_ - offset_; }
    bool at_end() const noexcept { return offset_ == size_; }
    /// Names the item being read in every complaint ("tensor 'x'"); empty for none.
    void set_item(std::string_view kind, std::string_view name) {
        item_ = name.empty() ? std::string() : std::string(kind) + " '" + std::string(name) + "'";
    }

    [[noreturn]] void fail_at(std::uint64_t offset, const std::string& what) const {
        std::string message = path_ + ": byte " + std::to_string(offset);
        if (!item_.empty()) message += " (" + item_ + ")";
        throw error(message + ": " + what);
    }

    void need(std::uint64_t n, std::string_view what) const {
        if (n > bytes_left()) {
            fail_at(offset_, "truncated: expected " + std::to_string(n) + " bytes of " +
                                 std::string(what) + " but only " + std::to_string(bytes_left()) +
                                 " are left (file size " + std::to_string(size_) + ")");
        }
    }

    std::uint32_t u32(std::string_view what) {
        std::uint8_t bytes[4];
        read(bytes, 4, what);
        return load_u32(bytes);
    }
    std::int32_t i32(std::string_view what) {
        std::uint8_t bytes[4];
        read(bytes, 4, what);
        return load_i32(bytes);
    }
    void read(void* destination, std::size_t n, std::string_view what) {
        need(n, what);
        source_.copy(offset_, destination, n);
        offset_ += n;
    }
    void skip(std::uint64_t n, std::string_view what) {
        need(n, what);
        offset_ += n;
    }

  private:
    byte_source& source_;
    std::uint64_t size_;
    const std::string& path_;
    std::uint64_t offset_ = 0;
    std::string item_;
};

}  // namespace qmix::io
