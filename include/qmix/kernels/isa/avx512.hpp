// SPDX-License-Identifier: MIT
#pragma once

// x86-64 AVX-512 F/BW/VL/DQ/CD + VNNI (Ice Lake, Zen 4 and later): isa<xsimd::avx512bw>,
// defined only in translation units compiled for it. It borrows isa<xsimd::avx2>'s
// in_integer_register. See kernels/isa.hpp for what each primitive promises.

#include <cstdint>
#include <cstring>
#include <string_view>

#include "qmix/core/config.hpp"
#include "qmix/formats/bf16.hpp"
#include "qmix/kernels/isa/avx2.hpp"
#include "qmix/kernels/isa/base.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

#if defined(QMIX_ARCH_X86_64)
#include <immintrin.h>

namespace qmix::kernels {
QMIX_ABI_BEGIN

// ---------------------------------------------------------------------------------------
// AVX-512: 16 floats per vector; the dot products run one block per ymm (VNNI does the
// multiply-add in one instruction) and join two blocks per zmm for the float part.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512VNNI__) && defined(__F16C__)
#define QMIX_ISA_AVX512 1
template <>
struct isa<xsimd::avx512bw> : isa_base<xsimd::avx512bw> {
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
    /// vrndscaleps, as avx2's vroundps: one instruction instead of the magic addition's two
    /// for every level of the k-quant searches (faster on Zen 4 for every k-quant
    /// quantizer: BENCHMARKS.md's side-by-side runs).
    static constexpr bool rounds_in_one = true;
    static floats round_even(floats v) {
        return _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    }

