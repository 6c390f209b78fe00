// SPDX-License-Identifier: MIT
#pragma once

// A regular-expression matcher whose time is linear in the length of the text: the rule
// patterns are parsed (the ECMAScript syntax std::regex reads, minus back-references and
// look-around), compiled into a Thompson automaton and run as a set of states over the
// text, one byte at a time (a Pike VM without captures). There is no backtracking, so no
// pattern can make a match slow: "(.*)*x" on a 200-byte name costs what ".*x" costs.
// Several patterns compile into one program, run over a name once, which answers for every
// pattern at the same time (rule_set's first match and its usage report).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "qmix/core/error.hpp"

namespace qmix::rules::regex {

/// Limits that keep a compiled pattern small whatever its text: counts in {m,n} are at
/// most max_repeat, groups nest at most max_nesting deep, and a pattern expands (counted
/// repetitions copied out) into at most max_program_size automaton states.
inline constexpr int max_repeat = 1000;
inline constexpr int max_nesting = 100;
inline constexpr std::size_t max_program_size = 20000;

/// A set of bytes, one bit each.
struct byte_set {
    std::uint64_t bits[4] = {0, 0, 0, 0};

    bool test(unsigned char c) const noexcept { return (bits[c >> 6] >> (c & 63)) & 1u; }
    void set(unsigned char c) noexcept { bits[c >> 6] |= std::uint64_t(1) << (c & 63); }
    void set_range(unsigned lo, unsigned hi) noexcept {
        for (unsigned c = lo; c <= hi; ++c) set(static_cast<unsigned char>(c));
    }
    void add(const byte_set& other) noexcept {
        for (int i = 0; i < 4; ++i) bits[i] |= other.bits[i];
    }
    void invert() noexcept {
        for (auto& word : bits) word = ~word;
    }
};

namespace detail {

/// The character classes of the "C" locale, as std::regex_traits<char> sees them with the
/// default global locale: ASCII only; bytes from 0x80 belong to no class.
inline bool named_class(std::string_view name, byte_set& out) {
    std::string lower;
    for (const char c : name) lower += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : c;
    byte_set s;
    const auto range = [&s](unsigned lo, unsigned hi) { s.set_range(lo, hi); };
    if (lower == "d" || lower == "digit") {
        range('0', '9');
    } else if (lower == "w") {
        range('0', '9'), range('a', 'z'), range('A', 'Z'), s.set('_');
    } else if (lower == "s" || lower == "space") {
        range('\t', '\r'), s.set(' ');
    } else if (lower == "alnum") {
        range('0', '9'), range('a', 'z'), range('A', 'Z');
    } else if (lower == "alpha") {
        range('a', 'z'), range('A', 'Z');
    } else if (lower == "blank") {
        s.set(' '), s.set('\t');
    } else if (lower == "cntrl") {
        range(0, 31), s.set(127);
    } else if (lower == "graph") {
        range(33, 126);
    } else if (lower == "lower") {
        range('a', 'z');
    } else if (lower == "print") {
        range(32, 126);
    } else if (lower == "punct") {
        range(33, 47), range(58, 64), range(91, 96), range(123, 126);
    } else if (lower == "upper") {
        range('A', 'Z');
    } else if (lower == "xdigit") {
        range('0', '9'), range('a', 'f'), range('A', 'F');
    } else {
        return false;
    }
    out = s;
    return true;
}

inline bool is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

inline int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/// A node of the parsed pattern.
struct node {
    enum class kind : std::uint8_t {
        empty,         // matches the empty string
        bytes,         // one byte of `chars`
        concat,        // the children in order
        alternation,   // one of the children
        repeat,        // the child min..max times (max < 0: without bound)
        line_begin,    // ^: at the start of the name
        line_end,      // $: at its end
        word_edge,     // \b
        not_word_edge  // \B
    };
    kind type = kind::empty;
    byte_set chars;
    std::vector<std::size_t> children;
    int min = 0;
    int max = 0;
};

/// The recursive-descent parser. Its grammar and its choices follow libstdc++'s
/// std::regex with the ECMAScript flag (what qmix used before), so that a pattern means
/// what it meant; what an automaton cannot run is refused with the construct named.
class parser {
  public:
    explicit parser(std::string_view pattern) : text_(pattern) {}

    /// Parses the whole pattern; returns the index of the root node.
    std::size_t parse() {
        const std::size_t root = disjunction(0);
        if (pos_ < text_.size()) fail("unmatched ')'", pos_);  // disjunction stops at ')'
        return root;
    }

