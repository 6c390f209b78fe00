// SPDX-License-Identifier: MIT
#pragma once

// What iq4_nl and iq4_xs share: ggml's fixed table of 16 non-linear levels and the scale
// search that quantize_row_iq4_nl_impl runs on every 32-value block (iq4_nl) or sub-block
// (iq4_xs). The levels crowd near zero, where the weights of a layer crowd, and the
// search picks the scale that fits the weighted values best. Every product that is summed
// goes through strict::mul (see core/strict_math.hpp): the bytes must not depend on the
// compiler contracting a * b + c.

#include <cmath>
#include <cstdint>

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"

namespace qmix::formats::detail {
QMIX_ABI_BEGIN

/// ggml's kvalues_iq4nl: a 4-bit index j stands for the level nonlinear_levels[j].
inline constexpr std::int8_t nonlinear_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                     1,    13,   25,  38,  53,  69,  89,  113};

/// The index of the level nearest to x (ggml's best_index_int8): a binary search, then the
/// lower of the two neighbours unless the upper one is strictly nearer. NaN gives 15.
inline int nearest_level_index(float x) {
    constexpr const std::int8_t* levels = nonlinear_levels;
    if (x <= levels[0]) return 0;
    if (x >= levels[15]) return 15;
    int low = 0;
    int high = 15;
    while (high - low > 1) {
        const int middle = (low + high) / 2;
        if (x < levels[middle]) {
            high = middle;
        } else {
            low = middle;
        }
    }
    return x - levels[high - 1] < levels[high] - x ? high - 1 : high;
}

/// Below this magnitude a block counts as all zero (ggml's GROUP_MAX_EPS).
inline constexpr float nonlinear_zero_block = 1e-15f;

/// How many scales either side of the first estimate the search tries: 7 in
/// ggml_quantize_chunk (quantize_iq4_nl, quantize_iq4_xs). ggml's quantize_row_iq4_nl_ref
/// passes -1 instead: no search, a first estimate of the opposite sign, its levels kept.
/// Model files are written by ggml_quantize_chunk; qmix does not reproduce the other.
inline constexpr int nonlinear_tries_chunk = 7;

/// The weights of one 32-value block: x^2 without an importance vector, else
/// importance * sqrt(sigma2 + x^2), sigma2 being 2/N times the sum of squares of the N
/// values of the whole (super-)block.
inline void nonlinear_weights(const float* x, const float* importance, float sigma2,
                              float* weights) {
    for (int j = 0; j < 32; ++j) {
        weights[j] = importance != nullptr
                         ? strict::mul(importance[j], std::sqrt(sigma2 + strict::mul(x[j], x[j])))
                         : x[j] * x[j];
    }
}

/// sigma2 of a (super-)block of n values: the sum of squares in order, times 2/n (a
/// product that is later added to x^2, hence strict::mul).
inline float nonlinear_sigma2(const float* x, int n) {
    float sum = 0;
    for (int j = 0; j < n; ++j) sum += strict::mul(x[j], x[j]);
    return strict::mul(sum, 2.f / float(n));
}

/// Weighted sums of one trial of the search: sum w*q*x and sum w*q*q over the levels q
/// that the inverse scale `inverse` gives the 32 values.
struct nonlinear_sums {
    float qx = 0;
    float q2 = 0;
};

inline nonlinear_sums nonlinear_trial(const float* x, const float* weights, float inverse) {
    nonlinear_sums s;
    for (int j = 0; j < 32; ++j) {
        const int l = nearest_level_index(strict::mul(inverse, x[j]));
        const float q = nonlinear_levels[l];
        const float wq = weights[j] * q;
        s.qx += strict::mul(wq, x[j]);
        s.q2 += strict::mul(wq, q);
    }
    return s;
}

/// The scale search of quantize_row_iq4_nl_impl for one block of 32 values: a first
/// estimate that sends the value of largest magnitude to the level -127 with the opposite
/// sign, and its weighted least-squares scale; then the scales that send that value to the
/// levels -127 + t, t in [-tries, tries], each kept when its weighted fit is better.
/// Returns the scale, 0 for a block whose largest magnitude is below
/// nonlinear_zero_block. The caller chooses the indices from the final scale.
inline float search_nonlinear_scale(const float* x, const float* weights, int tries) {
    float amax = 0;
    float max = 0;
    for (int j = 0; j < 32; ++j) {
        const float ax = std::fabs(x[j]);
        if (ax > amax) {
            amax = ax;
            max = x[j];
        }
    }
    if (amax < nonlinear_zero_block) return 0;
    const float first_level = nonlinear_levels[0];
    float d = -max / first_level;
    nonlinear_sums s = nonlinear_trial(x, weights, 1 / d);
    d = s.q2 > 0 ? s.qx / s.q2 : 0.f;
    float best = strict::mul(d, s.qx);
    for (int t = -tries; t <= tries; ++t) {
        const float inverse = float(t + nonlinear_levels[0]) / max;
        s = nonlinear_trial(x, weights, inverse);
        if (s.q2 > 0 && strict::mul(s.qx, s.qx) > strict::mul(best, s.q2)) {
            d = s.qx / s.q2;
            best = strict::mul(d, s.qx);
        }
    }
    return d;
}

/// The 4-bit indices of 32 values for the inverse scale `inverse`.
inline void nonlinear_indices(const float* x, float inverse, std::uint8_t* indices) {
    for (int j = 0; j < 32; ++j)
        indices[j] = std::uint8_t(nearest_level_index(strict::mul(inverse, x[j])));
}

/// Packs 32 indices the way both formats store them: value j < 16 in the low nibble of
/// byte j, value j + 16 in its high nibble.
inline void pack_nonlinear_indices(const std::uint8_t* indices, std::uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = std::uint8_t(indices[j] | (indices[j + 16] << 4));
}

QMIX_ABI_END
}  // namespace qmix::formats::detail
