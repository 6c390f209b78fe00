// SPDX-License-Identifier: MIT
#pragma once

// The kernel levels of the qmix::dispatch target, one translation unit each
// (kernels_<level>.cpp, compiled with that level's instruction-set flags). Each function
// builds its table on first call; kernels_dispatch.cpp calls it only on a CPU that runs it.

#include "qmix/kernels/table.hpp"

namespace qmix::kernels::levels {

const kernel_table& sse2();
const kernel_table& avx2();
const kernel_table& avx512();
const kernel_table& neon();

}  // namespace qmix::kernels::levels
