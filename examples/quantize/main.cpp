// SPDX-License-Identifier: MIT
// qmix-quantize: mixed-precision quantization of whisper ggml models.
#include <pthread.h>
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
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "qmix/qmix.hpp"
#include "qmix/whisper/info.hpp"
#include "qmix/whisper/quantize_model.hpp"

namespace {

using namespace qmix;
using namespace qmix::whisper;
using namespace qmix::quantize_cli;

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
        case decision::rule:
            return rules.rules()[*p.rule].origin;
        case decision::copied:
            return p.ignored_rule ? "copied (" + p.note + "; " +
                                        rules.rules()[*p.ignored_rule].origin + " ignored)"
                                  : "copied (" + p.note + ")";
        case decision::fallback:
        case decision::kept:
        case decision::loader_type:
            return std::string(decision_name(p.why)) + " (" + p.note + ")";
        default:
            return std::string(decision_name(p.why));
    }
}

void print_table(std::ostream& out, const model_plan& plan, const quantize_result* result,
                 const rules::rule_set& rules) {
    out << std::left << std::setw(48) << "tensor" << std::setw(14) << "shape" << std::setw(14)
        << "type" << std::setw(22) << "size"
        << "decided by\n";
    for (std::size_t i = 0; i < plan.tensors.size(); ++i) {
        const auto& p = plan.tensors[i];
        const std::string types =
            std::string(type_name(p.tensor->type)) + " -> " + std::string(type_name(p.output));
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
        out << std::fixed << std::setprecision(3)
            << "  bits per weight of the matrices: " << plan.nominal_bits / values
            << " as requested, " << plan.actual_bits / values << " as written\n";
    }
    const std::int32_t f = plan.header_ftype % quantization_version_factor;
    out << "  header ftype: " << plan.header_ftype << " (" << type_name(*type_of_ftype(f))
        << (plan.mixed ? ", the widest type of the mixed matrices" : "") << ")\n";
    if (!fallbacks.empty()) {
        out << "  fallbacks (" << plan.count(decision::fallback) + plan.count(decision::kept)
            << " tensors):\n";
        for (const auto& [what, count] : fallbacks) out << "    " << count << " x " << what << "\n";
    }
    const std::size_t retyped = plan.count(decision::loader_type);
    if (retyped > 0) {
        out << "  " << retyped << " tensor(s) stored as whisper.cpp's loader creates them "
            << "(conv weights follow the header)\n";
    }
    out << "  where it loads: " << plan.loaders.summary() << "\n";
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
        << type_name(cl.options.default_type)
        << "\",\n  \"dry_run\": " << (cl.dry_run ? "true" : "false")
        << ",\n  \"header_ftype\": " << plan.header_ftype
        << ",\n  \"mixed\": " << (plan.mixed ? "true" : "false")
        << ",\n  \"loads_upstream\": " << (plan.loaders.upstream.accepts() ? "true" : "false")
        << ",\n  \"loads_per_tensor\": " << (plan.loaders.per_tensor.accepts() ? "true" : "false")
        << ",\n  \"loader_buffer_bytes\": " << plan.loaders.buffer_bytes
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
        if (p.rule)
            out << ", \"rule\": \"" << json_escape(cl.options.rules.rules()[*p.rule].origin)
                << "\"";
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

// The input is memory-mapped. When another program truncates it while we read, touching a
// page past its new end raises SIGBUS, which would otherwise kill us with a core dump and
// leave the temporary output behind. A handler may only write and exit, so its message is
// composed before the input is opened and kept here for the rest of the run.
std::string input_changed_message;
const char* volatile input_changed_text = nullptr;
volatile std::size_t input_changed_length = 0;

extern "C" void on_input_changed(int) {
    if (const char* text = input_changed_text) {
        if (::write(STDERR_FILENO, text, input_changed_length) < 0) {
            // Nothing more can be done from here; the exit status still says it failed.
        }
    }
    if (const char* path = temporary_to_remove) ::unlink(path);
    ::_exit(exit_failure);
}

void install_input_changed_handler(const std::string& input) {
    input_changed_message = "qmix-quantize: error: " + input +
                            ": the input changed while it was being read (truncated by another "
                            "program?); nothing was written\n";
    input_changed_length = input_changed_message.size();
    input_changed_text = input_changed_message.c_str();
    struct sigaction action {};
    action.sa_handler = on_input_changed;
    sigemptyset(&action.sa_mask);
    ::sigaction(SIGBUS, &action, nullptr);
}

/// Blocks the termination signals while the temporary output is created and registered, so
/// that Ctrl-C cannot land between mkstemp and the handler learning the file's name.
class termination_signals_blocked {
  public:
    termination_signals_blocked() {
        sigset_t blocked;
        sigemptyset(&blocked);
        for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&blocked, s);
        ::pthread_sigmask(SIG_BLOCK, &blocked, &previous_);
    }
    ~termination_signals_blocked() { ::pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
    termination_signals_blocked(const termination_signals_blocked&) = delete;
    termination_signals_blocked& operator=(const termination_signals_blocked&) = delete;

  private:
    sigset_t previous_;
};

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
        std::fprintf(stderr, "\r[%.*s%*s] %5.1f%%  %s / %s  %.1f s left   ", filled,
                     "##############################", width - filled, "", 100 * fraction,
                     mib(done).c_str(), mib(total).c_str(), left);
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
    if (!cl.dry_run) install_input_changed_handler(cl.input);
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
    std::optional<termination_signals_blocked> creating_output(std::in_place);
    model_writer writer(cl.output);
    temporary_to_remove = writer.temporary_path();
    creating_output.reset();
    progress_bar bar(terminal && !cl.quiet && !cl.verbose);
    const quantize_result result = execute_plan(
        model, plan, cl.options, writer,
        [&](std::size_t, std::uint64_t done, std::uint64_t total) { bar.update(done, total); });
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
    // Past a file size limit (ulimit -f) a write should fail with EFBIG, reported and
    // cleaned up like a full disk, rather than kill the process with SIGXFSZ.
    std::signal(SIGXFSZ, SIG_IGN);
    try {
        const parsed_command command = parse_command_line(argc, argv);
        switch (command.what) {
            case request::help:
                std::cout << usage_text;
                return 0;
            case request::version:
                std::cout << "qmix-quantize " << QMIX_VERSION_STRING << "\n";
                return 0;
            case request::list_types:
                print_types(std::cout);
                return 0;
            case request::info: {
                const model_file model(command.info_model);
                print_model_info(std::cout, model);
                return 0;
            }
            case request::quantize:
                break;
        }
        return run(command.line);
    } catch (const usage_error& e) {
        std::cerr << "qmix-quantize: " << e.what() << "\n";
        return exit_usage;
    } catch (const std::bad_alloc&) {
        // The temporary output, if any, is gone already: the writer removed it on unwinding.
        std::cerr << "qmix-quantize: error: out of memory (std::bad_alloc)\n";
        return exit_failure;
    } catch (const std::exception& e) {
        std::cerr << "qmix-quantize: error: " << e.what() << "\n";
        return exit_failure;
    }
}
