// SPDX-License-Identifier: MIT
// The SIMD kernels against the scalar reference: the same bytes and floats for every
// kernel level this CPU runs, on rows built to hit what a vector formulation could get
// wrong, and dot products that agree to rounding.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "qmix/parallel.hpp"
#include "qmix/qmix.hpp"

using namespace qmix;

namespace {

std::vector<const kernels::kernel_table*> vector_tables() {
    std::vector<const kernels::kernel_table*> tables;
    for (const kernels::kernel_table* t : kernels::available_tables()) {
        if (t != &kernels::scalar_table()) tables.push_back(t);
    }
    return tables;
}

std::uint32_t bits_of(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, sizeof b);
    return b;
}

float float_of(std::uint32_t b) {
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}

/// Rows made of 32-value stretches, each of one kind chosen at random: the kinds probe
/// ties, signed zeros, equal magnitudes of opposite sign, zero extremes, scales that
/// underflow or overflow binary16, finite extremes whose range overflows binary32, and
/// (when allowed) NaN and infinity.
class row_maker {
  public:
    explicit row_maker(std::uint32_t seed) : rng_(seed) {}

    std::vector<float> row(std::int64_t n, bool non_finite) {
        std::vector<float> x(std::size_t(n), 0.0f);
        for (std::int64_t start = 0; start < n; start += 32) {
            const std::int64_t end = std::min(n, start + 32);
            fill(&x[std::size_t(start)], end - start, non_finite);
        }
        return x;
    }

    std::vector<float> importance(std::int64_t n) {
        std::vector<float> w(static_cast<std::size_t>(n));
        std::uniform_real_distribution<float> u(0.0f, 4.0f);
        for (auto& v : w) v = pick(8) == 0 ? 0.0f : u(rng_);
        return w;
    }

    int pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
    std::mt19937& rng() { return rng_; }

  private:
    float gauss() { return std::normal_distribution<float>(0.0f, 1.0f)(rng_); }
    float scale() { return std::pow(10.0f, std::uniform_real_distribution<float>(-4, 3)(rng_)); }

    void fill(float* x, std::int64_t m, bool non_finite) {
        const float s = scale();
        const int kinds = non_finite ? 17 : 16;
        switch (pick(kinds)) {
            case 0:
                for (std::int64_t i = 0; i < m; ++i) x[i] = s * gauss();
                break;
            case 1:
                for (std::int64_t i = 0; i < m; ++i) {
                    x[i] = s * std::uniform_real_distribution<float>(-1, 1)(rng_);
                }
                break;
            case 2:
                for (std::int64_t i = 0; i < m; ++i) x[i] = s * std::fabs(gauss());
                break;
            case 3:
                for (std::int64_t i = 0; i < m; ++i) x[i] = -s * std::fabs(gauss());
                break;
            case 4:
                for (std::int64_t i = 0; i < m; ++i) x[i] = pick(3) == 0 ? -0.0f : 0.0f;
                break;
            case 5: {
                const float c = pick(2) ? s : -s;
                for (std::int64_t i = 0; i < m; ++i) x[i] = c;
                break;
            }
            case 6:
                for (std::int64_t i = 0; i < m; ++i) {
                    x[i] = pick(10) ? (pick(2) ? 0.0f : -0.0f) : s * gauss();
                }
                break;
            case 7: {  // halves of a step: exact ties for the rounding of every format
                const float step = s / 64;
                for (std::int64_t i = 0; i < m; ++i) x[i] = step * float(pick(509) - 254) * 0.5f;
                x[pick(int(m))] = 127 * step;
                break;
            }
            case 8:
                for (std::int64_t i = 0; i < m; ++i) x[i] = 1e-30f * gauss();
                break;
            case 9:
                for (std::int64_t i = 0; i < m; ++i) x[i] = 1e-41f * gauss();
                break;
            case 10:
                for (std::int64_t i = 0; i < m; ++i) x[i] = 3e4f * gauss();
                break;
            case 11: {  // equal magnitudes, random signs: the first decides the sign of d
                for (std::int64_t i = 0; i < m; ++i) x[i] = pick(2) ? s : -s;
                break;
            }
            case 12: {  // small values and two spikes of equal magnitude, opposite signs
                for (std::int64_t i = 0; i < m; ++i) x[i] = 0.01f * s * gauss();
                x[pick(int(m))] = 10 * s;
                x[pick(int(m))] = -10 * s;
                break;
            }
            case 13: {  // a zero maximum (or minimum) with values of one sign
                const float sign = pick(2) ? 1.0f : -1.0f;
                for (std::int64_t i = 0; i < m; ++i) x[i] = -sign * s * std::fabs(gauss());
                x[pick(int(m))] = pick(2) ? 0.0f : -0.0f;
                break;
            }
            case 14: {  // binary16 rounding boundaries: midpoints between halves, +-1 ulp
                for (std::int64_t i = 0; i < m; ++i) {
                    const std::uint16_t h = std::uint16_t(pick(0x7bff) | (pick(2) << 15));
                    const float a = half_to_float(h);
                    const float b = half_to_float(std::uint16_t(h + 1));
                    const std::uint32_t mid = bits_of(0.5f * (a + b));
                    x[i] = float_of(mid + std::uint32_t(pick(3)) - 1);
                }
                break;
            }
            case 15: {  // finite extremes whose difference max - min overflows binary32
                const float big = std::numeric_limits<float>::max();
                for (std::int64_t i = 0; i < m; ++i) x[i] = s * gauss();
                x[pick(int(m))] = pick(2) ? std::ldexp(1.0f, 127) : big;
                x[pick(int(m))] = pick(2) ? -std::ldexp(1.0f, 127) : -big;
                break;
            }
            default: {
                for (std::int64_t i = 0; i < m; ++i) x[i] = s * gauss();
                const float specials[] = {std::numeric_limits<float>::infinity(),
                                          -std::numeric_limits<float>::infinity(),
                                          std::numeric_limits<float>::quiet_NaN(),
                                          -std::numeric_limits<float>::quiet_NaN()};
                x[pick(int(m))] = specials[pick(4)];
                break;
            }
        }
    }