    std::vector<node>& nodes() { return nodes_; }

  private:
    [[noreturn]] void fail(const std::string& what, std::size_t offset) const {
        throw error(what + " at offset " + std::to_string(offset));
    }

    std::size_t add(node n) {
        nodes_.push_back(std::move(n));
        return nodes_.size() - 1;
    }
    std::size_t add_bytes(const byte_set& s) {
        node n;
        n.type = node::kind::bytes;
        n.chars = s;
        return add(std::move(n));
    }
    std::size_t add_simple(node::kind k) {
        node n;
        n.type = k;
        return add(std::move(n));
    }

    bool at_end() const { return pos_ >= text_.size(); }
    char peek() const { return text_[pos_]; }

    std::size_t disjunction(int depth) {
        std::vector<std::size_t> alternatives{alternative(depth)};
        while (!at_end() && peek() == '|') {
            ++pos_;
            alternatives.push_back(alternative(depth));
        }
        if (alternatives.size() == 1) return alternatives[0];
        node n;
        n.type = node::kind::alternation;
        n.children = std::move(alternatives);
        return add(std::move(n));
    }

    std::size_t alternative(int depth) {
        std::vector<std::size_t> terms;
        while (!at_end()) {
            const char c = peek();
            if (c == '|' || c == ')') break;
            if (c == '*' || c == '+' || c == '?' || c == '{') fail("nothing to repeat", pos_);
            std::size_t term = 0;
            if (assertion(term)) {  // an assertion takes no quantifier
                terms.push_back(term);
                continue;
            }
            term = atom(depth);
            terms.push_back(quantified(term));
        }
        if (terms.empty()) return add_simple(node::kind::empty);
        if (terms.size() == 1) return terms[0];
        node n;
        n.type = node::kind::concat;
        n.children = std::move(terms);
        return add(std::move(n));
    }

    bool assertion(std::size_t& out) {
        const char c = peek();
        if (c == '^' || c == '$') {
            ++pos_;
            out = add_simple(c == '^' ? node::kind::line_begin : node::kind::line_end);
            return true;
        }
        if (c == '\\' && pos_ + 1 < text_.size() &&
            (text_[pos_ + 1] == 'b' || text_[pos_ + 1] == 'B')) {
            out = add_simple(text_[pos_ + 1] == 'b' ? node::kind::word_edge
                                                    : node::kind::not_word_edge);
            pos_ += 2;
            return true;
        }
        return false;
    }

    /// Reads one quantifier after an atom, if there is one, and an optional '?' (lazy:
    /// the same matches, so ignored). A second quantifier is refused: ECMAScript has no
    /// quantifier on a quantifier (libstdc++ accepted one and then backtracked without end).
    std::size_t quantified(std::size_t atom_node) {
        if (at_end()) return atom_node;
        const std::size_t start = pos_;
        int min = 0;
        int max = -1;
        const char c = peek();
        if (c == '*') {
            ++pos_;
        } else if (c == '+') {
            min = 1, ++pos_;
        } else if (c == '?') {
            max = 1, ++pos_;
        } else if (c == '{') {
            ++pos_;
            min = count(start);
            max = min;
            if (!at_end() && peek() == ',') {
                ++pos_;
                max = (!at_end() && peek() >= '0' && peek() <= '9') ? count(start) : -1;
            }
            if (at_end() || peek() != '}') fail("'{' without its '}'", start);
            ++pos_;
            if (max >= 0 && max < min) fail("repetition {m,n} with n < m", start);
        } else {
            return atom_node;
        }
        if (!at_end() && peek() == '?') ++pos_;
        if (!at_end()) {
            const char next = peek();
            if (next == '*' || next == '+' || next == '?' || next == '{') {
                fail("nothing to repeat (a quantifier follows a quantifier)", pos_);
            }
        }
        node n;
        n.type = node::kind::repeat;
        n.children = {atom_node};
        n.min = min;
        n.max = max;
        return add(std::move(n));
    }

    int count(std::size_t start) {
        if (at_end() || peek() < '0' || peek() > '9') {
            fail("'{' must be followed by a repetition count", start);
        }
        long value = 0;
        while (!at_end() && peek() >= '0' && peek() <= '9') {
            value = value * 10 + (peek() - '0');
            if (value > max_repeat) {
                fail("repetition count larger than " + std::to_string(max_repeat), start);
            }
            ++pos_;
        }
        return static_cast<int>(value);
    }

