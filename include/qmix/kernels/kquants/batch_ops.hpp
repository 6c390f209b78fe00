// SPDX-License-Identifier: MIT
#pragma once

// The per-instruction-set floor of the k-quant kernels: operations on one xsimd batch,
// with intrinsics where xsimd 8 has no expression or no exact one.
//
// Everything in kquants/ is a template on the xsimd architecture tag, even the scalar
// helpers. The kernels of several instruction sets are linked into one program, each
// translation unit compiled with its own -m flags; a plain inline function would be
// emitted by every one of them and the linker would keep one copy at random, possibly the
// AVX-512 one on a CPU without AVX-512. A template on Arch gives every instruction set
// symbols of its own.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "qmix/core/config.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif
#if defined(__ARM_NEON) || defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

/// True for the instruction sets (and their FMA variants) that have code paths of their
/// own in this folder.
template <class Arch>
inline constexpr bool is_avx2 = std::is_base_of_v<xsimd::avx2, Arch>;
template <class Arch>
inline constexpr bool is_avx512bw = std::is_base_of_v<xsimd::avx512bw, Arch>;
template <class Arch>
inline constexpr bool is_neon64 = std::is_base_of_v<xsimd::neon64, Arch>;
/// The 128-bit x86 sets (SSE2 .. SSE4.2): batches are __m128.
template <class Arch>
inline constexpr bool is_sse = std::is_base_of_v<xsimd::sse2, Arch>;
/// 32-bit NEON: xsimd divides and takes square roots there by estimates (see batch_ops::div).
template <class Arch>
inline constexpr bool is_neon32 = std::is_base_of_v<xsimd::neon, Arch> && !is_neon64<Arch>;

/// f(std::integral_constant<int, i>{}) for i = 0 .. N - 1, unrolled: inside f the index
/// is a constant, so shift counts and shuffle masks built from it are immediates.
template <class F, int... i>
QMIX_FORCE_INLINE void unrolled_over(F&& f, std::integer_sequence<int, i...>) {
    (f(std::integral_constant<int, i>{}), ...);
}

template <int N, class F>
QMIX_FORCE_INLINE void unrolled(F&& f) {
    unrolled_over(f, std::make_integer_sequence<int, N>{});
}

/// Operations on one xsimd batch; lanes<Arch, K> below spreads them over K batches.
template <class Arch>
struct batch_ops {
    using floats = xsimd::batch<float, Arch>;
    using ints = xsimd::batch<std::int32_t, Arch>;
    using mask = xsimd::batch_bool<float, Arch>;
    static constexpr int count = int(floats::size);

    static floats load(const float* p) { return floats::load_unaligned(p); }
    static ints load(const std::int32_t* p) { return ints::load_unaligned(p); }
    static void store(float* p, floats v) { v.store_unaligned(p); }
    static void store(std::int32_t* p, ints v) { v.store_unaligned(p); }

    /// a * b rounded on its own, never fused with the addition that consumes it.
    static floats mul(floats a, floats b) { return simd::mul(a, b); }

    /// The correctly rounded quotient. xsimd 8 divides on NEON with a reciprocal estimate
    /// and two Newton steps, which is not IEEE division and would change the bytes.
    static floats div(floats a, floats b) {
        if constexpr (is_neon64<Arch>) {
#if XSIMD_WITH_NEON64
            return floats(vdivq_f32(a, b));
#endif
        } else if constexpr (is_neon32<Arch>) {
            alignas(64) float num[count];
            alignas(64) float den[count];
            a.store_aligned(num);
            b.store_aligned(den);
            for (int i = 0; i < count; ++i) num[i] = num[i] / den[i];
            return floats::load_aligned(num);
        } else {
            return a / b;
        }
    }

