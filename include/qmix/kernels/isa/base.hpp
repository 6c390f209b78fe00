// SPDX-License-Identifier: MIT
#pragma once

// The per-ISA layer: isa<Arch>, specialised once per instruction set in isa/<isa>.hpp (see
// kernels/isa.hpp for the contract), and isa_base<Arch>, the portable xsimd floor that
// every specialisation inherits from and overrides where the instruction set does better.
//
// A primitive that the bytes depend on and that xsimd cannot give exactly on every
// instruction set (division and square root: xsimd 8 estimates both on NEON) has no
// portable form here: using it is a compile error until the specialisation defines it.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "qmix/core/config.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/bf16.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

namespace qmix::kernels {
QMIX_ABI_BEGIN

template <class Arch>
struct isa;

QMIX_ABI_END
namespace kquants {
QMIX_ABI_BEGIN
// The dot-product drivers an isa<Arch> may name (kquant_dots, iq4_xs_dots).
template <class Arch>
struct avx2_dot;
template <class Arch>
struct neon_dot;
QMIX_ABI_END
}  // namespace kquants
QMIX_ABI_BEGIN

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

/// False, but only once Arch is known: a static_assert on it fires where a template that
/// names it is used, not where it is defined.
template <class Arch>
inline constexpr bool isa_lacks = !std::is_same_v<Arch, Arch>;

/// The portable floor of the layer: operations on one xsimd batch (count lanes) that
/// xsimd gives exactly on every instruction set, or plain loops. A specialisation
/// isa<Arch> derives from isa_base<Arch> and hides what it does better with a member of
/// the same name.
template <class Arch>
struct isa_base {
    using arch = Arch;
    using floats = xsimd::batch<float, Arch>;
    using ints = xsimd::batch<std::int32_t, Arch>;
    using float_mask = xsimd::batch_bool<float, Arch>;
    static constexpr int count = int(floats::size);

    /// How many batches the k-quant scale searches run side by side (kquants/lanes.hpp).
    static constexpr int search_batches = 2;
    /// The same for the search of a scale and an offset (q2_K, q4_K, q5_K): its trials
    /// keep more values live.
    static constexpr int offset_search_batches = 2;
    /// Whether 16-entry byte tables are looked up in a register (look_up): without it the
    /// iq4 dequantizers and dot products stay scalar (kernels/nonlinear.hpp).
    static constexpr bool has_byte_shuffle = false;

