// SPDX-License-Identifier: MIT
#pragma once

// 64-bit ARM: the isa<> primitives of the NEON level, which every aarch64 CPU runs.
// Only baseline ARMv8-A instructions are used (no dot-product extension), so the level
// needs no run-time check. See isa.hpp for what each primitive promises.

#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/config.hpp"
#include "qmix/kernels/isa/base.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

#if defined(QMIX_ARCH_AARCH64) && defined(__ARM_NEON)
#include <arm_neon.h>

#define QMIX_ISA_NEON 1

namespace qmix::kernels {
QMIX_ABI_BEGIN

template <>
struct isa<xsimd::neon64> : isa_base<xsimd::neon64> {
    using arch = xsimd::neon64;
    using floats = xsimd::batch<float, arch>;
    using ints = xsimd::batch<std::int32_t, arch>;
    using float_mask = xsimd::batch_bool<float, arch>;
    static constexpr std::string_view name = "neon";

    static float reduce_max(floats v) { return vmaxvq_f32(v); }
    static std::uint32_t mask_bits(float_mask m) {
        const std::uint32_t weights[4] = {1, 2, 4, 8};
        return vaddvq_u32(vandq_u32(m, vld1q_u32(weights)));
    }
    static floats transpose_max(const floats* v) {
        return vpmaxq_f32(vpmaxq_f32(v[0], v[1]), vpmaxq_f32(v[2], v[3]));
    }
    static floats transpose_min(const floats* v) {
        return vpminq_f32(vpminq_f32(v[0], v[1]), vpminq_f32(v[2], v[3]));
    }
    static floats transpose_add(const floats* v) {
        return vpaddq_f32(vpaddq_f32(v[0], v[1]), vpaddq_f32(v[2], v[3]));
    }

    static std::uint32_t store_nibbles(const ints* levels, int top, std::uint8_t* qs) {
        auto narrow = [&](const ints* l) {
            const int16x8_t a = vcombine_s16(vmovn_s32(l[0]), vmovn_s32(l[1]));
            const int16x8_t b = vcombine_s16(vmovn_s32(l[2]), vmovn_s32(l[3]));
            return vminq_u8(vreinterpretq_u8_s8(vcombine_s8(vmovn_s16(a), vmovn_s16(b))),
                            vdupq_n_u8(std::uint8_t(top)));
        };
        const uint8x16_t low = narrow(levels);
        const uint8x16_t high = narrow(levels + 4);
        const uint8x16_t nibble = vdupq_n_u8(0x0f);
        vst1q_u8(qs, vorrq_u8(vandq_u8(low, nibble), vshlq_n_u8(vandq_u8(high, nibble), 4)));
        return fifth_bits(low) | fifth_bits(high) << 16;
    }

