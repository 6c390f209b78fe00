// SPDX-License-Identifier: MIT
// Fuzz target: the PATTERN=TYPE rule parser and the regular-expression automaton.
//
// The input is text: the lines before the first empty line are rules, the lines after it
// are tensor names (cut at 256 bytes). Each rule goes through rule_set::add (bad ones must
// be refused with a qmix::error), the whole rule section also through rule_set::add_file,
// and then every name is matched. first_match, matching and explain must agree with each
// other and with matching each rule on its own.
//
// Differentially, against libstdc++'s std::regex (what qmix matched with before): a
// pattern std::regex refuses must be refused; a pattern it accepts must be accepted, or
// refused for one of the deliberate reasons (back-references, look-around, a quantifier
// on a quantifier, ...); and every name (cut at 16 bytes) must match under both or neither.
// std::regex backtracks, so it is only asked about patterns it runs quickly: no quantified
// group holding a quantifier or an alternation, at most four quantifiers, small counts,
// shallow nesting (std_regex_is_quick below). The automaton itself gets every pattern.

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "qmix/core/error.hpp"
#include "qmix/rules/regex.hpp"
#include "qmix/rules/rules.hpp"

namespace {

using qmix::fuzz::fuzz_check;
using qmix::fuzz::fuzz_fail;
namespace re = qmix::rules::regex;

/// Whether std::regex's backtracking stays cheap on the pattern, for names of 16 bytes.
bool std_regex_is_quick(const std::string& pattern) {
    if (qmix::fuzz::std_regex_hazard(pattern)) return false;
    re::detail::parser parser(pattern);
    std::size_t root = 0;
    try {
        root = parser.parse();
    } catch (const qmix::error&) {
        return false;
    }
    const auto& nodes = parser.nodes();
    using kind = re::detail::node::kind;
    int quantifiers = 0;
    // Walks the tree; `under_repeat` is set below a repeated node.
    struct item {
        std::size_t node;
        bool under_repeat;
        int depth;
    };
    std::vector<item> stack{{root, false, 0}};
    while (!stack.empty()) {
        const item at = stack.back();
        stack.pop_back();
        const auto& n = nodes[at.node];
        if (at.depth > 16) return false;
        bool repeated = false;
        if (n.type == kind::repeat) {
            if (at.under_repeat) return false;
            if (n.max < 0 || n.max > 1) repeated = true;
            if (n.max > 20 || n.min > 20) return false;
            if (++quantifiers > 4) return false;
        }
        if (n.type == kind::alternation && at.under_repeat) return false;
        for (const std::size_t child : n.children) {
            stack.push_back({child, at.under_repeat || repeated, at.depth + 1});
        }
    }
    return true;
}

bool deliberate_refusal(const std::string& message) {
    for (const char* reason :
         {"quantifier follows a quantifier", "back-reference", "look-ahead", "look-behind",
          "control escape", "byte by byte", "collating elements"}) {
        if (message.find(reason) != std::string::npos) return true;
    }
    return false;
}

/// Compares the automaton with std::regex on one pattern and the names.
void compare_with_std_regex(const std::string& pattern, const std::vector<std::string>& names) {
    if (qmix::fuzz::std_regex_hazard(pattern)) return;
    std::string refusal;
    std::optional<re::program> ours;
    try {
        ours = re::program::compile(pattern);
    } catch (const qmix::error& e) {
        refusal = e.what();
    }
    // Past the automaton's size limits std::regex would build millions of states: only
    // the automaton's answer counts there.
    for (const char* limit : {"larger than", "automaton states", "nested deeper"}) {
        if (refusal.find(limit) != std::string::npos) return;
    }
    // Compiling is safe under the hazard filter; matching only for quick patterns.
    std::optional<std::regex> reference;
    try {
        reference.emplace(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error&) {
    }
    if (!reference) {
        if (ours) fuzz_fail("the automaton accepts a pattern std::regex refuses: " + pattern);
        return;
    }
    if (!ours) {
        if (!deliberate_refusal(refusal)) {
            fuzz_fail("the automaton refuses a pattern std::regex accepts: " + pattern + ": " +
                      refusal);
        }
        return;
    }
    if (!std_regex_is_quick(pattern)) return;
    for (const std::string& name : names) {
        const std::string shorter = name.substr(0, 16);
        if (std::regex_match(shorter, *reference) != ours->matches(shorter)) {
            fuzz_fail("the automaton and std::regex disagree: pattern '" + pattern + "', name '" +
                      shorter + "'");
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static qmix::fuzz::memory_file rule_file("qmix-fuzz-rules");
    const std::vector<std::string> lines = qmix::fuzz::split(data, size, '\n');

    qmix::rules::rule_set rules;
    std::vector<std::string> names;
    std::vector<std::string> patterns;
    std::string rule_text;
    bool in_names = false;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (!in_names && lines[i].empty()) {
            in_names = true;
            continue;
        }
        if (in_names) {
            names.push_back(lines[i].substr(0, 256));
            continue;
        }
        rule_text += lines[i] + "\n";
        const auto equals = lines[i].rfind('=');
        patterns.push_back(equals == std::string::npos ? lines[i] : lines[i].substr(0, equals));
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
        const std::vector<bool> matching = rules.matching(name);
        fuzz_check(matching.size() == rules.size(), "matching has the wrong size");
        std::optional<std::size_t> expected;
        for (std::size_t r = 0; r < rules.size(); ++r) {
            const bool alone = rules.rules()[r].matches(name);
            fuzz_check(alone == matching[r], "one pass over every rule disagrees with one rule");
            if (alone && !expected) expected = r;
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

    for (const std::string& pattern : patterns) {
        if (!pattern.empty() && pattern.size() <= 256) compare_with_std_regex(pattern, names);
    }
    return 0;
}
