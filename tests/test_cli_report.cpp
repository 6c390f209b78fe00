// SPDX-License-Identifier: MIT
// qmix-quantize's command line and JSON report: `--`, rule files with a byte order mark,
// JSON strings for arbitrary bytes and numbers that are not finite.
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../examples/quantize/cli.hpp"
#include "../examples/quantize/report.hpp"

namespace cli = qmix::quantize_cli;

namespace {

/// A strict check of a JSON string body as json_escape writes it: valid UTF-8, no raw
/// control characters, quotes and backslashes only as escapes.
bool valid_json_string_body(const std::string& body) {
    for (std::size_t i = 0; i < body.size();) {
        const auto c = static_cast<unsigned char>(body[i]);
        if (c < 0x20 || c == '"') return false;
        if (c == '\\') {
            if (i + 1 >= body.size()) return false;
            const char e = body[i + 1];
            if (e == 'u') {
                if (i + 6 > body.size()) return false;
                for (std::size_t k = i + 2; k < i + 6; ++k) {
                    if (!std::isxdigit(static_cast<unsigned char>(body[k]))) return false;
                }
                i += 6;
            } else if (std::string("\"\\/bfnrt").find(e) != std::string::npos) {
                i += 2;
            } else {
                return false;
            }
            continue;
        }
        std::size_t length = c < 0x80         ? 1
                             : (c >> 5) == 6  ? 2
                             : (c >> 4) == 14 ? 3
                             : (c >> 3) == 30 ? 4
                                              : 0;
        if (length == 0 || i + length > body.size()) return false;
        for (std::size_t k = 1; k < length; ++k) {
            if ((static_cast<unsigned char>(body[i + k]) & 0xc0) != 0x80) return false;
        }
        i += length;
    }
    return true;
}

}  // namespace

TEST_CASE("'--' ends the options", "[cli]") {
    const auto parsed = cli::parse_command_line({"-q", "--", "-in.bin", "--json", "q4_0"});
    CHECK(parsed.what == cli::request::quantize);
    CHECK(parsed.line.input == "-in.bin");
    CHECK(parsed.line.output == "--json");
    CHECK(parsed.line.json_path.empty());
    CHECK(parsed.line.quiet);
    CHECK_THROWS_AS(cli::parse_command_line({"--", "a", "b"}), cli::usage_error);
    // Without "--" such names are options.
    CHECK_THROWS_WITH(cli::parse_command_line({"-in.bin", "o.bin", "q4_0"}),
                      Catch::Contains("unknown option -in.bin"));
}

TEST_CASE("a byte order mark at the start of a rule file is not part of the first pattern",
          "[cli][rules]") {
    const char* base = std::getenv("TMPDIR");
    std::string path = std::string(base && *base ? base : "/tmp") + "/qmix-bom-XXXXXX";
    const int fd = ::mkstemp(path.data());
    REQUIRE(fd >= 0);
    ::close(fd);
    {
        std::ofstream out(path, std::ios::binary);
        out << "\xEF\xBB\xBF"
            << "encoder\\..*=q8_0\n.*=q4_k\n";
    }
    qmix::rules::rule_set rules;
    rules.add_file(path);
    std::remove(path.c_str());
    REQUIRE(rules.size() == 2);
    CHECK(rules.rules()[0].pattern == "encoder\\..*");
    CHECK(rules.first_match("encoder.blocks.0.mlp.0.weight") == std::optional<std::size_t>(0));
}

TEST_CASE("the report's strings are valid JSON for any bytes", "[cli][json]") {
    CHECK(cli::json_escape("plain.bin") == "plain.bin");
    CHECK(cli::json_escape("a\"b\\c") == "a\\\"b\\\\c");
    CHECK(cli::json_escape(std::string("tab\tnul\0end", 11)) == "tab\\u0009nul\\u0000end");
    CHECK(cli::json_escape("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80") ==
          "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");  // valid UTF-8 is kept
    // Latin-1, a lone continuation byte, a cut sequence, an overlong form, a surrogate,
    // past U+10FFFF: each invalid byte becomes U+FFFD.
    CHECK(cli::json_escape("caf\xE9.bin") == "caf\\ufffd.bin");
    CHECK(cli::json_escape("\x80") == "\\ufffd");
    CHECK(cli::json_escape("\xE2\x82") == "\\ufffd\\ufffd");
    CHECK(cli::json_escape("\xC0\xAF") == "\\ufffd\\ufffd");
    CHECK(cli::json_escape("\xED\xA0\x80") == "\\ufffd\\ufffd\\ufffd");
    CHECK(cli::json_escape("\xF4\x90\x80\x80") == "\\ufffd\\ufffd\\ufffd\\ufffd");
    std::string every_byte;
    for (int c = 0; c < 256; ++c) every_byte += char(c);
    CHECK(valid_json_string_body(cli::json_escape(every_byte)));
    CHECK(valid_json_string_body(cli::json_escape(every_byte + every_byte.substr(128))));
}

