// SPDX-License-Identifier: MIT
#pragma once

// x86-64: what the CPU can run (cpuid, no compiler flags needed) and the isa<> primitives
// of the three levels qmix builds for:
//   sse2    every x86-64 CPU; the baseline
//   avx2    AVX2 + FMA + F16C + BMI2 (Haswell, Zen and later); FMA only where a fused
//           multiply-add gives the bytes of the separate steps (add_exact_product)
//   avx512  AVX-512 F/BW/VL/DQ/CD + VNNI (Ice Lake, Zen 4 and later)
// Each isa<> specialisation exists only in translation units compiled for its level; see
// isa.hpp for what each primitive promises.

#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/kernels/isa.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

#if defined(QMIX_ARCH_X86_64)
#include <immintrin.h>
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
#endif
    return found;
}

QMIX_ABI_END
}  // namespace qmix::kernels::x86

namespace qmix::kernels {
QMIX_ABI_BEGIN

// ---------------------------------------------------------------------------------------
// SSE2: no byte shuffle, no maddubs, no F16C. Bytes are widened to 16 bits for the dot
// products, binary16 is converted in integer arithmetic (exactly as core/binary16.hpp).
#if defined(__SSE2__)
#define QMIX_ISA_SSE2 1
template <>
struct isa<xsimd::sse2> {
    using arch = xsimd::sse2;
    using floats = xsimd::batch<float, arch>;
    using ints = xsimd::batch<std::int32_t, arch>;
    using float_mask = xsimd::batch_bool<float, arch>;
    static constexpr std::string_view name = "sse2";

    static float reduce_max(floats v) {
        __m128 m = _mm_max_ps(v, _mm_movehl_ps(v, v));
        m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
        return _mm_cvtss_f32(m);
    }
    static std::uint32_t mask_bits(float_mask m) { return std::uint32_t(_mm_movemask_ps(m)); }

    static floats transpose_max(const floats* v) {
        return transpose(v, [](__m128 a, __m128 b) { return _mm_max_ps(a, b); });
    }
    static floats transpose_min(const floats* v) {
        return transpose(v, [](__m128 a, __m128 b) { return _mm_min_ps(a, b); });
    }
    static floats transpose_add(const floats* v) {
        return transpose(v, [](__m128 a, __m128 b) { return _mm_add_ps(a, b); });
    }

