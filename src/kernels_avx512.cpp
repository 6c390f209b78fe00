// SPDX-License-Identifier: MIT
// The avx512 kernel level. CMakeLists.txt compiles this file alone with the level's
// instruction-set flags (AVX-512 F, BW, VL, DQ, CD and VNNI, FMA, F16C, BMI2); the rest
// of the program keeps the baseline flags and calls in here only on a CPU that runs avx512.
#include "kernel_levels.hpp"
#include "qmix/kernels/build.hpp"
#include "qmix/kernels/cpu_x86.hpp"

#if !defined(QMIX_ISA_AVX512)
#error "kernels_avx512.cpp needs the avx512 instruction-set flags (see CMakeLists.txt)"
#endif
#if !defined(QMIX_KERNEL_LEVEL)
#error \
    "kernels_avx512.cpp needs QMIX_KERNEL_LEVEL=avx512, its own ABI namespace (see CMakeLists.txt)"
#endif

namespace qmix::kernels::levels {

namespace {

/// For the formats whose quantizer without importance is avx2's (below): that one, and this
/// level's own with importance, one slot. Set once, while avx512()'s table is built.
quantize_fn plain_quantizer[type_slots];
quantize_fn weighted_quantizer[type_slots];

template <type_id Id>
void quantize_split(const float* src, void* dst, std::int64_t nrows, std::int64_t n_per_row,
                    const float* importance) {
    const auto id = std::size_t(Id);
    const quantize_fn quantizer =
        importance != nullptr ? weighted_quantizer[id] : plain_quantizer[id];
    quantizer(src, dst, nrows, n_per_row, importance);
}

/// Gives format Id avx2's quantizer without importance and keeps the level's own with it.
template <type_id Id>
void quantize_plain_as(kernel_table& own, const kernel_table& below) {
    plain_quantizer[std::size_t(Id)] = slot(below, Id).quantize;
    weighted_quantizer[std::size_t(Id)] = slot(own, Id).quantize;
    slot(own, Id).quantize = &quantize_split<Id>;
}

}  // namespace

const kernel_table& avx512() {
    static const kernel_table table = [] {
        kernel_table own = make_kernel_table<xsimd::avx512bw>();
        // The quantizers of the 32-value formats and q4_1's dequantize: the level's own on
        // AMD family 1Ah (Zen 5) and later, which run 512-bit operations whole (Zen 5: q4_0
        // 5.78 -> 7.56 G values/s, q8_0 5.76 -> 7.69, q5_1 5.39 -> 6.67, q4_1's dequantize
        // 15.5 -> 21.4); avx2's, as compiled for the avx2 level, elsewhere: a block is two zmm
        // vectors, and the 16-wide scan, transposes and packing came out slower than the
        // 8-wide ones (AMD Zen 4: q4_0 4.98 against 5.49; Intel Emerald Rapids 3.7 against
        // 4.1), and so did avx2's source compiled with this level's flags (5.12 against
        // 5.32); q4_1's dequantize 11.6-11.8 against 12.1-12.3 on Zen 4.
        const kernel_table& below = avx2();
        const x86::cpu_features cpu = x86::detect_cpu();
        // With importance the level's own searches, 16 lanes wide, stay faster (Zen 4,
        // kernels/weighted.hpp, BENCHMARKS.md's Levels: q4_0 363 against 297 M values/s,
        // q4_1 127 against 104, q5_0 313 against 262, q5_1 118 against 99).
        if (cpu.amd_family < 0x1a) {
            quantize_plain_as<type_id::q4_0>(own, below);
            quantize_plain_as<type_id::q4_1>(own, below);
            quantize_plain_as<type_id::q5_0>(own, below);
            quantize_plain_as<type_id::q5_1>(own, below);
            for (const type_id id : {type_id::q8_0, type_id::q8_1}) {
                slot(own, id).quantize = slot(below, id).quantize;
            }
            slot(own, type_id::q4_1).dequantize = slot(below, type_id::q4_1).dequantize;
        }
        // Everywhere, binary32 -> binary16 (16-wide vcvtps2ph is no faster per value than
        // two 8-wide ones on Zen 4, and the wider loop came out 1-2% slower: 18.9-19.0
        // against 19.1-19.4 G values/s, three alternating runs; on Zen 5 the same, 34.2 and
        // 35.0 against 34.1 and 35.0) and bf16's dequantize (19.2-19.4 against 19.4 on Zen 4,
        // 34.6-34.8 against 33.2-34.2 on Zen 5: memory-bound either way).
        slot(own, type_id::f16).quantize = slot(below, type_id::f16).quantize;
        slot(own, type_id::bf16).dequantize = slot(below, type_id::bf16).dequantize;
        // f16's dot: avx2's where 512-bit operations run as two halves (Zen 4: a 16-half
        // vcvtph2ps at two thirds of the rate of two 8-half ones, 18 against 27 G values/s);
        // the level's own, 16 halves a step, elsewhere (Zen 5: 27.8 -> 34.2 G values/s).
        if (cpu.splits_512) slot(own, type_id::f16).dot = slot(below, type_id::f16).dot;
        return own;
    }();
    return table;
}

}  // namespace qmix::kernels::levels