TEST_CASE("numbers that are not finite are written as null", "[cli][json]") {
    CHECK(cli::json_number(std::numeric_limits<double>::quiet_NaN()) == "null");
    CHECK(cli::json_number(std::numeric_limits<double>::infinity()) == "null");
    CHECK(cli::json_number(-std::numeric_limits<double>::infinity()) == "null");
    CHECK(cli::json_number(0.25) == "0.25");
    CHECK(std::strtod(cli::json_number(1.0 / 3.0).c_str(), nullptr) == Approx(1.0 / 3.0));
}

TEST_CASE("--help lists the registry's types, ftype numbers and fallbacks", "[cli]") {
    const std::string help = cli::usage_text();
    // One line of text with its line breaks folded, so that wrapped lists read as one.
    std::string flat;
    for (const char c : help) flat += c == '\n' ? ' ' : c;
    CHECK(help.find('{') == std::string::npos);  // every placeholder filled in
    CHECK(help.find(cli::detail::glue) == std::string::npos);
    int storage = 0;
    for (const auto& t : qmix::type_table) {
        const std::string name(t.name);
        INFO(name);
        if (!qmix::rules::is_storage_type(t.id)) {
            CHECK(flat.find(" " + name + " ") == std::string::npos);
            continue;
        }
        ++storage;
        CHECK(flat.find(" " + name + " ") != std::string::npos);
        const int number = static_cast<int>(*qmix::ftype_of_type(t.id));
        if (t.is_quantized) {
            const std::string pair = " " + std::to_string(number) + " " + name;
            CHECK((flat.find(pair + ",") != std::string::npos ||
                   flat.find(pair + ".") != std::string::npos));
            CHECK(cli::parse_default_type(std::to_string(number)) == t.id);
        } else {
            CHECK_THROWS_WITH(cli::parse_default_type(std::to_string(number)),
                              Catch::Contains("not a quantized ftype"));
        }
        if (const auto fallback = qmix::fallback_of(t.id)) {
            // "q2_k q3_k -> q4_0": the name, then (after other names) its fallback.
            const std::size_t at = flat.find(name + " ", flat.find("Fallbacks"));
            REQUIRE(at != std::string::npos);
            const std::size_t arrow = flat.find(" -> ", at);
            REQUIRE(arrow != std::string::npos);
            CHECK(flat.compare(arrow + 4, std::string(qmix::type_name(*fallback)).size(),
                               qmix::type_name(*fallback)) == 0);
        }
    }
    CHECK(storage > 0);
}

TEST_CASE("help paragraphs wrap at the width, keeping glued units on one line", "[cli]") {
    const std::string g(1, cli::detail::glue);
    const std::string words = "TYPE may also be whisper.cpp's number: 2" + g + "q4_0, 3" + g +
                              "q4_1, 7" + g + "q8_0, 8" + g + "q5_0, 9" + g + "q5_1, 10" + g +
                              "q2_k, 11" + g + "q3_k, 12" + g + "q4_k.";
    for (const std::size_t width : {std::size_t(12), std::size_t(20), std::size_t(80)}) {
        INFO(width);
        const std::string text = cli::detail::wrap(words, width);
        std::string flat;
        std::size_t start = 0;
        while (start <= text.size()) {
            const std::size_t end = std::min(text.find('\n', start), text.size());
            const std::string line = text.substr(start, end - start);
            // "whisper.cpp's" (13 characters) is the one word longer than 12.
            CHECK((line.size() <= width || line == "whisper.cpp's"));
            CHECK(line.find("  ") == std::string::npos);
            CHECK(line.back() != ' ');
            CHECK(line.rfind("q", 0) != 0);  // a glued unit is never split
            flat += (flat.empty() ? "" : " ") + line;
            start = end + 1;
        }
        std::string expected = words;
        std::replace(expected.begin(), expected.end(), cli::detail::glue, ' ');
        CHECK(flat == expected);
    }
}
