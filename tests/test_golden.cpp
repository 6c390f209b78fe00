// SPDX-License-Identifier: MIT
// The golden set is ggml's own output. Every file in it is checked here, and a file the
// suite does not know how to check is a failure: nothing in the set goes unread.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "qmix/qmix.hpp"
#include "support.hpp"

namespace fs = std::filesystem;
using namespace qmix;
using qmix::test::float_bits;
using qmix::test::golden_dir;
using qmix::test::read_bytes;
using qmix::test::read_floats;

namespace {

struct golden_case {
    std::string name;
    std::int64_t rows = 0;
    std::int64_t cols = 0;
    bool has_importance = false;
};

std::vector<golden_case> read_manifest(const fs::path& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("golden manifest missing: " + path.string());
    std::vector<golden_case> cases;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        golden_case c;
        int importance = -1;
        if (!(fields >> c.name >> c.rows >> c.cols >> importance) || c.rows <= 0 || c.cols <= 0 ||
            (importance != 0 && importance != 1)) {
            throw std::runtime_error("malformed golden manifest line: " + line);
        }
        c.has_importance = importance == 1;
        cases.push_back(c);
    }
    return cases;
}

/// Files of the golden set, each ticked off when a check has read it.
class ledger {
  public:
    explicit ledger(const fs::path& root) : root_(root) {
        for (const auto& entry : fs::recursive_directory_iterator(root)) {
            if (entry.is_regular_file()) unread_.insert(relative(entry.path()));
        }
    }
    fs::path use(const fs::path& relative_path) {
        const fs::path full = root_ / relative_path;
        INFO("golden file " << full.string());
        REQUIRE(fs::is_regular_file(full));
        if (unread_.erase(relative_path.generic_string()) > 0) ++checked_;
        return full;
    }
    std::size_t checked() const { return checked_; }
    const std::set<std::string>& unread() const { return unread_; }

  private:
    std::string relative(const fs::path& p) const {
        return fs::relative(p, root_).generic_string();
    }
    fs::path root_;
    std::set<std::string> unread_;
    std::size_t checked_ = 0;
};

std::size_t first_difference(const std::vector<std::uint8_t>& a,
                             const std::vector<std::uint8_t>& b) {
    std::size_t i = 0;
    while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
    return i;
}

void check_quantized(const kernels::kernel_table& table, const fs::path& golden_file, type_id type,
                     const std::vector<float>& input, const golden_case& c,
                     const float* importance) {
    const auto expected = read_bytes(golden_file);
    std::vector<std::uint8_t> ours(row_size(type, c.cols) * std::size_t(c.rows));
    const std::size_t written =
        quantize(table, type, input.data(), ours.data(), c.rows, c.cols, importance);
    INFO(golden_file.string() << ": first differing byte at offset "
                              << first_difference(ours, expected));
    CHECK(written == expected.size());
    CHECK(ours == expected);
}

void check_dequantized(const kernels::kernel_table& table, const fs::path& quantized_file,
                       const fs::path& golden_file, type_id type, const golden_case& c) {
    const auto quantized = read_bytes(quantized_file);
    REQUIRE(quantized.size() == row_size(type, c.cols) * std::size_t(c.rows));
    std::vector<float> ours(std::size_t(c.rows * c.cols));
    dequantize(table, type, quantized.data(), ours.data(), c.rows, c.cols);
    const auto expected = float_bits(read_floats(golden_file));
    INFO(golden_file.string());
    CHECK(float_bits(ours) == expected);
}

struct dot_expectation {
    std::string type;
    int row = 0;
    double ggml = 0;
};

std::vector<dot_expectation> read_dot_expectations(const fs::path& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path.string());
    std::vector<dot_expectation> rows;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream fields(line);
        dot_expectation e;
        std::string partner;
        double exact = 0;
        if (!(fields >> e.type >> partner >> e.row >> e.ggml >> exact)) {
            throw std::runtime_error("malformed line in " + path.string() + ": " + line);
        }
        rows.push_back(e);
    }
    return rows;
}

void check_dot_products(const kernels::kernel_table& table, ledger& files) {
    const auto a = read_floats(files.use("dot/a.f32"));
    const auto b = read_floats(files.use("dot/b.f32"));
    const std::int64_t cols = 2048;
    const std::int64_t rows = 8;
    REQUIRE(a.size() == std::size_t(rows * cols));
    REQUIRE(b.size() == std::size_t(rows * cols));
    const auto expectations = read_dot_expectations(files.use("dot/expected.tsv"));
    REQUIRE(!expectations.empty());
    std::set<std::string> types_seen;
    for (const auto& e : expectations) {
        const auto type = parse_type_name(e.type);
        REQUIRE(type.has_value());
        const type_id partner = info(*type).dot_partner;
        const auto a_bytes = read_bytes(files.use("dot/" + e.type + ".a.q"));
        const auto b_bytes = read_bytes(files.use("dot/" + e.type + ".b.q"));
        if (types_seen.insert(e.type).second) {
            // The operands themselves are ggml's quantizations of a.f32 and b.f32.
            std::vector<std::uint8_t> ours_a(a_bytes.size()), ours_b(b_bytes.size());
            quantize(table, *type, a.data(), ours_a.data(), rows, cols);
            quantize(table, partner, b.data(), ours_b.data(), rows, cols);
            INFO("dot operands of " << e.type);
            CHECK(ours_a == a_bytes);
            CHECK(ours_b == b_bytes);
        }
        const std::size_t a_row = row_size(*type, cols);
        const std::size_t b_row = row_size(partner, cols);
        REQUIRE(a_bytes.size() == a_row * rows);
        REQUIRE(b_bytes.size() == b_row * rows);
        const float ours =
            dot(table, *type, a_bytes.data() + a_row * e.row, b_bytes.data() + b_row * e.row, cols);
        INFO(e.type << " row " << e.row << ": ours " << ours << ", ggml " << e.ggml);
        CHECK(std::fabs(ours - e.ggml) <= 1e-5 * std::max(1.0, std::fabs(e.ggml)));
    }
}

