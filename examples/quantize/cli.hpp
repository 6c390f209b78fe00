// SPDX-License-Identifier: MIT
#pragma once

// qmix-quantize's command line, parsed without side effects on the terminal or the process:
// no printing, no exit. main() acts on the result; the fuzz target (tests/fuzz/fuzz_cli.cpp)
// calls the same parser with arbitrary arguments. The only thing parsing reads from outside
// is a --tensor-type-file, through a loader the caller may replace.

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "qmix/core/error.hpp"
#include "qmix/core/ftype.hpp"
#include "qmix/rules/rules.hpp"
#include "qmix/whisper/budget.hpp"
#include "qmix/whisper/quantize_model.hpp"

namespace qmix::quantize_cli {

inline constexpr int exit_failure = 1;
inline constexpr int exit_usage = 2;

/// The --help text. Its lists of types, ftype numbers and fallbacks ({types}, {numbers},
/// {fallbacks}) are filled in from the registry by usage_text().
inline constexpr const char* usage_template = R"(usage: qmix-quantize [options] INPUT OUTPUT TYPE
       qmix-quantize --target-size SIZE | --target-bpw BITS [options] INPUT OUTPUT
       qmix-quantize --info MODEL | --list-types | --help | --version

Quantizes a whisper ggml model (f32 or f16) into OUTPUT. Two-dimensional weight
matrices are converted; everything else is copied byte for byte, except that the
conv weights follow the header (f16, or f32 under an f32 header) and other tensors
are stored as f32, the types whisper.cpp's loader creates them as. Each matrix gets
the type of the first --tensor-type rule whose pattern matches its whole name,
else TYPE.

Where the output loads: one type for every matrix loads in any whisper.cpp; mixed
types need whisper.cpp with per-tensor types (mixed-precision support), which sizes
every matrix's buffer by the header's type. The header records the widest type a
matrix is written in, so those buffers are as small as they can be; the summary
prints them.

{types}

rules:
  --tensor-type PATTERN=TYPE   PATTERN is an ECMAScript regular expression that
                               must match the whole tensor name; repeatable; the
                               first matching rule wins; split at the last '='
  --tensor-type-file FILE      one PATTERN=TYPE per line, '#' comments allowed;
                               rules keep their command-line order

size budget (the tool chooses each matrix's type; no TYPE then):
  --target-size SIZE     the output file may take at most SIZE bytes (K, M, G:
                         powers of 1024, e.g. 60M)
  --target-bpw BITS      the matrices may take at most BITS bits per weight
                         (q4_k is 4.5, q8_0 8.5, f16 16)
  --allow-types LIST     the types to choose from, e.g. q4_k,q5_k,q8_0
                         (default: every quantized type the rows fit, and f16)
  --tensor-weight PATTERN=W
                         how much a matrix's error counts (default 1; first
                         matching pattern wins), e.g. 'encoder\..*=2'
  --budget-sample N      measure errors on at most N values per matrix, evenly
                         spaced rows (default 65536; 0: every row)
  Each free matrix's error under each type is measured (squared error of the
  dequantized values / the matrix's energy, times its weight) and the types
  with the least total error within the budget are chosen (a knapsack: convex
  hull steps by error saved per byte and an exact programme over the budget in
  4096+ steps, then single and paired exchanges; the summary prints a lower
  bound no choice can beat, and what each uniform type gives at its size).
  --tensor-type rules still decide their matrices. A budget out of reach is an
  error naming the reachable range. The file is byte for byte what the chosen
  types give as rules; --dry-run prints them as a rule file to keep (with -q,
  only the rule file).

options:
  -t, --threads N        worker threads (default: all cores)
  --dry-run              print the plan, write nothing
  --no-fallback          a row length the chosen type cannot hold is an error
                         (k-quants need rows of 256*k) instead of a fallback
  --allow-requantize     accept already-quantized tensors (widened first)
  --allow-nonfinite      quantize NaN or infinite weights instead of refusing
  --stats                per tensor RMSE and max abs error of the result
  --loader upstream      the output must load in released whisper.cpp (one type
                         for every matrix): refuse, before writing, a plan that
                         rules or fallbacks make mixed, naming the uniform types
                         that would work; --loader per-tensor (the default)
                         accepts mixed outputs
  --json FILE            write a machine-readable report to FILE
  -v, --verbose          print the per-tensor table even on a terminal
  -q, --quiet            only errors and warnings
  --info MODEL           print a model's hyper-parameters and tensor table, and
                         which whisper.cpp loaders accept it (each tensor a
                         loader would refuse is named, with the reason)
  --list-types           the types with their sizes and fallbacks
  -h, --help, --version
  --                     ends the options: what follows is INPUT OUTPUT TYPE
                         even when it starts with '-'

examples:
  # encoder and attention at higher precision, everything else q4_k
  qmix-quantize --tensor-type 'encoder\..*=q8_0' --tensor-type '.*attn.*=q5_k' \
      ggml-base.bin ggml-base-mixed.bin q4_k
  # what whisper.cpp's quantize does (9 is its number for q5_1)
  qmix-quantize ggml-base.bin ggml-base-q5_1.bin 9
  # the best mix at q4_k's size, encoder errors counting twice
  qmix-quantize --target-bpw 4.5 --tensor-weight 'encoder\..*=2' \
      ggml-base.bin ggml-base-4.5bpw.bin
  # the chosen types as a rule file, to read, edit and reuse
  qmix-quantize --target-size 60M --dry-run -q ggml-base.bin x.bin > rules.txt
  # rules from a file, checked without writing anything
  qmix-quantize --tensor-type-file rules.txt --no-fallback --dry-run \
      ggml-tiny.bin ggml-tiny-q4_k.bin q4_k

{fallbacks}
iq4_nl stores 4.5 bits per weight like q4_k but in 32-value blocks: it holds
whisper tiny's rows of 384 that q4_k (and iq4_xs) cannot, with no fallback.
Exit status: 0 success, 1 failure, 2 usage error. OUTPUT and the --json report are
written to temporary files beside them and renamed into place together, only when
complete; INPUT is never modified. A symbolic link as OUTPUT is written through.
)";

