// SPDX-License-Identifier: MIT
// A user's program: built against an installed qmix (find_package) or a source tree
// (add_subdirectory), with no instruction-set flag of its own. It prints the kernel level
// the library chose at run time and a checksum of the bytes it wrote, which
// scripts/package_test.sh compares between CPUs (the host, and qemu's Nehalem: no AVX).
#include <qmix/qmix.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

int main() {
    const std::int64_t n = 1024;
    const std::int64_t rows = 4;
    std::vector<float> values(std::size_t(n * rows));
    for (std::size_t i = 0; i < values.size(); ++i) {
        values[i] = std::sin(0.37f * float(i)) * (1.0f + float(i % 97) / 16.0f);
    }
    // |values| < 7.1: every format, q2_k with its two bits too, stays within 4 of each.
    std::uint64_t checksum = 14695981039346656037u;  // FNV-1a over every byte written
    bool ok = true;
    for (const char* name :
         {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "f16"}) {
        const qmix::type_id type = *qmix::parse_type_name(name);
        std::vector<unsigned char> packed(qmix::rows_size(type, rows, n));
        const std::size_t bytes = qmix::quantize(type, values.data(), packed.data(), rows, n);
        ok = ok && bytes == packed.size();
        for (unsigned char b : packed) checksum = (checksum ^ b) * 1099511628211u;
        std::vector<float> back(values.size());
        qmix::dequantize(type, packed.data(), back.data(), rows, n);
        for (std::size_t i = 0; i < back.size(); ++i)
            ok = ok && std::fabs(back[i] - values[i]) < 4.0f;
    }
    std::printf("consumer: level %s (available: %s), checksum %016llx, %s\n",
                std::string(qmix::kernels::active_table().name).c_str(),
                qmix::kernels::available_names().c_str(), (unsigned long long)checksum,
                ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
