// SPDX-License-Identifier: MIT
#pragma once

// x86-64 AVX2 + FMA + F16C + BMI2 (Haswell, Zen and later): isa<xsimd::avx2>, defined only
// in translation units compiled for it. FMA only where a fused multiply-add gives the bytes
// of the separate steps (add_exact_product). See kernels/isa.hpp for what each primitive
// promises.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/config.hpp"
#include "qmix/formats/bf16.hpp"
#include "qmix/kernels/isa/base.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

#if defined(QMIX_ARCH_X86_64)
#include <immintrin.h>

namespace qmix::kernels {
QMIX_ABI_BEGIN

// ---------------------------------------------------------------------------------------
// AVX2 + F16C: 8 floats per vector, one block of bytes per ymm register.
#if defined(__AVX2__) && defined(__F16C__)
#define QMIX_ISA_AVX2 1
template <>
struct isa<xsimd::avx2> : isa_base<xsimd::avx2> {
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
        return transpose_by(v, [](__m256 a, __m256 b) { return _mm256_max_ps(a, b); });
    }
    static floats transpose_min(const floats* v) {
        return transpose_by(v, [](__m256 a, __m256 b) { return _mm256_min_ps(a, b); });
    }
    static floats transpose_add(const floats* v) {
        return transpose_by(v, [](__m256 a, __m256 b) { return _mm256_add_ps(a, b); });
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

    // Dot-product engine: one block per ymm register of bytes, its eight partial sums
    // converted and multiplied by the block's scale on their own (no horizontal add); a
    // step is four blocks whose binary16 scales are gathered in integer registers and
    // converted together, each block's then spread by an in-lane shuffle. (Zen 3: 2.5 TSC
    // ticks a q8_0 block, against 3.2 with two blocks joined by vphaddd and their scales
    // spread by vpermps.)
    using bytes = __m256i;
    using part = __m256i;
    static constexpr std::size_t parts_per_vector = 1;
    static constexpr std::size_t blocks_per_step = 4;

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
    /// Byte j is 0xff where bit j of the little-endian word at qh is set, else 0: byte j
    /// gets byte j / 8 of the word, then is compared under the mask of its bit j % 8.
    static __m256i bit_bytes(const std::uint8_t* qh) {
        std::uint32_t word;
        std::memcpy(&word, qh, sizeof word);
        const __m256i spread =
            _mm256_shuffle_epi8(_mm256_set1_epi32(std::int32_t(word)),
                                _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2,
                                                 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        const __m256i bit = _mm256_set1_epi64x(std::int64_t(0x8040201008040201ull));
        return _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
    }
    static bytes add_fifth_bits(bytes b, const std::uint8_t* qh) {
        return _mm256_or_si256(b, _mm256_and_si256(bit_bytes(qh), _mm256_set1_epi8(16)));
    }
    /// The 32-value dot product of q5_0 levels (nibble + 16 * fifth bit - 16) with s, as
    /// nibble * s - (16 where the fifth bit is clear) * s in maddubs' 16-bit pair sums (each
    /// within 2 * 16 * 128 of zero, so neither saturates): one operation fewer than
    /// add_fifth_bits and dot_offset.
    static constexpr bool has_dot_fifth_offset = true;
    static part dot_fifth_offset(bytes nibble, const std::uint8_t* qh, bytes s) {
        const __m256i offset = _mm256_andnot_si256(bit_bytes(qh), _mm256_set1_epi8(16));
        const __m256i products =
            _mm256_sub_epi16(_mm256_maddubs_epi16(nibble, s), _mm256_maddubs_epi16(offset, s));
        return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
    }
    static bytes sub_bytes(bytes b, std::int8_t k) {
        return _mm256_sub_epi8(b, _mm256_set1_epi8(k));
    }
    // Where the translation unit is compiled for AVX-512 VNNI (the avx512 level runs
    // some of these dot products: isa/avx512.hpp's borrows_dot), vpdpbusd sums the four
    // u8 * s8 products of each 32-bit lane in one instruction; the sums are the same.
    static part dot_unsigned(bytes u, bytes s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
        // Pairs of u8 * s8 products fit in int16 because u <= 127.
        return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
    }
    static part dot_signed(bytes x, bytes s) {
        // x * s = |s| * (x * sign(s)): |s| is exact as an unsigned byte even for -128, and
        // x * sign(s) cannot overflow because x is never -128.
        return dot_unsigned(_mm256_abs_epi8(s), _mm256_sign_epi8(x, s));
    }
    static part dot_offset(bytes u, std::int8_t k, bytes s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
        // Two vpdpbusd: faster than one on u - k made signed (dot_signed) on Zen 4.
        return _mm256_sub_epi32(dot_unsigned(u, s), dot_unsigned(_mm256_set1_epi8(k), s));
#else
        // (u - k) * s as u * s - k * s, in the 16-bit pair sums of maddubs: a pair of u * s
        // lies within 2 * 31 * 128 = 7936 of zero, a pair of k * s within 2 * 16 * 128, so
        // neither saturates and their difference fits.
        const __m256i products = _mm256_sub_epi16(_mm256_maddubs_epi16(u, s),
                                                  _mm256_maddubs_epi16(_mm256_set1_epi8(k), s));
        return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
#endif
    }
    static ints join(const part* p) {
        return p[0];
    }

    /// The binary16 fields of the four blocks of a step and of their partners (x: d and m,
    /// y: d and s), converted at once: lane k holds dx * dy of block k, lane 4 + k mx * sy
    /// (dx * dy again where the format has no offset).
    template <bool with_offset, class X, class Y>
    static floats step_constants(const X* x, const Y* y) {
        if constexpr (with_offset) {
            return _mm256_mul_ps(
                _mm256_cvtph_ps(_mm_set_epi64x(four_halves(x, 2), four_halves(x, 0))),
                _mm256_cvtph_ps(_mm_set_epi64x(four_halves(y, 2), four_halves(y, 0))));
        } else {
            const __m128 d = _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi64_si128(four_halves(x, 0))),
                                        _mm_cvtph_ps(_mm_cvtsi64_si128(four_halves(y, 0))));
            return _mm256_set_m128(d, d);
        }
    }
    /// The binary16 values at byte `offset` of the blocks b[0] to b[3], in this order. Kept
    /// in integer registers: the compiler would otherwise assemble them with vector inserts,
    /// on the ports the rest of the step needs.
    template <class Block>
    static std::int64_t four_halves(const Block* b, std::size_t offset) {
        std::uint64_t v = 0;
        for (int k = 0; k < 4; ++k) {
            std::uint16_t h;
            std::memcpy(&h, reinterpret_cast<const unsigned char*>(b + k) + offset, sizeof h);
            v |= std::uint64_t(h) << (16 * k);
        }
        in_integer_register(v);
        return std::int64_t(v);
    }
    /// Block k's dx * dy in every lane.
    static floats step_scales(floats constants, int k) {
        const __m256 low = _mm256_permute2f128_ps(constants, constants, 0x00);
        switch (k) {
            case 0:
                return _mm256_permute_ps(low, 0x00);
            case 1:
                return _mm256_permute_ps(low, 0x55);
            case 2:
                return _mm256_permute_ps(low, 0xaa);
            default:
                return _mm256_permute_ps(low, 0xff);
        }
    }
    static float sum_offsets(floats offsets) {
        const __m128 high = _mm256_extractf128_ps(offsets, 1);
        const __m128 pairs = _mm_add_ps(high, _mm_movehl_ps(high, high));
        return _mm_cvtss_f32(_mm_add_ss(pairs, _mm_movehdup_ps(pairs)));
    }
    static void in_integer_register(std::uint64_t& v) {
#if defined(__GNUC__) || defined(__clang__)
        __asm__("" : "+r"(v));
#endif
    }

