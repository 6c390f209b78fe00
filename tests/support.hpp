// SPDX-License-Identifier: MIT
// Small helpers shared by the test files: reading binary files and locating the golden set.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

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

/// A fresh folder under the system's temporary folder, removed with everything in it when
/// the object goes. Unique per process and per object.
struct scratch_folder {
    std::filesystem::path path;
    explicit scratch_folder(const std::string& prefix = "qmix-test") {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               (prefix + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::create_directories(path);
    }
    ~scratch_folder() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
    scratch_folder(const scratch_folder&) = delete;
    scratch_folder& operator=(const scratch_folder&) = delete;
    std::string file(const std::string& name) const { return (path / name).string(); }
};

/// The golden set written by ggml: $QMIX_GOLDEN_DIR, else tests/data/golden.
inline std::filesystem::path golden_dir() {
    if (const char* dir = std::getenv("QMIX_GOLDEN_DIR"); dir && *dir) return dir;
    return QMIX_DEFAULT_GOLDEN_DIR;
}

}  // namespace qmix::test
