// SPDX-License-Identifier: MIT
// qmix-quantize: mixed-precision quantization of whisper ggml models.
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "qmix/qmix.hpp"
#include "qmix/whisper/info.hpp"
#include "qmix/whisper/quantize_model.hpp"

namespace {

using namespace qmix;
using namespace qmix::whisper;

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;

const char* const usage_text = R"(usage: qmix-quantize [options] INPUT OUTPUT TYPE
       qmix-quantize --info MODEL | --list-types | --help | --version

Quantizes a whisper ggml model (f32 or f16) into OUTPUT. Two-dimensional weight
matrices are converted; everything else is copied byte for byte. Each matrix gets
the type of the first --tensor-type rule whose pattern matches its whole name,
else TYPE.

TYPE and rule types: f32 f16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k
(any letter case). TYPE may also be whisper.cpp's number: 2 q4_0, 3 q4_1,
7 q8_0, 8 q5_0, 9 q5_1, 10 q2_k, 11 q3_k, 12 q4_k, 13 q5_k, 14 q6_k.

rules:
  --tensor-type PATTERN=TYPE   PATTERN is an ECMAScript regular expression that
                               must match the whole tensor name; repeatable; the
                               first matching rule wins; split at the last '='
  --tensor-type-file FILE      one PATTERN=TYPE per line, '#' comments allowed;
                               rules keep their command-line order

options:
  -t, --threads N        worker threads (default: all cores)
  --dry-run              print the plan, write nothing
  --no-fallback          a row length the chosen type cannot hold is an error
                         (k-quants need rows of 256*k) instead of a fallback
  --allow-requantize     accept already-quantized tensors (widened first)
  --allow-nonfinite      quantize NaN or infinite weights instead of refusing
  --stats                per tensor RMSE and max abs error of the result
  --json FILE            write a machine-readable report to FILE
  -v, --verbose          print the per-tensor table even on a terminal
  -q, --quiet            only errors and warnings
  --info MODEL           print a model's hyper-parameters and tensor table
  --list-types           the types with their sizes and fallbacks
  -h, --help, --version

examples:
  # encoder and attention at higher precision, everything else q4_k
  qmix-quantize --tensor-type 'encoder\..*=q8_0' --tensor-type '.*attn.*=q5_k' \
      ggml-base.bin ggml-base-mixed.bin q4_k
  # what whisper.cpp's quantize does (9 is its number for q5_1)
  qmix-quantize ggml-base.bin ggml-base-q5_1.bin 9
  # rules from a file, checked without writing anything
  qmix-quantize --tensor-type-file rules.txt --no-fallback --dry-run \
      ggml-tiny.bin ggml-tiny-q4_k.bin q4_k

Fallbacks when a row length does not fit: q2_k q3_k -> q4_0, q4_k -> q5_0,
q5_k -> q5_1, q6_k -> q8_0; rows no 32-value block holds stay unchanged.
Exit status: 0 success, 1 failure, 2 usage error. The output is written to a
temporary file and renamed into place only when complete; INPUT is never modified.
)";

struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct command_line {
    std::string input, output;
    std::string default_type_text;
    std::vector<std::pair<std::string, std::string>> rule_sources;  // ("flag"|"file", text)
    quantize_options options;
    bool dry_run = false, verbose = false, quiet = false;
    std::string json_path;
};

type_id parse_default_type(const std::string& text) {
    if (!text.empty() && text.find_first_not_of("0123456789") == std::string::npos &&
        text.size() < 4) {
        const auto type = type_of_ftype(std::stoi(text));
        if (!type || *type == type_id::f32 || *type == type_id::f16) {
            throw usage_error("TYPE " + text + " is not a quantized ftype (2, 3, 7..14)");
        }
        return *type;
    }
    try {
        return rules::parse_storage_type(text, "TYPE");
    } catch (const qmix::error& e) {
        throw usage_error(e.what());
    }
}

unsigned parse_threads(const std::string& text) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno != 0 || value < 1 || value > 1024) {
        throw usage_error("--threads takes a whole number from 1 to 1024, not '" + text + "'");
    }
    return static_cast<unsigned>(value);
}

