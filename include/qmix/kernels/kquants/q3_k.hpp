// SPDX-License-Identifier: MIT
#pragma once

// q3_K: quantize and dequantize (layout and reference in formats/q3_k.hpp). Each group of
// 16 values gets its symmetric scale from the reference's search, one group per lane (the
// greedy x^2-weighted search without importance, the weighted least-squares search with
// it); per block the 16 scales become 6-bit levels (searched one block per lane on the
// importance path); then every value is rounded against the scales as stored.

#include <cstdint>
#include <cstring>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/q3_k.hpp"
#include "qmix/kernels/kquants/lanes.hpp"
#include "qmix/kernels/kquants/scalar.hpp"
#include "qmix/kernels/kquants/searches.hpp"
#include "qmix/kernels/kquants/staging.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Arch>
struct q3_k_kernels {
    using L = lanes<Arch>;
    using floats = typename L::floats;
    using ints = typename L::ints;
    /// The group searches run on K batches at once (W::count lanes); the per-block steps
    /// and the level recomputation on single batches.
    static constexpr int K = search_batches<Arch>;
    using W = lanes<Arch, K>;
    using search = group_search<Arch, K>;
    using block_search = group_search<Arch>;
    using block = formats::block_q3_k;

    static constexpr int values = 256;
    static constexpr int groups = 16;
    static constexpr int group_size = 16;
    static constexpr int level_bias = 4;
    static constexpr int scale_bias = 32;
    static constexpr int chunk = 16;
    static_assert(chunk * groups % W::count == 0, "a chunk fills whole search batches");

    static void quantize(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* importance) {
        quantize_by_chunks<Arch, chunk>(src, static_cast<block*>(dst), nrows, n_per_row, values,
                                        importance, &quantize_chunk);
    }

    static void dequantize(const void* src, float* dst, std::int64_t nrows,
                           std::int64_t n_per_row) {
        const auto* in = static_cast<const block*>(src);
        const std::int64_t total = nrows * (n_per_row / values);
        for (std::int64_t b = 0; b < total; ++b) {
            alignas(64) std::int8_t levels[values];
            unpack_levels(in[b], levels);
            const float d = scalar<Arch>::half_to_float(in[b].d);
            float* out = dst + b * values;
            for (int g = 0; g < groups; ++g) {
                const floats step(d * float(scale_at(in[b].scales, g) - scale_bias));
                for (int i = group_size * g; i < group_size * (g + 1); i += L::count) {
                    L::store(out + i, step * L::widen(levels + i));
                }
            }
        }
    }

    /// Signed levels (-4..3) in value order: value 128 h + 32 s + k has its low bits at
    /// 2 s in qs[32 h + k] and its third bit at 4 h + s in hmask[k].
    static void unpack_levels(const block& x, std::int8_t* levels) {
        for (int h = 0; h < 2; ++h) {
            for (int s = 0; s < 4; ++s) {
                std::int8_t* out = levels + 128 * h + 32 * s;
                for (int k = 0; k < 32; ++k) {
                    const int low = (x.qs[32 * h + k] >> (2 * s)) & 3;
                    const int high = (x.hmask[k] >> (4 * h + s)) & 1;
                    out[k] = std::int8_t(low + 4 * high - level_bias);
                }
            }
        }
    }

    /// Stored (biased, 0..63) scale of group `group` (the format's scale_at).
    static int scale_at(const std::uint8_t* scales, int group) {
        const int low = group < 8 ? scales[group] & 0xF : scales[group - 8] >> 4;
        const int high = (scales[8 + group % 4] >> (2 * (group / 4))) & 3;
        return low | (high << 4);
    }

  private:
    /// The search results of each group of a chunk.
    struct fits {
        alignas(64) float scale[chunk * groups];
        alignas(64) float level_iscale[chunk * groups];
        alignas(64) float flat[chunk * groups];  ///< 1 where the group is all zero
        alignas(64) float weight[chunk * groups];
        alignas(64) std::int32_t scale_level[chunk * groups];  ///< stored (biased) 6-bit scales
    };

    static void quantize_chunk(const float* x, block* y, int count,
                               const float* const* importance) {
        fits f;
        fit_groups(x, count, importance, f);
        if (importance) {
            choose_scales_weighted(count, f, y);
        } else {
            choose_scales_reference(count, f, y);
        }
        for (int b = 0; b < count; ++b) {
            requantize_and_pack(x + b * values, f, b * groups, importance != nullptr, y[b]);
        }
    }

