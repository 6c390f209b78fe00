// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>
#include <cstring>

#include "qmix/core/config.hpp"

namespace qmix {
QMIX_ABI_BEGIN

/// IEEE 754 binary16 <-> binary32 conversion, done in integer arithmetic so that the
/// result never depends on the floating-point environment, the compiler or the CPU.
QMIX_ABI_END
namespace binary16 {
QMIX_ABI_BEGIN

inline std::uint32_t bits_of(float value) noexcept {
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

inline float float_of(std::uint32_t bits) noexcept {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

/// Widening is exact. A NaN keeps its sign and payload and comes out quiet, as the
/// hardware conversions (F16C, NEON) produce it.
inline float to_float(std::uint16_t half) noexcept {
    const std::uint32_t sign = std::uint32_t(half & 0x8000u) << 16;
    const std::uint32_t exponent = (half >> 10) & 0x1fu;
    const std::uint32_t mantissa = half & 0x3ffu;
    if (exponent == 0x1f) {
        const std::uint32_t quiet = mantissa ? 0x00400000u : 0u;
        return float_of(sign | 0x7f800000u | quiet | (mantissa << 13));
    }
    if (exponent != 0) return float_of(sign | ((exponent + 112) << 23) | (mantissa << 13));
    if (mantissa == 0) return float_of(sign);
    // Subnormal half: normalise the mantissa into a binary32 normal number.
    std::uint32_t shift = 0;
    std::uint32_t m = mantissa;
    while ((m & 0x400u) == 0) {
        m <<= 1;
        ++shift;
    }
    return float_of(sign | ((113 - shift) << 23) | ((m & 0x3ffu) << 13));
}

/// Narrowing rounds to nearest, ties to even; overflow gives infinity; NaN stays NaN.
inline std::uint16_t from_float(float value) noexcept {
    std::uint32_t bits = bits_of(value);
    const std::uint16_t sign = std::uint16_t((bits >> 16) & 0x8000u);
    bits &= 0x7fffffffu;
    if (bits >= 0x7f800000u) {  // infinity or NaN
        if (bits == 0x7f800000u) return std::uint16_t(sign | 0x7c00u);
        return std::uint16_t(sign | 0x7e00u | ((bits >> 13) & 0x3ffu));
    }
    if (bits >= 0x477ff000u) return std::uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
    if (bits >= 0x38800000u) {                                      // a normal binary16 result
        const std::uint32_t odd = (bits >> 13) & 1u;
        return std::uint16_t(sign | ((bits - 0x38000000u + 0xfffu + odd) >> 13));
    }
    if (bits <= 0x33000000u) return sign;  // at most half the smallest subnormal: zero
    // A subnormal binary16 result: shift the full mantissa down, rounding to even.
    const std::uint32_t exponent = bits >> 23;
    const std::uint32_t mantissa = (bits & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - exponent;
    const std::uint32_t half_ulp = 1u << (shift - 1);
    const std::uint32_t remainder = mantissa & ((1u << shift) - 1);
    std::uint32_t result = mantissa >> shift;
    if (remainder > half_ulp || (remainder == half_ulp && (result & 1u))) ++result;
    return std::uint16_t(sign | result);
}

QMIX_ABI_END
}  // namespace binary16
QMIX_ABI_BEGIN

/// Shorthands used throughout the format code.
inline float half_to_float(std::uint16_t half) noexcept {
    return binary16::to_float(half);
}
inline std::uint16_t float_to_half(float value) noexcept {
    return binary16::from_float(value);
}

QMIX_ABI_END
}  // namespace qmix
