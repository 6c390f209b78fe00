// SPDX-License-Identifier: MIT
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <new>
#include <string>
#include <system_error>
#include <thread>
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

/// Calls work(begin, end) over [0, count) split into at most `threads` contiguous ranges,
/// one thread each (the calling thread takes the first). Every index is handled exactly
/// once, so results written per index do not depend on the thread count. The first
/// exception thrown by any range is rethrown after all threads have finished. A thread that
/// cannot be started (too little memory for its stack, a process limit) is a qmix::error,
/// thrown once the threads already started have finished.
template <class Work>
void parallel_ranges(std::int64_t count, unsigned threads, Work&& work) {
    if (count <= 0) return;
    const auto parts = static_cast<std::int64_t>(std::max(1u, threads));
    const std::int64_t used = std::min(parts, count);
    if (used == 1) {
        work(std::int64_t(0), count);
        return;
    }
    std::vector<std::exception_ptr> failures(static_cast<std::size_t>(used));
    auto run = [&](std::int64_t part) {
        const std::int64_t begin = count * part / used;
        const std::int64_t end = count * (part + 1) / used;
        try {
            work(begin, end);
        } catch (...) {
            failures[static_cast<std::size_t>(part)] = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    std::string start_failure;
    try {
        pool.reserve(static_cast<std::size_t>(used - 1));
        for (std::int64_t part = 1; part < used; ++part) pool.emplace_back(run, part);
    } catch (const std::system_error& e) {
        start_failure = e.what();
    } catch (const std::bad_alloc&) {
        start_failure = "out of memory";
    }
    if (start_failure.empty()) run(0);
    for (auto& t : pool) t.join();
    if (!start_failure.empty()) {
        throw error("cannot start worker thread " + std::to_string(pool.size() + 1) + " of " +
                    std::to_string(used) + " (" + start_failure + "); try fewer threads");
    }
    for (const auto& failure : failures) {
        if (failure) std::rethrow_exception(failure);
    }
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
