// SPDX-License-Identifier: MIT
// qmix with the whisper ggml model codec: reading and writing models (qmix/io/ underneath,
// POSIX), synthetic models and the mixed-precision quantization pipeline.
#pragma once

#include "qmix/qmix.hpp"
#include "qmix/whisper/budget.hpp"
#include "qmix/whisper/info.hpp"
#include "qmix/whisper/loader.hpp"
#include "qmix/whisper/model_file.hpp"
#include "qmix/whisper/model_writer.hpp"
#include "qmix/whisper/quantize_model.hpp"
#include "qmix/whisper/synthetic.hpp"