    std::mt19937 rng_;
};

/// A buffer whose data starts `offset` bytes past an allocation aligned to 64.
class offset_buffer {
  public:
    offset_buffer(std::size_t bytes, std::size_t offset) : storage_(bytes + offset + 64) {
        auto base = reinterpret_cast<std::uintptr_t>(storage_.data());
        data_ = storage_.data() + ((64 - base % 64) % 64) + offset;
    }
    unsigned char* data() { return data_; }

  private:
    std::vector<unsigned char> storage_;
    unsigned char* data_;
};

std::size_t first_difference(const unsigned char* a, const unsigned char* b, std::size_t n) {
    std::size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

/// Row lengths in blocks: one, odd and even counts, and counts around the group sizes of
/// the 32-value kernels (4, 8 and 16 blocks); the 256-value k-quants take the short ones.
const std::int64_t block_counts[] = {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33};
const std::int64_t k_block_counts[] = {1, 2, 3, 5, 8};
/// Row lengths of the one-value-per-block float formats: vector tails of every size.
const std::int64_t float_lengths[] = {1, 3, 7, 8, 15, 16, 17, 31, 33, 64, 100, 1027};

std::vector<std::int64_t> lengths_of(type_id id) {
    const auto size = std::int64_t(block_size(id));
    std::vector<std::int64_t> lengths;
    if (size == 1) {
        lengths.assign(std::begin(float_lengths), std::end(float_lengths));
    } else if (size == 32) {
        for (std::int64_t blocks : block_counts) lengths.push_back(blocks * size);
    } else {
        for (std::int64_t blocks : k_block_counts) lengths.push_back(blocks * size);
    }
    return lengths;
}

/// The sum of |x_i y_i| over the dequantized rows x (of type `id`) and y (of `partner`):
/// the size of a dot product's terms, which bounds its rounding error.
double sum_of_abs_products(type_id id, type_id partner, const unsigned char* x,
                           const unsigned char* y, std::int64_t n) {
    std::vector<float> xf(static_cast<std::size_t>(n)), yf(static_cast<std::size_t>(n));
    dequantize(kernels::scalar_table(), id, x, xf.data(), 1, n);
    dequantize(kernels::scalar_table(), partner, y, yf.data(), 1, n);
    double magnitude = 0;
    for (std::size_t i = 0; i < xf.size(); ++i) magnitude += std::fabs(double(xf[i]) * yf[i]);
    return magnitude;
}

}  // namespace

TEST_CASE(
    "the scalar reference comes first and every level is named as QMIX_FORCE_ARCH "
    "spells it",
    "[kernels][dispatch]") {
    const auto tables = kernels::available_tables();
    REQUIRE(!tables.empty());
    CHECK(tables.front() == &kernels::scalar_table());
    CHECK(tables.front()->name == "scalar");
    // Every table is complete: each format of the registry has its kernels at every level
    // (the scalar reference's where a level has none of its own), so the row API looks the
    // type up once; the slots of ids the registry does not know stay empty.
    for (const kernels::kernel_table* t : tables) {
        INFO("level " << t->name);
        for (std::size_t id = 0; id < kernels::type_slots; ++id) {
            const kernels::format_kernels& entry = t->formats[id];
            const type_info* known = find_type_info(static_cast<type_id>(id));
            CHECK((entry.quantize != nullptr) == (known != nullptr));
            CHECK((entry.dequantize != nullptr) == (known != nullptr));
            CHECK((entry.dot != nullptr) == (known != nullptr && known->has_dot));
        }
    }
    for (const kernels::kernel_table* t : tables) {
        const std::string name(t->name);
        INFO("level " << name);
        CHECK((name == "scalar" || name == "sse2" || name == "avx2" || name == "avx512" ||
               name == "neon"));
        CHECK(&kernels::table_for(t->name) == t);
    }
    CHECK(&kernels::best_table() == tables.back());
#if !defined(QMIX_HEADER_ONLY) && (defined(__x86_64__) || defined(__aarch64__))
    // The dispatch build holds a vector level on both architectures the project targets.
    CHECK(tables.size() >= 2);
#endif
}

TEST_CASE("asking for a level that is not available names the levels that are",
          "[kernels][dispatch]") {
    try {
        kernels::table_for("mmx");
        FAIL("no error for an unknown level");
    } catch (const error& e) {
        const std::string message = e.what();
        INFO(message);
        CHECK(message.find("'mmx'") != std::string::npos);
        CHECK(message.find("not built") != std::string::npos);
        CHECK(message.find(kernels::available_names()) != std::string::npos);
    }
}

TEST_CASE("the active table is the forced level, or else the best one", "[kernels][dispatch]") {
    const char* forced = std::getenv("QMIX_FORCE_ARCH");
    if (forced != nullptr && *forced != '\0') {
        CHECK(kernels::active_table().name == forced);
    } else {
        CHECK(&kernels::active_table() == &kernels::best_table());
    }
    std::cout << "kernels: active level " << kernels::active_table().name
              << " (available: " << kernels::available_names() << ")\n";
}

