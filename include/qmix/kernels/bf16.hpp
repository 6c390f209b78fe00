// SPDX-License-Identifier: MIT
#pragma once

// SIMD kernels of bf16 (formats/bf16.hpp). Narrowing is integer arithmetic on the bit
// patterns, the reference's own, so every lane gives the reference's bits; widening is a
// shift. The dot product sums exact binary32 products in four float accumulators per
// stretch of 1024 values and the stretches in double, like the f16 kernel, so it agrees
// with the reference's double sum to rounding.

#include <cstdint>
#include <cstring>

#include "qmix/core/config.hpp"
#include "qmix/formats/bf16.hpp"
#include "qmix/kernels/generic.hpp"
#include "qmix/kernels/kquants/batch_ops.hpp"
#include "qmix/kernels/table.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

namespace qmix::kernels {
QMIX_ABI_BEGIN
QMIX_ABI_END
namespace bf16_kernels {
QMIX_ABI_BEGIN

template <class Arch>
struct kernels {
    using floats = xsimd::batch<float, Arch>;
    using ints = xsimd::batch<std::int32_t, Arch>;
    static constexpr std::int64_t lanes = std::int64_t(floats::size);

    /// `lanes` bf16 values as floats.
    static floats load(const std::uint16_t* p) {
        if constexpr (kquants::is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            const __m256i halves = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
            return floats(_mm512_castsi512_ps(
                _mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(0xFFFF, halves), 16)));
#endif
        } else if constexpr (kquants::is_avx2<Arch>) {
#if defined(__AVX2__)
            const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            return floats(
                _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16)));
#endif
        } else if constexpr (kquants::is_neon64<Arch>) {
#if defined(__aarch64__)
            return floats(vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)));
#endif
        } else if constexpr (kquants::is_sse<Arch>) {
#if defined(__SSE2__)
            const __m128i halves = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
            return floats(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), halves)));
#endif
        } else {
            alignas(64) float values[lanes];
            for (std::int64_t i = 0; i < lanes; ++i) values[i] = bf16_to_float(p[i]);
            return floats::load_aligned(values);
        }
    }

    /// Narrows `lanes` floats to bf16 as float_to_bf16 does.
    static void store(floats v, std::uint16_t* p) {
        const ints bits = xsimd::bitwise_cast<ints>(v);
        // All ones in a NaN's lane: 0x7f800000 - |bits| is negative exactly for a NaN and
        // cannot overflow. (A lane mask, not xsimd::select: xsimd 8's integer select on
        // AVX-512BW does not compile at -O0 with GCC.)
        const ints not_a_number = (ints(0x7f800000) - (bits & ints(0x7fffffff))) >> 31;
        // Arithmetic shifts: the low 16 bits of the results are those of logical shifts,
        // and the additions wrap as unsigned ones do.
        const ints rounded = (bits + (ints(0x7fff) + ((bits >> 16) & ints(1)))) >> 16;
        const ints quiet = (bits >> 16) | ints(0x40);
        const ints result = ((quiet & not_a_number) | (rounded & ~not_a_number)) & ints(0xffff);
        if constexpr (kquants::is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                                _mm512_maskz_cvtepi32_epi16(0xFFFF, result));
#endif
        } else if constexpr (kquants::is_avx2<Arch>) {
#if defined(__AVX2__)
            const __m256i all = result;
            _mm_storeu_si128(
                reinterpret_cast<__m128i*>(p),
                _mm_packus_epi32(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1)));
#endif
        } else if constexpr (kquants::is_neon64<Arch>) {
#if defined(__aarch64__)
            vst1_u16(p, vmovn_u32(vreinterpretq_u32_s32(result)));
#endif
        } else if constexpr (kquants::is_sse<Arch>) {
#if defined(__SSE2__)
            // Sign-extend the 16-bit results so that the signed pack keeps their bits.
            const __m128i extended = _mm_srai_epi32(_mm_slli_epi32(result, 16), 16);
            _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi32(extended, extended));
#endif
        } else {
            alignas(64) std::int32_t values[lanes];
            result.store_aligned(values);
            for (std::int64_t i = 0; i < lanes; ++i) p[i] = std::uint16_t(values[i]);
        }
    }

    static void quantize(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* /*importance*/) {
        auto* out = static_cast<std::uint16_t*>(dst);
        const std::int64_t n = nrows * n_per_row;
        std::int64_t i = 0;
        for (; i + lanes <= n; i += lanes) store(floats::load_unaligned(src + i), out + i);
        for (; i < n; ++i) out[i] = float_to_bf16(src[i]);
    }

    static void dequantize(const void* src, float* dst, std::int64_t nrows,
                           std::int64_t n_per_row) {
        const auto* in = static_cast<const std::uint16_t*>(src);
        const std::int64_t n = nrows * n_per_row;
        std::int64_t i = 0;
        for (; i + lanes <= n; i += lanes) load(in + i).store_unaligned(dst + i);
        for (; i < n; ++i) dst[i] = bf16_to_float(in[i]);
    }

    static float dot(const void* vx, const void* vy, std::int64_t n) {
        const auto* x = static_cast<const std::uint16_t*>(vx);
        const auto* y = static_cast<const std::uint16_t*>(vy);
        const std::int64_t whole = n - n % lanes;
        double tail = 0.0;
        for (std::int64_t i = whole; i < n; ++i) {
            tail += double(bf16_to_float(x[i]) * bf16_to_float(y[i]));
        }
        return generic::block_kernels<Arch>::dot_floats(
            whole,
            [&](std::int64_t i, floats acc) { return acc + simd::mul(load(x + i), load(y + i)); },
            tail);
    }
};

QMIX_ABI_END
}  // namespace bf16_kernels
QMIX_ABI_BEGIN

/// Fills the bf16 slot of `table` with the kernels of Arch.
template <class Arch>
void add_bf16_kernels(kernel_table& table) {
    using k = bf16_kernels::kernels<Arch>;
    slot(table, type_id::bf16) = {&k::quantize, &k::dequantize, &k::dot};
}

QMIX_ABI_END
}  // namespace qmix::kernels
