// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "qmix/rules/rules.hpp"

using namespace qmix;
using qmix::rules::rule_set;

TEST_CASE("a pattern must match the whole tensor name", "[rules]") {
    rule_set rules;
    rules.add("encoder\\..*=q8_0", "--tensor-type 1");
    CHECK(rules.first_match("encoder.blocks.0.mlp.0.weight") == 0u);
    CHECK_FALSE(rules.first_match("decoder.encoder.x").has_value());
    rule_set partial;
    partial.add("mlp=q4_0", "--tensor-type 1");
    CHECK_FALSE(partial.first_match("encoder.blocks.0.mlp.0.weight").has_value());
    CHECK(partial.first_match("mlp") == 0u);
}

TEST_CASE("the first matching rule wins", "[rules]") {
    rule_set rules;
    rules.add(".*attn.*=q8_0", "a");
    rules.add(".*cross_attn.*=q4_0", "b");
    rules.add(".*=q5_1", "c");
    CHECK(rules.first_match("decoder.blocks.0.cross_attn.query.weight") == 0u);
    CHECK(rules.first_match("decoder.blocks.0.mlp.0.weight") == 2u);
    CHECK(rules.rules()[2].type == type_id::q5_1);
}

TEST_CASE("a rule is split at its last equals sign and its type parsed in any case", "[rules]") {
    rule_set rules;
    rules.add("a=b=Q4_K", "x");
    CHECK(rules.rules()[0].pattern == "a=b");
    CHECK(rules.rules()[0].type == type_id::q4_k);
    CHECK(rules.first_match("a=b") == 0u);
    rules.add(".*=F16", "y");
    CHECK(rules.rules()[1].type == type_id::f16);
}

TEST_CASE("bad rules are refused with the pattern and the problem named", "[rules]") {
    rule_set rules;
    CHECK_THROWS_WITH(rules.add("encoder.(=q4_0", "--tensor-type 3"),
                      Catch::Contains("--tensor-type 3") && Catch::Contains("encoder.(") &&
                          Catch::Contains("regular expression"));
    CHECK_THROWS_WITH(rules.add("encoder.*=q9_9", "r.txt:4"),
                      Catch::Contains("r.txt:4") && Catch::Contains("q9_9"));
    CHECK_THROWS_WITH(rules.add("encoder.*", "o"), Catch::Contains("PATTERN=TYPE"));
    CHECK_THROWS_WITH(rules.add("=q4_0", "o"), Catch::Contains("empty pattern"));
    CHECK_THROWS_WITH(rules.add(".*=q8_k", "o"), Catch::Contains("unknown type"));
    CHECK(rules.empty());
}

TEST_CASE("stacked quantifiers are refused, as ECMAScript says", "[rules]") {
    rule_set rules;
    for (const char* bad : {".**attn=q8_0", "a+*=q4_0", "a?{2}=q4_0", "x{2}*=q4_0", "(a)*+=q4_0",
                            "a*?"
                            "?=q4_0",
                            "*a=q4_0", "(+a)=q4_0", "^*a=q4_0", "a|?=q4_0"}) {
        INFO(bad);
        CHECK_THROWS_WITH(rules.add(bad, "r"), Catch::Contains("nothing to repeat"));
    }
    for (const char* good : {".*?attn=q8_0", "a+?=q4_0", "[*+?]+=q4_0", "a\\*+=q4_0", "x{2,3}=q4_0",
                             "(a*)+b=q4_0", "x{2}?=q4_0", "a{0}=q4_0"}) {
        INFO(good);
        CHECK_NOTHROW(rules.add(good, "r"));
    }
    CHECK_THROWS_WITH(rules.add(std::string(2000, 'a') + "=q4_0", "r"),
                      Catch::Contains("at most 1024"));
}

