// SPDX-License-Identifier: MIT
#include <qmix/qmix.hpp>

#include <cstdio>
#include <vector>

int main() {
    std::vector<float> row(256, 0.25f);
    std::vector<unsigned char> packed(qmix::row_size(qmix::type_id::q8_0, 256));
    const auto bytes = qmix::quantize(qmix::type_id::q8_0, row.data(), packed.data(), 1, 256);
    std::vector<float> back(256);
    qmix::dequantize(qmix::type_id::q8_0, packed.data(), back.data(), 1, 256);
    const bool ok = bytes == 272 && back[7] > 0.249f && back[7] < 0.251f;
    std::printf("consumer: q8_0 row of 256 -> %zu bytes, %s\n", bytes, ok ? "ok" : "WRONG");
    return ok ? 0 : 1;
}