    /// The correctly rounded square root (xsimd 8 estimates it on NEON, as for division).
    static floats sqrt(floats a) {
        if constexpr (is_neon64<Arch>) {
#if XSIMD_WITH_NEON64
            return floats(vsqrtq_f32(a));
#endif
        } else if constexpr (is_neon32<Arch>) {
            alignas(64) float v[count];
            a.store_aligned(v);
            for (int i = 0; i < count; ++i) v[i] = std::sqrt(v[i]);
            return floats::load_aligned(v);
        } else if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            return floats(_mm512_maskz_sqrt_ps(0xFFFF, a));
#endif
        } else {
            return xsimd::sqrt(a);
        }
    }

    /// strict::nearest_int per lane: the magic addition leaves the rounded integer in the
    /// low mantissa bits. The argument is settled first, so a product passed in is rounded
    /// before the addition, as in the reference.
    static ints nearest_int(floats value) {
        const floats shifted = simd::settle(value) + floats(12582912.0f);
        return (xsimd::bitwise_cast<ints>(shifted) & ints(0x007fffff)) - ints(0x00400000);
    }

    static ints clamp(ints v, int lo, int hi) {
        return max(ints(lo), min(ints(hi), v));
    }

    /// to_float(clamp(nearest_int(value), lo, hi)) for |value| <= 2^21, lo and hi small
    /// integers. The magic addition rounds as nearest_int does, leaving a positive float in
    /// [2^23, 2^24), where the order of the bit patterns as integers is the order of the
    /// values: the clamp is an integer minimum and maximum there (those run on every vector
    /// pipe, float ones on half of them), and subtracting the magic number again is exact.
    /// (Outside that range, and for NaN, the result differs from nearest_int's: callers use
    /// this only where the range is known.) A caller that knows the rounded value cannot
    /// pass an end of [lo, hi] leaves that end's clamp out (low_end, high_end false).
    template <bool low_end = true, bool high_end = true>
    static floats nearest_level(floats value, float lo, float hi) {
        const floats magic(12582912.0f);
        ints level = xsimd::bitwise_cast<ints>(simd::settle(value) + magic);
        if constexpr (high_end)
            level = min(xsimd::bitwise_cast<ints>(floats(12582912.0f + hi)), level);
        if constexpr (low_end)
            level = max(xsimd::bitwise_cast<ints>(floats(12582912.0f + lo)), level);
        (void)lo, (void)hi;
        return simd::settle(xsimd::bitwise_cast<floats>(level)) - magic;
    }

    // The AVX-512 forms below are xsimd's instructions spelled with an all-ones zeroing
    // mask: GCC 12's unmasked intrinsics start from an "undefined" vector that trips
    // -Wmaybe-uninitialized in every includer. The compiler emits the unmasked instruction.

    static ints min(ints a, ints b) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            return ints(_mm512_maskz_min_epi32(0xFFFF, a, b));
#endif
        } else {
            return xsimd::min(a, b);
        }
    }

    static ints max(ints a, ints b) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            return ints(_mm512_maskz_max_epi32(0xFFFF, a, b));
#endif
        } else {
            return xsimd::max(a, b);
        }
    }

    /// Exact for the small integers used here.
    static floats to_float(ints v) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            return floats(_mm512_maskz_cvtepi32_ps(0xFFFF, v));
#endif
        } else {
            return xsimd::to_float(v);
        }
    }

    /// For floats that hold integers: exact.
    static ints to_int(floats v) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            return ints(_mm512_maskz_cvttps_epi32(0xFFFF, v));
#endif
        } else {
            return xsimd::to_int(v);
        }
    }

    static floats select(mask m, floats a, floats b) {
        return xsimd::select(m, a, b);
    }
    static ints select(mask m, ints a, ints b) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            // xsimd 8's own integer select on AVX-512BW does not compile at -O0 with GCC.
            return ints(_mm512_mask_blend_epi32(m.data, b, a));
#endif
        } else {
            return xsimd::select(xsimd::bool_cast(m), a, b);
        }
    }

    /// |v|, by clearing the sign bit as fabs does.
    static floats abs(floats v) {
        return xsimd::abs(v);
    }

    /// Eight-bit levels p[0 .. count) as floats.
    static floats widen(const std::int8_t* p) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512BW__)
            const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
            return to_float(ints(_mm512_maskz_cvtepi8_epi32(0xFFFF, bytes)));
#endif
        } else if constexpr (is_avx2<Arch>) {
#if defined(__AVX2__)
            const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
            return floats(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)));
#endif
        } else if constexpr (is_neon64<Arch>) {
#if XSIMD_WITH_NEON64
            std::int32_t word;
            std::memcpy(&word, p, sizeof word);
            const int16x8_t wide = vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(word)));
            return floats(vcvtq_f32_s32(vmovl_s16(vget_low_s16(wide))));