namespace detail {

/// Joins the words of a unit that wrap() must keep on one line ("2 q4_0").
inline constexpr char glue = '\x01';

/// `words` (separated by single spaces) as lines of at most `width` characters (a longer
/// word stands on its own line); `glue` characters become spaces that never break a line.
inline std::string wrap(const std::string& words, std::size_t width = 80) {
    std::string text, line;
    std::size_t start = 0;
    while (start < words.size()) {
        std::size_t end = words.find(' ', start);
        if (end == std::string::npos) end = words.size();
        const std::string word = words.substr(start, end - start);
        start = end + 1;
        if (!line.empty() && line.size() + 1 + word.size() > width) {
            text += line + "\n";
            line.clear();
        }
        line += (line.empty() ? "" : " ") + word;
    }
    text += line;
    std::replace(text.begin(), text.end(), glue, ' ');
    return text;
}

/// The storage types that a quantized ftype number names, in the order of the numbers.
inline std::vector<type_id> quantized_ftype_types() {
    std::vector<type_id> types;
    for (const auto& t : type_table) {
        if (t.is_quantized && rules::is_storage_type(t.id)) types.push_back(t.id);
    }
    std::sort(types.begin(), types.end(), [](type_id a, type_id b) {
        return static_cast<int>(*ftype_of_type(a)) < static_cast<int>(*ftype_of_type(b));
    });
    return types;
}

/// "2, 3, 7, 8, ...": the ftype numbers TYPE accepts.
inline std::string quantized_ftype_numbers() {
    std::string numbers;
    for (const type_id t : quantized_ftype_types()) {
        if (!numbers.empty()) numbers += ", ";
        numbers += std::to_string(static_cast<int>(*ftype_of_type(t)));
    }
    return numbers;
}

}  // namespace detail