TEST_CASE("every kernel level quantizes to the scalar reference's bytes", "[kernels]") {
    for (const kernels::kernel_table* table : vector_tables()) {
        row_maker make(20240601u);
        std::size_t rows_compared = 0;
        for_each_format(all_formats{}, [&](auto tag) {
            using F = typename decltype(tag)::type;
            const type_id id = F::id;
            for (std::int64_t n : lengths_of(id)) {
                for (int trial = 0; trial < 12; ++trial) {
                    const std::int64_t rows = 1 + make.pick(3);
                    const bool non_finite = trial % 6 == 5;  // NaN and infinity too
                    std::vector<float> input;
                    for (std::int64_t r = 0; r < rows; ++r) {
                        const auto row = make.row(n, non_finite);
                        input.insert(input.end(), row.begin(), row.end());
                    }
                    const auto weights = make.importance(n);
                    // Input shifted off any vector alignment; outputs at block alignment
                    // (kernels see it) and at an odd address (the row API bounces it).
                    std::vector<float> shifted(input.size() + 1);
                    std::copy(input.begin(), input.end(), shifted.begin() + 1);
                    const std::size_t bytes = row_size(id, n) * std::size_t(rows);
                    const std::size_t offset =
                        trial % 3 == 2 ? 1 : alignof(typename F::block) * std::size_t(trial % 2);
                    for (const float* importance : {(const float*)nullptr, weights.data()}) {
                        if (importance != nullptr && !F::uses_importance) continue;
                        offset_buffer ours(bytes, offset), reference(bytes, 0);
                        quantize(*table, id, shifted.data() + 1, ours.data(), rows, n, importance);
                        quantize(kernels::scalar_table(), id, input.data(), reference.data(), rows,
                                 n, importance);
                        const std::size_t at =
                            first_difference(ours.data(), reference.data(), bytes);
                        INFO(table->name << " " << F::name << ": " << rows << " rows of " << n
                                         << (importance ? " with importance" : "")
                                         << (non_finite ? " (non-finite values)" : "")
                                         << ", output offset " << offset
                                         << ", first differing byte " << at);
                        REQUIRE(at == bytes);
                        ++rows_compared;
                    }
                }
            }
        });
        std::cout << "kernels: " << table->name << " quantized " << rows_compared
                  << " row sets exactly as the scalar reference\n";
    }
}

TEST_CASE("every kernel level dequantizes to the scalar reference's floats", "[kernels]") {
    for (const kernels::kernel_table* table : vector_tables()) {
        row_maker make(77u);
        for_each_format(all_formats{}, [&](auto tag) {
            using F = typename decltype(tag)::type;
            const type_id id = F::id;
            for (std::int64_t n : lengths_of(id)) {
                for (int trial = 0; trial < 4; ++trial) {
                    const std::int64_t rows = 1 + make.pick(3);
                    const std::size_t bytes = row_size(id, n) * std::size_t(rows);
                    std::vector<unsigned char> packed(bytes);
                    if (trial < 2) {  // bytes written by the quantizer
                        std::vector<float> input;
                        for (std::int64_t r = 0; r < rows; ++r) {
                            const auto row = make.row(n, false);
                            input.insert(input.end(), row.begin(), row.end());
                        }
                        quantize(kernels::scalar_table(), id, input.data(), packed.data(), rows, n);
                    } else {  // arbitrary bytes: every scale, level and NaN pattern
                        for (auto& b : packed) b = std::uint8_t(make.pick(256));
                    }
                    offset_buffer source(bytes, trial % 2 ? alignof(typename F::block) : 0);
                    std::memcpy(source.data(), packed.data(), bytes);
                    std::vector<float> ours(std::size_t(n * rows) + 1),
                        reference(std::size_t(n * rows));
                    dequantize(*table, id, source.data(), ours.data() + 1, rows, n);
                    dequantize(kernels::scalar_table(), id, packed.data(), reference.data(), rows,
                               n);
                    const std::size_t at =
                        first_difference(reinterpret_cast<const unsigned char*>(ours.data() + 1),
                                         reinterpret_cast<const unsigned char*>(reference.data()),
                                         reference.size() * sizeof(float));
                    INFO(table->name << " " << F::name << ": " << rows << " rows of " << n
                                     << (trial < 2 ? " (quantizer output)" : " (arbitrary bytes)")
                                     << ", first differing value " << at / sizeof(float));
                    REQUIRE(at == reference.size() * sizeof(float));
                }
            }
        });
    }
}

TEST_CASE("q3_k groups whose value of largest magnitude is positive get the scalar code's bytes",
          "[kernels]") {
    // The vector levels skip the greedy sweeps of a batch of groups whose extremes are all
    // positive (or flat): each level then has the opposite sign of its value, and no sweep
    // can move one. Such batches (ggml's own benchmark data is of this kind) appear rarely
    // in the random rows above; here whole rows of them, with finite and non-finite
    // products, and rows where some groups are negated (mixed batches).
    std::mt19937 rng(4242u);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    const float inf = std::numeric_limits<float>::infinity();
    auto group = [&](float* x, int kind, int seed) {
        const int spike = seed % 16;
        switch (kind) {
            case 0:  // ggml's benchmark data
                for (int i = 0; i < 16; ++i) x[i] = float(0.1 + 2 * std::cos(float(seed * 16 + i)));
                x[spike] = 2.5f;
                break;
            case 1:
                for (int i = 0; i < 16; ++i) x[i] = gauss(rng);
                x[spike] = 10.0f;
                break;
            case 2:  // flat
                for (int i = 0; i < 16; ++i) x[i] = 1e-30f * gauss(rng);
                x[spike] = 1e-29f;
                break;
            case 3:  // just above the flat threshold; x^2 l^2 underflows
                for (int i = 0; i < 16; ++i) x[i] = 1e-15f * gauss(rng);
                x[spike] = 1e-14f;
                break;
            case 4:  // x^3 overflows: the sums are not finite
                for (int i = 0; i < 16; ++i) x[i] = 1e13f * gauss(rng);
                x[spike] = 1e14f;
                break;
            case 5:  // x^3 overflows, x^2 l^2 does not for all
                for (int i = 0; i < 16; ++i) x[i] = 1e12f * gauss(rng);
                x[spike] = 5e12f;
                break;
            case 6:
                for (int i = 0; i < 16; ++i) x[i] = gauss(rng);
                x[spike] = inf;
                break;
            case 7:
                for (int i = 0; i < 16; ++i) x[i] = gauss(rng);
                x[spike] = 10.0f;
                x[(spike + 3) % 16] = std::numeric_limits<float>::quiet_NaN();
                break;
            case 8:  // halves of a step: ties
                for (int i = 0; i < 16; ++i) x[i] = 0.125f * float(int(rng() % 61) - 30);
                x[spike] = 4.0f;
                break;
            case 9:  // equal magnitudes, the first one positive
                for (int i = 0; i < 16; ++i) x[i] = rng() % 2 ? 1.5f : -1.5f;
                x[0] = 1.5f;
                break;
            default:  // zeros and a positive value
                for (int i = 0; i < 16; ++i) x[i] = rng() % 2 ? 0.0f : -0.0f;
                x[spike] = 0.75f;
                break;
        }
    };
    const std::int64_t n = 256 * 3;
    for (int variant = 0; variant < 6; ++variant) {
        // Variants 0 and 1: finite products only (every such batch is skipped); the others
        // also overflowing products, infinities and NaN.
        static const int finite_kinds[] = {0, 1, 2, 3, 8, 9, 10};
        const std::int64_t rows = 1 + variant % 3 * 7;  // partial and whole chunks
        std::vector<float> input(std::size_t(n * rows));
        for (std::int64_t g = 0; g < n * rows / 16; ++g) {
            float* x = input.data() + g * 16;
            const int kind = variant < 2 ? finite_kinds[rng() % 7] : int(rng() % 11);
            group(x, kind, int(g));
            if (variant % 2 == 1 && g % 5 == 0) {  // a negative extreme: mixed batches
                for (int i = 0; i < 16; ++i) x[i] = -x[i];
            }
        }
        const std::size_t bytes = row_size(type_id::q3_k, n) * std::size_t(rows);
        std::vector<unsigned char> reference(bytes);
        quantize(kernels::scalar_table(), type_id::q3_k, input.data(), reference.data(), rows, n);
        for (const kernels::kernel_table* table : vector_tables()) {
            std::vector<unsigned char> ours(bytes);
            quantize(*table, type_id::q3_k, input.data(), ours.data(), rows, n);
            INFO(table->name << ": variant " << variant << ", " << rows << " rows");
            CHECK(first_difference(ours.data(), reference.data(), bytes) == bytes);
        }
    }
}