#endif
        } else if constexpr (is_sse<Arch>) {
#if defined(__SSE2__)
            std::int32_t word;
            std::memcpy(&word, p, sizeof word);
            // Each byte copied into the top of its 32-bit lane, then shifted down with sign.
            __m128i v = _mm_cvtsi32_si128(word);
            v = _mm_unpacklo_epi8(v, v);
            v = _mm_unpacklo_epi16(v, v);
            return floats(_mm_cvtepi32_ps(_mm_srai_epi32(v, 24)));
#endif
        } else {
            alignas(64) float values[count];
            for (int i = 0; i < count; ++i) values[i] = float(p[i]);
            return floats::load_aligned(values);
        }
    }

    /// out[i] lane j = rows[j][i] for i, j < count: a square transpose of count rows.
    QMIX_FORCE_INLINE static void transpose(const float* const* rows, floats* out) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            transpose16(rows, out);
#endif
        } else if constexpr (is_avx2<Arch>) {
#if defined(__AVX2__)
            transpose8(rows, out);
#endif
        } else if constexpr (is_neon64<Arch>) {
#if XSIMD_WITH_NEON64
            const float32x4x2_t p01 = vtrnq_f32(vld1q_f32(rows[0]), vld1q_f32(rows[1]));
            const float32x4x2_t p23 = vtrnq_f32(vld1q_f32(rows[2]), vld1q_f32(rows[3]));
            out[0] = vcombine_f32(vget_low_f32(p01.val[0]), vget_low_f32(p23.val[0]));
            out[1] = vcombine_f32(vget_low_f32(p01.val[1]), vget_low_f32(p23.val[1]));
            out[2] = vcombine_f32(vget_high_f32(p01.val[0]), vget_high_f32(p23.val[0]));
            out[3] = vcombine_f32(vget_high_f32(p01.val[1]), vget_high_f32(p23.val[1]));
#endif
        } else if constexpr (is_sse<Arch>) {
#if defined(__SSE2__)
            __m128 r0 = _mm_loadu_ps(rows[0]);
            __m128 r1 = _mm_loadu_ps(rows[1]);
            __m128 r2 = _mm_loadu_ps(rows[2]);
            __m128 r3 = _mm_loadu_ps(rows[3]);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            out[0] = r0;
            out[1] = r1;
            out[2] = r2;
            out[3] = r3;
#endif
        } else {
            alignas(64) float buffer[count * count];
            for (int j = 0; j < count; ++j) {
                for (int i = 0; i < count; ++i) buffer[i * count + j] = rows[j][i];
            }
            for (int i = 0; i < count; ++i) out[i] = floats::load_aligned(buffer + i * count);
        }
    }

    /// Stores the lanes of v, each 0..255, as count bytes.
    static void store_bytes(std::uint8_t* p, ints v) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512F__)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_maskz_cvtepi32_epi8(0xFFFF, v));
#endif
        } else if constexpr (is_avx2<Arch>) {
#if defined(__AVX2__)
            const __m256i all = v;
            const __m128i words =
                _mm_packus_epi32(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1));
            _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(words, words));
