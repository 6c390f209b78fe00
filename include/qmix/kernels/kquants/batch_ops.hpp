// SPDX-License-Identifier: MIT
#pragma once

// The batch operations of the k-quant kernels: the per-ISA layer (isa<Arch>, one file per
// instruction set in kernels/isa/, over the portable xsimd floor isa_base<Arch>) plus the
// few compositions of it that are the same on every instruction set.
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
#include "qmix/kernels/isa.hpp"
#include "qmix/kernels/xsimd_shim.hpp"

namespace qmix::kernels::kquants {
QMIX_ABI_BEGIN

/// The per-ISA layer as the k-quant kernels use it; lanes<Arch, K> below spreads it over
/// K batches. Nothing here branches on the instruction set.
template <class Arch>
struct batch_ops : isa<Arch> {
    using layer = isa<Arch>;
    using floats = typename layer::floats;
    using ints = typename layer::ints;
    using mask = typename layer::float_mask;
    static constexpr int count = layer::count;

    /// strict::nearest_int per lane: the magic addition leaves the rounded integer in the
    /// low mantissa bits. The argument is settled first, so a product passed in is rounded
    /// before the addition, as in the reference.
    static ints nearest_int(floats value) {
        const floats shifted = simd::settle(value) + floats(12582912.0f);
        return (xsimd::bitwise_cast<ints>(shifted) & ints(0x007fffff)) - ints(0x00400000);
    }

    static ints clamp(ints v, int lo, int hi) {
        return layer::max(ints(lo), layer::min(ints(hi), v));
    }

    /// to_float(clamp(nearest_int(value), lo, hi)) for |value| <= 2^21, lo and hi small
    /// integers. The magic addition rounds as nearest_int does, leaving a positive float in
    /// [2^23, 2^24), where the order of the bit patterns as integers is the order of the
    /// values: the clamp is an integer minimum and maximum there (those run on every vector
    /// pipe, float ones on half of them), and subtracting the magic number again is exact.
    /// (Outside that range, and for NaN, the result differs from nearest_int's: callers use
    /// this only where the range is known.) A caller that knows the rounded value cannot
    /// pass an end of [lo, hi] leaves that end's clamp out (low_end, high_end false).
    /// A layer that rounds in one instruction (rounds_in_one) rounds and clamps in floats
    /// (a zero may come out as -0: the searches only multiply levels and add the products,
    /// where the sign of a zero product vanishes in sums that start at +0).
    template <bool low_end = true, bool high_end = true>
    static floats nearest_level(floats value, float lo, float hi) {
        if constexpr (layer::rounds_in_one) {
            floats level = layer::round_even(value);
            if constexpr (low_end) level = xsimd::max(level, floats(lo));
            if constexpr (high_end) level = xsimd::min(level, floats(hi));
            (void)lo, (void)hi;
            return level;
        }
        const floats magic(12582912.0f);
        ints level = xsimd::bitwise_cast<ints>(simd::settle(value) + magic);
        if constexpr (high_end)
            level = layer::min(xsimd::bitwise_cast<ints>(floats(12582912.0f + hi)), level);
        if constexpr (low_end)
            level = layer::max(xsimd::bitwise_cast<ints>(floats(12582912.0f + lo)), level);
        (void)lo, (void)hi;
        return simd::settle(xsimd::bitwise_cast<floats>(level)) - magic;
    }
};

QMIX_ABI_END
}  // namespace qmix::kernels::kquants
