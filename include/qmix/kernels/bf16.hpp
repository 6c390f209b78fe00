// SPDX-License-Identifier: MIT
#pragma once

// SIMD kernels of bf16 (formats/bf16.hpp). Narrowing is integer arithmetic on the bit
// patterns, so every lane gives the reference's bits. On AVX2 and AVX-512 it works on
// 16-bit halves: the upper halves h and the lower halves l of 16 or 32 values are gathered
// into one register each, and h rounds up exactly when l + (h & 1) > 0x8000, i.e. when
// (l | (h & 1)) > 0x8000. A step whose values include an infinity or NaN (exponent all
// ones) is narrowed by the scalar code instead. Widening is a shift. The dot product
// splits each 32-bit word of bf16 pairs into its even value (shifted up) and its odd value
// (masked), whose products are exact in binary32 and so are summed by fused multiply-adds
// where the level has them, in four float accumulators per stretch of 1024 values and the
// stretches in double, like the f16 kernel, so it agrees with the reference's double sum
// to rounding. (AVX512-BF16's vdpbf16ps would be one instruction per 32 products, but it
// treats subnormal inputs as zero, which the reference does not.)

#include <algorithm>
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

    /// Narrows the first values of src with the level's own instructions (AVX2, AVX-512),
    /// as long as whole steps remain; returns how many it narrowed (0 on other levels).
    static std::int64_t narrow_fast(const float* src, std::uint16_t* out, std::int64_t n) {
        std::int64_t i = 0;
        (void)src, (void)out, (void)n;  // levels without a path of their own use none
        if constexpr (kquants::is_avx512bw<Arch>) {
#if defined(__AVX512BW__)
            // Aligned loads matter most here: the scalar code takes values until src is.
            while (i < n && i < 16 && (reinterpret_cast<std::uintptr_t>(src + i) & 63) != 0) {
                out[i] = float_to_bf16(src[i]);
                ++i;
            }
            alignas(64) static constexpr std::uint16_t upper_index[32] = {
                1,  3,  5,  7,  9,  11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31,
                33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63};
            alignas(64) static constexpr std::uint16_t lower_index[32] = {
                0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30,
                32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62};
            const __m512i upper_of = _mm512_load_si512(upper_index);
            const __m512i lower_of = _mm512_load_si512(lower_index);
            const __m512i one = _mm512_set1_epi16(1);
            const __m512i exponent = _mm512_set1_epi16(0x7f80);
            const __m512i half = _mm512_set1_epi16(std::int16_t(-0x8000));
            for (; i + 32 <= n; i += 32) {
                const __m512i a = _mm512_loadu_si512(src + i);
                const __m512i b = _mm512_loadu_si512(src + i + 16);
                const __m512i h = _mm512_permutex2var_epi16(a, upper_of, b);
                const __m512i l = _mm512_permutex2var_epi16(a, lower_of, b);
                if (_mm512_cmpeq_epi16_mask(_mm512_and_si512(h, exponent), exponent) != 0) {
                    for (std::int64_t k = i; k < i + 32; ++k) out[k] = float_to_bf16(src[k]);
                    continue;
                }
                // l | (h & 1): ternary-logic table 0xf8 is A | (B & C).
                const __m512i sticky = _mm512_ternarylogic_epi32(l, h, one, 0xf8);
                const __mmask32 up = _mm512_cmpgt_epu16_mask(sticky, half);
                _mm512_storeu_si512(out + i, _mm512_mask_add_epi16(h, up, h, one));
            }
#endif
        } else if constexpr (kquants::is_avx2<Arch>) {
#if defined(__AVX2__)
            // Stores that do not straddle cache lines: the scalar code takes values until
            // out is 32-byte aligned.
            while (i < n && i < 16 && (reinterpret_cast<std::uintptr_t>(out + i) & 31) != 0) {
                out[i] = float_to_bf16(src[i]);
                ++i;
            }
            // Per 128-bit lane: the upper halves of four values, then their lower halves.
            const __m256i split =
                _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7,
                                 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13);
            const __m256i one = _mm256_set1_epi16(1);
            const __m256i exponent = _mm256_set1_epi16(0x7f80);
            const __m256i half = _mm256_set1_epi16(std::int16_t(-0x8000));
            const __m256i zero = _mm256_setzero_si256();
            // 16 values from p: their upper halves h (in the order 0-3 8-11 4-7 12-15) and
            // the rounded results.
            const auto halves = [&](const float* p, __m256i& h, __m256i& l) {
                const __m256i a = _mm256_shuffle_epi8(
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), split);
                const __m256i b = _mm256_shuffle_epi8(
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8)), split);
                h = _mm256_unpacklo_epi64(a, b);
                l = _mm256_unpackhi_epi64(a, b);
            };
            const auto rounded = [&](__m256i h, __m256i l) {
                // (l | (h & 1)) > 0x8000 as unsigned: flip the top bit, compare signed.
                const __m256i sticky = _mm256_or_si256(l, _mm256_and_si256(h, one));
                const __m256i up = _mm256_cmpgt_epi16(_mm256_xor_si256(sticky, half), zero);
                return _mm256_permute4x64_epi64(_mm256_sub_epi16(h, up), 0xd8);
            };
            for (; i + 32 <= n; i += 32) {
                __m256i h0, l0, h1, l1;
                halves(src + i, h0, l0);
                halves(src + i + 16, h1, l1);
                const __m256i special =
                    _mm256_or_si256(_mm256_cmpeq_epi16(_mm256_and_si256(h0, exponent), exponent),
                                    _mm256_cmpeq_epi16(_mm256_and_si256(h1, exponent), exponent));
                if (_mm256_movemask_epi8(special) != 0) {
                    for (std::int64_t k = i; k < i + 32; ++k) out[k] = float_to_bf16(src[k]);
                    continue;
                }
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), rounded(h0, l0));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 16), rounded(h1, l1));
            }
#endif
        }
        return i;
    }

    static void quantize(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* /*importance*/) {
        auto* out = static_cast<std::uint16_t*>(dst);
        const std::int64_t n = nrows * n_per_row;
        std::int64_t i = narrow_fast(src, out, n);
        for (; i + lanes <= n; i += lanes) store(floats::load_unaligned(src + i), out + i);
        for (; i < n; ++i) out[i] = float_to_bf16(src[i]);
    }

    static void dequantize(const void* src, float* dst, std::int64_t nrows,
                           std::int64_t n_per_row) {
        const auto* in = static_cast<const std::uint16_t*>(src);
        const std::int64_t n = nrows * n_per_row;
        std::int64_t i = 0;
        // Two vectors a step: with one, the loop's own instructions weigh as much as the
        // widening, and its speed varied by a quarter with where the code happened to lie.
        for (; i + 2 * lanes <= n; i += 2 * lanes) {
            const floats first = load(in + i);
            const floats second = load(in + i + lanes);
            first.store_unaligned(dst + i);
            second.store_unaligned(dst + i + lanes);
        }
        for (; i + lanes <= n; i += lanes) load(in + i).store_unaligned(dst + i);
        for (; i < n; ++i) dst[i] = bf16_to_float(in[i]);
    }

    static float dot(const void* vx, const void* vy, std::int64_t n) {
        const auto* x = static_cast<const std::uint16_t*>(vx);
        const auto* y = static_cast<const std::uint16_t*>(vy);
        double total = 0.0;
        std::int64_t i = 0;
        // Loads that do not straddle cache lines cost half: the scalar code takes values
        // until x is 64-byte aligned (y too, when both rows start alike).
        const std::uintptr_t offset = reinterpret_cast<std::uintptr_t>(x) & 63;
        const std::int64_t head = offset % 2 == 0 ? std::int64_t((64 - offset) & 63) / 2 : 0;
        for (; i < n && i < head; ++i) total += double(bf16_to_float(x[i]) * bf16_to_float(y[i]));
        // One vector of 32-bit words holds 2 * lanes values: the even ones in the lower
        // halves, the odd ones in the upper halves.
        constexpr std::int64_t step = 2 * lanes;
        constexpr std::int64_t chunk = 1024;
        const ints upper(std::int32_t(0xffff0000u));
        const auto add_products = [&](std::int64_t at, floats& even, floats& odd) {
            const ints a = ints::load_unaligned(reinterpret_cast<const std::int32_t*>(x + at));
            const ints b = ints::load_unaligned(reinterpret_cast<const std::int32_t*>(y + at));
            even = isa<Arch>::add_exact_product(xsimd::bitwise_cast<floats>(a << 16),
                                                xsimd::bitwise_cast<floats>(b << 16), even);
            odd = isa<Arch>::add_exact_product(xsimd::bitwise_cast<floats>(a & upper),
                                               xsimd::bitwise_cast<floats>(b & upper), odd);
        };
        while (i + step <= n) {
            const std::int64_t end = std::min(n, i + chunk);
            floats acc[4] = {floats(0.0f), floats(0.0f), floats(0.0f), floats(0.0f)};
            for (; i + 2 * step <= end; i += 2 * step) {
                add_products(i, acc[0], acc[1]);
                add_products(i + step, acc[2], acc[3]);
            }
            for (; i + step <= end; i += step) add_products(i, acc[0], acc[1]);
            total += double(simd::reduce_add((acc[0] + acc[1]) + (acc[2] + acc[3])));
        }
        for (; i < n; ++i) total += double(bf16_to_float(x[i]) * bf16_to_float(y[i]));
        return float(total);
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