TEST_CASE("what an automaton cannot run is refused with the construct named", "[rules]") {
    rule_set rules;
    const std::pair<const char*, const char*> cases[] = {
        {"(a)\\1=q4_0", "back-reference"},
        {"(a)\\12345678901234567890=q4_0", "back-reference"},
        {"a(?=b)b=q4_0", "look-ahead"},
        {"a(?!c).=q4_0", "look-ahead"},
        {"(?<=a)b=q4_0", "look-behind"},
        {"(?<!a)b=q4_0", "look-behind"},
        {"\\cJ=q4_0", "control escape"},
        {"\\u0100=q4_0", "byte by byte"},
        {"[[.a.]]=q4_0", "collating"},
        {"[[=a=]]=q4_0", "equivalence"},
        {"a{1001}=q4_0", "larger than 1000"},
        {"a{99999999999}=q4_0", "larger than 1000"},
        {"((a{30}){30}){30}=q4_0", "automaton states"},
        {"(.{1000}){1000}=q4_0", "automaton states"},
    };
    for (const auto& [text, named] : cases) {
        INFO(text);
        CHECK_THROWS_WITH(rules.add(text, "rules.txt:9"),
                          Catch::Contains("rules.txt:9") &&
                              Catch::Contains("bad regular expression") && Catch::Contains(named));
    }
    const std::string deep = std::string(101, '(') + "a" + std::string(101, ')') + "=q4_0";
    CHECK_THROWS_WITH(rules.add(deep, "r"), Catch::Contains("nested deeper than 100"));
    const std::string deep_ok = std::string(100, '(') + "a" + std::string(100, ')') + "=q4_0";
    CHECK_NOTHROW(rules.add(deep_ok, "r"));
    CHECK(rules.first_match("a") == 0u);
}

TEST_CASE("patterns std::regex backtracked on without end match in linear time", "[rules]") {
    // Each of these kept std::regex (and qmix-quantize) busy for hours on a name of 200
    // characters that does not match. The budget is generous for sanitizer builds: the
    // automaton needs well under a millisecond for each.
    const std::string miss(200, 'a');
    const std::string hit = std::string(199, 'a') + "x";
    const std::string hit_upper = std::string(199, 'a') + "X";
    struct case_ {
        const char* pattern;
        const std::string& name;
        bool expected;
    };
    const case_ cases[] = {
        {"(.*)*x", miss, false},           {"(.*)*x", hit, true},
        {"(.+)+x", miss, false},           {"(.+)+x", hit, true},
        {"(.*){1,30}X", miss, false},      {"(.*){1,30}X", hit_upper, true},
        {"(|.)*X", miss, false},           {"(|.)*X", hit_upper, true},
        {"(a|a)*b", miss, false},          {"(a|aa)*x", hit, true},
        {"(a*)*b", miss, false},           {"((a+)+)+x", hit, true},
        {"(?:a?){200}a{200}", miss, true}, {"(?:a?){98}a{101}", miss, false},
        {"(.*a){20}", miss, true},         {"(.*a){20}x", miss, false},
        {"(\\w+\\.?)*!", miss, false},     {"(a|\\b)*x", hit, true},
    };
    const auto start = std::chrono::steady_clock::now();
    for (const auto& c : cases) {
        INFO(c.pattern);
        rule_set rules;
        rules.add(std::string(c.pattern) + "=q4_0", "r");
        CHECK(rules.first_match(c.name).has_value() == c.expected);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(seconds < 2.0);
    // And 20 rules of that kind over a 4096-byte name, each rule in the same pass.
    rule_set many;
    for (int i = 0; i < 20; ++i) many.add("(.*)*(.+)+" + std::to_string(i) + "=q4_0", "r");
    const std::string long_name = std::string(4095, 'z') + "7";
    const auto start_many = std::chrono::steady_clock::now();
    CHECK(many.first_match(long_name) == 7u);
    CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - start_many).count() <
          2.0);
}