TEST_CASE("q4_1 and q5_1 blocks whose range overflows binary32 get the scalar code's bytes",
          "[kernels]") {
    // max - min = 2^128 is infinite: d is infinite, 1/d zero, and x - min infinite for the
    // largest value. The scalar code stores level 0 everywhere; one vector level wrote 15.
    const float big = std::ldexp(1.0f, 127);
    std::vector<std::vector<float>> blocks;
    for (int variant = 0; variant < 6; ++variant) {
        std::vector<float> x(32, 1.0f);
        for (int i = 0; i < 32; ++i) x[std::size_t(i)] = float(i % 5) - 2.0f;
        const std::size_t at_max = std::size_t(variant * 5 % 32),
                          at_min = std::size_t(31 - variant);
        x[at_max] = variant % 2 ? big : std::numeric_limits<float>::max();
        x[at_min] = variant % 3 ? -big : -std::numeric_limits<float>::max();
        blocks.push_back(x);
    }
    std::vector<float> row;  // 16 blocks: every vector group width, extremes in some only
    for (int b = 0; b < 16; ++b) {
        if (b % 3 == 0) {
            row.insert(row.end(), blocks[std::size_t(b / 3) % blocks.size()].begin(),
                       blocks[std::size_t(b / 3) % blocks.size()].end());
        } else {
            for (int i = 0; i < 32; ++i) row.push_back(0.25f * float(i - b));
        }
    }
    const std::int64_t n = std::int64_t(row.size());
    for (const type_id id : {type_id::q4_1, type_id::q5_1}) {
        std::vector<unsigned char> reference(row_size(id, n));
        quantize(kernels::scalar_table(), id, row.data(), reference.data(), 1, n);
        // The scalar code's levels for the first block: all zero (d is infinite).
        const auto* first = reinterpret_cast<const formats::block_q4_1*>(reference.data());
        if (id == type_id::q4_1) {
            for (const std::uint8_t q : first->qs) CHECK(q == 0);
        }
        std::vector<float> reference_floats(std::size_t(n), 0.0f);
        dequantize(kernels::scalar_table(), id, reference.data(), reference_floats.data(), 1, n);
        for (const kernels::kernel_table* table : vector_tables()) {
            INFO(table->name << " " << type_name(id));
            std::vector<unsigned char> ours(reference.size());
            quantize(*table, id, row.data(), ours.data(), 1, n);
            CHECK(first_difference(ours.data(), reference.data(), ours.size()) == ours.size());
            // Requantizing: those blocks dequantize to NaN; every level gives the same bits.
            std::vector<float> floats(std::size_t(n), 1.0f);
            dequantize(*table, id, reference.data(), floats.data(), 1, n);
            CHECK(first_difference(reinterpret_cast<const unsigned char*>(floats.data()),
                                   reinterpret_cast<const unsigned char*>(reference_floats.data()),
                                   floats.size() * sizeof(float)) == floats.size() * sizeof(float));
        }
    }
}

