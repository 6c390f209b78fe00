// SPDX-License-Identifier: MIT
#pragma once

// The kernel levels of the library, one translation unit each (kernels_<level>.cpp),
// compiled with that level's instruction-set flags and QMIX_KERNEL_LEVEL=<level>, so that
// all the inline code it instantiates lives in qmix::level_<level> and is shared with
// nothing else in the program. Each function builds its table on first call, with the
// entries the level has kernels for (the others null); kernels_dispatch.cpp calls it only
// on a CPU that runs the level. kernel_table is plain data, the one type they share.

#include "qmix/kernels/table.hpp"

namespace qmix::kernels::levels {

const kernel_table& scalar();
const kernel_table& sse2();
const kernel_table& avx2();
const kernel_table& avx512();
const kernel_table& neon();

}  // namespace qmix::kernels::levels
