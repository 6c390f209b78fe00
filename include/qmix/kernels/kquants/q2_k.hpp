// SPDX-License-Identifier: MIT
#pragma once

// q2_K: quantize and dequantize (layout and reference in formats/q2_k.hpp). Quantizing
// runs as for q4_K (kquants/k4.hpp): each group of 16 values gets its scale and min from
// the reference's search, one group per lane; per block the 16 scales and mins become
// 4-bit levels (searched one block per lane on the importance path); then every value is
// rounded against the scales as stored.

#include <cstdint>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/q2_k.hpp"
#include "qmix/kernels/kquants/lanes.hpp"
#include "qmix/kernels/kquants/scalar.hpp"
#include "qmix/kernels/kquants/searches.hpp"
#include "qmix/kernels/kquants/staging.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Arch>
struct q2_k_kernels {
    using L = lanes<Arch>;
    using floats = typename L::floats;
    using ints = typename L::ints;
    /// The group searches run on K batches at once (W::count lanes); the per-block steps
    /// and the level recomputation on single batches.
    static constexpr int K = offset_search_batches<Arch>;
    using W = lanes<Arch, K>;
    using search = group_search<Arch, K>;
    using block_search = group_search<Arch>;
    using block = formats::block_q2_k;

    static constexpr int values = 256;
    static constexpr int groups = 16;
    static constexpr int group_size = 16;
    static constexpr int max_level = 3;
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
            unpack_levels(in[b].qs, levels);
            const float d = scalar<Arch>::half_to_float(in[b].d);
            const float dmin = scalar<Arch>::half_to_float(in[b].dmin);
            float* out = dst + b * values;
            for (int g = 0; g < groups; ++g) {
                const std::uint8_t packed = in[b].scales[g];
                const floats step(d * float(packed & 0xF));
                const floats offset(strict::mul(dmin, float(packed >> 4)));
                for (int i = group_size * g; i < group_size * (g + 1); i += L::count) {
                    L::store(out + i, L::mul(step, L::widen(levels + i)) - offset);
                }
            }
        }
    }

    /// Levels (0..3) in value order. The NEON dot product uses it too.
    static void unpack_levels(const std::uint8_t* qs, std::int8_t* levels) {
        for (int half = 0; half < 2; ++half) {
            for (int shift = 0; shift < 4; ++shift) {
                std::int8_t* out = levels + 128 * half + 32 * shift;
                for (int k = 0; k < 32; ++k) {
                    out[k] = std::int8_t((qs[32 * half + k] >> (2 * shift)) & 3);
                }
            }
        }
    }

  private:
    struct fits {
        alignas(64) float scale[chunk * groups];
        alignas(64) float min[chunk * groups];
        alignas(64) float level_iscale[chunk * groups];
        alignas(64) float level_min[chunk * groups];
        alignas(64) float weight[chunk * groups];
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
        for (int b = 0; b < count; ++b) requantize_and_pack(x + b * values, f, b * groups, y[b]);
    }

    static void fit_groups(const float* x, int count, const float* const* importance, fits& f) {
        float sigma2[chunk];
        if (importance) {
            sums_of_squares<Arch>(x, count, values, sigma2);
            for (int b = 0; b < count; ++b) sigma2[b] = sigma2[b] / float(values);
        }
        const int total = count * groups;
        group_batch<Arch, group_size, groups, K> batch;
        for (int g = 0; g < total; g += W::count) {
            batch.load(x, importance, g, total);
            typename W::floats w[group_size];
            typename search::scale_min_fit fit;
            if (importance) {
                W::store(f.weight + g, batch.importance_weights(sigma2, w));
                fit = search::template scale_and_min<group_size, false>(batch.x.v, w, max_level,
                                                                        -0.9f, 0.05f, 36);
            } else {
                for (int i = 0; i < group_size; ++i) w[i] = W::abs(batch.x.v[i]);
                fit = search::template scale_and_min<group_size, true>(batch.x.v, w, max_level,
                                                                       -0.5f, 0.1f, 15);
            }
            W::store(f.scale + g, fit.scale);
            W::store(f.min + g, fit.min);
            W::store(f.level_iscale + g, fit.level_iscale);
            W::store(f.level_min + g, fit.level_min);
        }
    }

    /// The reference: 4-bit scales and mins against the block's largest of each.
    static void choose_scales_reference(int count, const fits& f, block* y) {
        for (int b = 0; b < count; ++b) {
            const float* scales = f.scale + b * groups;
            const float* mins = f.min + b * groups;
            float max_scale = 0;
            float max_min = 0;
            for (int g = 0; g < groups; ++g) {
                if (scales[g] > max_scale) max_scale = scales[g];
                if (mins[g] > max_min) max_min = mins[g];
            }
            block& out = y[b];
            if (max_scale > 0) {
                const float inverse = 15.f / max_scale;
                for (int g = 0; g < groups; ++g) {
                    out.scales[g] = std::uint8_t(strict::nearest_int(inverse * scales[g]));
                }
                out.d = scalar<Arch>::float_to_half(max_scale / 15.f);
            } else {
                for (int g = 0; g < groups; ++g) out.scales[g] = 0;
                out.d = scalar<Arch>::float_to_half(0.f);
            }
            if (max_min > 0) {
                const float inverse = 15.f / max_min;
                for (int g = 0; g < groups; ++g) {
                    const int packed_min = strict::nearest_int(inverse * mins[g]);
                    out.scales[g] = std::uint8_t(out.scales[g] | (unsigned(packed_min) << 4));
                }
                out.dmin = scalar<Arch>::float_to_half(max_min / 15.f);
            } else {
                out.dmin = scalar<Arch>::float_to_half(0.f);
            }
        }
    }

    /// The importance path: weighted searches of the 4-bit levels, one block per lane.
    static void choose_scales_weighted(int count, const fits& f, block* y) {
        for (int first = 0; first < count; first += L::count) {
            const int valid = count - first < L::count ? count - first : L::count;
            const float* scale_rows[L::count];
            const float* min_rows[L::count];
            const float* weight_rows[L::count];
            for (int lane = 0; lane < valid; ++lane) {
                scale_rows[lane] = f.scale + (first + lane) * groups;
                min_rows[lane] = f.min + (first + lane) * groups;
                weight_rows[lane] = f.weight + (first + lane) * groups;
            }
            transposed<Arch, groups> scales;
            transposed<Arch, groups> mins;
            transposed<Arch, groups> weights;
            scales.load(scale_rows, valid);
            mins.load(min_rows, valid);
            weights.load(weight_rows, valid);
            ints scale_levels[groups];
            ints min_levels[groups];
            alignas(64) float d[L::count];
            alignas(64) float dmin[L::count];
            L::store(
                d, block_search::template positive<groups>(scales.v, weights.v, 15, scale_levels));
            L::store(dmin,
                     block_search::template positive<groups>(mins.v, weights.v, 15, min_levels));
            for (int lane = 0; lane < valid; ++lane) {
                std::int32_t ls[groups];
                std::int32_t lm[groups];
                L::extract_lane(scale_levels, groups, lane, ls);
                L::extract_lane(min_levels, groups, lane, lm);
                block& out = y[first + lane];
                out.d = scalar<Arch>::float_to_half(d[lane]);
                out.dmin = scalar<Arch>::float_to_half(dmin[lane]);
                for (int g = 0; g < groups; ++g) out.scales[g] = std::uint8_t(ls[g] | (lm[g] << 4));
            }
        }
    }

    /// Every level against the scales as stored; a group whose stored scale is zero keeps
    /// the levels of its search.
    static void requantize_and_pack(const float* x, const fits& f, int first_fit, block& y) {
        const float d = scalar<Arch>::half_to_float(y.d);
        const float dmin = scalar<Arch>::half_to_float(y.dmin);
        alignas(64) std::int32_t levels[values];
        for (int g = 0; g < groups; ++g) {
            const float step = d * float(y.scales[g] & 0xF);
            const float* xs = x + group_size * g;
            std::int32_t* ls = levels + group_size * g;
            if (step == 0) {
                const floats iscale(f.level_iscale[first_fit + g]);
                const floats min(f.level_min[first_fit + g]);
                for (int i = 0; i < group_size; i += L::count) {
                    L::store(ls + i, block_search::scale_min_levels(L::load(xs + i), iscale, min,
                                                                    max_level));
                }
                continue;
            }
            const floats steps(step);
            const floats offset(strict::mul(dmin, float(y.scales[g] >> 4)));
            for (int i = 0; i < group_size; i += L::count) {
                const ints l = L::nearest_int(L::div(L::load(xs + i) + offset, steps));
                L::store(ls + i, L::clamp(l, 0, max_level));
            }
        }
        for (int half = 0; half < 2; ++half) {
            for (int k = 0; k < 32; k += L::count) {
                ints packed(0);
                unrolled<4>([&](auto j) {
                    packed = packed | (L::load(levels + 128 * half + 32 * j + k) << (2 * j));
                });
                L::store_bytes(y.qs + 32 * half + k, packed);
            }
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
