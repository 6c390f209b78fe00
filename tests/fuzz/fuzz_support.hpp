// SPDX-License-Identifier: MIT
#pragma once

// Small helpers shared by the libFuzzer targets. A target reports a broken invariant with
// fuzz_check or fuzz_fail: they print what went wrong and abort, which libFuzzer records
// as a crash together with the input that caused it.

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace qmix::fuzz {

[[noreturn]] inline void fuzz_fail(const std::string& what) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what.c_str());
    std::abort();
}

/// Takes a plain C string so that checks in hot loops cost no allocation; compose a message
/// only on failure, with fuzz_fail.
inline void fuzz_check(bool ok, const char* what) {
    if (!ok) fuzz_fail(what);
}

/// An anonymous in-memory file (memfd) whose contents each input replaces, reachable by
/// path as /proc/self/fd/N, so that code which opens files by name reads fuzz bytes without
/// touching the disk.
class memory_file {
  public:
    explicit memory_file(const char* name) : fd_(::memfd_create(name, MFD_CLOEXEC)) {
        fuzz_check(fd_ >= 0, "memfd_create failed");
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    memory_file(const memory_file&) = delete;
    memory_file& operator=(const memory_file&) = delete;
    ~memory_file() { ::close(fd_); }

    void assign(const std::uint8_t* data, std::size_t size) {
        fuzz_check(::ftruncate(fd_, 0) == 0, "ftruncate failed");
        std::size_t done = 0;
        while (done < size) {
            const ssize_t wrote = ::pwrite(fd_, data + done, size - done, off_t(done));
            fuzz_check(wrote > 0, "pwrite to the memfd failed");
            done += std::size_t(wrote);
        }
    }
    void assign(std::string_view text) {
        assign(reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
    }

    const std::string& path() const noexcept { return path_; }

  private:
    int fd_;
    std::string path_;
};

/// Whether a rule pattern runs into a known limit of libstdc++'s std::regex rather than into
/// anything of qmix's own (reported to the lead, see tests/fuzz/README.md). The text fuzzers
/// skip such patterns so that they keep looking for faults of ours:
///  - a run of four or more digits: libstdc++ reads repetition counts and back-reference
///    numbers into a long without an overflow check (undefined behaviour past 19 digits),
///    and counts in the thousands multiply into millions of automaton states;
///  - three or more brace quantifiers: nested counts multiply the states the same way;
///  - groups nested deeper than 64: the regex compiler recurses once per level and runs
///    out of stack (near 20000 levels in a release build, far fewer under ASan).
/// Catastrophic backtracking ("(a*)*b", ".**x") is not filtered: it costs time, not memory
/// safety, and scripts/fuzz.sh counts those timeouts instead of stopping at them.
inline bool std_regex_hazard(std::string_view pattern) {
    int digits = 0;
    int braces = 0;
    int depth = 0;
    for (const char c : pattern) {
        digits = (c >= '0' && c <= '9') ? digits + 1 : 0;
        if (digits >= 4) return true;
        if (c == '{' && ++braces >= 3) return true;
        if (c == '(' && ++depth > 64) return true;
        if (c == ')' && depth > 0) --depth;
    }
    return false;
}

/// Splits bytes at every `separator` (the pieces keep every other byte, empty pieces too).
inline std::vector<std::string> split(const std::uint8_t* data, std::size_t size, char separator) {
    std::vector<std::string> pieces(1);
    for (std::size_t i = 0; i < size; ++i) {
        if (char(data[i]) == separator) {
            pieces.emplace_back();
        } else {
            pieces.back() += char(data[i]);
        }
    }
    return pieces;
}

}  // namespace qmix::fuzz
