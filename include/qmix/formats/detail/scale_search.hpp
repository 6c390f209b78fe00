// SPDX-License-Identifier: MIT
#pragma once

// The scale searches that ggml's reference quantizers run per block or sub-block. They
// decide the bytes, so each follows the reference's order of operations exactly; every
// product that is summed goes through strict::mul (see core/strict_math.hpp). The ggml
// name of each function is given so that a reader can compare the two side by side.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"

namespace qmix::formats::detail {
QMIX_ABI_BEGIN

using strict::mul;
using strict::nearest_int;

/// Below this magnitude a group counts as all zero.
inline constexpr float group_max_eps = 1e-15f;

/// Weight of value x in the symmetric search when the caller gives no importance.
inline float default_weight(int rmse_type, float x) {
    switch (rmse_type) {
        case 1:
            return x * x;
        case 2:
            return 1.0f;
        case 3:
            return std::fabs(x);
        default:
            return std::sqrt(std::fabs(x));
    }
}

inline int clamp_level(int l, int lo, int hi) {
    return std::max(lo, std::min(hi, l));
}

/// ggml's make_qx_quants: levels L in [0, 2*nmax) for a symmetric scale. rmse_type 0 takes
/// the scale from the largest magnitude; otherwise a weighted least-squares scale is
/// refined over 18 trial scales (a negative rmse_type stops after the first estimate).
/// Returns the scale; L holds level + nmax.
inline float search_symmetric_scale(int n, int nmax, const float* x, std::int8_t* L, int rmse_type,
                                    const float* weights) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < group_max_eps) {
        std::fill(L, L + n, std::int8_t(0));
        return 0.f;
    }
    float iscale = -nmax / max;
    if (rmse_type == 0) {
        for (int i = 0; i < n; ++i) {
            L[i] = std::int8_t(nmax + clamp_level(nearest_int(iscale * x[i]), -nmax, nmax - 1));
        }
        return 1 / iscale;
    }
    bool return_early = false;
    if (rmse_type < 0) {
        rmse_type = -rmse_type;
        return_early = true;
    }
    auto weight = [&](int i) { return weights ? weights[i] : default_weight(rmse_type, x[i]); };
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clamp_level(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = std::int8_t(l + nmax);
        const float w = weight(i);
        sumlx += mul(w * x[i], float(l));
        suml2 += mul(w * float(l), float(l));
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(float(nmax) + mul(0.1f, float(is))) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clamp_level(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = weight(i);
            sumlx += mul(w * x[i], float(l));
            suml2 += mul(w * float(l), float(l));
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) {
                L[i] = std::int8_t(nmax + clamp_level(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/// ggml's make_q3_quants: symmetric levels in [0, 2*nmax) weighted by x^2; with do_rmse the
/// levels are improved one at a time (up to five sweeps) while the fit gets better.
inline float search_symmetric_scale_greedy(int n, int nmax, const float* x, std::int8_t* L,
                                           bool do_rmse) {
    float max = 0;
    float amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < group_max_eps) {
        std::fill(L, L + n, std::int8_t(0));
        return 0.f;
    }
    const float iscale = -nmax / max;
    if (!do_rmse) {
        for (int i = 0; i < n; ++i) {
            L[i] = std::int8_t(nmax + clamp_level(nearest_int(iscale * x[i]), -nmax, nmax - 1));
        }
        return 1 / iscale;
    }
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clamp_level(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = std::int8_t(l);
        const float w = x[i] * x[i];
        sumlx += mul(w * x[i], float(l));
        suml2 += mul(w * float(l), float(l));
    }
    for (int sweep = 0; sweep < 5; ++sweep) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - mul(w * x[i], float(L[i]));
            if (slx > 0) {
                float sl2 = suml2 - mul(w * float(L[i]), float(L[i]));
                const int new_l = clamp_level(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += mul(w * x[i], float(new_l));
                    sl2 += mul(w * float(new_l), float(new_l));
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = std::int8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = std::int8_t(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/// ggml's make_qkx2_quants and make_qkx3_quants (one function: they differ only in that
/// the latter accepts weights == nullptr, meaning x^2): levels in [0, nmax] for
/// x ~ scale * L - the_min, scanning nstep + 1 trial scales from (nmax + rmin) / range in
/// steps of rdelta and keeping the weighted least-squares fit with the smallest error
/// (absolute error with use_mad, squared otherwise). Returns the scale; *the_min >= 0.
inline float search_scale_and_min(int n, int nmax, const float* x, const float* weights,
                                  std::uint8_t* L, float* the_min, std::uint8_t* Laux, float rmin,
                                  float rdelta, int nstep, bool use_mad) {
    // The default weight x^2 is summed into sum_w, so it must not fuse with that sum.
    auto weight = [&](int i) { return weights ? weights[i] : mul(x[i], x[i]); };
    float min = x[0];
    float max = x[0];
    float sum_w = weight(0);
    float sum_x = mul(sum_w, x[0]);  // fused with the first += below otherwise
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weight(i);
        sum_w += w;
        sum_x += mul(w, x[i]);
    }
    if (min > 0) min = 0;
    if (max <= min) {
        std::memset(L, 0, std::size_t(n));
        *the_min = -min;
        return 0.f;
    }
    auto error_of = [&](float diff, float w) {
        diff = use_mad ? std::fabs(diff) : diff * diff;
        return mul(w, diff);
    };
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = std::uint8_t(clamp_level(nearest_int(iscale * (x[i] - min)), 0, nmax));
        const float diff = mul(scale, float(L[i])) + min - x[i];
        best_error += error_of(diff, weight(i));
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + mul(rdelta, float(is)) + float(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clamp_level(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = std::uint8_t(l);
            const float w = weight(i);
            sum_l += mul(w, float(l));
            sum_l2 += mul(w * float(l), float(l));
            sum_xl += mul(w * float(l), x[i]);
        }
        const float D = mul(sum_w, sum_l2) - mul(sum_l, sum_l);
        if (D > 0) {
            float this_scale = (mul(sum_w, sum_xl) - mul(sum_x, sum_l)) / D;
            float this_min = (mul(sum_l2, sum_x) - mul(sum_l, sum_xl)) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = mul(this_scale, float(Laux[i])) + this_min - x[i];
                cur_error += error_of(diff, weight(i));
            }
            if (cur_error < best_error) {
                std::memcpy(L, Laux, std::size_t(n));
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/// ggml's make_qp_quants: levels in [0, nmax] for non-negative x (the sub-block scales of
/// the importance-weighted k-quants) with a weighted scale search and greedy refinement.
inline float search_positive_scale(int n, int nmax, const float* x, std::uint8_t* L,
                                   const float* weights) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
    if (max < group_max_eps) {
        std::fill(L, L + n, std::uint8_t(0));
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; ++i) L[i] = std::uint8_t(nearest_int(iscale * x[i]));
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - mul(scale, float(L[i]));
        best_mse += mul(weights[i] * diff, diff);
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (mul(0.1f, float(is)) + float(nmax)) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
            const float diff = x[i] - mul(scale_is, float(l));
            mse += mul(weights[i] * diff, diff);
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0;
    float suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearest_int(iscale * x[i]));
        L[i] = std::uint8_t(l);
        const float w = weights[i];
        sumlx += mul(w * x[i], float(l));
        suml2 += mul(w * float(l), float(l));
    }
    for (int sweep = 0; sweep < 5; ++sweep) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = weights[i];
            float slx = sumlx - mul(w * x[i], float(L[i]));
            float sl2 = suml2 - mul(w * float(L[i]), float(L[i]));
            if (slx > 0 && sl2 > 0) {
                const int new_l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
                if (new_l != L[i]) {
                    slx += mul(w * x[i], float(new_l));
                    sl2 += mul(w * float(new_l), float(new_l));
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = std::uint8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/// Unpacks the 6-bit scale and min of sub-block j from the 12 packed bytes of q4_K / q5_K.
inline void unpack_scale_min_k4(int j, const std::uint8_t* q, std::uint8_t* scale,
                                std::uint8_t* min) {
    if (j < 4) {
        *scale = q[j] & 63;
        *min = q[j + 4] & 63;
    } else {
        *scale = std::uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *min = std::uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
    }
}

QMIX_ABI_END
}  // namespace qmix::formats::detail