void print_types(std::ostream& out) {
    out << "type   bits/weight  block  bytes/block  ftype  fallback\n";
    for (const auto& t : type_table) {
        if (!rules::is_storage_type(t.id)) continue;
        const auto f = ftype_of_type(t.id);
        const auto fb = fallback_of(t.id);
        out << std::left << std::setw(7) << t.name << std::right << std::setw(11) << std::fixed
            << std::setprecision(4) << bits_per_weight(t.id) << std::setw(7) << t.block_size
            << std::setw(13) << t.type_size << std::setw(7) << static_cast<int>(*f) << "  "
            << (fb ? std::string(type_name(*fb)) : std::string("-")) << "\n";
    }
}

// The rest of main's work, split so that each piece reads whole.

command_line parse(int argc, char** argv, bool& handled) {
    command_line cl;
    std::vector<std::string> positional;
    auto value = [&](int& i, const std::string& flag) -> std::string {
        if (i + 1 >= argc) throw usage_error(flag + " needs a value");
        return argv[++i];
    };
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            std::cout << usage_text;
            handled = true;
            return cl;
        } else if (arg == "--version") {
            std::cout << "qmix-quantize " << QMIX_VERSION_STRING << "\n";
            handled = true;
            return cl;
        } else if (arg == "--list-types") {
            print_types(std::cout);
            handled = true;
            return cl;
        } else if (arg == "--info") {
            const model_file model(value(i, arg));
            print_model_info(std::cout, model);
            handled = true;
            return cl;
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
                cl.options.rules.add_file(text);
            }
        } catch (const qmix::error& e) {
            throw usage_error(e.what());
        }
    }
    return cl;
}

/// INPUT and OUTPUT naming one file (directly, through a link or a hard link) would
/// destroy the input: refused before anything is opened for writing.
void refuse_same_file(const std::string& input, const std::string& output) {
    struct stat in {};
    struct stat out {};
    if (::stat(input.c_str(), &in) != 0) {
        throw qmix::error(input + ": cannot open the input model: " + std::strerror(errno));
    }
    if (::stat(output.c_str(), &out) == 0) {
        if (in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
            throw qmix::error(output + " is the input model itself (" + input +
                              "); refusing to overwrite it");
        }
        if (S_ISDIR(out.st_mode)) throw qmix::error(output + " is a folder, not a file path");
    }
}

std::string mib(std::uint64_t bytes) {
    std::ostringstream s;
    s << std::fixed << std::setprecision(2) << double(bytes) / (1024.0 * 1024.0) << " MiB";
    return s.str();
}

std::string decided_by(const tensor_plan& p, const rules::rule_set& rules) {
    switch (p.why) {
        case decision::rule: return rules.rules()[*p.rule].origin;
        case decision::copied:
            return p.ignored_rule ? "copied (" + p.note + "; " +
                                        rules.rules()[*p.ignored_rule].origin + " ignored)"
                                  : "copied (" + p.note + ")";
        case decision::fallback:
        case decision::kept: return std::string(decision_name(p.why)) + " (" + p.note + ")";
        default: return std::string(decision_name(p.why));
    }
}

void print_table(std::ostream& out, const model_plan& plan, const quantize_result* result,
                 const rules::rule_set& rules) {
    out << std::left << std::setw(48) << "tensor" << std::setw(14) << "shape" << std::setw(14)
        << "type" << std::setw(22) << "size" << "decided by\n";
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
        const auto& p = plan.tensors[i];
        const std::string types = std::string(type_name(p.tensor->type)) + " -> " +
                                  std::string(type_name(p.output));
        out << std::left << std::setw(48) << p.tensor->name << std::setw(14)
            << shape_text(*p.tensor) << std::setw(14) << types << std::setw(22)
            << (mib(p.tensor->data_size) + " -> " + mib(p.output_bytes)) << decided_by(p, rules);
        if (result && result->stats[i].computed) {
            out << "  rmse " << std::scientific << std::setprecision(3) << result->stats[i].rmse
                << " max " << result->stats[i].max_abs_error << std::defaultfloat;
        }
        out << "\n";
    }
}

