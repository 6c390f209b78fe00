// SPDX-License-Identifier: MIT
#pragma once

// Sequential writing around the page cache (Linux O_DIRECT), for atomic_file.
//
// A large output written through the page cache is copied into pages the kernel must first
// allocate, which on the project's virtual machines cost anything from 0.3 to 6.2 s of
// system time for the 870 MB of whisper large in q4_k, from one run to the next (most likely
// the host backing freshly used guest memory). Written with O_DIRECT, the bytes go from our
// buffer to the device. Such writes need an aligned buffer, offset and length, and each one
// returns only once the device has taken the data; so the bytes are gathered in aligned
// blocks and a background thread writes each full block while the caller fills the other.
// The tail that is not a whole alignment unit is written through the page cache at the end.
//
// Where the file system refuses O_DIRECT (at open, or with EINVAL on a write), the stream
// goes on through the page cache: the bytes and the file are the same either way.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace qmix::io::detail {

/// write(2) until all of data[0 .. size) is written, in steps of at most 1 GiB, again after
/// EINTR. Advances data and size past what was written; returns 0 or the failing errno.
inline int write_fully(int fd, const std::uint8_t*& data, std::size_t& size) {
    while (size > 0) {
        const std::size_t step = std::min(size, std::size_t(1) << 30);
        const ssize_t done = ::write(fd, data, step);
        if (done < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        data += done;
        size -= static_cast<std::size_t>(done);
    }
    return 0;
}

class direct_stream {
  public:
    /// Bytes per write of the background thread (two such buffers are held).
    static constexpr std::size_t block_size = std::size_t(4) << 20;
    /// Buffer address, file offset and length of every O_DIRECT write are multiples of this
    /// (the page size, which covers the logical block size of common devices).
    static constexpr std::size_t alignment = 4096;

    /// A stream over fd, whose file offset must be 0; null where the file system refuses
    /// O_DIRECT or the buffers cannot be had (the caller then writes as before).
    static std::unique_ptr<direct_stream> open(int fd) {
#if defined(__linux__) && defined(O_DIRECT)
        if (::lseek(fd, 0, SEEK_CUR) != 0) return nullptr;
        std::unique_ptr<direct_stream> stream(new (std::nothrow) direct_stream(fd));
        if (!stream || !stream->buffers_[0] || !stream->buffers_[1]) return nullptr;
        if (!stream->set_direct(true)) return nullptr;
        try {
            stream->thread_ = std::thread([s = stream.get()] { s->serve(); });
        } catch (...) {
            stream->set_direct(false);
            return nullptr;
        }
        return stream;
#else
        (void)fd;
        return nullptr;
#endif
    }

    direct_stream(const direct_stream&) = delete;
    direct_stream& operator=(const direct_stream&) = delete;

    /// Waits for the block being written, if any; a block not yet started is dropped (after
    /// finish() there is none; before it, the caller is giving the file up).
    ~direct_stream() {
        if (thread_.joinable()) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                stopping_ = true;
            }
            changed_.notify_all();
            thread_.join();
        }
    }

    /// Appends size bytes. Returns 0, or the errno of a write that failed (this one's or
    /// an earlier block's).
    int write(const void* data, std::size_t size) {
        const auto* bytes = static_cast<const std::uint8_t*>(data);
        while (size > 0) {
            const std::size_t take = std::min(size, block_size - filled_);
            std::memcpy(buffers_[current_].get() + filled_, bytes, take);
            filled_ += take;
            bytes += take;
            size -= take;
            if (filled_ == block_size) {
                if (const int code = hand_over()) return code;
            }
        }
        return 0;
    }

    /// Writes everything still held and leaves fd writing through the page cache again.
    /// Returns 0 or the errno of the first failure.
    int finish() {
        if (const int code = wait_idle()) return code;
        const std::size_t whole = filled_ - filled_ % alignment;
        const std::uint8_t* data = buffers_[current_].get();
        if (const int code = write_block(data, whole)) return code;
        if (direct_ && !set_direct(false)) return errno;
        const int code = write_block(data + whole, filled_ - whole);
        filled_ = 0;
        return code;
    }

  private:
    struct aligned_free {
        void operator()(std::uint8_t* p) const noexcept { std::free(p); }
    };
    using buffer = std::unique_ptr<std::uint8_t, aligned_free>;

    explicit direct_stream(int fd) : fd_(fd) {
        for (buffer& b : buffers_) {
            void* p = nullptr;
            if (::posix_memalign(&p, alignment, block_size) == 0) {
                b.reset(static_cast<std::uint8_t*>(p));
            }
        }
    }

    /// Gives the full current buffer to the background thread and switches to the other
    /// one, once the thread is done with it.
    int hand_over() {
        if (const int code = wait_idle()) return code;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            pending_ = buffers_[current_].get();
        }
        changed_.notify_all();
        current_ ^= 1;
        filled_ = 0;
        return 0;
    }

    int wait_idle() {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return pending_ == nullptr; });
        return error_;
    }

    void serve() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            changed_.wait(lock, [this] { return pending_ != nullptr || stopping_; });
            if (stopping_) return;  // a block still pending is not wanted any more
            const std::uint8_t* block = pending_;
            lock.unlock();
            const int code = error_ == 0 ? write_block(block, block_size) : 0;
            lock.lock();
            if (error_ == 0) error_ = code;
            pending_ = nullptr;
            changed_.notify_all();
        }
    }

    /// write_fully, and a write that O_DIRECT refuses (EINVAL: an alignment the device does
    /// not accept, a file system that takes the flag but not the write) done again through
    /// the page cache, with everything after it.
    int write_block(const std::uint8_t* data, std::size_t size) {
        for (;;) {
            const int code = write_fully(fd_, data, size);
            if (code == EINVAL && direct_ && set_direct(false)) continue;
            return code;
        }
    }

    bool set_direct(bool on) {
        const int flags = ::fcntl(fd_, F_GETFL);
        if (flags < 0) return false;
        if (::fcntl(fd_, F_SETFL, on ? flags | O_DIRECT : flags & ~O_DIRECT) != 0) return false;
        direct_ = on;
        return true;
    }

    int fd_;
    buffer buffers_[2];
    int current_ = 0;         ///< the buffer being filled
    std::size_t filled_ = 0;  ///< bytes in it
    bool direct_ = false;     ///< O_DIRECT is on (touched by one thread at a time)

    std::thread thread_;
    std::mutex mutex_;
    std::condition_variable changed_;
    const std::uint8_t* pending_ = nullptr;  ///< the block the thread is to write
    int error_ = 0;                          ///< the first failure's errno
    bool stopping_ = false;
};

}  // namespace qmix::io::detail