namespace {

/// A random pattern from the subset both engines run, with small counts so that
/// std::regex's backtracking stays quick on short names.
std::string random_pattern(std::mt19937& rng, int depth) {
    const auto pick = [&rng](int n) { return int(rng() % unsigned(n)); };
    static const char* const atoms[] = {"a",
                                        "b",
                                        "_",
                                        "1",
                                        ".",
                                        "\\.",
                                        "\\d",
                                        "\\D",
                                        "\\w",
                                        "\\W",
                                        "\\s",
                                        "\\S",
                                        "[ab]",
                                        "[^a]",
                                        "[a-c]",
                                        "[^b-z1]",
                                        "[\\d_]",
                                        "[-a]",
                                        "[a-]",
                                        "[\\w.]",
                                        "[[:alpha:]]",
                                        "[^[:digit:]b]",
                                        "[]",
                                        "[^]",
                                        "\\x61",
                                        "\\n",
                                        " ",
                                        "}",
                                        "]",
                                        ",",
                                        "-"};
    static const char* const assertions[] = {"^", "$", "\\b", "\\B"};
    static const char* const quantifiers[] = {"*",  "+",  "?",  "{2}",    "{1,}", "{0,2}",
                                              "*?", "+?", "??", "{1,3}?", "{0}"};
    std::string out;
    const int terms = 1 + pick(4);
    for (int t = 0; t < terms; ++t) {
        const int kind = pick(10);
        if (kind == 0) {
            out += assertions[pick(4)];
            continue;
        }
        std::string atom;
        if (kind <= 2 && depth < 3) {
            atom = pick(2) ? "(" : "(?:";
            const int alternatives = 1 + pick(3);
            for (int a = 0; a < alternatives; ++a) {
                if (a > 0) atom += "|";
                if (pick(6) > 0) atom += random_pattern(rng, depth + 1);
            }
            atom += ")";
        } else {
            atom = atoms[pick(int(sizeof(atoms) / sizeof(atoms[0])))];
        }
        out += atom;
        if (pick(3) == 0)
            out += quantifiers[pick(int(sizeof(quantifiers) / sizeof(quantifiers[0])))];
    }
    if (depth == 0 && pick(8) == 0) out += "|" + random_pattern(rng, 1);
    return out;
}

std::string random_name(std::mt19937& rng) {
    static const char letters[] = {'a',  'b',  'c',  '_', '1', '.',       ' ',
                                   '\n', '\r', '\0', '-', 'Z', char(0xe9)};
    std::string name;
    const unsigned length = rng() % 9;
    for (unsigned i = 0; i < length; ++i) name += letters[rng() % sizeof(letters)];
    return name;
}

}  // namespace

TEST_CASE("the automaton matches what std::regex matches, on random patterns and names",
          "[rules]") {
    std::mt19937 rng(20261130);
    std::size_t compared = 0;
    for (int i = 0; i < 3000; ++i) {
        const std::string pattern = random_pattern(rng, 0);
        INFO(pattern);
        const std::regex reference(pattern, std::regex::ECMAScript);
        const auto ours = qmix::rules::regex::program::compile(pattern);
        for (int k = 0; k < 12; ++k) {
            const std::string name = random_name(rng);
            INFO("name of " << name.size() << " bytes: " << name);
            if (std::regex_match(name, reference) != ours.matches(name)) {
                FAIL("the engines disagree");
            }
            ++compared;
        }
    }
    CHECK(compared == 3000u * 12u);
}