void print_summary(std::ostream& out, const model_plan& plan, const command_line& cl,
                   const quantize_result* result) {
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> per_type;
    std::map<std::string, std::size_t> fallbacks;
    for (const auto& p : plan.tensors) {
        auto& entry = per_type[std::string(type_name(p.output))];
        ++entry.first;
        entry.second += p.output_bytes;
        if (p.why == decision::fallback || p.why == decision::kept) {
            fallbacks["rows of " + std::to_string(p.tensor->ne[0]) + ": " +
                      std::string(type_name(p.requested)) + " -> " +
                      std::string(type_name(p.output))]++;
        }
    }
    out << "\nsummary\n  tensors by type:";
    for (const auto& [name, e] : per_type) out << "  " << name << " " << e.first;
    out << "\n  size: " << mib(plan.input_bytes) << " -> " << mib(plan.output_bytes) << "\n";
    if (plan.candidate_values > 0) {
        const double values = double(plan.candidate_values);
        out << std::fixed << std::setprecision(3) << "  bits per weight of the matrices: "
            << plan.nominal_bits / values << " as requested, " << plan.actual_bits / values
            << " as written\n";
    }
    const std::int32_t f = plan.header_ftype % quantization_version_factor;
    out << "  header ftype: " << plan.header_ftype << " ("
        << type_name(*type_of_ftype(f)) << (plan.mixed ? ", the matrices mix types" : "")
        << ")\n";
    if (!fallbacks.empty()) {
        out << "  fallbacks (" << plan.count(decision::fallback) + plan.count(decision::kept)
            << " tensors):\n";
        for (const auto& [what, count] : fallbacks) out << "    " << count << " x " << what << "\n";
    }
    if (plan.mixed) {
        out << "  note: the output mixes tensor types; loaders that assume one type per model\n"
               "        (whisper.cpp before its mixed-precision support) will refuse it.\n";
    }
    if (result) {
        out << std::fixed << std::setprecision(2) << "  time: " << result->seconds << " s with "
            << resolve_threads(cl.options.threads) << " thread(s)\n";
    }
}

std::string json_escape(const std::string& text) {
    std::string out;
    for (const unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += char(c);
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += char(c);
        }
    }
    return out;
}

void write_json(const std::string& path, const model_plan& plan, const command_line& cl,
                const quantize_result* result) {
    std::ofstream out(path);
    if (!out) throw qmix::error(path + ": cannot write the JSON report");
    out << "{\n  \"input\": \"" << json_escape(cl.input) << "\",\n  \"output\": \""
        << json_escape(cl.output) << "\",\n  \"default_type\": \""
        << type_name(cl.options.default_type) << "\",\n  \"dry_run\": "
        << (cl.dry_run ? "true" : "false") << ",\n  \"header_ftype\": " << plan.header_ftype
        << ",\n  \"mixed\": " << (plan.mixed ? "true" : "false")
        << ",\n  \"input_bytes\": " << plan.input_bytes
        << ",\n  \"output_bytes\": " << plan.output_bytes;
    if (result) out << ",\n  \"seconds\": " << result->seconds;
    out << ",\n  \"warnings\": [";
    for (std::size_t i = 0; i < plan.warnings.size(); ++i) {
        out << (i ? ", " : "") << "\"" << json_escape(plan.warnings[i]) << "\"";
    }
    out << "],\n  \"tensors\": [\n";
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
        const auto& p = plan.tensors[i];
        out << "    {\"name\": \"" << json_escape(p.tensor->name) << "\", \"shape\": [";
        for (int d = 0; d < p.tensor->n_dims; ++d) out << (d ? ", " : "") << p.tensor->ne[d];
        out << "], \"input_type\": \"" << type_name(p.tensor->type) << "\", \"output_type\": \""
            << type_name(p.output) << "\", \"decision\": \"" << decision_name(p.why) << "\"";
        if (p.rule) out << ", \"rule\": \"" << json_escape(cl.options.rules.rules()[*p.rule].origin) << "\"";
        out << ", \"input_bytes\": " << p.tensor->data_size
            << ", \"output_bytes\": " << p.output_bytes;
        if (result && result->stats[i].computed) {
            out << ", \"rmse\": " << result->stats[i].rmse
                << ", \"max_abs_error\": " << result->stats[i].max_abs_error;
        }
        out << "}" << (i + 1 < plan.tensors.size() ? "," : "") << "\n";
    }
    out << "  ]\n}\n";
    if (!out) throw qmix::error(path + ": write error in the JSON report");
}

