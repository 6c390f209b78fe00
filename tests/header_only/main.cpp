// SPDX-License-Identifier: MIT
// Built without qmix::dispatch: qmix used as a plain header, with the kernel level its own
// compiler flags allow (sse2 for a default x86-64 build, neon on aarch64, avx2 or avx512
// with -march=native). That level must reproduce the scalar reference for every format.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "qmix/header_only.hpp"

int main() {
    using namespace qmix;
    const kernels::kernel_table& level = kernels::active_table();
    const kernels::kernel_table& scalar = kernels::scalar_table();
    std::mt19937 rng(7);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    int failures = 0;
    int rows_compared = 0;
    for_each_format(all_formats{}, [&](auto tag) {
        using F = typename decltype(tag)::type;
        const std::int64_t n = 9 * 256;
        const std::int64_t rows = 3;
        std::vector<float> x(std::size_t(n * rows));
        for (std::size_t i = 0; i < x.size(); ++i) {
            x[i] = (i / 32) % 5 == 4 ? 0.0f : std::ldexp(gauss(rng), int(i / 97 % 13) - 6);
        }
        std::vector<float> weights(static_cast<std::size_t>(n));
        for (auto& w : weights) w = std::fabs(gauss(rng));
        std::vector<unsigned char> ours(row_size(F::id, n) * rows), reference(ours.size());
        for (const float* importance : {(const float*)nullptr, (const float*)weights.data()}) {
            quantize(level, F::id, x.data(), ours.data(), rows, n, importance);
            quantize(scalar, F::id, x.data(), reference.data(), rows, n, importance);
            if (ours != reference) {
                std::printf("FAILED: %s quantize differs from the scalar reference\n",
                            std::string(F::name).c_str());
                ++failures;
            }
            rows_compared += int(rows);
        }
        std::vector<float> back(x.size()), back_reference(x.size());
        dequantize(level, F::id, reference.data(), back.data(), rows, n);
        dequantize(scalar, F::id, reference.data(), back_reference.data(), rows, n);
        if (std::memcmp(back.data(), back_reference.data(), back.size() * sizeof(float)) != 0) {
            std::printf("FAILED: %s dequantize differs from the scalar reference\n",
                        std::string(F::name).c_str());
            ++failures;
        }
        if constexpr (F::has_dot) {
            std::vector<unsigned char> y(row_size(F::dot_partner, n));
            quantize(scalar, F::dot_partner, x.data() + n, y.data(), 1, n);
            const double a = dot(level, F::id, reference.data(), y.data(), n);
            const double b = dot(scalar, F::id, reference.data(), y.data(), n);
            if (!(std::fabs(a - b) <= 1e-4 * std::fmax(1.0, std::fabs(b)))) {
                std::printf("FAILED: %s dot %.9g, scalar reference %.9g\n",
                            std::string(F::name).c_str(), a, b);
                ++failures;
            }
        }
    });
    std::printf("header_only: %s kernels (available: %s) match the scalar reference on %d rows\n",
                std::string(level.name).c_str(), kernels::available_names().c_str(), rows_compared);
    if (failures) std::printf("%d failed\n", failures);
    return failures ? 1 : 0;
}