/// The --help text, with the lists the registry defines.
inline std::string usage_text() {
    std::string numbers;
    for (const type_id t : detail::quantized_ftype_types()) {
        numbers += (numbers.empty() ? "" : ", ") +
                   std::to_string(static_cast<int>(*ftype_of_type(t))) + detail::glue +
                   std::string(type_name(t));
    }
    const std::string types = detail::wrap("TYPE and rule types: " + rules::storage_type_names() +
                                           " (any letter case). TYPE may also be whisper.cpp's "
                                           "number: " +
                                           numbers + ".");
    // Types with the same fallback are listed together: "q2_k q3_k -> q4_0".
    std::string fallbacks;
    std::vector<bool> listed(type_table.size(), false);
    for (std::size_t i = 0; i < type_table.size(); ++i) {
        const auto target = fallback_of(type_table[i].id);
        if (listed[i] || !target || !rules::is_storage_type(type_table[i].id)) continue;
        std::string group;
        for (std::size_t j = i; j < type_table.size(); ++j) {
            if (fallback_of(type_table[j].id) != target) continue;
            listed[j] = true;
            if (!group.empty()) group += detail::glue;
            group += type_table[j].name;
        }
        fallbacks += (fallbacks.empty() ? "" : ", ") + group + detail::glue + "->" + detail::glue +
                     std::string(type_name(*target));
    }
    const std::string fallback_text =
        detail::wrap("Fallbacks when a row length does not fit: " + fallbacks +
                     "; rows no 32-value block holds stay unchanged.");
    std::string text = usage_template;
    for (const auto& [key, value] :
         {std::pair<std::string, std::string>{"{types}", types}, {"{fallbacks}", fallback_text}}) {
        const std::size_t at = text.find(key);
        if (at != std::string::npos) text.replace(at, key.size(), value);
    }
    return text;
}

/// A mistake in the arguments themselves: reported with exit status 2, before any model
/// is opened.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// Everything a quantization run needs from the command line.
struct command_line {
    std::string input, output;
    std::string default_type_text;
    std::vector<std::pair<std::string, std::string>> rule_sources;  // ("flag"|"file", text)
    whisper::quantize_options options;
    bool dry_run = false, verbose = false, quiet = false;
    std::string json_path;
    std::optional<whisper::budget_options> budget;  ///< --target-size / --target-bpw
};

/// What the arguments ask for. The informational requests stop the parse where they
/// appear, as the arguments before them have already been checked.
enum class request { quantize, help, version, list_types, info };

struct parsed_command {
    request what = request::quantize;
    command_line line;       ///< complete for request::quantize
    std::string info_model;  ///< the MODEL of --info
};

/// Adds the rules of a --tensor-type-file to a rule set. The default reads the file; the
/// fuzz target substitutes one that never touches the file system.
using rule_file_loader = std::function<void(rules::rule_set&, const std::string& path)>;

inline void load_rule_file(rules::rule_set& rules, const std::string& path) {
    rules.add_file(path);
}

/// TYPE: a storage type name in any case, or whisper.cpp's quantized ftype number.
inline type_id parse_default_type(const std::string& text) {
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
        text.size() < 4) {
        const auto type = type_of_ftype(std::stoi(text));
        if (!type || !info(*type).is_quantized) {  // f32 0, f16 1 and bf16 24 by name only
            throw usage_error("TYPE " + text + " is not a quantized ftype (" +
                              detail::quantized_ftype_numbers() + ")");
        }
        return *type;
    }
    try {
        return rules::parse_storage_type(text, "TYPE");
    } catch (const qmix::error& e) {
        throw usage_error(e.what());
    }
}

inline unsigned parse_threads(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || value < 1 || value > 1024) {
        throw usage_error("--threads takes a whole number from 1 to 1024, not '" + text + "'");
    }
    return static_cast<unsigned>(value);
}