    /// Lane b of the result reduces vector b (eight vectors of eight): pairs of vectors
    /// are interleaved and reduced three times, halving the lanes each vector spans.
    template <class Op>
    static floats transpose_by(const floats* v, Op op) {
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

    // The batch primitives of the k-quant and iq4 kernels (isa_base's, where AVX2 does
    // better or where only the instruction set can say what is exact).
    /// Four against two measured on Zen: up to 6 percent on q2_k q3_k q6_k.
    static constexpr int search_batches = 4;
    /// Two against four on Zen 3: q4_k quantize 148 against 119 M values/s, q2_k 159
    /// against 150 (ggml's data; at four the trial loop's sums and levels spill).
    static constexpr int offset_search_batches = 2;
    static constexpr bool has_byte_shuffle = true;
    static bytes look_up(const std::int8_t* table, bytes indices) {
        const __m256i both =
            _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(table)));
        return _mm256_shuffle_epi8(both, indices);
    }
    static floats div(floats a, floats b) {
        return a / b;
    }
    static floats sqrt(floats a) {
        return xsimd::sqrt(a);
    }
    /// vroundps, then the clamps as float minimum and maximum (kquants::batch_ops): the
    /// magic addition's two additions and integer clamps competed with the searches'
    /// sums for the addition pipes (Zen 3: q4_k quantize +10%, q2_k +9%, q6_k +6%).
    static constexpr bool rounds_in_one = true;
    static floats round_even(floats v) {
        return _mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }
    static floats widen(const std::int8_t* p) {
        const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
        return floats(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes)));
    }
    QMIX_FORCE_INLINE static void transpose(const float* const* rows, floats* out) {
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
    static void store_bytes(std::uint8_t* p, ints v) {
        const __m256i all = v;
        const __m128i words =
            _mm_packus_epi32(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(words, words));
    }
    /// Saturating narrowing keeps the order of the values, so clamping after it clamps the
    /// exact sums.
    static void store_biased_bytes(std::uint8_t* out, const ints* v, int bias, int top) {
        const __m256i biases = _mm256_set1_epi16(std::int16_t(bias));
        const __m256i low = _mm256_adds_epi16(_mm256_packs_epi32(v[0], v[1]), biases);
        const __m256i high = _mm256_adds_epi16(_mm256_packs_epi32(v[2], v[3]), biases);
        // packs works within 128-bit halves: 32-bit groups come out as 0 2 4 6 1 3 5 7.
        __m256i all = _mm256_packus_epi16(low, high);
        all = _mm256_permutevar8x32_epi32(all, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        all = _mm256_min_epu8(all, _mm256_set1_epi8(char(top)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), all);
    }

    // ---- dot-product drivers (the avx512 level uses them too) ------------------------------
    using kquant_dots = kquants::avx2_dot<arch>;
    /// The k-quant driver, which reduces eight blocks at once.
    using iq4_xs_dots = kquants::avx2_dot<arch>;

#if defined(__FMA__)
    static constexpr bool has_dot_f16 = true;
    /// f16's dot product (generic.hpp's dot_f16; also the avx512 level's where 512-bit
    /// operations run as two halves): the conversion of the halves is what bounds it, and
    /// converting 16 halves at once (vcvtph2ps into a zmm) runs at about two thirds of the
    /// rate of two 8-wide conversions on Zen 4 (18 against 27 G values/s). Eight
    /// accumulators hide the latency of the fused multiply-add (exact: the products of two
    /// binary16 values are exact in binary32); each stretch of `chunk` values is widened to
    /// double and added lane by lane, with one horizontal sum per row (a horizontal sum
    /// per stretch cost 4% of a 65536-value row).
    static float dot_f16(const std::uint16_t* x, const std::uint16_t* y, std::int64_t n) {
        constexpr std::int64_t chunk = 4096;
        const auto halves = [](const std::uint16_t* p) {
            return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
        };
        __m256d wide[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
        std::int64_t i = 0;
        while (i + 8 <= n) {
            const std::int64_t end = std::min(n, i + chunk);
            __m256 acc[8];
            for (auto& a : acc) a = _mm256_setzero_ps();
            for (; i + 64 <= end; i += 64) {
                for (int k = 0; k < 8; ++k) {
                    acc[k] = _mm256_fmadd_ps(halves(x + i + 8 * k), halves(y + i + 8 * k), acc[k]);
                }
            }
            for (; i + 8 <= end; i += 8)
                acc[0] = _mm256_fmadd_ps(halves(x + i), halves(y + i), acc[0]);
            const __m256 s = _mm256_add_ps(
                _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])),
                _mm256_add_ps(_mm256_add_ps(acc[4], acc[5]), _mm256_add_ps(acc[6], acc[7])));
            wide[0] = _mm256_add_pd(wide[0], _mm256_cvtps_pd(_mm256_castps256_ps128(s)));
            wide[1] = _mm256_add_pd(wide[1], _mm256_cvtps_pd(_mm256_extractf128_ps(s, 1)));
        }
        const __m256d w = _mm256_add_pd(wide[0], wide[1]);
        __m128d h = _mm_add_pd(_mm256_castpd256_pd128(w), _mm256_extractf128_pd(w, 1));
        double total = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
        for (; i < n; ++i) total += double(half_to_float(x[i]) * half_to_float(y[i]));
        return float(total);
    }
