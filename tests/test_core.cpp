// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "qmix/qmix.hpp"

using namespace qmix;

TEST_CASE("the registry holds ggml's type ids, block sizes and block bytes", "[core]") {
    struct expected_row {
        type_id id;
        int raw;
        const char* name;
        std::size_t block_size, type_size;
        type_id partner;
    };
    const expected_row table[] = {
        {type_id::f32, 0, "f32", 1, 4, type_id::f32},
        {type_id::f16, 1, "f16", 1, 2, type_id::f16},
        {type_id::q4_0, 2, "q4_0", 32, 18, type_id::q8_0},
        {type_id::q4_1, 3, "q4_1", 32, 20, type_id::q8_1},
        {type_id::q5_0, 6, "q5_0", 32, 22, type_id::q8_0},
        {type_id::q5_1, 7, "q5_1", 32, 24, type_id::q8_1},
        {type_id::q8_0, 8, "q8_0", 32, 34, type_id::q8_0},
        {type_id::q8_1, 9, "q8_1", 32, 36, type_id::q8_1},
        {type_id::q2_k, 10, "q2_k", 256, 84, type_id::q8_k},
        {type_id::q3_k, 11, "q3_k", 256, 110, type_id::q8_k},
        {type_id::q4_k, 12, "q4_k", 256, 144, type_id::q8_k},
        {type_id::q5_k, 13, "q5_k", 256, 176, type_id::q8_k},
        {type_id::q6_k, 14, "q6_k", 256, 210, type_id::q8_k},
        {type_id::q8_k, 15, "q8_k", 256, 292, type_id::q8_k},
        {type_id::iq4_nl, 20, "iq4_nl", 32, 18, type_id::q8_0},
        {type_id::iq4_xs, 23, "iq4_xs", 256, 136, type_id::q8_k},
        {type_id::bf16, 30, "bf16", 1, 2, type_id::bf16},
    };
    REQUIRE(type_table.size() == std::size(table));
    for (const auto& row : table) {
        INFO(row.name);
        CHECK(static_cast<int>(row.id) == row.raw);
        CHECK(is_known_type(row.raw));
        const type_info& t = info(row.id);
        CHECK(t.name == row.name);
        CHECK(t.block_size == row.block_size);
        CHECK(t.type_size == row.type_size);
        CHECK(t.dot_partner == row.partner);
        CHECK(block_size(row.id) == row.block_size);
        CHECK(type_size(row.id) == row.type_size);
    }
    for (int raw : {-1, 4, 5, 16, 39, 1000}) CHECK_FALSE(is_known_type(raw));
    CHECK_THROWS_AS(info(static_cast<type_id>(4)), qmix::error);
}

TEST_CASE("type names parse in any letter case", "[core]") {
    CHECK(parse_type_name("q4_k") == type_id::q4_k);
    CHECK(parse_type_name("Q4_K") == type_id::q4_k);
    CHECK(parse_type_name("q4_K") == type_id::q4_k);
    CHECK(parse_type_name("F16") == type_id::f16);
    CHECK(parse_type_name("q8_0") == type_id::q8_0);
    CHECK_FALSE(parse_type_name("q4").has_value());
    CHECK_FALSE(parse_type_name("q4_k ").has_value());
    CHECK_FALSE(parse_type_name("").has_value());
    CHECK(type_name(type_id::q6_k) == "q6_k");
}