    static std::uint32_t store_nibbles(const ints* levels, int top, std::uint8_t* qs) {
        // No 32-bit minimum in SSE2: clamp after narrowing, in bytes.
        const __m128i low = _mm_packus_epi16(_mm_packs_epi32(levels[0], levels[1]),
                                             _mm_packs_epi32(levels[2], levels[3]));
        const __m128i high = _mm_packus_epi16(_mm_packs_epi32(levels[4], levels[5]),
                                              _mm_packs_epi32(levels[6], levels[7]));
        const __m128i limit = _mm_set1_epi8(char(top));
        const __m128i l = _mm_min_epu8(low, limit);
        const __m128i h = _mm_min_epu8(high, limit);
        const __m128i nibble = _mm_set1_epi8(0x0f);
        const __m128i packed =
            _mm_or_si128(_mm_and_si128(l, nibble), _mm_slli_epi16(_mm_and_si128(h, nibble), 4));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), packed);
        const auto fifth = [](__m128i b) {
            return std::uint32_t(_mm_movemask_epi8(_mm_slli_epi16(b, 3)));
        };
        return fifth(l) | fifth(h) << 16;
    }
    static ints widen_u8(const std::uint8_t* p) {
        const __m128i zero = _mm_setzero_si128();
        const __m128i b = _mm_cvtsi32_si128(std::int32_t(load_u32(p)));
        return _mm_unpacklo_epi16(_mm_unpacklo_epi8(b, zero), zero);
    }
    static ints widen_i8(const std::int8_t* p) {
        __m128i b = _mm_cvtsi32_si128(std::int32_t(load_u32(p)));
        b = _mm_unpacklo_epi8(b, b);
        return _mm_srai_epi32(_mm_unpacklo_epi16(b, b), 24);
    }
    static ints bit_lanes(std::uint32_t bits, int first) {
        const __m128i lane_bit = _mm_setr_epi32(1, 2, 4, 8);
        const __m128i picked = _mm_and_si128(_mm_set1_epi32(std::int32_t(bits >> first)), lane_bit);
        return _mm_srli_epi32(_mm_cmpeq_epi32(picked, lane_bit), 31);
    }
    static void store_i8x32(const ints* v, std::int8_t* out) {
        for (int half = 0; half < 2; ++half, v += 4) {
            const __m128i a = _mm_packs_epi32(v[0], v[1]);
            const __m128i b = _mm_packs_epi32(v[2], v[3]);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16 * half), _mm_packs_epi16(a, b));
        }
    }

    static float half_to_float(std::uint16_t h) { return qmix::half_to_float(h); }
    static std::uint16_t float_to_half(float f) { return qmix::float_to_half(f); }

    /// binary16 -> binary32 for four values, following core/binary16.hpp case by case:
    /// normal numbers rebias the exponent, infinities and NaNs (made quiet) get exponent
    /// 255, subnormals are normalised by one exact float subtraction.
    static floats load_halves(const std::uint16_t* p) {
        std::uint64_t raw;
        std::memcpy(&raw, p, sizeof raw);
        const __m128i h =
            _mm_unpacklo_epi16(_mm_cvtsi64_si128(std::int64_t(raw)), _mm_setzero_si128());
        const __m128i sign = _mm_slli_epi32(_mm_and_si128(h, _mm_set1_epi32(0x8000)), 16);
        const __m128i magnitude = _mm_and_si128(h, _mm_set1_epi32(0x7fff));
        const __m128i shifted = _mm_slli_epi32(magnitude, 13);
        const __m128i exponent = _mm_and_si128(shifted, _mm_set1_epi32(0x0f800000));
        const __m128i rebias = _mm_set1_epi32(112 << 23);
        __m128i out = _mm_add_epi32(shifted, rebias);
        const __m128i is_special = _mm_cmpeq_epi32(exponent, _mm_set1_epi32(0x0f800000));
        out = _mm_add_epi32(out, _mm_and_si128(is_special, rebias));
        const __m128i has_payload = _mm_andnot_si128(
            _mm_cmpeq_epi32(_mm_and_si128(h, _mm_set1_epi32(0x3ff)), _mm_setzero_si128()),
            is_special);
        out = _mm_or_si128(out, _mm_and_si128(has_payload, _mm_set1_epi32(0x00400000)));
        const __m128i is_small = _mm_cmpeq_epi32(exponent, _mm_setzero_si128());
        const __m128 normalised =
            _mm_sub_ps(_mm_castsi128_ps(_mm_add_epi32(out, _mm_set1_epi32(1 << 23))),
                       _mm_castsi128_ps(_mm_set1_epi32(113 << 23)));
        out = _mm_or_si128(_mm_and_si128(is_small, _mm_castps_si128(normalised)),
                           _mm_andnot_si128(is_small, out));
        return _mm_castsi128_ps(_mm_or_si128(out, sign));
    }

    /// binary32 -> binary16 for four values, rounding to nearest even like
    /// core/binary16.hpp: normal results round in integer arithmetic; subnormal results
    /// come from adding 0.5f, whose last mantissa bit weighs 2^-24 (the smallest binary16
    /// subnormal), so the float addition itself rounds to nearest even at the right place.
    static void store_halves(floats v, std::uint16_t* p) {
        const __m128i bits = _mm_castps_si128(v);
        const __m128i sign = _mm_and_si128(_mm_srli_epi32(bits, 16), _mm_set1_epi32(0x8000));
        const __m128i a = _mm_and_si128(bits, _mm_set1_epi32(0x7fffffff));
        const __m128i odd = _mm_and_si128(_mm_srli_epi32(a, 13), _mm_set1_epi32(1));
        const __m128i normal = _mm_srli_epi32(
            _mm_add_epi32(_mm_sub_epi32(a, _mm_set1_epi32(0x38000000 - 0xfff)), odd), 13);
        const __m128 half = _mm_set1_ps(0.5f);
        const __m128i subnormal = _mm_sub_epi32(
            _mm_castps_si128(_mm_add_ps(_mm_castsi128_ps(a), half)), _mm_castps_si128(half));
        const __m128i nan = _mm_or_si128(
            _mm_set1_epi32(0x7e00), _mm_and_si128(_mm_srli_epi32(a, 13), _mm_set1_epi32(0x3ff)));
        const __m128i is_normal = _mm_cmpgt_epi32(a, _mm_set1_epi32(0x38800000 - 1));
        const __m128i is_overflow = _mm_cmpgt_epi32(a, _mm_set1_epi32(0x477ff000 - 1));
        const __m128i is_nan = _mm_cmpgt_epi32(a, _mm_set1_epi32(0x7f800000));
        __m128i out = select(is_normal, normal, subnormal);
        out = select(is_overflow, _mm_set1_epi32(0x7c00), out);
        out = select(is_nan, nan, out);
        out = _mm_or_si128(out, sign);
        // Sign-extend the 16-bit results so that the signed pack keeps their bits.
        out = _mm_srai_epi32(_mm_slli_epi32(out, 16), 16);
        const __m128i packed = _mm_packs_epi32(out, out);
        const std::uint64_t raw = std::uint64_t(_mm_cvtsi128_si64(packed));
        std::memcpy(p, &raw, sizeof raw);
    }
    static floats add_exact_product(floats a, floats b, floats c) { return c + simd::mul(a, b); }
    static floats multiply_add(floats a, floats b, floats c) { return c + simd::mul(a, b); }

    // Dot-product engine: a block's 32 bytes as two 16-byte halves.
    struct bytes {
        __m128i low, high;
    };
    using part = __m128i;
    static constexpr std::size_t parts_per_vector = 1;

    static bytes load_bytes(const void* p) {
        const auto* q = static_cast<const __m128i*>(p);
        return {_mm_loadu_si128(q), _mm_loadu_si128(q + 1)};
    }
    static bytes nibbles(const std::uint8_t* qs) {
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
        const __m128i low_nibble = _mm_set1_epi8(0x0f);
        return {_mm_and_si128(packed, low_nibble),
                _mm_and_si128(_mm_srli_epi16(packed, 4), low_nibble)};
    }
    static bytes add_fifth_bits(bytes b, const std::uint8_t* qh) {
        // Byte j of the result repeats byte j / 8 of qh; testing bit j % 8 of it gives bit j.
        __m128i spread = _mm_cvtsi32_si128(std::int32_t(load_u32(qh)));
        spread = _mm_unpacklo_epi8(spread, spread);
        spread = _mm_unpacklo_epi16(spread, spread);
        const __m128i bit = _mm_set1_epi64x(std::int64_t(0x8040201008040201ull));
        const __m128i sixteen = _mm_set1_epi8(16);
        auto fifth = [&](__m128i repeated) {
            return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(repeated, bit), bit), sixteen);
        };
        return {_mm_or_si128(b.low, fifth(_mm_unpacklo_epi32(spread, spread))),
                _mm_or_si128(b.high, fifth(_mm_unpackhi_epi32(spread, spread)))};
    }
    static bytes sub_bytes(bytes b, std::int8_t k) {
        const __m128i kk = _mm_set1_epi8(k);
        return {_mm_sub_epi8(b.low, kk), _mm_sub_epi8(b.high, kk)};
    }
    static part dot_signed(bytes x, bytes s) {
        return _mm_add_epi32(dot16(x.low, s.low), dot16(x.high, s.high));
    }
    static part dot_offset(bytes u, std::int8_t k, bytes s) {
        return dot_signed(sub_bytes(u, k), s);
    }
    static part dot_unsigned(bytes u, bytes s) { return dot_signed(u, s); }
    static ints join(const part* p) { return p[0]; }

    template <class X, class Y>
    static floats step_constants(const X* x, const Y* y) {
        const float dx = half_at(x, 0), mx = half_at(x, 2), dy = half_at(y, 0), sy = half_at(y, 2);
        return _mm_setr_ps(dx * dy, mx * sy, 0.0f, 0.0f);
    }
    static floats step_scales(floats constants) { return _mm_shuffle_ps(constants, constants, 0); }
    static float sum_offsets(floats offsets) {
        return _mm_cvtss_f32(_mm_shuffle_ps(offsets, offsets, 1));
    }

  private:
    static std::uint32_t load_u32(const void* p) {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static float half_at(const void* p, std::size_t offset) {
        std::uint16_t h;
        std::memcpy(&h, static_cast<const unsigned char*>(p) + offset, sizeof h);
        return qmix::half_to_float(h);
    }
    /// Lane b of the result reduces vector b (four vectors of four).
    template <class Op>
    static floats transpose(const floats* v, Op op) {
        const __m128 a = op(_mm_unpacklo_ps(v[0], v[1]), _mm_unpackhi_ps(v[0], v[1]));
        const __m128 b = op(_mm_unpacklo_ps(v[2], v[3]), _mm_unpackhi_ps(v[2], v[3]));
        return op(_mm_movelh_ps(a, b), _mm_movehl_ps(b, a));
    }
    static __m128i select(__m128i mask, __m128i yes, __m128i no) {
        return _mm_or_si128(_mm_and_si128(mask, yes), _mm_andnot_si128(mask, no));
    }
    /// Sum of 16 signed byte products, as four int32 partial sums (exact for any bytes).
    static __m128i dot16(__m128i a, __m128i b) {
        const __m128i a_low = _mm_srai_epi16(_mm_unpacklo_epi8(a, a), 8);
        const __m128i a_high = _mm_srai_epi16(_mm_unpackhi_epi8(a, a), 8);
        const __m128i b_low = _mm_srai_epi16(_mm_unpacklo_epi8(b, b), 8);
        const __m128i b_high = _mm_srai_epi16(_mm_unpackhi_epi8(b, b), 8);
        return _mm_add_epi32(_mm_madd_epi16(a_low, b_low), _mm_madd_epi16(a_high, b_high));
    }
};
#endif  // __SSE2__

