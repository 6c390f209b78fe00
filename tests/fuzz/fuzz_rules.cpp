// SPDX-License-Identifier: MIT
// Fuzz target: the PATTERN=TYPE rule parser and matcher.
//
// The input is text: the lines before the first empty line are rules, the lines after it
// are tensor names (cut at 64 bytes). Each rule goes through rule_set::add (bad ones must be
// refused with a qmix::error), the whole rule section also through rule_set::add_file, and
// then every name is matched. first_match and explain must agree with each other and with
// matching each rule on its own. Patterns that hit known limits of std::regex itself are
// skipped (fuzz_support.hpp, std_regex_hazard).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "qmix/core/error.hpp"
#include "qmix/rules/rules.hpp"

namespace {

using qmix::fuzz::fuzz_check;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static qmix::fuzz::memory_file rule_file("qmix-fuzz-rules");
    const std::vector<std::string> lines = qmix::fuzz::split(data, size, '\n');

    qmix::rules::rule_set rules;
    std::vector<std::string> names;
    std::string rule_text;
    bool in_names = false;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (!in_names && lines[i].empty()) {
            in_names = true;
            continue;
        }
        if (in_names) {
            // Whisper's names are under 50 bytes. Longer ones only multiply the backtracking
            // std::regex does (its matcher also recurses once per character).
            names.push_back(lines[i].substr(0, 64));
            continue;
        }
        if (qmix::fuzz::std_regex_hazard(lines[i])) continue;
        rule_text += lines[i] + "\n";
        try {
            rules.add(lines[i], "fuzz:" + std::to_string(i + 1));
        } catch (const qmix::error&) {
            // A refused rule is the expected answer to most inputs.
        }
    }

    // The same rules as a file: comments, blank lines and surrounding space are handled
    // there; whatever it accepts must be usable.
    qmix::rules::rule_set from_file;
    rule_file.assign(rule_text);
    try {
        from_file.add_file(rule_file.path());
    } catch (const qmix::error&) {
    }

    for (const std::string& name : names) {
        const std::optional<std::size_t> first = rules.first_match(name);
        std::optional<std::size_t> expected;
        for (std::size_t r = 0; r < rules.size() && !expected; ++r) {
            if (rules.rules()[r].matches(name)) expected = r;
        }
        fuzz_check(first == expected, "first_match disagrees with matching rule by rule");
        from_file.first_match(name);
    }

    const auto usage = qmix::rules::explain(rules, names);
    fuzz_check(usage.size() == rules.size(), "explain returned the wrong number of entries");
    std::size_t wins = 0;
    for (std::size_t r = 0; r < usage.size(); ++r) {
        fuzz_check(usage[r].wins <= usage[r].matches, "more wins than matches");
        if (usage[r].shadowed_by) {
            fuzz_check(*usage[r].shadowed_by < r, "shadowed by a later rule");
            fuzz_check(usage[r].wins == 0, "shadowed rule that won");
        }
        wins += usage[r].wins;
    }
    std::size_t matched = 0;
    for (const std::string& name : names) matched += rules.first_match(name) ? 1 : 0;
    fuzz_check(wins == matched, "explain's wins disagree with first_match");
    return 0;
}