    static floats load(const float* p) { return floats::load_unaligned(p); }
    /// Four bytes at p as a little-endian word (any alignment).
    static std::uint32_t load_u32(const void* p) {
        std::uint32_t v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    static ints load(const std::int32_t* p) { return ints::load_unaligned(p); }
    static void store(float* p, floats v) { v.store_unaligned(p); }
    static void store(std::int32_t* p, ints v) { v.store_unaligned(p); }

    /// a * b rounded on its own, never fused with the addition that consumes it.
    static floats mul(floats a, floats b) { return simd::mul(a, b); }

    /// The correctly rounded quotient: every specialisation must say how (xsimd 8 divides
    /// on NEON by a reciprocal estimate and two Newton steps, which changes the bytes).
    template <class A = Arch>
    static floats div(floats a, floats /*b*/) {
        static_assert(isa_lacks<A>, "isa<Arch> must define div, the IEEE quotient");
        return a;
    }

    /// The correctly rounded square root (xsimd 8 estimates it on NEON, as division).
    template <class A = Arch>
    static floats sqrt(floats a) {
        static_assert(isa_lacks<A>, "isa<Arch> must define sqrt, the IEEE square root");
        return a;
    }

    /// Whether the layer has round_even, the nearest integer of a float (ties to even) as
    /// a float in one instruction; without it, kquants::batch_ops rounds by the magic
    /// addition (two float additions).
    static constexpr bool rounds_in_one = false;

    static ints min(ints a, ints b) { return xsimd::min(a, b); }
    static ints max(ints a, ints b) { return xsimd::max(a, b); }

    /// Exact for the small integers the kernels convert.
    static floats to_float(ints v) { return xsimd::to_float(v); }
    /// For floats that hold integers: exact.
    static ints to_int(floats v) { return xsimd::to_int(v); }

    static floats select(float_mask m, floats a, floats b) { return xsimd::select(m, a, b); }
    static ints select(float_mask m, ints a, ints b) {
        return xsimd::select(xsimd::bool_cast(m), a, b);
    }

    /// |v|, by clearing the sign bit as fabs does.
    static floats abs(floats v) { return xsimd::abs(v); }

    /// Eight-bit levels p[0 .. count) as floats.
    static floats widen(const std::int8_t* p) {
        alignas(64) float values[count];
        for (int i = 0; i < count; ++i) values[i] = float(p[i]);
        return floats::load_aligned(values);
    }

    /// out[i] lane j = rows[j][i] for i, j < count: a square transpose of count rows.
    static void transpose(const float* const* rows, floats* out) {
        alignas(64) float buffer[count * count];
        for (int j = 0; j < count; ++j) {
            for (int i = 0; i < count; ++i) buffer[i * count + j] = rows[j][i];
        }
        for (int i = 0; i < count; ++i) out[i] = floats::load_aligned(buffer + i * count);
    }

    /// Stores the lanes of v, each 0..255, as count bytes.
    static void store_bytes(std::uint8_t* p, ints v) {
        alignas(64) std::int32_t values[count];
        v.store_aligned(values);
        for (int i = 0; i < count; ++i) p[i] = std::uint8_t(values[i]);
    }

    /// out[j] = clamp(lane j % count of v[j / count] + bias, 0, top) for j < 4 count: four
    /// batches of any int32 values to bytes (0 <= bias, top <= 127).
    static void store_biased_bytes(std::uint8_t* out, const ints* v, int bias, int top) {
        alignas(64) std::int32_t values[count];
        for (int k = 0; k < 4; ++k) {
            v[k].store_aligned(values);
            for (int i = 0; i < count; ++i) {
                const std::int64_t sum = std::int64_t(values[i]) + bias;
                out[k * count + i] = std::uint8_t(sum < 0 ? 0 : sum > top ? top : sum);
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

    /// 512-bit batches only (isa/avx512.hpp): stores the 32 bytes (low half of v) | (high
    /// half of v << shift), shifting 32-bit lanes (the caller keeps every bit in its byte).
    template <class A = Arch>
    static void store_folded_halves(std::uint8_t*, ints, int) {
        static_assert(isa_lacks<A>, "store_folded_halves folds a 512-bit batch");
    }

    /// The dot-product engine (isa.hpp) of the iq4 formats: byte j of the result is
    /// table[byte j of indices], indices in [0, 16). Only with has_byte_shuffle.
    template <class A = Arch, class Bytes>
    static Bytes look_up(const std::int8_t* table, Bytes indices) {
        static_assert(isa_lacks<A>, "look_up needs a byte shuffle (has_byte_shuffle)");
        (void)table;
        return indices;
    }

    /// The sum of the int32 lanes of the part first times s1 plus those of second times s2
    /// (exact: the caller's sums fit).
    template <class Part>
    static std::int32_t scaled_sum(Part first, int s1, Part second, int s2) {
        alignas(64) std::int32_t a[sizeof(Part) / 4];
        alignas(64) std::int32_t c[sizeof(Part) / 4];
        std::memcpy(a, &first, sizeof a);
        std::memcpy(c, &second, sizeof c);
        std::int32_t sa = 0, sc = 0;
        for (std::size_t i = 0; i < sizeof(Part) / 4; ++i) sa += a[i], sc += c[i];
        return sa * s1 + sc * s2;
    }

    // ---- which dot-product drivers the level uses (kquants/dot.hpp, nonlinear.hpp) -----
    /// The k-quant dot products (q2_k .. q6_k against q8_K): a struct of static functions
    /// (kquants::avx2_dot<arch>, kquants::neon_dot<arch>), or void: the slots stay empty
    /// and the table falls back to the scalar reference.
    using kquant_dots = void;
    /// The struct whose iq4_xs member is iq4_xs's dot product, or void: the generic one
    /// (nonlinear.hpp) where the level has a byte shuffle.
    using iq4_xs_dots = void;
    /// Whether the level has AVX-512 VNNI's vpdpwssd / vpdpbusd in ymm form (the x86
    /// k-quant dot products, kquants/dot_avx2.hpp).
    static constexpr bool has_vnni = false;
    /// Whether the level has its own f16 dot product, dot_f16(x, y, n) (generic.hpp's
    /// dot_f16 uses it instead of the xsimd one).
    static constexpr bool has_dot_f16 = false;
    /// The level whose block dot products (generic.hpp's q4_0 and q8_0, nonlinear.hpp's
    /// iq4_nl) this level runs, instead of its own, for the formats borrows_dot names:
    /// none here.
    using dot_lender = Arch;
    static constexpr bool borrows_dot(type_id) { return false; }

    // ---- bf16 (kernels/bf16.hpp) ---------------------------------------------------------
    /// count bf16 values as floats.
    static floats load_bf16(const std::uint16_t* p) {
        alignas(64) float values[count];
        for (int i = 0; i < count; ++i) values[i] = bf16_to_float(p[i]);
        return floats::load_aligned(values);
    }
    /// count lanes, each in [0, 0xffff], as 16-bit values.
    static void store_u16(ints v, std::uint16_t* p) {
        alignas(64) std::int32_t values[count];
        v.store_aligned(values);
        for (int i = 0; i < count; ++i) p[i] = std::uint16_t(values[i]);
    }
    /// Narrows the first values of src to bf16 (as float_to_bf16) with the level's own
    /// instructions, as long as whole steps remain; returns how many it narrowed: none
    /// here, the caller's xsimd and scalar loops do the rest.
    static std::int64_t narrow_bf16(const float* src, std::uint16_t* out, std::int64_t n) {
        (void)src, (void)out, (void)n;
        return 0;
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels
