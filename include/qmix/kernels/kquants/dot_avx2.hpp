// SPDX-License-Identifier: MIT
#pragma once

// Dot products of the k-quant weight formats with q8_K rows, for AVX2 (and the AVX-512
// translation units, which have AVX2 too). Bytes are multiplied and summed in 16-bit
// pairs (maddubs) and weighted by the sub-block scales in 32-bit (madd): each block's sums
// are exact integers. They are then scaled and added in float vector accumulators (one
// fused multiply-add per block, as ggml does), not in the order of the scalar reference:
// the results agree with formats::*::dot_row to rounding (tests/test_kernels.cpp holds
// them to 1e-5 * max(1, |reference|), the tolerance of the golden dot products).
//
// maddubs takes an unsigned and a signed operand. Signed levels L = u - offset (q3_K, q6_K)
// are summed as u, and offset * scale * (the sum of q8's group of 16) is taken off once per
// block, from q8_K's group sums (bsums). No 16-bit pair sum can saturate here: the largest
// is 2 * 63 * 128 (q6_K).
//
// The avx512 level has AVX-512 VNNI: vpdpwssd does the madd and the add of the scaled
// pairs in one instruction (in four accumulators, to hide its latency), and q2_K folds its
// scales into the levels so that one vpdpbusd does all three steps.

#include "qmix/core/config.hpp"
#include "qmix/formats/detail/nonlinear_levels.hpp"
#include "qmix/formats/iq4_xs.hpp"
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