// ---------------------------------------------------------------------------------------
// AVX2 + F16C: 8 floats per vector, one block of bytes per ymm register.
#if defined(__AVX2__) && defined(__F16C__)
#define QMIX_ISA_AVX2 1
template <>
struct isa<xsimd::avx2> {
    using arch = xsimd::avx2;
    using floats = xsimd::batch<float, arch>;
    using ints = xsimd::batch<std::int32_t, arch>;
    using float_mask = xsimd::batch_bool<float, arch>;
    static constexpr std::string_view name = "avx2";

    static float reduce_max(floats v) {
        __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        m = _mm_max_ss(m, _mm_movehdup_ps(m));
        return _mm_cvtss_f32(m);
    }
    static std::uint32_t mask_bits(float_mask m) { return std::uint32_t(_mm256_movemask_ps(m)); }

    static floats transpose_max(const floats* v) {
        return transpose(v, [](__m256 a, __m256 b) { return _mm256_max_ps(a, b); });
    }
    static floats transpose_min(const floats* v) {
        return transpose(v, [](__m256 a, __m256 b) { return _mm256_min_ps(a, b); });
    }
    static floats transpose_add(const floats* v) {
        return transpose(v, [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); });
    }

    static std::uint32_t store_nibbles(const ints* levels, int top, std::uint8_t* qs) {
        // Narrow the 32 levels to bytes first (the packs interleave 128-bit lanes, the
        // permutation restores the order), then clamp, split and join in bytes.
        const __m256i words = _mm256_packs_epi16(_mm256_packs_epi32(levels[0], levels[1]),
                                                 _mm256_packs_epi32(levels[2], levels[3]));
        __m256i bytes =
            _mm256_permutevar8x32_epi32(words, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        bytes = _mm256_min_epu8(bytes, _mm256_set1_epi8(char(top)));
        const auto fifth = std::uint32_t(_mm256_movemask_epi8(_mm256_slli_epi16(bytes, 3)));
        const __m256i nibbles = _mm256_and_si256(bytes, _mm256_set1_epi8(0x0f));
        const __m128i packed =
            _mm_or_si128(_mm256_castsi256_si128(nibbles),
                         _mm_slli_epi16(_mm256_extracti128_si256(nibbles, 1), 4));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), packed);
        return fifth;
    }
    static ints widen_u8(const std::uint8_t* p) {
        return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    }
    static ints widen_i8(const std::int8_t* p) {
        return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    }
    static ints bit_lanes(std::uint32_t bits, int first) {
        const __m256i shifts =
            _mm256_add_epi32(_mm256_set1_epi32(first), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(std::int32_t(bits)), shifts),
                                _mm256_set1_epi32(1));
    }
    static void store_i8x32(const ints* v, std::int8_t* out) {
        // The packs work within 128-bit lanes; the final permutation restores the order.
        const __m256i a = _mm256_packs_epi32(v[0], v[1]);
        const __m256i b = _mm256_packs_epi32(v[2], v[3]);
        const __m256i packed = _mm256_permutevar8x32_epi32(
            _mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), packed);
    }

    // F16C converts exactly and, with the rounding given explicitly, to nearest even
    // whatever MXCSR says: the same results as core/binary16.hpp, NaN payloads included.
    static float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }
    static std::uint16_t float_to_half(float f) {
        return std::uint16_t(
            _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0));
    }
    static floats load_halves(const std::uint16_t* p) {
        return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static void store_halves(floats v, std::uint16_t* p) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p),
                         _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
    static floats add_exact_product(floats a, floats b, floats c) { return multiply_add(a, b, c); }
    static floats multiply_add(floats a, floats b, floats c) {
#if defined(__FMA__)
        return _mm256_fmadd_ps(a, b, c);
#else
        return c + simd::mul(a, b);
#endif
    }

    // Dot-product engine: one block per ymm register of bytes; a step is two blocks, whose
    // eight partial sums each are paired up by one horizontal add into one vector of ints
    // (lanes 0, 1, 4, 5 of the first block, 2, 3, 6, 7 of the second), so that a step
    // takes one conversion and one multiply-add in floats.
    using bytes = __m256i;
    using part = __m256i;
    static constexpr std::size_t parts_per_vector = 2;

    static bytes load_bytes(const void* p) {
        return _mm256_loadu_si256(static_cast<const __m256i*>(p));
    }
    static bytes nibbles(const std::uint8_t* qs) {
        // The 16 bytes in both halves (a broadcast load), the upper half shifted by 4.
        const __m256i both =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
        return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)),
                                _mm256_set1_epi8(0x0f));
    }
    static bytes add_fifth_bits(bytes b, const std::uint8_t* qh) {
        // Byte j gets byte j / 8 of qh, then keeps 16 if its bit j % 8 is set.
        std::uint32_t word;
        std::memcpy(&word, qh, sizeof word);
        const __m256i spread =
            _mm256_shuffle_epi8(_mm256_set1_epi32(std::int32_t(word)),
                                _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2,
                                                 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        const __m256i bit = _mm256_set1_epi64x(std::int64_t(0x8040201008040201ull));
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        return _mm256_or_si256(b, _mm256_and_si256(set, _mm256_set1_epi8(16)));
    }
    static bytes sub_bytes(bytes b, std::int8_t k) {
        return _mm256_sub_epi8(b, _mm256_set1_epi8(k));
    }
    static part dot_unsigned(bytes u, bytes s) {
        // Pairs of u8 * s8 products fit in int16 because u <= 127.
        return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
    }
    static part dot_signed(bytes x, bytes s) {
        // x * s = |s| * (x * sign(s)): |s| is exact as an unsigned byte even for -128, and
        // x * sign(s) cannot overflow because x is never -128.
        return dot_unsigned(_mm256_abs_epi8(s), _mm256_sign_epi8(x, s));
    }
    static part dot_offset(bytes u, std::int8_t k, bytes s) {
        // (u - k) * s as u * s - k * s, in the 16-bit pair sums of maddubs: a pair of u * s
        // lies within 2 * 31 * 128 = 7936 of zero, a pair of k * s within 2 * 16 * 128, so
        // neither saturates and their difference fits.
        const __m256i products = _mm256_sub_epi16(_mm256_maddubs_epi16(u, s),
                                                  _mm256_maddubs_epi16(_mm256_set1_epi8(k), s));
        return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
    }
    static ints join(const part* p) {
        return _mm256_hadd_epi32(p[0], p[1]);
    }

    /// The first two binary16 values of the two blocks of a step and of their partners
    /// (x: d and m, y: d and s), gathered in integer registers and converted at once:
    /// lanes 0 and 4 hold dx * dy of the two blocks, lanes 1 and 5 mx * sy.
    template <class X, class Y>
    static floats step_constants(const X* x, const Y* y) {
        const __m256 f = _mm256_cvtph_ps(step_words(x, y));
        return _mm256_mul_ps(f, _mm256_permute_ps(f, 0xee));
    }
    /// The first 32 bits of x[0], y[0], x[1], y[1], in this order.
    template <class X, class Y>
    static __m128i step_words(const X* x, const Y* y) {
        std::uint64_t first = load_u32(x) | std::uint64_t(load_u32(y)) << 32;
        std::uint64_t second = load_u32(x + 1) | std::uint64_t(load_u32(y + 1)) << 32;
        // Kept in integer registers: the compiler would otherwise assemble the words with
        // vector inserts and shifts, on the ports the rest of the step needs.
        in_integer_register(first);
        in_integer_register(second);
        return _mm_set_epi64x(std::int64_t(second), std::int64_t(first));
    }
    static floats step_scales(floats constants) {
        // join's lanes: 0, 1, 4, 5 belong to the first block, 2, 3, 6, 7 to the second.
        return _mm256_permutevar8x32_ps(constants, _mm256_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4));
    }
    static float sum_offsets(floats offsets) {
        const __m128 both =
            _mm_add_ps(_mm256_castps256_ps128(offsets), _mm256_extractf128_ps(offsets, 1));
        return _mm_cvtss_f32(_mm_movehdup_ps(both));
    }
    static std::uint32_t load_u32(const void* p) {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static void in_integer_register(std::uint64_t& v) {
#if defined(__GNUC__) || defined(__clang__)
        __asm__("" : "+r"(v));
#endif
    }

    /// Lane b of the result reduces vector b (eight vectors of eight): pairs of vectors
    /// are interleaved and reduced three times, halving the lanes each vector spans.
    template <class Op>
    static floats transpose(const floats* v, Op op) {
        __m256 pairs[4];
        for (int i = 0; i < 4; ++i) {
            pairs[i] = op(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                          _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]));
        }
        auto quads = [&](__m256 a, __m256 b) {
            const __m256d x = _mm256_castps_pd(a), y = _mm256_castps_pd(b);
            return op(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)),
                      _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
        };
        const __m256 first = quads(pairs[0], pairs[1]);
        const __m256 second = quads(pairs[2], pairs[3]);
        return op(_mm256_permute2f128_ps(first, second, 0x20),
                  _mm256_permute2f128_ps(first, second, 0x31));
    }
};
#endif  // __AVX2__ && __F16C__