TEST_CASE(
    "q4_1 and q5_1 scales and offsets that are infinite or NaN dequantize to the same bits "
    "on every level",
    "[kernels]") {
    // binary16 specials for d and m: infinities, quiet and signalling NaNs with payloads of
    // either sign, and ordinary values. d * q + m is NaN for most pairs; which NaN it is
    // must not depend on the level, nor on the order a compiler gives the operands.
    const std::uint16_t specials[] = {0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7d55, 0xfd01,
                                      0x7e3f, 0x3c00, 0xbc00, 0x0000, 0x8000, 0x7bff};
    for (const type_id id : {type_id::q4_1, type_id::q5_1}) {
        const std::size_t block_bytes = row_size(id, 32);
        std::vector<unsigned char> packed;
        std::mt19937 rng(5);
        for (const std::uint16_t d : specials) {
            for (const std::uint16_t m : specials) {
                std::vector<unsigned char> block(block_bytes);
                for (auto& b : block) b = std::uint8_t(rng());
                std::memcpy(block.data(), &d, 2);  // d, then m, lead both layouts
                std::memcpy(block.data() + 2, &m, 2);
                packed.insert(packed.end(), block.begin(), block.end());
            }
        }
        const std::int64_t n = std::int64_t(packed.size() / block_bytes * 32);
        std::vector<float> reference(static_cast<std::size_t>(n));
        dequantize(kernels::scalar_table(), id, packed.data(), reference.data(), 1, n);
        // The scalar code's NaN is x86's, whatever the compiler emitted: in q * d, then in
        // + m, the first NaN operand, quieted; else, for inf * 0 and inf - inf, the default
        // NaN (negative, quiet, no payload). The levels q: the same blocks with d = 1, m = 0.
        std::vector<unsigned char> unit = packed;
        for (std::size_t b = 0; b < unit.size(); b += block_bytes) {
            const std::uint16_t one = 0x3c00, zero = 0;
            std::memcpy(unit.data() + b, &one, 2);
            std::memcpy(unit.data() + b + 2, &zero, 2);
        }
        std::vector<float> levels(static_cast<std::size_t>(n));
        dequantize(kernels::scalar_table(), id, unit.data(), levels.data(), 1, n);
        const auto quiet = [](float v) { return bits_of(v) | 0x00400000u; };
        std::size_t specials_checked = 0;
        for (std::int64_t i = 0; i < n; ++i) {
            const std::size_t b = std::size_t(i / 32) * block_bytes;
            std::uint16_t dh, mh;
            std::memcpy(&dh, packed.data() + b, 2);
            std::memcpy(&mh, packed.data() + b + 2, 2);
            const float d = half_to_float(dh), m = half_to_float(mh);
            if (std::isfinite(d) && std::isfinite(m)) continue;
            const float q = levels[std::size_t(i)];
            std::uint32_t expected;
            float product = q * d;
            std::uint32_t product_nan = 0;
            if (std::isnan(d)) {
                product_nan = quiet(d);
            } else if (std::isinf(d) && q == 0.0f) {
                product_nan = 0xffc00000u;
            }
            if (product_nan != 0) {
                expected = product_nan;
            } else if (std::isnan(m)) {
                expected = quiet(m);
            } else if (std::isinf(product) && std::isinf(m) && (product > 0) != (m > 0)) {
                expected = 0xffc00000u;
            } else {
                expected = bits_of(product + m);
            }
            INFO("value " << i << ": q " << q << ", d 0x" << std::hex << dh << ", m 0x" << mh);
            REQUIRE(bits_of(reference[std::size_t(i)]) == expected);
            ++specials_checked;
        }
        CHECK(specials_checked > 1000);
        for (const kernels::kernel_table* table : vector_tables()) {
            INFO(table->name << " " << type_name(id));
            std::vector<float> ours(static_cast<std::size_t>(n));
            dequantize(*table, id, packed.data(), ours.data(), 1, n);
            const std::size_t at =
                first_difference(reinterpret_cast<const unsigned char*>(ours.data()),
                                 reinterpret_cast<const unsigned char*>(reference.data()),
                                 ours.size() * sizeof(float));
            INFO("first differing value " << at / sizeof(float));
            CHECK(at == ours.size() * sizeof(float));
        }
    }
}

TEST_CASE("q4_0 and q5_0 with importance store a NaN scale as the default NaN on every level",
          "[kernels][core]") {
    // An infinity or a NaN anywhere in the row makes sigma2, and so every weight, non-finite:
    // each block's search ends on a NaN scale. Which NaN depended on the operand order of
    // the compiled code (the avx2 and avx512 levels' VEX encoding at -O0 let the other NaN
    // through than the scalar code did, and d came out 0x7e00 against 0xfe00).
    const float nan = std::numeric_limits<float>::quiet_NaN();  // positive: 0x7fc00000
    const float inf = std::numeric_limits<float>::infinity();
    for (int variant = 0; variant < 3; ++variant) {
        std::vector<float> row(128), importance(128);
        for (std::size_t i = 0; i < row.size(); ++i) {
            row[i] = 0.01f * float(int(i * 37 % 101) - 50);
            importance[i] = i % 8 == 3 ? 0.0f : 0.5f + 0.01f * float(i % 13);
        }
        if (variant == 0) row[70] = nan;
        if (variant == 1) row[5] = -nan;
        if (variant == 2) {
            row[40] = inf;
            row[100] = -inf;
        }
        const std::int64_t n = std::int64_t(row.size());
        for (const type_id id : {type_id::q4_0, type_id::q5_0}) {
            const std::size_t block_bytes = row_size(id, 32);
            std::vector<unsigned char> reference(row_size(id, n));
            quantize(kernels::scalar_table(), id, row.data(), reference.data(), 1, n,
                     importance.data());
            for (const kernels::kernel_table* table : kernels::available_tables()) {
                INFO(table->name << " " << type_name(id) << ", variant " << variant);
                std::vector<unsigned char> ours(reference.size());
                quantize(*table, id, row.data(), ours.data(), 1, n, importance.data());
                for (std::size_t b = 0; b < ours.size() / block_bytes; ++b) {
                    const unsigned d = ours[b * block_bytes] | ours[b * block_bytes + 1] << 8;
                    INFO("block " << b);
                    CHECK(d == 0xfe00u);  // binary16 of x86's default NaN, 0xffc00000
                }
                CHECK(first_difference(ours.data(), reference.data(), ours.size()) == ours.size());
            }
        }
    }
}