    std::size_t atom(int depth) {
        const std::size_t start = pos_;
        const char c = peek();
        ++pos_;
        if (c == '.') {
            byte_set s;
            s.invert();
            s.bits['\n' >> 6] &= ~(std::uint64_t(1) << ('\n' & 63));
            s.bits['\r' >> 6] &= ~(std::uint64_t(1) << ('\r' & 63));
            return add_bytes(s);
        }
        if (c == '(') return group(start, depth);
        if (c == '[') return bracket(start);
        if (c == '\\') {
            byte_set s;
            escape(start, s);
            return add_bytes(s);
        }
        byte_set s;
        s.set(static_cast<unsigned char>(c));
        return add_bytes(s);
    }

    std::size_t group(std::size_t start, int depth) {
        if (depth + 1 > max_nesting) {
            fail("groups nested deeper than " + std::to_string(max_nesting), start);
        }
        if (!at_end() && peek() == '?') {
            ++pos_;
            if (at_end()) fail("'(?' at the end of the pattern", start);
            const char kind = peek();
            if (kind == '=' || kind == '!') {
                fail(std::string("look-ahead '(?") + kind +
                         "' is not supported (a finite automaton cannot run it)",
                     start);
            }
            if (kind == '<' && pos_ + 1 < text_.size() &&
                (text_[pos_ + 1] == '=' || text_[pos_ + 1] == '!')) {
                fail(std::string("look-behind '(?<") + text_[pos_ + 1] +
                         "' is not supported (a finite automaton cannot run it)",
                     start);
            }
            if (kind != ':') fail("'(?' must begin '(?:'", start);
            ++pos_;
        }
        const std::size_t inside = disjunction(depth + 1);
        if (at_end() || peek() != ')') fail("missing ')' for the '('", start);
        ++pos_;
        return inside;
    }

    /// An escape after '\' (pos_ is past the backslash). Outside brackets \b and \B are
    /// assertions (handled before atoms); inside, \b is a backspace and \B an error.
    /// Sets `is_class` when the escape is a class (\d \D \s \S \w \W), which cannot start
    /// or end a range.
    void escape(std::size_t start, byte_set& out, bool* is_class = nullptr,
                unsigned char* byte = nullptr) {
        if (at_end()) fail("'\\' at the end of the pattern", start);
        const char c = peek();
        ++pos_;
        if (is_class) *is_class = false;
        unsigned char value = static_cast<unsigned char>(c);
        switch (c) {
            case '0':
                value = 0;
                break;
            case 'f':
                value = '\f';
                break;
            case 'n':
                value = '\n';
                break;
            case 'r':
                value = '\r';
                break;
            case 't':
                value = '\t';
                break;
            case 'v':
                value = '\v';
                break;
            case 'b':
                value = '\b';  // only reached inside brackets
                break;
            case 'B':
                fail("'\\B' inside brackets", start);
            case 'd':
            case 'D':
            case 's':
            case 'S':
            case 'w':
            case 'W': {
                byte_set s;
                named_class(std::string(1, c), s);
                if (c == 'D' || c == 'S' || c == 'W') s.invert();
                out = s;
                if (is_class) *is_class = true;
                return;
            }
            case 'c':
                fail("the control escape '\\c' is not supported (write the byte as \\xNN)", start);
            case 'x':
            case 'u': {
                const int digits = c == 'x' ? 2 : 4;
                unsigned code = 0;
                for (int i = 0; i < digits; ++i) {
                    if (at_end() || hex_value(peek()) < 0) {
                        fail(std::string("'\\") + c + "' needs " + std::to_string(digits) +
                                 " hexadecimal digits",
                             start);
                    }
                    code = code * 16 + unsigned(hex_value(peek()));
                    ++pos_;
                }
                if (code > 0xff) {
                    fail("'\\u' above \\u00ff: names are matched byte by byte", start);
                }
                value = static_cast<unsigned char>(code);
                break;
            }
            default:
                if (c >= '1' && c <= '9') {
                    fail(std::string("back-reference '\\") + c +
                             "' is not supported (a finite automaton cannot run it)",
                         start);
                }
                break;  // any other escaped byte stands for itself
        }
        byte_set s;
        s.set(value);
        out = s;
        if (byte) *byte = value;
    }