TEST_CASE("the automaton accepts and refuses what std::regex did, on random byte soup", "[rules]") {
    // Patterns made of the characters that mean something to a regular expression. Where
    // std::regex accepted a pattern that the automaton refuses, the refusal must be one of
    // the deliberate ones (README, Patterns); the other way round is never allowed.
    const std::string alphabet = "ab.()[]{}*+?|^$\\-,:=!<0123dDwWsSbBxuc_";
    std::mt19937 rng(7);
    int both = 0;
    for (int i = 0; i < 30000; ++i) {
        std::string pattern;
        const unsigned length = 1 + rng() % 12;
        for (unsigned k = 0; k < length; ++k) pattern += alphabet[rng() % alphabet.size()];
        INFO(pattern);
        bool reference_ok = true;
        std::regex reference;
        try {
            reference = std::regex(pattern, std::regex::ECMAScript);
        } catch (const std::regex_error&) {
            reference_ok = false;
        }
        std::string refusal;
        qmix::rules::regex::program ours;
        try {
            ours = qmix::rules::regex::program::compile(pattern);
        } catch (const qmix::error& e) {
            refusal = e.what();
        }
        if (!reference_ok) {
            INFO("refused by std::regex only");
            REQUIRE_FALSE(refusal.empty());
            continue;
        }
        if (!refusal.empty()) {
            INFO(refusal);
            const bool deliberate =
                refusal.find("quantifier follows a quantifier") != std::string::npos ||
                refusal.find("back-reference") != std::string::npos ||
                refusal.find("look-ahead") != std::string::npos ||
                refusal.find("look-behind") != std::string::npos ||
                refusal.find("control escape") != std::string::npos ||
                refusal.find("byte by byte") != std::string::npos;
            REQUIRE(deliberate);
            continue;
        }
        ++both;
        for (int k = 0; k < 6; ++k) {
            const std::string name = random_name(rng);
            INFO("name: " << name);
            REQUIRE(std::regex_match(name, reference) == ours.matches(name));
        }
    }
    CHECK(both > 10000);
}

TEST_CASE("classes, escapes and ranges mean for every byte what they meant to std::regex",
          "[rules]") {
    const char* const patterns[] = {
        ".",
        "\\d",
        "\\D",
        "\\w",
        "\\W",
        "\\s",
        "\\S",
        "[\\b]",
        "\\0",
        "\\f",
        "\\v",
        "\\t",
        "\\x7f",
        "\\xe9",
        "\\u00A0",
        "\\q",
        "\\-",
        "[\\D_]",
        "[^\\W]",
        "[ -/]",
        "[--0]",
        "[a-c-e]",
        "[a-c--e]",
        "[\\x20-\\x7e]",
        "[\\x80-\\xff]",
        "[^\\x00-\\x7f]",
        "[]",
        "[^]",
        "[[:alnum:]]",
        "[[:alpha:]]",
        "[[:blank:]]",
        "[[:cntrl:]]",
        "[[:digit:]]",
        "[[:graph:]]",
        "[[:lower:]]",
        "[[:print:]]",
        "[[:punct:]]",
        "[[:space:]]",
        "[[:upper:]]",
        "[[:xdigit:]]",
        "[[:w:]]",
        "[[:S:]]",
        "[[:ALPHA:]]",
        "[^[:punct:]a]",
        "[[]",
        "[\\]]",
        "]",
        "}",
    };
    for (const char* pattern : patterns) {
        INFO(pattern);
        const std::regex reference(pattern, std::regex::ECMAScript);
        const auto ours = qmix::rules::regex::program::compile(pattern);
        for (int byte = 0; byte < 256; ++byte) {
            const std::string name(1, char(byte));
            INFO("byte " << byte);
            REQUIRE(std::regex_match(name, reference) == ours.matches(name));
        }
    }
}

TEST_CASE("every rule pattern of the fuzz corpus is accepted or refused as before", "[rules]") {
    const auto corpus = std::filesystem::path(QMIX_TESTS_SOURCE_DIR) / "fuzz" / "corpus" / "rules";
    REQUIRE(std::filesystem::is_directory(corpus));
    int patterns = 0;
    for (const auto& entry : std::filesystem::directory_iterator(corpus)) {
        std::ifstream in(entry.path());
        std::string line;
        while (std::getline(in, line) && !line.empty()) {
            const auto first = line.find_first_not_of(" \t\r");
            if (first == std::string::npos || line[first] == '#') continue;
            const auto last = line.find_last_not_of(" \t\r");
            const std::string text = line.substr(first, last - first + 1);
            const auto equals = text.rfind('=');
            if (equals == std::string::npos || equals == 0) continue;
            const std::string pattern = text.substr(0, equals);
            INFO(entry.path().filename().string() << ": " << pattern);
            bool reference_ok = true;
            try {
                std::regex(pattern, std::regex::ECMAScript);
            } catch (const std::regex_error&) {
                reference_ok = false;
            }
            bool ours_ok = true;
            std::string refusal;
            try {
                qmix::rules::regex::program::compile(pattern);
            } catch (const qmix::error& e) {
                ours_ok = false;
                refusal = e.what();
            }
            // The corpus's one back-reference, (a{2,3})\1, is refused on purpose.
            if (pattern.find("\\1") != std::string::npos) {
                CHECK_THAT(refusal, Catch::Contains("back-reference"));
            } else {
                CHECK(ours_ok == reference_ok);
            }
            ++patterns;
        }
    }
    CHECK(patterns >= 12);
}

