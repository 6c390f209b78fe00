// SPDX-License-Identifier: MIT
#pragma once

// Reading a file of any layout: an open descriptor with checked positional reads, and
// optionally a read-only mapping of the whole file. Nothing here knows a file format; the
// codecs (whisper/, ...) parse with io::cursor (cursor.hpp) and fetch their data through
// input_file::read() into buffers they reuse, or through views of the mapping.
//
// Every failure is a qmix::error that names the file and the byte offset.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include "qmix/core/error.hpp"

namespace qmix::io {

/// A read-only view of bytes owned by someone else. Data inside a file sits at whatever
/// offset the bytes before it leave, so it is NOT aligned: copy it out with memcpy (or use
/// unaligned loads) rather than casting to float* or uint16_t*.
struct byte_view {
    const std::uint8_t* data = nullptr;
    std::size_t size = 0;

    const std::uint8_t* begin() const noexcept { return data; }
    const std::uint8_t* end() const noexcept { return data + size; }
};

namespace detail {

inline std::string errno_text(int code) {
    return std::strerror(code);
}

/// A file descriptor that closes itself.
class unique_fd {
  public:
    unique_fd() = default;
    explicit unique_fd(int fd) noexcept : fd_(fd) {}
    unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    unique_fd& operator=(unique_fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    unique_fd(const unique_fd&) = delete;
    unique_fd& operator=(const unique_fd&) = delete;
    ~unique_fd() { reset(); }

    int get() const noexcept { return fd_; }
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

  private:
    int fd_ = -1;
};

/// A read-only private mapping of a whole file that unmaps itself. Empty when mmap
/// failed, in which case the caller reads instead.
class file_mapping {
  public:
    file_mapping() = default;
    file_mapping(int fd, std::size_t size) noexcept {
        void* address = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (address == MAP_FAILED) return;
        base_ = static_cast<std::uint8_t*>(address);
        size_ = size;
    }
    file_mapping(file_mapping&& other) noexcept
        : base_(std::exchange(other.base_, nullptr)), size_(std::exchange(other.size_, 0)) {}
    file_mapping& operator=(file_mapping&& other) noexcept {
        if (this != &other) {
            reset();
            base_ = std::exchange(other.base_, nullptr);
            size_ = std::exchange(other.size_, 0);
        }
        return *this;
    }
    file_mapping(const file_mapping&) = delete;
    file_mapping& operator=(const file_mapping&) = delete;
    ~file_mapping() { reset(); }

    const std::uint8_t* data() const noexcept { return base_; }
    std::size_t size() const noexcept { return size_; }

    /// madvise on [offset, offset + length) widened to whole pages.
    void advise(std::uint64_t offset, std::uint64_t length, int advice) const noexcept {
        if (base_ == nullptr || length == 0) return;
        const long reported = ::sysconf(_SC_PAGESIZE);
        const std::uint64_t page = reported > 0 ? static_cast<std::uint64_t>(reported) : 4096;
        const std::uint64_t begin = offset / page * page;
        std::uint64_t end = (offset + length + page - 1) / page * page;
        if (end > size_) end = size_;
        if (end > begin) {
            ::madvise(base_ + begin, static_cast<std::size_t>(end - begin), advice);
        }
    }

  private:
    void reset() noexcept {
        if (base_ != nullptr) ::munmap(base_, size_);
        base_ = nullptr;
        size_ = 0;
    }

