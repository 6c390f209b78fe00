// qmix: ggml block quantization, bit-exact with ggml.
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

// Inlines every call made in the function's body, recursively (GCC, Clang): for small
// kernels built of lambdas (unrolled), whose inlining GCC otherwise decides by the size of
// the whole translation unit, so that growth elsewhere can leave them as calls.
#if defined(__GNUC__)
#define QMIX_FLATTEN __attribute__((flatten))
#else
#define QMIX_FLATTEN
#endif

// Inlines a lambda wherever it is called (GCC, Clang; written after the parameter list):
// for the steps of an unrolled register kernel, which GCC may otherwise leave as calls
// even inside a flattened caller.
#if defined(__GNUC__)
#define QMIX_INLINE_LAMBDA __attribute__((always_inline))
#else
#define QMIX_INLINE_LAMBDA
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define QMIX_ARCH_X86_64 1
#endif
#if defined(__aarch64__) || defined(_M_ARM64)
#define QMIX_ARCH_AARCH64 1
#endif

// ---- ABI namespaces --------------------------------------------------------------------
//
// Every inline function of qmix lives in an inline namespace named after the instruction
// set its translation unit is compiled for (qmix::v0_avx2::row_size, say), so that two
// objects compiled with different flags never share a symbol: the linker cannot swap a
// baseline copy for a wide one, whatever the link order, LTO or identical-code folding.
// The kernel levels of the library (src/kernels_<level>.cpp) are compiled with
// QMIX_KERNEL_LEVEL=<level> and get a namespace of their own, level_<level>, so nothing of
// one level reaches another. Callers write qmix::row_size: the inline namespace is
// invisible to them.
//
// The row API that the library compiles once (quantize, dequantize, dot, the kernel
// tables; see ops.hpp) is made of plain functions of qmix and qmix::kernels. With
// QMIX_HEADER_ONLY (qmix/header_only.hpp, or the single header) it is instead defined
// inline, in the translation unit's ABI namespace.
//
// The few types that cross between levels (type_id, kernel_table, error) stay in qmix
// itself: they define no function a level object could emit.
#define QMIX_ABI_JOIN_IMPL(a, b) a##b
#define QMIX_ABI_JOIN(a, b) QMIX_ABI_JOIN_IMPL(a, b)

#if defined(__AVX512F__)
#define QMIX_ISA_TAG avx512
#elif defined(__AVX2__)
#define QMIX_ISA_TAG avx2
#elif defined(__AVX__)
#define QMIX_ISA_TAG avx
#elif defined(__SSE4_1__)
#define QMIX_ISA_TAG sse4
#elif defined(__SSE2__) || defined(_M_X64)
#define QMIX_ISA_TAG sse2
#elif defined(__ARM_NEON) || defined(_M_ARM64)
#define QMIX_ISA_TAG neon
#else
#define QMIX_ISA_TAG generic
#endif

#if defined(QMIX_KERNEL_LEVEL)
#define QMIX_ABI QMIX_ABI_JOIN(level_, QMIX_KERNEL_LEVEL)
#else
#define QMIX_ABI QMIX_ABI_JOIN(v0_, QMIX_ISA_TAG)
#endif

#if defined(QMIX_HEADER_ONLY)
#define QMIX_API inline
#else
#define QMIX_API
#endif

/// Opens and closes the ABI namespace. It is always the innermost namespace
/// (qmix::kernels::v0_avx2, qmix::formats::v0_avx2, ...), never a parent of another
/// namespace: a name then has one meaning however many ABI namespaces a translation unit
/// sees (a header-only translation unit beside the library's plain row API, say).
#define QMIX_ABI_BEGIN inline namespace QMIX_ABI {
#define QMIX_ABI_END }

/// The same for the row API and the dispatch (ops.hpp, kernels/dispatch.hpp): nothing in
/// the library's build, where those are plain functions of qmix and qmix::kernels compiled
/// once; the translation unit's ABI namespace with QMIX_HEADER_ONLY.
#if defined(QMIX_HEADER_ONLY)
#define QMIX_API_BEGIN QMIX_ABI_BEGIN
#define QMIX_API_END QMIX_ABI_END
#else
#define QMIX_API_BEGIN
#define QMIX_API_END
#endif
