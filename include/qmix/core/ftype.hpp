// SPDX-License-Identifier: MIT
#pragma once

// Moved to formats/ftype.hpp: the ftype of each format is now part of the format.
#include "qmix/formats/ftype.hpp"
