// SPDX-License-Identifier: MIT
#pragma once

// x86-64: what the CPU can run (cpuid, no compiler flags needed), which decides the kernel
// level that src/kernels_dispatch.cpp picks. The levels themselves: kernels/isa/.

#include <cstdint>

#include "qmix/core/config.hpp"

#if defined(QMIX_ARCH_X86_64)
#if defined(__GNUC__) || defined(__clang__)
#include <cpuid.h>
#endif

namespace qmix::kernels::x86 {
QMIX_ABI_BEGIN

/// The instruction-set extensions that decide which kernel level may run. The operating
/// system must also save the wide registers, or AVX code faults even on an AVX CPU.
struct cpu_features {
    bool sse2 = false;
    bool avx2 = false;    ///< AVX2 with FMA, F16C and BMI2, and OS support for ymm state
    bool avx512 = false;  ///< F, BW, VL, DQ, CD, VNNI, F16C, BMI2, and OS support for zmm state
    /// AMD's CPU family (0x19: Zen 3 and Zen 4; 0x1a: Zen 5), 0 on other vendors' CPUs.
    unsigned amd_family = 0;
    /// The CPU runs 512-bit operations as two 256-bit halves (AMD family 19h with AVX-512:
    /// Zen 4), so a kernel bound by such an operation may do better with 256-bit ones.
    bool splits_512 = false;
};

inline cpu_features detect_cpu() noexcept {
    cpu_features found;
#if defined(__GNUC__) || defined(__clang__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return found;
    found.sse2 = (edx >> 26) & 1u;
    const bool f16c = (ecx >> 29) & 1u;
    const bool fma = (ecx >> 12) & 1u;
    const bool osxsave = (ecx >> 27) & 1u;
    const bool avx = (ecx >> 28) & 1u;
    std::uint64_t xcr0 = 0;
    if (osxsave) {
        unsigned lo = 0, hi = 0;
        __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        xcr0 = (std::uint64_t(hi) << 32) | lo;
    }
    const bool os_ymm = (xcr0 & 0x6u) == 0x6u;    // SSE and AVX state
    const bool os_zmm = (xcr0 & 0xe6u) == 0xe6u;  // plus opmask and both zmm halves
    const unsigned base_family = (eax >> 8) & 0xfu;
    const unsigned family = base_family == 0xfu ? base_family + ((eax >> 20) & 0xffu) : base_family;
    unsigned vendor_ebx = 0, vendor_ecx = 0, vendor_edx = 0, top = 0;
    __get_cpuid(0, &top, &vendor_ebx, &vendor_ecx, &vendor_edx);
    const bool amd = vendor_ebx == 0x68747541u && vendor_edx == 0x69746e65u &&
                     vendor_ecx == 0x444d4163u;  // "AuthenticAMD"
    if (amd) found.amd_family = family;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return found;
    const bool avx2 = (ebx >> 5) & 1u;
    const bool bmi2 = (ebx >> 8) & 1u;
    const bool avx512f = (ebx >> 16) & 1u;
    const bool avx512dq = (ebx >> 17) & 1u;
    const bool avx512cd = (ebx >> 28) & 1u;
    const bool avx512bw = (ebx >> 30) & 1u;
    const bool avx512vl = (ebx >> 31) & 1u;
    const bool avx512vnni = (ecx >> 11) & 1u;
    found.avx2 = avx && avx2 && fma && f16c && bmi2 && os_ymm;
    found.avx512 = found.avx2 && avx512f && avx512bw && avx512vl && avx512dq && avx512cd &&
                   avx512vnni && os_zmm;
    found.splits_512 = found.avx512 && found.amd_family == 0x19;
#endif
    return found;
}

QMIX_ABI_END
}  // namespace qmix::kernels::x86

#endif  // QMIX_ARCH_X86_64
