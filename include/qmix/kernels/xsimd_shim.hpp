// SPDX-License-Identifier: MIT
#pragma once

// The few xsimd names that changed between Debian's xsimd 8.1 and later releases, and the
// vector form of strict::settle. Kernels include this instead of <xsimd/xsimd.hpp>.

#include <xsimd/xsimd.hpp>

namespace qmix::simd {

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
#endif
#endif
    return value;
}

/// a * b rounded on its own: never fused with the addition that consumes it.
template <class T, class A>
inline xsimd::batch<T, A> mul(const xsimd::batch<T, A>& a, const xsimd::batch<T, A>& b) {
    return settle(a * b);
}

}  // namespace qmix::simd