TEST_CASE("row sizes follow the block layout and refuse lengths a format cannot hold", "[core]") {
    CHECK(row_size(type_id::f32, 7) == 28);
    CHECK(row_size(type_id::f16, 3) == 6);
    CHECK(row_size(type_id::q4_0, 64) == 36);
    CHECK(row_size(type_id::q4_k, 512) == 288);
    CHECK(row_size(type_id::q8_k, 256) == 292);
    CHECK(can_hold_row(type_id::q5_1, 384));
    CHECK_FALSE(can_hold_row(type_id::q4_k, 384));
    CHECK_FALSE(can_hold_row(type_id::q4_0, 0));
    CHECK_FALSE(can_hold_row(type_id::q4_0, -32));
    CHECK_THROWS_WITH(row_size(type_id::q4_k, 384),
                      Catch::Contains("384") && Catch::Contains("q4_k") && Catch::Contains("256"));
    CHECK(bits_per_weight(type_id::q4_0) == Approx(4.5));
    CHECK(bits_per_weight(type_id::q6_k) == Approx(6.5625));
    CHECK(bits_per_weight(type_id::iq4_nl) == Approx(4.5));
    CHECK(bits_per_weight(type_id::iq4_xs) == Approx(4.25));
    CHECK(bits_per_weight(type_id::bf16) == Approx(16));
    // whisper tiny's rows of 384: iq4_nl holds them, iq4_xs (256-value blocks) does not.
    CHECK(can_hold_row(type_id::iq4_nl, 384));
    CHECK_FALSE(can_hold_row(type_id::iq4_xs, 384));
    CHECK(row_size(type_id::iq4_xs, 512) == 272);
}

TEST_CASE("ftypes map to the tensor types they stand for", "[core]") {
    CHECK(type_of_ftype(0) == type_id::f32);
    CHECK(type_of_ftype(1) == type_id::f16);
    CHECK(type_of_ftype(2) == type_id::q4_0);
    CHECK(type_of_ftype(7) == type_id::q8_0);
    CHECK(type_of_ftype(8) == type_id::q5_0);
    CHECK(type_of_ftype(9) == type_id::q5_1);
    CHECK(type_of_ftype(12) == type_id::q4_k);
    CHECK(type_of_ftype(14) == type_id::q6_k);
    CHECK(type_of_ftype(19) == type_id::iq4_nl);
    CHECK(type_of_ftype(22) == type_id::iq4_xs);
    CHECK(type_of_ftype(24) == type_id::bf16);
    CHECK_FALSE(type_of_ftype(20).has_value());
    CHECK_FALSE(type_of_ftype(23).has_value());
    CHECK_FALSE(type_of_ftype(4).has_value());
    CHECK_FALSE(type_of_ftype(15).has_value());
    CHECK(ftype_of_type(type_id::q5_0) == ftype::mostly_q5_0);
    CHECK_FALSE(ftype_of_type(type_id::q8_k).has_value());
}

TEST_CASE("binary16 conversion handles the special values exactly", "[core][binary16]") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(float_to_half(0.0f) == 0x0000);
    CHECK(float_to_half(-0.0f) == 0x8000);
    CHECK(float_to_half(1.0f) == 0x3c00);
    CHECK(float_to_half(65504.0f) == 0x7bff);
    CHECK(float_to_half(65519.99f) == 0x7bff);  // just below the rounding boundary
    CHECK(float_to_half(65520.0f) == 0x7c00);   // the boundary itself rounds to infinity
    CHECK(float_to_half(1e10f) == 0x7c00);
    CHECK(float_to_half(-1e10f) == 0xfc00);
    CHECK(float_to_half(inf) == 0x7c00);
    CHECK(float_to_half(-inf) == 0xfc00);
    const std::uint16_t nan = float_to_half(std::numeric_limits<float>::quiet_NaN());
    CHECK((nan & 0x7c00) == 0x7c00);
    CHECK((nan & 0x03ff) != 0);
    // Subnormals: the smallest is 2^-24; half of it is a tie that rounds to even (zero).
    CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);
    CHECK(float_to_half(std::ldexp(1.5f, -25)) == 0x0001);
    CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 ulp: tie to even
    CHECK(float_to_half(std::ldexp(1023.0f, -24)) == 0x03ff);
    CHECK(float_to_half(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
    CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
    CHECK(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));
    CHECK(half_to_float(0x7c00) == inf);
    CHECK(half_to_float(0xfc00) == -inf);
    CHECK(std::isnan(half_to_float(0x7e00)));
    CHECK(std::isnan(half_to_float(0x7c01)));
    CHECK(std::signbit(half_to_float(0x8000)));
    // Every finite half survives a round trip.
    for (std::uint32_t h = 0; h < 65536; ++h) {
        if ((h & 0x7c00) == 0x7c00) continue;
        REQUIRE(float_to_half(half_to_float(std::uint16_t(h))) == h);
    }
}