    /// One element of a bracket expression: a byte, a class, a dash, or the closing ']'.
    enum class element { end, byte, set, dash };
    element bracket_element(std::size_t open, unsigned char& byte, byte_set& set) {
        if (at_end()) fail("'[' without its ']'", open);
        const std::size_t start = pos_;
        const char c = peek();
        ++pos_;
        if (c == ']') return element::end;
        if (c == '-') return element::dash;
        if (c == '[' && !at_end() && (peek() == ':' || peek() == '.' || peek() == '=')) {
            const char kind = peek();
            ++pos_;
            const auto close = text_.find(kind, pos_);
            if (close == std::string_view::npos || close + 1 >= text_.size() ||
                text_[close + 1] != ']') {
                fail(std::string("'[") + kind + "' without its '" + kind + "]'", start);
            }
            const std::string_view name = text_.substr(pos_, close - pos_);
            pos_ = close + 2;
            if (kind != ':') {
                fail(std::string("collating elements and equivalence classes ('[") + kind +
                         "') are not supported",
                     start);
            }
            if (!named_class(name, set)) {
                fail("unknown character class '[:" + std::string(name) + ":]'", start);
            }
            return element::set;
        }
        if (c == '[' && at_end()) fail("'[' without its ']'", open);
        if (c == '\\') {
            bool is_class = false;
            escape(start, set, &is_class, &byte);
            return is_class ? element::set : element::byte;
        }
        byte = static_cast<unsigned char>(c);
        return element::byte;
    }

    std::size_t bracket(std::size_t open) {
        bool negate = false;
        if (!at_end() && peek() == '^') negate = true, ++pos_;
        byte_set chars;
        // The last element read, while it may still start a range.
        enum class last_kind { none, byte, set } last = last_kind::none;
        unsigned char last_byte = 0;
        bool first = true;
        for (;;) {
            unsigned char byte = 0;
            byte_set set;
            const std::size_t at = pos_;
            element e = bracket_element(open, byte, set);
            if (e == element::end) break;
            if (e == element::dash && first) e = element::byte, byte = '-';
            first = false;
            if (e == element::byte) {
                if (last == last_kind::byte) chars.set(last_byte);
                last = last_kind::byte, last_byte = byte;
            } else if (e == element::set) {
                if (last == last_kind::byte) chars.set(last_byte);
                chars.add(set);
                last = last_kind::set;
            } else {                               // a dash after the first element
                if (!at_end() && peek() == ']') {  // "-]": a literal dash
                    ++pos_;
                    if (last == last_kind::byte) chars.set(last_byte);
                    chars.set('-');
                    last = last_kind::none;
                    break;
                }
                if (last == last_kind::set) fail("a class cannot start a range", at);
                if (last == last_kind::none) {  // after a range: a literal dash
                    last = last_kind::byte, last_byte = '-';
                    continue;
                }
                unsigned char end_byte = 0;
                const element end = bracket_element(open, end_byte, set);
                if (end == element::dash) {
                    end_byte = '-';
                } else if (end != element::byte) {
                    fail("bad end of a range", at);
                }
                // Ranges order bytes as the platform's char does, as std::regex did: on
                // x86 (signed char) [\x80-\xff] holds 0x80..0xff and [\x00-\xff] is out of
                // order; where char is unsigned, both are fine.
                const int lo = static_cast<char>(last_byte);
                const int hi = static_cast<char>(end_byte);
                if (lo > hi) fail("range out of order", at);
                for (int v = lo; v <= hi; ++v) chars.set(static_cast<unsigned char>(v));
                last = last_kind::none;
            }
        }
        if (last == last_kind::byte) chars.set(last_byte);
        if (negate) chars.invert();
        return add_bytes(chars);
    }

    std::string_view text_;
    std::size_t pos_ = 0;
    std::vector<node> nodes_;
};

}  // namespace detail

/// Compiled patterns: one automaton holding one or more patterns, matched against whole
/// names in one pass.
class program {
  public:
    /// Parses and compiles one pattern; a pattern the engine cannot run or that is not a
    /// regular expression throws a qmix::error saying what and at which offset.
    static program compile(std::string_view pattern) {
        detail::parser p(pattern);
        const std::size_t root = p.parse();
        program out;
        const std::size_t size = out.size_of(p.nodes(), root);
        if (size > max_program_size) {
            throw error("the pattern expands to more than " + std::to_string(max_program_size) +
                        " automaton states (counted repetitions are copied out)");
        }
        out.starts_.push_back(0);
        out.emit(p.nodes(), root);
        out.code_.push_back({op::match, 0, 0});
        return out;
    }

    /// Adds the patterns of `other` after this program's own (their numbers follow).
    void append(const program& other) {
        const std::uint32_t offset = static_cast<std::uint32_t>(code_.size());
        const std::uint32_t set_offset = static_cast<std::uint32_t>(sets_.size());
        const std::uint32_t first = static_cast<std::uint32_t>(starts_.size());
        for (const std::uint32_t s : other.starts_) starts_.push_back(s + offset);
        sets_.insert(sets_.end(), other.sets_.begin(), other.sets_.end());
        for (instruction i : other.code_) {
            if (i.code == op::jump || i.code == op::split) i.x += offset;
            if (i.code == op::split) i.y += offset;
            if (i.code == op::bytes) i.x += set_offset;
            if (i.code == op::match) i.x += first;
            code_.push_back(i);
        }
    }

    std::size_t patterns() const noexcept { return starts_.size(); }
    std::size_t size() const noexcept { return code_.size(); }

    /// Whether any of the patterns matches the whole text.
    bool matches(std::string_view text) const {
        std::vector<bool> matched;
        run(text, matched);
        for (const bool m : matched) {
            if (m) return true;
        }
        return false;
    }

    /// For each pattern, whether it matches the whole text: one pass over the text.
    void run(std::string_view text, std::vector<bool>& matched) const {
        matched.assign(starts_.size(), false);
        state_list current(code_.size());
        state_list next(code_.size());
        std::vector<std::uint32_t> stack;
        for (const std::uint32_t s : starts_) follow(current, s, text, 0, stack);
        for (std::size_t i = 0; i < text.size() && !current.empty(); ++i) {
            const unsigned char c = static_cast<unsigned char>(text[i]);
            next.clear();
            for (std::size_t k = 0; k < current.size(); ++k) {
                const std::uint32_t pc = current[k];
                const instruction& in = code_[pc];
                if (in.code == op::bytes && sets_[in.x].test(c)) {
                    follow(next, pc + 1, text, i + 1, stack);
                }
            }
            std::swap(current, next);
        }
        for (std::size_t k = 0; k < current.size(); ++k) {
            const std::uint32_t pc = current[k];
            if (code_[pc].code == op::match) matched[code_[pc].x] = true;
        }
    }

  private:
    enum class op : std::uint8_t {
        bytes,       // consume one byte of sets_[x]
        split,       // go on at x and at y
        jump,        // go on at x
        line_begin,  // go on at the next instruction when at offset 0
        line_end,    // ... when at the end
        word_edge,
        not_word_edge,
        match  // pattern x matches
    };
    struct instruction {
        op code;
        std::uint32_t x;
        std::uint32_t y;
    };

    /// A set of instruction indices with constant-time insert, test and clear.
    class state_list {
      public:
        explicit state_list(std::size_t capacity) : index_(capacity), dense_(capacity) {}
        bool contains(std::uint32_t pc) const {
            const std::uint32_t i = index_[pc];
            return i < size_ && dense_[i] == pc;
        }
        void insert(std::uint32_t pc) {
            index_[pc] = static_cast<std::uint32_t>(size_);
            dense_[size_++] = pc;
        }
        void clear() { size_ = 0; }
        bool empty() const { return size_ == 0; }
        std::size_t size() const { return size_; }
        std::uint32_t operator[](std::size_t i) const { return dense_[i]; }

      private:
        std::vector<std::uint32_t> index_;
        std::vector<std::uint32_t> dense_;
        std::size_t size_ = 0;
    };

    /// Adds pc and every state reachable from it without consuming a byte, at `offset`
    /// of the text (assertions are decided here). Iterative: no recursion on big programs.
    void follow(state_list& list, std::uint32_t pc, std::string_view text, std::size_t offset,
                std::vector<std::uint32_t>& stack) const {
        stack.clear();
        stack.push_back(pc);
        while (!stack.empty()) {
            const std::uint32_t at = stack.back();
            stack.pop_back();
            if (list.contains(at)) continue;
            list.insert(at);
            const instruction& in = code_[at];
            switch (in.code) {
                case op::jump:
                    stack.push_back(in.x);
                    break;
                case op::split:
                    stack.push_back(in.y);
                    stack.push_back(in.x);
                    break;
                case op::line_begin:
                    if (offset == 0) stack.push_back(at + 1);
                    break;
                case op::line_end:
                    if (offset == text.size()) stack.push_back(at + 1);
                    break;
                case op::word_edge:
                case op::not_word_edge: {
                    const bool left =
                        offset > 0 &&
                        detail::is_word_byte(static_cast<unsigned char>(text[offset - 1]));
                    const bool right =
                        offset < text.size() &&
                        detail::is_word_byte(static_cast<unsigned char>(text[offset]));
                    if ((left != right) == (in.code == op::word_edge)) stack.push_back(at + 1);
                    break;
                }
                case op::bytes:
                case op::match:
                    break;
            }
        }
    }

