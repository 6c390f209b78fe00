// SPDX-License-Identifier: MIT
#pragma once

// The few scalar steps of the k-quant kernels (binary16 conversions, the q4_K / q5_K
// scale unpacking), as templates on Arch for the reason given in kquants/batch_ops.hpp.

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON) || defined(__aarch64__)
#include <arm_neon.h>
#endif

#include "qmix/core/config.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

/// binary16 conversions (the integer algorithm of core/binary16.hpp, or the exact hardware
/// widening where the translation unit has one) and the q4_K / q5_K scale unpacking.
template <class Arch>
struct scalar {
    static float bits_to_float(std::uint32_t bits) {
        float value;
        std::memcpy(&value, &bits, sizeof value);
        return value;
    }

    static float half_to_float(std::uint16_t half) {
#if defined(__F16C__)
        return _cvtsh_ss(half);
#elif defined(__aarch64__)
        return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(half))), 0);
#else
        const std::uint32_t sign = std::uint32_t(half & 0x8000u) << 16;
        const std::uint32_t exponent = (half >> 10) & 0x1fu;
        const std::uint32_t mantissa = half & 0x3ffu;
        if (exponent == 0x1f) {
            const std::uint32_t quiet = mantissa ? 0x00400000u : 0u;
            return bits_to_float(sign | 0x7f800000u | quiet | (mantissa << 13));
        }
        if (exponent != 0) return bits_to_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
        if (mantissa == 0) return bits_to_float(sign);
        std::uint32_t shift = 0;
        std::uint32_t m = mantissa;
        while ((m & 0x400u) == 0) {
            m <<= 1;
            ++shift;
        }
        return bits_to_float(sign | ((113 - shift) << 23) | ((m & 0x3ffu) << 13));
#endif
    }

    static std::uint16_t float_to_half(float value) {
        std::uint32_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        const auto sign = std::uint16_t((bits >> 16) & 0x8000u);
        bits &= 0x7fffffffu;
        if (bits >= 0x7f800000u) {
            if (bits == 0x7f800000u) return std::uint16_t(sign | 0x7c00u);
            return std::uint16_t(sign | 0x7e00u | ((bits >> 13) & 0x3ffu));
        }
        if (bits >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);
        if (bits >= 0x38800000u) {
            const std::uint32_t odd = (bits >> 13) & 1u;
            return std::uint16_t(sign | ((bits - 0x38000000u + 0xfffu + odd) >> 13));
        }
        if (bits <= 0x33000000u) return sign;
        const std::uint32_t exponent = bits >> 23;
        const std::uint32_t mantissa = (bits & 0x7fffffu) | 0x800000u;
        const std::uint32_t shift = 126 - exponent;
        const std::uint32_t half_ulp = 1u << (shift - 1);
        const std::uint32_t remainder = mantissa & ((1u << shift) - 1);
        std::uint32_t result = mantissa >> shift;
        if (remainder > half_ulp || (remainder == half_ulp && (result & 1u))) ++result;
        return std::uint16_t(sign | result);
    }

    /// |value|, by clearing the sign bit as fabs does.
    static float abs(float value) {
        std::uint32_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        return bits_to_float(bits & 0x7fffffffu);
    }

    static int clamp(int v, int lo, int hi) {
        return v < lo ? lo : (v > hi ? hi : v);
    }

    /// The 6-bit scale and min of sub-block j of q4_K / q5_K (formats' unpack_scale_min_k4).
    static void unpack_scale_min_k4(int j, const std::uint8_t* q, int& scale, int& min) {
        if (j < 4) {
            scale = q[j] & 63;
            min = q[j + 4] & 63;
        } else {
            scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
            min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        }
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
