// SPDX-License-Identifier: MIT
#pragma once

// Dot products of the k-quant weight formats with q8_K rows, for AVX2 (and the AVX-512
// translation units, which have AVX2 too). Bytes are multiplied and summed in 16-bit
// pairs (maddubs), weighted by the sub-block scales in 32-bit (madd), and each block's
// exact integer sums are then scaled and added in the order of the scalar reference: the
// results equal formats::*::dot_row bit for bit.
//
// maddubs takes an unsigned and a signed operand. Signed levels L = u - offset are split
// into maddubs(u, q8) - maddubs(offset, q8). No 16-bit pair sum can saturate here: the
// largest is 2 * 63 * 128 (q6_K).
//
// Eight blocks are reduced together: their eight 32-bit accumulators are folded into one
// vector of eight block sums, and the block scales are applied to that vector, instead of
// a horizontal sum per block.

#include "qmix/core/config.hpp"
#include "qmix/formats/q2_k.hpp"
#include "qmix/formats/q3_k.hpp"
#include "qmix/formats/q4_k.hpp"
#include "qmix/formats/q5_k.hpp"
#include "qmix/formats/q6_k.hpp"
#include "qmix/formats/q8_k.hpp"
#include "qmix/kernels/kquants/batch_ops.hpp"
#include "qmix/kernels/kquants/scalar.hpp"

#if defined(__AVX2__)

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

template <class Arch>
struct avx2_dot {
    using act = formats::block_q8_k;

    static float q2_k(const void* x, const void* y, std::int64_t n) {
        return run<q2_k_unit>(static_cast<const formats::block_q2_k*>(x),
                              static_cast<const act*>(y), n / 256);
    }
    static float q3_k(const void* x, const void* y, std::int64_t n) {
        return run<q3_k_unit>(static_cast<const formats::block_q3_k*>(x),
                              static_cast<const act*>(y), n / 256);
    }
    static float q4_k(const void* x, const void* y, std::int64_t n) {
        return run<q4_k_unit>(static_cast<const formats::block_q4_k*>(x),
                              static_cast<const act*>(y), n / 256);
    }
    static float q5_k(const void* x, const void* y, std::int64_t n) {
        return run<q5_k_unit>(static_cast<const formats::block_q5_k*>(x),
                              static_cast<const act*>(y), n / 256);
    }
    static float q6_k(const void* x, const void* y, std::int64_t n) {
        return run<q6_k_unit>(static_cast<const formats::block_q6_k*>(x),
                              static_cast<const act*>(y), n / 256);
    }

  private:
    static constexpr int group = 8;  ///< blocks reduced together

