// SPDX-License-Identifier: MIT
#pragma once

// q8_K, the activation format of the k-quant dot products: quantize and dequantize
// (layout and reference in formats/q8_k.hpp). Every value of a block is rounded on its own
// against one scale, so the lanes simply take consecutive values.

#include <cstdint>
#include <cstring>

#include "qmix/core/config.hpp"
#include "qmix/formats/q8_k.hpp"
#include "qmix/kernels/kquants/lanes.hpp"
#include "qmix/kernels/kquants/scalar.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Arch>
struct q8_k_kernels {
    using L = lanes<Arch>;
    using floats = typename L::floats;
    using ints = typename L::ints;
    using block = formats::block_q8_k;

    static constexpr int values = 256;
    static constexpr int sum_size = 16;

    /// ggml ignores an importance vector for this format, and so do we.
    static void quantize(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* /*importance*/) {
        auto* out = static_cast<block*>(dst);
        const std::int64_t total = nrows * (n_per_row / values);
        for (std::int64_t b = 0; b < total; ++b) quantize_block(src + b * values, out[b]);
    }

    static void dequantize(const void* src, float* dst, std::int64_t nrows,
                           std::int64_t n_per_row) {
        const auto* in = static_cast<const block*>(src);
        const std::int64_t total = nrows * (n_per_row / values);
        for (std::int64_t b = 0; b < total; ++b) {
            const floats d(in[b].d);
            float* out = dst + b * values;
            for (int i = 0; i < values; i += L::count) {
                L::store(out + i, d * L::widen(in[b].qs + i));
            }
        }
    }

  private:
    static void quantize_block(const float* x, block& out) {
        const float largest = largest_magnitude(x);
        if (largest == 0.0f) {
            std::memset(&out, 0, sizeof out);
            return;
        }
        // The reference keeps the first value of largest magnitude: its sign decides the
        // sign of the scale.
        const float extreme = x[first_index_of_magnitude(x, largest)];
        const float inverse = -127.f / extreme;
        const floats inverses(inverse);
        alignas(64) std::int32_t levels[values];
        for (int i = 0; i < values; i += L::count) {
            const ints level = L::nearest_int(inverses * L::load(x + i));
            L::store(levels + i, L::min(level, ints(127)));
        }
        for (int i = 0; i < values; ++i) out.qs[i] = std::int8_t(levels[i]);
        for (int j = 0; j < values / sum_size; ++j) {
            std::int32_t sum = 0;
            for (int i = 0; i < sum_size; ++i) sum += levels[j * sum_size + i];
            out.bsums[j] = std::int16_t(sum);
        }
        out.d = 1 / inverse;
    }

    /// max |x[i]|, skipping NaN as the reference's `>` does.
    static float largest_magnitude(const float* x) {
        floats largest(0.0f);
        for (int i = 0; i < values; i += L::count) {
            const floats magnitude = xsimd::abs(L::load(x + i));
            largest = L::select(magnitude > largest, magnitude, largest);
        }
        alignas(64) float lanes_max[L::count];
        largest.store_aligned(lanes_max);
        float result = 0;
        for (int lane = 0; lane < L::count; ++lane) {
            if (lanes_max[lane] > result) result = lanes_max[lane];
        }
        return result;
    }

    static int first_index_of_magnitude(const float* x, float magnitude) {
        const floats target(magnitude);
        for (int i = 0; i < values; i += L::count) {
            if (xsimd::any(xsimd::abs(L::load(x + i)) == target)) {
                for (int k = i;; ++k) {
                    if (scalar<Arch>::abs(x[k]) == magnitude) return k;
                }
            }
        }
        return 0;  // not reached: the magnitude was taken from x
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