    static floats transpose_max(const floats* v) {
        return transpose_by(v, [](__m512 a, __m512 b) { return _mm512_max_ps(a, b); });
    }
    static floats transpose_min(const floats* v) {
        return transpose_by(v, [](__m512 a, __m512 b) { return _mm512_min_ps(a, b); });
    }
    static floats transpose_add(const floats* v) {
        return transpose_by(v, [](__m512 a, __m512 b) { return _mm512_add_ps(a, b); });
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

    // Dot-product engine: one block per ymm register of bytes, as for AVX2; a step is four
    // blocks, each pair's partial sums paired up by one horizontal add (lanes 0, 1, 4, 5 of
    // the first block, 2, 3, 6, 7 of the second) and the two pairs joined into one zmm, so
    // that four blocks take one conversion and one multiply-add in floats.
    using bytes = __m256i;
    using part = __m256i;
    static constexpr std::size_t parts_per_vector = 4;
    static constexpr std::size_t blocks_per_step = 4;

    static bytes load_bytes(const void* p) { return isa<xsimd::avx2>::load_bytes(p); }
    static bytes nibbles(const std::uint8_t* qs) { return isa<xsimd::avx2>::nibbles(qs); }
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
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_hadd_epi32(p[0], p[1])),
                                  _mm256_hadd_epi32(p[2], p[3]), 1);
    }

    /// The first two binary16 values of the four blocks of a step and of their partners,
    /// converted at once: lanes 4 k hold dx * dy of block k, lanes 4 k + 1 mx * sy.
    template <bool /*with_offset*/, class X, class Y>
    static floats step_constants(const X* x, const Y* y) {
        const __m256i words = _mm256_set_m128i(step_words(x + 2, y + 2), step_words(x, y));
        const __m512 f = _mm512_cvtph_ps(words);
        return _mm512_mul_ps(f, _mm512_permute_ps(f, 0xee));
    }
    /// The first 32 bits of x[0], y[0], x[1], y[1], in this order, gathered in integer
    /// registers (the compiler would otherwise assemble them with vector inserts and
    /// shifts, on the ports the rest of the step needs).
    template <class X, class Y>
    static __m128i step_words(const X* x, const Y* y) {
        std::uint64_t first = load_u32(x) | std::uint64_t(load_u32(y)) << 32;
        std::uint64_t second = load_u32(x + 1) | std::uint64_t(load_u32(y + 1)) << 32;
        isa<xsimd::avx2>::in_integer_register(first);
        isa<xsimd::avx2>::in_integer_register(second);
        return _mm_set_epi64x(std::int64_t(second), std::int64_t(first));
    }
    static floats step_scales(floats constants, int /*vector*/) {
        // join's lanes: 0, 1, 4, 5 are block 0's, 2, 3, 6, 7 block 1's, 8, 9, 12, 13 block
        // 2's, 10, 11, 14, 15 block 3's.
        return _mm512_permutexvar_ps(
            _mm512_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4, 8, 8, 12, 12, 8, 8, 12, 12), constants);
    }
    static float sum_offsets(floats offsets) {
        alignas(64) float lane[16];
        offsets.store_aligned(lane);
        return (lane[1] + lane[5]) + (lane[9] + lane[13]);
    }

    // The batch primitives of the k-quant and iq4 kernels (isa_base's, where AVX-512 does
    // better or where only the instruction set can say what is exact). The intrinsics are
    // xsimd's instructions spelled with an all-ones zeroing mask: GCC 12's unmasked
    // intrinsics start from an "undefined" vector that trips -Wmaybe-uninitialized in
    // every includer. The compiler emits the unmasked instruction.
    /// Four against two measured on Zen: 10 to 13 percent on every k-quant.
    static constexpr int search_batches = 4;
    static constexpr int offset_search_batches = 4;
    static constexpr bool has_byte_shuffle = true;
    static bytes look_up(const std::int8_t* table, bytes indices) {
        return isa<xsimd::avx2>::look_up(table, indices);
    }
    static floats div(floats a, floats b) { return a / b; }
    static floats sqrt(floats a) { return floats(_mm512_maskz_sqrt_ps(0xFFFF, a)); }
    static ints min(ints a, ints b) { return ints(_mm512_maskz_min_epi32(0xFFFF, a, b)); }
    static ints max(ints a, ints b) { return ints(_mm512_maskz_max_epi32(0xFFFF, a, b)); }
    static floats to_float(ints v) { return floats(_mm512_maskz_cvtepi32_ps(0xFFFF, v)); }
    static ints to_int(floats v) { return ints(_mm512_maskz_cvttps_epi32(0xFFFF, v)); }
    static floats select(float_mask m, floats a, floats b) { return xsimd::select(m, a, b); }
    static ints select(float_mask m, ints a, ints b) {
        // xsimd 8's own integer select on AVX-512BW does not compile at -O0 with GCC.
        return ints(_mm512_mask_blend_epi32(m.data, b, a));
    }
    static floats widen(const std::int8_t* p) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
        return to_float(ints(_mm512_maskz_cvtepi8_epi32(0xFFFF, bytes)));
    }
    QMIX_FORCE_INLINE static void transpose(const float* const* rows, floats* out) {
        __m512 t[16];
        unrolled<8>([&](auto i) QMIX_INLINE_LAMBDA {
            const __m512 a = _mm512_loadu_ps(rows[2 * i]);
            const __m512 b = _mm512_loadu_ps(rows[2 * i + 1]);
            t[2 * i] = _mm512_maskz_unpacklo_ps(0xFFFF, a, b);
            t[2 * i + 1] = _mm512_maskz_unpackhi_ps(0xFFFF, a, b);
        });
        __m512 u[16];  // u[4 g + c], 128-bit lane l: rows 4g .. 4g + 3 of column 4 l + c
        unrolled<4>([&](auto g) QMIX_INLINE_LAMBDA {
            const __m512d p0 = _mm512_castps_pd(t[4 * g]);
            const __m512d p1 = _mm512_castps_pd(t[4 * g + 1]);
            const __m512d p2 = _mm512_castps_pd(t[4 * g + 2]);
            const __m512d p3 = _mm512_castps_pd(t[4 * g + 3]);
            u[4 * g + 0] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, p0, p2));
            u[4 * g + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, p0, p2));
            u[4 * g + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(0xFF, p1, p3));
            u[4 * g + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(0xFF, p1, p3));
        });
        unrolled<4>([&](auto c) QMIX_INLINE_LAMBDA {
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
    static void store_bytes(std::uint8_t* p, ints v) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_maskz_cvtepi32_epi8(0xFFFF, v));
    }
    /// Saturating narrowing keeps the order of the values, so clamping after it clamps the
    /// exact sums.
    static void store_biased_bytes(std::uint8_t* out, const ints* v, int bias, int top) {
        __m512i all = _mm512_zextsi128_si512(_mm512_maskz_cvtsepi32_epi8(0xFFFF, v[0]));
        all = _mm512_inserti32x4(all, _mm512_maskz_cvtsepi32_epi8(0xFFFF, v[1]), 1);
        all = _mm512_inserti32x4(all, _mm512_maskz_cvtsepi32_epi8(0xFFFF, v[2]), 2);
        all = _mm512_inserti32x4(all, _mm512_maskz_cvtsepi32_epi8(0xFFFF, v[3]), 3);
        all = _mm512_adds_epi8(all, _mm512_set1_epi8(char(bias)));
        all = _mm512_max_epi8(all, _mm512_setzero_si512());
        all = _mm512_min_epi8(all, _mm512_set1_epi8(char(top)));
        _mm512_storeu_si512(out, all);
    }
    static void store_folded_halves(std::uint8_t* p, ints v, int shift) {
        const __m256i low = _mm512_castsi512_si256(v);
        const __m256i high = _mm512_maskz_extracti64x4_epi64(0xF, v, 1);
        const __m256i folded =
            _mm256_or_si256(low, _mm256_sll_epi32(high, _mm_cvtsi32_si128(shift)));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), folded);
    }

  private:
    /// Lane b of the result reduces vector b (sixteen vectors of sixteen). Within 128-bit
    /// lanes as on AVX2: pairs of vectors interleaved and reduced, then pairs of pairs, so
    /// that each 128-bit lane of quads[j] holds partial results of vectors 4j..4j+3; then
    /// the 128-bit lanes themselves are paired up twice.
    template <class Op>
    static floats transpose_by(const floats* v, Op op) {
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

  public:
    // ---- dot-product drivers: AVX2's (kquants/dot_avx2.hpp, with VNNI) ---------------------
    using kquant_dots = kquants::avx2_dot<arch>;
    using iq4_xs_dots = kquants::avx2_dot<arch>;
    static constexpr bool has_vnni = true;
    /// q4_0, q8_0 and iq4_nl run AVX2's block dot products, which isa/avx2.hpp compiles
    /// with vpdpbusd here: one block per ymm all the way, where this level's engine joins
    /// blocks into a zmm for the float part. On Zen 4 (qmix-bench, fastest call, three
    /// runs): q4_0 35.6-35.8 against 33.4-33.9 G values/s, q8_0 39.4-39.7 against
    /// 31.8-35.4, iq4_nl 32.9-33.2 against 26.6-27.3; q4_1, q5_0 and q5_1 are faster
    /// joined (33.0, 25.9, 28.2 against 31.9, 24.3, 25.1).
    using dot_lender = xsimd::avx2;
    static constexpr bool borrows_dot(type_id t) {
        return t == type_id::q4_0 || t == type_id::q8_0 || t == type_id::iq4_nl;
    }

#if defined(__FMA__)
    static constexpr bool has_dot_f16 = true;
    /// 16 halves at a time (four accumulators, each stretch of `chunk` values widened to
    /// double and added lane by lane, as AVX2's). Bound by the conversions; on a CPU that
    /// runs 512-bit operations as two halves (Zen 4) AVX2's 8-wide kernel is faster, and
    /// src/kernels_avx512.cpp puts that one in the level's table there.
    static float dot_f16(const std::uint16_t* x, const std::uint16_t* y, std::int64_t n) {
        constexpr std::int64_t chunk = 4096;
        const auto halves = [](const std::uint16_t* p) {
            return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
        };
        __m512d wide[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
        std::int64_t i = 0;
        while (i + 16 <= n) {
            const std::int64_t end = std::min(n, i + chunk);
            __m512 acc[4];
            for (auto& a : acc) a = _mm512_setzero_ps();
            for (; i + 64 <= end; i += 64) {
                for (int k = 0; k < 4; ++k) {
                    acc[k] =
                        _mm512_fmadd_ps(halves(x + i + 16 * k), halves(y + i + 16 * k), acc[k]);
                }
            }
            for (; i + 16 <= end; i += 16)
                acc[0] = _mm512_fmadd_ps(halves(x + i), halves(y + i), acc[0]);
            const __m512 s =
                _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            wide[0] = _mm512_add_pd(wide[0], _mm512_cvtps_pd(_mm512_castps512_ps256(s)));
            wide[1] = _mm512_add_pd(wide[1], _mm512_cvtps_pd(_mm512_extractf32x8_ps(s, 1)));
        }
        double total = _mm512_reduce_add_pd(_mm512_add_pd(wide[0], wide[1]));
        for (; i < n; ++i) total += double(half_to_float(x[i]) * half_to_float(y[i]));
        return float(total);
    }
#endif

    // ---- bf16 (kernels/bf16.hpp) ---------------------------------------------------------
    static floats load_bf16(const std::uint16_t* p) {
        const __m256i halves = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
        return floats(_mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_maskz_cvtepu16_epi32(0xFFFF, halves), 16)));
    }
    static void store_u16(ints v, std::uint16_t* p) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_maskz_cvtepi32_epi16(0xFFFF, v));
    }
    /// Works on 16-bit halves: the upper halves h and the lower halves l of 32 values are
    /// gathered into one register each, and h rounds up exactly when (l | (h & 1)) >
    /// 0x8000. A step whose values include an infinity or NaN (exponent all ones) is
    /// narrowed by the scalar code instead.
    static std::int64_t narrow_bf16(const float* src, std::uint16_t* out, std::int64_t n) {
        std::int64_t i = 0;
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
        return i;
    }
};
#endif  // AVX-512

QMIX_ABI_END
}  // namespace qmix::kernels

#endif  // QMIX_ARCH_X86_64