TEST_CASE("one pass answers for every rule, and the first match keeps the rules' order",
          "[rules]") {
    rule_set rules;
    rules.add(".*\\.weight=q8_0", "1");
    rules.add("encoder\\..*=q4_0", "2");
    rules.add("(.*)*mlp(.+)+=q4_1", "3");
    rules.add("[^x]*=f16", "4");
    const std::vector<bool> expected = {true, true, true, true};
    CHECK(rules.matching("encoder.mlp.0.weight") == expected);
    CHECK(rules.first_match("encoder.mlp.0.weight") == 0u);
    CHECK(rules.first_match("encoder.mlp.0.bias") == 1u);
    CHECK(rules.first_match("decoder.mlp.0.bias") == 2u);
    CHECK(rules.first_match("decoder.ln") == 3u);
    CHECK_FALSE(rules.first_match("x").has_value());
    CHECK(rules.matching("x") == std::vector<bool>(4, false));
    std::mt19937 rng(3);
    for (int i = 0; i < 200; ++i) {
        const std::string name = random_name(rng) + (i % 2 ? ".weight" : "mlp1");
        std::optional<std::size_t> one_by_one;
        for (std::size_t r = 0; r < rules.size() && !one_by_one; ++r) {
            if (rules.rules()[r].matches(name)) one_by_one = r;
        }
        CHECK(rules.first_match(name) == one_by_one);
    }
}

TEST_CASE("rule files keep order, skip comments and blank lines, and report line numbers",
          "[rules]") {
    const auto path = std::filesystem::temp_directory_path() / "qmix-test-rules.txt";
    {
        std::ofstream out(path);
        out << "# attention stays precise\n\n  .*attn.*=q8_0  \n.*=q4_0\n";
    }
    rule_set rules;
    rules.add("decoder.token_embedding.weight=f16", "--tensor-type 1");
    rules.add_file(path.string());
    REQUIRE(rules.size() == 3);
    CHECK(rules.rules()[1].origin == path.string() + ":3");
    CHECK(rules.rules()[1].pattern == ".*attn.*");
    {
        std::ofstream out(path);
        out << ".*=q4_0\n\nbad line\n";
    }
    rule_set broken;
    CHECK_THROWS_WITH(broken.add_file(path.string()), Catch::Contains(path.string() + ":3"));
    std::filesystem::remove(path);
    CHECK_THROWS_WITH(broken.add_file(path.string()), Catch::Contains("cannot open"));
}

TEST_CASE("explain finds rules that matched nothing and rules an earlier rule shadows", "[rules]") {
    rule_set rules;
    rules.add(".*weight=q8_0", "1");
    rules.add(".*mlp.*=q4_0", "2");
    rules.add("nothing.*=q4_1", "3");
    rules.add(".*bias=f16", "4");
    const std::vector<std::string> names = {"a.mlp.0.weight", "a.attn.weight", "a.mlp.0.bias"};
    const auto usage = qmix::rules::explain(rules, names);
    CHECK(usage[0].wins == 2);
    CHECK(usage[1].wins == 1);  // a.mlp.0.bias
    CHECK(usage[1].matches == 2);
    CHECK_FALSE(usage[1].shadowed_by.has_value());
    CHECK(usage[2].matches == 0);
    CHECK(usage[3].wins == 0);
    REQUIRE(usage[3].shadowed_by.has_value());
    CHECK(*usage[3].shadowed_by == 1u);
}