TEST_CASE("the importance-weighted 32-value quantizers give the scalar bytes in full batches",
          "[kernels]") {
    // kernels/weighted.hpp runs one block per lane, up to 64 lanes at once (AVX-512's
    // symmetric search), and sums the rows' mean squares eight rows at a time: 11 rows of
    // 130 blocks fill whole batches and a group of rows on every level, and leave tails.
    // An importance vector with an infinity or a NaN sends the rows to the scalar code; so
    // does a row whose mean square overflows. (row_maker's rows mostly hold a stretch whose
    // squares overflow, and so take the scalar code.) Blocks of Gaussian values at scales
    // from 1e-6 to 1e3: all positive, all negative, all zero, constant, or one outlier.
    row_maker make(777u);
    std::mt19937& rng = make.rng();
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    const std::int64_t n = 130 * 32;
    const std::int64_t rows = 11;  // a group of 8 rows summed side by side, and 3 more
    std::vector<float> input(std::size_t(n * rows));
    for (std::size_t start = 0; start < input.size(); start += 32) {
        const float scale = std::pow(10.0f, float(make.pick(10) - 6));
        const int kind = make.pick(8);
        for (std::size_t i = start; i < start + 32; ++i) {
            const float v = scale * gauss(rng);
            input[i] = kind == 0   ? std::abs(v)
                       : kind == 1 ? -std::abs(v)
                       : kind == 2 ? 0.0f
                       : kind == 3 ? scale
                                   : v;
        }
        if (kind == 4) input[start + std::size_t(make.pick(32))] = 50 * scale;
    }
    for (int variant = 0; variant < 4; ++variant) {
        auto importance = make.importance(n);
        auto values = input;
        if (variant == 1) importance[77] = std::numeric_limits<float>::infinity();
        if (variant == 2) importance[4000] = std::numeric_limits<float>::quiet_NaN();
        if (variant == 3) {  // rows 1 and 9: sigma2 overflows
            values[std::size_t(n) + 5] = 3e19f;
            values[std::size_t(9 * n) + 4000] = -3e19f;
        }
        for (const type_id id : {type_id::q4_0, type_id::q4_1, type_id::q5_0, type_id::q5_1}) {
            const std::size_t bytes = row_size(id, n) * std::size_t(rows);
            std::vector<unsigned char> reference(bytes);
            quantize(kernels::scalar_table(), id, values.data(), reference.data(), rows, n,
                     importance.data());
            for (const kernels::kernel_table* table : vector_tables()) {
                std::vector<unsigned char> ours(bytes);
                quantize(*table, id, values.data(), ours.data(), rows, n, importance.data());
                INFO(table->name << " " << type_name(id) << ", variant " << variant);
                CHECK(first_difference(ours.data(), reference.data(), bytes) == bytes);
            }
        }
    }
}

TEST_CASE("binary16 conversion in every kernel level rounds like the scalar code", "[kernels]") {
    // Every binary16 pattern widened, and a spread of binary32 patterns narrowed: every
    // 1021st pattern plus each half's rounding midpoint and its neighbours. (All 2^32 were
    // checked once, outside the suite, for F16C, the SSE2 code and NEON.)
    std::vector<std::uint16_t> halves(65536);
    for (std::size_t h = 0; h < halves.size(); ++h) halves[h] = std::uint16_t(h);
    std::vector<float> floats;
    for (std::uint64_t b = 0; b < (1ull << 32); b += 1021)
        floats.push_back(float_of(std::uint32_t(b)));
    for (std::uint32_t h = 0; h < 0x7c00; ++h) {
        for (std::uint32_t sign : {0u, 0x8000u}) {
            const float a = half_to_float(std::uint16_t(h | sign));
            const float c = half_to_float(std::uint16_t((h + 1) | sign));
            const std::uint32_t mid = bits_of(0.5f * (a + c));
            for (std::uint32_t d : {mid - 1, mid, mid + 1}) floats.push_back(float_of(d));
        }
    }
    const auto n = std::int64_t(floats.size());
    std::vector<std::uint16_t> narrowed_reference(floats.size());
    quantize(kernels::scalar_table(), type_id::f16, floats.data(), narrowed_reference.data(), 1, n);
    std::vector<float> widened_reference(halves.size());
    dequantize(kernels::scalar_table(), type_id::f16, halves.data(), widened_reference.data(), 1,
               65536);
    for (const kernels::kernel_table* table : vector_tables()) {
        INFO("level " << table->name);
        std::vector<std::uint16_t> narrowed(floats.size());
        quantize(*table, type_id::f16, floats.data(), narrowed.data(), 1, n);
        std::size_t narrowing_mismatches = 0;
        for (std::size_t i = 0; i < floats.size(); ++i) {
            narrowing_mismatches += narrowed[i] != narrowed_reference[i];
        }
        CHECK(narrowing_mismatches == 0);
        std::vector<float> widened(halves.size());
        dequantize(*table, type_id::f16, halves.data(), widened.data(), 1, 65536);
        CHECK(std::memcmp(widened.data(), widened_reference.data(), widened.size() * 4) == 0);
    }
}

TEST_CASE("bf16 narrowing in every kernel level rounds like the scalar code", "[kernels]") {
    // Every 1021st binary32 pattern, each bf16's rounding midpoint and its neighbours (ties
    // to even both ways), subnormals, infinities and NaNs with every kind of payload, in one
    // row read from several start offsets, so that the vector steps see every alignment
    // and specials in any position of a step. (All 2^32 patterns were checked once, outside
    // the suite, for the AVX2 and AVX-512 code.)
    std::vector<float> floats;
    for (std::uint64_t b = 0; b < (1ull << 32); b += 1021)
        floats.push_back(float_of(std::uint32_t(b)));
    for (std::uint32_t h = 0; h < 0x7f80; h += 7) {
        for (std::uint32_t sign : {0u, 0x80000000u}) {
            const std::uint32_t mid = sign | (h << 16) | 0x8000u;
            for (std::uint32_t d : {mid - 1, mid, mid + 1}) floats.push_back(float_of(d));
        }
    }
    for (std::uint32_t payload :
         {0x1u, 0x7fffu, 0x8000u, 0x8001u, 0x3fffffu, 0x400000u, 0x7fffffu}) {
        for (std::uint32_t sign : {0u, 0x80000000u}) {
            floats.push_back(float_of(sign | 0x7f800000u | payload));  // NaN
            floats.push_back(float_of(sign | payload));                // subnormal
        }
    }
    floats.push_back(std::numeric_limits<float>::infinity());
    floats.push_back(-std::numeric_limits<float>::infinity());
    floats.push_back(std::numeric_limits<float>::max());
    std::mt19937 rng(7u);
    std::shuffle(floats.begin(), floats.end(), rng);
    const auto n = std::int64_t(floats.size()) - 64;
    for (const kernels::kernel_table* table : vector_tables()) {
        for (std::int64_t start : {0, 1, 5, 12, 31}) {
            INFO("level " << table->name << ", row starting at value " << start);
            std::vector<std::uint16_t> ours(std::size_t(n) + 1);
            std::vector<std::uint16_t> reference(static_cast<std::size_t>(n));
            // Outputs at both parities of a 4-byte word.
            std::uint16_t* out = ours.data() + start % 2;
            quantize(*table, type_id::bf16, floats.data() + start, out, 1, n);
            quantize(kernels::scalar_table(), type_id::bf16, floats.data() + start,
                     reference.data(), 1, n);
            CHECK(first_difference(reinterpret_cast<const unsigned char*>(out),
                                   reinterpret_cast<const unsigned char*>(reference.data()),
                                   std::size_t(n) * 2) == std::size_t(n) * 2);
        }
    }
}