    static ints widen_u8(const std::uint8_t* p) {
        const uint8x8_t b = vreinterpret_u8_u32(vdup_n_u32(load_u32(p)));
        return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(b))));
    }
    static ints widen_i8(const std::int8_t* p) {
        const int8x8_t b = vreinterpret_s8_u32(vdup_n_u32(load_u32(p)));
        return vmovl_s16(vget_low_s16(vmovl_s8(b)));
    }
    static ints bit_lanes(std::uint32_t bits, int first) {
        const std::int32_t lane[4] = {0, 1, 2, 3};
        // A negative count shifts right.
        const int32x4_t shifts = vnegq_s32(vaddq_s32(vdupq_n_s32(first), vld1q_s32(lane)));
        const uint32x4_t picked = vandq_u32(vshlq_u32(vdupq_n_u32(bits), shifts), vdupq_n_u32(1));
        return vreinterpretq_s32_u32(picked);
    }
    static void store_i8x32(const ints* v, std::int8_t* out) {
        for (int half = 0; half < 2; ++half, v += 4) {
            const int16x8_t a = vcombine_s16(vmovn_s32(v[0]), vmovn_s32(v[1]));
            const int16x8_t b = vcombine_s16(vmovn_s32(v[2]), vmovn_s32(v[3]));
            vst1q_s8(out + 16 * half, vcombine_s8(vmovn_s16(a), vmovn_s16(b)));
        }
    }

    // The hardware conversions round to nearest even (the default FPCR mode) and keep NaN
    // payloads the way core/binary16.hpp does.
    static float half_to_float(std::uint16_t h) {
        return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h))), 0);
    }
    static std::uint16_t float_to_half(float f) {
        return vget_lane_u16(vreinterpret_u16_f16(vcvt_f16_f32(vdupq_n_f32(f))), 0);
    }
    static floats load_halves(const std::uint16_t* p) {
        return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
    }
    static void store_halves(floats v, std::uint16_t* p) {
        vst1_u16(p, vreinterpret_u16_f16(vcvt_f16_f32(v)));
    }
    static floats add_exact_product(floats a, floats b, floats c) { return vfmaq_f32(c, a, b); }
    static floats multiply_add(floats a, floats b, floats c) { return vfmaq_f32(c, a, b); }

    struct bytes {
        int8x16_t low, high;
    };
    using part = int32x4_t;
    static constexpr std::size_t parts_per_vector = 1;
    static constexpr std::size_t blocks_per_step = 1;

    static bytes load_bytes(const void* p) {
        const auto* q = static_cast<const std::int8_t*>(p);
        return {vld1q_s8(q), vld1q_s8(q + 16)};
    }
    static bytes nibbles(const std::uint8_t* qs) {
        const uint8x16_t packed = vld1q_u8(qs);
        return {vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0f))),
                vreinterpretq_s8_u8(vshrq_n_u8(packed, 4))};
    }
    static bytes add_fifth_bits(bytes b, const std::uint8_t* qh) {
        // Byte j picks byte j / 8 of qh and keeps 16 if its bit j % 8 is set.
        static const std::uint8_t pick_low[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        static const std::uint8_t pick_high[16] = {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
        static const std::uint8_t bit[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                             1, 2, 4, 8, 16, 32, 64, 128};
        const uint8x16_t word = vreinterpretq_u8_u32(vdupq_n_u32(load_u32(qh)));
        const uint8x16_t bits = vld1q_u8(bit);
        const uint8x16_t sixteen = vdupq_n_u8(16);
        const uint8x16_t low =
            vandq_u8(vtstq_u8(vqtbl1q_u8(word, vld1q_u8(pick_low)), bits), sixteen);
        const uint8x16_t high =
            vandq_u8(vtstq_u8(vqtbl1q_u8(word, vld1q_u8(pick_high)), bits), sixteen);
        return {vorrq_s8(b.low, vreinterpretq_s8_u8(low)),
                vorrq_s8(b.high, vreinterpretq_s8_u8(high))};
    }
    static bytes sub_bytes(bytes b, std::int8_t k) {
        const int8x16_t kk = vdupq_n_s8(k);
        return {vsubq_s8(b.low, kk), vsubq_s8(b.high, kk)};
    }
    /// Widening products (exact for any bytes), summed pairwise into four int32 lanes.
    static part dot_signed(bytes x, bytes s) {
        int32x4_t sum = vpaddlq_s16(vmull_s8(vget_low_s8(x.low), vget_low_s8(s.low)));
        sum = vpadalq_s16(sum, vmull_high_s8(x.low, s.low));
        sum = vpadalq_s16(sum, vmull_s8(vget_low_s8(x.high), vget_low_s8(s.high)));
        return vpadalq_s16(sum, vmull_high_s8(x.high, s.high));
    }
    static part dot_offset(bytes u, std::int8_t k, bytes s) {
        return dot_signed(sub_bytes(u, k), s);
    }
    static part dot_unsigned(bytes u, bytes s) { return dot_signed(u, s); }
    static ints join(const part* p) { return p[0]; }

    /// The first two binary16 values of both blocks (x: d and m, y: d and s), converted at
    /// once: lane 0 holds dx * dy, lane 1 holds mx * sy.
    template <bool /*with_offset*/, class X, class Y>
    static floats step_constants(const X* x, const Y* y) {
        const uint32x2_t words = vset_lane_u32(load_u32(y), vdup_n_u32(load_u32(x)), 1);
        const float32x4_t f = vcvt_f32_f16(vreinterpret_f16_u32(words));
        return vmulq_f32(f, vcombine_f32(vget_high_f32(f), vget_high_f32(f)));
    }
    static floats step_scales(floats constants, int /*vector*/) {
        return vdupq_laneq_f32(constants, 0);
    }
    static float sum_offsets(floats offsets) { return vgetq_lane_f32(offsets, 1); }

    // The batch primitives of the k-quant and iq4 kernels (isa_base's, where NEON does
    // better or where only the instruction set can say what is exact).
    /// IEEE division and square root: xsimd 8's are estimates refined by Newton steps.
    static floats div(floats a, floats b) { return floats(vdivq_f32(a, b)); }
    static floats sqrt(floats a) { return floats(vsqrtq_f32(a)); }
    static constexpr bool has_byte_shuffle = true;
    static bytes look_up(const std::int8_t* table, bytes indices) {
        const int8x16_t t = vld1q_s8(table);
        return {vqtbl1q_s8(t, vreinterpretq_u8_s8(indices.low)),
                vqtbl1q_s8(t, vreinterpretq_u8_s8(indices.high))};
    }
    static std::int32_t scaled_sum(part first, int s1, part second, int s2) {
        return vaddvq_s32(vmlaq_n_s32(vmulq_n_s32(first, s1), second, s2));
    }
    static floats widen(const std::int8_t* p) {
        std::int32_t word;
        std::memcpy(&word, p, sizeof word);
        const int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(word)));
        return floats(vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide))));
    }
    QMIX_FORCE_INLINE static void transpose(const float* const* rows, floats* out) {
        const float32x4x2_t p01 = vtrnq_f32(vld1q_f32(rows[0]), vld1q_f32(rows[1]));
        const float32x4x2_t p23 = vtrnq_f32(vld1q_f32(rows[2]), vld1q_f32(rows[3]));
        out[0] = vcombine_f32(vget_low_f32(p01.val[0]), vget_low_f32(p23.val[0]));
        out[1] = vcombine_f32(vget_low_f32(p01.val[1]), vget_low_f32(p23.val[1]));
        out[2] = vcombine_f32(vget_high_f32(p01.val[0]), vget_high_f32(p23.val[0]));
        out[3] = vcombine_f32(vget_high_f32(p01.val[1]), vget_high_f32(p23.val[1]));
    }
    static void store_bytes(std::uint8_t* p, ints v) {
        const uint16x4_t words = vmovn_u32(vreinterpretq_u32_s32(v));
        const uint8x8_t bytes = vmovn_u16(vcombine_u16(words, words));
        const std::uint32_t word = vget_lane_u32(vreinterpret_u32_u8(bytes), 0);
        std::memcpy(p, &word, sizeof word);
    }
    /// Saturating narrowing keeps the order of the values, so clamping after it clamps the
    /// exact sums.
    static void store_biased_bytes(std::uint8_t* out, const ints* v, int bias, int top) {
        const int16x8_t biases = vdupq_n_s16(std::int16_t(bias));
        const int16x8_t low = vqaddq_s16(vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1])), biases);
        const int16x8_t high = vqaddq_s16(vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3])), biases);
        const uint8x16_t all = vcombine_u8(vqmovun_s16(low), vqmovun_s16(high));
        vst1q_u8(out, vminq_u8(all, vdupq_n_u8(std::uint8_t(top))));
    }

  private:
    /// Bit 4 of each of 16 bytes, as a 16-bit mask (byte j gives bit j).
    static std::uint32_t fifth_bits(uint8x16_t b) {
        static const std::uint8_t weight[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                                1, 2, 4, 8, 16, 32, 64, 128};
        const uint8x16_t set = vandq_u8(vtstq_u8(b, vdupq_n_u8(16)), vld1q_u8(weight));
        return std::uint32_t(vaddv_u8(vget_low_u8(set))) |
               std::uint32_t(vaddv_u8(vget_high_u8(set))) << 8;
    }

  public:
    // ---- dot-product drivers ---------------------------------------------------------------
    using kquant_dots = kquants::neon_dot<arch>;

    // ---- bf16 (kernels/bf16.hpp) ---------------------------------------------------------
    static floats load_bf16(const std::uint16_t* p) {
        return floats(vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)));
    }
    static void store_u16(ints v, std::uint16_t* p) {
        vst1_u16(p, vmovn_u32(vreinterpretq_u32_s32(v)));
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels

#endif  // aarch64 NEON
