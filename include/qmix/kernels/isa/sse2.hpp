// SPDX-License-Identifier: MIT
#pragma once

// x86-64 SSE2, the baseline every x86-64 CPU runs: isa<xsimd::sse2>, defined only in
// translation units compiled with SSE2. See kernels/isa.hpp for what each primitive promises.

#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/kernels/isa/base.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

#if defined(QMIX_ARCH_X86_64)
#include <immintrin.h>

namespace qmix::kernels {
QMIX_ABI_BEGIN

// ---------------------------------------------------------------------------------------
// SSE2: no byte shuffle, no maddubs, no F16C. Bytes are widened to 16 bits for the dot
// products, binary16 is converted in integer arithmetic (exactly as core/binary16.hpp).
#if defined(__SSE2__)
#define QMIX_ISA_SSE2 1
template <>
struct isa<xsimd::sse2> : isa_base<xsimd::sse2> {
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
        return transpose_by(v, [](__m128 a, __m128 b) { return _mm_max_ps(a, b); });
    }
    static floats transpose_min(const floats* v) {
        return transpose_by(v, [](__m128 a, __m128 b) { return _mm_min_ps(a, b); });
    }
    static floats transpose_add(const floats* v) {
        return transpose_by(v, [](__m128 a, __m128 b) { return _mm_add_ps(a, b); });
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
        __m128i out = blend(is_normal, normal, subnormal);
        out = blend(is_overflow, _mm_set1_epi32(0x7c00), out);
        out = blend(is_nan, nan, out);
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
    static constexpr std::size_t blocks_per_step = 1;

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

    template <bool /*with_offset*/, class X, class Y>
    static floats step_constants(const X* x, const Y* y) {
        const float dx = half_at(x, 0), mx = half_at(x, 2), dy = half_at(y, 0), sy = half_at(y, 2);
        return _mm_setr_ps(dx * dy, mx * sy, 0.0f, 0.0f);
    }
    static floats step_scales(floats constants, int /*vector*/) {
        return _mm_shuffle_ps(constants, constants, 0);
    }
    static float sum_offsets(floats offsets) {
        return _mm_cvtss_f32(_mm_shuffle_ps(offsets, offsets, 1));
    }

    // The batch primitives of the k-quant and iq4 kernels (isa_base's, where SSE2 does
    // better or where only the instruction set can say what is exact).
    static floats div(floats a, floats b) { return a / b; }
    static floats sqrt(floats a) { return xsimd::sqrt(a); }
    static floats widen(const std::int8_t* p) {
        std::int32_t word;
        std::memcpy(&word, p, sizeof word);
        // Each byte copied into the top of its 32-bit lane, then shifted down with sign.
        __m128i v = _mm_cvtsi32_si128(word);
        v = _mm_unpacklo_epi8(v, v);
        v = _mm_unpacklo_epi16(v, v);
        return floats(_mm_cvtepi32_ps(_mm_srai_epi32(v, 24)));
    }
    QMIX_FORCE_INLINE static void transpose(const float* const* rows, floats* out) {
        __m128 r0 = _mm_loadu_ps(rows[0]);
        __m128 r1 = _mm_loadu_ps(rows[1]);
        __m128 r2 = _mm_loadu_ps(rows[2]);
        __m128 r3 = _mm_loadu_ps(rows[3]);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        out[0] = r0;
        out[1] = r1;
        out[2] = r2;
        out[3] = r3;
    }
    static void store_bytes(std::uint8_t* p, ints v) {
        const __m128i words = _mm_packs_epi32(v, v);
        const std::int32_t bytes = _mm_cvtsi128_si32(_mm_packus_epi16(words, words));
        std::memcpy(p, &bytes, sizeof bytes);
    }
    /// Saturating narrowing keeps the order of the values, so clamping after it clamps the
    /// exact sums.
    static void store_biased_bytes(std::uint8_t* out, const ints* v, int bias, int top) {
        const __m128i biases = _mm_set1_epi16(std::int16_t(bias));
        const __m128i low = _mm_adds_epi16(_mm_packs_epi32(v[0], v[1]), biases);
        const __m128i high = _mm_adds_epi16(_mm_packs_epi32(v[2], v[3]), biases);
        const __m128i all = _mm_min_epu8(_mm_packus_epi16(low, high), _mm_set1_epi8(char(top)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out), all);
    }

  private:
    static float half_at(const void* p, std::size_t offset) {
        std::uint16_t h;
        std::memcpy(&h, static_cast<const unsigned char*>(p) + offset, sizeof h);
        return qmix::half_to_float(h);
    }
    /// Lane b of the result reduces vector b (four vectors of four).
    template <class Op>
    static floats transpose_by(const floats* v, Op op) {
        const __m128 a = op(_mm_unpacklo_ps(v[0], v[1]), _mm_unpackhi_ps(v[0], v[1]));
        const __m128 b = op(_mm_unpacklo_ps(v[2], v[3]), _mm_unpackhi_ps(v[2], v[3]));
        return op(_mm_movelh_ps(a, b), _mm_movehl_ps(b, a));
    }
    static __m128i blend(__m128i mask, __m128i yes, __m128i no) {
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

  public:
    // ---- bf16 (kernels/bf16.hpp) ---------------------------------------------------------
    static floats load_bf16(const std::uint16_t* p) {
        const __m128i halves = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return floats(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), halves)));
    }
    static void store_u16(ints v, std::uint16_t* p) {
        // Sign-extend the 16-bit results so that the signed pack keeps their bits.
        const __m128i extended = _mm_srai_epi32(_mm_slli_epi32(v, 16), 16);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi32(extended, extended));
    }
};
#endif  // __SSE2__

QMIX_ABI_END
}  // namespace qmix::kernels

#endif  // QMIX_ARCH_X86_64
