// SPDX-License-Identifier: MIT
#pragma once

#include <cstdint>

namespace qmix {

/// ggml's numbering of tensor types, as stored per tensor in model files.
enum class type_id : std::int32_t {
    f32 = 0,
    f16 = 1,
    q4_0 = 2,
    q4_1 = 3,
    q5_0 = 6,
    q5_1 = 7,
    q8_0 = 8,
    q8_1 = 9,
    q2_k = 10,
    q3_k = 11,
    q4_k = 12,
    q5_k = 13,
    q6_k = 14,
    q8_k = 15,
    iq4_nl = 20,
    iq4_xs = 23,
    bf16 = 30,
};

}  // namespace qmix
