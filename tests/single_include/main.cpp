// SPDX-License-Identifier: MIT
// Built with only single_include/ on the include path: proves the amalgamated header is
// complete on its own. Quantizes a row to q4_k and back and checks the error is small.
#include <cmath>
#include <cstdio>
#include <vector>

#include "qmix/qmix.hpp"

int main() {
    const int n = 512;
    std::vector<float> row(n);
    for (int i = 0; i < n; ++i) row[i] = std::sin(0.1f * float(i)) * 0.05f;
    std::vector<unsigned char> packed(qmix::row_size(qmix::type_id::q4_k, n));
    qmix::quantize(qmix::type_id::q4_k, row.data(), packed.data(), 1, n);
    std::vector<float> back(n);
    qmix::dequantize(qmix::type_id::q4_k, packed.data(), back.data(), 1, n);
    double worst = 0;
    // (A plain comparison: GCC 12 for aarch64 crashes vectorising an fmax reduction here.)
    for (int i = 0; i < n; ++i) {
        const double error = std::fabs(double(back[i]) - double(row[i]));
        if (error > worst) worst = error;
    }
    std::printf("single_include: q4_k round trip of %d values, max abs error %.3g\n", n, worst);
    if (!(worst < 0.01)) {
        std::printf("1 failed: error too large\n");
        return 1;
    }
    return 0;
}
