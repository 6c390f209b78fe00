// SPDX-License-Identifier: MIT
// The suite's main: Catch2's, plus one option of our own for scripts/test.sh:
//   qmix-tests --kernel-levels   prints the kernel levels this CPU runs ("scalar sse2 avx2")
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <exception>

#include "qmix/kernels/dispatch.hpp"

int main(int argc, char* argv[]) {
    if (argc == 2 && std::strcmp(argv[1], "--kernel-levels") == 0) {
        try {
            std::printf("%s\n", qmix::kernels::available_names().c_str());
            return 0;
        } catch (const std::exception& e) {
            std::fprintf(stderr, "qmix-tests: %s\n", e.what());
            return 1;
        }
    }
    return Catch::Session().run(argc, argv);
}
