// SPDX-License-Identifier: MIT
#pragma once

#include <stdexcept>
#include <string>

namespace qmix {

/// Every failure qmix reports is a qmix::error: the message says what went wrong and,
/// where it applies, the file, the byte offset and the tensor involved.
class error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace qmix
