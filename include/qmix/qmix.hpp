// SPDX-License-Identifier: MIT
// qmix: ggml block quantization, bit-exact with ggml. Include this one file (and link qmix::qmix,
// or include qmix/header_only.hpp instead for the header-only form).
#pragma once

#include "qmix/core/binary16.hpp"
#include "qmix/core/config.hpp"
#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/core/registry.hpp"
#include "qmix/core/strict_math.hpp"
#include "qmix/core/type_id.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/ops.hpp"
#include "qmix/parallel.hpp"
#include "qmix/rules/rules.hpp"

// The whisper model codec and the quantization pipeline read and write files with POSIX
// calls: they are in <qmix/whisper.hpp>, so that this header stays portable C++17.
