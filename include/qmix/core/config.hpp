// qmix: ggml block quantization, bit-exact, header-only.
// SPDX-License-Identifier: MIT
#pragma once

#define QMIX_VERSION_MAJOR 0
#define QMIX_VERSION_MINOR 1
#define QMIX_VERSION_PATCH 0
#define QMIX_VERSION_STRING "0.1.0"

#if defined(_MSC_VER) && !defined(__clang__)
#define QMIX_FORCE_INLINE __forceinline
#else
#define QMIX_FORCE_INLINE inline __attribute__((always_inline))
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define QMIX_ARCH_X86_64 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define QMIX_ARCH_AARCH64 1
#endif