    static void fit_groups(const float* x, int count, const float* const* importance, fits& f) {
        float sigma2[chunk];
        if (importance) {
            sums_of_squares<Arch>(x, count, values, sigma2);
            for (int b = 0; b < count; ++b) sigma2[b] = 2 * sigma2[b] / float(values);
        }
        const int total = count * groups;
        group_batch<Arch, group_size, groups, K> batch;
        moving_groups moving;
        for (int g = 0; g < total; g += W::count) {
            batch.load(x, importance, g, total);
            if (importance) {
                typename W::floats w[group_size];
                W::store(f.weight + g, batch.importance_weights(sigma2, w));
                const auto fit =
                    search::template symmetric<group_size, true>(batch.x.v, w, level_bias);
                W::store(f.scale + g, fit.scale);
                W::store(f.level_iscale + g, fit.level_iscale);
                W::store(f.flat + g,
                         W::select(fit.flat, typename W::floats(1.0f), typename W::floats(0.0f)));
            } else {
                greedy_first_sweep(batch, g, f, moving);
            }
        }
        if (!importance) greedy_remaining_sweeps(x, f, moving);
    }

    /// The groups of a chunk whose levels moved in the greedy search's first sweep, with
    /// where their search stands.
    struct moving_groups {
        int count = 0;
        int group[chunk * groups];
        alignas(64) float levels[chunk * groups][group_size];
        float sum_lx[chunk * groups];
        float sum_l2[chunk * groups];
    };

    /// Starts the greedy search of a batch of groups and sweeps once: done for the groups
    /// that moved no level, set aside in `moving` for the others. (This and the remaining
    /// sweeps are flattened: GCC otherwise leaves the searches' unrolled lambdas as calls,
    /// depending on how large the translation unit has grown.)
    QMIX_FLATTEN static void greedy_first_sweep(
        const group_batch<Arch, group_size, groups, K>& batch, int g, fits& f,
        moving_groups& moving) {
        typename search::template greedy_state<group_size> state;
        search::template greedy_start<group_size, false>(batch.x.v, level_bias, state);
        const auto changed = search::greedy_sweep(batch.x.v, level_bias, state);
        W::store(f.scale + g, search::greedy_scale(state));
        if (W::none(changed)) return;
        alignas(64) float lane_changed[W::count];
        alignas(64) float levels[group_size][W::count];
        alignas(64) float sum_lx[W::count];
        alignas(64) float sum_l2[W::count];
        const typename W::floats zero(0.0f);
        W::store(lane_changed, W::select(changed, typename W::floats(1.0f), zero));
        // A settled batch changed nothing and may have no levels set: its parts are skipped.
        constexpr int part_size = W::count / K;
        for (int k = 0; k < K; ++k) {
            if (state.settled[k]) continue;
            for (int i = 0; i < group_size; ++i) {
                L::store(levels[i] + k * part_size, W::part(state.levels[i], k));
            }
        }
        W::store(sum_lx, state.sum_lx);
        W::store(sum_l2, state.sum_l2);
        for (int lane = 0; lane < batch.valid; ++lane) {
            if (lane_changed[lane] == 0) continue;
            const int m = moving.count++;
            moving.group[m] = g + lane;
            for (int i = 0; i < group_size; ++i) moving.levels[m][i] = levels[i][lane];
            moving.sum_lx[m] = sum_lx[lane];
            moving.sum_l2[m] = sum_l2[lane];
        }
    }

    /// The greedy search of the groups that moved in the first sweep, gathered into batches
    /// of their own, one xsimd batch wide: a batch sweeps until its last lane stops, so
    /// mixed with settled groups (or with many others) every batch would sweep that often.
    QMIX_FLATTEN static void greedy_remaining_sweeps(const float* x, fits& f,
                                                     const moving_groups& moving) {
        alignas(64) static constexpr float nothing[group_size] = {};  // a lane without a group
        for (int first = 0; first < moving.count; first += L::count) {
            const int valid = moving.count - first < L::count ? moving.count - first : L::count;
            const float* value_rows[L::count];
            const float* level_rows[L::count];
            alignas(64) float sum_lx[L::count] = {};
            alignas(64) float sum_l2[L::count] = {};
            for (int lane = 0; lane < L::count; ++lane) {
                value_rows[lane] = nothing;
                level_rows[lane] = nothing;
            }
            for (int lane = 0; lane < valid; ++lane) {
                value_rows[lane] = x + moving.group[first + lane] * group_size;
                level_rows[lane] = moving.levels[first + lane];
                sum_lx[lane] = moving.sum_lx[first + lane];
                sum_l2[lane] = moving.sum_l2[first + lane];
            }
            // Every lane has a row (a group of zeros is flat and never moves), so the loads
            // take the in-register transposes.
            transposed<Arch, group_size> values;
            transposed<Arch, group_size> levels;
            values.load(value_rows, L::count);
            levels.load(level_rows, L::count);
            typename block_search::template greedy_state<group_size> state;
            block_search::greedy_resume(values.v, levels.v, L::load(sum_lx), L::load(sum_l2),
                                        state);
            for (int sweep = 1; sweep < block_search::greedy_sweeps; ++sweep) {
                if (L::none(block_search::greedy_sweep(values.v, level_bias, state))) break;
            }
            alignas(64) float scale[L::count];
            L::store(scale, block_search::greedy_scale(state));
            for (int lane = 0; lane < valid; ++lane)
                f.scale[moving.group[first + lane]] = scale[lane];
        }
    }