TEST_CASE("the bf16 dot product keeps subnormal factors (no denormals-are-zero)", "[kernels]") {
    // A subnormal bf16 times a large one is a product binary32 holds exactly, and it is
    // what the row is about here: instructions that treat subnormal inputs as zero (such
    // as AVX512-BF16's vdpbf16ps) would lose it.
    const std::int64_t n = 1000;
    std::vector<std::uint16_t> x(std::size_t(n), 0), y(std::size_t(n), 0);
    for (std::int64_t i = 0; i < n; ++i) {
        x[std::size_t(i)] = std::uint16_t(1 + i % 127);     // subnormals 2^-133 .. 127 * 2^-133
        y[std::size_t(i)] = std::uint16_t(0x7e80 + i % 3);  // about 2^126
    }
    const float reference = dot(kernels::scalar_table(), type_id::bf16, x.data(), y.data(), n);
    REQUIRE(reference > 1.0f);
    for (const kernels::kernel_table* table : vector_tables()) {
        INFO("level " << table->name);
        const float ours = dot(*table, type_id::bf16, x.data(), y.data(), n);
        CHECK(std::fabs(double(ours) - reference) <= 1e-6 * reference);
    }
}

TEST_CASE("every kernel level's dot products agree with the scalar reference to rounding",
          "[kernels]") {
    for (const kernels::kernel_table* table : vector_tables()) {
        row_maker make(4242u);
        for_each_format(all_formats{}, [&](auto tag) {
            using F = typename decltype(tag)::type;
            if constexpr (F::has_dot) {
                const type_id id = F::id;
                const type_id partner = F::dot_partner;
                for (std::int64_t n : lengths_of(id)) {
                    for (int trial = 0; trial < 4; ++trial) {
                        const auto a = make.row(n, false);
                        const auto b = make.row(n, false);
                        std::vector<unsigned char> x(row_size(id, n)), y(row_size(partner, n));
                        quantize(kernels::scalar_table(), id, a.data(), x.data(), 1, n);
                        quantize(kernels::scalar_table(), partner, b.data(), y.data(), 1, n);
                        const double magnitude =
                            sum_of_abs_products(id, partner, x.data(), y.data(), n);
                        if (!std::isfinite(magnitude)) continue;
                        offset_buffer xs(x.size(), trial % 2 ? alignof(typename F::block) : 0);
                        std::memcpy(xs.data(), x.data(), x.size());
                        const float ours = dot(*table, id, xs.data(), y.data(), n);
                        const float reference =
                            dot(kernels::scalar_table(), id, x.data(), y.data(), n);
                        INFO(table->name << " " << F::name << " . " << type_name(partner) << ", n "
                                         << n << ": ours " << ours << ", scalar " << reference
                                         << ", sum of |terms| " << magnitude);
                        if (!std::isfinite(reference)) {
                            // q4_1 and q5_1 rows of 1e4-sized values overflow the partner's
                            // binary16 sum s: both sides must see it.
                            CHECK(!std::isfinite(ours));
                        } else {
                            CHECK(std::fabs(double(ours) - reference) <=
                                  2e-5 * (magnitude + std::fabs(double(reference))) + 1e-30);
                        }
                    }
                }
            }
        });
    }
}

/// Where a k-quant or iq4_xs block keeps its sub-block scales (and mins): offset and bytes.
std::pair<std::size_t, std::size_t> scale_bytes(type_id id) {
    switch (id) {
        case type_id::q2_k:
            return {offsetof(formats::block_q2_k, scales), 16};
        case type_id::q3_k:
            return {offsetof(formats::block_q3_k, scales), 12};
        case type_id::q4_k:
            return {offsetof(formats::block_q4_k, scales), 12};
        case type_id::q5_k:
            return {offsetof(formats::block_q5_k, scales), 12};
        case type_id::q6_k:
            return {offsetof(formats::block_q6_k, scales), 16};
        case type_id::iq4_xs:
            return {offsetof(formats::block_iq4_xs, scales_l), 4};
        default:
            FAIL("no sub-block scales");
            return {0, 0};
    }
}

/// Rows like a model's weights and activations: Gaussian, with a scale drawn per block of
/// 256 (10^-2 .. 10^2), or per stretch of 32 when `stretches`. (row_maker's extremes, whose
/// products overflow binary32, are for the quantizers: summed in another order than the
/// reference's, such rows overflow in partial sums where the reference does not, in
/// ggml's kernels alike; the rounding test above leaves them out too.)
std::vector<float> weights_like(std::mt19937& rng, std::int64_t n, bool stretches) {
    std::vector<float> x(static_cast<std::size_t>(n));
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::uniform_real_distribution<float> exponent(-2.0f, 2.0f);
    const std::int64_t run = stretches ? 32 : 256;
    for (std::int64_t start = 0; start < n; start += run) {
        const float scale = std::pow(10.0f, exponent(rng));
        for (std::int64_t i = start; i < std::min(n, start + run); ++i) {
            x[std::size_t(i)] = scale * gauss(rng);
        }
    }
    return x;
}