void check_binary16(const kernels::kernel_table& table, ledger& files) {
    const auto widened = float_bits(read_floats(files.use("f16/all_halves.f32")));
    REQUIRE(widened.size() == 65536);
    std::size_t widening_mismatches = 0;
    for (std::uint32_t h = 0; h < 65536; ++h) {
        if (binary16::bits_of(half_to_float(std::uint16_t(h))) != widened[h]) ++widening_mismatches;
    }
    CHECK(widening_mismatches == 0);
    std::vector<float> kernel_widened(65536);  // the same through the f16 row kernels
    std::vector<std::uint16_t> all_halves(65536);
    for (std::uint32_t h = 0; h < 65536; ++h) all_halves[h] = std::uint16_t(h);
    dequantize(table, type_id::f16, all_halves.data(), kernel_widened.data(), 1, 65536);
    CHECK(float_bits(kernel_widened) == widened);

    const auto inputs = read_floats(files.use("f16/narrow.in.f32"));
    const auto narrowed = read_bytes(files.use("f16/narrow.out.f16"));
    REQUIRE(narrowed.size() == inputs.size() * 2);
    std::size_t narrowing_mismatches = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const std::uint16_t expected = std::uint16_t(narrowed[2 * i] | (narrowed[2 * i + 1] << 8));
        if (float_to_half(inputs[i]) != expected) ++narrowing_mismatches;
    }
    CHECK(narrowing_mismatches == 0);
    std::vector<std::uint8_t> kernel_narrowed(narrowed.size());
    quantize(table, type_id::f16, inputs.data(), kernel_narrowed.data(), 1,
             std::int64_t(inputs.size()));
    CHECK(kernel_narrowed == narrowed);
}

}  // namespace

TEST_CASE("every format reproduces ggml's golden bytes, floats and dot products", "[golden]") {
    // Every kernel level this CPU runs, the scalar reference first, must give ggml's bytes.
    for (const kernels::kernel_table* level : kernels::available_tables()) {
        const kernels::kernel_table& table = *level;
        DYNAMIC_SECTION("with the " << table.name << " kernels") {
            const fs::path root = golden_dir();
            INFO("golden directory " << root.string()
                                      << ": ggml's golden set goes there (tests/data/golden, "
                                         "or ../shared/golden beside the checkout, copied at "
                                         "configure time), or set QMIX_GOLDEN_DIR");
            REQUIRE(fs::is_regular_file(root / "manifest.tsv"));
            ledger files(root);
            const auto cases = read_manifest(files.use("manifest.tsv"));
            REQUIRE(!cases.empty());
            files.use("README.md");

            std::size_t type_directories = 0;
            for (const auto& entry : fs::directory_iterator(root)) {
                const auto type = parse_type_name(entry.path().filename().string());
                if (!entry.is_directory() || !type) continue;
                ++type_directories;
                const std::string dir = entry.path().filename().string();
                const type_info& t = info(*type);
                for (const auto& c : cases) {
                    if (c.cols % std::int64_t(t.block_size) != 0) continue;
                    const auto input = read_floats(files.use("inputs/" + c.name + ".f32"));
                    REQUIRE(input.size() == std::size_t(c.rows * c.cols));
                    const fs::path q = files.use(dir + "/" + c.name + ".q");
                    check_quantized(table, q, *type, input, c, nullptr);
                    check_dequantized(table, q, files.use(dir + "/" + c.name + ".deq.f32"), *type,
                                      c);
                    if (c.has_importance && t.uses_importance) {
                        const auto importance =
                            read_floats(files.use("inputs/" + c.name + ".imatrix.f32"));
                        REQUIRE(importance.size() == std::size_t(c.cols));
                        check_quantized(table, files.use(dir + "/" + c.name + ".imatrix.q"), *type,
                                        input, c, importance.data());
                    }
                }
            }
            CHECK(type_directories == 16);
            check_binary16(table, files);
            check_dot_products(table, files);

            std::ostringstream unread;
            for (const auto& name : files.unread()) unread << ' ' << name;
            INFO("golden files no check read:" << unread.str());
            CHECK(files.unread().empty());
            std::cout << "golden: " << files.checked() << " files compared against ggml with the "
                      << table.name << " kernels (" << root.string() << ")\n";
        }
    }
}
