// SPDX-License-Identifier: MIT
#pragma once

#include <climits>
#include <cstdint>
#include <cstring>
#include <limits>

#include "qmix/core/config.hpp"

namespace qmix {
QMIX_ABI_BEGIN

/// Arithmetic that stays bit-exact whatever flags the including project compiles with.
///
/// ggml's reference quantizers were built without fused multiply-add. A compiler that may
/// contract `a * b + c` into one fused operation (GCC by default, `-ffp-contract=fast`,
/// `-march=native`, every aarch64 build) rounds once where ggml rounds twice, and the bytes
/// change. A `#pragma` cannot be relied on (GCC ignores FP_CONTRACT in C++), so every
/// product whose result is later added to or subtracted from something goes through
/// strict::mul: the empty asm statement hides the product from the optimiser, which then
/// cannot fuse it with the addition. The cost is nil: the value stays in its register.
QMIX_ABI_END
namespace strict {
QMIX_ABI_BEGIN

template <class T>
QMIX_FORCE_INLINE T settle(T value) noexcept {
#if defined(__GNUC__) || defined(__clang__)
#if defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+x"(value));
#elif defined(__aarch64__) || defined(__arm__)
    __asm__("" : "+w"(value));
#else
    __asm__("" : "+m"(value));
#endif
#endif
    return value;
}

/// a * b, rounded to binary32 on its own (never fused with a following add).
QMIX_FORCE_INLINE float mul(float a, float b) noexcept {
    return settle(a * b);
}

/// a * b + c with two roundings, as the reference computes it.
QMIX_FORCE_INLINE float mul_add(float a, float b, float c) noexcept {
    return mul(a, b) + c;
}

/// Round to nearest, ties to even, for |value| < 2^22: the reference's magic-number trick
/// (adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits). The argument
/// is settled first: callers pass products (`nearest_int(iscale * x)`), and a product fused
/// into this addition would round once instead of twice.
QMIX_FORCE_INLINE int nearest_int(float value) noexcept {
    const float shifted = settle(value) + 12582912.0f;
    std::int32_t bits;
    std::memcpy(&bits, &shifted, sizeof bits);
    return (bits & 0x007fffff) - 0x00400000;
}

/// Float to integer by truncation, defined for every input: values outside int32 and NaN
/// give INT32_MIN, which is what x86's cvttss2si returns and so what ggml's reference
/// quantizers, built for x86, store when a subnormal block maximum makes 1/d overflow.
/// (A plain C++ cast would be undefined behaviour there.)
QMIX_FORCE_INLINE std::int32_t truncate_to_int(float value) noexcept {
    if (!(value >= -2147483648.0f && value < 2147483648.0f)) return INT32_MIN;
    return static_cast<std::int32_t>(value);
}

/// x86's default NaN (0xffc00000), what an invalid operation (inf * 0, inf - inf) gives there.
inline float default_nan() noexcept {
    const std::uint32_t bits = 0xffc00000u;
    float nan;
    std::memcpy(&nan, &bits, sizeof nan);
    return nan;
}

/// `x`, or the default NaN when x is a NaN. For a result computed from operands of which
/// more than one may be NaN: which of them comes out depends on the instruction the compiler
/// picks (legacy SSE and VEX encodings pass a different operand through, and -O0 orders
/// operands otherwise than -O2), so the bytes stored from it must not.
inline float nan_as_default(float x) noexcept {
    return x != x ? default_nan() : x;
}

/// q * d + m, two roundings, for a level q (a small non-negative integer) and a scale d and
/// offset m that may be infinite or NaN, with the NaN the result is spelled out: the first
/// NaN operand, quieted, of q * d and then of (q * d) + m; where no operand is NaN but the
/// operation is invalid (inf * 0, inf - inf), x86's default NaN 0xffc00000. A plain
/// expression leaves which NaN comes out to the operand order the compiler picks (and to the
/// CPU: aarch64's default NaN is positive), and so did the bytes of a requantized q4_1 block.
inline float mul_add_defined_nan(float q, float d, float m) noexcept {
    const auto quiet = [](float nan) {
        std::uint32_t bits;
        std::memcpy(&bits, &nan, sizeof bits);
        bits |= 0x00400000u;
        std::memcpy(&nan, &bits, sizeof bits);
        return nan;
    };
    const float infinity = std::numeric_limits<float>::infinity();
    if (d != d) return quiet(d);
    const bool d_infinite = d == infinity || d == -infinity;
    if (d_infinite && q == 0.0f) return default_nan();
    const float product = mul(q, d);
    if (m != m) return quiet(m);
    const bool opposite_infinities =
        (product == infinity && m == -infinity) || (product == -infinity && m == infinity);
    if (opposite_infinities) return default_nan();
    return product + m;
}

QMIX_ABI_END
}  // namespace strict
QMIX_ABI_BEGIN
QMIX_ABI_END
}  // namespace qmix