TEST_CASE("the k-quant and iq4_xs dot products agree with the scalar reference to 1e-5",
          "[kernels]") {
    // Their kernels sum each block exactly in integers, then scale and add the blocks in
    // float vector accumulators, in another order than the reference (kquants/dot_avx2.hpp;
    // the NEON ones keep the reference's order). They are held to the tolerance of the
    // golden dot products (golden/README.md), |ours - reference| <= 1e-5 * max(1, |ref|),
    // widened by what two orders of float additions can part by where terms cancel (the
    // scaled sums and the min terms of a block, or the blocks of a row of random signs):
    // (blocks + 8) * 2^-24 * (the sum of |products| of the dequantized rows).
    // Then one byte of sub-block scales of the block that contributes most is changed (the
    // one that moves the reference most): where that moves the reference out of the
    // tolerance, the kernel must follow it, as one that misread a scale would not.
    const type_id formats[] = {type_id::q2_k, type_id::q3_k, type_id::q4_k,
                               type_id::q5_k, type_id::q6_k, type_id::iq4_xs};
    for (const kernels::kernel_table* table : vector_tables()) {
        row_maker make(777u);
        for (const type_id id : formats) {
            if (kernels::slot(*table, id).dot == nullptr) continue;
            const type_id partner = info(id).dot_partner;
            const std::size_t x_block = row_size(id, 256);
            const std::size_t y_block = row_size(partner, 256);
            int rows = 0;
            int sensitive = 0;
            for (std::int64_t blocks : {1, 2, 3, 8, 9, 17, 64}) {
                const std::int64_t n = blocks * 256;
                for (int trial = 0; trial < 4; ++trial) {
                    const auto a = weights_like(make.rng(), n, trial % 2 == 1);
                    const auto b = weights_like(make.rng(), n, false);
                    std::vector<unsigned char> x(row_size(id, n)), y(row_size(partner, n));
                    quantize(kernels::scalar_table(), id, a.data(), x.data(), 1, n);
                    quantize(kernels::scalar_table(), partner, b.data(), y.data(), 1, n);
                    const auto block_term = [&](std::int64_t k) {
                        return dot(kernels::scalar_table(), id, x.data() + std::size_t(k) * x_block,
                                   y.data() + std::size_t(k) * y_block, 256);
                    };
                    std::int64_t largest = 0;
                    for (std::int64_t k = 1; k < blocks; ++k) {
                        if (std::fabs(block_term(k)) > std::fabs(block_term(largest))) largest = k;
                    }
                    const double magnitude =
                        sum_of_abs_products(id, partner, x.data(), y.data(), n);
                    const auto within = [&](float ours, float reference) {
                        return std::fabs(double(ours) - reference) <=
                               1e-5 * std::max(1.0, std::fabs(double(reference))) +
                                   double(blocks + 8) * 0x1p-24 * magnitude;
                    };
                    const float ours = dot(*table, id, x.data(), y.data(), n);
                    const float reference = dot(kernels::scalar_table(), id, x.data(), y.data(), n);
                    INFO(table->name << " " << type_name(id) << ", n " << n << ": ours " << ours
                                     << ", scalar " << reference << ", sum of |products| "
                                     << magnitude);
                    REQUIRE(std::isfinite(reference));
                    CHECK(within(ours, reference));
                    ++rows;

                    const auto [first, count] = scale_bytes(id);
                    unsigned char* scales = x.data() + std::size_t(largest) * x_block + first;
                    std::size_t most = 0;
                    float most_moved = reference;
                    for (std::size_t i = 0; i < count; ++i) {
                        scales[i] ^= 0x0C;
                        const float moved = dot(kernels::scalar_table(), id, x.data(), y.data(), n);
                        if (std::fabs(double(moved) - reference) >
                            std::fabs(double(most_moved) - reference)) {
                            most = i;
                            most_moved = moved;
                        }
                        scales[i] ^= 0x0C;
                    }
                    if (!std::isfinite(most_moved) || within(most_moved, reference)) continue;
                    ++sensitive;
                    scales[most] ^= 0x0C;
                    const float broken = dot(*table, id, x.data(), y.data(), n);
                    INFO("scale byte " << most << " of block " << largest << " changed: ours "
                                       << broken << ", scalar " << most_moved);
                    CHECK(within(broken, most_moved));
                    CHECK(!within(broken, reference));
                }
            }
            // Most rows feel the change.
            INFO(table->name << " " << type_name(id) << ": " << sensitive << " of " << rows
                             << " rows moved out of the tolerance by a changed scale");
            CHECK(rows == 28);
            CHECK(sensitive >= rows / 2);
        }
    }
}

TEST_CASE("the parallel drivers give the same bytes and floats for any thread count",
          "[kernels][parallel][dispatch]") {
    row_maker make(99u);
    const std::int64_t rows = 37;
    for (const kernels::kernel_table* table : kernels::available_tables()) {
        for_each_format(all_formats{}, [&](auto tag) {
            using F = typename decltype(tag)::type;
            const std::int64_t n = 512;
            std::vector<float> input;
            for (std::int64_t r = 0; r < rows; ++r) {
                const auto row = make.row(n, false);
                input.insert(input.end(), row.begin(), row.end());
            }
            const auto weights = make.importance(n);
            const float* importance = F::uses_importance ? weights.data() : nullptr;
            const std::size_t bytes = row_size(F::id, n) * std::size_t(rows);
            std::vector<unsigned char> one(bytes);
            quantize_parallel(*table, F::id, input.data(), one.data(), rows, n, importance, 1);
            std::vector<float> one_back(input.size());
            dequantize_parallel(*table, F::id, one.data(), one_back.data(), rows, n, 1);
            for (unsigned threads : {2u, 3u, 8u, 64u}) {
                INFO(table->name << " " << F::name << " with " << threads << " threads");
                std::vector<unsigned char> many(bytes);
                quantize_parallel(*table, F::id, input.data(), many.data(), rows, n, importance,
                                  threads);
                CHECK(many == one);
                std::vector<float> back(input.size());
                dequantize_parallel(*table, F::id, one.data(), back.data(), rows, n, threads);
                CHECK(std::memcmp(back.data(), one_back.data(), back.size() * 4) == 0);
            }
            // The default overloads use the active table, with the same result.
            if (table == &kernels::active_table()) {
                std::vector<unsigned char> active(bytes);
                quantize_parallel(F::id, input.data(), active.data(), rows, n, importance, 3);
                CHECK(active == one);
            }
        });
    }
}