TEST_CASE("the row API rejects bad shapes with a clear error", "[core]") {
    std::vector<float> row(384, 0.5f);
    std::vector<std::uint8_t> out(1024);
    CHECK_THROWS_WITH(quantize(type_id::q4_k, row.data(), out.data(), 1, 384),
                      Catch::Contains("384") && Catch::Contains("q4_k"));
    CHECK_THROWS_AS(quantize(type_id::q4_0, row.data(), out.data(), -1, 32), qmix::error);
    CHECK_THROWS_AS(dequantize(type_id::q4_0, out.data(), row.data(), 1, 33), qmix::error);
    CHECK_THROWS_WITH(dot(type_id::q8_k, out.data(), out.data(), 256),
                      Catch::Contains("no dot product"));
    CHECK_THROWS_AS(quantize(static_cast<type_id>(5), row.data(), out.data(), 1, 32), qmix::error);
}

TEST_CASE("sizes that std::size_t cannot count are errors, never wrapped", "[core]") {
    const std::int64_t huge = std::int64_t(1) << 62;
    // 2^62 floats are 2^64 bytes: one more than std::size_t holds (it wrapped to 0).
    CHECK_THROWS_WITH(row_size(type_id::f32, huge),
                      Catch::Contains("f32") && Catch::Contains(std::to_string(huge)));
    CHECK(row_size(type_id::f32, huge / 2) == std::size_t(1) << 63);
    CHECK_THROWS_AS(rows_size(type_id::f32, 3, huge / 2), qmix::error);
    CHECK_THROWS_AS(rows_size(type_id::q8_0, -1, 32), qmix::error);
    CHECK(rows_size(type_id::q8_0, 3, 64) == 3 * 68);
    std::vector<float> row(32, 0.5f);
    std::vector<std::uint8_t> out(64);
    CHECK_THROWS_AS(quantize(type_id::q8_0, row.data(), out.data(), huge, 32), qmix::error);
}

TEST_CASE("null buffers with rows to process are errors", "[core]") {
    std::vector<float> row(64, 0.5f);
    std::vector<std::uint8_t> out(256);
    CHECK_THROWS_WITH(quantize(type_id::q8_0, nullptr, out.data(), 1, 32), Catch::Contains("null"));
    CHECK_THROWS_WITH(quantize(type_id::q8_0, row.data(), nullptr, 2, 32), Catch::Contains("null"));
    CHECK_THROWS_AS(dequantize(type_id::q8_0, nullptr, row.data(), 1, 32), qmix::error);
    CHECK_THROWS_AS(dequantize(type_id::q8_0, out.data(), nullptr, 1, 32), qmix::error);
    CHECK_THROWS_AS(dot(type_id::q8_0, nullptr, out.data(), 32), qmix::error);
    CHECK_THROWS_AS(dot(type_id::q8_0, out.data(), nullptr, 32), qmix::error);
    CHECK_THROWS_AS(quantize_parallel(type_id::q8_0, nullptr, out.data(), 2, 32, nullptr, 2),
                    qmix::error);
    CHECK_THROWS_AS(dequantize_parallel(type_id::q8_0, out.data(), nullptr, 2, 32, 2), qmix::error);
    // No rows, nothing to read or write: null is fine.
    CHECK(quantize(type_id::q8_0, nullptr, nullptr, 0, 32) == 0);
    CHECK_NOTHROW(dequantize(type_id::q8_0, nullptr, nullptr, 0, 32));
}