// The avx512 level has AVX-512 VNNI (vpdpbusd: four unsigned-by-signed byte products and
// their sum added to a 32-bit lane in one instruction) in ymm form with AVX-512 VL.
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__)
#define QMIX_DOT_VNNI 1
#else
#define QMIX_DOT_VNNI 0
#endif

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

    /// iq4_xs, whose reference sums each super-block exactly in integers and then scales
    /// and adds the blocks like q3_K and q6_K: the same driver.
    static float iq4_xs(const void* x, const void* y, std::int64_t n) {
        return run<iq4_xs_unit>(static_cast<const formats::block_iq4_xs*>(x),
                                static_cast<const act*>(y), n / 256);
    }

  private:
    /// Per block: the integer sums (eight 32-bit lanes of scaled sums, and for the formats
    /// with a min the lanes of min sums), converted to float and added to float vector
    /// accumulators with one fused multiply-add each,
    ///     acc += d * scaled,  acc_min += dmin * mins,
    /// with d = half(x.d) * y.d and dmin = half(x.dmin) * y.d; one horizontal sum at the
    /// end. The order of the float additions is not the reference's, so the result agrees
    /// with formats::*::dot_row to rounding, not bit for bit.
    template <class Unit, class Block>
    static float run(const Block* x, const act* y, std::int64_t blocks) {
        __m256 acc = _mm256_setzero_ps();
        __m256 acc_min = _mm256_setzero_ps();
        for (std::int64_t b = 0; b < blocks; ++b) {
            __m256i scaled;
            __m256i mins;
            Unit::sums(x[b], y[b], scaled, mins);
            const __m128 yd = _mm_set_ss(y[b].d);
            if constexpr (Unit::has_min) {
                // d and dmin in lanes 0 and 1, each times y.d.
                const __m128 d =
                    _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(
                                   int(std::uint32_t(x[b].d) | std::uint32_t(x[b].dmin) << 16))),
                               _mm_broadcastss_ps(yd));
                acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(scaled), acc);
                acc_min = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d)),
                                          _mm256_cvtepi32_ps(mins), acc_min);
            } else {
                const __m128 d = _mm_mul_ss(_mm_cvtph_ps(_mm_cvtsi32_si128(int(x[b].d))), yd);
                acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), _mm256_cvtepi32_ps(scaled), acc);
            }
        }
        const __m256 total = Unit::has_min ? _mm256_sub_ps(acc, acc_min) : acc;
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(total), _mm256_extractf128_ps(total, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        return _mm_cvtss_f32(h);
    }

    /// acc + madd(products, scales): one vpdpwssd with VNNI.
    static __m256i add_scaled(__m256i acc, __m256i products, __m256i scales) {
#if QMIX_DOT_VNNI
        if constexpr (isa<Arch>::has_vnni) return _mm256_dpwssd_epi32(acc, products, scales);
#endif
        return _mm256_add_epi32(acc, _mm256_madd_epi16(products, scales));
    }

    /// The sum of four accumulators (several chains hide the latency of vpdpwssd).
    static __m256i sum_of(const __m256i* acc) {
        return _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]), _mm256_add_epi32(acc[2], acc[3]));
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
#if QMIX_DOT_VNNI
            if constexpr (isa<Arch>::has_vnni) {
                scaled = vnni_sums(x, y, _mm_and_si128(packed, _mm_set1_epi8(0xF)));
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

#if QMIX_DOT_VNNI
        /// The same sums with VNNI: the scale is folded into the levels by a table lookup
        /// (level * scale <= 45 is still an unsigned byte), so that one vpdpbusd per 32
        /// values does what maddubs, madd and an add do above. Table h holds, for the four
        /// shifts s, the bytes 0, S, 2 S, 3 S of group 8 h + 2 s in its low 128-bit lane and
        /// of group 8 h + 2 s + 1 in its high lane (the two groups of 16 that a vector of 32
        /// values spans); the index of a level is its value plus 4 s.
        static __m256i vnni_sums(const formats::block_q2_k& x, const act& y, __m128i scales) {
            const __m256i both = _mm256_broadcastsi128_si256(scales);
            // Byte pair (k = 0, 1) of a shift's four bytes holds S * 256, pair (2, 3)
            // S * 770 = 2 S + 3 S * 256: the group's scale S as a 16-bit word (pshufb zeroes
            // the high byte with index 0x80), times the pair's constant.
            const __m256i multiples = _mm256_set1_epi32(int(770u << 16 | 256u));
            __m256i table[2];
            unrolled<2>([&](auto h) {
                constexpr char g = char(8 * decltype(h)::value);
                const __m256i pick = _mm256_setr_epi8(
                    g, -128, g, -128, char(g + 2), -128, char(g + 2), -128, char(g + 4), -128,
                    char(g + 4), -128, char(g + 6), -128, char(g + 6), -128, char(g + 1), -128,
                    char(g + 1), -128, char(g + 3), -128, char(g + 3), -128, char(g + 5), -128,
                    char(g + 5), -128, char(g + 7), -128, char(g + 7), -128);
                table[h] = _mm256_mullo_epi16(_mm256_shuffle_epi8(both, pick), multiples);
            });
            const __m256i two_bits = _mm256_set1_epi8(3);
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
            unrolled<2>([&](auto h) {
                const __m256i q2 = load(x.qs + 32 * h);
                unrolled<4>([&](auto s) {
                    constexpr int shift = 2 * decltype(s)::value;
                    const __m256i shifted = shift == 0 ? q2 : _mm256_srli_epi16(q2, shift);
                    // (shifted & 3) | 4 s
                    const __m256i index = _mm256_ternarylogic_epi32(
                        shifted, two_bits, _mm256_set1_epi8(char(2 * shift)), 0xEA);
                    acc[s] = _mm256_dpbusd_epi32(acc[s], _mm256_shuffle_epi8(table[h], index),
                                                 load(y.qs + 128 * h + 32 * s));
                });
            });
            return _mm256_add_epi32(_mm256_add_epi32(acc[0], acc[1]),
                                    _mm256_add_epi32(acc[2], acc[3]));
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
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
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
                    acc[s] = add_scaled(acc[s], products, pair_of_scales(halves_dup[h], s));
                });
            });
            const __m256i offsets = _mm256_madd_epi16(load(y.bsums), scales16);
            scaled = _mm256_sub_epi32(sum_of(acc), _mm256_slli_epi32(offsets, 2));
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
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
            unrolled<4>([&](auto g) {
                const __m256i q4 = load(x.qs + 32 * g);
                const __m256i first = _mm256_and_si256(q4, nibble);
                const __m256i second = _mm256_and_si256(_mm256_srli_epi16(q4, 4), nibble);
                const __m256i p0 = _mm256_maddubs_epi16(first, load(y.qs + 64 * g));
                const __m256i p1 = _mm256_maddubs_epi16(second, load(y.qs + 64 * g + 32));
                acc[g] = add_scaled(acc[g], p0, k4_scale(scales_dup, 2 * g));
                acc[g] = add_scaled(acc[g], p1, k4_scale(scales_dup, 2 * g + 1));
            });
            scaled = sum_of(acc);
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
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
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
                acc[g] = add_scaled(acc[g], p0, k4_scale(scales_dup, 2 * g));
                acc[g] = add_scaled(acc[g], p1, k4_scale(scales_dup, 2 * g + 1));
            });
            scaled = sum_of(acc);
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
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
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
                    const __m256i products =
                        _mm256_maddubs_epi16(levels, load(y.qs + 128 * h + 32 * s));
                    acc[s] = add_scaled(acc[s], products, pair_of_scales(halves_dup[h], s));
                });
            });
            // The offset 32 of every level: 32 * scale * (sum of q8's group of 16), taken off
            // once per block with q8_K's group sums.
            const __m256i offsets = _mm256_madd_epi16(load(y.bsums), scales16);
            scaled = _mm256_sub_epi32(sum_of(acc), _mm256_slli_epi32(offsets, 5));
        }
    };

    struct iq4_xs_unit {
        static constexpr bool has_min = false;
        static void sums(const formats::block_iq4_xs& x, const act& y, __m256i& scaled,
                         __m256i& /*mins*/) {
            // The 16 levels in both 128-bit lanes: a byte shuffle looks the indices up.
            const __m256i table = _mm256_broadcastsi128_si256(_mm_loadu_si128(
                reinterpret_cast<const __m128i*>(formats::detail::nonlinear_levels)));
            const __m256i nibble = _mm256_set1_epi8(0x0F);
            // Sub-block 32 g + j: index j < 16 is the low nibble of qs[16 g + j], j + 16
            // its high nibble (both halves of a broadcast, the upper one shifted by 4).
            const __m256i shifts = _mm256_setr_epi64x(0, 0, 4, 4);
            const std::uint32_t low_scales = word(x.scales_l);
            const std::uint32_t high_scales = x.scales_h;
            __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(),
                              _mm256_setzero_si256(), _mm256_setzero_si256()};
            unrolled<8>([&](auto g) {
                constexpr int sub = decltype(g)::value;
                const __m256i packed = _mm256_broadcastsi128_si256(
                    _mm_loadu_si128(reinterpret_cast<const __m128i*>(x.qs + 16 * sub)));
                const __m256i levels = _mm256_shuffle_epi8(
                    table, _mm256_and_si256(_mm256_srlv_epi64(packed, shifts), nibble));
                const __m256i q8 = load(y.qs + 32 * sub);
                // levels * q8 = |q8| * (levels * sign(q8)), exact: no level is -128.
                const __m256i products =
                    _mm256_maddubs_epi16(_mm256_abs_epi8(q8), _mm256_sign_epi8(levels, q8));
                const int scale = int(((low_scales >> (4 * sub)) & 0x0F) |
                                      (((high_scales >> (2 * sub)) & 3) << 4)) -
                                  32;
                acc[sub % 4] = add_scaled(acc[sub % 4], products, _mm256_set1_epi16(short(scale)));
            });
            scaled = sum_of(acc);
        }
    };
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants

#endif  // __AVX2__
