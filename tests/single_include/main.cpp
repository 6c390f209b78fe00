// SPDX-License-Identifier: MIT
// Built with only single_include/ on the include path: proves the amalgamated header is
// complete on its own. Quantizes a row to q4_k and back and checks the error is small;
// checks that qmix.hpp stays portable (no POSIX header) and that whisper.hpp, the codec's
// single header, adds the codec on top of it.
#include <cmath>
#include <cstdio>
#include <vector>

#include "qmix/qmix.hpp"

#if defined(_UNISTD_H) || defined(_SYS_MMAN_H) || defined(_FCNTL_H) || defined(_SYS_STAT_H)
#error "qmix.hpp includes a POSIX header: only the whisper codec (qmix/whisper.hpp) may"
#endif

#include "qmix/whisper.hpp"

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
    if (!qmix::whisper::is_valid_header_ftype(2008) || qmix::whisper::is_valid_header_ftype(-1)) {
        std::printf("1 failed: whisper.hpp's header ftype check\n");
        return 1;
    }
    std::printf("single_include: q4_k round trip of %d values, max abs error %.3g\n", n, worst);
    if (!(worst < 0.01)) {
        std::printf("1 failed: error too large\n");
        return 1;
    }
    return 0;
}