TEST_CASE("the parallel drivers refuse a negative row count", "[core]") {
    std::vector<float> row(64, 0.5f);
    std::vector<std::uint8_t> out(256);
    // This returned a wrapped size (about 2^64 - 34) and wrote nothing.
    CHECK_THROWS_WITH(quantize_parallel(type_id::q8_0, row.data(), out.data(), -1, 32, nullptr, 2),
                      Catch::Contains("negative"));
    CHECK_THROWS_AS(dequantize_parallel(type_id::q8_0, out.data(), row.data(), -1, 32, 2),
                    qmix::error);
}

TEST_CASE("visiting the registry reaches every format exactly once", "[core]") {
    std::vector<type_id> seen;
    for_each_format(all_formats{}, [&](auto tag) { seen.push_back(decltype(tag)::type::id); });
    REQUIRE(seen.size() == type_table.size());
    for (std::size_t i = 0; i < seen.size(); ++i) {
        CHECK(seen[i] == type_table[i].id);
        const auto name =
            visit(all_formats{}, seen[i], [](auto tag) { return decltype(tag)::type::name; });
        CHECK(name == type_table[i].name);
    }
}

TEST_CASE("a block whose largest value is subnormal quantizes to defined bytes", "[core]") {
    // 1/d overflows to infinity there; ggml's x86 build stores level 0 (cvttss2si gives
    // INT32_MIN, whose low byte is 0). Every kernel level must agree with the scalar code.
    std::vector<float> row(32, 1e-40f);
    row[3] = -2e-40f;
    for (const type_id type : {type_id::q4_0, type_id::q4_1, type_id::q5_0, type_id::q5_1,
                               type_id::q8_0, type_id::q8_1}) {
        INFO(type_name(type));
        std::vector<std::uint8_t> out(row_size(type, 32), 0xAA);
        quantize(type, row.data(), out.data(), 1, 32);
        std::vector<float> back(32);
        dequantize(type, out.data(), back.data(), 1, 32);
        for (float v : back) CHECK(std::fabs(v) < 1e-30f);
    }
}

TEST_CASE("the row API refuses null buffers, negative counts and sizes that wrap", "[core]") {
    std::vector<float> values(64, 0.5f);
    std::vector<unsigned char> packed(row_size(type_id::q4_0, 64));
    CHECK_THROWS_WITH(quantize(type_id::q4_0, nullptr, packed.data(), 1, 64),
                      Catch::Contains("src is null"));
    CHECK_THROWS_WITH(quantize(type_id::q4_0, values.data(), nullptr, 1, 64),
                      Catch::Contains("dst is null"));
    CHECK_THROWS_WITH(dequantize(type_id::q4_0, nullptr, values.data(), 1, 64),
                      Catch::Contains("src is null"));
    CHECK_THROWS_WITH(dot(type_id::q4_0, packed.data(), nullptr, 64), Catch::Contains("y is null"));
    // No row, no access: null is fine then.
    CHECK(quantize(type_id::q4_0, nullptr, nullptr, 0, 64) == 0);
    CHECK_THROWS_WITH(
        quantize_parallel(type_id::q4_0, values.data(), packed.data(), -1, 64, nullptr, 2),
        Catch::Contains("negative row count"));
    CHECK_THROWS_WITH(dequantize_parallel(type_id::q4_0, packed.data(), values.data(), -3, 64, 2),
                      Catch::Contains("negative row count"));
    CHECK_THROWS_WITH(row_size(type_id::f32, std::int64_t(1) << 62),
                      Catch::Contains("more bytes than a size_t holds"));
    CHECK_THROWS_WITH(rows_size(type_id::f32, std::int64_t(1) << 40, std::int64_t(1) << 30),
                      Catch::Contains("more bytes than a size_t holds"));
    CHECK(rows_size(type_id::q4_0, 3, 64) == 3 * 36);
}