#endif
        } else if constexpr (is_neon64<Arch>) {
#if XSIMD_WITH_NEON64
            const uint16x4_t words = vmovn_u32(vreinterpretq_u32_s32(v));
            const uint8x8_t bytes = vmovn_u16(vcombine_u16(words, words));
            const std::uint32_t word = vget_lane_u32(vreinterpret_u32_u8(bytes), 0);
            std::memcpy(p, &word, sizeof word);
#endif
        } else if constexpr (is_sse<Arch>) {
#if defined(__SSE2__)
            const __m128i words = _mm_packs_epi32(v, v);
            const std::int32_t bytes = _mm_cvtsi128_si32(_mm_packus_epi16(words, words));
            std::memcpy(p, &bytes, sizeof bytes);
#endif
        } else {
            alignas(64) std::int32_t values[count];
            v.store_aligned(values);
            for (int i = 0; i < count; ++i) p[i] = std::uint8_t(values[i]);
        }
    }

    /// out[j] = clamp(lane j % count of v[j / count] + bias, 0, top) for j < 4 count: four
    /// batches of any int32 values to bytes (0 <= bias, top <= 127). Saturating narrowing
    /// keeps the order of the values, so clamping after it clamps the exact sums.
    static void store_biased_bytes(std::uint8_t* out, const ints* v, int bias, int top) {
        if constexpr (is_avx512bw<Arch>) {
#if defined(__AVX512BW__)
            __m512i all = _mm512_zextsi128_si512(_mm512_maskz_cvtsepi32_epi8(0xFFFF, v[0]));
            all = _mm512_inserti32x4(all, _mm512_maskz_cvtsepi32_epi8(0xFFFF, v[1]), 1);
            all = _mm512_inserti32x4(all, _mm512_maskz_cvtsepi32_epi8(0xFFFF, v[2]), 2);
            all = _mm512_inserti32x4(all, _mm512_maskz_cvtsepi32_epi8(0xFFFF, v[3]), 3);
            all = _mm512_adds_epi8(all, _mm512_set1_epi8(char(bias)));
            all = _mm512_max_epi8(all, _mm512_setzero_si512());
            all = _mm512_min_epi8(all, _mm512_set1_epi8(char(top)));
            _mm512_storeu_si512(out, all);
#endif
        } else if constexpr (is_avx2<Arch>) {
#if defined(__AVX2__)
            const __m256i biases = _mm256_set1_epi16(std::int16_t(bias));
            const __m256i low = _mm256_adds_epi16(_mm256_packs_epi32(v[0], v[1]), biases);
            const __m256i high = _mm256_adds_epi16(_mm256_packs_epi32(v[2], v[3]), biases);
            // packs works within 128-bit halves: 32-bit groups come out as 0 2 4 6 1 3 5 7.
            __m256i all = _mm256_packus_epi16(low, high);
            all = _mm256_permutevar8x32_epi32(all, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
            all = _mm256_min_epu8(all, _mm256_set1_epi8(char(top)));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), all);
#endif
        } else if constexpr (is_neon64<Arch>) {
#if XSIMD_WITH_NEON64
            const int16x8_t biases = vdupq_n_s16(std::int16_t(bias));
            const int16x8_t low =
                vqaddq_s16(vcombine_s16(vqmovn_s32(v[0]), vqmovn_s32(v[1])), biases);
            const int16x8_t high =
                vqaddq_s16(vcombine_s16(vqmovn_s32(v[2]), vqmovn_s32(v[3])), biases);
            const uint8x16_t all = vcombine_u8(vqmovun_s16(low), vqmovun_s16(high));
            vst1q_u8(out, vminq_u8(all, vdupq_n_u8(std::uint8_t(top))));
#endif
        } else if constexpr (is_sse<Arch>) {
#if defined(__SSE2__)
            const __m128i biases = _mm_set1_epi16(std::int16_t(bias));
            const __m128i low = _mm_adds_epi16(_mm_packs_epi32(v[0], v[1]), biases);
            const __m128i high = _mm_adds_epi16(_mm_packs_epi32(v[2], v[3]), biases);
            const __m128i all = _mm_min_epu8(_mm_packus_epi16(low, high), _mm_set1_epi8(char(top)));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out), all);
#endif
        } else {
            alignas(64) std::int32_t values[count];
            for (int k = 0; k < 4; ++k) {
                v[k].store_aligned(values);
                for (int i = 0; i < count; ++i) {
                    const std::int64_t sum = std::int64_t(values[i]) + bias;
                    out[k * count + i] = std::uint8_t(sum < 0 ? 0 : sum > top ? top : sum);
                }
            }
        }
    }

    /// count * 4 bytes at p, four to a lane.
    static ints load_raw_bytes(const std::uint8_t* p) {
        alignas(64) std::int32_t words[count];
        std::memcpy(words, p, sizeof words);
        return ints::load_aligned(words);
    }

    /// Stores v's bytes (count * 4 of them) at p.
    static void store_raw_bytes(std::uint8_t* p, ints v) {
        alignas(64) std::int32_t words[count];
        v.store_aligned(words);
        std::memcpy(p, words, sizeof words);
    }

    /// 64-byte batches only: stores the 32 bytes (low half of v) | (high half of v << shift),
    /// shifting 32-bit lanes (the caller keeps every bit inside its byte).
    static void store_folded_halves(std::uint8_t* p, ints v, int shift) {
        static_assert(count == 16, "folds a 512-bit batch");
#if defined(__AVX512F__)
        const __m256i low = _mm512_castsi512_si256(v);
        const __m256i high = _mm512_maskz_extracti64x4_epi64(0xF, v, 1);
        const __m256i folded =
            _mm256_or_si256(low, _mm256_sll_epi32(high, _mm_cvtsi32_si128(shift)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), folded);
#else
        (void)p, (void)v, (void)shift;
#endif
    }

  private:
#if defined(__AVX2__)
    QMIX_FORCE_INLINE static void transpose8(const float* const* rows, floats* out) {
        const __m256 r0 = _mm256_loadu_ps(rows[0]);
        const __m256 r1 = _mm256_loadu_ps(rows[1]);
        const __m256 r2 = _mm256_loadu_ps(rows[2]);
        const __m256 r3 = _mm256_loadu_ps(rows[3]);
        const __m256 r4 = _mm256_loadu_ps(rows[4]);
        const __m256 r5 = _mm256_loadu_ps(rows[5]);
        const __m256 r6 = _mm256_loadu_ps(rows[6]);
        const __m256 r7 = _mm256_loadu_ps(rows[7]);
        const __m256 t0 = _mm256_unpacklo_ps(r0, r1);
        const __m256 t1 = _mm256_unpackhi_ps(r0, r1);
        const __m256 t2 = _mm256_unpacklo_ps(r2, r3);
        const __m256 t3 = _mm256_unpackhi_ps(r2, r3);
        const __m256 t4 = _mm256_unpacklo_ps(r4, r5);
        const __m256 t5 = _mm256_unpackhi_ps(r4, r5);
        const __m256 t6 = _mm256_unpacklo_ps(r6, r7);
        const __m256 t7 = _mm256_unpackhi_ps(r6, r7);
        // u_c (u_c + 4): columns c and c + 4 of rows 0-3 (4-7) in its two 128-bit halves.
        const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44);
        const __m256 u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44);
        const __m256 u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44);
        const __m256 u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44);
        const __m256 u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        out[0] = floats(_mm256_permute2f128_ps(u0, u4, 0x20));
        out[1] = floats(_mm256_permute2f128_ps(u1, u5, 0x20));
        out[2] = floats(_mm256_permute2f128_ps(u2, u6, 0x20));
        out[3] = floats(_mm256_permute2f128_ps(u3, u7, 0x20));
        out[4] = floats(_mm256_permute2f128_ps(u0, u4, 0x31));
        out[5] = floats(_mm256_permute2f128_ps(u1, u5, 0x31));
        out[6] = floats(_mm256_permute2f128_ps(u2, u6, 0x31));
        out[7] = floats(_mm256_permute2f128_ps(u3, u7, 0x31));
    }
#endif
#if defined(__AVX512F__)
    // The unmasked forms would trip GCC 12's -Wmaybe-uninitialized (see min above).
    QMIX_FORCE_INLINE static void transpose16(const float* const* rows, floats* out) {
        __m512 t[16];
        unrolled<8>([&](auto i) {
            const __m512 a = _mm512_loadu_ps(rows[2 * i]);
            const __m512 b = _mm512_loadu_ps(rows[2 * i + 1]);
            t[2 * i] = _mm512_maskz_unpacklo_ps(0xFFFF, a, b);
            t[2 * i + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, a, b);
        });
        __m512 u[16];  // u[4 g + c], 128-bit lane l: rows 4g .. 4g + 3 of column 4 l + c
        unrolled<4>([&](auto g) {
            const __m512d p0 = _mm512_castps_pd(t[4 * g]);
            const __m512d p1 = _mm512_castps_pd(t[4 * g + 1]);
            const __m512d p2 = _mm512_castps_pd(t[4 * g + 2]);
            const __m512d p3 = _mm512_castps_pd(t[4 * g + 3]);
            u[4 * g + 0] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, p0, p2));
            u[4 * g + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, p0, p2));
            u[4 * g + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, p1, p3));
            u[4 * g + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, p1, p3));
        });
        unrolled<4>([&](auto c) {
            const __m512 v0 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[c], u[4 + c], 0x44);
            const __m512 v1 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[c], u[4 + c], 0xEE);
            const __m512 v2 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[8 + c], u[12 + c], 0x44);
            const __m512 v3 = _mm512_maskz_shuffle_f32x4(0xFFFF, u[8 + c], u[12 + c], 0xEE);
            out[c] = floats(_mm512_maskz_shuffle_f32x4(0xFFFF, v0, v2, 0x88));
            out[4 + c] = floats(_mm512_maskz_shuffle_f32x4(0xFFFF, v0, v2, 0xDD));
            out[8 + c] = floats(_mm512_maskz_shuffle_f32x4(0xFFFF, v1, v3, 0x88));
            out[12 + c] = floats(_mm512_maskz_shuffle_f32x4(0xFFFF, v1, v3, 0xDD));
        });
    }
#endif
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
