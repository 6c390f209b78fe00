// SPDX-License-Identifier: MIT
#pragma once

#include <cstddef>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/formats/registry.hpp"
#include "qmix/rules/regex.hpp"

namespace qmix::rules {

/// The types a model tensor may be stored as: those an ftype names (f32, f16, q4_0, q4_1,
/// q5_0, q5_1, q8_0, q2_k ... q6_k, iq4_nl, iq4_xs, bf16). q8_1 and q8_k exist only as
/// dot-product operands.
inline bool is_storage_type(type_id type) {
    return ftype_of_type(type).has_value();
}

/// The storage type names, separated by spaces, in the registry's order.
inline std::string storage_type_names() {
    std::string names;
    for (const auto& t : type_table) {
        if (!is_storage_type(t.id)) continue;
        if (!names.empty()) names += ' ';
        names += t.name;
    }
    return names;
}

/// Parses a storage type name in any letter case; throws a qmix::error listing the choices.
inline type_id parse_storage_type(std::string_view text, std::string_view where) {
    const auto type = parse_type_name(text);
    if (!type || !is_storage_type(*type)) {
        throw error(std::string(where) + ": unknown type '" + std::string(text) +
                    "' (choose one of " + storage_type_names() + ")");
    }
    return *type;
}

/// Patterns longer than this are refused: tensor names are short, and so are the rules
/// that select them.
inline constexpr std::size_t max_pattern_length = 1024;

/// One PATTERN=TYPE rule: the pattern is a regular expression in ECMAScript syntax (what
/// std::regex reads, without back-references and look-around) that must match a tensor's
/// whole name. It is matched by an automaton (regex.hpp) in time linear in the name's
/// length, whatever the pattern.
struct rule {
    std::string pattern;
    type_id type;
    std::string origin;  ///< where the rule came from: "--tensor-type 2" or "rules.txt:7"
    regex::program program;

    bool matches(std::string_view name) const { return program.matches(name); }
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
        regex::program compiled;
        try {
            compiled = regex::program::compile(pattern);
        } catch (const error& e) {
            throw error(origin + ": bad regular expression '" + pattern + "': " + e.what());
        }
        all_.append(compiled);
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

    /// Index of the first rule matching the whole name, if any. Every rule is tried in
    /// the same pass over the name.
    std::optional<std::size_t> first_match(std::string_view name) const {
        std::vector<bool> matched;
        all_.run(name, matched);
        for (std::size_t i = 0; i < matched.size(); ++i) {
            if (matched[i]) return i;
        }
        return std::nullopt;
    }

    /// For each rule, in order, whether it matches the whole name (one pass over the name).
    std::vector<bool> matching(std::string_view name) const {
        std::vector<bool> matched;
        all_.run(name, matched);
        return matched;
    }

    const std::vector<rule>& rules() const noexcept { return rules_; }
    bool empty() const noexcept { return rules_.empty(); }
    std::size_t size() const noexcept { return rules_.size(); }

  private:
    std::vector<rule> rules_;
    regex::program all_;  ///< every rule's pattern, in order, as one automaton
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
        const std::vector<bool> matched = rules.matching(name);
        for (std::size_t i = 0; i < rules.size(); ++i) {
            if (!matched[i]) continue;
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
