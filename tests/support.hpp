// SPDX-License-Identifier: MIT
// Small helpers shared by the test files: reading binary files and locating the golden set.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <stdlib.h>
#include <unistd.h>

namespace qmix::test {

inline std::vector<std::uint8_t> read_bytes(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path.string());
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

inline std::vector<float> read_floats(const std::filesystem::path& path) {
    const auto bytes = read_bytes(path);
    if (bytes.size() % sizeof(float) != 0) {
        throw std::runtime_error(path.string() + " is not a whole number of floats");
    }
    std::vector<float> values(bytes.size() / sizeof(float));
    std::memcpy(values.data(), bytes.data(), bytes.size());
    return values;
}

inline std::vector<std::uint32_t> float_bits(const std::vector<float>& values) {
    std::vector<std::uint32_t> bits(values.size());
    std::memcpy(bits.data(), values.data(), values.size() * sizeof(float));
    return bits;
}

/// A fresh folder under $TMPDIR (or /tmp), removed with everything in it at scope exit.
class scratch_folder {
  public:
    scratch_folder() {
        const char* base = std::getenv("TMPDIR");
        std::string pattern = std::string(base && *base ? base : "/tmp") + "/qmix-test-XXXXXX";
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~scratch_folder() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    scratch_folder(const scratch_folder&) = delete;
    scratch_folder& operator=(const scratch_folder&) = delete;

    std::string file(const std::string& name) const { return (path_ / name).string(); }
    /// The names in the folder, sorted.
    std::set<std::string> listing() const {
        std::set<std::string> names;
        for (const auto& entry : std::filesystem::directory_iterator(path_)) {
            names.insert(entry.path().filename().string());
        }
        return names;
    }

  private:
    std::filesystem::path path_;
};

/// The golden set written by ggml: $QMIX_GOLDEN_DIR, else tests/data/golden.
inline std::filesystem::path golden_dir() {
    if (const char* dir = std::getenv("QMIX_GOLDEN_DIR"); dir && *dir) return dir;
    return QMIX_DEFAULT_GOLDEN_DIR;
}

}  // namespace qmix::test
