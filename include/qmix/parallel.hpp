// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/ops.hpp"

namespace qmix {

namespace detail {

/// Neither buffer of a parallel conversion may be null when there is a row to convert (the
/// row API checks the same, with the same words, but only once a thread has started).
inline void check_buffers(const void* src, const void* dst, std::int64_t nrows) {
    if (nrows > 0 && (src == nullptr || dst == nullptr)) {
        throw error(std::string(src == nullptr ? "src" : "dst") + " is null with " +
                    std::to_string(nrows) + " row(s) to convert");
    }
}

}  // namespace detail

/// The thread count to use when the caller asks for "all cores" (0).
inline unsigned resolve_threads(unsigned requested) noexcept {
    if (requested > 0) return requested;
    const unsigned cores = std::thread::hardware_concurrency();
    return cores > 0 ? cores : 1;
}

/// Threads kept for many rounds of work, for a caller that would otherwise start and join
/// threads thousands of times (one round per chunk of a model). run(work) calls work(slot)
/// once for every slot 0 .. size() - 1, the calling thread taking slot 0, and returns when
/// all have finished; the first exception by slot order is rethrown then. A thread that
/// cannot be started is a qmix::error from the constructor, thrown once the threads already
/// started have stopped.
class worker_pool {
  public:
    explicit worker_pool(unsigned threads) : slots_(std::max(1u, threads)) {
        failures_.resize(slots_);
        std::string start_failure;
        try {
            workers_.reserve(slots_ - 1);
            for (unsigned slot = 1; slot < slots_; ++slot) {
                workers_.emplace_back([this, slot] { serve(slot); });
            }
        } catch (const std::system_error& e) {
            start_failure = e.what();
        } catch (const std::bad_alloc&) {
            start_failure = "out of memory";
        }
        if (!start_failure.empty()) {
            const std::size_t started = workers_.size();
            stop();
            throw error("cannot start worker thread " + std::to_string(started + 1) + " of " +
                        std::to_string(slots_) + " (" + start_failure + "); try fewer threads");
        }
    }

    worker_pool(const worker_pool&) = delete;
    worker_pool& operator=(const worker_pool&) = delete;
    ~worker_pool() { stop(); }

    unsigned size() const noexcept { return slots_; }

    template <class Work>
    void run(Work&& work) {
        using target = std::remove_reference_t<Work>;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            call_ = [](void* context, unsigned slot) { (*static_cast<target*>(context))(slot); };
            context_ = const_cast<void*>(static_cast<const void*>(&work));
            busy_ = slots_ - 1;
            ++round_;
        }
        wake_.notify_all();
        attempt(0);
        {
            std::unique_lock<std::mutex> lock(mutex_);
            done_.wait(lock, [this] { return busy_ == 0; });
        }
        for (auto& failure : failures_) {
            if (!failure) continue;
            const std::exception_ptr first = failure;
            for (auto& f : failures_) f = nullptr;
            std::rethrow_exception(first);
        }
    }

  private:
    void attempt(unsigned slot) noexcept {
        try {
            call_(context_, slot);
        } catch (...) {
            failures_[slot] = std::current_exception();
        }
    }

    void serve(unsigned slot) {
        std::uint64_t seen = 0;
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(mutex_);
                wake_.wait(lock, [&] { return stopping_ || round_ != seen; });
                if (stopping_) return;
                seen = round_;
            }
            attempt(slot);
            bool last = false;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                last = --busy_ == 0;
            }
            if (last) done_.notify_one();
        }
    }

    void stop() noexcept {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
        workers_.clear();
    }

    unsigned slots_;
    std::vector<std::thread> workers_;
    std::vector<std::exception_ptr> failures_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    void (*call_)(void*, unsigned) = nullptr;
    void* context_ = nullptr;
    unsigned busy_ = 0;
    std::uint64_t round_ = 0;
    bool stopping_ = false;
};

/// Calls work(begin, end) over [0, count) split into at most `threads` contiguous ranges,
/// one thread each (the calling thread takes the first). Every index is handled exactly
/// once, so results written per index do not depend on the thread count. The first
/// exception thrown by any range is rethrown after all threads have finished. A thread that
/// cannot be started (too little memory for its stack, a process limit) is a qmix::error,
/// thrown before any range runs (worker_pool's).
template <class Work>
void parallel_ranges(std::int64_t count, unsigned threads, Work&& work) {
    if (count <= 0) return;
    const auto parts = static_cast<std::int64_t>(std::max(1u, threads));
    const std::int64_t used = std::min(parts, count);
    if (used == 1) {
        work(std::int64_t(0), count);
        return;
    }
    worker_pool pool(static_cast<unsigned>(used));
    pool.run([&](unsigned part) { work(count * part / used, count * (part + 1) / used); });
}

/// quantize() over rows split between threads, with the kernels of `table`. The bytes are
/// identical for every thread count: each row is quantized on its own, by the same code,
/// wherever it runs.
inline std::size_t quantize_parallel(const kernels::kernel_table& table, type_id type,
                                     const float* src, void* dst, std::int64_t nrows,
                                     std::int64_t n_per_row, const float* importance,
                                     unsigned threads) {
    const std::size_t total = rows_size(type, nrows, n_per_row);  // throws for bad rows
    const std::size_t bytes = row_size(type, n_per_row);
    detail::check_buffers(src, dst, nrows);
    parallel_ranges(nrows, threads, [&](std::int64_t begin, std::int64_t end) {
        quantize(table, type, src + begin * n_per_row,
                 static_cast<unsigned char*>(dst) + std::size_t(begin) * bytes, end - begin,
                 n_per_row, importance);
    });
    return total;
}

/// quantize_parallel() with the active kernel table.
inline std::size_t quantize_parallel(type_id type, const float* src, void* dst, std::int64_t nrows,
                                     std::int64_t n_per_row, const float* importance,
                                     unsigned threads) {
    return quantize_parallel(kernels::active_table(), type, src, dst, nrows, n_per_row, importance,
                             threads);
}

/// dequantize() over rows split between threads, with the kernels of `table`.
inline void dequantize_parallel(const kernels::kernel_table& table, type_id type, const void* src,
                                float* dst, std::int64_t nrows, std::int64_t n_per_row,
                                unsigned threads) {
    rows_size(type, nrows, n_per_row);  // throws for bad rows
    const std::size_t bytes = row_size(type, n_per_row);
    detail::check_buffers(src, dst, nrows);
    parallel_ranges(nrows, threads, [&](std::int64_t begin, std::int64_t end) {
        dequantize(table, type, static_cast<const unsigned char*>(src) + std::size_t(begin) * bytes,
                   dst + begin * n_per_row, end - begin, n_per_row);
    });
}

/// dequantize_parallel() with the active kernel table.
inline void dequantize_parallel(type_id type, const void* src, float* dst, std::int64_t nrows,
                                std::int64_t n_per_row, unsigned threads) {
    dequantize_parallel(kernels::active_table(), type, src, dst, nrows, n_per_row, threads);
}

}  // namespace qmix
