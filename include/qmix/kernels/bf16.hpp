// SPDX-License-Identifier: MIT
#pragma once

// SIMD kernels of bf16 (formats/bf16.hpp). Narrowing is integer arithmetic on the bit
// patterns, so every lane gives the reference's bits: the level's own narrowing first
// (isa<Arch>::narrow_bf16: AVX2 and AVX-512 work on 16-bit halves, see isa/avx2.hpp and
// isa/avx512.hpp), then one xsimd vector at a time (the 16-bit results stored by
// isa<Arch>::store_u16), then scalar code. Widening is a shift (isa<Arch>::load_bf16).
// The dot product splits each 32-bit word of bf16 pairs into its even value (shifted up)
// and its odd value (masked), whose products are exact in binary32 and so are summed by
// fused multiply-adds where the level has them, in four float accumulators per stretch
// of 512 * lanes values (128 products in each float sum) and the stretches in double, like
// the f16 kernel, so it agrees with the reference's double sum to rounding.
// (AVX512-BF16's vdpbf16ps would be one instruction per 32 products, but it treats
// subnormal inputs as zero, which the reference does not.)

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "qmix/core/config.hpp"
#include "qmix/formats/bf16.hpp"
#include "qmix/kernels/generic.hpp"
#include "qmix/kernels/isa.hpp"
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
    static floats load(const std::uint16_t* p) { return isa<Arch>::load_bf16(p); }

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
        isa<Arch>::store_u16(result, p);
    }

    static void quantize(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                         const float* /*importance*/) {
        auto* out = static_cast<std::uint16_t*>(dst);
        const std::int64_t n = nrows * n_per_row;
        std::int64_t i = isa<Arch>::narrow_bf16(src, out, n);
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
        // Each of the 4 * lanes float sums takes at most 128 products before the stretch
        // is added in double (Zen 4's AVX-512 loop is bound by L2 at 65536 values, and
        // stretches of 1024 values cost it a twentieth of that rate, of 4096 values 0.5%).
        constexpr std::int64_t chunk = 512 * lanes;
        const ints upper(std::int32_t(0xffff0000u));
        const auto add_products = [&](std::int64_t at, floats& even, floats& odd) {
            // Each word loaded once: without the barrier GCC folds the load into both the
            // shift and the mask, and two loads a vector bound the loop in L1 (Zen 4,
            // AVX-512: 27 against 36 G values/s).
            const ints a =
                simd::settle(ints::load_unaligned(reinterpret_cast<const std::int32_t*>(x + at)));
            const ints b =
                simd::settle(ints::load_unaligned(reinterpret_cast<const std::int32_t*>(y + at)));
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
