// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <fstream>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/formats/registry.hpp"

namespace qmix::rules {

/// The types a model tensor may be stored as: those an ftype names (f32, f16, q4_0, q4_1,
/// q5_0, q5_1, q8_0, q2_k ... q6_k). q8_1 and q8_k exist only as dot-product operands.
inline bool is_storage_type(type_id type) {
    return ftype_of_type(type).has_value();
}

/// Parses a storage type name in any letter case; throws a qmix::error listing the choices.
inline type_id parse_storage_type(std::string_view text, std::string_view where) {
    const auto type = parse_type_name(text);
    if (!type || !is_storage_type(*type)) {
        throw error(std::string(where) + ": unknown type '" + std::string(text) +
                    "' (choose one of f32 f16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k)");
    }
    return *type;
}

/// Patterns longer than this are refused: tensor names are short, and std::regex compiles
/// recursively, so a huge pattern could exhaust the stack.
inline constexpr std::size_t max_pattern_length = 1024;

/// Refuses what std::regex (libstdc++) handles badly although no tensor name needs it:
/// - a quantifier directly after another (".**", "a+*", "a?{2}"): ECMAScript forbids it,
///   libstdc++ accepts it and then backtracks exponentially on every failed match; one '?'
///   after a quantifier (lazy) is allowed;
/// - a run of more than 9 digits (a back-reference or repeat count that large overflows
///   an int inside the regex compiler).
/// Returns an explanation, or an empty string for a pattern that passes.
inline std::string unsafe_for_std_regex(std::string_view pattern) {
    std::size_t digits = 0;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        digits = (pattern[i] >= '0' && pattern[i] <= '9') ? digits + 1 : 0;
        if (digits > 9) return "number too long at offset " + std::to_string(i - 9);
    }
    bool in_class = false;
    bool after_quantifier = false;  // the previous token was a quantifier
    bool lazy_allowed = false;      // ... and a '?' may still make it lazy
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        const char c = pattern[i];
        if (c == '\\') {  // an escape is one atom
            ++i;
            after_quantifier = false;
            continue;
        }
        if (in_class) {
            in_class = c != ']';
            continue;
        }
        const bool quantifier = c == '*' || c == '+' || c == '?' || c == '{';
        if (quantifier && after_quantifier) {
            if (c == '?' && lazy_allowed) {
                lazy_allowed = false;
                continue;
            }
            return "nothing to repeat at offset " + std::to_string(i) +
                   " (a quantifier follows a quantifier)";
        }
        if (c == '{') {  // skip the counts {n}, {n,}, {n,m}
            const auto close = pattern.find('}', i);
            if (close != std::string_view::npos) i = close;
        }
        if (c == '[') in_class = true;
        after_quantifier = quantifier;
        lazy_allowed = quantifier;
    }
    return {};
}

/// One PATTERN=TYPE rule: the pattern is an ECMAScript regular expression that must match
/// a tensor's whole name.
struct rule {
    std::string pattern;
    type_id type;
    std::string origin;  ///< where the rule came from: "--tensor-type 2" or "rules.txt:7"
    std::regex regex;

    bool matches(const std::string& name) const { return std::regex_match(name, regex); }
};

/// An ordered list of rules; the first rule that matches a name decides its type.
class rule_set {
  public:
    /// Adds "PATTERN=TYPE", split at the last '=' (a pattern may itself contain '=').
    /// Compiles the pattern once; a bad pattern or type is a qmix::error naming both.
    void add(std::string_view text, std::string origin) {
        const auto equals = text.rfind('=');
        if (equals == std::string_view::npos) {
            throw error(origin + ": '" + std::string(text) + "' is not PATTERN=TYPE");
        }
        const std::string pattern(text.substr(0, equals));
        const std::string_view type_text = text.substr(equals + 1);
        if (pattern.empty()) throw error(origin + ": empty pattern in '" + std::string(text) + "'");
        const type_id type = parse_storage_type(type_text, origin);
        if (pattern.size() > max_pattern_length) {
            throw error(origin + ": the pattern is " + std::to_string(pattern.size()) +
                        " characters long; at most " + std::to_string(max_pattern_length) +
                        " are accepted");
        }
        if (const std::string problem = unsafe_for_std_regex(pattern); !problem.empty()) {
            throw error(origin + ": bad regular expression '" + pattern + "': " + problem);
        }
        std::regex compiled;
        try {
            compiled = std::regex(pattern, std::regex::ECMAScript | std::regex::optimize);
        } catch (const std::regex_error& e) {
            throw error(origin + ": bad regular expression '" + pattern + "': " + e.what());
        }
        rules_.push_back({pattern, type, std::move(origin), std::move(compiled)});
    }

    /// Adds the rules of a file: one PATTERN=TYPE per line, '#' starts a comment line,
    /// blank lines are skipped, surrounding white space is ignored, and so is a UTF-8 byte
    /// order mark at the start of the file (editors on Windows write one).
    void add_file(const std::string& path) {
        std::ifstream in(path);
        if (!in) throw error(path + ": cannot open the rule file");
        std::string line;
        for (std::size_t number = 1; std::getline(in, line); ++number) {
            if (number == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
            const auto first = line.find_first_not_of(" \t\r");
            if (first == std::string::npos || line[first] == '#') continue;
            const auto last = line.find_last_not_of(" \t\r");
            add(std::string_view(line).substr(first, last - first + 1),
                path + ":" + std::to_string(number));
        }
        if (in.bad()) throw error(path + ": read error in the rule file");
    }

    /// Index of the first rule matching the whole name, if any.
    std::optional<std::size_t> first_match(const std::string& name) const {
        for (std::size_t i = 0; i < rules_.size(); ++i) {
            if (rules_[i].matches(name)) return i;
        }
        return std::nullopt;
    }

    const std::vector<rule>& rules() const noexcept { return rules_; }
    bool empty() const noexcept { return rules_.empty(); }
    std::size_t size() const noexcept { return rules_.size(); }

  private:
    std::vector<rule> rules_;
};

/// How a set of rules fared over a list of tensor names, for the warnings users need:
/// a rule that matched nothing, and a rule that matched only names an earlier rule took.
struct rule_usage {
    std::size_t wins = 0;                    ///< names this rule decided
    std::size_t matches = 0;                 ///< names it matched, decided or not
    std::optional<std::size_t> shadowed_by;  ///< when it decided nothing: an earlier rule that won
};

inline std::vector<rule_usage> explain(const rule_set& rules,
                                       const std::vector<std::string>& names) {
    std::vector<rule_usage> usage(rules.size());
    std::vector<std::optional<std::size_t>> first_winner_over(rules.size());
    for (const auto& name : names) {
        std::optional<std::size_t> winner;
        for (std::size_t i = 0; i < rules.size(); ++i) {
            if (!rules.rules()[i].matches(name)) continue;
            ++usage[i].matches;
            if (!winner) {
                winner = i;
                ++usage[i].wins;
            } else if (!first_winner_over[i]) {
                first_winner_over[i] = winner;
            }
        }
    }
    for (std::size_t i = 0; i < rules.size(); ++i) {
        if (usage[i].matches > 0 && usage[i].wins == 0) usage[i].shadowed_by = first_winner_over[i];
    }
    return usage;
}

}  // namespace qmix::rules
