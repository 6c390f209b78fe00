// SPDX-License-Identifier: MIT
#pragma once

// The importance-weighted quantizers of the 32-value block formats (ggml's
// quantize_row_q4_0_impl .. quantize_row_q5_1_impl; formats/q4_0.hpp .. q5_1.hpp), on the
// k-quants' per-lane searches (kquants/searches.hpp), one block per lane: q4_0 and q5_0
// run the symmetric search (make_qx_quants, rmse_type 1), q4_1 and q5_1 the scale-and-offset
// search (make_qkx3_quants: 37 trial scales). The weights are importance * sqrt(sigma2 +
// x^2), sigma2 the row's mean square, summed in index order by the scalar code. Each lane
// does the reference's operations in its order, so every byte is the scalar code's.
// A row whose mean square or importance is not finite (every weight NaN, every scale a NaN
// whose bits the scalar code spells out), and a block whose scale or offset comes out not
// finite, take the scalar code.

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/detail/row_of_blocks.hpp"
#include "qmix/formats/q4_0.hpp"
#include "qmix/formats/q4_1.hpp"
#include "qmix/formats/q5_0.hpp"
#include "qmix/formats/q5_1.hpp"
#include "qmix/kernels/kquants/lanes.hpp"
#include "qmix/kernels/kquants/searches.hpp"
#include "qmix/kernels/kquants/staging.hpp"

namespace qmix::kernels::weighted {
QMIX_ABI_BEGIN

/// Per format: the search's nmax and whether the block has an offset (scale and min).
template <int Nmax, bool Offset>
struct search_shape {
    static constexpr int nmax = Nmax;
    static constexpr bool offset = Offset;
};
template <class Format>
struct traits;
template <>
struct traits<formats::q4_0> : search_shape<8, false> {};
template <>
struct traits<formats::q5_0> : search_shape<16, false> {};
template <>
struct traits<formats::q4_1> : search_shape<15, true> {};
template <>
struct traits<formats::q5_1> : search_shape<31, true> {};

template <class Arch, class Format>
struct kernels {
    using T = traits<Format>;
    static constexpr int K =
        T::offset ? kquants::offset_search_batches<Arch> : kquants::search_batches<Arch>;
    using W = kquants::lanes<Arch, K>;
    using floats = typename W::floats;
    using search = kquants::group_search<Arch, K>;
    using block = typename Format::block;
    static constexpr int n = 32;
    static_assert(Format::block_size == std::size_t(n), "one 32-value block per lane");

    /// nrows rows of n_per_row values, one importance vector for every row.
    static void quantize(const float* src, block* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* importance) {
        const std::int64_t blocks = n_per_row / n;
        const bool importance_finite = std::all_of(importance, importance + n_per_row,
                                                   [](float v) { return std::isfinite(v); });
        for (std::int64_t first_row = 0; first_row < nrows; first_row += row_group) {
            float sigma2[row_group];
            const int rows = int(std::min<std::int64_t>(row_group, nrows - first_row));
            mean_squares(src + first_row * n_per_row, rows, n_per_row, sigma2);
            for (int r = 0; r < rows; ++r) {
                const float* x = src + (first_row + r) * n_per_row;
                block* y = dst + (first_row + r) * blocks;
                if (!importance_finite || !std::isfinite(sigma2[r])) {
                    Format::quantize_row(x, y, n_per_row, importance);
                    continue;
                }
                for (std::int64_t first = 0; first < blocks; first += W::count) {
                    const int count = int(std::min<std::int64_t>(W::count, blocks - first));
                    quantize_lanes(x + first * n, importance + first * n, sigma2[r], count,
                                   y + first);
                }
            }
        }
    }

  private:
    /// Rows whose mean squares are summed side by side.
    static constexpr int row_group = 8;

    /// formats::detail::mean_square of each of `rows` (at most row_group) rows: each row's
    /// sum in the reference's order, the rows' sums interleaved so that one's additions do
    /// not wait for its previous one (one row alone runs at the latency of an addition).
    static void mean_squares(const float* x, int rows, std::int64_t n_per_row, float* out) {
        const float* row[row_group];
        for (int r = 0; r < row_group; ++r) row[r] = x + std::min(r, rows - 1) * n_per_row;
        float sum[row_group] = {};
        for (std::int64_t j = 0; j < n_per_row; ++j) {
            for (int r = 0; r < row_group; ++r) sum[r] += strict::mul(row[r][j], row[r][j]);
        }
        for (int r = 0; r < rows; ++r) out[r] = sum[r] / float(n_per_row);
    }

    /// The `count` blocks from x (at most W::count), with their importance.
    static void quantize_lanes(const float* x, const float* importance, float sigma2, int count,
                               block* y) {
        // The k-quants' staging, each block a group of its own; every block has the row's
        // spread.
        const float* block_importance[W::count];
        float row_sigma2[W::count];
        for (int lane = 0; lane < count; ++lane) {
            block_importance[lane] = importance + lane * n;
            row_sigma2[lane] = sigma2;
        }
        kquants::group_batch<Arch, n, 1, K> batch;
        batch.load(x, block_importance, 0, count);
        const auto& xs = batch.x;
        floats w[n];
        batch.importance_weights(row_sigma2, w);
        // Per lane: the scale, the offset (q4_1, q5_1) and whether the levels are all 0.
        alignas(64) float d[W::count];
        alignas(64) float m[W::count];
        alignas(64) float zero_levels[W::count];
        typename W::ints levels[n];
        const floats zero(0.0f);
        if constexpr (T::offset) {
            const auto fit =
                search::template scale_and_min<n, false>(xs.v, w, T::nmax, -0.9f, 0.05f, 36);
            W::store(d, fit.scale);
            // The block stores the offset, -(the search's min), a zero with its sign.
            W::store(m, W::negate(fit.min));
            W::store(zero_levels, zero);  // flat lanes get level 0 from the fit itself
            for (int i = 0; i < n; ++i) {
                levels[i] =
                    search::scale_min_levels(xs.v[i], fit.level_iscale, fit.level_min, T::nmax);
            }
        } else {
            const auto fit = search::template symmetric<n, true>(xs.v, w, T::nmax);
            W::store(d, fit.scale);
            W::store(zero_levels, W::select(fit.flat, floats(1.0f), zero));
            for (int i = 0; i < n; ++i) {
                levels[i] = search::symmetric_levels(xs.v[i], fit.level_iscale, T::nmax);
            }
        }
        alignas(64) std::int32_t level_table[n * W::count];  // value i of lane j at i * count + j
        for (int i = 0; i < n; ++i) W::store(level_table + i * W::count, levels[i]);
        for (int lane = 0; lane < count; ++lane) {
            block& out = y[lane];
            if (!std::isfinite(d[lane]) || (T::offset && !std::isfinite(m[lane]))) {
                Format::quantize_block_weighted(x + lane * n, block_importance[lane], sigma2, out);
                continue;
            }
            std::uint8_t bytes[n];
            for (int i = 0; i < n; ++i) {
                bytes[i] =
                    zero_levels[lane] != 0.0f ? 0 : std::uint8_t(level_table[i * W::count + lane]);
            }
            out.d = qmix::float_to_half(d[lane]);
            if constexpr (T::offset) out.m = qmix::float_to_half(m[lane]);
            if constexpr (T::nmax < 16) {
                for (int j = 0; j < n / 2; ++j) {
                    out.qs[j] = std::uint8_t(bytes[j] | (bytes[j + n / 2] << 4));
                }
            } else {
                formats::detail::pack_five_bit_levels(bytes, out);
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::weighted