// ---------------------------------------------------------------------------------------
// AVX-512: 16 floats per vector; the dot products run one block per ymm (VNNI does the
// multiply-add in one instruction) and join two blocks per zmm for the float part.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__F16C__)
#define QMIX_ISA_AVX512 1
template <>
struct isa<xsimd::avx512bw> {
    using arch = xsimd::avx512bw;
    using floats = xsimd::batch<float, arch>;
    using ints = xsimd::batch<std::int32_t, arch>;
    using float_mask = xsimd::batch_bool<float, arch>;
    static constexpr std::string_view name = "avx512";

    static float reduce_max(floats v) {
        const __m256 m = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
        return isa_avx2_reduce(m, [](__m128 a, __m128 b) { return _mm_max_ps(a, b); });
    }
    static std::uint32_t mask_bits(float_mask m) { return std::uint32_t(m.data); }

    static floats transpose_max(const floats* v) {
        return transpose(v, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
    }
    static floats transpose_min(const floats* v) {
        return transpose(v, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); });
    }
    static floats transpose_add(const floats* v) {
        return transpose(v, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); });
    }

    static std::uint32_t store_nibbles(const ints* levels, int top, std::uint8_t* qs) {
        const __m512i limit = _mm512_set1_epi32(top);
        const __m512i low = _mm512_min_epi32(levels[0], limit);
        const __m512i high = _mm512_min_epi32(levels[1], limit);
        const __m512i nibble = _mm512_set1_epi32(0x0f);
        const __m512i packed = _mm512_or_si512(
            _mm512_and_si512(low, nibble), _mm512_slli_epi32(_mm512_and_si512(high, nibble), 4));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(qs), _mm512_cvtepi32_epi8(packed));
        const __m512i fifth = _mm512_set1_epi32(16);
        return std::uint32_t(_mm512_test_epi32_mask(low, fifth)) |
               std::uint32_t(_mm512_test_epi32_mask(high, fifth)) << 16;
    }
    static ints widen_u8(const std::uint8_t* p) {
        return _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static ints widen_i8(const std::int8_t* p) {
        return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    }
    static ints bit_lanes(std::uint32_t bits, int first) {
        const __m512i shifts = _mm512_add_epi32(
            _mm512_set1_epi32(first),
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        return _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(std::int32_t(bits)), shifts),
                                _mm512_set1_epi32(1));
    }
    static void store_i8x32(const ints* v, std::int8_t* out) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm512_cvtepi32_epi8(v[0]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm512_cvtepi32_epi8(v[1]));
    }

    static float half_to_float(std::uint16_t h) { return _cvtsh_ss(h); }
    static std::uint16_t float_to_half(float f) {
        return std::uint16_t(
            _mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0));
    }
    static floats load_halves(const std::uint16_t* p) {
        return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    }
    static void store_halves(floats v, std::uint16_t* p) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p),
                            _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
    static floats add_exact_product(floats a, floats b, floats c) {
        return _mm512_fmadd_ps(a, b, c);
    }
    static floats multiply_add(floats a, floats b, floats c) { return _mm512_fmadd_ps(a, b, c); }

    using bytes = __m256i;
    using part = __m256i;
    static constexpr std::size_t parts_per_vector = 2;

    static bytes load_bytes(const void* p) {
        return _mm256_loadu_si256(static_cast<const __m256i*>(p));
    }
    static bytes nibbles(const std::uint8_t* qs) {
        // The 16 bytes in both halves (a broadcast load), the upper half shifted by 4.
        const __m256i both =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
        return _mm256_and_si256(_mm256_srlv_epi64(both, _mm256_setr_epi64x(0, 0, 4, 4)),
                                _mm256_set1_epi8(0x0f));
    }
    static bytes add_fifth_bits(bytes b, const std::uint8_t* qh) {
        // A mask register holds one bit per byte: exactly the layout of qh.
        std::uint32_t word;
        std::memcpy(&word, qh, sizeof word);
        return _mm256_or_si256(b, _mm256_maskz_mov_epi8(__mmask32(word), _mm256_set1_epi8(16)));
    }
    static bytes sub_bytes(bytes b, std::int8_t k) {
        return _mm256_sub_epi8(b, _mm256_set1_epi8(k));
    }
    static part dot_unsigned(bytes u, bytes s) {
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
    }
    static part dot_signed(bytes x, bytes s) {
        // As for AVX2: x * s = |s| * (x * sign(s)), exact because x is never -128.
        return dot_unsigned(_mm256_abs_epi8(s), _mm256_sign_epi8(x, s));
    }
    static part dot_offset(bytes u, std::int8_t k, bytes s) {
        // (u - k) * s summed as u * s - k * s: two unsigned-by-signed dot products.
        return _mm256_sub_epi32(dot_unsigned(u, s), dot_unsigned(_mm256_set1_epi8(k), s));
    }
    static ints join(const part* p) {
        return _mm512_inserti64x4(_mm512_castsi256_si512(p[0]), p[1], 1);
    }

    /// The first two binary16 values of the two blocks of a step and of their partners,
    /// converted at once: lanes 0 and 4 hold dx * dy, lanes 1 and 5 mx * sy.
    template <class X, class Y>
    static floats step_constants(const X* x, const Y* y) {
        // Gathered in integer registers, as for AVX2.
        const __m128i words = isa<xsimd::avx2>::step_words(x, y);
        const __m256 f = _mm256_cvtph_ps(words);
        return _mm512_zextps256_ps512(_mm256_mul_ps(f, _mm256_permute_ps(f, 0xee)));
    }
    static floats step_scales(floats constants) {
        return _mm512_permutexvar_ps(
            _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4), constants);
    }
    static float sum_offsets(floats offsets) {
        alignas(64) float lane[16];
        offsets.store_aligned(lane);
        return lane[1] + lane[5];
    }

  private:
    /// Lane b of the result reduces vector b (sixteen vectors of sixteen). Within 128-bit
    /// lanes as on AVX2: pairs of vectors interleaved and reduced, then pairs of pairs, so
    /// that each 128-bit lane of quads[j] holds partial results of vectors 4j..4j+3; then
    /// the 128-bit lanes themselves are paired up twice.
    template <class Op>
    static floats transpose(const floats* v, Op op) {
        __m512 pairs[8];
        for (int i = 0; i < 8; ++i) {
            pairs[i] = op(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]),
                          _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
        }
        __m512 quads[4];
        for (int j = 0; j < 4; ++j) {
            const __m512d x = _mm512_castps_pd(pairs[2 * j]);
            const __m512d y = _mm512_castps_pd(pairs[2 * j + 1]);
            quads[j] = op(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                          _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
        }
        // 0x88 picks 128-bit lanes 0 and 2 of each operand, 0xdd lanes 1 and 3.
        const __m512 halves_low = op(_mm512_shuffle_f32x4(quads[0], quads[1], 0x88),
                                     _mm512_shuffle_f32x4(quads[0], quads[1], 0xdd));
        const __m512 halves_high = op(_mm512_shuffle_f32x4(quads[2], quads[3], 0x88),
                                      _mm512_shuffle_f32x4(quads[2], quads[3], 0xdd));
        return op(_mm512_shuffle_f32x4(halves_low, halves_high, 0x88),
                  _mm512_shuffle_f32x4(halves_low, halves_high, 0xdd));
    }
    template <class Op>
    static float isa_avx2_reduce(__m256 v, Op op) {
        __m128 m = op(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        m = op(m, _mm_movehl_ps(m, m));
        m = op(m, _mm_movehdup_ps(m));
        return _mm_cvtss_f32(m);
    }
};
#endif  // AVX-512

QMIX_ABI_END
}  // namespace qmix::kernels

#endif  // QMIX_ARCH_X86_64
