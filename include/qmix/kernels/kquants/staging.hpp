// SPDX-License-Identifier: MIT
#pragma once

// Moving values between the layout of a row (blocks of groups, value after value) and the
// lane-major layout of the searches (one group per lane), and walking a row range in
// chunks of blocks.

#include <cstdint>

#include "qmix/core/config.hpp"
#include "qmix/kernels/kquants/lanes.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

/// Lane-major staging of groups: lane j of batch i holds value i of group j. Groups that
/// do not exist (the tail of a row) are filled with zeros; their lanes compute throwaway
/// results.
template <class Arch, int GroupSize, int K = 1>
struct transposed {
    using L = lanes<Arch, K>;
    typename L::floats v[GroupSize];

    /// Loads up to L::count groups whose values start at `sources[j]`. (Flattened: its steps
    /// are lambdas, which GCC left as calls once q3_k's search grew. The avx512 transpose's
    /// own steps, which GCC still left as calls here, are marked QMIX_INLINE_LAMBDA.)
    QMIX_FLATTEN void load(const float* const* sources, int valid) {
        constexpr int width = L::batch_size;
        if constexpr (GroupSize % width == 0) {
            if (valid == L::count) {
                // Square transposes of batch_size groups by batch_size values, in registers.
                unrolled<L::count / width>([&](auto k) {
                    unrolled<GroupSize / width>([&](auto column_block) {
                        constexpr int c = decltype(column_block)::value * width;
                        const float* rows[width];
                        for (int j = 0; j < width; ++j) rows[j] = sources[k * width + j] + c;
                        typename L::ops::floats columns[width];
                        L::ops::transpose(rows, columns);
                        unrolled<width>([&](auto i) { L::part(v[c + i], k) = columns[i]; });
                    });
                });
                return;
            }
        }
        alignas(64) float buffer[GroupSize * L::count];
        for (int lane = 0; lane < L::count; ++lane) {
            if (lane < valid) {
                const float* src = sources[lane];
                for (int i = 0; i < GroupSize; ++i) buffer[i * L::count + lane] = src[i];
            } else {
                for (int i = 0; i < GroupSize; ++i) buffer[i * L::count + lane] = 0.0f;
            }
        }
        for (int i = 0; i < GroupSize; ++i) v[i] = L::load(buffer + i * L::count);
    }
};

/// One lane per group for the groups first .. first + lanes of a chunk of blocks: the
/// group's values and, on the importance path, its importance, both lane-major.
template <class Arch, int GroupSize, int GroupsPerBlock, int K = 1>
struct group_batch {
    using L = lanes<Arch, K>;

    int first = 0;
    int valid = 0;  ///< lanes that hold a group; the others hold zeros
    transposed<Arch, GroupSize, K> x;
    transposed<Arch, GroupSize, K> importance;

    /// `chunk_x` holds the chunk's blocks back to back; `chunk_importance` is null or
    /// points to each block's importance.
    void load(const float* chunk_x, const float* const* chunk_importance, int first_group,
              int groups) {
        first = first_group;
        valid = groups - first < L::count ? groups - first : L::count;
        // Only the first `valid` are read; set all, or GCC 12 cannot see that where the
        // group count is a run-time value (kernels/weighted.hpp).
        const float* sources[L::count] = {};
        for (int lane = 0; lane < valid; ++lane) {
            sources[lane] = chunk_x + (first + lane) * GroupSize;
        }
        x.load(sources, valid);
        if (chunk_importance) {
            for (int lane = 0; lane < valid; ++lane) {
                const int group = first + lane;
                sources[lane] =
                    chunk_importance[group / GroupsPerBlock] + (group % GroupsPerBlock) * GroupSize;
            }
            importance.load(sources, valid);
        }
    }

    /// The importance path's value weights, importance * sqrt(sigma2 + x^2) with sigma2
    /// the block's spread; returns their sum over the group, in index order.
    typename L::floats importance_weights(const float* block_sigma2, typename L::floats* w) const {
        const auto sigma2 = per_block(block_sigma2);
        typename L::floats sum(0.0f);
        for (int i = 0; i < GroupSize; ++i) {
            w[i] = L::mul(importance.v[i], L::sqrt(sigma2 + L::mul(x.v[i], x.v[i])));
        }
        for (int i = 0; i < GroupSize; ++i) sum += w[i];
        return sum;
    }

    /// Lane j gets per_block[block of group j]: a block-wide quantity, per lane.
    typename L::floats per_block(const float* per_block_values) const {
        alignas(64) float spread[L::count] = {};
        for (int lane = 0; lane < valid; ++lane) {
            spread[lane] = per_block_values[(first + lane) / GroupsPerBlock];
        }
        return L::load(spread);
    }
};

/// Sum of x[i]^2 over the `length` values of each of `count` consecutive blocks, summed in
/// index order as the reference does (one block per lane).
template <class Arch>
void sums_of_squares(const float* x, int count, int length, float* out) {
    using L = lanes<Arch>;
    alignas(64) float column[L::count];
    alignas(64) float sums[L::count];
    for (int first = 0; first < count; first += L::count) {
        const int valid = count - first < L::count ? count - first : L::count;
        typename L::floats sum(0.0f);
        for (int i = 0; i < length; ++i) {
            for (int lane = 0; lane < L::count; ++lane) {
                column[lane] = lane < valid ? x[std::int64_t(first + lane) * length + i] : 0.0f;
            }
            const auto v = L::floats::load_aligned(column);
            sum += L::mul(v, v);
        }
        sum.store_aligned(sums);
        for (int lane = 0; lane < valid; ++lane) out[first + lane] = sums[lane];
    }
}

/// The row-range driver of the k-quant quantizers: cuts the blocks of nrows rows into
/// chunks of at most Chunk blocks and calls quantize_chunk(values of the chunk, its blocks,
/// block count, importance of each block or nullptr). The importance vector covers one row
/// and applies to every row.
template <class Arch, int Chunk, class Block, class QuantizeChunk>
void quantize_by_chunks(const float* src, Block* dst, std::int64_t nrows, std::int64_t n_per_row,
                        int block_size, const float* importance, QuantizeChunk quantize_chunk) {
    const std::int64_t per_row = n_per_row / block_size;
    const std::int64_t total = nrows * per_row;
    const float* weights[Chunk];
    for (std::int64_t first = 0; first < total; first += Chunk) {
        const int count = total - first < Chunk ? int(total - first) : Chunk;
        if (importance) {
            for (int b = 0; b < count; ++b) {
                weights[b] = importance + ((first + b) % per_row) * block_size;
            }
        }
        quantize_chunk(src + first * block_size, dst + first, count,
                       importance ? weights : nullptr);
    }
}

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
