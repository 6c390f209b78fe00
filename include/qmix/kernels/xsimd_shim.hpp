// SPDX-License-Identifier: MIT
#pragma once

// The few xsimd names that changed between Debian's xsimd 8.1 and later releases, and the
// vector form of strict::settle. Kernels include this instead of <xsimd/xsimd.hpp>.

// GCC 12's AVX-512 intrinsics start many results from an "undefined" register and then
// trip -W(maybe-)uninitialized wherever they are inlined (GCC bug 105593). GCC judges a
// warning by the pragmas in force where the intrinsic's text lies, so silencing it around
// the first inclusion of the intrinsic headers silences exactly those and nothing else.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <type_traits>
#include <xsimd/xsimd.hpp>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#include "qmix/core/config.hpp"

namespace qmix::simd {
QMIX_ABI_BEGIN

/// Sum of all lanes (xsimd 8 calls it hadd, later versions reduce_add).
template <class T, class A>
inline T reduce_add(const xsimd::batch<T, A>& value) {
#if XSIMD_VERSION_MAJOR >= 9
    return xsimd::reduce_add(value);
#else
    return xsimd::hadd(value);
#endif
}

/// Hides a vector from the optimiser so that a product cannot be fused with a later add
/// (the vector twin of strict::settle; see core/strict_math.hpp for why).
template <class T, class A>
inline xsimd::batch<T, A> settle(xsimd::batch<T, A> value) {
#if defined(__GNUC__) || defined(__clang__)
#if defined(__AVX512F__)
    __asm__("" : "+v"(value.data));
#elif defined(__x86_64__) || defined(__i386__)
    __asm__("" : "+x"(value.data));
#elif defined(__aarch64__) || defined(__arm__)
    __asm__("" : "+w"(value.data));
#else
    // Without the barrier a product may be fused with the addition that consumes it and
    // the bytes change (core/strict_math.hpp): an instruction set qmix does not know must
    // say how to hide a vector register from the optimiser before its kernels compile.
#error "qmix: simd::settle has no register constraint for this architecture"
#endif
#else
#error "qmix: simd::settle needs GCC or Clang inline assembly to keep products unfused"
#endif
    return value;
}

/// -value as IEEE negation does it: the sign bit flipped, also of a zero and of a NaN.
/// (xsimd 8.1's unary minus on AVX-512 floats computes 0 - value, which gives +0 for +0;
/// its AVX and SSE ones flip the bit.) Use it where the sign of a zero reaches a result.
template <class A>
inline xsimd::batch<float, A> negate(const xsimd::batch<float, A>& value) {
    return value ^ xsimd::batch<float, A>(-0.0f);
}

/// a * b rounded on its own: never fused with the addition that consumes it.
template <class T, class A>
inline xsimd::batch<T, A> mul(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) {
    return settle(a * b);
}

QMIX_ABI_END
}  // namespace qmix::simd