    std::uint8_t* base_ = nullptr;
    std::size_t size_ = 0;
};

/// Reads the whole range or throws; a short count means the file shrank under us.
inline void read_exactly(int fd, std::uint64_t offset, void* destination, std::size_t size,
                         const std::string& path) {
    auto* out = static_cast<std::uint8_t*>(destination);
    while (size > 0) {
        const std::size_t step = size < (std::size_t(1) << 30) ? size : (std::size_t(1) << 30);
        const ssize_t got = ::pread(fd, out, step, static_cast<off_t>(offset));
        if (got < 0) {
            if (errno == EINTR) continue;
            throw error(path + ": byte " + std::to_string(offset) +
                        ": read failed: " + errno_text(errno));
        }
        if (got == 0) {
            throw error(path + ": byte " + std::to_string(offset) +
                        ": the file ended early (was it truncated while being read?)");
        }
        out += got;
        offset += static_cast<std::uint64_t>(got);
        size -= static_cast<std::size_t>(got);
    }
}

}  // namespace detail

/// A regular file opened for reading. read() works at any time, from any thread (it is a
/// positional read and changes no state); map() adds a read-only mapping of the whole file
/// for callers that want views instead of copies.
class input_file {
  public:
    input_file() = default;
    explicit input_file(std::string path) : path_(std::move(path)) {
        fd_ = detail::unique_fd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC));
        if (fd_.get() < 0) {
            throw error(path_ + ": cannot open: " + detail::errno_text(errno));
        }
        struct stat status;
        if (::fstat(fd_.get(), &status) != 0) {
            throw error(path_ + ": cannot stat: " + detail::errno_text(errno));
        }
        if (!S_ISREG(status.st_mode)) throw error(path_ + ": not a regular file");
        size_ = static_cast<std::uint64_t>(status.st_size);
    }

    input_file(input_file&&) = default;
    input_file& operator=(input_file&&) = default;
    input_file(const input_file&) = delete;
    input_file& operator=(const input_file&) = delete;
    ~input_file() = default;

    const std::string& path() const noexcept { return path_; }
    std::uint64_t size() const noexcept { return size_; }
    int descriptor() const noexcept { return fd_.get(); }

    /// Maps the whole file read-only; returns whether it is mapped. A failure (a file
    /// system without mmap, too little address space) is not an error: read() still works.
    bool map() noexcept {
        if (is_mapped()) return true;
        if (size_ == 0 || size_ > std::numeric_limits<std::size_t>::max()) return false;
        map_ = detail::file_mapping(fd_.get(), static_cast<std::size_t>(size_));
        return is_mapped();
    }
    bool is_mapped() const noexcept { return map_.data() != nullptr; }

    /// Copies [offset, offset + n) into `destination`; throws naming the file and offset
    /// when the range is not in the file or the read fails.
    void read(std::uint64_t offset, void* destination, std::size_t n) const {
        if (n == 0) return;
        check_range(offset, n);
        detail::read_exactly(fd_.get(), offset, destination, n, path_);
    }

    /// A view of [offset, offset + n) in the mapping; only when is_mapped().
    byte_view view(std::uint64_t offset, std::uint64_t n) const {
        if (!is_mapped()) throw error(path_ + ": view() of a file that is not mapped");
        check_range(offset, n);
        return {map_.data() + offset, static_cast<std::size_t>(n)};
    }

    /// madvise() on a range of the mapping, widened to whole pages; nothing when unmapped.
    void advise(std::uint64_t offset, std::uint64_t n, int advice) const noexcept {
        map_.advise(offset, n, advice);
    }

    /// Asks the kernel to start reading [offset, offset + n) into the page cache now, in
    /// the background, so that a read() of it later finds it there; a hint only. Streaming
    /// readers call it one chunk ahead: with several threads reading pieces of a chunk,
    /// the kernel's own read-ahead does not see one sequential stream.
    void prefetch(std::uint64_t offset, std::uint64_t n) const noexcept {
#if defined(POSIX_FADV_WILLNEED)
        if (fd_.get() >= 0 && n > 0 && offset < size_) {
            ::posix_fadvise(fd_.get(), static_cast<off_t>(offset),
                            static_cast<off_t>(std::min(n, size_ - offset)), POSIX_FADV_WILLNEED);
        }
#else
        (void)offset;
        (void)n;
#endif
    }

  private:
    void check_range(std::uint64_t offset, std::uint64_t n) const {
        if (offset > size_ || n > size_ - offset) {
            throw error(path_ + ": byte " + std::to_string(offset) + ": " + std::to_string(n) +
                        " bytes asked for, past the end of the file (" + std::to_string(size_) +
                        " bytes)");
        }
    }

    std::string path_;
    detail::unique_fd fd_;
    detail::file_mapping map_;
    std::uint64_t size_ = 0;
};

}  // namespace qmix::io