    /// Per group of eight blocks: the integer sums, then
    ///     sum += d * scaled - dmin * mins     (formats with a min)
    ///     sum += d * scaled                   (symmetric formats)
    /// block after block, with d = half(x.d) * y.d as the reference rounds it.
    template <class Unit, class Block>
    static float run(const Block* x, const act* y, std::int64_t blocks) {
        float sum = 0;
        for (std::int64_t first = 0; first < blocks; first += group) {
            const int count = blocks - first < group ? int(blocks - first) : group;
            __m256i scaled[group];
            __m256i mins[group];
            alignas(32) std::uint16_t d_half[group] = {};
            alignas(32) std::uint16_t dmin_half[group] = {};
            alignas(32) float act_d[group] = {};
            for (int b = 0; b < count; ++b) {
                Unit::sums(x[first + b], y[first + b], scaled[b], mins[b]);
                d_half[b] = x[first + b].d;
                if constexpr (Unit::has_min) dmin_half[b] = x[first + b].dmin;
                act_d[b] = y[first + b].d;
            }
            for (int b = count; b < group; ++b) scaled[b] = mins[b] = _mm256_setzero_si256();
            const __m256 act_scale = _mm256_load_ps(act_d);
            const __m256 d = _mm256_mul_ps(halves(d_half), act_scale);
            __m256 terms = settled(_mm256_mul_ps(d, _mm256_cvtepi32_ps(fold(scaled))));
            if constexpr (Unit::has_min) {
                const __m256 dmin = _mm256_mul_ps(halves(dmin_half), act_scale);
                terms = _mm256_sub_ps(terms,
                                      settled(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(fold(mins)))));
            }
            alignas(32) float term[group];
            _mm256_store_ps(term, terms);
            for (int b = 0; b < count; ++b) sum += term[b];
        }
        return sum;
    }

    /// A product rounded on its own (simd::settle for a raw __m256).
    static __m256 settled(__m256 v) {
        __asm__("" : "+x"(v));
        return v;
    }

    /// Lane b = the sum of the eight lanes of v[b].
    static __m256i fold(const __m256i* v) {
        const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]);
        const __m256i h23 = _mm256_hadd_epi32(v[2], v[3]);
        const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]);
        const __m256i h67 = _mm256_hadd_epi32(v[6], v[7]);
        const __m256i q03 = _mm256_hadd_epi32(h01, h23);
        const __m256i q47 = _mm256_hadd_epi32(h45, h67);
        return _mm256_add_epi32(_mm256_permute2x128_si256(q03, q47, 0x20),
                                _mm256_permute2x128_si256(q03, q47, 0x31));
    }

    /// Eight binary16 values widened (exact).
    static __m256 halves(const std::uint16_t* h) {
#if defined(__F16C__)
        return _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(h)));
#elif defined(__AVX512VL__)
        return _mm256_maskz_cvtph_ps(0xFF, _mm_load_si128(reinterpret_cast<const __m128i*>(h)));
#else
        alignas(32) float f[group];
        for (int i = 0; i < group; ++i) f[i] = scalar<Arch>::half_to_float(h[i]);
        return _mm256_load_ps(f);
#endif
    }

    static __m256i load(const void* p) {
        return _mm256_loadu_si256(static_cast<const __m256i*>(p));
    }

    /// 16-bit lanes 0-7 = lane 2 s of v16's 128-bit half, lanes 8-15 = lane 2 s + 1: the
    /// scales of two consecutive groups of 16 for a vector of 32 values.
    static __m256i pair_of_scales(__m256i half_dup, int s) {
        const __m128i low = _mm_set1_epi16(short(0x0100 + 0x0404 * s));
        const __m128i high = _mm_set1_epi16(short(0x0302 + 0x0404 * s));
        return _mm256_shuffle_epi8(half_dup, _mm256_set_m128i(high, low));
    }

    /// Sixteen 16-bit scales, each 128-bit half duplicated: [0..7 | 0..7], [8..15 | 8..15].
    static void duplicate_halves(__m256i scales16, __m256i& first, __m256i& second) {
        first = _mm256_permute4x64_epi64(scales16, 0x44);
        second = _mm256_permute4x64_epi64(scales16, 0xEE);
    }

    static std::uint32_t word(const std::uint8_t* p) {
        std::uint32_t w;
        std::memcpy(&w, p, sizeof w);
        return w;
    }

    struct q2_k_unit {
        static constexpr bool has_min = true;
        static void sums(const formats::block_q2_k& x, const act& y, __m256i& scaled,
                         __m256i& mins) {
            const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales));
            const __m256i scales16 =
                _mm256_cvtepu8_epi16(_mm_and_si128(packed, _mm_set1_epi8(0xF)));
            const __m256i mins16 =
                _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0xF)));
            mins = _mm256_madd_epi16(load(y.bsums), mins16);
#if defined(__AVX512BW__)
            if constexpr (is_avx512bw<Arch>) {
                scaled = wide_sums(x, y, scales16);
                return;
            }
