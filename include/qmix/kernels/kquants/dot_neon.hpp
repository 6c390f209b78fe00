// SPDX-License-Identifier: MIT
#pragma once

// Dot products of the k-quant weight formats with q8_K rows, for NEON on aarch64. Each
// block's levels are unpacked to signed bytes (the dequantizers' unpacking), multiplied
// with q8_K's bytes in 16-value groups (vdotq where the CPU has the dot-product extension,
// widening multiplies otherwise), and each block's exact integer sums are scaled and
// added in the order of the scalar reference: the results equal formats::*::dot_row bit
// for bit.

#include "qmix/core/config.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/formats/q2_k.hpp"
#include "qmix/formats/q3_k.hpp"
#include "qmix/formats/q4_k.hpp"
#include "qmix/formats/q5_k.hpp"
#include "qmix/formats/q6_k.hpp"
#include "qmix/formats/q8_k.hpp"
#include "qmix/kernels/kquants/batch_ops.hpp"
#include "qmix/kernels/kquants/k4.hpp"
#include "qmix/kernels/kquants/q2_k.hpp"
#include "qmix/kernels/kquants/q3_k.hpp"
#include "qmix/kernels/kquants/q6_k.hpp"
#include "qmix/kernels/kquants/scalar.hpp"

#if defined(__aarch64__)

#include <arm_neon.h>

#include <cstdint>

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Arch>
struct neon_dot {
    using act = formats::block_q8_k;

    static float q2_k(const void* x, const void* y, std::int64_t n) {
        const auto* blocks = static_cast<const formats::block_q2_k*>(x);
        const auto* acts = static_cast<const act*>(y);
        float sum = 0;
        for (std::int64_t b = 0; b < n / 256; ++b) {
            const auto& blk = blocks[b];
            alignas(16) std::int8_t levels[256];
            q2_k_kernels<Arch>::unpack_levels(blk.qs, levels);
            std::int32_t scaled = 0;
            std::int32_t mins = 0;
            for (int g = 0; g < 16; ++g) {
                scaled += (blk.scales[g] & 0xF) * dot16(levels + 16 * g, acts[b].qs + 16 * g);
                mins += acts[b].bsums[g] * (blk.scales[g] >> 4);
            }
            const float d = acts[b].d * scalar<Arch>::half_to_float(blk.d);
            const float dmin = acts[b].d * scalar<Arch>::half_to_float(blk.dmin);
            sum += strict::mul(d, float(scaled)) - strict::mul(dmin, float(mins));
        }
        return sum;
    }

    static float q3_k(const void* x, const void* y, std::int64_t n) {
        using kernels = q3_k_kernels<Arch>;
        const auto* blocks = static_cast<const formats::block_q3_k*>(x);
        const auto* acts = static_cast<const act*>(y);
        float sum = 0;
        for (std::int64_t b = 0; b < n / 256; ++b) {
            const auto& blk = blocks[b];
            alignas(16) std::int8_t levels[256];
            kernels::unpack_levels(blk, levels);
            std::int32_t scaled = 0;
            for (int g = 0; g < 16; ++g) {
                scaled += (kernels::scale_at(blk.scales, g) - kernels::scale_bias) *
                          dot16(levels + 16 * g, acts[b].qs + 16 * g);
            }
            const float d = scalar<Arch>::half_to_float(blk.d) * acts[b].d;
            sum += strict::mul(d, float(scaled));
        }
        return sum;
    }

    static float q4_k(const void* x, const void* y, std::int64_t n) {
        return k4<formats::q4_k>(x, y, n);
    }

    static float q5_k(const void* x, const void* y, std::int64_t n) {
        return k4<formats::q5_k>(x, y, n);
    }

    static float q6_k(const void* x, const void* y, std::int64_t n) {
        const auto* blocks = static_cast<const formats::block_q6_k*>(x);
        const auto* acts = static_cast<const act*>(y);
        float sum = 0;
        for (std::int64_t b = 0; b < n / 256; ++b) {
            const auto& blk = blocks[b];
            alignas(16) std::int8_t levels[256];
            q6_k_kernels<Arch>::unpack_levels(blk, levels);
            std::int32_t scaled = 0;
            for (int g = 0; g < 16; ++g) {
                scaled += blk.scales[g] * dot16(levels + 16 * g, acts[b].qs + 16 * g);
            }
            const float d = scalar<Arch>::half_to_float(blk.d) * acts[b].d;
            sum += strict::mul(d, float(scaled));
        }
        return sum;
    }

  private:
    /// Sum of a[i] * b[i] over 16 signed bytes (exact: at most 16 * 128 * 128).
    static std::int32_t dot16(const std::int8_t* a, const std::int8_t* b) {
        const int8x16_t va = vld1q_s8(a);
        const int8x16_t vb = vld1q_s8(b);
#if defined(__ARM_FEATURE_DOTPROD)
        return vaddvq_s32(vdotq_s32(vdupq_n_s32(0), va, vb));
#else
        // Products fit 16 bits and so do sums of two (|level| <= 32 here).
        const int16x8_t products =
            vmlal_high_s8(vmull_s8(vget_low_s8(va), vget_low_s8(vb)), va, vb);
        return vaddlvq_s16(products);
#endif
    }

    template <class Format>
    static float k4(const void* x, const void* y, std::int64_t n) {
        using block = typename Format::block;
        const auto* blocks = static_cast<const block*>(x);
        const auto* acts = static_cast<const act*>(y);
        float sum = 0;
        for (std::int64_t b = 0; b < n / 256; ++b) {
            const auto& blk = blocks[b];
            alignas(16) std::int8_t levels[256];
            k4_kernels<Arch, Format>::unpack_levels(blk, levels);
            std::int32_t scaled = 0;
            std::int32_t mins = 0;
            for (int j = 0; j < 8; ++j) {
                int scale_level;
                int min_level;
                scalar<Arch>::unpack_scale_min_k4(j, blk.scales, scale_level, min_level);
                const std::int32_t sub = dot16(levels + 32 * j, acts[b].qs + 32 * j) +
                                         dot16(levels + 32 * j + 16, acts[b].qs + 32 * j + 16);
                scaled += scale_level * sub;
                mins += min_level * (acts[b].bsums[2 * j] + acts[b].bsums[2 * j + 1]);
            }
            const float d = scalar<Arch>::half_to_float(blk.d) * acts[b].d;
            const float dmin = scalar<Arch>::half_to_float(blk.dmin) * acts[b].d;
            sum += strict::mul(d, float(scaled)) - strict::mul(dmin, float(mins));
        }
        return sum;
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants

#endif  // __aarch64__