    /// The reference: 6-bit levels against the scale of largest magnitude, one block per
    /// lane.
    static void choose_scales_reference(int count, fits& f, block* y) {
        for (int first = 0; first < count; first += L::count) {
            const int valid = count - first < L::count ? count - first : L::count;
            const auto scales = block_scales(f.scale, first, valid);
            const floats max_scale = block_search::template signed_extreme<groups>(scales.v);
            const typename L::mask zero = max_scale == floats(0.0f);
            const floats inverse = L::div(floats(-float(scale_bias)), max_scale);
            ints levels[groups];
            for (int g = 0; g < groups; ++g) {
                ints l = L::nearest_int(inverse * scales.v[g]);
                l = (l << 24) >> 24;  // narrowed to int8 before the clamp, as the reference
                l = L::clamp(l, -scale_bias, scale_bias - 1) + ints(scale_bias);
                levels[g] = L::select(zero, ints(0), l);
            }
            const floats d = L::select(zero, floats(0.0f), L::div(floats(1.0f), inverse));
            store_scales(levels, d, first, valid, f, y);
        }
    }

    /// The importance path: a weighted symmetric search of the 16 scales, one block per lane.
    static void choose_scales_weighted(int count, fits& f, block* y) {
        for (int first = 0; first < count; first += L::count) {
            const int valid = count - first < L::count ? count - first : L::count;
            const auto scales = block_scales(f.scale, first, valid);
            const auto weights = block_scales(f.weight, first, valid);
            const auto fit =
                block_search::template symmetric<groups, true>(scales.v, weights.v, scale_bias);
            ints levels[groups];
            for (int g = 0; g < groups; ++g) {
                levels[g] = L::select(
                    fit.flat, ints(0),
                    block_search::symmetric_levels(scales.v[g], fit.level_iscale, scale_bias));
            }
            store_scales(levels, fit.scale, first, valid, f, y);
        }
    }

    /// The 16 per-group values of blocks first .. first + valid of a chunk, one block per
    /// lane.
    static transposed<Arch, groups> block_scales(const float* per_group, int first, int valid) {
        const float* rows[L::count];
        for (int lane = 0; lane < valid; ++lane) rows[lane] = per_group + (first + lane) * groups;
        transposed<Arch, groups> out;
        out.load(rows, valid);
        return out;
    }

    /// Stores the scales chosen for blocks first .. first + valid (one per lane): their
    /// stored (biased) 6-bit levels into f.scale_level, and each block's scales and d. The
    /// twelve scale bytes are packed in lanes: bytes 0..7 hold the low four bits of groups
    /// j and j + 8, bytes 8 + r the high two bits of groups r, r + 4, r + 8 and r + 12.
    static void store_scales(const ints* levels, floats d, int first, int valid, fits& f,
                             block* y) {
        alignas(64) std::int32_t by_group[groups][L::count];
        alignas(64) std::int32_t packed[12][L::count];
        alignas(64) float d_lanes[L::count];
        const ints low(0xF);
        for (int g = 0; g < groups; ++g) L::store(by_group[g], levels[g]);
        for (int j = 0; j < 8; ++j) {
            L::store(packed[j], (levels[j] & low) | ((levels[j + 8] & low) << 4));
        }
        for (int r = 0; r < 4; ++r) {
            L::store(packed[8 + r], (levels[r] >> 4) | ((levels[4 + r] >> 4) << 2) |
                                        ((levels[8 + r] >> 4) << 4) | ((levels[12 + r] >> 4) << 6));
        }
        L::store(d_lanes, d);
        for (int lane = 0; lane < valid; ++lane) {
            const int b = first + lane;
            for (int g = 0; g < groups; ++g) f.scale_level[b * groups + g] = by_group[g][lane];
            for (int j = 0; j < 12; ++j) y[b].scales[j] = std::uint8_t(packed[j][lane]);
            y[b].d = scalar<Arch>::float_to_half(d_lanes[lane]);
        }
    }

