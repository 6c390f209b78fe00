// SPDX-License-Identifier: MIT
// Compiled by scripts/check_isa_contract.sh, never built by CMake: an instruction set whose
// isa<Arch> leaves out a primitive that the bytes depend on must not compile the kernels
// that use it (kernels/isa/base.hpp). QMIX_PROBE names the primitive the probe uses
// without defining it (div, sqrt, look_up, store_folded_halves); with QMIX_PROBE_DEFINED
// the probe defines div and sqrt itself and must compile.
#include <cstdint>

#include "qmix/kernels/isa/base.hpp"

namespace {

using arch = xsimd::default_arch;

struct probe : qmix::kernels::isa_base<arch> {
#if defined(QMIX_PROBE_DEFINED)
    static floats div(floats a, floats b) {
        return a / b;
    }
    static floats sqrt(floats a) {
        return a;
    }
#endif
};

}  // namespace

int main() {
    const probe::floats one(1.0f);
    probe::floats result = one;
#if defined(QMIX_PROBE_DEFINED) || QMIX_PROBE == 1
    result = probe::div(one, one);
#endif
#if defined(QMIX_PROBE_DEFINED) || QMIX_PROBE == 2
    result = probe::sqrt(one);
#endif
#if QMIX_PROBE == 3
    struct bytes {
        std::int8_t b[32];
    };
    const std::int8_t table[16] = {};
    (void)probe::look_up(table, bytes{});
#endif
#if QMIX_PROBE == 4
    std::uint8_t out[64];
    probe::store_folded_halves(out, probe::ints(0), 1);
#endif
    return int(result.get(0)) - 1;
}