    /// The number of instructions emit() writes for a node, saturated far above the limit.
    std::size_t size_of(const std::vector<detail::node>& nodes, std::size_t n) const {
        constexpr std::size_t cap = std::size_t(1) << 40;
        const auto sat = [](std::size_t v) { return v > cap ? cap : v; };
        const detail::node& d = nodes[n];
        using kind = detail::node::kind;
        switch (d.type) {
            case kind::concat: {
                std::size_t total = 0;
                for (const std::size_t c : d.children) total = sat(total + size_of(nodes, c));
                return total;
            }
            case kind::alternation: {
                std::size_t total = 0;
                for (const std::size_t c : d.children) total = sat(total + size_of(nodes, c) + 2);
                return total;
            }
            case kind::repeat: {
                const std::size_t body = size_of(nodes, d.children[0]);
                const std::size_t min = std::size_t(d.min);
                if (d.max < 0) return sat(min == 0 ? body + 2 : min * body + 1);
                return sat(min * body + std::size_t(d.max - d.min) * (body + 1));
            }
            case kind::empty:
                return 0;
            default:
                return 1;
        }
    }

    std::uint32_t here() const { return static_cast<std::uint32_t>(code_.size()); }
    std::uint32_t push(op code, std::uint32_t x = 0, std::uint32_t y = 0) {
        code_.push_back({code, x, y});
        return here() - 1;
    }

    void emit(const std::vector<detail::node>& nodes, std::size_t n) {
        const detail::node& d = nodes[n];
        using kind = detail::node::kind;
        switch (d.type) {
            case kind::empty:
                return;
            case kind::bytes:
                sets_.push_back(d.chars);
                push(op::bytes, static_cast<std::uint32_t>(sets_.size() - 1));
                return;
            case kind::line_begin:
                push(op::line_begin);
                return;
            case kind::line_end:
                push(op::line_end);
                return;
            case kind::word_edge:
                push(op::word_edge);
                return;
            case kind::not_word_edge:
                push(op::not_word_edge);
                return;
            case kind::concat:
                for (const std::size_t c : d.children) emit(nodes, c);
                return;
            case kind::alternation: {
                // split L1, next; L1: a; jump end; next: split L2, next2; ... last alternative
                std::vector<std::uint32_t> jumps;
                for (std::size_t i = 0; i + 1 < d.children.size(); ++i) {
                    const std::uint32_t split = push(op::split);
                    code_[split].x = here();
                    emit(nodes, d.children[i]);
                    jumps.push_back(push(op::jump));
                    code_[split].y = here();
                }
                emit(nodes, d.children.back());
                for (const std::uint32_t j : jumps) code_[j].x = here();
                return;
            }
            case kind::repeat: {
                const std::size_t body = d.children[0];
                if (d.max < 0) {
                    if (d.min == 0) {  // L: split body, out; body; jump L
                        const std::uint32_t split = push(op::split);
                        code_[split].x = here();
                        emit(nodes, body);
                        push(op::jump, split);
                        code_[split].y = here();
                        return;
                    }
                    for (int i = 0; i + 1 < d.min; ++i) emit(nodes, body);
                    const std::uint32_t loop = here();  // L: body; split L, out
                    emit(nodes, body);
                    push(op::split, loop, here() + 1);
                    return;
                }
                for (int i = 0; i < d.min; ++i) emit(nodes, body);
                // The optional copies: split body, end; body; split body, end; ... end.
                std::vector<std::uint32_t> splits;
                for (int i = d.min; i < d.max; ++i) {
                    const std::uint32_t split = push(op::split);
                    code_[split].x = here();
                    splits.push_back(split);
                    emit(nodes, body);
                }
                for (const std::uint32_t s : splits) code_[s].y = here();
                return;
            }
        }
    }

    std::vector<instruction> code_;
    std::vector<byte_set> sets_;
    std::vector<std::uint32_t> starts_;
};

}  // namespace qmix::rules::regex
