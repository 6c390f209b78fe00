// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>

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

TEST_CASE("stacked quantifiers, which std::regex would backtrack on forever, are refused",
          "[rules]") {
    rule_set rules;
    for (const char* bad : {".**attn=q8_0", "a+*=q4_0", "a?{2}=q4_0", "x{2}*=q4_0", "(a)*+=q4_0"}) {
        INFO(bad);
        CHECK_THROWS_WITH(rules.add(bad, "r"), Catch::Contains("nothing to repeat"));
    }
    for (const char* good :
         {".*?attn=q8_0", "a+?=q4_0", "[*+?]+=q4_0", "a\\*+=q4_0", "x{2,3}=q4_0", "(a*)+b=q4_0"}) {
        INFO(good);
        CHECK_NOTHROW(rules.add(good, "r"));
    }
    CHECK_THROWS_WITH(rules.add("(a)\\12345678901234567890=q4_0", "r"),
                      Catch::Contains("number too long"));
    CHECK_THROWS_WITH(rules.add(std::string(2000, 'a') + "=q4_0", "r"),
                      Catch::Contains("at most 1024"));
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