/// SIZE of --target-size: bytes, or a number with K, M or G (powers of 1024; "KiB", "MB"
/// and the like are read the same way).
inline std::uint64_t parse_size(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const double number = std::strtod(text.c_str(), &end);
    std::string unit(end ? end : "");
    for (auto& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
    if (unit.size() > 1 && unit.back() == 'B') unit.pop_back();
    if (unit.size() > 1 && unit.back() == 'I') unit.pop_back();
    double factor = 0;
    if (unit.empty() || unit == "B") factor = 1;
    if (unit == "K") factor = 1024.0;
    if (unit == "M") factor = 1024.0 * 1024.0;
    if (unit == "G") factor = 1024.0 * 1024.0 * 1024.0;
    const double bytes = number * factor;
    if (text.empty() || end == text.c_str() || errno != 0 || factor == 0 || !std::isfinite(bytes) ||
        bytes < 1 || bytes > 1e18) {
        throw usage_error(
            "--target-size takes bytes or a number with K, M or G (1024-based), not '" + text +
            "'");
    }
    return static_cast<std::uint64_t>(bytes);
}

inline double parse_bpw(const std::string& text) {
    char* end = nullptr;
    const double bits = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(bits) || bits <= 0 || bits > 32) {
        throw usage_error("--target-bpw takes bits per weight above 0 and at most 32, not '" +
                          text + "'");
    }
    return bits;
}

/// LIST of --allow-types: type names separated by commas or spaces.
inline std::vector<type_id> parse_type_list(const std::string& text) {
    std::vector<type_id> types;
    std::string item;
    const auto flush = [&] {
        if (item.empty()) return;
        type_id t;
        try {
            t = rules::parse_storage_type(item, "--allow-types");
        } catch (const qmix::error& e) {
            throw usage_error(e.what());
        }
        if (t == type_id::f32) {
            throw usage_error(
                "--allow-types: f32 is no candidate under a budget (f16 holds the "
                "same tensors in half the bytes)");
        }
        if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
        item.clear();
    };
    for (const char c : text) {
        if (c == ',' || c == ' ') {
            flush();
        } else {
            item += c;
        }
    }
    flush();
    if (types.empty()) throw usage_error("--allow-types needs at least one type");
    return types;
}

/// Parses the arguments after the program name. Throws usage_error for anything the user
/// must fix in the command line itself, rule files included.
inline parsed_command parse_command_line(const std::vector<std::string>& args,
                                         const rule_file_loader& load_file = load_rule_file) {
    parsed_command parsed;
    command_line& cl = parsed.line;
    std::vector<std::string> positional;
    auto value = [&](std::size_t& i, const std::string& flag) -> std::string {
        if (i + 1 >= args.size()) throw usage_error(flag + " needs a value");
        return args[++i];
    };
    bool options_ended = false;  // after "--" every argument is positional
    std::optional<std::vector<type_id>> allow_types;
    std::vector<std::string> weight_texts;
    std::optional<std::int64_t> sample_values;
    auto budget = [&]() -> whisper::budget_options& {
        if (!cl.budget) cl.budget.emplace();
        return *cl.budget;
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (options_ended) {
            positional.push_back(arg);
        } else if (arg == "--") {
            options_ended = true;
        } else if (arg == "-h" || arg == "--help") {
            parsed.what = request::help;
            return parsed;
        } else if (arg == "--version") {
            parsed.what = request::version;
            return parsed;
        } else if (arg == "--list-types") {
            parsed.what = request::list_types;
            return parsed;
        } else if (arg == "--info") {
            parsed.info_model = value(i, arg);
            parsed.what = request::info;
            return parsed;
        } else if (arg == "--tensor-type") {
            cl.rule_sources.emplace_back("flag", value(i, arg));
        } else if (arg.rfind("--tensor-type=", 0) == 0) {
            cl.rule_sources.emplace_back("flag", arg.substr(14));
        } else if (arg == "--tensor-type-file") {
            cl.rule_sources.emplace_back("file", value(i, arg));
        } else if (arg == "-t" || arg == "--threads") {
            cl.options.threads = parse_threads(value(i, arg));
        } else if (arg == "--json") {
            cl.json_path = value(i, arg);
        } else if (arg == "--dry-run") {
            cl.dry_run = true;
        } else if (arg == "--no-fallback") {
            cl.options.no_fallback = true;
        } else if (arg == "--allow-requantize") {
            cl.options.allow_requantize = true;
        } else if (arg == "--allow-nonfinite") {
            cl.options.allow_nonfinite = true;
        } else if (arg == "--loader") {
            const std::string which = value(i, arg);
            if (which != "upstream" && which != "per-tensor") {
                throw usage_error("--loader takes 'upstream' or 'per-tensor', not '" + which + "'");
            }
            cl.options.upstream_loader = which == "upstream";
        } else if (arg == "--target-size") {
            budget().target_bytes = parse_size(value(i, arg));
        } else if (arg == "--target-bpw") {
            budget().target_bpw = parse_bpw(value(i, arg));
        } else if (arg == "--allow-types") {
            allow_types = parse_type_list(value(i, arg));
        } else if (arg == "--tensor-weight") {
            weight_texts.push_back(value(i, arg));
        } else if (arg == "--budget-sample") {
            const std::string text = value(i, arg);
            char* end = nullptr;
            errno = 0;
            const long long n = std::strtoll(text.c_str(), &end, 10);
            if (text.empty() || *end != '\0' || errno != 0 || n < 0) {
                throw usage_error("--budget-sample takes a whole number of values >= 0, not '" +
                                  text + "'");
            }
            sample_values = n;
        } else if (arg == "--stats") {
            cl.options.compute_stats = true;
        } else if (arg == "-v" || arg == "--verbose") {
            cl.verbose = true;
        } else if (arg == "-q" || arg == "--quiet") {
            cl.quiet = true;
        } else if (arg.size() > 1 && arg[0] == '-') {
            throw usage_error("unknown option " + arg + " (see --help)");
        } else {
            positional.push_back(arg);
        }
    }
    if (cl.budget) {
        if (cl.budget->target_bytes && cl.budget->target_bpw) {
            throw usage_error("--target-size and --target-bpw: give one budget, not both");
        }
        if (positional.size() == 3) {
            throw usage_error(
                "with a budget the types are chosen: give INPUT OUTPUT without "
                "TYPE (got '" +
                positional[2] + "')");
        }
        if (positional.size() != 2) {
            throw usage_error("expected INPUT OUTPUT, got " + std::to_string(positional.size()) +
                              " argument(s) (see --help)");
        }
        if (cl.options.upstream_loader) {
            throw usage_error(
                "--loader upstream loads one type for every matrix; a budget "
                "mixes types (drop one of them)");
        }
        if (allow_types) cl.budget->allowed = *allow_types;
        if (sample_values) cl.budget->sample_values = *sample_values;
        int number = 0;
        for (const auto& text : weight_texts) {
            try {
                cl.budget->weights.push_back(whisper::parse_tensor_weight(
                    text, "--tensor-weight " + std::to_string(++number)));
            } catch (const qmix::error& e) {
                throw usage_error(e.what());
            }
        }
        positional.push_back("f16");  // TYPE: every matrix gets a rule, so it decides nothing
    } else if (allow_types || !weight_texts.empty() || sample_values) {
        throw usage_error(std::string(allow_types     ? "--allow-types"
                                      : sample_values ? "--budget-sample"
                                                      : "--tensor-weight") +
                          " only applies with a budget (--target-size or --target-bpw)");
    }
    if (positional.size() != 3) {
        throw usage_error("expected INPUT OUTPUT TYPE, got " + std::to_string(positional.size()) +
                          " argument(s) (see --help)");
    }
    cl.input = positional[0];
    cl.output = positional[1];
    cl.default_type_text = positional[2];
    cl.options.default_type = parse_default_type(positional[2]);
    int flag_number = 0;
    for (const auto& [kind, text] : cl.rule_sources) {
        try {
            if (kind == "flag") {
                cl.options.rules.add(text, "--tensor-type " + std::to_string(++flag_number));
            } else {
                load_file(cl.options.rules, text);
            }
        } catch (const qmix::error& e) {
            throw usage_error(e.what());
        }
    }
    return parsed;
}

/// parse_command_line() over main's argv, skipping the program name.
inline parsed_command parse_command_line(int argc, const char* const* argv,
                                         const rule_file_loader& load_file = load_rule_file) {
    std::vector<std::string> args;
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    return parse_command_line(args, load_file);
}

}  // namespace qmix::quantize_cli