#endif
            __m256i halves_dup[2];
            duplicate_halves(scales16, halves_dup[0], halves_dup[1]);
            const __m256i two_bits = _mm256_set1_epi8(3);
            __m256i acc = _mm256_setzero_si256();
            unrolled<2>([&](auto h) {
                const __m256i q2 = load(x.qs + 32 * h);
                unrolled<4>([&](auto s) {
                    const __m256i levels = _mm256_and_si256(_mm256_srli_epi16(q2, 2 * s), two_bits);
                    const __m256i products =
                        _mm256_maddubs_epi16(levels, load(y.qs + 128 * h + 32 * s));
                    acc = _mm256_add_epi32(
                        acc, _mm256_madd_epi16(products, pair_of_scales(halves_dup[h], s)));
                });
            });
            scaled = acc;
        }

#if defined(__AVX512BW__)
        /// The same sums 64 values at a time: a zmm holds the levels of two consecutive
        /// shifts s, s + 1 of one qs half (four groups of 16), each group's scale spread
        /// over its eight 16-bit product lanes.
        static __m256i wide_sums(const formats::block_q2_k& x, const act& y, __m256i scales16) {
            const __m512i all_scales = _mm512_zextsi256_si512(scales16);
            const __m512i two_bits = _mm512_set1_epi8(3);
            // Product lane l (values 2 l, 2 l + 1 of the 64) belongs to group l / 8.
            const __m512i group_of_lane = _mm512_cvtepu8_epi16(
                _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2,
                                 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
            __m512i acc = _mm512_setzero_si512();
            unrolled<2>([&](auto h) {
                const __m512i q2 = _mm512_maskz_broadcast_i64x4(0xFF, load(x.qs + 32 * h));
                unrolled<2>([&](auto p) {
                    // Shift 2 s in the low 256 bits, 2 (s + 1) in the high, for s = 2 p.
                    const __m512i shifts = _mm512_inserti64x4(
                        _mm512_set1_epi16(short(4 * p)), _mm256_set1_epi16(short(4 * p + 2)), 1);
                    const __m512i levels =
                        _mm512_and_si512(_mm512_srlv_epi16(q2, shifts), two_bits);
                    const __m512i q8 = _mm512_loadu_si512(y.qs + 128 * h + 64 * p);
                    const __m512i products = _mm512_maddubs_epi16(levels, q8);
                    const __m512i first_group = _mm512_set1_epi16(short(8 * h + 4 * p));
                    const __m512i scale = _mm512_permutexvar_epi16(
                        _mm512_add_epi16(first_group, group_of_lane), all_scales);
                    acc = _mm512_add_epi32(acc, _mm512_madd_epi16(products, scale));
                });
            });
            return _mm256_add_epi32(_mm512_castsi512_si256(acc),
                                    _mm512_maskz_extracti64x4_epi64(0xF, acc, 1));
        }
#endif
    };

    struct q3_k_unit {
        static constexpr bool has_min = false;
        static void sums(const formats::block_q3_k& x, const act& y, __m256i& scaled,
                         __m256i& /*mins*/) {
            // The sixteen 6-bit scales (formats/q3_k.hpp), four per 32-bit word, minus 32.
            const std::uint32_t w0 = word(x.scales);
            const std::uint32_t w1 = word(x.scales + 4);
            const std::uint32_t w2 = word(x.scales + 8);
            const std::uint32_t nibbles = 0x0F0F0F0Fu;
            const std::uint32_t pairs = 0x03030303u;
            const __m128i biased =
                _mm_setr_epi32(int((w0 & nibbles) | ((w2 & pairs) << 4)),
                               int((w1 & nibbles) | (((w2 >> 2) & pairs) << 4)),
                               int(((w0 >> 4) & nibbles) | (((w2 >> 4) & pairs) << 4)),
                               int(((w1 >> 4) & nibbles) | (((w2 >> 6) & pairs) << 4)));
            const __m256i scales16 = _mm256_cvtepi8_epi16(_mm_sub_epi8(biased, _mm_set1_epi8(32)));
            __m256i halves_dup[2];
            duplicate_halves(scales16, halves_dup[0], halves_dup[1]);

            // Level = u - 4 with u = low + 4 * third bit in [0, 7]: the sums take u, and the
            // 4 * scale * (sum of q8's group of 16) that the offset adds is taken off once
            // per block, with q8_K's group sums (bsums).
            const __m256i hmask = load(x.hmask);
            const __m256i two_bits = _mm256_set1_epi8(3);
            const __m256i four = _mm256_set1_epi8(4);
            __m256i acc = _mm256_setzero_si256();
            unrolled<2>([&](auto h) {
                const __m256i q3 = load(x.qs + 32 * h);
                unrolled<4>([&](auto s) {
                    constexpr int bit = 4 * decltype(h)::value + decltype(s)::value;
                    const __m256i low = _mm256_and_si256(_mm256_srli_epi16(q3, 2 * s), two_bits);
                    // The third bit (bit `bit` of each hmask byte) moved to bit 2.
                    const __m256i third =
                        bit >= 2 ? _mm256_and_si256(_mm256_srli_epi16(hmask, bit - 2), four)
                                 : _mm256_and_si256(_mm256_slli_epi16(hmask, 2 - bit), four);
                    const __m256i products = _mm256_maddubs_epi16(_mm256_or_si256(low, third),
                                                                  load(y.qs + 128 * h + 32 * s));
                    acc = _mm256_add_epi32(
                        acc, _mm256_madd_epi16(products, pair_of_scales(halves_dup[h], s)));
                });
            });
            const __m256i offsets = _mm256_madd_epi16(load(y.bsums), scales16);
            scaled = _mm256_sub_epi32(acc, _mm256_slli_epi32(offsets, 2));
        }
    };

    /// q4_K and q5_K's sub-block scales and mins (detail::pack_scale_min_k4), unpacked four
    /// bytes at a time: scale levels 0-3, 4-7, min levels 0-3, 4-7.
    static void unpack_k4_scales(const std::uint8_t* packed, __m128i& scales, __m128i& mins) {
        const std::uint32_t w0 = word(packed);
        const std::uint32_t w1 = word(packed + 4);
        const std::uint32_t w2 = word(packed + 8);
        const std::uint32_t six = 0x3F3F3F3Fu;
        const std::uint32_t nibbles = 0x0F0F0F0Fu;
        const std::uint32_t pairs = 0x03030303u;
        const std::uint32_t scales_high = (w2 & nibbles) | (((w0 >> 6) & pairs) << 4);
        const std::uint32_t mins_high = ((w2 >> 4) & nibbles) | (((w1 >> 6) & pairs) << 4);
        scales = _mm_cvtepu8_epi16(_mm_setr_epi32(int(w0 & six), int(scales_high), 0, 0));
        mins = _mm_cvtepu8_epi16(_mm_setr_epi32(int(w1 & six), int(mins_high), 0, 0));
    }

    /// The min term: min level j times the sum of q8's 32 levels of sub-block j, as
    /// bsums[2j] + bsums[2j + 1].
    static __m256i k4_min_sums(const act& y, __m128i mins) {
        const __m128i pair_sums =
            _mm_hadd_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(y.bsums)),
                           _mm_loadu_si128(reinterpret_cast<const __m128i*>(y.bsums + 8)));
        return _mm256_zextsi128_si256(_mm_madd_epi16(pair_sums, mins));
    }

    /// Sub-block j's scale level in every 16-bit lane.
    static __m256i k4_scale(__m256i scales_dup, int j) {
        return _mm256_shuffle_epi8(scales_dup, _mm256_set1_epi16(short(0x0100 + 0x0202 * j)));
    }

    struct q4_k_unit {
        static constexpr bool has_min = true;
        static void sums(const formats::block_q4_k& x, const act& y, __m256i& scaled,
                         __m256i& mins) {
            __m128i scales;
            __m128i min_levels;
            unpack_k4_scales(x.scales, scales, min_levels);
            mins = k4_min_sums(y, min_levels);
            const __m256i scales_dup = _mm256_broadcastsi128_si256(scales);
            const __m256i nibble = _mm256_set1_epi8(0xF);
            __m256i acc = _mm256_setzero_si256();
            unrolled<4>([&](auto g) {
                const __m256i q4 = load(x.qs + 32 * g);
                const __m256i first = _mm256_and_si256(q4, nibble);
                const __m256i second = _mm256_and_si256(_mm256_srli_epi16(q4, 4), nibble);
                const __m256i p0 = _mm256_maddubs_epi16(first, load(y.qs + 64 * g));
                const __m256i p1 = _mm256_maddubs_epi16(second, load(y.qs + 64 * g + 32));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p0, k4_scale(scales_dup, 2 * g)));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p1, k4_scale(scales_dup, 2 * g + 1)));
            });
            scaled = acc;
        }
    };

    struct q5_k_unit {
        static constexpr bool has_min = true;
        static void sums(const formats::block_q5_k& x, const act& y, __m256i& scaled,
                         __m256i& mins) {
            __m128i scales;
            __m128i min_levels;
            unpack_k4_scales(x.scales, scales, min_levels);
            mins = k4_min_sums(y, min_levels);
            const __m256i scales_dup = _mm256_broadcastsi128_si256(scales);
            const __m256i nibble = _mm256_set1_epi8(0xF);
            const __m256i one = _mm256_set1_epi8(1);
            const __m256i qh = load(x.qh);
            __m256i acc = _mm256_setzero_si256();
            unrolled<4>([&](auto g) {
                const __m256i q4 = load(x.qs + 32 * g);
                const __m256i fifth0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one);
                const __m256i fifth1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one);
                const __m256i first =
                    _mm256_or_si256(_mm256_and_si256(q4, nibble), _mm256_slli_epi16(fifth0, 4));
                const __m256i second =
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4, 4), nibble),
                                    _mm256_slli_epi16(fifth1, 4));
                const __m256i p0 = _mm256_maddubs_epi16(first, load(y.qs + 64 * g));
                const __m256i p1 = _mm256_maddubs_epi16(second, load(y.qs + 64 * g + 32));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p0, k4_scale(scales_dup, 2 * g)));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p1, k4_scale(scales_dup, 2 * g + 1)));
            });
            scaled = acc;
        }
    };

    struct q6_k_unit {
        static constexpr bool has_min = false;
        static void sums(const formats::block_q6_k& x, const act& y, __m256i& scaled,
                         __m256i& /*mins*/) {
            const __m256i scales16 =
                _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x.scales)));
            __m256i halves_dup[2];
            duplicate_halves(scales16, halves_dup[0], halves_dup[1]);
            const __m256i nibble = _mm256_set1_epi8(0xF);
            const __m256i two_bits = _mm256_set1_epi8(3);
            const __m256i offset = _mm256_set1_epi8(32);
            __m256i acc = _mm256_setzero_si256();
            unrolled<2>([&](auto h) {
                const __m256i ql0 = load(x.ql + 64 * h);
                const __m256i ql1 = load(x.ql + 64 * h + 32);
                const __m256i qh = load(x.qh + 32 * h);
                // Values 32 s .. 32 s + 31 of the half: low nibble and two high bits.
                const __m256i lows[4] = {_mm256_and_si256(ql0, nibble),
                                         _mm256_and_si256(ql1, nibble),
                                         _mm256_and_si256(_mm256_srli_epi16(ql0, 4), nibble),
                                         _mm256_and_si256(_mm256_srli_epi16(ql1, 4), nibble)};
                unrolled<4>([&](auto s) {
                    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * s), two_bits);
                    const __m256i levels = _mm256_or_si256(lows[s], _mm256_slli_epi16(high, 4));
                    const __m256i q8 = load(y.qs + 128 * h + 32 * s);
                    const __m256i products = _mm256_sub_epi16(_mm256_maddubs_epi16(levels, q8),
                                                              _mm256_maddubs_epi16(offset, q8));
                    acc = _mm256_add_epi32(
                        acc, _mm256_madd_epi16(products, pair_of_scales(halves_dup[h], s)));
                });
            });
            scaled = acc;
        }
    };
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants

#endif  // __AVX2__