    /// Every level against the scales as stored; a group whose stored scale is zero keeps
    /// the levels of its search.
    static void requantize_and_pack(const float* x, const fits& f, int first_fit, bool weighted,
                                    block& y) {
        const floats d(scalar<Arch>::half_to_float(y.d));
        alignas(64) float steps[groups];
        bool some_zero = false;
        for (int g = 0; g < groups; g += L::count) {
            const ints scale = L::load(f.scale_level + first_fit + g) - ints(scale_bias);
            const floats step = d * L::to_float(scale);
            L::store(steps + g, step);
            some_zero = some_zero || !L::none(step == floats(0.0f));
        }
        alignas(64) std::uint8_t levels[values];
        // Four batches at a time, narrowed to bytes together: 4 L::count values, whole groups.
        static_assert(4 * L::count % group_size == 0, "a narrowing covers whole groups");
        for (int first = 0; first < values; first += 4 * L::count) {
            ints rounded[4];
            for (int k = 0; k < 4; ++k) {
                const int i = first + k * L::count;
                const floats step(steps[i / group_size]);
                rounded[k] = L::nearest_int(L::div(L::load(x + i), step));
            }
            L::ops::store_biased_bytes(levels + first, rounded, level_bias, 2 * level_bias - 1);
        }
        for (int g = 0; some_zero && g < groups; ++g) {
            if (steps[g] == 0) search_levels(x, f, first_fit + g, weighted, levels);
        }
        pack_levels(levels, y);
    }

    /// The levels of group `fit` (a group of the block at x) where its stored scale is
    /// zero: those its search found (searched again on the greedy path).
    static void search_levels(const float* x, const fits& f, int fit, bool weighted,
                              std::uint8_t* levels) {
        const int g = fit % groups;
        const float* xs = x + group_size * g;
        std::uint8_t* ls = levels + group_size * g;
        alignas(64) std::int32_t found[group_size];
        if (weighted) {
            const floats iscale(f.level_iscale[fit]);
            const bool flat = f.flat[fit] != 0;
            for (int i = 0; i < group_size; i += L::count) {
                const ints l = block_search::symmetric_levels(L::load(xs + i), iscale, level_bias);
                L::store(found + i, flat ? ints(0) : l);
            }
        } else {
            transposed<Arch, group_size> values;
            values.load(&xs, 1);
            typename L::floats lanes_found[group_size];
            block_search::template symmetric_greedy<group_size>(values.v, level_bias, lanes_found);
            alignas(64) float lane_values[L::count];
            for (int i = 0; i < group_size; ++i) {
                L::store(lane_values, lanes_found[i]);
                found[i] = std::int32_t(lane_values[0]);
            }
        }
        for (int i = 0; i < group_size; ++i) ls[i] = std::uint8_t(found[i]);
    }

    /// Biased levels (bytes 0..7, in value order) -> low two bits in qs, third bits in
    /// hmask. Value 128 h + 32 s + k goes to bits 2 s of qs[32 h + k] and bit 4 h + s of
    /// hmask[k]: runs of 32 values pack together, handled four bytes to an int32 lane (no
    /// shift below carries a bit out of its byte).
    static void pack_levels(const std::uint8_t* levels, block& y) {
        const ints low_bits(0x03030303);
        const ints third_bit(0x04040404);
        auto run = [&](int h, int s, int k) {
            return L::ops::load_raw_bytes(levels + 128 * h + 32 * s + k);
        };
        auto to_bit = [](ints third, int bit) {
            return bit >= 2 ? third << (bit - 2) : third >> (2 - bit);
        };
        constexpr int bytes = 4 * L::count;
        if constexpr (bytes <= 32) {
            for (int k = 0; k < 32; k += bytes) {
                ints high(0);
                for (int h = 0; h < 2; ++h) {
                    ints low(0);
                    for (int s = 0; s < 4; ++s) {
                        const ints v = run(h, s, k);
                        low = low | ((v & low_bits) << (2 * s));
                        high = high | to_bit(v & third_bit, 4 * h + s);
                    }
                    L::ops::store_raw_bytes(y.qs + 32 * h + k, low);
                }
                L::ops::store_raw_bytes(y.hmask + k, high);
            }
        } else {
            // 64-byte batches hold two runs, s and s + 1: pack both, then fold the halves.
            ints high(0);
            for (int h = 0; h < 2; ++h) {
                const ints first = run(h, 0, 0);   // s = 0 | s = 1
                const ints second = run(h, 2, 0);  // s = 2 | s = 3
                L::ops::store_folded_halves(y.qs + 32 * h,
                                            (first & low_bits) | ((second & low_bits) << 4), 2);
                high =
                    high | to_bit(first & third_bit, 4 * h) | to_bit(second & third_bit, 4 * h + 2);
            }
            L::ops::store_folded_halves(y.hmask, high, 1);
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