// Signals: the only state a handler may touch. The path is set once the temporary file
// exists and cleared after commit.
volatile std::sig_atomic_t interrupted = 0;
const char* volatile temporary_to_remove = nullptr;

extern "C" void on_signal(int signal_number) {
    interrupted = 1;
    if (const char* path = temporary_to_remove) ::unlink(path);
    ::_exit(128 + signal_number);
}

void install_signal_handlers() {
    struct sigaction action {};
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(s, &action, nullptr);
}

/// A one-line progress bar on a terminal.
class progress_bar {
public:
    explicit progress_bar(bool enabled) : enabled_(enabled), start_(clock::now()) {}
    void update(std::uint64_t done, std::uint64_t total) {
        if (!enabled_ || total == 0) return;
        const auto now = clock::now();
        if (done < total && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        const double fraction = double(done) / double(total);
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const double left = fraction > 0 ? elapsed * (1 - fraction) / fraction : 0;
        const int width = 30;
        const int filled = int(fraction * width);
        std::fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %s / %s  %.1f s left   ",
                     filled, "##############################", width - filled, "",
                     100 * fraction, mib(done).c_str(), mib(total).c_str(), left);
        if (done >= total) std::fprintf(stderr, "\n");
    }

private:
    using clock = std::chrono::steady_clock;
    bool enabled_;
    clock::time_point start_;
    clock::time_point last_{};
};

int run(const command_line& cl) {
    refuse_same_file(cl.input, cl.output);
    const model_file model(cl.input);
    const model_plan plan = make_plan(model, cl.options);
    const bool terminal = ::isatty(STDERR_FILENO) != 0;
    const bool table_first = !cl.quiet && (cl.dry_run || cl.verbose || !terminal);
    for (const auto& w : plan.warnings) std::cerr << "warning: " << w << "\n";
    if (cl.dry_run) {
        print_table(std::cout, plan, nullptr, cl.options.rules);
        print_summary(std::cout, plan, cl, nullptr);
        if (!cl.json_path.empty()) write_json(cl.json_path, plan, cl, nullptr);
        std::cout << "dry run: nothing written\n";
        return 0;
    }
    install_signal_handlers();
    model_writer writer(cl.output);
    temporary_to_remove = writer.temporary_path();
    progress_bar bar(terminal && !cl.quiet && !cl.verbose);
    const quantize_result result =
        execute_plan(model, plan, cl.options, writer,
                     [&](std::size_t, std::uint64_t done, std::uint64_t total) {
                         bar.update(done, total);
                     });
    writer.commit();
    temporary_to_remove = nullptr;
    if (table_first || (cl.options.compute_stats && !cl.quiet)) {
        print_table(std::cout, plan, &result, cl.options.rules);
    }
    if (!cl.quiet) print_summary(std::cout, plan, cl, &result);
    if (!cl.json_path.empty()) write_json(cl.json_path, plan, cl, &result);
    if (!cl.quiet) std::cout << "wrote " << cl.output << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        bool handled = false;
        const command_line cl = parse(argc, argv, handled);
        if (handled) return 0;
        return run(cl);
    } catch (const usage_error& e) {
        std::cerr << "qmix-quantize: " << e.what() << "\n";
        return exit_usage;
    } catch (const std::exception& e) {
        std::cerr << "qmix-quantize: error: " << e.what() << "\n";
        return exit_failure;
    }
}