#endif

    // ---- bf16 (kernels/bf16.hpp) ---------------------------------------------------------
    static floats load_bf16(const std::uint16_t* p) {
        const __m128i halves = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return floats(_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(halves), 16)));
    }
    static void store_u16(ints v, std::uint16_t* p) {
        const __m256i all = v;
        _mm_storeu_si128(
            reinterpret_cast<__m128i*>(p),
            _mm_packus_epi32(_mm256_castsi256_si128(all), _mm256_extracti128_si256(all, 1)));
    }
    /// Works on 16-bit halves: the upper halves h and the lower halves l of 16 values are
    /// gathered into one register each, and h rounds up exactly when l - (1 - (h & 1)),
    /// saturating at 0, is at least 0x8000. A step whose values include an infinity or NaN
    /// (exponent all ones) is narrowed by the scalar code instead.
    static std::int64_t narrow_bf16(const float* src, std::uint16_t* out, std::int64_t n) {
        std::int64_t i = 0;
        // Stores that do not straddle cache lines: the scalar code takes values until
        // out is 32-byte aligned.
        while (i < n && i < 16 && (reinterpret_cast<std::uintptr_t>(out + i) & 31) != 0) {
            out[i] = float_to_bf16(src[i]);
            ++i;
        }
        // Per 128-bit lane: the upper halves of four values, then their lower halves.
        const __m256i split =
            _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10,
                             11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13);
        const __m256i one = _mm256_set1_epi16(1);
        const __m256i exponent = _mm256_set1_epi16(0x7f80);
        const __m256i zero = _mm256_setzero_si256();
        // 64 values a step, as four groups of 16, each stage for all four groups before
        // the next (Zen 4: 16.3 G values/s against 15.5 group by group, 13.2 for the
        // former 32-value step with a test per step and five operations to round).
        constexpr int groups = 4;
        for (; i + 16 * groups <= n; i += 16 * groups) {
            __m256i h[groups], l[groups];
            for (int g = 0; g < groups; ++g) {
                const float* p = src + i + 16 * g;
                const __m256i a = _mm256_shuffle_epi8(
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), split);
                const __m256i b = _mm256_shuffle_epi8(
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 8)), split);
                // Upper halves h and lower halves l, in the order 0-3 8-11 4-7 12-15.
                h[g] = _mm256_unpacklo_epi64(a, b);
                l[g] = _mm256_unpackhi_epi64(a, b);
            }
            // An exponent of all ones (infinity, NaN) anywhere in the step: the largest
            // exponent field of the step is all ones.
            __m256i seen = _mm256_and_si256(h[0], exponent);
            for (int g = 1; g < groups; ++g)
                seen = _mm256_max_epu16(seen, _mm256_and_si256(h[g], exponent));
            // h rounds up when l > 0x8000, or l == 0x8000 and h is odd: exactly when
            // l minus (1 when h is even), saturating at 0, has its top bit set.
            for (int g = 0; g < groups; ++g)
                l[g] = _mm256_subs_epu16(l[g], _mm256_andnot_si256(h[g], one));
            __m256i rounded[groups];
            for (int g = 0; g < groups; ++g) {
                rounded[g] = _mm256_permute4x64_epi64(
                    _mm256_sub_epi16(h[g], _mm256_cmpgt_epi16(zero, l[g])), 0xd8);
                // Computed before the test, not moved past it by the compiler (which
                // with GCC 12 spills: 2-3 percent).
                __asm__("" : "+x"(rounded[g]));
            }
            if (_mm256_movemask_epi8(_mm256_cmpeq_epi16(seen, exponent)) != 0) {
                for (std::int64_t k = i; k < i + 16 * groups; ++k) out[k] = float_to_bf16(src[k]);
                continue;
            }
            for (int g = 0; g < groups; ++g)
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 16 * g), rounded[g]);
        }
        return i;
    }
};
#endif  // __AVX2__ && __F16C__

QMIX_ABI_END
}  // namespace qmix::kernels

#endif  // QMIX_ARCH_X86_64
